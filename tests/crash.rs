//! Crash test: what the store acknowledged survives SIGKILL, and a deleted guild stays deleted.
//!
//! The test re-runs its own binary as the child (`GUILDKEEP_CRASH_CHILD` set). The child runs
//! writers over more guilds than `max_open_guilds`, creates fresh guilds every round (keeping a
//! spare guild, as the bot does), now and then deletes one (and later uses it again, so it is
//! recreated), and prints one line per event after it happened: `ack <guild> <key>` once a
//! write has committed, `creating`, `deleting` and `deleted <guild>`, and `backing-up <n>` as
//! its backup loop starts set n. The parent reads those lines and SIGKILLs the child at a
//! seeded random moment: after some number of writes, right as a new guild is being created,
//! right as a guild is being deleted, or in the middle of an online backup. It then restarts
//! the child (which first finishes a deletion that was cut short, as a caller retrying an
//! unacknowledged deletion would) and, after the last round, a child that stops cleanly.
//! After every round, killed or clean, every guild file must pass `integrity_check`, every
//! write acknowledged since its guild's last deletion must be there, and no row acknowledged
//! before a finished deletion may be back; only the rows of a deletion the kill cut short may
//! still be there until the next child finishes it. The files are read with read-only
//! connections, which change nothing the next round finds. At the end every complete backup
//! set (one with its manifest) must hold only copies that pass `integrity_check`; a set cut
//! short has no manifest.
//!
//! `GUILDKEEP_CRASH_ROUNDS` (default 5) and `GUILDKEEP_CRASH_SEED` size and steer it;
//! `scripts/crash-test` runs a large setting. Not here: damaged files (`damaged.rs`).

use std::{
    collections::{BTreeMap, BTreeSet},
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::Arc,
};

use guildkeep::{
    ops::backup::{backup, BackupOptions},
    store::{GuildDatabaseManager, StoreConfig},
};
use rand::{rngs::StdRng, Rng, SeedableRng};
use rusqlite::{Connection, OpenFlags};
use tempfile::TempDir;

const TEST_NAME: &str = "acknowledged_writes_survive_sigkill_and_deleted_guilds_stay_deleted";
const CHILD: &str = "GUILDKEEP_CRASH_CHILD";
const CAP: usize = 3;
const WRITERS: u64 = 4;
/// Guilds in use every round; each round also creates three new ones.
const STEADY_GUILDS: u64 = 6;
/// Writes per writer in the final, clean round.
const FINAL_WRITES: u64 = 40;
/// A round whose chosen moment has not come after this many writes is killed anyway.
const MAX_ACKS_PER_ROUND: usize = 400;

#[test]
fn acknowledged_writes_survive_sigkill_and_deleted_guilds_stay_deleted() {
    match std::env::var_os(CHILD) {
        Some(dir) => child(PathBuf::from(dir)),
        None => parent(),
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name} must be a number"))
    })
}

fn db_path(dir: &Path, guild: u64) -> PathBuf {
    dir.join("guilds").join(guild.to_string()).join("quotes.db")
}

// ---- the child: writes, creates and deletes until killed ----

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").unwrap();
    out.flush().unwrap();
}

fn child(dir: PathBuf) {
    let seed = env_u64("GUILDKEEP_CRASH_SEED").unwrap();
    let round = env_u64("GUILDKEEP_CRASH_ROUND").unwrap();
    let pending = env_u64("GUILDKEEP_CRASH_PENDING");
    let finish = std::env::var_os("GUILDKEEP_CRASH_FINISH").is_some();
    // Ends the line libtest began (`test <name> ... ` has no newline yet), so the first
    // event is a whole line.
    say("");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let mut config = StoreConfig::new(&dir);
        config.max_open_guilds = CAP;
        config.connections_per_guild = 2;
        // As the bot runs it: kills also land while a spare guild is made or taken.
        config.keep_spare_guild = true;
        let store = GuildDatabaseManager::new(config).unwrap();
        if let Some(guild) = pending {
            store.delete_guild(guild).await.unwrap();
            say(&format!("deleted {guild}"));
        }
        let guilds: Arc<Vec<u64>> = Arc::new(
            (1..=STEADY_GUILDS)
                .chain((1..=3).map(|i| round * 1000 + i))
                .collect(),
        );
        if !finish {
            let store = store.clone();
            tokio::spawn(async move {
                for set in 1.. {
                    say(&format!("backing-up {set}"));
                    // A guild deleted while the set is made is named as failed in the set's
                    // manifest; that is the job working, not the test failing.
                    let options = BackupOptions {
                        guilds: Vec::new(),
                        out: None,
                        keep: Some(3),
                    };
                    if let Err(e) = backup(&store, options).await {
                        say(&format!("backup-failed {set} {e}"));
                    }
                }
            });
        }
        // Writers share it; a deletion takes it alone, so no write to the guild is in flight
        // across its deletion and every acknowledged row is clearly before or after it.
        let gate = Arc::new(tokio::sync::RwLock::new(()));
        let writers: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let (store, guilds, gate, dir) =
                    (store.clone(), guilds.clone(), gate.clone(), dir.clone());
                tokio::spawn(async move {
                    let mut rng = StdRng::seed_from_u64(seed ^ (round << 16) ^ writer);
                    let writes = if finish { FINAL_WRITES } else { u64::MAX };
                    for seq in 0..writes {
                        let guild = guilds[rng.random_range(0..guilds.len())];
                        if !finish && rng.random_ratio(1, 30) {
                            let _alone = gate.write().await;
                            say(&format!("deleting {guild}"));
                            store.delete_guild(guild).await.unwrap();
                            say(&format!("deleted {guild}"));
                            continue;
                        }
                        let _shared = gate.read().await;
                        if !db_path(&dir, guild).exists() {
                            say(&format!("creating {guild}"));
                        }
                        let key = format!("{round}.{writer}.{seq}");
                        let text = key.clone();
                        store
                            .with_guild(guild, move |c| {
                                c.execute(
                                    "INSERT INTO quotes (text, added_by, created_at, updated_at)
                                     VALUES (?1, 1, 0, 0)",
                                    [text],
                                )
                                .unwrap()
                            })
                            .await
                            .unwrap();
                        say(&format!("ack {guild} {key}"));
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.await.unwrap();
        }
        store.shutdown().await;
        say("done");
    });
}

// ---- the parent: kills, restarts, and checks ----

#[derive(Debug, Clone, Copy)]
enum Moment {
    AfterWrites(usize),
    CreatingGuild,
    DeletingGuild,
    /// When the child starts its nth backup set of the round.
    BackingUp(u64),
}

/// What the child has acknowledged so far.
#[derive(Default)]
struct Acknowledged {
    /// Rows acknowledged since the guild's last deletion began: they must be there.
    live: BTreeMap<u64, BTreeSet<String>>,
    /// Rows acknowledged before a finished deletion of their guild: never to be seen again.
    deleted: BTreeMap<u64, BTreeSet<String>>,
    /// A deletion that began and was not acknowledged, with the rows it is deleting: the next
    /// child finishes it, and until then those rows may or may not be there.
    pending: Option<(u64, BTreeSet<String>)>,
    deletions: usize,
}

impl Acknowledged {
    /// Applies one line of the child's output; returns what kind of line it was.
    fn apply(&mut self, line: &str) -> Option<&'static str> {
        let mut words = line.split_whitespace();
        let (kind, guild) = (words.next()?, words.next()?.parse::<u64>().ok()?);
        match kind {
            "ack" => {
                let key = words.next()?.to_owned();
                self.live.entry(guild).or_default().insert(key);
                Some("ack")
            }
            "creating" => Some("creating"),
            "deleting" => {
                let rows = self.live.remove(&guild).unwrap_or_default();
                self.pending = Some((guild, rows));
                Some("deleting")
            }
            "deleted" => {
                let (deleted, rows) = self.pending.take()?;
                assert_eq!(deleted, guild, "deleted a guild that was not being deleted");
                self.deleted.entry(guild).or_default().extend(rows);
                self.deletions += 1;
                Some("deleted")
            }
            "backing-up" => Some("backing-up"),
            _ => None,
        }
    }
}

fn parent() {
    let rounds = env_u64("GUILDKEEP_CRASH_ROUNDS").unwrap_or(5);
    let seed = env_u64("GUILDKEEP_CRASH_SEED").unwrap_or(0x6b69_6c6c);
    let tmp = TempDir::new().unwrap();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut acked = Acknowledged::default();
    let mut kills: BTreeMap<&str, usize> = BTreeMap::new();
    let mut total_checked = 0;
    for round in 1..=rounds + 1 {
        let moment = (round <= rounds).then(|| match rng.random_range(0..4) {
            0 => Moment::AfterWrites(rng.random_range(5..MAX_ACKS_PER_ROUND / 2)),
            1 => Moment::CreatingGuild,
            2 => Moment::DeletingGuild,
            _ => Moment::BackingUp(rng.random_range(2..6)),
        });
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD, tmp.path())
            .env("GUILDKEEP_CRASH_SEED", seed.to_string())
            .env("GUILDKEEP_CRASH_ROUND", round.to_string())
            .env_remove("GUILDKEEP_CRASH_PENDING")
            .env_remove("GUILDKEEP_CRASH_FINISH")
            .stdout(Stdio::piped());
        if let Some((guild, _)) = &acked.pending {
            command.env("GUILDKEEP_CRASH_PENDING", guild.to_string());
        }
        if moment.is_none() {
            command.env("GUILDKEEP_CRASH_FINISH", "1");
        }
        let mut child = command.spawn().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (mut acks, mut killed, mut done) = (0, None, false);
        // Lines already in the pipe when the kill lands were printed after their event
        // happened, so they are read and counted too, up to end of file.
        for line in stdout.lines() {
            let line = line.unwrap();
            done |= line == "done";
            let kind = acked.apply(&line);
            acks += usize::from(kind == Some("ack"));
            let now = match (moment, kind) {
                _ if killed.is_some() => None,
                (Some(Moment::AfterWrites(n)), Some("ack")) if acks >= n => Some("after writes"),
                (Some(Moment::CreatingGuild), Some("creating")) => Some("creating a guild"),
                (Some(Moment::DeletingGuild), Some("deleting")) => Some("deleting a guild"),
                // `backing-up <n>` carries the set number where other lines carry a guild.
                (Some(Moment::BackingUp(n)), Some("backing-up"))
                    if line.ends_with(&format!(" {n}")) =>
                {
                    Some("during a backup")
                }
                (Some(_), Some("ack")) if acks >= MAX_ACKS_PER_ROUND => Some("after writes"),
                _ => None,
            };
            if let Some(what) = now {
                child.kill().unwrap();
                killed = Some(what);
            }
        }
        let status = child.wait().unwrap();
        match killed {
            Some(what) => *kills.entry(what).or_default() += 1,
            None => assert!(
                moment.is_none() && done && status.success(),
                "seed {seed} round {round}: the child ended on its own ({status})"
            ),
        }
        let (checked, lost, resurrected) = verify(tmp.path(), &acked);
        println!(
            "crash test: seed {seed} round {round} ({}): {checked} acknowledged writes \
             checked, lost {}, deleted rows back {}",
            killed.unwrap_or("clean stop"),
            lost.len(),
            resurrected.len()
        );
        assert!(lost.is_empty(), "seed {seed} round {round}: lost {lost:?}");
        assert!(
            resurrected.is_empty(),
            "seed {seed} round {round}: deleted rows back {resurrected:?}"
        );
        total_checked += checked;
    }

    let (sets, copies) = verify_backups(tmp.path());
    println!(
        "crash test: seed {seed}, {rounds} rounds killed {kills:?}, {} deletions, \
         {total_checked} acknowledged writes checked over all rounds, \
         {sets} complete backup sets with {copies} copies passing integrity_check",
        acked.deletions,
    );
    assert!(
        total_checked > 0 && acked.deletions > 0,
        "seed {seed}: the test exercised nothing"
    );
}

/// Every guild file passes `integrity_check`; returns (acknowledged rows checked, rows
/// lost, deleted rows found again). The rows of a deletion still pending are neither.
fn verify(dir: &Path, acked: &Acknowledged) -> (usize, Vec<String>, Vec<String>) {
    let mut on_disk: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
    for entry in std::fs::read_dir(dir.join("guilds")).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        // A spare, or one a kill cut short; neither is a guild.
        if name.starts_with('.') {
            continue;
        }
        let guild: u64 = name.parse().unwrap();
        let db = entry.path().join("quotes.db");
        if !db.exists() {
            continue;
        }
        let conn = Connection::open_with_flags(&db, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok", "guild {guild}");
        let rows = conn
            .prepare("SELECT text FROM quotes")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        on_disk.insert(guild, rows);
    }
    let empty = BTreeSet::new();
    let (mut checked, mut lost, mut back) = (0, Vec::new(), Vec::new());
    for (guild, keys) in &acked.live {
        let rows = on_disk.get(guild).unwrap_or(&empty);
        checked += keys.len();
        lost.extend(
            keys.difference(rows)
                .map(|k| format!("guild {guild} row {k}")),
        );
    }
    for (guild, keys) in &acked.deleted {
        let rows = on_disk.get(guild).unwrap_or(&empty);
        checked += keys.len();
        back.extend(
            keys.intersection(rows)
                .map(|k| format!("guild {guild} row {k}")),
        );
    }
    (checked, lost, back)
}

/// Every complete backup set (its manifest written last) holds only copies that pass
/// `integrity_check`; returns (complete sets, copies checked).
fn verify_backups(dir: &Path) -> (usize, usize) {
    let Ok(sets) = std::fs::read_dir(dir.join("backups")) else {
        return (0, 0);
    };
    let (mut complete, mut copies) = (0, 0);
    for set in sets {
        let set = set.unwrap().path();
        let Ok(manifest) = std::fs::read(set.join("manifest.json")) else {
            continue; // cut short: no manifest, so no operator would take it for a backup
        };
        let manifest: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
        for (guild, copy) in manifest["guilds"].as_object().unwrap() {
            let file = set.join(copy["file"].as_str().unwrap());
            let conn = Connection::open(&file).unwrap();
            let check: String = conn
                .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                .unwrap();
            assert_eq!(check, "ok", "backup {} guild {guild}", set.display());
            copies += 1;
        }
        complete += 1;
    }
    (complete, copies)
}
