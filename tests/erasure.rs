//! Erasure that erases: after `forget-user` or `delete-guild`, the member's id and words are
//! gone from the raw bytes of every file, the live database, its WAL and every backup copy,
//! not only from what SQL can find.

mod ops_support;

use std::path::Path;

use guildkeep::{
    ops::{
        backup::{backup, BackupOptions},
        gdpr::{delete_guild, forget_user, ForgetOptions},
        Owner,
    },
    privacy::ForgetMode,
    store::GuildDatabaseManager,
};
use ops_support::store;

/// A snowflake-sized id: stored as an 8-byte big-endian integer in SQLite's records.
const MEMBER: u64 = 987_654_321_012_345_678;
const OTHER: u64 = 123_456_789_098_765_432;
const GUILD: u64 = 1_000_000_000_000_000_001;
const NEIGHBOUR: u64 = 1_000_000_000_000_000_002;

/// Words only the member's data holds.
const THEIR_WORDS: [&str; 4] = [
    "zanzibarquokka",     // a quote they saved
    "marmaladeoctopus",   // a quote of their words, saved by another member
    "periwinklegazebo",   // the text of their reminder
    "tangerinesemaphore", // their opt-in preferences
];

/// The member's quotes, a quote of their words, ratings, a reminder, a place on another
/// member's reminder and an opt-in with preferences, among another member's data.
async fn seed(store: &GuildDatabaseManager, guild: u64) {
    store
        .with_guild(guild, |c| {
            let tx = c.transaction()?;
            for i in 0..50 {
                tx.execute(
                    "INSERT INTO quotes (text, added_by, created_at, updated_at) VALUES (?1, ?2, 1, 1)",
                    rusqlite::params![format!("an ordinary quote number {i}"), OTHER as i64],
                )?;
            }
            tx.execute(
                "INSERT INTO quotes (text, added_by, created_at, updated_at)
                 VALUES ('zanzibarquokka says hello', ?1, 1, 1)",
                [MEMBER as i64],
            )?;
            tx.execute(
                "INSERT INTO quote_ratings (quote_id, user_id, rating, created_at, updated_at)
                 SELECT id, ?1, 5, 1, 1 FROM quotes WHERE id <= 10",
                [MEMBER as i64],
            )?;
            tx.execute(
                "INSERT INTO quotes (text, author_name, author_id, added_by, source_channel_id,
                                     source_message_id, created_at, updated_at)
                 VALUES ('marmaladeoctopus is what I said', 'Them', ?1, ?2, 5, 6, 1, 1)",
                [MEMBER as i64, OTHER as i64],
            )?;
            tx.execute(
                "INSERT INTO reminders (created_by, target_kind, message, due_at, created_at, updated_at)
                 VALUES (?1, 'dm', 'periwinklegazebo at noon', 100, 1, 1)",
                [MEMBER as i64],
            )?;
            tx.execute(
                "INSERT INTO reminders (created_by, target_kind, channel_id, message, due_at, created_at, updated_at)
                 VALUES (?1, 'channel', 7, 'team standup', 100, 1, 1)",
                [OTHER as i64],
            )?;
            tx.execute(
                "INSERT INTO reminder_assignees (reminder_id, assignee_kind, assignee_id)
                 SELECT id, 'user', ?1 FROM reminders WHERE created_by = ?2",
                [MEMBER as i64, OTHER as i64],
            )?;
            tx.execute(
                "INSERT INTO optins (user_id, dm_opt_in, preferences, created_at, updated_at)
                 VALUES (?1, 1, '{\"note\":\"tangerinesemaphore\"}', 1, 1)",
                [MEMBER as i64],
            )?;
            tx.commit()
        })
        .await
        .unwrap()
        .unwrap();
}

/// Every file under `dir`, with each place one of `needles` occurs in its bytes.
fn hits(dir: &Path, needles: &[Vec<u8>]) -> Vec<String> {
    let mut found = Vec::new();
    for (path, _, _) in ops_support::listing(dir) {
        if !path.is_file() {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        for needle in needles {
            let count = bytes.windows(needle.len()).filter(|w| w == needle).count();
            if count > 0 {
                found.push(format!(
                    "{}: {:?} x{count}",
                    path.display(),
                    String::from_utf8_lossy(needle)
                ));
            }
        }
    }
    found
}

fn member_needles(words: &[&str]) -> Vec<Vec<u8>> {
    let mut needles = vec![
        MEMBER.to_string().into_bytes(),
        MEMBER.to_be_bytes().to_vec(),
    ];
    needles.extend(words.iter().map(|w| w.as_bytes().to_vec()));
    needles
}

/// Sets up both guilds, backs them up, and adds a change after the backup so the WAL holds
/// pages too. Returns the owner.
async fn seeded_and_backed_up(data: &Path) -> Owner {
    let store = store(data);
    seed(&store, GUILD).await;
    seed(&store, NEIGHBOUR).await;
    let set = backup(&store, BackupOptions::default()).await.unwrap();
    assert!(set.failures().is_empty());
    store
        .with_existing_guild(GUILD, |c| {
            c.execute(
                "UPDATE quote_ratings SET rating = 4 WHERE user_id = ?1",
                [MEMBER as i64],
            )
        })
        .await
        .unwrap()
        .unwrap();
    Owner::standalone(store)
}

#[tokio::test]
async fn after_forget_user_no_file_holds_the_member_id_or_their_words() {
    for (mode, gone) in [
        // Anonymise keeps the texts of quotes, without their id or name, by design.
        (ForgetMode::Anonymise, &THEIR_WORDS[2..]),
        (ForgetMode::DeleteAll, &THEIR_WORDS[..]),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let owner = seeded_and_backed_up(&data).await;
        let before = hits(&data, &member_needles(gone));
        assert!(
            before.len() > 8,
            "the member is there to begin with: {before:#?}"
        );

        let options = ForgetOptions {
            user: MEMBER,
            guild: None,
            mode,
        };
        let report = forget_user(&owner, options).await.unwrap();
        assert!(report.failures.is_empty(), "{:?}", report.failures);
        let left = hits(&data, &member_needles(gone));
        assert!(left.is_empty(), "{mode:?}: still on disk: {left:#?}");
        // The other member's data and the backups' manifests are intact and true.
        assert!(!hits(&data, &[b"an ordinary quote number 7".to_vec()]).is_empty());
        let check = guildkeep::ops::inspect::check(&owner.store, &[])
            .await
            .unwrap();
        assert!(check.iter().all(|g| g.problems.is_empty()));
        assert_manifests_match_their_copies(&data.join("backups"));
        owner.store.shutdown().await;
    }
}

#[tokio::test]
async fn after_delete_guild_no_file_and_no_backup_holds_the_guild() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let owner = seeded_and_backed_up(&data).await;
    delete_guild(&owner, GUILD).await.unwrap();
    delete_guild(&owner, NEIGHBOUR).await.unwrap();
    let left = hits(&data, &member_needles(&THEIR_WORDS));
    assert!(left.is_empty(), "still on disk: {left:#?}");
    assert_manifests_match_their_copies(&data.join("backups"));
    owner.store.shutdown().await;
}

/// Each manifest lists exactly the copies in its set, each with its true digest, and says
/// what erasures were applied.
fn assert_manifests_match_their_copies(backups: &Path) {
    for set in std::fs::read_dir(backups).unwrap() {
        let set = set.unwrap().path();
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(set.join("manifest.json")).unwrap()).unwrap();
        let listed = manifest["guilds"].as_object().unwrap();
        for copy in listed.values() {
            let file = set.join(copy["file"].as_str().unwrap());
            assert_eq!(
                copy["sha256"].as_str().unwrap(),
                ops_support::sha256(&file),
                "{}",
                file.display()
            );
        }
        let copies = std::fs::read_dir(&set)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "db")
            })
            .count();
        assert_eq!(copies, listed.len(), "{}", set.display());
        let erasures = manifest["erasures"].as_array().unwrap();
        assert!(!erasures.is_empty(), "{manifest}");
        assert!(!manifest.to_string().contains(&MEMBER.to_string()));
    }
}
