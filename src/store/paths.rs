//! The data directory layout and the only place a guild id becomes a path:
//!
//! ```text
//! <data_dir>/guilds/<guild_id>/quotes.db      (+ -wal, -shm: kept when closed, see open.rs)
//! <data_dir>/guilds/.spare-v<version>/quotes.db (the next new guild, see spare.rs)
//! <data_dir>/backups/<UTC timestamp>/<guild_id>.db
//! <data_dir>/quarantine/<guild_id>-<UTC timestamp>.db
//! <data_dir>/reminder-order                   (guild ids, the scheduler's start-up order)
//! ```
//!
//! A [`GuildId`] is a non-zero u64 and is formatted in decimal, so no input can steer a path.
//! Directories are created 0700 and files 0600: guild data is personal data.
//! Not here: opening databases (`open.rs`), deciding when to (`manager.rs`).

use std::{
    fmt,
    fs::{self, DirBuilder, File, OpenOptions},
    io::{self, Write},
    num::NonZeroU64,
    os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    path::{Path, PathBuf},
};

use super::StoreError;

/// A Discord guild snowflake: never zero, and the only thing a guild's path is made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GuildId(NonZeroU64);

impl GuildId {
    pub fn new(raw: u64) -> Result<Self, StoreError> {
        NonZeroU64::new(raw)
            .map(Self)
            .ok_or(StoreError::InvalidGuildId(raw))
    }

    pub fn get(self) -> u64 {
        self.0.get()
    }

    /// The guild a directory name stands for, if it is one this store could have written:
    /// canonical decimal only, so `007` or `+7` are never mistaken for guild 7.
    fn from_dir_name(name: &str) -> Option<Self> {
        let raw: u64 = name.parse().ok()?;
        (raw.to_string() == name).then_some(())?;
        Self::new(raw).ok()
    }
}

impl fmt::Display for GuildId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

pub const DB_FILE: &str = "quotes.db";
/// The files SQLite keeps beside a database in WAL mode.
pub const SIDE_FILES: [&str; 2] = ["-wal", "-shm"];

/// Paths under one data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn guilds_dir(&self) -> PathBuf {
        self.root.join("guilds")
    }

    pub fn guild_dir(&self, guild: GuildId) -> PathBuf {
        self.guilds_dir().join(guild.to_string())
    }

    pub fn guild_db(&self, guild: GuildId) -> PathBuf {
        self.guild_dir(guild).join(DB_FILE)
    }

    /// Named for the schema version it holds: a spare left by another version is never used.
    pub fn spare_guild_dir(&self, version: u32) -> PathBuf {
        self.guilds_dir().join(format!(".spare-v{version}"))
    }

    /// Where a spare is made before it gets its name; unique to the call.
    pub fn building_spare_dir(&self) -> PathBuf {
        self.guilds_dir()
            .join(format!(".spare-building-{}", unique_to_this_call()))
    }

    pub fn backups_dir(&self) -> PathBuf {
        self.root.join("backups")
    }

    pub fn quarantine_dir(&self) -> PathBuf {
        self.root.join("quarantine")
    }

    /// The reminder scheduler's reading order: guild ids, one per line.
    pub fn reminder_order_file(&self) -> PathBuf {
        self.root.join("reminder-order")
    }

    /// Every guild with a database file, in ascending id order. Entries that are not guild
    /// directories are ignored rather than reported: the directory is ours, but operators
    /// may leave notes or editor files in it.
    pub fn guilds_on_disk(&self) -> Result<Vec<GuildId>, StoreError> {
        let mut guilds = Vec::new();
        for entry in self.guild_entries()? {
            let (guild, entry) = entry?;
            if entry.path().join(DB_FILE).exists() {
                guilds.push(guild);
            }
        }
        guilds.sort_unstable();
        Ok(guilds)
    }

    /// How many entries of the guilds directory are named as a guild's: one directory read,
    /// no look inside each (unlike [`DataDir::guilds_on_disk`]), so that 100,000 guilds cost
    /// one pass over the directory's names.
    pub fn count_guild_dirs(&self) -> Result<usize, StoreError> {
        self.guild_entries()?
            .try_fold(0, |count, entry| entry.map(|_| count + 1))
    }

    /// The guilds directory's entries named as a guild's (none when it does not exist yet).
    fn guild_entries(
        &self,
    ) -> Result<impl Iterator<Item = Result<(GuildId, fs::DirEntry), StoreError>>, StoreError> {
        let dir = self.guilds_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => Some(entries),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(StoreError::io(&dir)(e)),
        };
        Ok(entries.into_iter().flatten().filter_map(move |entry| {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => return Some(Err(StoreError::io(&dir)(e))),
            };
            let guild = entry
                .file_name()
                .to_str()
                .and_then(GuildId::from_dir_name)?;
            Some(Ok((guild, entry)))
        }))
    }
}

/// Creates `path` and any missing parents with mode 0700; existing directories keep theirs.
/// A directory's name lives in its parent, so the parent of each one created is fsynced: a
/// power loss cannot take away a directory whose files were reported saved.
pub fn create_private_dir(path: &Path) -> Result<(), StoreError> {
    if path.is_dir() {
        return Ok(());
    }
    let parent = parent_dir(path);
    create_private_dir(parent)?;
    match DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => {}
        // Another thread or process created it meanwhile, and may not have made it durable yet.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => {}
        Err(e) => return Err(StoreError::io(path)(e)),
    }
    fsync_dir(parent)
}

/// Takes the lock under which a guild's database is created (or moved to quarantine), held
/// until the returned file is dropped: an exclusive advisory lock on `guilds/` itself, so
/// that no file needs to be kept for it. Every process using the data directory honours it,
/// so a process that finds no database under the lock may clear the side files an old one
/// left, knowing no other process has just created one there. Blocks until it is free.
pub(super) fn lock_guild_creation(dir: &DataDir) -> Result<File, StoreError> {
    let guilds = dir.guilds_dir();
    create_private_dir(&guilds)?;
    let lock = File::open(&guilds).map_err(StoreError::io(&guilds))?;
    lock.lock().map_err(StoreError::io(&guilds))?;
    Ok(lock)
}

/// Writes `bytes` to `path` (mode 0600) so that `path` is either absent or complete: the
/// bytes go to a temporary file that is fsynced and then linked into place. Linking, unlike
/// renaming, fails if `path` exists, so a file another process just created is never
/// overwritten; that case returns `Ok(false)`.
pub fn write_new_file(path: &Path, bytes: &[u8]) -> Result<bool, StoreError> {
    let dir = parent_dir(path);
    let tmp = write_temporary(path, bytes)?;
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            fsync_dir(dir)?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(StoreError::io(path)(e)),
    }
}

/// Writes `bytes` to `path` (mode 0600), replacing what was there, so that a reader or a
/// crash finds either the old file or the new one, and the new one lasts once this returns.
pub fn replace_file(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let tmp = write_temporary(path, bytes)?;
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(StoreError::io(path)(e));
    }
    fsync_dir(parent_dir(path))
}

/// A new file beside `path` holding `bytes`, mode 0600, fsynced; its name is unique to this
/// call, so concurrent writers never share one.
fn write_temporary(path: &Path, bytes: &[u8]) -> Result<PathBuf, StoreError> {
    let tmp = parent_dir(path).join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("new"),
        unique_to_this_call()
    ));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(StoreError::io(&tmp))?;
    match file.write_all(bytes).and_then(|()| file.sync_all()) {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(StoreError::io(&tmp)(e))
        }
    }
}

/// `<pid>-<random>`: a name part no other process, nor another call of this one, will use.
fn unique_to_this_call() -> String {
    format!("{}-{}", std::process::id(), rand::random::<u32>())
}

/// The directory `path` is in; "." for a bare file name.
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Makes a directory's entries (files created, renamed or removed in it) durable.
pub fn fsync_dir(path: &Path) -> Result<(), StoreError> {
    File::open(path)
        .and_then(|dir| dir.sync_all())
        .map_err(StoreError::io(path))
}

/// Removes a file, treating "already gone" as done.
pub fn remove_if_present(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(StoreError::io(path)(e)),
        _ => Ok(()),
    }
}

/// `quotes.db` plus `suffix`, for the WAL side files and similar siblings.
pub fn with_suffix(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_replaced_file_holds_only_the_new_bytes_is_private_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let report = dir.path().join("report.json");
        fs::write(&report, b"an old, longer report").unwrap();
        fs::set_permissions(&report, fs::Permissions::from_mode(0o644)).unwrap();

        replace_file(&report, b"new").unwrap();

        assert_eq!(fs::read(&report).unwrap(), b"new");
        let mode = fs::metadata(&report).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["report.json"]);
    }
}
