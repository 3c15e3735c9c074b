//! Every JSON body the fake Discord sends to the bot, built in one place so that one unit test
//! (at the bottom) can deserialise each with serenity's own model types. A payload serenity
//! cannot read becomes `Event::Unknown` and a test would just time out; here it fails loudly.
//!
//! Not here: the HTTP and WebSocket plumbing (`fake.rs`) or test scenarios.

use serde_json::{json, Value};

/// The bot's application id, which is also its user id.
pub const APP: u64 = 900_000_000_000_000_001;
/// The guild every test bot is in.
pub const GUILD: u64 = 1_000_000_000_000_000_001;
/// A second guild, for tests about one guild's data leaving the other alone.
pub const OTHER_GUILD: u64 = 1_000_000_000_000_000_002;
/// The channel interactions come from.
pub const CHANNEL: u64 = 1_100_000_000_000_000_001;
/// A mentionable role: anyone may have a reminder ping it.
pub const ROLE: u64 = 1_200_000_000_000_000_001;
/// A role that is not mentionable: only members with Mention Everyone may ping it.
pub const QUIET_ROLE: u64 = 1_200_000_000_000_000_002;
/// Grants Manage Messages server-wide.
pub const MODERATOR_ROLE: u64 = 1_200_000_000_000_000_003;
/// Grants Manage Server server-wide.
pub const ADMIN_ROLE: u64 = 1_200_000_000_000_000_004;
/// Grants Mention Everyone server-wide.
pub const PINGER_ROLE: u64 = 1_200_000_000_000_000_005;

/// Discord's epoch (2015-01-01) in Unix milliseconds: snowflakes count from it.
pub const DISCORD_EPOCH_MS: i64 = 1_420_070_400_000;

/// Permission bits as Discord sends them (decimal strings).
pub const MANAGE_GUILD: u64 = 1 << 5;
pub const MANAGE_MESSAGES: u64 = 1 << 13;
pub const ADMINISTRATOR: u64 = 1 << 3;
pub const VIEW_CHANNEL: u64 = 1 << 10;
pub const MENTION_EVERYONE: u64 = 1 << 17;
/// What an ordinary member may do: view channels, send messages, read history, use commands.
pub const MEMBER_PERMISSIONS: u64 = (1 << 10) | (1 << 11) | (1 << 16) | (1 << 31);
/// What the bot itself has in the test guild.
pub const BOT_PERMISSIONS: u64 = (1 << 10) | (1 << 11) | (1 << 14) | (1 << 15) | (1 << 16);

/// Discord's attachment limit in a server without boosts: 10 MiB.
pub const ATTACHMENT_SIZE_LIMIT: u64 = 10 * 1024 * 1024;

pub const TIMESTAMP: &str = "2026-01-01T00:00:00.000000+00:00";

pub fn user(id: u64) -> Value {
    json!({
        "id": id.to_string(),
        "username": format!("user{}", id % 1000),
        "discriminator": "0",
        "global_name": null,
        "avatar": null,
        "bot": id == APP,
        "public_flags": 0,
    })
}

/// The roles of every guild in the fake, besides @everyone: (id, permissions, mentionable).
pub const ROLES: [(u64, u64, bool); 5] = [
    (ROLE, 0, true),
    (QUIET_ROLE, 0, false),
    (MODERATOR_ROLE, MANAGE_MESSAGES, false),
    (ADMIN_ROLE, MANAGE_GUILD, false),
    (PINGER_ROLE, MENTION_EVERYONE, false),
];

/// A member as an interaction carries it: `permissions` are theirs in the channel.
pub fn member(id: u64, roles: &[u64], permissions: u64) -> Value {
    json!({
        "user": user(id),
        "nick": null,
        "roles": roles.iter().map(u64::to_string).collect::<Vec<_>>(),
        "joined_at": TIMESTAMP,
        "deaf": false,
        "mute": false,
        "flags": 0,
        "permissions": permissions.to_string(),
    })
}

pub fn hello() -> Value {
    json!({"op": 10, "d": {"heartbeat_interval": 41_250}})
}

pub fn heartbeat_ack() -> Value {
    json!({"op": 11})
}

pub fn dispatch(seq: u64, kind: &str, data: Value) -> Value {
    json!({"op": 0, "s": seq, "t": kind, "d": data})
}

pub fn ready(guilds: &[u64], ws_url: &str, shard: [u64; 2]) -> Value {
    json!({
        "v": 10,
        "user": user(APP),
        "guilds": guilds.iter().map(|g| json!({"id": g.to_string(), "unavailable": true})).collect::<Vec<_>>(),
        "session_id": "fake-session",
        "resume_gateway_url": ws_url,
        "shard": shard,
        "application": {"id": APP.to_string(), "flags": 0},
    })
}

fn role(id: u64, name: &str, permissions: u64, mentionable: bool) -> Value {
    json!({
        "id": id.to_string(),
        "name": name,
        "color": 0,
        "colors": {"primary_color": 0, "secondary_color": null, "tertiary_color": null},
        "hoist": false,
        "icon": null,
        "unicode_emoji": null,
        "position": 0,
        "permissions": permissions.to_string(),
        "managed": false,
        "mentionable": mentionable,
        "flags": 0,
    })
}

/// A guild with its @everyone role and `roles`: (id, permissions, mentionable).
pub fn guild(id: u64, roles: &[(u64, u64, bool)]) -> Value {
    let roles: Vec<Value> = std::iter::once(role(id, "@everyone", MEMBER_PERMISSIONS, false))
        .chain(roles.iter().map(|(r, permissions, mentionable)| {
            role(
                *r,
                &format!("role {}", r % 1000),
                *permissions,
                *mentionable,
            )
        }))
        .collect();
    json!({
        "id": id.to_string(),
        "name": format!("guild {}", id % 1000),
        "icon": null,
        "splash": null,
        "discovery_splash": null,
        "owner_id": "1",
        "afk_channel_id": null,
        "afk_timeout": 300,
        "verification_level": 0,
        "default_message_notifications": 0,
        "explicit_content_filter": 0,
        "roles": roles,
        "emojis": [],
        "features": [],
        "mfa_level": 0,
        "application_id": null,
        "system_channel_id": null,
        "system_channel_flags": 0,
        "rules_channel_id": null,
        "vanity_url_code": null,
        "description": null,
        "banner": null,
        "premium_tier": 0,
        "preferred_locale": "en-US",
        "public_updates_channel_id": null,
        "nsfw_level": 0,
        "premium_progress_bar_enabled": false,
        "stickers": [],
        "joined_at": TIMESTAMP,
        "large": false,
        "unavailable": false,
        "member_count": 3,
        "voice_states": [],
        "members": [],
        "channels": [{
            "id": CHANNEL.to_string(),
            "type": 0,
            "guild_id": id.to_string(),
            "name": "general",
            "position": 0,
            "permission_overwrites": [],
            "nsfw": false,
        }],
        "threads": [],
        "presences": [],
        "stage_instances": [],
        "guild_scheduled_events": [],
    })
}

pub fn guild_delete(id: u64, unavailable: bool) -> Value {
    if unavailable {
        json!({"id": id.to_string(), "unavailable": true})
    } else {
        json!({"id": id.to_string()})
    }
}

/// A message in a guild channel, as the REST API returns it and as interactions carry it.
pub fn message(id: u64, channel: u64, author: u64, content: &str) -> Value {
    json!({
        "id": id.to_string(),
        "channel_id": channel.to_string(),
        "author": user(author),
        "content": content,
        "timestamp": TIMESTAMP,
        "edited_timestamp": null,
        "tts": false,
        "mention_everyone": false,
        "mentions": [],
        "mention_roles": [],
        "attachments": [],
        "embeds": [],
        "pinned": false,
        "type": 0,
        "flags": 0,
        "components": [],
    })
}

pub fn dm_channel(id: u64, recipient: u64) -> Value {
    json!({"id": id.to_string(), "type": 1, "recipients": [user(recipient)], "last_message_id": null})
}

pub fn application_info() -> Value {
    json!({
        "id": APP.to_string(),
        "name": "guildkeep-test",
        "icon": null,
        "description": "",
        "bot_public": true,
        "bot_require_code_grant": false,
        "owner": user(1),
        "verify_key": "00",
        "flags": 0,
        "team": null,
    })
}

pub fn gateway_bot(ws_url: &str) -> Value {
    json!({
        "url": ws_url,
        "shards": 1,
        "session_start_limit": {"total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1},
    })
}

/// Who sends an interaction: the member (with their roles and channel permissions), and the
/// bot's own permissions in the channel.
#[derive(Debug, Clone)]
pub struct Invoker {
    pub member: Value,
    pub app_permissions: u64,
    /// The largest attachment Discord takes in this server, in bytes.
    pub attachment_size_limit: u64,
}

impl Invoker {
    /// An ordinary member with no roles, the bot with its usual permissions.
    pub fn plain(user: u64) -> Self {
        Self {
            member: member(user, &[], MEMBER_PERMISSIONS),
            app_permissions: BOT_PERMISSIONS,
            attachment_size_limit: ATTACHMENT_SIZE_LIMIT,
        }
    }
}

/// The common part of every interaction the fake sends.
fn interaction_base(id: u64, kind: u8, by: &Invoker) -> Value {
    json!({
        "id": id.to_string(),
        "application_id": APP.to_string(),
        "type": kind,
        "token": format!("token-{id}"),
        "version": 1,
        "guild_id": GUILD.to_string(),
        "channel_id": CHANNEL.to_string(),
        "channel": {"id": CHANNEL.to_string(), "type": 0, "name": "general", "permissions": MEMBER_PERMISSIONS.to_string()},
        "member": by.member,
        "app_permissions": by.app_permissions.to_string(),
        "locale": "en-US",
        "guild_locale": "en-US",
        "entitlements": [],
        "authorizing_integration_owners": {"0": GUILD.to_string()},
        "context": 0,
        "attachment_size_limit": by.attachment_size_limit,
    })
}

/// A slash command. `path` is e.g. `"quote add"` or `"admin data delete"`; `options` are the
/// leaf options (`{"name", "type", "value"}` objects).
pub fn slash(id: u64, by: &Invoker, path: &str, options: Value) -> Value {
    let mut base = interaction_base(id, 2, by);
    base["data"] = command_data(path, options);
    base
}

/// An autocomplete request: like [`slash`], with one option marked `focused`.
pub fn autocomplete(id: u64, by: &Invoker, path: &str, options: Value) -> Value {
    let mut base = interaction_base(id, 4, by);
    base["data"] = command_data(path, options);
    base
}

fn command_data(path: &str, options: Value) -> Value {
    let mut words: Vec<&str> = path.split(' ').collect();
    let mut options = options;
    // Nest from the innermost: the last word is a subcommand (1), one before it a group (2).
    while words.len() > 1 {
        let name = words.pop().expect("len > 1");
        let kind = if options
            .as_array()
            .is_some_and(|o| o.iter().any(|o| o["type"] == 1))
        {
            2
        } else {
            1
        };
        options = json!([{"name": name, "type": kind, "options": options}]);
    }
    json!({"id": "1300000000000000001", "name": words[0], "type": 1, "options": options})
}

/// The message context menu "Save as quote" on `target`.
pub fn message_command(id: u64, by: &Invoker, name: &str, target: &Value) -> Value {
    let mut base = interaction_base(id, 2, by);
    let target_id = target["id"].clone();
    base["data"] = json!({
        "id": "1300000000000000002",
        "name": name,
        "type": 3,
        "target_id": target_id,
        "resolved": {"messages": {target_id.as_str().expect("id is a string"): target}},
    });
    base
}

/// A button press on `message`.
pub fn button(id: u64, by: &Invoker, custom_id: &str, message: &Value) -> Value {
    let mut base = interaction_base(id, 3, by);
    base["data"] = json!({"custom_id": custom_id, "component_type": 2});
    base["message"] = message.clone();
    base
}

/// A button press on `message` in the DM channel `channel`: no guild, no member, only the user.
pub fn dm_button(id: u64, user_id: u64, channel: u64, custom_id: &str, message: &Value) -> Value {
    let mut base = interaction_base(id, 3, &Invoker::plain(user_id));
    let object = base.as_object_mut().expect("an object");
    for guild_only in ["guild_id", "member", "guild_locale"] {
        object.remove(guild_only);
    }
    base["user"] = user(user_id);
    base["channel_id"] = channel.to_string().into();
    base["channel"] = json!({"id": channel.to_string(), "type": 1});
    base["authorizing_integration_owners"] = json!({"0": GUILD.to_string()});
    base["context"] = 1.into();
    base["data"] = json!({"custom_id": custom_id, "component_type": 2});
    base["message"] = message.clone();
    base
}

/// One string/integer/number/boolean option.
pub fn option(name: &str, value: impl Into<Value>) -> Value {
    let value = value.into();
    let kind = match &value {
        Value::Bool(_) => 5,
        Value::Number(n) if n.is_i64() || n.is_u64() => 4,
        Value::Number(_) => 10,
        _ => 3,
    };
    json!({"name": name, "type": kind, "value": value})
}

#[cfg(test)]
mod tests {
    //! Serenity must be able to read everything the fake sends.
    use super::*;
    use serenity::model::{
        application::{CommandInteraction, ComponentInteraction, Interaction},
        channel::{Message, PrivateChannel},
        event::{Event, GatewayEvent},
        gateway::BotGateway,
        guild::Guild,
        prelude::CurrentApplicationInfo,
    };

    fn gateway(payload: Value) -> GatewayEvent {
        let text = payload.to_string();
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    fn read<T: serde::de::DeserializeOwned>(value: &Value) -> T {
        serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("{e}: {value}"))
    }

    #[test]
    fn serenity_reads_every_gateway_payload() {
        assert!(matches!(gateway(hello()), GatewayEvent::Hello(_)));
        assert!(matches!(
            gateway(heartbeat_ack()),
            GatewayEvent::HeartbeatAck
        ));
        let events = [
            dispatch(1, "READY", ready(&[GUILD], "ws://127.0.0.1:1", [1, 4])),
            dispatch(2, "GUILD_CREATE", guild(GUILD, &ROLES)),
            dispatch(3, "GUILD_DELETE", guild_delete(GUILD, true)),
            dispatch(4, "GUILD_DELETE", guild_delete(GUILD, false)),
            dispatch(
                5,
                "INTERACTION_CREATE",
                slash(
                    7,
                    &Invoker::plain(8),
                    "quote add",
                    json!([option("text", "hi")]),
                ),
            ),
            dispatch(
                6,
                "INTERACTION_CREATE",
                slash(7, &Invoker::plain(8), "admin data delete", json!([])),
            ),
            dispatch(
                7,
                "INTERACTION_CREATE",
                autocomplete(
                    7,
                    &Invoker::plain(8),
                    "quote get",
                    json!([{"name": "id", "type": 4, "value": "1", "focused": true}]),
                ),
            ),
            dispatch(
                8,
                "INTERACTION_CREATE",
                message_command(
                    7,
                    &Invoker::plain(8),
                    "Save as quote",
                    &message(9, CHANNEL, 10, "hi"),
                ),
            ),
            dispatch(
                9,
                "INTERACTION_CREATE",
                button(7, &Invoker::plain(8), "x", &message(9, CHANNEL, APP, "hi")),
            ),
        ];
        for event in events {
            match gateway(event.clone()) {
                GatewayEvent::Dispatch(_, Event::Unknown(u)) => panic!("unknown event: {u:?}"),
                GatewayEvent::Dispatch(..) => {}
                other => panic!("not a dispatch: {other:?}"),
            }
        }
    }

    #[test]
    fn serenity_reads_every_rest_and_model_payload() {
        let _: Guild = read(&guild(GUILD, &ROLES));
        let _: Message = read(&message(1, CHANNEL, 2, "text"));
        let _: PrivateChannel = read(&dm_channel(3, 4));
        let _: CurrentApplicationInfo = read(&application_info());
        let _: BotGateway = read(&gateway_bot("ws://127.0.0.1:1"));
        let _: CommandInteraction = read(&slash(
            1,
            &Invoker::plain(2),
            "quote get",
            json!([option("id", 1)]),
        ));
        let _: ComponentInteraction = read(&button(
            1,
            &Invoker::plain(2),
            "x",
            &message(3, CHANNEL, APP, "hi"),
        ));
        let in_dm: ComponentInteraction = read(&dm_button(1, 2, 9, "x", &message(3, 9, APP, "hi")));
        assert_eq!((in_dm.guild_id, in_dm.user.id.get()), (None, 2));
        let autocompleted: Interaction = read(&autocomplete(
            1,
            &Invoker::plain(2),
            "quote get",
            json!([{"name": "id", "type": 4, "value": "1", "focused": true}]),
        ));
        assert!(matches!(autocompleted, Interaction::Autocomplete(_)));
    }
}
