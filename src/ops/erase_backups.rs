//! Erasure reaches backups: a member forgotten or a guild deleted is also forgotten or deleted
//! in every backup set under `<data_dir>/backups`, so no copy keeps what the live data no longer
//! has. A forget rewrites each copy that held the member, with the same erasure as the live
//! file (and the same purge of free pages and index segments); a guild deletion removes the
//! guild's copies. Each set's manifest is then rewritten: the copy's new size, sha256, rows and
//! integrity, and an entry in `erasures` saying what was applied when, with no content.
//!
//! A set that cannot be brought in line is reported by path; the job then fails, naming it.
//! Not here: making sets (`backup.rs`), the erasure rules (`privacy.rs`).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{Mutex, PoisonError},
};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use rusqlite::Connection;

use super::backup::{verify, ErasureRecord, Manifest, MANIFEST};
use crate::{
    privacy::{self, ForgetActor, ForgetMode},
    store::paths,
};

/// What to apply to one guild's copies.
#[derive(Debug, Clone, Copy)]
pub enum Erasure {
    ForgetUser { user: u64, mode: ForgetMode },
    DeleteGuild,
}

/// Held while a set's manifest is read, changed and written back: erasures of several guilds
/// run at once and share the sets. Only this process writes them; it owns the data directory.
static MANIFESTS: Mutex<()> = Mutex::new(());

/// Applies `erasure` to `guild`'s copy in every set under `root`. Returns the sets that could
/// not be brought in line, with the reason; the others are done.
pub fn erase_in_backups(
    root: &Path,
    guild: u64,
    erasure: Erasure,
    now: DateTime<Utc>,
) -> BTreeMap<PathBuf, String> {
    let _manifests = MANIFESTS.lock().unwrap_or_else(PoisonError::into_inner);
    let mut failed = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(root) else {
        return failed;
    };
    for set in entries.filter_map(|e| e.ok().map(|e| e.path())) {
        if !set.join(MANIFEST).is_file() {
            continue;
        }
        if let Err(e) = erase_in_set(&set, guild, erasure, now) {
            tracing::error!(set = %set.display(), guild, error = format!("{e:#}"), "erasure in a backup set failed");
            failed.insert(set, format!("{e:#}"));
        }
    }
    failed
}

fn erase_in_set(
    set: &Path,
    guild: u64,
    erasure: Erasure,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let manifest_path = set.join(MANIFEST);
    let mut manifest: Manifest = serde_json::from_slice(
        &std::fs::read(&manifest_path)
            .with_context(|| format!("reading {}", manifest_path.display()))?,
    )
    .with_context(|| format!("{} is not a manifest", manifest_path.display()))?;
    let Some(entry) = manifest.guilds.get(&guild).cloned() else {
        return Ok(());
    };
    let copy = set.join(&entry.file);
    let action = match erasure {
        Erasure::DeleteGuild => {
            paths::remove_if_present(&copy)?;
            manifest.guilds.remove(&guild);
            "delete-guild"
        }
        Erasure::ForgetUser { user, mode } => {
            if !forget_in_copy(&copy, user, mode, now)? {
                return Ok(());
            }
            manifest.guilds.insert(guild, verify(&copy, entry.file)?);
            "forget-user"
        }
    };
    manifest.erasures.push(ErasureRecord {
        at: now.to_rfc3339(),
        action: action.to_owned(),
        guild,
    });
    paths::replace_file(&manifest_path, &serde_json::to_vec_pretty(&manifest)?)?;
    Ok(())
}

/// Forgets `user` in one backup copy and purges the copy; `false` when it held nothing of
/// theirs (the copy is then left as it was).
fn forget_in_copy(
    copy: &Path,
    user: u64,
    mode: ForgetMode,
    now: DateTime<Utc>,
) -> anyhow::Result<bool> {
    let conn = Connection::open(copy).with_context(|| format!("opening {}", copy.display()))?;
    conn.execute_batch("PRAGMA secure_delete = ON; PRAGMA foreign_keys = ON;")?;
    if privacy::export_user(&conn, user)?.is_empty() {
        return Ok(false);
    }
    privacy::forget_user(&conn, user, mode, ForgetActor::Operator, now)?;
    privacy::purge_erased(&conn)?;
    Ok(true)
}
