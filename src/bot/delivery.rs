//! Sends reminders through Discord for the scheduler ([`Deliver`]): a DM to the member, or a
//! post in a channel that pings exactly its target users and roles. Discord's answer becomes
//! a [`DeliveryError`] by its JSON error code first, then its status: 10003 unknown channel and
//! 10013 unknown user are permanent; 50001 missing access, 50013 missing permissions and 50007
//! cannot DM are refusals a member or an admin can fix; 401 is the bot's token refused; 5xx,
//! 429 and network failures are transient; any other refusal (e.g. 400, the message itself)
//! will not change by retrying. The reasons are written for the member who set the reminder.
//! Every send is counted for the operator by outcome and by Discord's answer, its error code
//! kept only when it is one of the few above (`guildkeep_reminder_deliveries_total`).
//!
//! Every reminder carries the snooze and done buttons (`bot/snooze.rs`): a DM on its one
//! message, a channel reminder on its last post, the one with the text.
//!
//! Every post fits Discord's limits (2000 characters, 100 user and 100 role pings): imported
//! reminders may hold longer messages or more targets, so the mentions are spread over as many
//! posts as they need and the text is cut to fit one.
//!
//! Not here: when to send, claiming and recording (`crate::reminders`).

use std::sync::Arc;

use poise::serenity_prelude as serenity;

use super::{
    reply::{shorten, MAX_CONTENT},
    snooze,
};
use crate::{
    observe::ReminderSends,
    reminders::{Deliver, Delivery, DeliveryError, DeliveryFuture, DeliveryTarget},
};

/// Discord's cap on each of `allowed_mentions.users` and `.roles`.
const MAX_PINGS: usize = 100;

/// One channel post: its text and whom it pings.
#[derive(Debug, Default, PartialEq)]
struct Post {
    content: String,
    users: Vec<u64>,
    roles: Vec<u64>,
}

/// The posts of one channel reminder: "⏰", the mentions, then `text`, in as few posts as fit
/// Discord's limits; `text` is cut to fit one post.
fn channel_posts(users: &[u64], roles: &[u64], text: &str) -> Vec<Post> {
    let mut posts = vec![Post {
        content: "⏰ ".into(),
        ..Post::default()
    }];
    let mentions = users
        .iter()
        .map(|u| (format!("<@{u}> "), Some(*u), None))
        .chain(roles.iter().map(|r| (format!("<@&{r}> "), None, Some(*r))));
    for (mention, user, role) in mentions {
        let last = posts.last().expect("never empty");
        let full = last.content.chars().count() + mention.chars().count() > MAX_CONTENT
            || (user.is_some() && last.users.len() == MAX_PINGS)
            || (role.is_some() && last.roles.len() == MAX_PINGS);
        if full {
            posts.push(Post::default());
        }
        let post = posts.last_mut().expect("never empty");
        post.content.push_str(&mention);
        post.users.extend(user);
        post.roles.extend(role);
    }
    let last = posts.last_mut().expect("never empty");
    if last.content.chars().count() + text.chars().count() <= MAX_CONTENT {
        last.content.push_str(text);
    } else {
        posts.push(Post {
            content: shorten(text, MAX_CONTENT),
            ..Post::default()
        });
    }
    posts
}

pub struct DiscordDelivery {
    http: Arc<serenity::Http>,
    sends: ReminderSends,
}

/// Counts a send dropped before Discord answered it (the scheduler's timeout, or a shutdown
/// that could not wait) unless [`Unanswered::answered`] came first.
struct Unanswered<'a> {
    sends: &'a ReminderSends,
    answered: bool,
}

impl Unanswered<'_> {
    fn answered(mut self, outcome: &Result<(), DeliveryError>, code: &'static str) {
        self.answered = true;
        self.sends.answered(outcome, code);
    }
}

impl Drop for Unanswered<'_> {
    fn drop(&mut self) {
        if !self.answered {
            self.sends.unanswered();
        }
    }
}

impl DiscordDelivery {
    pub fn new(http: Arc<serenity::Http>, sends: ReminderSends) -> Self {
        Self { http, sends }
    }

    async fn send(&self, delivery: Delivery) -> Result<(), serenity::Error> {
        let late = if delivery.late {
            format!(
                "\n-# This was due <t:{}:F>; it is late because the bot was offline.",
                delivery.due_at.timestamp()
            )
        } else {
            String::new()
        };
        let buttons = snooze::row(delivery.guild, delivery.reminder, delivery.due_at);
        match delivery.target {
            DeliveryTarget::Dm { user } => {
                let channel = serenity::UserId::new(user)
                    .create_dm_channel(&self.http)
                    .await?;
                let room = MAX_CONTENT - "⏰ Reminder: ".chars().count() - late.chars().count();
                let text = shorten(&delivery.message, room);
                let message = serenity::CreateMessage::new()
                    .content(format!("⏰ Reminder: {text}{late}"))
                    .allowed_mentions(serenity::CreateAllowedMentions::new())
                    .components(vec![buttons]);
                channel.send_message(&self.http, message).await?;
            }
            DeliveryTarget::Channel {
                channel,
                users,
                roles,
            } => {
                let room = MAX_CONTENT - late.chars().count();
                let text = format!("{}{late}", shorten(&delivery.message, room));
                let posts = channel_posts(&users, &roles, &text);
                let last = posts.len() - 1;
                for (n, post) in posts.into_iter().enumerate() {
                    let pings = serenity::CreateAllowedMentions::new()
                        .users(post.users.into_iter().map(serenity::UserId::new))
                        .roles(post.roles.into_iter().map(serenity::RoleId::new));
                    let mut message = serenity::CreateMessage::new()
                        .content(post.content)
                        .allowed_mentions(pings);
                    // On the post with the text: the one a member answers.
                    if n == last {
                        message = message.components(vec![buttons.clone()]);
                    }
                    serenity::ChannelId::new(channel)
                        .send_message(&self.http, message)
                        .await?;
                }
            }
        }
        Ok(())
    }
}

impl Deliver for DiscordDelivery {
    fn deliver(&self, delivery: Delivery) -> DeliveryFuture<'_> {
        Box::pin(async move {
            let pending = Unanswered {
                sends: &self.sends,
                answered: false,
            };
            let (outcome, code) = match self.send(delivery).await {
                Ok(()) => (Ok(()), "none"),
                Err(e) => {
                    let (error, code) = classify(e);
                    (Err(error), code)
                }
            };
            pending.answered(&outcome, code);
            outcome
        })
    }

    fn notify(&self, user: u64, text: String) -> DeliveryFuture<'_> {
        Box::pin(async move {
            let sent = async {
                let channel = serenity::UserId::new(user)
                    .create_dm_channel(&self.http)
                    .await?;
                let message = serenity::CreateMessage::new()
                    .content(shorten(&text, MAX_CONTENT))
                    .allowed_mentions(serenity::CreateAllowedMentions::new());
                channel.send_message(&self.http, message).await
            };
            sent.await.map(drop).map_err(|e| classify(e).0)
        })
    }
}

/// What Discord's answer means for the reminder, and the answer's name in the metrics.
fn classify(error: serenity::Error) -> (DeliveryError, &'static str) {
    use serenity::{Error, HttpError};
    match &error {
        Error::Http(HttpError::UnsuccessfulRequest(response)) => {
            let (status, code) = (response.status_code.as_u16(), response.error.code);
            (
                classify_answer(status, code, &response.error.message),
                answer_label(status, code),
            )
        }
        Error::Http(HttpError::Request(_)) | Error::Io(_) => {
            (DeliveryError::Transient(error.to_string()), "network")
        }
        _ => (DeliveryError::Permanent(error.to_string()), "other"),
    }
}

/// The answers of Discord the scheduler tells apart: its JSON error `code` decides (0 when the
/// body was not Discord's JSON, as for a 401 or a proxy's 502 page), then the HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    TokenRefused,
    UnknownChannel,
    UnknownUser,
    MissingAccess,
    CannotDm,
    MissingPermissions,
    RateLimited,
    ServerError,
    Other,
}

impl Answer {
    fn of(status: u16, code: isize) -> Self {
        match (status, code) {
            (401, _) => Self::TokenRefused,
            (_, 10003) => Self::UnknownChannel,
            (_, 10013) => Self::UnknownUser,
            (_, 50001) => Self::MissingAccess,
            (_, 50007) => Self::CannotDm,
            (_, 50013) => Self::MissingPermissions,
            (429, _) => Self::RateLimited,
            (500.., _) => Self::ServerError,
            _ => Self::Other,
        }
    }
}

/// Discord's refusal as a metrics label: the answers [`Answer`] tells apart, a fixed few,
/// whatever Discord sends.
fn answer_label(status: u16, code: isize) -> &'static str {
    match Answer::of(status, code) {
        Answer::TokenRefused => "401",
        Answer::UnknownChannel => "10003",
        Answer::UnknownUser => "10013",
        Answer::MissingAccess => "50001",
        Answer::CannotDm => "50007",
        Answer::MissingPermissions => "50013",
        Answer::RateLimited => "429",
        Answer::ServerError => "5xx",
        Answer::Other => "other",
    }
}

/// What Discord's answer means for the reminder, in words for the member who set it.
fn classify_answer(status: u16, code: isize, message: &str) -> DeliveryError {
    use DeliveryError::{Permanent, Refused, Transient, Unauthorized};
    match Answer::of(status, code) {
        Answer::TokenRefused => Unauthorized,
        Answer::UnknownChannel => Permanent(
            "the channel it was to be posted in no longer exists. Set it again in another \
             channel."
                .into(),
        ),
        Answer::UnknownUser => {
            Permanent("the member it was for no longer has a Discord account.".into())
        }
        Answer::CannotDm => Refused(
            "Discord would not let me DM you: your DMs are closed to me. Allow direct messages \
             from this server's members (Privacy Settings), or set the reminder in a channel."
                .into(),
        ),
        Answer::MissingAccess => Refused(
            "I can't see the channel it was to be posted in. Ask an admin to give me View \
             Channel and Send Messages there."
                .into(),
        ),
        Answer::MissingPermissions => Refused(
            "I'm missing a permission to post in its channel. Ask an admin to give me Send \
             Messages there (and Mention All Roles, if it pings roles)."
                .into(),
        ),
        Answer::RateLimited | Answer::ServerError => {
            Transient(format!("Discord answered {status}: {message}"))
        }
        Answer::Other => Permanent(format!(
            "Discord refused it ({status}, code {code}: {message})."
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::{
        answer_label, channel_posts, classify_answer, DeliveryError, Post, MAX_CONTENT, MAX_PINGS,
    };

    #[test]
    fn a_small_reminder_is_one_post_pinging_its_targets() {
        assert_eq!(
            channel_posts(&[1], &[2], "standup"),
            [Post {
                content: "⏰ <@1> <@&2> standup".into(),
                users: vec![1],
                roles: vec![2],
            }]
        );
    }

    #[test]
    fn many_targets_and_a_long_text_are_spread_over_posts_within_the_limits() {
        let users: Vec<u64> = (1..=250).map(|n| 100_000_000_000_000_000 + n).collect();
        let roles: Vec<u64> = (1..=120).map(|n| 200_000_000_000_000_000 + n).collect();
        let posts = channel_posts(&users, &roles, &"x".repeat(4000));
        for post in &posts {
            assert!(post.content.chars().count() <= MAX_CONTENT);
            assert!(post.users.len() <= MAX_PINGS && post.roles.len() <= MAX_PINGS);
        }
        let pinged: Vec<u64> = posts.iter().flat_map(|p| p.users.clone()).collect();
        assert_eq!(pinged, users, "everyone pinged once");
        let roles_pinged: Vec<u64> = posts.iter().flat_map(|p| p.roles.clone()).collect();
        assert_eq!(roles_pinged, roles);
        assert!(posts.last().unwrap().content.starts_with("xxx"));
    }

    #[test]
    fn discord_error_codes_decide_before_statuses() {
        use DeliveryError::{Permanent, Refused, Transient, Unauthorized};
        let kind = |status, code| match classify_answer(status, code, "") {
            Transient(_) => "transient",
            Refused(_) => "refused",
            Permanent(_) => "permanent",
            Unauthorized => "unauthorized",
        };
        let table = [
            (404, 10003, "permanent"),
            (404, 10013, "permanent"),
            (403, 50007, "refused"),
            (403, 50001, "refused"),
            (403, 50013, "refused"),
            (401, 0, "unauthorized"),
            (429, 0, "transient"),
            (500, 0, "transient"),
            (502, 0, "transient"),
            (503, 0, "transient"),
            (400, 50035, "permanent"),
            (404, 10008, "permanent"),
        ];
        for (status, code, expected) in table {
            assert_eq!(kind(status, code), expected, "{status} / {code}");
        }
    }

    #[test]
    fn the_metrics_name_discord_answers_from_a_fixed_few() {
        let table = [
            (404, 10003, "10003"),
            (404, 10013, "10013"),
            (403, 50001, "50001"),
            (403, 50007, "50007"),
            (403, 50013, "50013"),
            (401, 0, "401"),
            (429, 0, "429"),
            (502, 0, "5xx"),
            (503, 0, "5xx"),
            (400, 50035, "other"),
            (404, 10008, "other"),
            (403, 123_456_789, "other"),
        ];
        for (status, code, expected) in table {
            assert_eq!(answer_label(status, code), expected, "{status} / {code}");
        }
    }

    #[test]
    fn refusals_say_in_plain_words_what_to_do() {
        for (code, hint) in [
            (50007, "Allow direct messages"),
            (50013, "Send Messages"),
            (50001, "View Channel"),
        ] {
            let reason = classify_answer(403, code, "Missing Permissions").to_string();
            assert!(reason.contains(hint), "{code}: {reason}");
            assert!(
                !reason.contains("403"),
                "no status codes for members: {reason}"
            );
        }
    }
}
