//! Buttons that belong to one invocation: a confirmation for destructive commands and a pager
//! for lists. Their custom ids start with the interaction id, only the invoker may press them,
//! and they stop working (and are removed) after `Data::button_timeout`.
//!
//! A press is acknowledged at once (a deferred update, no loading state) and the message is
//! edited through the press's own token once the work is done: the work may take longer than
//! the 3 s Discord gives the first response.
//!
//! Every press reaches both the collectors and the event handler. [`LiveButtons`] knows which
//! invocations still collect presses; the event handler answers every other press (a button
//! left from before a restart, or after its timeout) with a short "expired" instead of
//! letting Discord show "This interaction failed".
//!
//! Not here: what is confirmed or paged (commands), and the buttons on delivered reminders,
//! which belong to no invocation and work for as long as their message is there
//! (`bot/snooze.rs`).

use std::{collections::HashSet, sync::Mutex};

use poise::{serenity_prelude as serenity, CreateReply};

use super::{reply, Context, Data, Error};

/// The invocations whose buttons are being collected right now, by interaction id (the prefix
/// of their custom ids).
#[derive(Debug, Default)]
pub struct LiveButtons(Mutex<HashSet<u64>>);

impl LiveButtons {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<u64>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Marks `ctx`'s buttons live until the returned guard drops.
    fn hold<'a>(&'a self, ctx: Context<'_>) -> Live<'a> {
        let id = ctx.id();
        self.lock().insert(id);
        Live(self, id)
    }

    fn is_live(&self, custom_id: &str) -> bool {
        custom_id
            .split_once(':')
            .and_then(|(id, _)| id.parse().ok())
            .is_some_and(|id| self.lock().contains(&id))
    }
}

/// Keeps one invocation's buttons live.
struct Live<'a>(&'a LiveButtons, u64);

impl Drop for Live<'_> {
    fn drop(&mut self) {
        self.0.lock().remove(&self.1);
    }
}

/// Answers a press that no running invocation collects: its buttons have expired.
pub async fn answer_if_expired(
    ctx: &serenity::Context,
    data: &Data,
    press: &serenity::ComponentInteraction,
) -> Result<(), Error> {
    if data.live_buttons.is_live(&press.data.custom_id) {
        return Ok(());
    }
    refuse(
        ctx,
        press,
        "These buttons have expired. Run the command again.",
    )
    .await
}

/// Answers a press with a short message only the presser sees, changing nothing else.
pub async fn refuse(
    http: impl serenity::CacheHttp,
    press: &serenity::ComponentInteraction,
    text: &str,
) -> Result<(), Error> {
    let refusal = serenity::CreateInteractionResponseMessage::new()
        .content(text)
        .ephemeral(true)
        .allowed_mentions(reply::no_pings());
    press
        .create_response(http, serenity::CreateInteractionResponse::Message(refusal))
        .await?;
    Ok(())
}

/// The buttons of a confirmation, as they appear on the message.
fn confirm_row(ctx: Context<'_>, confirm_label: &str) -> serenity::CreateActionRow {
    serenity::CreateActionRow::Buttons(vec![
        serenity::CreateButton::new(format!("{}:confirm", ctx.id()))
            .label(confirm_label)
            .style(serenity::ButtonStyle::Danger),
        serenity::CreateButton::new(format!("{}:cancel", ctx.id()))
            .label("Cancel")
            .style(serenity::ButtonStyle::Secondary),
    ])
}

/// Asks the invoker to confirm (ephemerally) with `prompt`. Returns the press of the confirm
/// button, acknowledged, for the caller to [`update`] with the outcome; `None` when the
/// invoker cancelled or let the buttons expire (both already answered here).
pub async fn confirm(
    ctx: Context<'_>,
    prompt: serenity::CreateEmbed,
    confirm_label: &str,
) -> Result<Option<serenity::ComponentInteraction>, Error> {
    let _live = ctx.data().live_buttons.hold(ctx);
    let handle = reply::private(
        ctx,
        reply::quiet_reply()
            .embed(prompt)
            .components(vec![confirm_row(ctx, confirm_label)]),
    )
    .await?;
    let prefix = format!("{}:", ctx.id());
    let press = serenity::ComponentInteractionCollector::new(ctx)
        .author_id(ctx.author().id)
        .filter(move |press| press.data.custom_id.starts_with(&prefix))
        .timeout(ctx.data().button_timeout)
        .await;
    if let Some(press) = &press {
        press.defer(ctx).await?;
    }
    match press {
        Some(press) if press.data.custom_id.ends_with(":confirm") => Ok(Some(press)),
        Some(press) => {
            update(ctx, &press, "Cancelled. Nothing was changed.").await?;
            Ok(None)
        }
        None => {
            handle
                .edit(
                    ctx,
                    CreateReply::default()
                        .content("This confirmation expired. Nothing was changed.")
                        .components(vec![]),
                )
                .await?;
            Ok(None)
        }
    }
}

/// Answers an acknowledged button press by replacing the message's text and removing its
/// buttons.
pub async fn update(
    http: impl serenity::CacheHttp,
    press: &serenity::ComponentInteraction,
    text: impl Into<String>,
) -> Result<(), Error> {
    let message = serenity::EditInteractionResponse::new()
        .content(text)
        .embeds(vec![])
        .components(vec![])
        .allowed_mentions(reply::no_pings());
    press.edit_response(http, message).await?;
    Ok(())
}

/// One page of a list: its embed and where the Previous/Next buttons lead (`None`: disabled).
pub struct Page<C> {
    pub embed: serenity::CreateEmbed,
    pub previous: Option<C>,
    pub next: Option<C>,
}

/// Shows page after page, starting at `first`: `render(cursor)` builds a page. Previous/Next
/// move between pages; presses by anyone but the invoker get a short ephemeral refusal; after
/// the timeout the buttons are removed.
pub async fn pages<C, F, Fut>(ctx: Context<'_>, first: C, mut render: F) -> Result<(), Error>
where
    C: Copy + Send,
    F: FnMut(C) -> Fut,
    Fut: std::future::Future<Output = Result<Page<C>, Error>>,
{
    let (prev_id, next_id) = (format!("{}:prev", ctx.id()), format!("{}:next", ctx.id()));
    let row = |page: &Page<C>| {
        serenity::CreateActionRow::Buttons(vec![
            serenity::CreateButton::new(&prev_id)
                .label("Previous")
                .style(serenity::ButtonStyle::Secondary)
                .disabled(page.previous.is_none()),
            serenity::CreateButton::new(&next_id)
                .label("Next")
                .style(serenity::ButtonStyle::Secondary)
                .disabled(page.next.is_none()),
        ])
    };
    let mut page = render(first).await?;
    if page.previous.is_none() && page.next.is_none() {
        return reply::embed(ctx, page.embed).await;
    }
    let _live = ctx.data().live_buttons.hold(ctx);
    let handle = reply::public(
        ctx,
        reply::quiet_reply()
            .embed(page.embed.clone())
            .components(vec![row(&page)]),
    )
    .await?;
    let prefix = format!("{}:", ctx.id());
    let mut last_press = None;
    loop {
        let prefix = prefix.clone();
        let press = serenity::ComponentInteractionCollector::new(ctx)
            .filter(move |press| press.data.custom_id.starts_with(&prefix))
            .timeout(ctx.data().button_timeout)
            .await;
        let Some(press) = press else { break };
        if press.user.id != ctx.author().id {
            refuse(
                ctx,
                &press,
                "Only the member who ran this command can turn its pages.",
            )
            .await?;
            continue;
        }
        press.defer(ctx).await?;
        let target = if press.data.custom_id == next_id {
            page.next
        } else {
            page.previous
        };
        if let Some(target) = target {
            page = render(target).await?;
        }
        let message = serenity::EditInteractionResponse::new()
            .embed(page.embed.clone())
            .components(vec![row(&page)])
            .allowed_mentions(reply::no_pings());
        press.edit_response(ctx, message).await?;
        last_press = Some(press);
    }
    // Editing replaces the embeds too, so the last page shown is sent again. The freshest
    // token is the last press's: the command's own dies 15 minutes after the command, and
    // pages may be turned for longer.
    match last_press {
        Some(press) => {
            let message = serenity::EditInteractionResponse::new()
                .embed(page.embed)
                .components(vec![]);
            press.edit_response(ctx, message).await?;
        }
        None => {
            handle
                .edit(
                    ctx,
                    CreateReply::default().embed(page.embed).components(vec![]),
                )
                .await?;
        }
    }
    Ok(())
}
