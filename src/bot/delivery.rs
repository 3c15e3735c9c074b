//! Sends reminders through Discord for the scheduler ([`Deliver`]): a DM to the member, or a
//! post in a channel that pings exactly its target users and roles. Discord's answer decides
//! whether the scheduler retries: 5xx, 429 and network failures are transient; any other
//! refusal (403 missing access or DMs closed, 404 unknown channel) is permanent.
//!
//! Not here: when to send, claiming and recording (`crate::reminders`).

use std::sync::Arc;

use poise::serenity_prelude as serenity;

use crate::reminders::{Deliver, Delivery, DeliveryError, DeliveryFuture, DeliveryTarget};

pub struct DiscordDelivery {
    http: Arc<serenity::Http>,
}

impl DiscordDelivery {
    pub fn new(http: Arc<serenity::Http>) -> Self {
        Self { http }
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
        match delivery.target {
            DeliveryTarget::Dm { user } => {
                let channel = serenity::UserId::new(user)
                    .create_dm_channel(&self.http)
                    .await?;
                let message = serenity::CreateMessage::new()
                    .content(format!("⏰ Reminder: {}{late}", delivery.message))
                    .allowed_mentions(serenity::CreateAllowedMentions::new());
                channel.send_message(&self.http, message).await?;
            }
            DeliveryTarget::Channel {
                channel,
                users,
                roles,
            } => {
                let mentions: String = users
                    .iter()
                    .map(|u| format!("<@{u}> "))
                    .chain(roles.iter().map(|r| format!("<@&{r}> ")))
                    .collect();
                let pings = serenity::CreateAllowedMentions::new()
                    .users(users.iter().copied().map(serenity::UserId::new))
                    .roles(roles.iter().copied().map(serenity::RoleId::new));
                let message = serenity::CreateMessage::new()
                    .content(format!("⏰ {mentions}{}{late}", delivery.message))
                    .allowed_mentions(pings);
                serenity::ChannelId::new(channel)
                    .send_message(&self.http, message)
                    .await?;
            }
        }
        Ok(())
    }
}

impl Deliver for DiscordDelivery {
    fn deliver(&self, delivery: Delivery) -> DeliveryFuture<'_> {
        Box::pin(async move { self.send(delivery).await.map_err(classify) })
    }
}

/// Transient (worth retrying) or permanent, from Discord's answer.
fn classify(error: serenity::Error) -> DeliveryError {
    use serenity::{Error, HttpError};
    match &error {
        Error::Http(HttpError::UnsuccessfulRequest(response)) => classify_status(
            response.status_code.as_u16(),
            format!(
                "Discord answered {}: {}",
                response.status_code, response.error.message
            ),
        ),
        Error::Http(HttpError::Request(_)) | Error::Io(_) => {
            DeliveryError::Transient(error.to_string())
        }
        _ => DeliveryError::Permanent(error.to_string()),
    }
}

/// 5xx and 429 pass; any other refusal (403 missing access or DMs closed, 404 unknown
/// channel, 400 bad request) will not change by retrying.
fn classify_status(status: u16, text: String) -> DeliveryError {
    if status >= 500 || status == 429 {
        DeliveryError::Transient(text)
    } else {
        DeliveryError::Permanent(text)
    }
}

#[cfg(test)]
mod tests {
    use super::{classify_status, DeliveryError};

    #[test]
    fn server_errors_and_rate_limits_are_retried_refusals_are_not() {
        for status in [500, 502, 503, 429] {
            assert!(
                matches!(
                    classify_status(status, String::new()),
                    DeliveryError::Transient(_)
                ),
                "{status}"
            );
        }
        for status in [400, 403, 404] {
            assert!(
                matches!(
                    classify_status(status, String::new()),
                    DeliveryError::Permanent(_)
                ),
                "{status}"
            );
        }
    }
}
