//! Reading the legacy single database and turning it into one [`GuildPlan`] per guild: every
//! row validated and mapped to the per-guild schema's shape, every row left out counted under a
//! reason in [`Skipped`]. This is where the rules of legacy-format.md are decided; writing a
//! plan into a guild's database is `target.rs`.
//!
//! The source is read in one pass per table, each sorted by its guild key, and the six sorted
//! streams are merged, so only one guild's rows are in memory at a time whatever the size of
//! the source. The key is the guild id as text (or `--default-guild` for rows without one),
//! compared bytewise in SQL and in Rust alike; a valid guild id has exactly one text form
//! (see [`parse_snowflake`]), so one guild is exactly one key.
//!
//! The source is not trusted. [`vet`] decides whether it is read at all, and every text is cut
//! in SQL to the bytes of a documented number of characters ([`capped`]) before it reaches
//! this process. Every table is read through [`Layout`], so a column or table the layout
//! lacks reads as NULL or as no rows.
//!
//! Not here: opening the source (read-only, `immutable`) and the sha256 check (`mod.rs`),
//! telling the layouts apart (`layout.rs`).

use std::collections::{hash_map::Entry, BTreeMap, BTreeSet, HashMap, HashSet};

use anyhow::{bail, ensure};
use rusqlite::{types::ValueRef, Connection, OptionalExtension, Row, Rows, Statement};

use super::{layout::Layout, time::parse_legacy_time};
use crate::ops::progress::Progress;

/// Limits of the per-guild schema's CHECK constraints, in characters as SQLite's `length()`
/// counts them.
const QUOTE_TEXT_MAX: usize = 2000;
const AUTHOR_NAME_MAX: usize = 100;
const TAG_NAME_MAX: usize = 32;
const TAG_DESCRIPTION_MAX: usize = 200;
const REMINDER_MESSAGE_MAX: usize = 4000;
/// Opt-in preferences (JSON) longer than this are dropped; the schema sets no limit, and a
/// member's preferences are a few flags.
const PREFERENCES_MAX: usize = 4000;
/// Times, statuses, kinds, ratings and opt-in flags: no value the rules accept is longer, so
/// what lies beyond is never read.
const SHORT_TEXT_MAX: usize = 64;
/// Characters of an id read: one more than the longest snowflake, so a longer id stays
/// invalid. A guild key is cut to as many bytes: a valid id is ASCII.
const SNOWFLAKE_READ: usize = 20;

/// The tables the import reads.
const TABLES: [&str; 7] = [
    "quotes",
    "tags",
    "quote_tags",
    "quote_ratings",
    "reminders",
    "reminder_assignments",
    "user_communications",
];

/// Whether the source may be read at all, decided before any query trusts its shape. It must
/// pass `PRAGMA quick_check` (a damaged page fails here, not half-way through an import); its
/// schema may hold only tables and indexes, for a view or trigger is code that runs when the
/// import reads (a view named `quotes` that joined itself grew a dry run to 428 MB; a
/// recursive one never ended); and every table must be an ordinary table without generated
/// columns, which are code too. The error names the object refused.
/// Whatever the legacy format, these checks stay the same.
pub fn vet(source: &Connection) -> anyhow::Result<()> {
    let check: String = source.query_row("PRAGMA quick_check(1)", [], |r| r.get(0))?;
    ensure!(check == "ok", "it fails SQLite's quick_check: {check}");
    let mut schema = source.prepare("SELECT type, name, sql FROM main.sqlite_schema")?;
    let mut objects = schema.query([])?;
    while let Some(object) = objects.next()? {
        let (kind, name): (String, String) = (object.get(0)?, object.get(1)?);
        let sql: Option<String> = object.get(2)?;
        let words: Vec<String> = sql
            .as_deref()
            .unwrap_or_default()
            .split_whitespace()
            .take(2)
            .map(str::to_ascii_uppercase)
            .collect();
        let kind = match kind.as_str() {
            "table" if words == ["CREATE", "VIRTUAL"] => "virtual table",
            "table" | "index" => continue,
            _ => kind.as_str(),
        };
        bail!(
            "it has a {kind} `{}`; a legacy database may hold only tables and indexes",
            name.escape_debug()
        );
    }
    // Which of the tables read are there is the layout's business (`layout.rs`); those that
    // are must be ordinary tables, and no table may compute a column.
    let mut tables = source.prepare(
        "SELECT name, type FROM pragma_table_list WHERE schema = 'main' \
         AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
    )?;
    let tables: Vec<(String, String)> = tables
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (table, kind) in tables {
        if kind != "table" {
            bail!(
                "its `{}` is a {kind}, not an ordinary table",
                table.escape_debug()
            );
        }
        let generated: Option<String> = source
            .query_row(
                "SELECT name FROM pragma_table_xinfo(?1) WHERE hidden IN (2, 3) LIMIT 1",
                [&table],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(column) = generated {
            bail!(
                "its `{}` has a generated column `{}`",
                table.escape_debug(),
                column.escape_debug()
            );
        }
    }
    Ok(())
}

/// `column` as the import reads it: a text (or blob) cut in SQL to the bytes `chars`
/// characters can take in UTF-8 (four each), so a value of any size costs no more than that
/// once it leaves SQLite; numbers as they are. The cut is made on the bytes, as a blob:
/// SQLite's text functions stop at a NUL, which would make `"123\0x"` read as `"123"`.
fn capped(column: &str, chars: usize) -> String {
    format!(
        "CASE WHEN typeof({column}) IN ('text', 'blob') \
         THEN substr(CAST({column} AS BLOB), 1, {}) ELSE {column} END",
        chars * 4
    )
}

/// Guild id values that mean "no guild": empty, and the `'legacy'` that VeraBot's own
/// single-to-multi script (scripts/archived/migration-single-to-multi.js) read as "every
/// guild", like a missing one.
const NO_GUILD: &str = "('', 'legacy')";

/// Rows not imported as they were, by `<source table>.<reason>`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Skipped(pub BTreeMap<String, u64>);

impl Skipped {
    pub fn add(&mut self, table: &str, reason: &str, n: u64) {
        if n > 0 {
            *self.0.entry(format!("{table}.{reason}")).or_default() += n;
        }
    }

    pub fn merge(&mut self, other: Skipped) {
        for (reason, n) in other.0 {
            *self.0.entry(reason).or_default() += n;
        }
    }
}

/// Which guilds to import and where rows without a guild go.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Empty: every guild.
    pub guilds: BTreeSet<u64>,
    pub default_guild: Option<u64>,
    /// Where reminders that VeraBot posted in its one notification channel are posted.
    pub reminder_channel: Option<u64>,
    /// Rows without a guild, and global opt-ins, go to every guild imported: what VeraBot's
    /// own single-to-multi script did.
    pub to_every_guild: bool,
}

/// One tag as the target receives it: the legacy tags whose trimmed, lower-cased names are
/// equal, merged under the lowest source id.
#[derive(Debug, Clone)]
pub struct PlannedTag {
    pub name: String,
    pub description: Option<String>,
    pub created_at: Option<i64>,
    pub legacy_id: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct PlannedQuote {
    pub legacy_id: i64,
    pub text: String,
    pub author_name: String,
    pub added_by: Option<i64>,
    pub created_at: Option<i64>,
    /// The last edit; `None`: never edited (the creation time).
    pub updated_at: Option<i64>,
    /// Recomputed from the ratings of this plan, never copied from `averageRating`.
    pub rating_avg: f64,
    pub rating_count: i64,
}

#[derive(Debug, Clone)]
pub struct PlannedRating {
    pub legacy_id: i64,
    pub quote_legacy_id: i64,
    pub user_id: i64,
    pub rating: i64,
    pub created_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct PlannedReminder {
    pub legacy_id: i64,
    pub created_by: Option<i64>,
    /// `None`: a direct message; otherwise posted in this channel.
    pub channel_id: Option<i64>,
    pub message: String,
    pub due_at: i64,
    pub status: &'static str,
    pub last_error: Option<String>,
    pub created_at: Option<i64>,
    pub updated_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct PlannedAssignee {
    pub legacy_id: i64,
    pub reminder_legacy_id: i64,
    pub kind: &'static str,
    pub assignee_id: i64,
}

#[derive(Debug, Clone)]
pub struct PlannedOptin {
    /// The source row's rowid (`user_communications` has no id column); for a global choice
    /// applied to this guild, the global row's.
    pub legacy_id: i64,
    pub user_id: i64,
    pub dm_opt_in: bool,
    pub preferences: Option<String>,
    pub created_at: Option<i64>,
    pub updated_at: Option<i64>,
}

/// Everything one guild receives from the source. Links refer to quotes and reminders by
/// legacy id and to tags by index into `tags`.
#[derive(Debug, Clone, Default)]
pub struct GuildPlan {
    pub guild: u64,
    pub tags: Vec<PlannedTag>,
    pub quotes: Vec<PlannedQuote>,
    pub quote_tags: Vec<(i64, usize)>,
    pub ratings: Vec<PlannedRating>,
    pub reminders: Vec<PlannedReminder>,
    pub assignees: Vec<PlannedAssignee>,
    pub optins: Vec<PlannedOptin>,
}

/// A Discord snowflake as the legacy bot wrote it: decimal digits without sign, spaces or
/// leading zeros, not zero, and small enough for the schema's INTEGER columns. Anything else
/// is not an id; for a guild this also keeps every odd text from ever becoming a path.
pub fn parse_snowflake(text: &str) -> Option<i64> {
    let canonical = !text.is_empty()
        && text.len() <= 19
        && text.bytes().all(|b| b.is_ascii_digit())
        && !text.starts_with('0');
    canonical.then(|| text.parse::<i64>().ok()).flatten()
}

/// Number of rows in each source table, for the progress bar.
pub fn count_rows(source: &Connection, layout: &Layout) -> rusqlite::Result<u64> {
    let mut total = 0u64;
    // Tags are read whole before the first guild, and so are not counted as progress.
    for table in TABLES.into_iter().filter(|t| *t != "tags") {
        let n: i64 = source.query_row(
            &format!("SELECT count(*) FROM {}", layout.from(table)),
            [],
            |r| r.get(0),
        )?;
        total += n as u64;
    }
    Ok(total)
}

/// Reads the whole source and hands each selected guild's plan to `emit`, in guild key order.
/// Returns the rows skipped while planning.
pub fn read_source(
    source: &Connection,
    layout: &Layout,
    scope: &Scope,
    now: i64,
    progress: &Progress,
    mut emit: impl FnMut(GuildPlan) -> anyhow::Result<()>,
) -> anyhow::Result<Skipped> {
    let mut skipped = Skipped::default();
    for (table, rows) in &layout.ignored {
        skipped.add(table, "table_not_imported", *rows);
    }
    let catalog = TagCatalog::load(source, layout, &mut skipped)?;
    let mut globals = GlobalOptins::load(source, layout, &mut skipped)?;
    // With `to_every_guild`, rows without a guild get the key '' (which sorts before every
    // guild id) and are held as one group, copied into each guild's plan: no more memory than
    // one guild's rows, which the reader holds anyway.
    let default = if scope.to_every_guild {
        Some(String::new())
    } else {
        scope.default_guild.map(|g| g.to_string())
    };
    let mut shared: Option<Group> = None;
    let mut shared_used = false;

    let mut quotes_sql = source.prepare(&format!(
        "SELECT {}, id, {}, {}, {}, {}, {}, {} FROM {} ORDER BY 1, id",
        key_sql("guildId", "1"),
        capped("text", QUOTE_TEXT_MAX + 1),
        capped("author", AUTHOR_NAME_MAX + 1),
        capped("addedBy", SNOWFLAKE_READ),
        capped("addedAt", SHORT_TEXT_MAX + 1),
        capped("category", TAG_NAME_MAX + 1),
        capped("updatedAt", SHORT_TEXT_MAX + 1),
        layout.from("quotes")
    ))?;
    let mut links_sql = source.prepare(&format!(
        "SELECT {}, qt.quoteId, qt.tagId, q.id IS NULL FROM {} qt \
         LEFT JOIN {} q ON q.id = qt.quoteId ORDER BY 1",
        key_sql("q.guildId", "q.id IS NOT NULL"),
        layout.from("quote_tags"),
        layout.from("quotes")
    ))?;
    let mut ratings_sql = source.prepare(&format!(
        "SELECT {}, r.id, r.quoteId, {}, {}, {}, q.id IS NULL \
         FROM {} r LEFT JOIN {} q ON q.id = r.quoteId ORDER BY 1, r.id",
        key_sql("q.guildId", "q.id IS NOT NULL"),
        capped("r.userId", SNOWFLAKE_READ),
        capped("r.rating", SHORT_TEXT_MAX + 1),
        capped("r.createdAt", SHORT_TEXT_MAX + 1),
        layout.from("quote_ratings"),
        layout.from("quotes")
    ))?;
    let mut reminders_sql = source.prepare(&format!(
        "SELECT {}, id, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, \
         EXISTS (SELECT 1 FROM {} n WHERE n.reminderId = r.id AND n.success = 1) \
         FROM {} r ORDER BY 1, id",
        key_sql("guildId", "1"),
        capped("subject", REMINDER_MESSAGE_MAX + 1),
        capped("when_datetime", SHORT_TEXT_MAX + 1),
        capped("content", REMINDER_MESSAGE_MAX + 1),
        capped("link", REMINDER_MESSAGE_MAX + 1),
        capped("status", SHORT_TEXT_MAX + 1),
        capped("notification_method", SHORT_TEXT_MAX + 1),
        capped("channelId", SNOWFLAKE_READ),
        capped("createdBy", SNOWFLAKE_READ),
        capped("createdAt", SHORT_TEXT_MAX + 1),
        capped("category", TAG_NAME_MAX + 1),
        capped("image", REMINDER_MESSAGE_MAX + 1),
        capped("notificationTime", SHORT_TEXT_MAX + 1),
        capped("updatedAt", SHORT_TEXT_MAX + 1),
        layout.from("reminder_notifications"),
        layout.from("reminders")
    ))?;
    let mut assignments_sql = source.prepare(&format!(
        "SELECT {}, a.id, a.reminderId, {}, {}, r.id IS NULL \
         FROM {} a LEFT JOIN {} r ON r.id = a.reminderId ORDER BY 1, a.id",
        key_sql("r.guildId", "r.id IS NOT NULL"),
        capped("a.assigneeType", SHORT_TEXT_MAX + 1),
        capped("a.assigneeId", SNOWFLAKE_READ),
        layout.from("reminder_assignments"),
        layout.from("reminders")
    ))?;
    // Opt-ins without a guild are the global ones, loaded above; `--default-guild` is for
    // rows from before multi-guild support and does not apply to a deliberate global choice.
    let mut optins_sql = source.prepare(&format!(
        "SELECT {}, {} FROM {} WHERE coalesce(guild_id, '') NOT IN {NO_GUILD} \
         ORDER BY 1, rowid",
        guild_text("guild_id"),
        optin_columns(),
        layout.from("user_communications")
    ))?;

    let mut quotes = Stream::open(&mut quotes_sql, &default, read_quote)?;
    let mut links = Stream::open(&mut links_sql, &default, read_link)?;
    let mut ratings = Stream::open(&mut ratings_sql, &default, read_rating)?;
    let mut reminders = Stream::open(&mut reminders_sql, &default, read_reminder)?;
    let mut assignments = Stream::open(&mut assignments_sql, &default, read_assignment)?;
    let mut optins = Stream::open(&mut optins_sql, &None::<String>, read_optin)?;

    loop {
        let next = [
            quotes.key(),
            links.key(),
            ratings.key(),
            reminders.key(),
            assignments.key(),
            optins.key(),
        ]
        .into_iter()
        .flatten()
        .min()
        .cloned();
        let Some(key) = next else { break };
        let group = Group {
            quotes: quotes.take(&key)?,
            links: links.take(&key)?,
            ratings: ratings.take(&key)?,
            reminders: reminders.take(&key)?,
            assignments: assignments.take(&key)?,
            optins: optins.take(&key)?,
        };
        progress.advance_by(group.rows());
        if scope.to_every_guild && key.as_deref() == Some("") {
            shared = Some(group);
            continue;
        }
        let guild = key.as_deref().map(parse_snowflake);
        match guild {
            None => group.skip_without_guild(&mut skipped),
            Some(None) => group.skip_all("invalid_guild_id", &mut skipped),
            Some(Some(id)) if !scope.guilds.is_empty() && !scope.guilds.contains(&(id as u64)) => {
                group.skip_all("guild_not_selected", &mut skipped)
            }
            Some(Some(id)) => {
                let group = match &shared {
                    Some(rows) => {
                        shared_used = true;
                        group.with(rows.clone())
                    }
                    None => group,
                };
                let plan = group.plan(id as u64, &catalog, &mut globals, scope, now, &mut skipped);
                emit(plan)?;
            }
        }
    }
    if let Some(rows) = shared.filter(|_| !shared_used) {
        rows.skip_without_guild(&mut skipped);
    }
    skipped.add(
        "user_communications",
        "global_choice_of_user_in_no_imported_guild",
        globals.unused(),
    );
    Ok(skipped)
}

/// The guild key of a row: its guild id as text, `?1` (the default guild, or NULL) when it has
/// none, and NULL when `exists` is false (a link whose parent row is missing).
fn key_sql(column: &str, exists: &str) -> String {
    format!(
        "CASE WHEN NOT ({exists}) THEN NULL \
              WHEN coalesce({column}, '') IN {NO_GUILD} THEN CAST(?1 AS BLOB) \
              ELSE {} END",
        guild_text(column)
    )
}

/// A guild id column as text, cut to [`SNOWFLAKE_READ`] bytes: a blob, for the same reason as
/// in [`capped`], and so that all keys (the default guild's too) compare bytewise, in SQL as
/// in Rust.
fn guild_text(column: &str) -> String {
    format!("substr(CAST(CAST({column} AS TEXT) AS BLOB), 1, {SNOWFLAKE_READ})")
}

/// The columns of `user_communications` that [`read_optin`] reads, after the guild key.
fn optin_columns() -> String {
    format!(
        "rowid, {}, {}, {}, {}, {}",
        capped("user_id", SNOWFLAKE_READ),
        capped("opted_in", SHORT_TEXT_MAX + 1),
        capped("preferences", PREFERENCES_MAX + 1),
        capped("created_at", SHORT_TEXT_MAX + 1),
        capped("updated_at", SHORT_TEXT_MAX + 1),
    )
}

/// Any SQLite value as text: the legacy bot was loose about types in TEXT columns.
fn text(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<String>> {
    Ok(match row.get_ref(index)? {
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some(i.to_string()),
        ValueRef::Real(f) => Some(f.to_string()),
        ValueRef::Text(t) | ValueRef::Blob(t) => Some(String::from_utf8_lossy(t).into_owned()),
    })
}

/// A sorted query over one source table, read one row ahead so that groups can be cut at the
/// key boundary.
struct Stream<'s, T> {
    rows: Rows<'s>,
    read: fn(&Row<'_>) -> rusqlite::Result<T>,
    head: Option<(Option<String>, T)>,
}

impl<'s, T> Stream<'s, T> {
    fn open(
        statement: &'s mut Statement<'_>,
        default_guild: &Option<String>,
        read: fn(&Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<Self> {
        let rows = if statement.parameter_count() == 1 {
            statement.query([default_guild])?
        } else {
            statement.query([])?
        };
        let mut stream = Self {
            rows,
            read,
            head: None,
        };
        stream.advance()?;
        Ok(stream)
    }

    fn advance(&mut self) -> rusqlite::Result<()> {
        self.head = match self.rows.next()? {
            Some(row) => Some((text(row, 0)?, (self.read)(row)?)),
            None => None,
        };
        Ok(())
    }

    fn key(&self) -> Option<&Option<String>> {
        self.head.as_ref().map(|(key, _)| key)
    }

    fn take(&mut self, key: &Option<String>) -> rusqlite::Result<Vec<T>> {
        let mut taken = Vec::new();
        while self.key() == Some(key) {
            if let Some((_, row)) = self.head.take() {
                taken.push(row);
            }
            self.advance()?;
        }
        Ok(taken)
    }
}

#[derive(Clone)]
struct LegacyQuote {
    id: i64,
    text: Option<String>,
    author: Option<String>,
    added_by: Option<String>,
    added_at: Option<String>,
    category: Option<String>,
    updated_at: Option<String>,
}

fn read_quote(row: &Row<'_>) -> rusqlite::Result<LegacyQuote> {
    Ok(LegacyQuote {
        id: row.get(1)?,
        text: text(row, 2)?,
        author: text(row, 3)?,
        added_by: text(row, 4)?,
        added_at: text(row, 5)?,
        category: text(row, 6)?,
        updated_at: text(row, 7)?,
    })
}

#[derive(Clone)]
struct LegacyLink {
    quote_id: i64,
    tag_id: i64,
    orphan: bool,
}

fn read_link(row: &Row<'_>) -> rusqlite::Result<LegacyLink> {
    Ok(LegacyLink {
        quote_id: row.get(1)?,
        tag_id: row.get(2)?,
        orphan: row.get(3)?,
    })
}

#[derive(Clone)]
struct LegacyRating {
    id: i64,
    quote_id: i64,
    user_id: Option<String>,
    rating: Option<String>,
    created_at: Option<String>,
    orphan: bool,
}

fn read_rating(row: &Row<'_>) -> rusqlite::Result<LegacyRating> {
    Ok(LegacyRating {
        id: row.get(1)?,
        quote_id: row.get(2)?,
        user_id: text(row, 3)?,
        rating: text(row, 4)?,
        created_at: text(row, 5)?,
        orphan: row.get(6)?,
    })
}

#[derive(Clone)]
struct LegacyReminder {
    id: i64,
    subject: Option<String>,
    when: Option<String>,
    content: Option<String>,
    link: Option<String>,
    status: Option<String>,
    method: Option<String>,
    channel_id: Option<String>,
    created_by: Option<String>,
    created_at: Option<String>,
    category: Option<String>,
    image: Option<String>,
    notification_time: Option<String>,
    updated_at: Option<String>,
    /// VeraBot's notifier recorded a successful send, after which it never sent it again.
    notified: bool,
}

fn read_reminder(row: &Row<'_>) -> rusqlite::Result<LegacyReminder> {
    Ok(LegacyReminder {
        id: row.get(1)?,
        subject: text(row, 2)?,
        when: text(row, 3)?,
        content: text(row, 4)?,
        link: text(row, 5)?,
        status: text(row, 6)?,
        method: text(row, 7)?,
        channel_id: text(row, 8)?,
        created_by: text(row, 9)?,
        created_at: text(row, 10)?,
        category: text(row, 11)?,
        image: text(row, 12)?,
        notification_time: text(row, 13)?,
        updated_at: text(row, 14)?,
        notified: row.get(15)?,
    })
}

#[derive(Clone)]
struct LegacyAssignment {
    id: i64,
    reminder_id: i64,
    kind: Option<String>,
    assignee_id: Option<String>,
    orphan: bool,
}

fn read_assignment(row: &Row<'_>) -> rusqlite::Result<LegacyAssignment> {
    Ok(LegacyAssignment {
        id: row.get(1)?,
        reminder_id: row.get(2)?,
        kind: text(row, 3)?,
        assignee_id: text(row, 4)?,
        orphan: row.get(5)?,
    })
}

#[derive(Clone)]
struct LegacyOptin {
    rowid: i64,
    user_id: Option<String>,
    opted_in: Option<String>,
    preferences: Option<String>,
    created_at: Option<String>,
    updated_at: Option<String>,
}

fn read_optin(row: &Row<'_>) -> rusqlite::Result<LegacyOptin> {
    Ok(LegacyOptin {
        rowid: row.get(1)?,
        user_id: text(row, 2)?,
        opted_in: text(row, 3)?,
        preferences: text(row, 4)?,
        created_at: text(row, 5)?,
        updated_at: text(row, 6)?,
    })
}

/// A legacy time; one longer than any accepted format (cut when read) is not a time.
fn time(raw: &Option<String>) -> Option<i64> {
    raw.as_deref()
        .filter(|t| t.chars().count() <= SHORT_TEXT_MAX)
        .and_then(parse_legacy_time)
}

fn snowflake(raw: &Option<String>) -> Option<i64> {
    raw.as_deref().and_then(parse_snowflake)
}

fn truncate_chars(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// A tag name as the target stores it: without NULs (SQLite's length() stops at one), trimmed
/// and lower case; `None` when that is empty or longer than the schema allows.
fn normalise_tag(name: &str) -> Option<String> {
    let name = name.replace('\0', "").trim().to_lowercase();
    (!name.is_empty() && name.chars().count() <= TAG_NAME_MAX).then_some(name)
}

/// The global tag table, merged by normalised name.
struct TagCatalog {
    merged: Vec<PlannedTag>,
    by_name: HashMap<String, usize>,
    /// Source tag id to merged tag; `None` for a tag whose name the target cannot hold.
    by_id: HashMap<i64, Option<usize>>,
}

impl TagCatalog {
    fn load(source: &Connection, layout: &Layout, skipped: &mut Skipped) -> anyhow::Result<Self> {
        let mut catalog = Self {
            merged: Vec::new(),
            by_name: HashMap::new(),
            by_id: HashMap::new(),
        };
        let mut statement = source.prepare(&format!(
            "SELECT id, {}, {}, {} FROM {} ORDER BY id",
            capped("name", TAG_NAME_MAX + 1),
            capped("description", TAG_DESCRIPTION_MAX),
            capped("createdAt", SHORT_TEXT_MAX + 1),
            layout.from("tags")
        ))?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            let id: i64 = row.get(0)?;
            let Some(name) = text(row, 1)?.as_deref().and_then(normalise_tag) else {
                catalog.by_id.insert(id, None);
                skipped.add("tags", "invalid_name", 1);
                continue;
            };
            // Ascending ids: the first spelling seen is the lowest id, which the merge keeps.
            let index = *catalog.by_name.entry(name.clone()).or_insert_with(|| {
                catalog.merged.push(PlannedTag {
                    name,
                    description: None,
                    created_at: None,
                    legacy_id: Some(id),
                });
                catalog.merged.len() - 1
            });
            let tag = &mut catalog.merged[index];
            if tag.description.is_none() {
                tag.description = text(row, 2)?
                    .filter(|d| !d.trim().is_empty())
                    .map(|d| truncate_chars(&d, TAG_DESCRIPTION_MAX));
            }
            if tag.created_at.is_none() {
                tag.created_at = time(&text(row, 3)?);
            }
            catalog.by_id.insert(id, Some(index));
        }
        Ok(catalog)
    }
}

/// `user_communications` rows without a guild: a choice made before multi-guild support,
/// applied to every guild where the user appears.
struct GlobalOptins {
    by_user: HashMap<i64, PlannedOptin>,
    used: HashSet<i64>,
}

impl GlobalOptins {
    fn load(source: &Connection, layout: &Layout, skipped: &mut Skipped) -> anyhow::Result<Self> {
        let mut by_user = HashMap::new();
        let mut statement = source.prepare(&format!(
            "SELECT NULL, {} FROM {} WHERE coalesce(guild_id, '') IN {NO_GUILD} ORDER BY rowid",
            optin_columns(),
            layout.from("user_communications")
        ))?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            match plan_optin(&read_optin(row)?, skipped) {
                Some(optin) => match by_user.entry(optin.user_id) {
                    Entry::Occupied(_) => {
                        skipped.add("user_communications", "duplicate_global_choice", 1)
                    }
                    Entry::Vacant(slot) => {
                        slot.insert(optin);
                    }
                },
                None => continue,
            }
        }
        Ok(Self {
            by_user,
            used: HashSet::new(),
        })
    }

    /// The global choice of `user`, who appears in a guild being imported.
    fn for_user(&mut self, user: i64) -> Option<PlannedOptin> {
        let optin = self.by_user.get(&user)?.clone();
        self.used.insert(user);
        Some(optin)
    }

    /// Every member with a global choice.
    fn users(&self) -> Vec<i64> {
        self.by_user.keys().copied().collect()
    }

    fn unused(&self) -> u64 {
        (self.by_user.len() - self.used.len()) as u64
    }
}

fn plan_optin(row: &LegacyOptin, skipped: &mut Skipped) -> Option<PlannedOptin> {
    let Some(user_id) = snowflake(&row.user_id) else {
        skipped.add("user_communications", "invalid_user_id", 1);
        return None;
    };
    let preferences = match row.preferences.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(json) if json.chars().count() > PREFERENCES_MAX => {
            skipped.add("user_communications", "preferences_too_long_dropped", 1);
            None
        }
        Some(json) if serde_json::from_str::<serde_json::Value>(json).is_ok() => {
            Some(json.to_owned())
        }
        Some(_) => {
            // The row is kept (the DM choice matters more); only the unreadable text is not.
            skipped.add("user_communications", "preferences_not_json_dropped", 1);
            None
        }
    };
    let dm_opt_in = row
        .opted_in
        .as_deref()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .is_some_and(|v| v != 0.0);
    Some(PlannedOptin {
        legacy_id: row.rowid,
        user_id,
        dm_opt_in,
        preferences,
        created_at: time(&row.created_at),
        updated_at: time(&row.updated_at),
    })
}

/// The rows of every source table that share one guild key.
#[derive(Clone)]
struct Group {
    quotes: Vec<LegacyQuote>,
    links: Vec<LegacyLink>,
    ratings: Vec<LegacyRating>,
    reminders: Vec<LegacyReminder>,
    assignments: Vec<LegacyAssignment>,
    optins: Vec<LegacyOptin>,
}

impl Group {
    /// These rows and `other`'s, as one guild's.
    fn with(mut self, other: Group) -> Self {
        self.quotes.extend(other.quotes);
        self.links.extend(other.links);
        self.ratings.extend(other.ratings);
        self.reminders.extend(other.reminders);
        self.assignments.extend(other.assignments);
        self.optins.extend(other.optins);
        self
    }

    fn rows(&self) -> u64 {
        (self.quotes.len()
            + self.links.len()
            + self.ratings.len()
            + self.reminders.len()
            + self.assignments.len()
            + self.optins.len()) as u64
    }

    fn skip_all(&self, reason: &str, skipped: &mut Skipped) {
        skipped.add("quotes", reason, self.quotes.len() as u64);
        skipped.add("quote_tags", reason, self.links.len() as u64);
        skipped.add("quote_ratings", reason, self.ratings.len() as u64);
        skipped.add("reminders", reason, self.reminders.len() as u64);
        skipped.add(
            "reminder_assignments",
            reason,
            self.assignments.len() as u64,
        );
        skipped.add("user_communications", reason, self.optins.len() as u64);
    }

    /// The NULL key: rows without a guild (and no `--default-guild`) and links whose parent
    /// row does not exist.
    fn skip_without_guild(&self, skipped: &mut Skipped) {
        let orphans = |flags: &mut dyn Iterator<Item = bool>| {
            flags.fold(
                (0, 0),
                |(o, n), orphan| if orphan { (o + 1, n) } else { (o, n + 1) },
            )
        };
        skipped.add("quotes", "no_guild", self.quotes.len() as u64);
        skipped.add("reminders", "no_guild", self.reminders.len() as u64);
        let (o, n) = orphans(&mut self.links.iter().map(|l| l.orphan));
        skipped.add("quote_tags", "orphan_quote", o);
        skipped.add("quote_tags", "no_guild", n);
        let (o, n) = orphans(&mut self.ratings.iter().map(|r| r.orphan));
        skipped.add("quote_ratings", "orphan_quote", o);
        skipped.add("quote_ratings", "no_guild", n);
        let (o, n) = orphans(&mut self.assignments.iter().map(|a| a.orphan));
        skipped.add("reminder_assignments", "orphan_reminder", o);
        skipped.add("reminder_assignments", "no_guild", n);
    }

    fn plan(
        self,
        guild: u64,
        catalog: &TagCatalog,
        globals: &mut GlobalOptins,
        scope: &Scope,
        now: i64,
        skipped: &mut Skipped,
    ) -> GuildPlan {
        let mut plan = GuildPlan {
            guild,
            ..GuildPlan::default()
        };
        // Users who appear in this guild, for the global opt-ins.
        let mut users = BTreeSet::new();
        let mut tag_slots: HashMap<usize, usize> = HashMap::new();
        let mut tag_slot = |plan: &mut GuildPlan, merged: usize| {
            *tag_slots.entry(merged).or_insert_with(|| {
                plan.tags.push(catalog.merged[merged].clone());
                plan.tags.len() - 1
            })
        };
        let mut links: BTreeSet<(i64, usize)> = BTreeSet::new();

        let mut quote_index: HashMap<i64, usize> = HashMap::new();
        let mut categories = Vec::new();
        for quote in self.quotes {
            users.extend(snowflake(&quote.added_by));
            // SQLite's length() stops at a NUL, so the target's CHECKs would refuse the guild.
            let text = quote.text.unwrap_or_default().replace('\0', "");
            let length = text.chars().count();
            if length == 0 || text.trim().is_empty() {
                skipped.add("quotes", "empty_text", 1);
                continue;
            }
            if length > QUOTE_TEXT_MAX {
                skipped.add("quotes", "text_too_long", 1);
                continue;
            }
            let author = quote
                .author
                .as_deref()
                .map(|a| a.replace('\0', ""))
                .as_deref()
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map_or_else(
                    || "Anonymous".to_owned(),
                    |a| truncate_chars(a, AUTHOR_NAME_MAX),
                );
            quote_index.insert(quote.id, plan.quotes.len());
            if let Some(category) = quote.category.as_deref() {
                categories.push((quote.id, category.to_owned()));
            }
            plan.quotes.push(PlannedQuote {
                legacy_id: quote.id,
                text,
                author_name: author,
                added_by: snowflake(&quote.added_by),
                created_at: time(&quote.added_at),
                updated_at: time(&quote.updated_at),
                rating_avg: 0.0,
                rating_count: 0,
            });
        }

        for link in self.links {
            if !quote_index.contains_key(&link.quote_id) {
                skipped.add("quote_tags", "quote_skipped", 1);
                continue;
            }
            match catalog.by_id.get(&link.tag_id) {
                None => skipped.add("quote_tags", "orphan_tag", 1),
                Some(None) => skipped.add("quote_tags", "invalid_tag_name", 1),
                Some(Some(merged)) => {
                    let slot = tag_slot(&mut plan, *merged);
                    if !links.insert((link.quote_id, slot)) {
                        skipped.add("quote_tags", "duplicate_after_tag_merge", 1);
                    }
                }
            }
        }

        // A quote's category becomes one more tag, except the default 'General', which says
        // nothing. It merges with a legacy tag of the same name; it adds no quote_tags row
        // when the quote already carries that tag.
        let mut category_tags: HashMap<String, usize> = HashMap::new();
        for (quote_id, category) in categories {
            if category.trim().is_empty() || category.trim().eq_ignore_ascii_case("general") {
                continue;
            }
            let Some(name) = normalise_tag(&category) else {
                skipped.add("quotes", "category_not_a_valid_tag_name", 1);
                continue;
            };
            let slot = match catalog.by_name.get(&name) {
                Some(merged) => tag_slot(&mut plan, *merged),
                None => *category_tags.entry(name.clone()).or_insert_with(|| {
                    plan.tags.push(PlannedTag {
                        name,
                        description: None,
                        created_at: Some(now),
                        legacy_id: None,
                    });
                    plan.tags.len() - 1
                }),
            };
            links.insert((quote_id, slot));
        }
        plan.quote_tags = links.into_iter().collect();

        for rating in self.ratings {
            users.extend(snowflake(&rating.user_id));
            let Some(&index) = quote_index.get(&rating.quote_id) else {
                skipped.add("quote_ratings", "quote_skipped", 1);
                continue;
            };
            let Some(user_id) = snowflake(&rating.user_id) else {
                skipped.add("quote_ratings", "invalid_user_id", 1);
                continue;
            };
            let value = rating
                .rating
                .as_deref()
                .and_then(|r| r.trim().parse::<i64>().ok());
            let Some(value) = value.filter(|v| (1..=5).contains(v)) else {
                skipped.add("quote_ratings", "rating_not_1_to_5", 1);
                continue;
            };
            let quote = &mut plan.quotes[index];
            quote.rating_avg = (quote.rating_avg * quote.rating_count as f64 + value as f64)
                / (quote.rating_count + 1) as f64;
            quote.rating_count += 1;
            plan.ratings.push(PlannedRating {
                legacy_id: rating.id,
                quote_legacy_id: rating.quote_id,
                user_id,
                rating: value,
                created_at: time(&rating.created_at).or(quote.created_at),
            });
        }

        // Assignees first: where a VeraBot reminder goes depends on them. VeraBot's
        // reminder_assignments has no UNIQUE, and a repeated row adds no one.
        let mut assigned: HashMap<i64, Vec<(&'static str, i64)>> = HashMap::new();
        for assignment in self.assignments {
            let kind = match assignment.kind.as_deref().map(str::trim) {
                Some(k) if k.eq_ignore_ascii_case("user") => "user",
                Some(k) if k.eq_ignore_ascii_case("role") => "role",
                _ => {
                    skipped.add("reminder_assignments", "invalid_assignee_type", 1);
                    continue;
                }
            };
            let Some(assignee_id) = snowflake(&assignment.assignee_id) else {
                skipped.add("reminder_assignments", "invalid_assignee_id", 1);
                continue;
            };
            let of_reminder = assigned.entry(assignment.reminder_id).or_default();
            if of_reminder.contains(&(kind, assignee_id)) {
                skipped.add("reminder_assignments", "duplicate", 1);
                continue;
            }
            of_reminder.push((kind, assignee_id));
            if kind == "user" {
                users.insert(assignee_id);
            }
            plan.assignees.push(PlannedAssignee {
                legacy_id: assignment.id,
                reminder_legacy_id: assignment.reminder_id,
                kind,
                assignee_id,
            });
        }

        for reminder in self.reminders {
            users.extend(snowflake(&reminder.created_by));
            let assignees = assigned.remove(&reminder.id).unwrap_or_default();
            plan.reminders.push(plan_reminder(
                reminder,
                &assignees,
                scope.reminder_channel,
                now,
                skipped,
            ));
        }

        let mut chosen_here = HashSet::new();
        for row in &self.optins {
            if let Some(optin) = plan_optin(row, skipped) {
                if chosen_here.insert(optin.user_id) {
                    plan.optins.push(optin);
                } else {
                    skipped.add("user_communications", "duplicate_guild_choice", 1);
                }
            }
        }
        // A choice made in this guild wins over the global one (which still counts as used).
        if scope.to_every_guild {
            users.extend(globals.users());
        }
        for user in users {
            let global = globals.for_user(user);
            if !chosen_here.contains(&user) {
                plan.optins.extend(global);
            }
        }
        plan
    }
}

/// Maps one legacy reminder. It is never dropped: what cannot be delivered as written is kept
/// as cancelled, with the reason (and the raw text) in `last_error`, and counted.
fn plan_reminder(
    row: LegacyReminder,
    assignees: &[(&'static str, i64)],
    reminder_channel: Option<u64>,
    now: i64,
    skipped: &mut Skipped,
) -> PlannedReminder {
    let raw_when = row.when.clone().unwrap_or_default();
    // VeraBot fires at notificationTime (the event time unless set earlier) and shows the
    // event time in the message; the source layout without it has only the event time.
    let notification = row.notification_time.as_deref().and_then(parse_legacy_time);
    let event = parse_legacy_time(&raw_when);
    let mut lines = vec![row.subject.unwrap_or_default()];
    if let Some(category) = row
        .category
        .filter(|c| !c.trim().is_empty() && !c.trim().eq_ignore_ascii_case("general"))
    {
        lines.push(format!("Category: {}", category.trim()));
    }
    if let (Some(event), Some(notification)) = (event, notification) {
        if event != notification {
            lines.push(format!("When: {}", raw_when.trim()));
        }
    }
    lines.extend([row.content, row.link, row.image].into_iter().flatten());
    let mut message = String::new();
    for line in lines {
        // SQLite's length() stops at a NUL, so the target's CHECK would refuse the guild.
        let line = line.replace('\0', "");
        let line = line.trim();
        if !line.is_empty() {
            if !message.is_empty() {
                message.push('\n');
            }
            message.push_str(line);
        }
    }
    if message.is_empty() {
        message = "(legacy reminder without text)".to_owned();
    }
    if message.chars().count() > REMINDER_MESSAGE_MAX {
        skipped.add("reminders", "message_truncated_to_4000_chars", 1);
        message = truncate_chars(&message, REMINDER_MESSAGE_MAX);
    }

    // (reason counted in the report, text kept in last_error) for each way the reminder
    // cannot go out as it was written.
    let mut problems: Vec<(&str, String)> = Vec::new();
    // VeraBot's per-guild notifier wrote 'COMPLETED' where its constants say 'completed'.
    let written = row.status.as_deref().map(|s| s.trim().to_ascii_lowercase());
    let active = matches!(written.as_deref(), None | Some("" | "active"));
    let mut status = match written.as_deref() {
        // VeraBot's notifier never sends a reminder again once a send succeeded.
        _ if active && row.notified => {
            skipped.add("reminders", "notified_by_verabot_kept_sent", 1);
            "sent"
        }
        _ if active => "active",
        // 'completed' is VeraBot's word for sent.
        Some("sent" | "completed") => "sent",
        Some("cancelled") => "cancelled",
        other => {
            problems.push((
                "unknown_status_kept_cancelled",
                format!("unknown status {:?}", other.unwrap_or_default()),
            ));
            "cancelled"
        }
    };

    let due_at = match notification.or(event) {
        Some(at) => at,
        None => {
            problems.push((
                "unparseable_time_kept_cancelled",
                format!("unparseable time {raw_when:?}"),
            ));
            // The moment is unknown; the creation time is the only honest stand-in.
            time(&row.created_at).unwrap_or(now)
        }
    };

    let server = row
        .method
        .as_deref()
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("server"));
    let fallback = reminder_channel.map(|c| c as i64);
    let users: Vec<i64> = assignees
        .iter()
        .filter(|(kind, _)| *kind == "user")
        .map(|(_, id)| *id)
        .collect();
    let mut created_by = snowflake(&row.created_by);
    let mut channel_id = None;
    if server {
        // VeraBot stored no channel and posted in the one its environment named.
        channel_id = snowflake(&row.channel_id).or(fallback);
        if channel_id.is_none() && status == "active" {
            // The schema needs a channel for a channel reminder, and a DM would reach people
            // who never asked for one: kept, as a cancelled DM-kind row, and counted.
            problems.push((
                "server_reminder_without_channel_kept_cancelled",
                format!(
                    "server reminder without a valid channel id ({:?}); import again with \
                     --reminder-channel",
                    row.channel_id.as_deref().unwrap_or_default()
                ),
            ));
        }
    } else if created_by.is_none() {
        // VeraBot stored no creator: it sent a DM to each member assigned and posted for
        // roles in its one notification channel. Its commands assign one member per
        // reminder, so that member is the one our scheduler sends the DM to.
        match (users.as_slice(), assignees.len()) {
            ([user], 1) => created_by = Some(*user),
            // Sent or cancelled: never delivered again, so it needs no target.
            _ if status != "active" => {}
            (_, 0) => problems.push((
                "no_assignee_kept_cancelled",
                "no one is assigned; VeraBot sent it to no one".to_owned(),
            )),
            _ => {
                channel_id = fallback;
                if channel_id.is_none() {
                    problems.push((
                        "for_role_or_several_members_without_channel_kept_cancelled",
                        "for a role or several members, which VeraBot posted in its \
                         notification channel; import again with --reminder-channel"
                            .to_owned(),
                    ));
                }
            }
        }
    }
    for (reason, _) in &problems {
        skipped.add("reminders", reason, 1);
    }
    if !problems.is_empty() {
        status = "cancelled";
    }
    let last_error = (!problems.is_empty()).then(|| {
        problems
            .iter()
            .map(|(_, error)| format!("legacy import: {error}"))
            .collect::<Vec<_>>()
            .join("; ")
    });

    PlannedReminder {
        legacy_id: row.id,
        created_by,
        channel_id,
        message,
        due_at,
        status,
        last_error,
        created_at: time(&row.created_at),
        updated_at: time(&row.updated_at),
    }
}
