//! Keeps [`GuildRoles`](crate::bot::permissions::GuildRoles) current from every event that
//! carries a guild's roles or owner: GUILD_CREATE, GUILD_UPDATE, GUILD_ROLE_CREATE/UPDATE/DELETE
//! and GUILD_DELETE.

use poise::serenity_prelude as serenity;

use crate::bot::permissions::GuildRoles;

pub fn record(roles: &GuildRoles, event: &serenity::FullEvent) {
    use serenity::FullEvent as E;
    match event {
        E::GuildCreate { guild, .. } => {
            roles.set_guild(guild.id.get(), guild.owner_id.get(), guild.roles.values());
        }
        E::GuildUpdate { new_data, .. } => roles.set_guild(
            new_data.id.get(),
            new_data.owner_id.get(),
            new_data.roles.values(),
        ),
        E::GuildRoleCreate { new } | E::GuildRoleUpdate { new, .. } => roles.set_role(new),
        E::GuildRoleDelete {
            guild_id,
            removed_role_id,
            ..
        } => roles.remove_role(guild_id.get(), removed_role_id.get()),
        E::GuildDelete { incomplete, .. } => roles.forget(incomplete.id.get()),
        _ => {}
    }
}
