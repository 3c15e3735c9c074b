//! Server-wide permissions and role facts, kept from the gateway.
//!
//! An interaction's `member.permissions` are the member's permissions *in that channel*,
//! overwrites included (`interactions/receiving-and-responding`). Powers that reach across the
//! whole server (editing anyone's quote, cancelling anyone's reminder, admin commands) need the
//! server-wide ("base") permissions instead: the @everyone role's plus those of the member's
//! roles, everything for the owner or an Administrator, and only View Channel and Read Message
//! History while timed out (`topics/permissions`, "Permission Hierarchy" and "Permissions for
//! Timed Out Members"). The GUILDS intent delivers every role with GUILD_CREATE and keeps them
//! current with GUILD_ROLE_* and GUILD_UPDATE, so [`GuildRoles`] keeps just what is read: each
//! role's permissions and whether it is mentionable, and the owner. An interaction handled
//! before its guild's GUILD_CREATE (serenity handles events concurrently) fetches the guild
//! once over REST instead.
//!
//! Not here: what a power allows (domain modules take a plain `bool`).

use std::{collections::HashMap, sync::RwLock};

use poise::serenity_prelude as serenity;
use serenity::Permissions;

use super::{Context, Error, UserError};

/// What is known of one role.
#[derive(Debug, Clone, Copy)]
pub struct RoleFacts {
    pub permissions: Permissions,
    pub mentionable: bool,
}

#[derive(Debug, Default)]
struct GuildFacts {
    owner: u64,
    roles: HashMap<u64, RoleFacts>,
}

/// Roles and owner of every guild the bot is in, as the gateway last told them.
#[derive(Debug, Default)]
pub struct GuildRoles {
    guilds: RwLock<HashMap<u64, GuildFacts>>,
}

fn facts(role: &serenity::Role) -> RoleFacts {
    RoleFacts {
        permissions: role.permissions,
        mentionable: role.mentionable,
    }
}

impl GuildRoles {
    /// GUILD_CREATE and GUILD_UPDATE carry the owner and every role.
    pub fn set_guild<'a>(
        &self,
        guild: u64,
        owner: u64,
        roles: impl IntoIterator<Item = &'a serenity::Role>,
    ) {
        let roles = roles.into_iter().map(|r| (r.id.get(), facts(r))).collect();
        self.write().insert(guild, GuildFacts { owner, roles });
    }

    /// GUILD_ROLE_CREATE and GUILD_ROLE_UPDATE.
    pub fn set_role(&self, role: &serenity::Role) {
        if let Some(guild) = self.write().get_mut(&role.guild_id.get()) {
            guild.roles.insert(role.id.get(), facts(role));
        }
    }

    /// GUILD_ROLE_DELETE.
    pub fn remove_role(&self, guild: u64, role: u64) {
        if let Some(guild) = self.write().get_mut(&guild) {
            guild.roles.remove(&role);
        }
    }

    /// GUILD_DELETE: the guild is gone or unavailable; GUILD_CREATE brings it back.
    pub fn forget(&self, guild: u64) {
        self.write().remove(&guild);
    }

    /// A role of `guild`, if it exists.
    pub fn role(&self, guild: u64, role: u64) -> Option<RoleFacts> {
        self.read().get(&guild)?.roles.get(&role).copied()
    }

    /// `member`'s server-wide permissions in `guild`, without any channel's overwrites;
    /// `None` before the guild's roles are known.
    pub fn of_member(&self, guild: u64, member: &serenity::Member) -> Option<Permissions> {
        let guilds = self.read();
        let facts = guilds.get(&guild)?;
        if facts.owner == member.user.id.get() {
            return Some(Permissions::all());
        }
        let everyone = facts.roles.get(&guild).map(|r| r.permissions)?;
        let permissions = member
            .roles
            .iter()
            .filter_map(|r| facts.roles.get(&r.get()))
            .fold(everyone, |all, role| all | role.permissions);
        if permissions.administrator() {
            return Some(Permissions::all());
        }
        let timed_out = member
            .communication_disabled_until
            .is_some_and(|until| *until > chrono::Utc::now());
        Some(if timed_out {
            permissions & (Permissions::VIEW_CHANNEL | Permissions::READ_MESSAGE_HISTORY)
        } else {
            permissions
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<u64, GuildFacts>> {
        self.guilds
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<u64, GuildFacts>> {
        self.guilds
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The invoker's server-wide permissions; `None` outside a guild. A guild whose roles have
/// not arrived yet (its GUILD_CREATE is handled concurrently with interactions) is fetched.
pub async fn invoker(ctx: Context<'_>) -> Result<Option<Permissions>, Error> {
    let poise::Context::Application(app) = ctx else {
        return Ok(None);
    };
    let (Some(guild), Some(member)) = (app.interaction.guild_id, app.interaction.member.as_deref())
    else {
        return Ok(None);
    };
    let roles = &ctx.data().roles;
    if let Some(known) = roles.of_member(guild.get(), member) {
        return Ok(Some(known));
    }
    let fetched = guild.to_partial_guild(ctx.http()).await?;
    roles.set_guild(guild.get(), fetched.owner_id.get(), fetched.roles.values());
    Ok(roles.of_member(guild.get(), member))
}

/// The invoker's permissions in the interaction's channel, overwrites included, as Discord
/// computed them (none outside an interaction).
pub fn in_channel(ctx: Context<'_>) -> Permissions {
    match ctx {
        poise::Context::Application(app) => app
            .interaction
            .member
            .as_ref()
            .and_then(|m| m.permissions)
            .unwrap_or_else(Permissions::empty),
        poise::Context::Prefix(_) => Permissions::empty(),
    }
}

/// The bot's own permissions in the interaction's channel (`app_permissions`), and whether
/// that channel is a thread.
pub fn bot_in_channel(ctx: Context<'_>) -> (Permissions, bool) {
    let poise::Context::Application(app) = ctx else {
        return (Permissions::empty(), false);
    };
    let thread = app.interaction.channel.as_ref().is_some_and(|c| {
        matches!(
            c.kind,
            serenity::ChannelType::PublicThread
                | serenity::ChannelType::PrivateThread
                | serenity::ChannelType::NewsThread
        )
    });
    let permissions = app
        .interaction
        .app_permissions
        .unwrap_or_else(Permissions::empty);
    (permissions, thread)
}

/// Whether the invoker has Manage Messages server-wide: may edit or delete anyone's quote,
/// cancel anyone's reminder and see everyone's.
pub async fn is_moderator(ctx: Context<'_>) -> Result<bool, Error> {
    Ok(invoker(ctx)
        .await?
        .is_some_and(Permissions::manage_messages))
}

/// The check of admin commands: Manage Server server-wide. Refusals name what is missing.
pub async fn manage_guild(ctx: Context<'_>) -> Result<bool, Error> {
    if invoker(ctx).await?.is_some_and(Permissions::manage_guild) {
        return Ok(true);
    }
    Err(UserError(
        "You don't have permission to use this: it needs Manage Server for the whole server."
            .into(),
    )
    .into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(guild: u64, id: u64, permissions: Permissions) -> serenity::Role {
        let mut role: serenity::Role = serde_json::from_value(serde_json::json!({
            "id": id.to_string(), "name": "r", "color": 0, "hoist": false, "position": 0,
            "permissions": permissions.bits().to_string(), "managed": false,
            "colors": {"primary_color": 0, "secondary_color": null, "tertiary_color": null},
            "mentionable": false, "flags": 0,
        }))
        .expect("a role");
        role.guild_id = serenity::GuildId::new(guild);
        role
    }

    fn member(user: u64, roles: &[u64], timed_out: bool) -> serenity::Member {
        let until =
            timed_out.then(|| (chrono::Utc::now() + chrono::TimeDelta::hours(1)).to_rfc3339());
        serde_json::from_value(serde_json::json!({
            "user": {"id": user.to_string(), "username": "u", "discriminator": "0", "avatar": null},
            "roles": roles.iter().map(u64::to_string).collect::<Vec<_>>(),
            "joined_at": "2026-01-01T00:00:00Z", "deaf": false, "mute": false, "flags": 0,
            "guild_id": "10", "communication_disabled_until": until,
        }))
        .expect("a member")
    }

    #[test]
    fn server_wide_permissions_are_everyone_plus_roles_owner_admin_and_timeouts_apply() {
        let roles = GuildRoles::default();
        let (everyone, moderator, admin) = (
            role(
                10,
                10,
                Permissions::SEND_MESSAGES | Permissions::VIEW_CHANNEL,
            ),
            role(10, 11, Permissions::MANAGE_MESSAGES),
            role(10, 12, Permissions::ADMINISTRATOR),
        );
        assert_eq!(
            roles.of_member(10, &member(5, &[], false)),
            None,
            "roles unknown yet"
        );
        roles.set_guild(10, 1, [&everyone, &moderator, &admin]);
        let plain = roles.of_member(10, &member(5, &[], false)).unwrap();
        assert!(plain.send_messages() && !plain.manage_messages());
        let modded = roles.of_member(10, &member(5, &[11], false)).unwrap();
        assert!(modded.manage_messages() && !modded.manage_guild());
        assert_eq!(
            roles.of_member(10, &member(5, &[12], false)),
            Some(Permissions::all())
        );
        assert_eq!(
            roles.of_member(10, &member(1, &[], false)),
            Some(Permissions::all()),
            "owner"
        );
        let timed_out = roles.of_member(10, &member(5, &[11], true)).unwrap();
        assert!(!timed_out.manage_messages() && !timed_out.send_messages());
        roles.remove_role(10, 11);
        assert!(!roles
            .of_member(10, &member(5, &[11], false))
            .unwrap()
            .manage_messages());
    }
}
