//! `/quote` and its verbs, and the "Save as quote" message context menu. Each handler: Discord
//! input -> plain values, one domain call in the guild's database, one reply. Rules and SQL
//! live in `crate::quotes`, never here. Quotes are shown as embeds and never ping anyone.

use chrono::Utc;
use poise::serenity_prelude as serenity;

use super::{parse_id, suggestions};
use crate::{
    bot::{self, buttons, reply, Context, Error, OrUserError},
    quotes::{self, NewQuote, PageAt, Quote, QuoteEdit, QuoteSource},
};

/// Quotes on one page of `/quote list`, and results of `/quote search`.
const PAGE_SIZE: u32 = 10;
/// Characters of a quote shown in a list line.
const LINE_CHARS: usize = 90;

/// Save, find and rate this server's quotes.
#[poise::command(
    slash_command,
    guild_only,
    subcommands(
        "add", "random", "get", "search", "list", "edit", "delete", "rate", "tag", "stats", "today"
    )
)]
pub async fn quote(_ctx: Context<'_>) -> Result<(), Error> {
    Ok(())
}

/// Save a quote.
#[poise::command(slash_command, guild_only, user_cooldown = 3)]
pub async fn add(
    ctx: Context<'_>,
    #[description = "What was said"]
    #[max_length = 2000]
    text: String,
    #[description = "Who said it (default: Anonymous)"]
    #[max_length = 100]
    author: Option<String>,
    #[description = "Tags, separated by commas"] tags: Option<String>,
) -> Result<(), Error> {
    let guild = bot::guild_of(ctx)?;
    let new = NewQuote {
        text,
        author_name: author,
        added_by: ctx.author().id.get(),
        tags: split_tags(tags.as_deref()),
        ..NewQuote::default()
    };
    save(ctx, guild, new).await
}

/// Save this message as a quote.
#[poise::command(context_menu_command = "Save as quote", guild_only, user_cooldown = 3)]
pub async fn save_as_quote(ctx: Context<'_>, message: serenity::Message) -> Result<(), Error> {
    let guild = bot::guild_of(ctx)?;
    if message.content.trim().is_empty() {
        return Err(bot::UserError("That message has no text to save.".into()).into());
    }
    let author = &message.author;
    let new = NewQuote {
        text: message.content.clone(),
        author_name: Some(
            author
                .global_name
                .clone()
                .unwrap_or_else(|| author.name.clone()),
        ),
        author_id: Some(author.id.get()),
        added_by: ctx.author().id.get(),
        source: Some(QuoteSource {
            channel_id: message.channel_id.get(),
            message_id: message.id.get(),
        }),
        tags: vec![],
    };
    save(ctx, guild, new).await
}

/// Saves `new` in `guild` and shows it: the end of both ways to add a quote.
async fn save(ctx: Context<'_>, guild: u64, new: NewQuote) -> Result<(), Error> {
    let saved = ctx
        .data()
        .store
        .with_guild(guild, move |c| quotes::add(c, &new, Utc::now()))
        .await?
        .map_err(bot::domain)?;
    reply::embed(
        ctx,
        embed(&saved).title(format!("Saved quote #{}", saved.id)),
    )
    .await
}

/// Show a random quote, optionally one with a given tag.
#[poise::command(slash_command, guild_only)]
pub async fn random(
    ctx: Context<'_>,
    #[description = "Only quotes with this tag"]
    #[autocomplete = "complete_tag"]
    tag: Option<String>,
) -> Result<(), Error> {
    let guild = bot::guild_of(ctx)?;
    let found = ctx
        .data()
        .store
        .with_guild(guild, move |c| {
            quotes::random(c, tag.as_deref(), &mut rand::rng())
        })
        .await?
        .map_err(bot::domain)?;
    let quote = found.or_user("No quote matches. Save one with /quote add.")?;
    reply::embed(ctx, embed(&quote)).await
}

/// Show one quote by its number.
#[poise::command(slash_command, guild_only)]
pub async fn get(
    ctx: Context<'_>,
    #[description = "Quote number, or words from it to search"]
    #[autocomplete = "complete_quote"]
    #[max_length = 100]
    id: String,
) -> Result<(), Error> {
    let guild = bot::guild_of(ctx)?;
    let id: i64 = parse_id(&id, "quote")?;
    let found = ctx
        .data()
        .store
        .with_guild(guild, move |c| quotes::get(c, id))
        .await?
        .map_err(bot::domain)?;
    let quote = found.or_user(format!("There is no quote #{id} in this server."))?;
    reply::embed(ctx, embed(&quote)).await
}

/// Find quotes by words in their text or author.
#[poise::command(slash_command, guild_only)]
pub async fn search(
    ctx: Context<'_>,
    #[description = "Words to look for"]
    #[max_length = 200]
    query: String,
) -> Result<(), Error> {
    let guild = bot::guild_of(ctx)?;
    if !ctx.data().searches.admit(ctx.author().id.get()) {
        return Err(
            bot::UserError("You are searching very fast; try again in a moment.".into()).into(),
        );
    }
    let found = ctx
        .data()
        .store
        .with_guild(guild, move |c| quotes::search(c, &query, PAGE_SIZE))
        .await?
        .map_err(bot::domain)?;
    if found.is_empty() {
        return reply::ephemeral(ctx, "No quote matches those words.").await;
    }
    reply::embed(ctx, list_embed("Search results", &found)).await
}

/// Page through all quotes.
#[poise::command(slash_command, guild_only)]
pub async fn list(ctx: Context<'_>) -> Result<(), Error> {
    let guild = bot::guild_of(ctx)?;
    let store = ctx.data().store.clone();
    buttons::pages(ctx, PageAt::First, move |at| {
        let store = store.clone();
        async move {
            let page = store
                .with_guild(guild, move |c| quotes::list(c, at, PAGE_SIZE))
                .await?
                .map_err(bot::domain)?;
            let title = format!("Quotes ({} in this server)", page.total);
            let embed = if page.quotes.is_empty() {
                serenity::CreateEmbed::new()
                    .title(title)
                    .description("No quotes yet. Save one with /quote add.")
            } else {
                list_embed(&title, &page.quotes)
            };
            let first = page.quotes.first().map(|q| q.id);
            let last = page.quotes.last().map(|q| q.id);
            Ok(buttons::Page {
                embed,
                previous: first.filter(|_| page.has_previous).map(PageAt::Before),
                next: last.filter(|_| page.has_more).map(PageAt::After),
            })
        }
    })
    .await
}

/// Change a quote's text or author (its saver or a moderator).
#[poise::command(slash_command, guild_only, user_cooldown = 3)]
pub async fn edit(
    ctx: Context<'_>,
    #[description = "Quote number, or words from it to search"]
    #[autocomplete = "complete_quote"]
    #[max_length = 100]
    id: String,
    #[description = "The new text"]
    #[max_length = 2000]
    text: Option<String>,
    #[description = "The new author"]
    #[max_length = 100]
    author: Option<String>,
) -> Result<(), Error> {
    let guild = bot::guild_of(ctx)?;
    let id: i64 = parse_id(&id, "quote")?;
    let (caller, moderator) = (ctx.author().id.get(), bot::is_moderator(ctx).await?);
    let change = QuoteEdit {
        text,
        author_name: author,
    };
    let edited = ctx
        .data()
        .store
        .with_guild(guild, move |c| {
            quotes::edit(c, id, caller, moderator, &change, Utc::now())
        })
        .await?
        .map_err(bot::domain)?;
    reply::embed(ctx, embed(&edited).title(format!("Edited quote #{id}"))).await
}

/// Delete a quote (its saver or a moderator).
#[poise::command(slash_command, guild_only, user_cooldown = 3)]
pub async fn delete(
    ctx: Context<'_>,
    #[description = "Quote number, or words from it to search"]
    #[autocomplete = "complete_quote"]
    #[max_length = 100]
    id: String,
) -> Result<(), Error> {
    let guild = bot::guild_of(ctx)?;
    let id: i64 = parse_id(&id, "quote")?;
    let (caller, moderator) = (ctx.author().id.get(), bot::is_moderator(ctx).await?);
    ctx.data()
        .store
        .with_guild(guild, move |c| quotes::delete(c, id, caller, moderator))
        .await?
        .map_err(bot::domain)?;
    reply::quiet(ctx, format!("Deleted quote #{id}.")).await
}

/// Rate a quote from 1 to 5 stars (rating again replaces your rating).
#[poise::command(slash_command, ephemeral, guild_only, user_cooldown = 3)]
pub async fn rate(
    ctx: Context<'_>,
    #[description = "Quote number, or words from it to search"]
    #[autocomplete = "complete_quote"]
    #[max_length = 100]
    id: String,
    #[description = "Stars, 1 to 5"]
    #[min = 1]
    #[max = 5]
    stars: u8,
) -> Result<(), Error> {
    let guild = bot::guild_of(ctx)?;
    let id: i64 = parse_id(&id, "quote")?;
    let user = ctx.author().id.get();
    let summary = ctx
        .data()
        .store
        .with_guild(guild, move |c| quotes::rate(c, id, user, stars, Utc::now()))
        .await?
        .map_err(bot::domain)?;
    let text = format!(
        "You rated quote #{id} {stars}/5. It now has {:.1} from {} rating(s).",
        summary.rating_avg, summary.rating_count
    );
    reply::private(ctx, reply::quiet_reply().content(text)).await?;
    Ok(())
}

#[derive(Debug, Clone, Copy, poise::ChoiceParameter)]
pub enum TagAction {
    #[name = "add"]
    Add,
    #[name = "remove"]
    Remove,
}

/// Add tags to a quote or remove them (its saver or a moderator).
#[poise::command(slash_command, guild_only, user_cooldown = 3)]
pub async fn tag(
    ctx: Context<'_>,
    #[description = "Quote number, or words from it to search"]
    #[autocomplete = "complete_quote"]
    #[max_length = 100]
    id: String,
    #[description = "Add or remove"] action: TagAction,
    #[description = "Tags, separated by commas"]
    #[autocomplete = "complete_tag"]
    tags: String,
) -> Result<(), Error> {
    let guild = bot::guild_of(ctx)?;
    let id: i64 = parse_id(&id, "quote")?;
    let (caller, moderator) = (ctx.author().id.get(), bot::is_moderator(ctx).await?);
    let tags = split_tags(Some(&tags));
    let changed = ctx
        .data()
        .store
        .with_guild(guild, move |c| match action {
            TagAction::Add => quotes::add_tags(c, id, caller, moderator, &tags, Utc::now()),
            TagAction::Remove => quotes::remove_tags(c, id, caller, moderator, &tags),
        })
        .await?
        .map_err(bot::domain)?;
    reply::embed(ctx, embed(&changed).title(format!("Tags of quote #{id}"))).await
}

/// Counts and leaderboards of this server's quotes.
#[poise::command(slash_command, guild_only)]
pub async fn stats(ctx: Context<'_>) -> Result<(), Error> {
    let guild = bot::guild_of(ctx)?;
    let stats = ctx
        .data()
        .store
        .with_guild(guild, |c| quotes::stats(c, 5, 1))
        .await?
        .map_err(bot::domain)?;
    let lines = |items: Vec<String>| {
        if items.is_empty() {
            "—".to_owned()
        } else {
            items.join("\n")
        }
    };
    let authors = stats
        .top_authors
        .iter()
        .map(|a| format!("{} — {}", reply::list_line(&a.author_name, 40), a.quotes))
        .collect();
    let rated = stats
        .top_rated
        .iter()
        .map(|q| {
            format!(
                "#{} {:.1}★ — {}",
                q.id,
                q.rating_avg,
                reply::list_line(&q.text, 40)
            )
        })
        .collect();
    let adders = stats
        .top_adders
        .iter()
        .map(|a| format!("<@{}> — {}", a.user_id, a.quotes))
        .collect();
    let embed = serenity::CreateEmbed::new()
        .title("Quote stats")
        .field("Quotes", stats.quotes.to_string(), true)
        .field("Ratings", stats.ratings.to_string(), true)
        .field("Most quoted", lines(authors), false)
        .field("Best rated", lines(rated), false)
        .field("Most quotes saved", lines(adders), false);
    reply::embed(ctx, embed).await
}

/// Today's quote: the same for everyone in this server all day (UTC).
#[poise::command(slash_command, guild_only)]
pub async fn today(ctx: Context<'_>) -> Result<(), Error> {
    let guild = bot::guild_of(ctx)?;
    let found = ctx
        .data()
        .store
        .with_guild(guild, |c| quotes::quote_of_the_day(c, Utc::now()))
        .await?
        .map_err(bot::domain)?;
    let quote = found.or_user("No quotes yet. Save one with /quote add.")?;
    reply::embed(
        ctx,
        embed(&quote).title(format!("Quote of the day: #{}", quote.id)),
    )
    .await
}

/// Suggests quote numbers whose number or text matches what was typed. Text is a search,
/// so it counts toward the member's searches: past their limit, words offer nothing until
/// the next keystroke after the interval.
async fn complete_quote(ctx: Context<'_>, typed: &str) -> serenity::CreateAutocompleteResponse {
    if quotes::autocomplete_searches(typed) && !ctx.data().searches.admit(ctx.author().id.get()) {
        return serenity::CreateAutocompleteResponse::new();
    }
    let typed = typed.to_owned();
    suggestions(
        ctx,
        move |c| quotes::autocomplete_ids(c, &typed, quotes::MAX_AUTOCOMPLETE),
        |(id, text)| {
            Some(serenity::AutocompleteChoice::new(
                reply::shorten(&format!("#{id} {text}"), reply::MAX_CHOICE),
                id.to_string(),
            ))
        },
    )
    .await
}

/// Suggests tags in use that start with what was typed (after the last comma).
async fn complete_tag(ctx: Context<'_>, typed: &str) -> serenity::CreateAutocompleteResponse {
    let (before, last) = typed.rsplit_once(',').unwrap_or(("", typed));
    let last = last.to_owned();
    suggestions(
        ctx,
        move |c| quotes::tags(c, &last, quotes::MAX_AUTOCOMPLETE),
        |t| {
            let value = if before.is_empty() {
                t.name.clone()
            } else {
                format!("{before}, {}", t.name)
            };
            let name = reply::shorten(&format!("{} ({})", t.name, t.quotes), reply::MAX_CHOICE);
            // A value Discord would refuse cannot be offered; the member can still type it.
            (value.chars().count() <= reply::MAX_CHOICE)
                .then(|| serenity::AutocompleteChoice::new(name, value))
        },
    )
    .await
}

fn split_tags(tags: Option<&str>) -> Vec<String> {
    tags.into_iter()
        .flat_map(|t| t.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

/// One quote as an embed: the text, who said it, rating and tags.
fn embed(quote: &Quote) -> serenity::CreateEmbed {
    let mut embed = serenity::CreateEmbed::new()
        .title(format!("Quote #{}", quote.id))
        .description(&quote.text)
        .field("Author", reply::shorten(&quote.author_name, 100), true)
        .timestamp(serenity::Timestamp::from(quote.created_at));
    if quote.rating_count > 0 {
        embed = embed.field(
            "Rating",
            format!("{:.1}★ ({})", quote.rating_avg, quote.rating_count),
            true,
        );
    }
    if !quote.tags.is_empty() {
        let tags = reply::shorten(&quote.tags.join(", "), reply::MAX_FIELD_VALUE);
        embed = embed.field("Tags", tags, true);
    }
    embed
}

/// Several quotes, one line each.
fn list_embed(title: &str, quotes: &[Quote]) -> serenity::CreateEmbed {
    let lines: Vec<String> = quotes
        .iter()
        .map(|q| {
            format!(
                "**#{}** {} — {}",
                q.id,
                reply::list_line(&q.text, LINE_CHARS),
                reply::list_line(&q.author_name, 40)
            )
        })
        .collect();
    serenity::CreateEmbed::new()
        .title(title)
        .description(reply::lines_within(&lines, reply::MAX_DESCRIPTION))
}
