//! `guildkeep restore` on real files: a backup restored over damaged data brings back exactly
//! the backup's content, seen by a connection that stayed open throughout (the bot in another
//! process); the replaced content is kept; a corrupt or too-new file, one with an object our
//! schema does not have, or a copy changed since its backup set's manifest was written, is
//! refused with the live database untouched and the operator's file unchanged.

mod ops_support;

use guildkeep::ops::Owner;
use std::path::{Path, PathBuf};

use guildkeep::{
    ops::{
        backup::{backup, BackupOptions},
        restore::{restore, RestoreOptions},
    },
    store::GuildDatabaseManager,
};
use ops_support::{sha256, store};
use rusqlite::{types::Value, Connection};

const GUILD: u64 = 4242;

/// Every row of every table that holds data, in a stable order.
fn dump(conn: &Connection) -> Vec<(String, Vec<Vec<Value>>)> {
    [
        "quotes",
        "tags",
        "quote_tags",
        "quote_ratings",
        "reminders",
        "optins",
        "audit",
    ]
    .iter()
    .map(|table| {
        let mut statement = conn
            .prepare(&format!("SELECT * FROM {table} ORDER BY 1, 2"))
            .unwrap();
        let columns = statement.column_count();
        let rows = statement
            .query_map([], |r| (0..columns).map(|i| r.get::<_, Value>(i)).collect())
            .unwrap()
            .map(Result::unwrap)
            .collect();
        (table.to_string(), rows)
    })
    .collect()
}

async fn live_dump(store: &GuildDatabaseManager) -> Vec<(String, Vec<Vec<Value>>)> {
    store.with_existing_guild(GUILD, |c| dump(c)).await.unwrap()
}

/// A guild with some of everything, and a backup of it; returns the backup file.
async fn guild_with_backup(store: &GuildDatabaseManager, out: &Path) -> PathBuf {
    store
        .with_guild(GUILD, |c| {
            c.execute_batch(
                "INSERT INTO quotes (text, added_by, created_at, updated_at) VALUES
                     ('first', 1, 1, 1), ('second', 2, 2, 2), ('third', 3, 3, 3);
                 INSERT INTO tags (name, created_at) VALUES ('kept', 1);
                 INSERT INTO quote_tags VALUES (1, 1);
                 INSERT INTO quote_ratings (quote_id, user_id, rating, created_at, updated_at)
                     VALUES (1, 9, 5, 1, 1);
                 INSERT INTO reminders (created_by, target_kind, message, due_at, created_at, updated_at)
                     VALUES (1, 'dm', 'stretch', 100, 1, 1);
                 INSERT INTO optins (user_id, dm_opt_in, created_at, updated_at) VALUES (1, 1, 1, 1);",
            )
        })
        .await
        .unwrap()
        .unwrap();
    let report = backup(
        store,
        BackupOptions {
            out: Some(out.to_path_buf()),
            ..BackupOptions::default()
        },
    )
    .await
    .unwrap();
    report.set.join(format!("{GUILD}.db"))
}

async fn damage(store: &GuildDatabaseManager) {
    store
        .with_existing_guild(GUILD, |c| {
            c.execute_batch(
                "DELETE FROM quotes WHERE id = 2; UPDATE quotes SET text = 'vandalised' WHERE id = 1;
                 INSERT INTO quotes (text, created_at, updated_at) VALUES ('after the backup', 5, 5);
                 DELETE FROM optins;",
            )
        })
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn restore_brings_back_the_backup_while_another_connection_holds_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = store(&data);
    let file = guild_with_backup(&store, &dir.path().join("sets")).await;
    let backed_up = dump(&Connection::open(&file).unwrap());
    let file_digest = sha256(&file);
    damage(&store).await;
    let damaged = live_dump(&store).await;
    assert_ne!(damaged, backed_up);

    // The bot in another process: a connection of its own, open across the restore.
    let db = data
        .join("guilds")
        .join(GUILD.to_string())
        .join("quotes.db");
    let bot = Connection::open(&db).unwrap();
    assert_eq!(dump(&bot), damaged);

    let report = restore(
        &Owner::standalone(store.clone()),
        RestoreOptions {
            guild: GUILD,
            from: file.clone(),
        },
    )
    .await
    .unwrap();
    assert_eq!(live_dump(&store).await, backed_up);
    assert_eq!(
        dump(&bot),
        backed_up,
        "the open connection sees the restored data"
    );
    assert_eq!(report.rows["quotes"], 3);
    assert_eq!(report.migrated_from, None);
    assert_eq!(
        sha256(&file),
        file_digest,
        "the operator's file is unchanged"
    );

    let kept = Connection::open(&report.kept).unwrap();
    assert_eq!(
        dump(&kept),
        damaged,
        "the replaced content is kept beside the database"
    );
    assert!(report
        .kept
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with("quotes.db.pre-restore-"));
    let journal: String = bot
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(journal, "wal");
    // The bot keeps working on the restored database.
    bot.execute(
        "INSERT INTO quotes (text, created_at, updated_at) VALUES ('later', 9, 9)",
        [],
    )
    .unwrap();
    assert_eq!(live_dump(&store).await[0].1.len(), 4);
}

async fn refused(store: &GuildDatabaseManager, data: &Path, from: PathBuf) -> String {
    let before = live_dump(store).await;
    let digest = sha256(&from);
    let error = restore(
        &Owner::standalone(store.clone()),
        RestoreOptions {
            guild: GUILD,
            from: from.clone(),
        },
    )
    .await
    .unwrap_err();
    assert_eq!(
        live_dump(store).await,
        before,
        "the live database is untouched"
    );
    assert_eq!(sha256(&from), digest, "the operator's file is unchanged");
    let kept: Vec<_> = std::fs::read_dir(data.join("guilds").join(GUILD.to_string()))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains("pre-restore"))
        .collect();
    assert!(kept.is_empty(), "{kept:?}");
    format!("{error:#}")
}

#[tokio::test]
async fn a_corrupt_or_too_new_file_is_refused_and_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = store(&data);
    let file = guild_with_backup(&store, &dir.path().join("sets")).await;
    damage(&store).await;

    let corrupt = dir.path().join("corrupt.db");
    let mut bytes = std::fs::read(&file).unwrap();
    for byte in &mut bytes[4096 + 100..4096 * 3] {
        *byte = 0x5a; // the first pages after the header: schema and table b-trees
    }
    std::fs::write(&corrupt, bytes).unwrap();
    let error = refused(&store, &data, corrupt).await;
    assert!(
        error.contains("integrity") || error.contains("malformed") || error.contains("not a"),
        "{error}"
    );

    let not_sqlite = dir.path().join("notes.txt");
    std::fs::write(
        &not_sqlite,
        "this is not a database at all, just text ".repeat(200),
    )
    .unwrap();
    refused(&store, &data, not_sqlite).await;

    let newer = dir.path().join("newer.db");
    std::fs::copy(&file, &newer).unwrap();
    Connection::open(&newer)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let error = refused(&store, &data, newer).await;
    assert!(error.contains("schema version 99"), "{error}");
}

#[tokio::test]
async fn a_copy_with_a_planted_trigger_or_changed_since_its_backup_is_refused_naming_why() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = store(&data);
    let file = guild_with_backup(&store, &dir.path().join("sets")).await;
    damage(&store).await;

    // A sound database at our schema version, plus one trigger that would run in the bot.
    let planted = dir.path().join("planted.db");
    std::fs::copy(&file, &planted).unwrap();
    Connection::open(&planted)
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER opt_everyone_in AFTER INSERT ON quotes BEGIN
                 UPDATE optins SET dm_opt_in = 1;
             END;",
        )
        .unwrap();
    let error = refused(&store, &data, planted).await;
    assert!(
        error.contains("unexpected trigger `opt_everyone_in`"),
        "{error}"
    );
    assert!(!error.contains('\n'), "one line: {error}");

    // In its backup set, one byte of a quote changed: still a sound database, but not the
    // copy that was verified.
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes.windows(5).position(|w| w == b"third").unwrap();
    bytes[at] = b'T';
    std::fs::write(&file, bytes).unwrap();
    let error = refused(&store, &data, file).await;
    assert!(
        error.contains("does not match its backup manifest"),
        "{error}"
    );
}
