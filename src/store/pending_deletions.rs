//! Guilds whose data is due to be deleted because the bot was removed from them, kept in
//! `<data_dir>/pending_deletions.json` so that a restart does not forget them.
//!
//! Every change is written to a temporary file, fsynced and renamed over the old one, so the
//! file is always either the old list or the new one. Subscribers (the bot's deletion task,
//! tests) are told of each change through a watch channel.
//!
//! Not here: deleting the guild (`GuildDatabaseManager::delete_guild`) or deciding when to.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    sync::Mutex,
};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::{paths, StoreError};

/// The file's name inside the data directory.
pub const FILE_NAME: &str = "pending_deletions.json";

/// On-disk shape. Guild ids are strings because JSON numbers lose precision past 2^53.
#[derive(Debug, Default, Serialize, Deserialize)]
struct OnDisk {
    version: u32,
    guilds: BTreeMap<String, DateTime<Utc>>,
}

/// The persisted list: guild id -> when its data is to be deleted.
#[derive(Debug)]
pub struct PendingDeletions {
    path: PathBuf,
    /// A std Mutex is enough: it is held only while the small map is copied or rewritten.
    guilds: Mutex<BTreeMap<u64, DateTime<Utc>>>,
    /// Bumped after every change that reached the disk.
    changed: watch::Sender<u64>,
}

impl PendingDeletions {
    /// Reads the list under `data_dir` (absent file: empty list).
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let path = data_dir.join(FILE_NAME);
        let guilds = match fs::read(&path) {
            Ok(bytes) => parse(&path, &bytes)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(StoreError::io(&path)(e)),
        };
        Ok(Self {
            path,
            guilds: Mutex::new(guilds),
            changed: watch::channel(0).0,
        })
    }

    /// Deletes `guild`'s data at `at` (replacing an earlier date for it).
    pub fn schedule(&self, guild: u64, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.change(|guilds| guilds.insert(guild, at) != Some(at))
    }

    /// Forgets a scheduled deletion; returns whether there was one.
    pub fn cancel(&self, guild: u64) -> Result<bool, StoreError> {
        let mut had = false;
        self.change(|guilds| {
            had = guilds.remove(&guild).is_some();
            had
        })?;
        Ok(had)
    }

    /// When `guild`'s data is due to be deleted, if it is.
    pub fn get(&self, guild: u64) -> Option<DateTime<Utc>> {
        self.lock().get(&guild).copied()
    }

    /// Every scheduled deletion.
    pub fn all(&self) -> BTreeMap<u64, DateTime<Utc>> {
        self.lock().clone()
    }

    /// The earliest scheduled deletion.
    pub fn next_due(&self) -> Option<(u64, DateTime<Utc>)> {
        self.lock()
            .iter()
            .min_by_key(|(_, at)| **at)
            .map(|(g, at)| (*g, *at))
    }

    /// A receiver that sees a new value after every change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, DateTime<Utc>>> {
        self.guilds
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Applies `f`; if it reports a change, writes the new list and tells subscribers.
    fn change(
        &self,
        f: impl FnOnce(&mut BTreeMap<u64, DateTime<Utc>>) -> bool,
    ) -> Result<(), StoreError> {
        let mut guilds = self.lock();
        let mut next = guilds.clone();
        if !f(&mut next) {
            return Ok(());
        }
        write(&self.path, &next)?;
        *guilds = next;
        drop(guilds);
        self.changed.send_modify(|n| *n += 1);
        Ok(())
    }
}

fn parse(path: &Path, bytes: &[u8]) -> Result<BTreeMap<u64, DateTime<Utc>>, StoreError> {
    let invalid = |reason: String| {
        StoreError::io(path)(std::io::Error::new(std::io::ErrorKind::InvalidData, reason))
    };
    let on_disk: OnDisk = serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
    on_disk
        .guilds
        .into_iter()
        .map(|(id, at)| match id.parse::<u64>() {
            Ok(id) if id > 0 => Ok((id, at)),
            _ => Err(invalid(format!("`{id}` is not a guild id"))),
        })
        .collect()
}

fn write(path: &Path, guilds: &BTreeMap<u64, DateTime<Utc>>) -> Result<(), StoreError> {
    let on_disk = OnDisk {
        version: 1,
        guilds: guilds.iter().map(|(g, at)| (g.to_string(), *at)).collect(),
    };
    let bytes = serde_json::to_vec_pretty(&on_disk).expect("a map of strings and dates serialises");
    paths::create_private_dir(path.parent().expect("the file lives in the data directory"))?;
    paths::replace_file(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(secs, 0).unwrap()
    }

    #[test]
    fn survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let pending = PendingDeletions::open(dir.path()).unwrap();
        pending.schedule(u64::MAX - 1, at(200)).unwrap();
        pending.schedule(7, at(100)).unwrap();
        assert_eq!(pending.next_due(), Some((7, at(100))));
        let reopened = PendingDeletions::open(dir.path()).unwrap();
        assert_eq!(reopened.all(), pending.all());
        assert!(reopened.cancel(7).unwrap());
        assert!(!reopened.cancel(7).unwrap());
        assert_eq!(
            PendingDeletions::open(dir.path()).unwrap().all(),
            BTreeMap::from([(u64::MAX - 1, at(200))])
        );
    }

    #[test]
    fn subscribers_see_changes_but_not_no_ops() {
        let dir = tempfile::tempdir().unwrap();
        let pending = PendingDeletions::open(dir.path()).unwrap();
        let mut rx = pending.subscribe();
        pending.cancel(3).unwrap();
        assert!(!rx.has_changed().unwrap());
        pending.schedule(3, at(1)).unwrap();
        assert!(rx.has_changed().unwrap());
        rx.mark_unchanged();
        pending.schedule(3, at(1)).unwrap();
        assert!(!rx.has_changed().unwrap());
    }

    #[test]
    fn a_data_directory_it_creates_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        PendingDeletions::open(&data_dir)
            .unwrap()
            .schedule(7, at(100))
            .unwrap();
        let mode = fs::metadata(&data_dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn a_damaged_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join(FILE_NAME),
            b"{\"version\":1,\"guilds\":{\"x\":1}}",
        )
        .unwrap();
        let err = PendingDeletions::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains(FILE_NAME), "{err}");
    }
}
