-- The whole per-guild schema. One file per guild: every table here belongs to that guild,
-- so no table has a guild_id column. Discord snowflakes are INTEGER (they fit in i64), times
-- are INTEGER unix seconds in UTC (read them with datetime(x, 'unixepoch')). Text limits are
-- enforced here as well as in code so that no path around the code can store more.
-- Imported rows keep their id in the legacy database as legacy_id (see legacy-format.md).

CREATE TABLE quotes (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    text              TEXT    NOT NULL CHECK (length(text) BETWEEN 1 AND 2000),
    author_name       TEXT    NOT NULL DEFAULT 'Anonymous' CHECK (length(author_name) BETWEEN 1 AND 100),
    author_id         INTEGER CHECK (author_id IS NULL OR author_id > 0),
    -- NULL once the member who saved it has been forgotten, or when the legacy row had none.
    added_by          INTEGER CHECK (added_by IS NULL OR added_by > 0),
    source_channel_id INTEGER,
    source_message_id INTEGER,
    -- Kept in step with quote_ratings in the same transaction as every rating change.
    rating_avg        REAL    NOT NULL DEFAULT 0,
    rating_count      INTEGER NOT NULL DEFAULT 0 CHECK (rating_count >= 0),
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    legacy_id         INTEGER UNIQUE
);
CREATE INDEX quotes_added_by ON quotes (added_by);
CREATE INDEX quotes_author_id ON quotes (author_id);

CREATE TABLE tags (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    -- Stored normalised (trimmed, lower case); NOCASE keeps a second spelling out anyway.
    name        TEXT    NOT NULL UNIQUE COLLATE NOCASE CHECK (length(name) BETWEEN 1 AND 32),
    description TEXT    CHECK (description IS NULL OR length(description) <= 200),
    created_at  INTEGER NOT NULL,
    -- Several legacy tags may merge into one (names equal but for case): the lowest source id.
    legacy_id   INTEGER
);

CREATE TABLE quote_tags (
    quote_id INTEGER NOT NULL REFERENCES quotes (id) ON DELETE CASCADE,
    tag_id   INTEGER NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
    PRIMARY KEY (quote_id, tag_id)
) WITHOUT ROWID;
CREATE INDEX quote_tags_tag ON quote_tags (tag_id);

CREATE TABLE quote_ratings (
    quote_id   INTEGER NOT NULL REFERENCES quotes (id) ON DELETE CASCADE,
    user_id    INTEGER NOT NULL CHECK (user_id > 0),
    rating     INTEGER NOT NULL CHECK (rating BETWEEN 1 AND 5),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    legacy_id  INTEGER UNIQUE,
    PRIMARY KEY (quote_id, user_id)
);
CREATE INDEX quote_ratings_user ON quote_ratings (user_id);

-- Full-text search over quote text and author name, kept in step by triggers.
CREATE VIRTUAL TABLE quotes_fts USING fts5 (
    text, author_name,
    content = 'quotes', content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER quotes_fts_insert AFTER INSERT ON quotes BEGIN
    INSERT INTO quotes_fts (rowid, text, author_name) VALUES (new.id, new.text, new.author_name);
END;
CREATE TRIGGER quotes_fts_delete AFTER DELETE ON quotes BEGIN
    INSERT INTO quotes_fts (quotes_fts, rowid, text, author_name)
    VALUES ('delete', old.id, old.text, old.author_name);
END;
CREATE TRIGGER quotes_fts_update AFTER UPDATE OF text, author_name ON quotes BEGIN
    INSERT INTO quotes_fts (quotes_fts, rowid, text, author_name)
    VALUES ('delete', old.id, old.text, old.author_name);
    INSERT INTO quotes_fts (rowid, text, author_name) VALUES (new.id, new.text, new.author_name);
END;

CREATE TABLE reminders (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    created_by     INTEGER CHECK (created_by IS NULL OR created_by > 0),
    target_kind    TEXT    NOT NULL CHECK (target_kind IN ('dm', 'channel')),
    channel_id     INTEGER CHECK (channel_id IS NULL OR channel_id > 0),
    message        TEXT    NOT NULL CHECK (length(message) BETWEEN 1 AND 4000),
    -- The next time this reminder is due; for a recurring one it moves on after each delivery.
    due_at         INTEGER NOT NULL,
    time_zone      TEXT    NOT NULL DEFAULT 'UTC',
    -- NULL for a one-off; otherwise the rule as text, e.g. 'every 2h' or 'daily 09:00'.
    recurrence     TEXT,
    recurrence_end INTEGER,
    status         TEXT    NOT NULL DEFAULT 'active'
                   CHECK (status IN ('active', 'sent', 'cancelled', 'failed')),
    attempts       INTEGER NOT NULL DEFAULT 0,
    last_error     TEXT,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    legacy_id      INTEGER UNIQUE,
    CHECK (target_kind = 'dm' OR channel_id IS NOT NULL)
);
CREATE INDEX reminders_active_due ON reminders (due_at) WHERE status = 'active';
CREATE INDEX reminders_created_by ON reminders (created_by);

CREATE TABLE reminder_assignees (
    reminder_id   INTEGER NOT NULL REFERENCES reminders (id) ON DELETE CASCADE,
    assignee_kind TEXT    NOT NULL CHECK (assignee_kind IN ('user', 'role')),
    assignee_id   INTEGER NOT NULL CHECK (assignee_id > 0),
    legacy_id     INTEGER UNIQUE,
    PRIMARY KEY (reminder_id, assignee_kind, assignee_id)
);
CREATE INDEX reminder_assignees_assignee ON reminder_assignees (assignee_kind, assignee_id);

-- One row per (reminder, due time): claimed before sending, completed after, so a due time
-- is delivered at least once and recorded at most once, across restarts.
CREATE TABLE reminder_deliveries (
    reminder_id  INTEGER NOT NULL REFERENCES reminders (id) ON DELETE CASCADE,
    due_at       INTEGER NOT NULL,
    status       TEXT    NOT NULL CHECK (status IN ('claimed', 'delivered', 'failed')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    late         INTEGER NOT NULL DEFAULT 0 CHECK (late IN (0, 1)),
    claimed_at   INTEGER NOT NULL,
    finished_at  INTEGER,
    error        TEXT,
    PRIMARY KEY (reminder_id, due_at)
);

CREATE TABLE optins (
    user_id     INTEGER PRIMARY KEY CHECK (user_id > 0),
    dm_opt_in   INTEGER NOT NULL DEFAULT 0 CHECK (dm_opt_in IN (0, 1)),
    -- IANA zone name, validated in code; NULL means UTC.
    time_zone   TEXT    CHECK (time_zone IS NULL OR length(time_zone) BETWEEN 1 AND 64),
    preferences TEXT    CHECK (preferences IS NULL OR json_valid(preferences)),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    legacy_id   INTEGER
);

-- What admins, operators and the bot itself did to this guild's data. Never personal
-- content: no quote text, no user ids of the people acted upon; counts go in detail (JSON).
CREATE TABLE audit (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         INTEGER NOT NULL,
    actor      TEXT    NOT NULL CHECK (actor IN ('admin', 'operator', 'member', 'system')),
    action     TEXT    NOT NULL,
    detail     TEXT    CHECK (detail IS NULL OR json_valid(detail))
);
