//! `guildkeep gdpr` on real files: forget-user across 200 guilds removes one member everywhere
//! and nothing of anyone else (another member's export is identical before and after), each
//! guild audits it; export-user is keyed by guild; delete-guild removes exactly one guild.

mod ops_support;

use guildkeep::ops::Owner;
use guildkeep::{
    ops::gdpr::{delete_guild, export_user, forget_user, ForgetOptions},
    privacy::ForgetMode,
    store::GuildDatabaseManager,
};
use ops_support::store;

/// The member asking to be forgotten, and a member who must be left alone.
const GONE: u64 = 1_000;
const STAYS: u64 = 2_000;

/// Guild `g`: quotes by each member (each rating their own and naming the other's author id
/// nowhere), a reminder each, GONE assigned to STAYS's reminder, opt-ins for both. Guilds where
/// `g % 3 == 0` know nothing of GONE.
async fn seed(store: &GuildDatabaseManager, g: u64) {
    let gone_here = !g.is_multiple_of(3);
    store
        .with_guild(g, move |c| {
            let tx = c.transaction()?;
            let mut members = vec![STAYS as i64];
            if gone_here {
                members.push(GONE as i64);
            }
            for member in members {
                for i in 0..3 {
                    tx.execute(
                        "INSERT INTO quotes (text, added_by, created_at, updated_at) VALUES (?1, ?2, 1, 1)",
                        rusqlite::params![format!("quote {i} by {member} in {g}"), member],
                    )?;
                    tx.execute(
                        "INSERT INTO quote_ratings (quote_id, user_id, rating, created_at, updated_at) \
                         VALUES (last_insert_rowid(), ?1, 4, 1, 1)",
                        [member],
                    )?;
                }
                tx.execute(
                    "INSERT INTO reminders (created_by, target_kind, message, due_at, created_at, updated_at) \
                     VALUES (?1, 'dm', 'stretch', 100, 1, 1)",
                    [member],
                )?;
                tx.execute(
                    "INSERT INTO optins (user_id, dm_opt_in, created_at, updated_at) VALUES (?1, 1, 1, 1)",
                    [member],
                )?;
            }
            if gone_here {
                tx.execute(
                    "INSERT INTO reminder_assignees (reminder_id, assignee_kind, assignee_id) \
                     SELECT id, 'user', ?1 FROM reminders WHERE created_by = ?2",
                    [GONE as i64, STAYS as i64],
                )?;
            }
            tx.commit()
        })
        .await
        .unwrap()
        .unwrap();
}

async fn audit_rows(store: &GuildDatabaseManager, g: u64) -> Vec<(String, String)> {
    store
        .with_existing_guild(g, |c| {
            c.prepare("SELECT actor, action FROM audit ORDER BY id")
                .unwrap()
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        })
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forget_user_across_200_guilds_removes_that_member_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir.path().join("data"));
    let guilds: Vec<u64> = (1..=200).map(|g| g * 1_000_003).collect();
    for &g in &guilds {
        seed(&store, g).await;
    }
    let stays_before =
        serde_json::to_value(export_user(&store, STAYS, None).await.unwrap().guilds).unwrap();
    let gone_before = export_user(&store, GONE, None).await.unwrap();
    assert_eq!(
        gone_before.guilds.len(),
        guilds.iter().filter(|g| !g.is_multiple_of(3)).count()
    );

    let report = forget_user(
        &Owner::standalone(store.clone()),
        ForgetOptions {
            user: GONE,
            guild: None,
            mode: ForgetMode::Delete,
        },
    )
    .await
    .unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.guilds.len(), 200, "a count for every guild");
    for (&g, counts) in &report.guilds {
        let expected = if !g.is_multiple_of(3) {
            (3, 3, 1, 1, 1)
        } else {
            (0, 0, 0, 0, 0)
        };
        assert_eq!(
            (
                counts.quotes_deleted,
                counts.ratings_deleted,
                counts.reminders_deleted,
                counts.assignments_deleted,
                counts.optins_deleted
            ),
            expected,
            "guild {g}"
        );
    }

    let gone_after = export_user(&store, GONE, None).await.unwrap();
    assert!(
        gone_after.guilds.is_empty(),
        "{:?}",
        gone_after.guilds.keys()
    );
    let stays_after =
        serde_json::to_value(export_user(&store, STAYS, None).await.unwrap().guilds).unwrap();
    assert_eq!(stays_after, stays_before);
    assert_eq!(
        audit_rows(&store, guilds[0]).await,
        vec![("operator".to_owned(), "forget_user".to_owned())]
    );
}

#[tokio::test]
async fn export_is_keyed_by_guild_and_one_guild_can_be_named() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir.path().join("data"));
    for g in [10, 20, 30] {
        seed(&store, g).await;
    }
    let all = export_user(&store, GONE, None).await.unwrap();
    let json = serde_json::to_value(&all.guilds).unwrap();
    let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["10", "20"],
        "guild 30 knows nothing of GONE and is left out"
    );
    assert_eq!(json["10"]["quotes_added"].as_array().unwrap().len(), 3);

    let named = export_user(&store, GONE, Some(30)).await.unwrap();
    assert!(
        named.guilds[&30].is_empty(),
        "a named guild is listed even when empty"
    );
    let unknown = export_user(&store, GONE, Some(40)).await.unwrap();
    assert!(
        unknown.failures.contains_key(&40),
        "an unknown guild is a failure, not silence"
    );
    assert!(
        store.guilds_on_disk().await.unwrap() == vec![10, 20, 30],
        "export created nothing"
    );

    let one = forget_user(
        &Owner::standalone(store.clone()),
        ForgetOptions {
            user: GONE,
            guild: Some(20),
            mode: ForgetMode::Anonymise,
        },
    )
    .await
    .unwrap();
    assert_eq!(one.guilds.keys().copied().collect::<Vec<_>>(), vec![20]);
    assert_eq!(one.guilds[&20].quotes_anonymised, 3);
    assert_eq!(
        export_user(&store, GONE, None)
            .await
            .unwrap()
            .guilds
            .keys()
            .copied()
            .collect::<Vec<_>>(),
        vec![10]
    );
}

#[tokio::test]
async fn delete_guild_removes_that_guild_only() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = store(&data);
    seed(&store, 10).await;
    seed(&store, 20).await;
    let report = delete_guild(&Owner::standalone(store.clone()), 10)
        .await
        .unwrap();
    assert_eq!(report.removed.unwrap().quotes, 6);
    assert_eq!(store.guilds_on_disk().await.unwrap(), vec![20]);
    assert!(!data.join("guilds").join("10").exists());
    assert_eq!(
        export_user(&store, STAYS, Some(20)).await.unwrap().guilds[&20]
            .quotes_added
            .len(),
        3
    );
    let again = delete_guild(&Owner::standalone(store.clone()), 10)
        .await
        .unwrap();
    assert!(
        again.removed.is_none(),
        "deleting a guild without data is not an error"
    );
    assert!(delete_guild(&Owner::standalone(store.clone()), 0)
        .await
        .is_err());
}
