//! Quotes: the rules and SQL behind saving, finding, rating and tagging a guild's quotes,
//! over one guild's `rusqlite::Connection`. Callers pass plain Discord ids (`u64`) and the
//! current time; quote numbers are the `quotes.id` column (`i64`).
//!
//! Not here: anything Discord (wording of replies, buttons, permissions lookups: the caller
//! says whether the member is a moderator), where the database lives (`store`), and forgetting
//! a member (`privacy`, which reuses `refresh_rating` to keep averages right).
//!
//! Changes run in `BEGIN IMMEDIATE` transactions: they read (a permission, a rating) before
//! they write, and a deferred transaction that turns into a write after another connection
//! has written fails at once with SQLITE_BUSY instead of waiting out the busy timeout.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use rand::Rng;
use rusqlite::{
    params, types::Type, Connection, OptionalExtension, Row, Transaction, TransactionBehavior,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::sql::{opt_row_id, row_id, row_time};

pub const MAX_TEXT_CHARS: usize = 2000;
pub const MAX_AUTHOR_CHARS: usize = 100;
pub const MAX_TAGS: usize = 10;
pub const MAX_TAG_CHARS: usize = 32;
pub const DEFAULT_AUTHOR: &str = "Anonymous";
/// Larger pages than this are cut down: a Discord message cannot show more anyway.
pub const MAX_PAGE_SIZE: u32 = 50;
/// Discord shows at most 25 autocomplete choices.
pub const MAX_AUTOCOMPLETE: u32 = 25;
/// Later words of a search are ignored, which bounds the cost of one FTS query.
pub const MAX_SEARCH_WORDS: usize = 8;
/// Shorter words match only whole words: a one-letter prefix expands to most of the index.
pub const MIN_PREFIX_CHARS: usize = 2;
/// Length of the text shown beside a quote number in autocomplete (Discord allows 100).
const SHORT_TEXT_CHARS: usize = 80;

/// A quote as stored, with its tags (sorted) and rating summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Quote {
    pub id: i64,
    pub text: String,
    pub author_name: String,
    pub author_id: Option<u64>,
    /// `None` once the member who saved it has been forgotten, or for legacy rows without one.
    pub added_by: Option<u64>,
    pub source_channel_id: Option<u64>,
    pub source_message_id: Option<u64>,
    pub tags: Vec<String>,
    /// 0 when unrated.
    pub rating_avg: f64,
    pub rating_count: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a member asks to save. `author_name: None` means [`DEFAULT_AUTHOR`].
#[derive(Debug, Clone, Default)]
pub struct NewQuote {
    pub text: String,
    pub author_name: Option<String>,
    pub author_id: Option<u64>,
    pub added_by: u64,
    /// The message a "Save as quote" context menu was used on.
    pub source: Option<QuoteSource>,
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuoteSource {
    pub channel_id: u64,
    pub message_id: u64,
}

/// The parts of a quote an edit changes; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct QuoteEdit {
    pub text: Option<String>,
    pub author_name: Option<String>,
}

/// Where a page of [`list`] starts. Pages are keyed by quote number, not by offset, so a quote
/// added or deleted while a member pages through neither repeats nor skips another one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageAt {
    First,
    /// The page of quotes numbered after this one (the "next" button carries the last id shown).
    After(i64),
    /// The page of quotes numbered before this one (the "previous" button carries the first id).
    Before(i64),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuotePage {
    pub quotes: Vec<Quote>,
    /// All quotes in the guild, for "page x of y" style footers.
    pub total: u64,
    pub has_previous: bool,
    pub has_more: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RatingSummary {
    pub rating_avg: f64,
    pub rating_count: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TagCount {
    pub name: String,
    pub quotes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuthorCount {
    pub author_name: String,
    pub quotes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AdderCount {
    pub user_id: u64,
    pub quotes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuoteStats {
    pub quotes: u64,
    pub ratings: u64,
    /// Most quoted names (case-insensitive), leaving out the placeholder [`DEFAULT_AUTHOR`].
    pub top_authors: Vec<AuthorCount>,
    /// Best average first, among quotes with at least the asked minimum of ratings.
    pub top_rated: Vec<Quote>,
    pub top_adders: Vec<AdderCount>,
}

#[derive(Debug, thiserror::Error)]
pub enum QuoteError {
    #[error("A quote can't be empty.")]
    EmptyText,
    #[error("A quote can be at most {max} characters.")]
    TextTooLong { max: usize },
    #[error("An author name can't be empty.")]
    EmptyAuthor,
    #[error("An author name can be at most {max} characters.")]
    AuthorTooLong { max: usize },
    #[error("A quote can have at most {max} tags.")]
    TooManyTags { max: usize },
    #[error("A tag can be at most {max} characters.")]
    TagTooLong { max: usize },
    #[error("A rating is a whole number from 1 to 5.")]
    InvalidRating,
    #[error("Type at least one word to search for.")]
    EmptySearch,
    #[error("Give a new text or author to change.")]
    NothingToEdit,
    #[error("There is no quote #{id} in this server.")]
    NotFound { id: i64 },
    #[error("Only the member who saved this quote or a moderator can change it (and the member it quotes can delete it).")]
    NotAllowed,
    /// A caller passed an id that is not a Discord snowflake: a bug, not something to show.
    #[error("{0} is not a Discord id (it must be between 1 and 2^63-1)")]
    InvalidId(u64),
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
}

impl QuoteError {
    /// The text to show the member, for errors they can fix; `None` for failures, which belong
    /// in the log only.
    pub fn user_message(&self) -> Option<String> {
        match self {
            Self::InvalidId(_) | Self::Sql(_) => None,
            member_fixable => Some(member_fixable.to_string()),
        }
    }
}

/// Trims, lower-cases and collapses inner whitespace, so "  Funny   Cats " and "funny cats"
/// are one tag. The bot uses it too, to match autocomplete input the same way.
pub fn normalise_tag(raw: &str) -> String {
    without_nul(raw)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// Saves a quote with its tags. Blank tags are dropped and duplicates merged before the limit
/// of [`MAX_TAGS`] is checked.
pub fn add(conn: &Connection, new: &NewQuote, now: DateTime<Utc>) -> Result<Quote, QuoteError> {
    let text = clean_text(&new.text)?;
    let author_name = match &new.author_name {
        Some(name) => clean_author(name)?,
        None => DEFAULT_AUTHOR.to_owned(),
    };
    let tags = normalise_tags(&new.tags)?;
    let author_id = new.author_id.map(id_param).transpose()?;
    let added_by = id_param(new.added_by)?;
    let (channel, message) = match new.source {
        Some(source) => (
            Some(id_param(source.channel_id)?),
            Some(id_param(source.message_id)?),
        ),
        None => (None, None),
    };

    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    tx.execute(
        "INSERT INTO quotes (text, author_name, author_id, added_by, source_channel_id,
                             source_message_id, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
        params![
            text,
            author_name,
            author_id,
            added_by,
            channel,
            message,
            now.timestamp()
        ],
    )?;
    let id = tx.last_insert_rowid();
    attach_tags(&tx, id, &tags, now)?;
    let quote = load(&tx, id)?.ok_or(QuoteError::NotFound { id })?;
    tx.commit()?;
    Ok(quote)
}

pub fn get(conn: &Connection, id: i64) -> Result<Option<Quote>, QuoteError> {
    Ok(load(conn, id)?)
}

/// A quote chosen uniformly among all quotes, or among those with `tag` (normalised; a blank
/// tag means no filter). `None` when nothing matches.
pub fn random(
    conn: &Connection,
    tag: Option<&str>,
    rng: &mut impl Rng,
) -> Result<Option<Quote>, QuoteError> {
    let tag = tag.map(normalise_tag).filter(|t| !t.is_empty());
    // Count and pick in one read transaction so a concurrent delete cannot move the offset
    // past the end between the two statements.
    let tx = conn.unchecked_transaction()?;
    let id = match &tag {
        None => {
            let count: i64 = tx.query_row("SELECT COUNT(*) FROM quotes", [], |r| r.get(0))?;
            if count == 0 {
                return Ok(None);
            }
            tx.query_row(
                "SELECT id FROM quotes ORDER BY id LIMIT 1 OFFSET ?1",
                [rng.random_range(0..count)],
                |r| r.get(0),
            )?
        }
        Some(tag) => {
            let count: i64 = tx.query_row(
                "SELECT COUNT(*) FROM quote_tags qt JOIN tags t ON t.id = qt.tag_id
                 WHERE t.name = ?1",
                [tag],
                |r| r.get(0),
            )?;
            if count == 0 {
                return Ok(None);
            }
            tx.query_row(
                "SELECT qt.quote_id FROM quote_tags qt JOIN tags t ON t.id = qt.tag_id
                 WHERE t.name = ?1 ORDER BY qt.quote_id LIMIT 1 OFFSET ?2",
                params![tag, rng.random_range(0..count)],
                |r| r.get(0),
            )?
        }
    };
    let quote = load(&tx, id)?;
    tx.commit()?;
    Ok(quote)
}

/// Full-text search over text and author, best match first (bm25), at most `limit` results.
///
/// Whatever the member typed is taken as plain words: the input is split on everything that
/// is not a letter or digit, and each word becomes a quoted FTS5 string, so operators (`AND`,
/// `NEAR(`, `-`, `:`, quotes, parentheses) are searched for, never obeyed. Every word must
/// match, as a word or, from [`MIN_PREFIX_CHARS`] letters on, as the start of one. Repeated
/// words count once and only the first [`MAX_SEARCH_WORDS`] count, so no input costs more
/// than a few index lookups; the best `limit` matches are picked before their tags are read.
/// Input without a word is [`QuoteError::EmptySearch`].
pub fn search(conn: &Connection, query: &str, limit: u32) -> Result<Vec<Quote>, QuoteError> {
    let fts = fts_query(query).ok_or(QuoteError::EmptySearch)?;
    let mut stmt = conn.prepare(&format!(
        "{QUOTE_SELECT} JOIN (SELECT rowid, bm25(quotes_fts) AS rank FROM quotes_fts
                              WHERE quotes_fts MATCH ?1 ORDER BY rank, rowid LIMIT ?2) hit
                        ON hit.rowid = q.id
         ORDER BY hit.rank, q.id"
    ))?;
    let quotes = stmt
        .query_map(params![fts, clamp_page(limit)], quote_from_row)?
        .collect::<Result<_, _>>()?;
    Ok(quotes)
}

/// One page of quotes in quote-number order; see [`PageAt`]. `page_size` is cut to
/// 1..=[`MAX_PAGE_SIZE`].
pub fn list(conn: &Connection, at: PageAt, page_size: u32) -> Result<QuotePage, QuoteError> {
    let size = clamp_page(page_size);
    let tx = conn.unchecked_transaction()?;
    let total = tx.query_row("SELECT COUNT(*) FROM quotes", [], |r| row_id(r, 0))?;
    let (condition, order, bound) = match at {
        PageAt::First => ("1", "ASC", 0),
        PageAt::After(id) => ("q.id > ?1", "ASC", id),
        PageAt::Before(id) => ("q.id < ?1", "DESC", id),
    };
    let mut quotes: Vec<Quote> = tx
        .prepare(&format!(
            "{QUOTE_SELECT} WHERE {condition} ORDER BY q.id {order} LIMIT ?2"
        ))?
        .query_map(params![bound, size], quote_from_row)?
        .collect::<Result<_, _>>()?;
    if matches!(at, PageAt::Before(_)) {
        quotes.reverse();
    }
    let exists = |sql: &str, id: i64| -> rusqlite::Result<bool> {
        tx.query_row(
            &format!("SELECT EXISTS (SELECT 1 FROM quotes WHERE {sql})"),
            [id],
            |r| r.get(0),
        )
    };
    let (has_previous, has_more) = match (quotes.first(), quotes.last(), at) {
        (Some(first), Some(last), _) => (exists("id < ?1", first.id)?, exists("id > ?1", last.id)?),
        (_, _, PageAt::First) => (false, false),
        (_, _, PageAt::After(id)) => (exists("id <= ?1", id)?, false),
        (_, _, PageAt::Before(id)) => (false, exists("id >= ?1", id)?),
    };
    tx.commit()?;
    Ok(QuotePage {
        quotes,
        total,
        has_previous,
        has_more,
    })
}

/// Changes text and/or author name; allowed for the member who saved the quote or a moderator.
/// New text is no longer the quoted member's words: the quote then loses its link to them and
/// to the source message (it keeps the author name as typed).
pub fn edit(
    conn: &Connection,
    id: i64,
    caller: u64,
    is_moderator: bool,
    change: &QuoteEdit,
    now: DateTime<Utc>,
) -> Result<Quote, QuoteError> {
    let text = change.text.as_deref().map(clean_text).transpose()?;
    let author = change
        .author_name
        .as_deref()
        .map(clean_author)
        .transpose()?;
    if text.is_none() && author.is_none() {
        return Err(QuoteError::NothingToEdit);
    }
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    check_may_change(&tx, id, caller, is_moderator, Change::Edit)?;
    tx.execute(
        "UPDATE quotes SET author_name = COALESCE(?3, author_name), updated_at = ?4,
                           author_id = iif(?2 IS NULL OR ?2 = text, author_id, NULL),
                           source_channel_id = iif(?2 IS NULL OR ?2 = text, source_channel_id, NULL),
                           source_message_id = iif(?2 IS NULL OR ?2 = text, source_message_id, NULL),
                           text = COALESCE(?2, text)
         WHERE id = ?1",
        params![id, text, author, now.timestamp()],
    )?;
    let quote = load(&tx, id)?.ok_or(QuoteError::NotFound { id })?;
    tx.commit()?;
    Ok(quote)
}

/// Deletes a quote with its ratings and tag links; allowed for those who may [`edit`] it and
/// for the member whose words it quotes.
pub fn delete(
    conn: &Connection,
    id: i64,
    caller: u64,
    is_moderator: bool,
) -> Result<(), QuoteError> {
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    check_may_change(&tx, id, caller, is_moderator, Change::Delete)?;
    tx.execute("DELETE FROM quotes WHERE id = ?1", [id])?;
    tx.commit()?;
    Ok(())
}

/// Records `user`'s rating of 1 to 5, replacing an earlier one, and returns the quote's new
/// average and count. Members may rate any quote, their own included.
pub fn rate(
    conn: &Connection,
    id: i64,
    user: u64,
    stars: u8,
    now: DateTime<Utc>,
) -> Result<RatingSummary, QuoteError> {
    if !(1..=5).contains(&stars) {
        return Err(QuoteError::InvalidRating);
    }
    let user = id_param(user)?;
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    ensure_exists(&tx, id)?;
    tx.execute(
        "INSERT INTO quote_ratings (quote_id, user_id, rating, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?4)
         ON CONFLICT (quote_id, user_id) DO UPDATE SET rating = excluded.rating,
                                                      updated_at = excluded.updated_at",
        params![id, user, stars, now.timestamp()],
    )?;
    refresh_rating(&tx, id)?;
    let summary = tx.query_row(
        "SELECT rating_avg, rating_count FROM quotes WHERE id = ?1",
        [id],
        |r| {
            Ok(RatingSummary {
                rating_avg: r.get(0)?,
                rating_count: r.get(1)?,
            })
        },
    )?;
    tx.commit()?;
    Ok(summary)
}

/// Adds tags to a quote (same permission as [`edit`]); tags it already has are not counted
/// twice toward [`MAX_TAGS`]. Returns the updated quote.
pub fn add_tags(
    conn: &Connection,
    id: i64,
    caller: u64,
    is_moderator: bool,
    tags: &[String],
    now: DateTime<Utc>,
) -> Result<Quote, QuoteError> {
    let tags = normalise_tags(tags)?;
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    check_may_change(&tx, id, caller, is_moderator, Change::Edit)?;
    let mut all: BTreeSet<String> = load(&tx, id)?
        .ok_or(QuoteError::NotFound { id })?
        .tags
        .into_iter()
        .collect();
    all.extend(tags.iter().cloned());
    if all.len() > MAX_TAGS {
        return Err(QuoteError::TooManyTags { max: MAX_TAGS });
    }
    attach_tags(&tx, id, &tags, now)?;
    let quote = load(&tx, id)?.ok_or(QuoteError::NotFound { id })?;
    tx.commit()?;
    Ok(quote)
}

/// Removes tags from a quote (same permission as [`edit`]); tags it does not have are ignored.
/// The tag names themselves stay, so their description survives; unused tags are simply not
/// listed by [`tags`].
pub fn remove_tags(
    conn: &Connection,
    id: i64,
    caller: u64,
    is_moderator: bool,
    tags: &[String],
) -> Result<Quote, QuoteError> {
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    check_may_change(&tx, id, caller, is_moderator, Change::Edit)?;
    for tag in tags.iter().map(|t| normalise_tag(t)) {
        tx.execute(
            "DELETE FROM quote_tags
             WHERE quote_id = ?1 AND tag_id = (SELECT id FROM tags WHERE name = ?2)",
            params![id, tag],
        )?;
    }
    let quote = load(&tx, id)?.ok_or(QuoteError::NotFound { id })?;
    tx.commit()?;
    Ok(quote)
}

/// Tags in use whose name starts with `prefix` (normalised), most used first: for autocomplete
/// and a tag overview.
pub fn tags(conn: &Connection, prefix: &str, limit: u32) -> Result<Vec<TagCount>, QuoteError> {
    let pattern = format!("{}%", escape_like(&normalise_tag(prefix)));
    let mut stmt = conn.prepare(
        "SELECT t.name, COUNT(*) AS uses FROM tags t JOIN quote_tags qt ON qt.tag_id = t.id
         WHERE t.name LIKE ?1 ESCAPE '\\'
         GROUP BY t.id ORDER BY uses DESC, t.name LIMIT ?2",
    )?;
    let tags = stmt
        .query_map(params![pattern, clamp_page(limit)], |r| {
            Ok(TagCount {
                name: r.get(0)?,
                quotes: row_id(r, 1)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(tags)
}

/// Counts and leaderboards. `top` bounds each list (cut to 1..=[`MAX_PAGE_SIZE`]);
/// `min_ratings` keeps a single 5-star rating from topping the best-rated list (at least 1).
pub fn stats(conn: &Connection, top: u32, min_ratings: u32) -> Result<QuoteStats, QuoteError> {
    let top = clamp_page(top);
    let tx = conn.unchecked_transaction()?;
    let quotes = tx.query_row("SELECT COUNT(*) FROM quotes", [], |r| row_id(r, 0))?;
    let ratings = tx.query_row("SELECT COUNT(*) FROM quote_ratings", [], |r| row_id(r, 0))?;
    let top_authors = tx
        .prepare(
            "SELECT MIN(author_name), COUNT(*) AS n FROM quotes WHERE author_name <> ?1
             GROUP BY author_name COLLATE NOCASE ORDER BY n DESC, MIN(author_name) LIMIT ?2",
        )?
        .query_map(params![DEFAULT_AUTHOR, top], |r| {
            Ok(AuthorCount {
                author_name: r.get(0)?,
                quotes: row_id(r, 1)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    let top_rated = tx
        .prepare(&format!(
            "{QUOTE_SELECT} WHERE q.rating_count >= ?1
             ORDER BY q.rating_avg DESC, q.rating_count DESC, q.id LIMIT ?2"
        ))?
        .query_map(params![min_ratings.max(1), top], quote_from_row)?
        .collect::<Result<_, _>>()?;
    let top_adders = tx
        .prepare(
            "SELECT added_by, COUNT(*) AS n FROM quotes WHERE added_by IS NOT NULL
             GROUP BY added_by ORDER BY n DESC, added_by LIMIT ?1",
        )?
        .query_map([top], |r| {
            Ok(AdderCount {
                user_id: row_id(r, 0)?,
                quotes: row_id(r, 1)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    tx.commit()?;
    Ok(QuoteStats {
        quotes,
        ratings,
        top_authors,
        top_rated,
        top_adders,
    })
}

/// The quote of the day for `now`'s UTC date, `None` when the guild has no quotes.
///
/// Rule: take the first 8 bytes of SHA-256 of the date as `YYYY-MM-DD` (big-endian), reduce it
/// modulo the number of quotes, and pick the quote at that position in quote-number order.
/// The pick is the same all day while quotes are neither added nor deleted; adding or deleting
/// one can change it. Consecutive days usually differ but may coincide (chance 1 in the count).
pub fn quote_of_the_day(
    conn: &Connection,
    now: DateTime<Utc>,
) -> Result<Option<Quote>, QuoteError> {
    let digest = Sha256::digest(now.date_naive().format("%Y-%m-%d").to_string());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let seed = u64::from_be_bytes(first);
    let tx = conn.unchecked_transaction()?;
    let count: i64 = tx.query_row("SELECT COUNT(*) FROM quotes", [], |r| r.get(0))?;
    if count == 0 {
        return Ok(None);
    }
    let id: i64 = tx.query_row(
        "SELECT id FROM quotes ORDER BY id LIMIT 1 OFFSET ?1",
        [i64::try_from(seed % count.unsigned_abs()).expect("below the count, an i64")],
        |r| r.get(0),
    )?;
    let quote = load(&tx, id)?;
    tx.commit()?;
    Ok(quote)
}

/// Choices for a quote-number option: `(id, short text)`. Digits (optionally after `#`) match
/// quote numbers that start with them; other text is a [`search`]; nothing typed lists the
/// newest quotes. `limit` is cut to 1..=[`MAX_AUTOCOMPLETE`].
pub fn autocomplete_ids(
    conn: &Connection,
    prefix_text: &str,
    limit: u32,
) -> Result<Vec<(i64, String)>, QuoteError> {
    let limit = limit.clamp(1, MAX_AUTOCOMPLETE);
    let typed = prefix_text.trim();
    let rows: Vec<(i64, String)> = match typed_number(typed) {
        Some("") => conn
            .prepare("SELECT id, text FROM quotes ORDER BY id DESC LIMIT ?1")?
            .query_map([limit], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?,
        // Digits only, so the LIKE pattern needs no escaping.
        Some(digits) => conn
            .prepare(
                "SELECT id, text FROM quotes WHERE CAST(id AS TEXT) LIKE ?1 || '%'
                 ORDER BY id LIMIT ?2",
            )?
            .query_map(params![digits, limit], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?,
        None => match search(conn, typed, limit) {
            Ok(found) => found.into_iter().map(|q| (q.id, q.text)).collect(),
            // Half-typed punctuation is normal while typing: offer nothing rather than an error.
            Err(QuoteError::EmptySearch) => Vec::new(),
            Err(other) => return Err(other),
        },
    };
    Ok(rows
        .into_iter()
        .map(|(id, text)| (id, short_text(&text)))
        .collect())
}

/// Whether [`autocomplete_ids`] answers `typed` with a full-text search: anything but nothing
/// or a quote number.
pub fn autocomplete_searches(typed: &str) -> bool {
    typed_number(typed.trim()).is_none()
}

/// The digits of a quote number typed (after an optional `#`), empty when nothing was typed;
/// `None` when it is text.
fn typed_number(typed: &str) -> Option<&str> {
    let digits = typed.strip_prefix('#').unwrap_or(typed).trim();
    digits.bytes().all(|b| b.is_ascii_digit()).then_some(digits)
}

/// Recomputes a quote's `rating_avg` and `rating_count` from `quote_ratings`. Call it in the
/// same transaction as any change to that quote's ratings.
pub(crate) fn refresh_rating(conn: &Connection, id: i64) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE quotes SET
             rating_avg = COALESCE((SELECT AVG(rating) FROM quote_ratings WHERE quote_id = ?1), 0),
             rating_count = (SELECT COUNT(*) FROM quote_ratings WHERE quote_id = ?1)
         WHERE id = ?1",
        [id],
    )?;
    Ok(())
}

/// A Discord id as stored: INTEGER columns are signed and the schema requires ids above zero.
pub(crate) fn db_id(id: u64) -> Option<i64> {
    i64::try_from(id).ok().filter(|&v| v > 0)
}

/// Quotes with their tags as a JSON array, so one statement loads a whole page.
pub(crate) const QUOTE_SELECT: &str = "
    SELECT q.id, q.text, q.author_name, q.author_id, q.added_by, q.source_channel_id,
           q.source_message_id, q.rating_avg, q.rating_count, q.created_at, q.updated_at,
           (SELECT json_group_array(t.name ORDER BY t.name)
              FROM quote_tags qt JOIN tags t ON t.id = qt.tag_id WHERE qt.quote_id = q.id)
    FROM quotes q";

/// Maps a row of [`QUOTE_SELECT`].
pub(crate) fn quote_from_row(row: &Row<'_>) -> rusqlite::Result<Quote> {
    let tags: String = row.get(11)?;
    Ok(Quote {
        id: row.get(0)?,
        text: row.get(1)?,
        author_name: row.get(2)?,
        author_id: opt_row_id(row, 3)?,
        added_by: opt_row_id(row, 4)?,
        source_channel_id: opt_row_id(row, 5)?,
        source_message_id: opt_row_id(row, 6)?,
        rating_avg: row.get(7)?,
        rating_count: row.get(8)?,
        created_at: row_time(row, 9)?,
        updated_at: row_time(row, 10)?,
        tags: serde_json::from_str(&tags)
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(11, Type::Text, Box::new(e)))?,
    })
}

fn load(conn: &Connection, id: i64) -> rusqlite::Result<Option<Quote>> {
    conn.query_row(
        &format!("{QUOTE_SELECT} WHERE q.id = ?1"),
        [id],
        quote_from_row,
    )
    .optional()
}

fn id_param(id: u64) -> Result<i64, QuoteError> {
    db_id(id).ok_or(QuoteError::InvalidId(id))
}

/// Member text without NUL characters. They are invisible, and SQLite's `length()` (used by
/// the schema's CHECKs) stops counting at the first one, so "\0abc" would pass the limits
/// here and then fail in the database as an internal error.
fn without_nul(text: &str) -> String {
    text.replace('\0', "")
}

fn clean_text(text: &str) -> Result<String, QuoteError> {
    let text = without_nul(text);
    let text = text.trim();
    match text.chars().count() {
        0 => Err(QuoteError::EmptyText),
        n if n > MAX_TEXT_CHARS => Err(QuoteError::TextTooLong {
            max: MAX_TEXT_CHARS,
        }),
        _ => Ok(text.to_owned()),
    }
}

fn clean_author(name: &str) -> Result<String, QuoteError> {
    let name = without_nul(name);
    let name = name.trim();
    match name.chars().count() {
        0 => Err(QuoteError::EmptyAuthor),
        n if n > MAX_AUTHOR_CHARS => Err(QuoteError::AuthorTooLong {
            max: MAX_AUTHOR_CHARS,
        }),
        _ => Ok(name.to_owned()),
    }
}

/// Normalised, blank-free, duplicate-free tags (sorted), within the limits.
fn normalise_tags(raw: &[String]) -> Result<Vec<String>, QuoteError> {
    let mut tags = BTreeSet::new();
    for tag in raw
        .iter()
        .map(|t| normalise_tag(t))
        .filter(|t| !t.is_empty())
    {
        if tag.chars().count() > MAX_TAG_CHARS {
            return Err(QuoteError::TagTooLong { max: MAX_TAG_CHARS });
        }
        tags.insert(tag);
    }
    if tags.len() > MAX_TAGS {
        return Err(QuoteError::TooManyTags { max: MAX_TAGS });
    }
    Ok(tags.into_iter().collect())
}

fn attach_tags(
    conn: &Connection,
    id: i64,
    tags: &[String],
    now: DateTime<Utc>,
) -> rusqlite::Result<()> {
    for tag in tags {
        conn.execute(
            "INSERT INTO tags (name, created_at) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
            params![tag, now.timestamp()],
        )?;
        conn.execute(
            "INSERT OR IGNORE INTO quote_tags (quote_id, tag_id)
             SELECT ?1, id FROM tags WHERE name = ?2",
            params![id, tag],
        )?;
    }
    Ok(())
}

fn ensure_exists(conn: &Connection, id: i64) -> Result<(), QuoteError> {
    let found: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM quotes WHERE id = ?1)",
        [id],
        |r| r.get(0),
    )?;
    if found {
        Ok(())
    } else {
        Err(QuoteError::NotFound { id })
    }
}

/// The creator may change their quote; so may moderators. A quote whose creator was forgotten
/// (`added_by` NULL) is left to moderators.
/// What a member wants to do to a quote, for [`check_may_change`].
#[derive(PartialEq, Eq)]
enum Change {
    Edit,
    /// Also open to the member the quote quotes: their words, their call.
    Delete,
}

fn check_may_change(
    conn: &Connection,
    id: i64,
    caller: u64,
    is_moderator: bool,
    change: Change,
) -> Result<(), QuoteError> {
    let (added_by, author_id) = conn
        .query_row(
            "SELECT added_by, author_id FROM quotes WHERE id = ?1",
            [id],
            |r| Ok((opt_row_id(r, 0)?, opt_row_id(r, 1)?)),
        )
        .optional()?
        .ok_or(QuoteError::NotFound { id })?;
    let quoted = change == Change::Delete && author_id == Some(caller);
    if is_moderator || added_by == Some(caller) || quoted {
        Ok(())
    } else {
        Err(QuoteError::NotAllowed)
    }
}

fn fts_query(input: &str) -> Option<String> {
    let mut seen = BTreeSet::new();
    let words: Vec<String> = input
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty() && seen.insert(w.to_lowercase()))
        .take(MAX_SEARCH_WORDS)
        .map(|w| {
            let prefix = if w.chars().count() >= MIN_PREFIX_CHARS {
                "*"
            } else {
                ""
            };
            format!("\"{w}\"{prefix}")
        })
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

fn clamp_page(asked: u32) -> u32 {
    asked.clamp(1, MAX_PAGE_SIZE)
}

fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// One line, at most [`SHORT_TEXT_CHARS`] characters with an ellipsis when cut.
fn short_text(text: &str) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= SHORT_TEXT_CHARS {
        return line;
    }
    let mut cut: String = line.chars().take(SHORT_TEXT_CHARS - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    //! Every rule of this module against a real guild database file.

    use chrono::TimeZone;
    use rand::{rngs::StdRng, SeedableRng};

    use super::*;
    use crate::test_support::guild_db;

    const ALICE: u64 = 1_000_000_000_000_001;
    const BOB: u64 = 1_000_000_000_000_002;
    const CAROL: u64 = 1_000_000_000_000_003;

    /// Input a member might type into search; none may reach FTS5 or SQL as syntax.
    const HOSTILE_QUERIES: [&str; 20] = [
        "\"",
        "\"unbalanced",
        "*",
        "-",
        "-cat",
        "AND",
        "OR OR",
        "NOT cat",
        "cat AND",
        "NEAR(",
        "NEAR(cat dog, 2)",
        "((cat",
        "cat)",
        "text:cat",
        "{text author_name}: cat",
        "^cat",
        "cat*' OR 1=1; --",
        "'); DROP TABLE quotes; --",
        "\u{0}\u{7f}\t\n",
        "²³ ǅ 𝔘𝔫𝔦 🦀 é",
    ];

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_750_000_000 + secs, 0).unwrap()
    }

    fn new(text: &str, by: u64) -> NewQuote {
        NewQuote {
            text: text.to_owned(),
            added_by: by,
            ..NewQuote::default()
        }
    }

    fn tags(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    fn ids(quotes: &[Quote]) -> Vec<i64> {
        quotes.iter().map(|q| q.id).collect()
    }

    #[test]
    fn add_trims_defaults_the_author_and_normalises_tags() {
        let (_dir, conn) = guild_db();
        let quote = add(
            &conn,
            &NewQuote {
                text: "  To be or not to be.  \n".into(),
                author_id: Some(BOB),
                source: Some(QuoteSource {
                    channel_id: 42,
                    message_id: 43,
                }),
                tags: tags(&["  Funny   Cats ", "funny cats", "   ", "WORK"]),
                ..new("", ALICE)
            },
            t(0),
        )
        .unwrap();
        assert_eq!(quote.text, "To be or not to be.");
        assert_eq!(quote.author_name, DEFAULT_AUTHOR);
        assert_eq!(quote.author_id, Some(BOB));
        assert_eq!(quote.added_by, Some(ALICE));
        assert_eq!(
            (quote.source_channel_id, quote.source_message_id),
            (Some(42), Some(43))
        );
        assert_eq!(quote.tags, ["funny cats", "work"]);
        assert_eq!((quote.rating_avg, quote.rating_count), (0.0, 0));
        assert_eq!((quote.created_at, quote.updated_at), (t(0), t(0)));
        assert_eq!(get(&conn, quote.id).unwrap(), Some(quote));

        let named = add(
            &conn,
            &NewQuote {
                author_name: Some("  Hamlet ".into()),
                ..new("x", ALICE)
            },
            t(0),
        )
        .unwrap();
        assert_eq!(named.author_name, "Hamlet");
    }

    #[test]
    fn text_is_one_to_two_thousand_characters() {
        let (_dir, conn) = guild_db();
        assert!(add(&conn, &new(&"a".repeat(2000), ALICE), t(0)).is_ok());
        // Characters, not bytes: 2000 two-byte characters still fit.
        assert!(add(&conn, &new(&"é".repeat(2000), ALICE), t(0)).is_ok());
        let long = add(&conn, &new(&"a".repeat(2001), ALICE), t(0)).unwrap_err();
        assert!(matches!(long, QuoteError::TextTooLong { max: 2000 }));
        assert_eq!(
            long.user_message().as_deref(),
            Some("A quote can be at most 2000 characters.")
        );
        let blank = add(&conn, &new(" \n\t ", ALICE), t(0)).unwrap_err();
        assert!(matches!(blank, QuoteError::EmptyText));
    }

    #[test]
    fn author_name_is_one_to_a_hundred_characters() {
        let (_dir, conn) = guild_db();
        let with_author = |name: String| NewQuote {
            author_name: Some(name),
            ..new("words", ALICE)
        };
        assert!(add(&conn, &with_author("b".repeat(100)), t(0)).is_ok());
        assert!(matches!(
            add(&conn, &with_author("b".repeat(101)), t(0)),
            Err(QuoteError::AuthorTooLong { max: 100 })
        ));
        assert!(matches!(
            add(&conn, &with_author("  ".into()), t(0)),
            Err(QuoteError::EmptyAuthor)
        ));
    }

    #[test]
    fn at_most_ten_tags_of_at_most_thirty_two_characters() {
        let (_dir, conn) = guild_db();
        let with_tags = |names: Vec<String>| NewQuote {
            tags: names,
            ..new("words", ALICE)
        };
        let ten: Vec<String> = (0..10).map(|i| format!("tag{i}")).collect();
        assert_eq!(
            add(&conn, &with_tags(ten.clone()), t(0))
                .unwrap()
                .tags
                .len(),
            10
        );
        let mut eleven = ten.clone();
        eleven.push("tag10".into());
        assert!(matches!(
            add(&conn, &with_tags(eleven), t(0)),
            Err(QuoteError::TooManyTags { max: 10 })
        ));
        // Duplicates after normalising are merged before counting.
        let mut ten_and_a_twin = ten;
        ten_and_a_twin.push(" TAG0 ".into());
        assert!(add(&conn, &with_tags(ten_and_a_twin), t(0)).is_ok());
        assert!(add(&conn, &with_tags(vec!["c".repeat(32)]), t(0)).is_ok());
        assert!(matches!(
            add(&conn, &with_tags(vec!["c".repeat(33)]), t(0)),
            Err(QuoteError::TagTooLong { max: 32 })
        ));
    }

    #[test]
    fn ids_that_are_not_snowflakes_are_failures_not_member_errors() {
        let (_dir, conn) = guild_db();
        for bad in [0, u64::MAX, 1 << 63] {
            let err = add(&conn, &new("x", bad), t(0)).unwrap_err();
            assert!(matches!(err, QuoteError::InvalidId(id) if id == bad));
            assert_eq!(err.user_message(), None);
        }
        let sql = QuoteError::Sql(rusqlite::Error::InvalidQuery);
        assert_eq!(sql.user_message(), None);
        assert_eq!(
            QuoteError::NotFound { id: 7 }.user_message().as_deref(),
            Some("There is no quote #7 in this server.")
        );
    }

    #[test]
    fn get_of_an_unknown_quote_is_none() {
        let (_dir, conn) = guild_db();
        assert_eq!(get(&conn, 99).unwrap(), None);
    }

    #[test]
    fn random_is_uniform_and_can_filter_by_tag() {
        let (_dir, conn) = guild_db();
        let mut rng = StdRng::seed_from_u64(7);
        assert_eq!(random(&conn, None, &mut rng).unwrap(), None);
        let tagged = |text: &str, tag: &str| NewQuote {
            tags: tags(&[tag]),
            ..new(text, ALICE)
        };
        let a = add(&conn, &tagged("a", "x"), t(0)).unwrap().id;
        let b = add(&conn, &tagged("b", "y"), t(0)).unwrap().id;
        let c = add(&conn, &tagged("c", "x"), t(0)).unwrap().id;

        let mut seen = std::collections::HashMap::new();
        for _ in 0..3000 {
            let id = random(&conn, None, &mut rng).unwrap().unwrap().id;
            *seen.entry(id).or_insert(0) += 1;
        }
        for id in [a, b, c] {
            assert!((850..=1150).contains(&seen[&id]), "{seen:?}");
        }
        for _ in 0..50 {
            let id = random(&conn, Some("  X "), &mut rng).unwrap().unwrap().id;
            assert!(id == a || id == c);
        }
        assert_eq!(random(&conn, Some("nope"), &mut rng).unwrap(), None);
        assert!(random(&conn, Some("  "), &mut rng).unwrap().is_some());
    }

    #[test]
    fn search_matches_word_prefixes_in_text_and_author_best_first() {
        let (_dir, conn) = guild_db();
        let long = add(
            &conn,
            &new(
                "A long quote about many things, among them philosophy and tea and biscuits",
                ALICE,
            ),
            t(0),
        )
        .unwrap()
        .id;
        let short = add(&conn, &new("Philosophy philosophy.", ALICE), t(0))
            .unwrap()
            .id;
        let cafe = add(
            &conn,
            &NewQuote {
                author_name: Some("Zoë".into()),
                ..new("Le café est noir.", BOB)
            },
            t(0),
        )
        .unwrap()
        .id;
        assert_eq!(ids(&search(&conn, "philos", 10).unwrap()), [short, long]);
        assert_eq!(ids(&search(&conn, "cafe", 10).unwrap()), [cafe]);
        assert_eq!(ids(&search(&conn, "zoe", 10).unwrap()), [cafe]);
        // Every word must match.
        assert_eq!(ids(&search(&conn, "philosophy tea", 10).unwrap()), [long]);
        assert_eq!(search(&conn, "philosophy coffee", 10).unwrap(), []);
        assert_eq!(search(&conn, "philosophy", 1).unwrap().len(), 1);
    }

    #[test]
    fn search_edits_and_deletes_keep_the_index_in_step() {
        let (_dir, conn) = guild_db();
        let id = add(&conn, &new("apples", ALICE), t(0)).unwrap().id;
        let change = QuoteEdit {
            text: Some("oranges".into()),
            ..QuoteEdit::default()
        };
        edit(&conn, id, ALICE, false, &change, t(1)).unwrap();
        assert_eq!(search(&conn, "apples", 10).unwrap(), []);
        assert_eq!(ids(&search(&conn, "oranges", 10).unwrap()), [id]);
        delete(&conn, id, ALICE, false).unwrap();
        assert_eq!(search(&conn, "oranges", 10).unwrap(), []);
    }

    #[test]
    fn hostile_search_input_is_plain_words_never_an_error() {
        let (_dir, conn) = guild_db();
        for text in [
            "The cat sat on the mat, NOT the dog.",
            "AND OR NEAR text author",
            "Zoë drank café — twice ² times",
        ] {
            add(&conn, &new(text, ALICE), t(0)).unwrap();
        }
        for query in HOSTILE_QUERIES {
            match search(&conn, query, 10) {
                Ok(_) | Err(QuoteError::EmptySearch) => {}
                Err(other) => panic!("{query:?} failed: {other:?}"),
            }
        }
        // Operators are searched for as words.
        assert_eq!(search(&conn, "NOT cat", 10).unwrap().len(), 1);
        assert_eq!(search(&conn, "NEAR(", 10).unwrap().len(), 1);
        assert_eq!(search(&conn, "-cat", 10).unwrap().len(), 1);
    }

    #[test]
    fn a_search_without_words_is_a_member_error() {
        let (_dir, conn) = guild_db();
        for query in ["", "   ", "\"*-()\"", "🦀"] {
            let err = search(&conn, query, 10).unwrap_err();
            assert!(matches!(err, QuoteError::EmptySearch));
            assert!(err.user_message().is_some());
        }
    }

    #[test]
    fn pages_cover_every_quote_once_in_order_both_ways() {
        let (_dir, conn) = guild_db();
        let all: Vec<i64> = (0..23)
            .map(|i| {
                add(&conn, &new(&format!("quote {i}"), ALICE), t(i))
                    .unwrap()
                    .id
            })
            .collect();

        let mut forward = Vec::new();
        let mut page = list(&conn, PageAt::First, 5).unwrap();
        assert!(!page.has_previous);
        loop {
            assert_eq!(page.total, 23);
            assert!(page.quotes.len() <= 5);
            forward.extend(ids(&page.quotes));
            if !page.has_more {
                break;
            }
            page = list(&conn, PageAt::After(*forward.last().unwrap()), 5).unwrap();
            assert!(page.has_previous);
        }
        assert_eq!(forward, all);

        let mut backward = Vec::new();
        let mut before = all[22] + 1;
        loop {
            let page = list(&conn, PageAt::Before(before), 5).unwrap();
            let mut got = ids(&page.quotes);
            got.extend(backward);
            backward = got;
            before = backward[0];
            if !page.has_previous {
                break;
            }
        }
        assert_eq!(backward, all);

        let past_end = list(&conn, PageAt::After(all[22]), 5).unwrap();
        assert!(past_end.quotes.is_empty() && past_end.has_previous && !past_end.has_more);
        assert_eq!(list(&conn, PageAt::First, 0).unwrap().quotes.len(), 1);
        assert_eq!(list(&conn, PageAt::First, 1000).unwrap().quotes.len(), 23);
    }

    #[test]
    fn pages_neither_repeat_nor_skip_when_quotes_come_and_go() {
        let (_dir, conn) = guild_db();
        let all: Vec<i64> = (0..10)
            .map(|i| {
                add(&conn, &new(&format!("quote {i}"), ALICE), t(i))
                    .unwrap()
                    .id
            })
            .collect();
        let first = list(&conn, PageAt::First, 4).unwrap();
        let mut seen = ids(&first.quotes);
        // While the member looks at page one: a seen quote goes, a new one arrives.
        delete(&conn, all[0], ALICE, false).unwrap();
        let late = add(&conn, &new("late", BOB), t(20)).unwrap().id;
        let mut page = first;
        while page.has_more {
            page = list(&conn, PageAt::After(*seen.last().unwrap()), 4).unwrap();
            seen.extend(ids(&page.quotes));
        }
        let mut expected = all.clone();
        expected.push(late);
        assert_eq!(seen, expected);
    }

    #[test]
    fn only_the_creator_or_a_moderator_may_edit_or_delete() {
        let (_dir, conn) = guild_db();
        let id = add(&conn, &new("mine", ALICE), t(0)).unwrap().id;
        let change = QuoteEdit {
            author_name: Some("Someone".into()),
            ..QuoteEdit::default()
        };
        let refused = edit(&conn, id, BOB, false, &change, t(1)).unwrap_err();
        assert!(matches!(refused, QuoteError::NotAllowed));
        assert!(refused.user_message().is_some());
        assert!(matches!(
            delete(&conn, id, BOB, false),
            Err(QuoteError::NotAllowed)
        ));
        assert!(matches!(
            add_tags(&conn, id, BOB, false, &tags(&["x"]), t(1)),
            Err(QuoteError::NotAllowed)
        ));
        assert!(matches!(
            remove_tags(&conn, id, BOB, false, &tags(&["x"])),
            Err(QuoteError::NotAllowed)
        ));
        assert_eq!(get(&conn, id).unwrap().unwrap().author_name, DEFAULT_AUTHOR);

        let by_owner = edit(&conn, id, ALICE, false, &change, t(1)).unwrap();
        assert_eq!(
            (by_owner.text.as_str(), by_owner.author_name.as_str()),
            ("mine", "Someone")
        );
        assert_eq!((by_owner.created_at, by_owner.updated_at), (t(0), t(1)));
        let change = QuoteEdit {
            text: Some(" moderated ".into()),
            ..QuoteEdit::default()
        };
        assert_eq!(
            edit(&conn, id, BOB, true, &change, t(2)).unwrap().text,
            "moderated"
        );
        delete(&conn, id, BOB, true).unwrap();
        assert_eq!(get(&conn, id).unwrap(), None);
        assert!(matches!(
            delete(&conn, id, ALICE, true),
            Err(QuoteError::NotFound { .. })
        ));
    }

    #[test]
    fn a_search_costs_a_few_index_lookups_whatever_is_typed() {
        let many_letters = "a b c d e f g h i j k l m n o p";
        let query = fts_query(many_letters).unwrap();
        assert_eq!(query.matches('"').count(), 2 * MAX_SEARCH_WORDS, "{query}");
        assert!(
            !query.contains('*'),
            "one letter is a word, not a prefix: {query}"
        );
        assert_eq!(fts_query("cat Cat CAT cats").unwrap(), r#""cat"* "cats"*"#);

        let (_dir, conn) = guild_db();
        for text in ["a cat sat", "an ant", "catalogue"] {
            add(&conn, &new(text, ALICE), t(0)).unwrap();
        }
        let texts = |query: &str| -> Vec<String> {
            search(&conn, query, 10)
                .unwrap()
                .into_iter()
                .map(|q| q.text)
                .collect()
        };
        assert_eq!(texts("a"), ["a cat sat"], "a whole word");
        assert_eq!(texts("cat").len(), 2, "a prefix from two letters on");
    }

    #[test]
    fn new_words_drop_the_link_to_the_quoted_member_who_may_delete_the_quote() {
        let (_dir, conn) = guild_db();
        let quoted = NewQuote {
            author_id: Some(BOB),
            source: Some(QuoteSource {
                channel_id: 5,
                message_id: 6,
            }),
            ..new("what Bob said", ALICE)
        };
        let id = add(&conn, &quoted, t(0)).unwrap().id;
        let renamed = QuoteEdit {
            author_name: Some("Robert".into()),
            ..QuoteEdit::default()
        };
        let kept = edit(&conn, id, ALICE, false, &renamed, t(1)).unwrap();
        assert_eq!(kept.author_id, Some(BOB), "the words are still Bob's");
        let reworded = QuoteEdit {
            text: Some("what Bob never said".into()),
            ..QuoteEdit::default()
        };
        let changed = edit(&conn, id, ALICE, false, &reworded, t(2)).unwrap();
        assert_eq!(
            (
                changed.author_id,
                changed.source_channel_id,
                changed.source_message_id
            ),
            (None, None, None)
        );

        let other = add(&conn, &quoted, t(3)).unwrap().id;
        assert!(matches!(
            edit(&conn, other, BOB, false, &reworded, t(4)),
            Err(QuoteError::NotAllowed)
        ));
        delete(&conn, other, BOB, false).expect("the quoted member may delete it");
        assert_eq!(get(&conn, other).unwrap(), None);
    }

    #[test]
    fn edits_are_validated_and_must_change_something() {
        let (_dir, conn) = guild_db();
        let id = add(&conn, &new("words", ALICE), t(0)).unwrap().id;
        let edit_with = |change: QuoteEdit| edit(&conn, id, ALICE, false, &change, t(1));
        assert!(matches!(
            edit_with(QuoteEdit::default()),
            Err(QuoteError::NothingToEdit)
        ));
        assert!(matches!(
            edit_with(QuoteEdit {
                text: Some("a".repeat(2001)),
                ..QuoteEdit::default()
            }),
            Err(QuoteError::TextTooLong { .. })
        ));
        assert!(matches!(
            edit_with(QuoteEdit {
                author_name: Some(" ".into()),
                ..QuoteEdit::default()
            }),
            Err(QuoteError::EmptyAuthor)
        ));
        assert!(matches!(
            edit(
                &conn,
                id + 1,
                ALICE,
                true,
                &QuoteEdit {
                    text: Some("x".into()),
                    ..QuoteEdit::default()
                },
                t(1)
            ),
            Err(QuoteError::NotFound { .. })
        ));
    }

    #[test]
    fn a_quote_whose_creator_was_forgotten_is_left_to_moderators() {
        let (_dir, conn) = guild_db();
        let id = add(&conn, &new("orphan", ALICE), t(0)).unwrap().id;
        conn.execute("UPDATE quotes SET added_by = NULL WHERE id = ?1", [id])
            .unwrap();
        assert!(matches!(
            delete(&conn, id, ALICE, false),
            Err(QuoteError::NotAllowed)
        ));
        delete(&conn, id, BOB, true).unwrap();
    }

    #[test]
    fn rating_again_replaces_and_the_average_follows() {
        let (_dir, conn) = guild_db();
        let id = add(&conn, &new("rate me", ALICE), t(0)).unwrap().id;
        // Rating one's own quote is allowed.
        let own = rate(&conn, id, ALICE, 5, t(1)).unwrap();
        assert_eq!((own.rating_avg, own.rating_count), (5.0, 1));
        rate(&conn, id, BOB, 2, t(2)).unwrap();
        let replaced = rate(&conn, id, BOB, 4, t(3)).unwrap();
        assert_eq!((replaced.rating_avg, replaced.rating_count), (4.5, 2));
        let stored = get(&conn, id).unwrap().unwrap();
        assert_eq!((stored.rating_avg, stored.rating_count), (4.5, 2));
        let (bob_rating, created, updated): (u8, i64, i64) = conn
            .query_row(
                "SELECT rating, created_at, updated_at FROM quote_ratings WHERE user_id = ?1",
                [db_id(BOB).unwrap()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(
            (bob_rating, created, updated),
            (4, t(2).timestamp(), t(3).timestamp())
        );
    }

    #[test]
    fn ratings_are_one_to_five_on_existing_quotes() {
        let (_dir, conn) = guild_db();
        let id = add(&conn, &new("rate me", ALICE), t(0)).unwrap().id;
        for bad in [0, 6, 255] {
            let err = rate(&conn, id, BOB, bad, t(1)).unwrap_err();
            assert!(matches!(err, QuoteError::InvalidRating));
            assert!(err.user_message().is_some());
        }
        assert!(matches!(
            rate(&conn, id + 1, BOB, 3, t(1)),
            Err(QuoteError::NotFound { .. })
        ));
        assert!(rate(&conn, id, BOB, 1, t(1)).is_ok());
        assert!(rate(&conn, id, CAROL, 5, t(1)).is_ok());
    }

    #[test]
    fn tags_can_be_added_and_removed_within_the_limit() {
        let (_dir, conn) = guild_db();
        let id = add(
            &conn,
            &NewQuote {
                tags: tags(&["a", "b"]),
                ..new("tagged", ALICE)
            },
            t(0),
        )
        .unwrap()
        .id;
        let more = add_tags(&conn, id, ALICE, false, &tags(&[" B ", "C  d"]), t(1)).unwrap();
        assert_eq!(more.tags, ["a", "b", "c d"]);
        let eight: Vec<String> = (0..8).map(|i| format!("n{i}")).collect();
        assert!(matches!(
            add_tags(&conn, id, ALICE, false, &eight, t(1)),
            Err(QuoteError::TooManyTags { max: 10 })
        ));
        assert_eq!(get(&conn, id).unwrap().unwrap().tags.len(), 3);
        assert_eq!(
            add_tags(&conn, id, BOB, true, &eight[..7], t(1))
                .unwrap()
                .tags
                .len(),
            10
        );
        let fewer = remove_tags(&conn, id, ALICE, false, &tags(&["A", "missing"])).unwrap();
        assert_eq!(fewer.tags.len(), 9);
        assert!(!fewer.tags.contains(&"a".to_owned()));
    }

    #[test]
    fn tag_listing_matches_a_prefix_and_counts_uses() {
        let (_dir, conn) = guild_db();
        for (text, names) in [
            ("one", &["cats", "catalog", "dogs"][..]),
            ("two", &["cats"][..]),
            ("three", &["100%_real"][..]),
        ] {
            add(
                &conn,
                &NewQuote {
                    tags: tags(names),
                    ..new(text, ALICE)
                },
                t(0),
            )
            .unwrap();
        }
        let count = |name: &str, quotes| TagCount {
            name: name.into(),
            quotes,
        };
        assert_eq!(
            tags_with_prefix(&conn, " CAT"),
            [count("cats", 2), count("catalog", 1)]
        );
        assert_eq!(tags_with_prefix(&conn, "100%"), [count("100%_real", 1)]);
        // `%` and `_` are literal, not wildcards.
        assert_eq!(tags_with_prefix(&conn, "%"), []);
        assert_eq!(tags_with_prefix(&conn, "").len(), 4);
        // A tag no quote uses any more is not offered.
        let two = search(&conn, "two", 1).unwrap()[0].id;
        let one = search(&conn, "one", 1).unwrap()[0].id;
        remove_tags(&conn, one, ALICE, false, &tags(&["dogs"])).unwrap();
        delete(&conn, two, ALICE, false).unwrap();
        assert_eq!(
            tags_with_prefix(&conn, ""),
            [count("100%_real", 1), count("catalog", 1), count("cats", 1)]
        );
    }

    fn tags_with_prefix(conn: &Connection, prefix: &str) -> Vec<TagCount> {
        super::tags(conn, prefix, 25).unwrap()
    }

    #[test]
    fn stats_count_and_rank() {
        let (_dir, conn) = guild_db();
        let by = |author: &str, adder| NewQuote {
            author_name: Some(author.into()),
            ..new("words", adder)
        };
        let q1 = add(&conn, &by("Ada", ALICE), t(0)).unwrap().id;
        let q2 = add(&conn, &by("ada", ALICE), t(0)).unwrap().id;
        let q3 = add(&conn, &by("Grace", BOB), t(0)).unwrap().id;
        add(&conn, &new("nameless", BOB), t(0)).unwrap();
        add(&conn, &new("nameless", BOB), t(0)).unwrap();
        add(&conn, &new("nameless", BOB), t(0)).unwrap();
        rate(&conn, q1, BOB, 4, t(1)).unwrap();
        rate(&conn, q1, CAROL, 4, t(1)).unwrap();
        rate(&conn, q2, BOB, 5, t(1)).unwrap();
        rate(&conn, q3, BOB, 3, t(1)).unwrap();
        rate(&conn, q3, CAROL, 2, t(1)).unwrap();

        let stats = stats(&conn, 10, 2).unwrap();
        assert_eq!((stats.quotes, stats.ratings), (6, 5));
        assert_eq!(
            stats.top_authors,
            [
                AuthorCount {
                    author_name: "Ada".into(),
                    quotes: 2
                },
                AuthorCount {
                    author_name: "Grace".into(),
                    quotes: 1
                }
            ]
        );
        // q2's single 5 is below the minimum of two ratings.
        assert_eq!(ids(&stats.top_rated), [q1, q3]);
        assert_eq!(
            stats.top_adders,
            [
                AdderCount {
                    user_id: BOB,
                    quotes: 4
                },
                AdderCount {
                    user_id: ALICE,
                    quotes: 2
                }
            ]
        );
        assert_eq!(ids(&super::stats(&conn, 1, 0).unwrap().top_rated), [q2]);
    }

    #[test]
    fn the_quote_of_the_day_holds_all_day_and_changes_across_days() {
        let (_dir, conn) = guild_db();
        let day =
            |d: u32, h: u32, m: u32, s: u32| Utc.with_ymd_and_hms(2026, 3, d, h, m, s).unwrap();
        assert_eq!(quote_of_the_day(&conn, day(1, 12, 0, 0)).unwrap(), None);
        for i in 0..40 {
            add(&conn, &new(&format!("quote {i}"), ALICE), t(i)).unwrap();
        }
        let mut picks = BTreeSet::new();
        for d in 1..=30 {
            let morning = quote_of_the_day(&conn, day(d, 0, 0, 0)).unwrap().unwrap();
            let noon = quote_of_the_day(&conn, day(d, 12, 30, 0)).unwrap().unwrap();
            let night = quote_of_the_day(&conn, day(d, 23, 59, 59))
                .unwrap()
                .unwrap();
            assert_eq!((morning.id, morning.id), (noon.id, night.id));
            picks.insert(morning.id);
        }
        assert!(picks.len() > 10, "{picks:?}");
    }

    #[test]
    fn autocomplete_offers_numbers_by_prefix_or_by_text() {
        let (_dir, conn) = guild_db();
        let first = add(&conn, &new("first   quote\nwith lines", ALICE), t(0))
            .unwrap()
            .id;
        for i in 0..11 {
            add(&conn, &new(&format!("filler {i}"), ALICE), t(0)).unwrap();
        }
        let long = add(&conn, &new(&"word ".repeat(100), ALICE), t(0))
            .unwrap()
            .id;
        assert_eq!(first, 1);
        let numbers = |typed: &str| -> Vec<i64> {
            autocomplete_ids(&conn, typed, 25)
                .unwrap()
                .into_iter()
                .map(|(id, _)| id)
                .collect()
        };
        assert_eq!(numbers("1"), [1, 10, 11, 12, 13]);
        assert_eq!(numbers(" #12 "), [12]);
        assert_eq!(numbers("99"), Vec::<i64>::new());
        assert_eq!(numbers("fir"), [1]);
        assert_eq!(numbers("\"("), Vec::<i64>::new());
        assert_eq!(numbers("")[..2], [long, long - 1]);
        assert_eq!(autocomplete_ids(&conn, "", 3).unwrap().len(), 3);

        let shown = autocomplete_ids(&conn, "1", 1).unwrap();
        assert_eq!(shown, [(1, "first quote with lines".to_owned())]);
        let cut = &autocomplete_ids(&conn, &long.to_string(), 1).unwrap()[0].1;
        assert_eq!(cut.chars().count(), 80);
        assert!(cut.ends_with('…'));
    }
}
