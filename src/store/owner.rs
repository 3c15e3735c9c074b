//! One owner per data directory. Whoever builds a store holds an exclusive advisory lock
//! (`flock`) on `<data_dir>/.lock` for the store's life: the running bot, or else the one
//! operator command running without a bot. The kernel drops the lock when its process dies,
//! so a killed owner needs no cleanup. The file also says, for people and for the refusal
//! message, who holds it: pid, start time, command line and shard range.
//!
//! Not here: what an operator command does when the directory is owned (it asks the owner
//! over the control socket, `control/`).

use std::{
    fmt,
    fs::{File, OpenOptions, TryLockError},
    io::{Read, Seek, Write},
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use super::{paths, ShardOwnership, StoreError};

/// The lock file, relative to the data directory.
pub const LOCK_FILE: &str = ".lock";
/// The owner's control socket, relative to the data directory.
pub const CONTROL_SOCKET: &str = "control.sock";

/// Where the owner of `data_dir` listens for operator commands (when the owner is a bot).
pub fn control_socket(data_dir: &Path) -> PathBuf {
    data_dir.join(CONTROL_SOCKET)
}

/// Who holds a data directory, as its lock file tells.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerRecord {
    pub pid: u32,
    /// RFC 3339, UTC.
    pub started: String,
    /// The owner's command line, for a person reading the file.
    pub command: String,
    /// "a..b of n" when the owner runs some of the gateway shards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shards: Option<String>,
}

impl OwnerRecord {
    fn of_this_process(shards: Option<&ShardOwnership>) -> Self {
        Self {
            pid: std::process::id(),
            started: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            command: command_line(),
            shards: shards.map(|s| format!("{}..{} of {}", s.owned.start, s.owned.end, s.count)),
        }
    }
}

impl fmt::Display for OwnerRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pid {} (`{}`, since {}",
            self.pid, self.command, self.started
        )?;
        if let Some(shards) = &self.shards {
            write!(f, ", shards {shards}")?;
        }
        write!(f, ")")
    }
}

/// This process's arguments, the program by its file name only.
fn command_line() -> String {
    let mut args = std::env::args();
    let program = args.next().map(|program| {
        Path::new(&program)
            .file_name()
            .map_or(program.clone(), |name| name.to_string_lossy().into_owned())
    });
    program
        .into_iter()
        .chain(args)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The held lock. Dropping it (or the process ending) releases the directory.
#[derive(Debug)]
pub struct OwnerLock {
    file: File,
}

impl Drop for OwnerLock {
    /// Unlocks explicitly rather than only closing: a child this process is spawning at that
    /// moment shares the open file (until its exec closes it), and the lock lives on the open
    /// file, not on our descriptor.
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

impl OwnerLock {
    /// Takes `data_dir` for this process, creating the directory (0700) and its lock file
    /// (0600) if needed. Fails at once, without waiting, with [`StoreError::Owned`] when
    /// another process (or another store in this one) holds it.
    pub fn acquire(data_dir: &Path, shards: Option<&ShardOwnership>) -> Result<Self, StoreError> {
        paths::create_private_dir(data_dir)?;
        let path = data_dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(StoreError::io(&path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(StoreError::Owned {
                    data_dir: data_dir.to_owned(),
                    owner: read_record(&mut file),
                })
            }
            Err(TryLockError::Error(e)) => return Err(StoreError::io(&path)(e)),
        }
        let record =
            serde_json::to_vec(&OwnerRecord::of_this_process(shards)).expect("a record serialises");
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(&record))
            .and_then(|()| file.write_all(b"\n"))
            .map_err(StoreError::io(&path))?;
        Ok(Self { file })
    }
}

/// The holder's record; `None` while the holder is still writing it, or if it is not ours.
fn read_record(file: &mut File) -> Option<OwnerRecord> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    serde_json::from_str(text.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_directory_is_refused_naming_the_first_holder() {
        let dir = tempfile::tempdir().unwrap();
        let first = OwnerLock::acquire(dir.path(), None).unwrap();
        match OwnerLock::acquire(dir.path(), None) {
            Err(StoreError::Owned {
                owner: Some(owner), ..
            }) => {
                assert_eq!(owner.pid, std::process::id());
            }
            other => panic!("expected Owned, got {other:?}"),
        }
        drop(first);
        OwnerLock::acquire(dir.path(), None).expect("free once the first lock is dropped");
    }
}
