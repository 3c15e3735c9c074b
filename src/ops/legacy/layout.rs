//! Which of VeraBot's single-database layouts a source is (docs/verabot-formats.md), and the
//! SQL that reads each of its tables in the one shape `source.rs` expects: a column the file
//! does not have reads as NULL, a table it does not have reads as no rows. Every other table
//! in the file is not imported and is counted, with its rows, in the report.
//!
//! A file is refused, naming what is missing, when it lacks the `quotes` table or a column
//! without which no row of a table it has can be read (an id, a link's ends, a quote's text):
//! such a file is not one VeraBot wrote, and half-reading it would import a guess.
//!
//! Not here: what a row becomes (`source.rs`), opening the file (`mod.rs`).

use std::collections::{BTreeMap, HashMap};

use anyhow::{bail, Context as _};
use rusqlite::Connection;

/// Every table the import reads, with its columns: `true` where the table cannot be read
/// without it. A column the reader takes from SQLite itself (`rowid`) is not listed.
const TABLES: &[(&str, &[(&str, bool)])] = &[
    (
        "quotes",
        &[
            ("id", true),
            ("guildId", false),
            ("text", true),
            ("author", false),
            ("addedBy", false),
            ("addedAt", false),
            ("updatedAt", false),
            ("category", false),
        ],
    ),
    (
        "tags",
        &[
            ("id", true),
            ("name", true),
            ("description", false),
            ("createdAt", false),
        ],
    ),
    ("quote_tags", &[("quoteId", true), ("tagId", true)]),
    (
        "quote_ratings",
        &[
            ("id", true),
            ("quoteId", true),
            ("userId", false),
            ("rating", false),
            ("createdAt", false),
        ],
    ),
    (
        "reminders",
        &[
            ("id", true),
            ("guildId", false),
            ("subject", false),
            ("category", false),
            ("when_datetime", false),
            ("notificationTime", false),
            ("content", false),
            ("link", false),
            ("image", false),
            ("status", false),
            ("notification_method", false),
            ("channelId", false),
            ("createdBy", false),
            ("createdAt", false),
            ("updatedAt", false),
        ],
    ),
    (
        "reminder_assignments",
        &[
            ("id", true),
            ("reminderId", true),
            ("assigneeType", false),
            ("assigneeId", false),
        ],
    ),
    // VeraBot's notifier skips a reminder with a successful row here: it was sent.
    (
        "reminder_notifications",
        &[("reminderId", true), ("success", false)],
    ),
    (
        "user_communications",
        &[
            ("rowid", true),
            ("user_id", true),
            ("guild_id", false),
            ("opted_in", false),
            ("preferences", false),
            ("created_at", false),
            ("updated_at", false),
        ],
    ),
];

/// Another spelling of a column, as VeraBot's per-guild files (v2.10.0 on) name it.
const ALIASES: &[(&str, &str, &str)] = &[
    ("user_communications", "user_id", "userId"),
    ("user_communications", "created_at", "createdAt"),
    ("user_communications", "updated_at", "updatedAt"),
    ("user_communications", "guild_id", "guildId"),
];

/// The columns that say which guild a row belongs to.
const GUILD_COLUMNS: &[(&str, &str)] = &[
    ("quotes", "guildId"),
    ("reminders", "guildId"),
    ("user_communications", "guild_id"),
];

/// A source's layout: its name for the report and how to read each table.
#[derive(Debug, Clone)]
pub struct Layout {
    /// `"verabot-per-guild"` for one guild's file, `"guild-aware"` when any table carries a
    /// guild id, otherwise `"verabot-single"`.
    pub name: &'static str,
    /// Table name to a parenthesised SELECT with every listed column, for a FROM clause.
    sources: HashMap<&'static str, String>,
    /// Tables in the file that the import does not read, with their row counts.
    pub ignored: BTreeMap<String, u64>,
}

impl Layout {
    /// Looks at the file's tables and columns; refuses a file that is not a VeraBot database.
    /// `guild`: the file is that one guild's (VeraBot's per-guild files), so every row is
    /// read as that guild's, opt-ins included.
    pub fn detect(source: &Connection, guild: Option<u64>) -> anyhow::Result<Self> {
        let present: Vec<String> = source
            .prepare(
                "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' \
                 ESCAPE '\\' ORDER BY name",
            )?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        if !present.iter().any(|t| t == "quotes") {
            bail!(
                "not a VeraBot database: it has no `quotes` table (tables: {})",
                if present.is_empty() {
                    "none".to_owned()
                } else {
                    present.join(", ")
                }
            );
        }
        let mut sources = HashMap::new();
        let mut guild_aware = false;
        for (table, columns) in TABLES {
            let sql = if present.iter().any(|t| t == table) {
                let have = column_names(source, table)?;
                let mut select = Vec::with_capacity(columns.len());
                for (column, required) in *columns {
                    let alias = ALIASES
                        .iter()
                        .find(|(t, c, _)| t == table && c == column)
                        .map(|(_, _, alias)| *alias);
                    let found = [Some(*column), alias]
                        .into_iter()
                        .flatten()
                        .find(|name| *name == "rowid" || have.iter().any(|c| c == name));
                    if found.is_none() && *required {
                        bail!("not a VeraBot database: table `{table}` has no column `{column}`");
                    }
                    let guild_column = GUILD_COLUMNS.contains(&(*table, *column));
                    // VeraBot's own single-to-multi script read guild ids on reminders and
                    // opt-ins only; any one makes the file guild-aware.
                    guild_aware |= found.is_some() && guild_column;
                    select.push(match (guild.filter(|_| guild_column), found) {
                        // A u64, never text from the file: safe as a literal.
                        (Some(guild), _) => format!("'{guild}' AS \"{column}\""),
                        (None, Some(name)) => format!("\"{name}\" AS \"{column}\""),
                        (None, None) => format!("NULL AS \"{column}\""),
                    });
                }
                format!("(SELECT {} FROM \"{table}\")", select.join(", "))
            } else {
                let select: Vec<String> = columns
                    .iter()
                    .map(|(column, _)| format!("NULL AS \"{column}\""))
                    .collect();
                format!("(SELECT {} LIMIT 0)", select.join(", "))
            };
            sources.insert(*table, sql);
        }
        let mut ignored = BTreeMap::new();
        for table in present
            .iter()
            .filter(|t| !TABLES.iter().any(|(known, _)| known == t))
        {
            let rows: i64 = source.query_row(
                &format!("SELECT count(*) FROM \"{}\"", table.replace('"', "\"\"")),
                [],
                |r| r.get(0),
            )?;
            ignored.insert(table.clone(), rows as u64);
        }
        Ok(Self {
            name: match (guild, guild_aware) {
                (Some(_), _) => "verabot-per-guild",
                (None, true) => "guild-aware",
                (None, false) => "verabot-single",
            },
            sources,
            ignored,
        })
    }

    /// The FROM-clause source for `table`, one of [`TABLES`].
    pub fn from(&self, table: &str) -> &str {
        &self.sources[table]
    }
}

fn column_names(source: &Connection, table: &str) -> anyhow::Result<Vec<String>> {
    source
        .prepare("SELECT name FROM pragma_table_info(?1)")?
        .query_map([table], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()
        .with_context(|| format!("reading the columns of `{table}`"))
}
