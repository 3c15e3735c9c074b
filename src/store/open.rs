//! Opening one guild's database file: creation (from the spare or the schema template), the
//! PRAGMAs every connection gets, migrations, and quarantine of files that are not SQLite
//! databases.
//! Everything here blocks; the manager calls it on the blocking pool.
//!
//! Not here: which guilds are open and for how long (`manager.rs`).

use std::{
    fs,
    ops::{Deref, DerefMut},
    path::{Path, PathBuf},
    sync::{Condvar, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use rusqlite::{config::DbConfig, Connection, ErrorCode, OpenFlags, MAIN_DB};

use super::{
    migrate::{user_version, Migrations},
    paths::{self, DataDir, GuildId, SIDE_FILES},
    spare, StoreError,
};

/// SQLite's `synchronous` setting. `Normal` in WAL mode can lose the last transactions on a
/// power loss (never on a process crash); `Full` cannot, at the cost of an fsync per commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synchronous {
    Normal,
    Full,
}

impl Synchronous {
    fn pragma(self) -> &'static str {
        match self {
            Self::Normal => "NORMAL",
            Self::Full => "FULL",
        }
    }
}

/// The per-connection settings every guild connection is opened with.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionSettings {
    pub busy_timeout: Duration,
    pub synchronous: Synchronous,
    /// The largest a guild's database may grow; a write past it fails as SQLite's "database
    /// or disk is full" and changes nothing.
    pub max_guild_bytes: u64,
}

/// Page cache per connection, in KiB. Guild databases are small and many are open at once,
/// so a modest cache keeps memory flat as the number of open guilds grows.
const CACHE_KIB: i64 = 512;

pub(super) fn flags() -> OpenFlags {
    // No CREATE: a file that vanished (deleted by an operator, say) must fail to open rather
    // than come back empty. Creation goes through the template or the spare only.
    OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX
}

/// The largest WAL kept between checkpoints, in bytes: above the ~4 MiB that SQLite's
/// automatic checkpoint lets it reach, so a busy guild's WAL is reused rather than cut back
/// and regrown at every checkpoint. Only a WAL that grew past it (a checkpoint held back by a
/// long read) is cut back when the WAL restarts; the checkpoints of an idle close and of
/// shutdown cut it to nothing.
const WAL_KEEP_BYTES: i64 = 8 << 20;

/// The settings that live on a connection (not in the file). Run on every connection.
/// `secure_delete` zeroes what a delete frees, so an erased member's rows do not linger in
/// free space or in the WAL's copies of the pages that held them.
pub fn configure(conn: &Connection, settings: ConnectionSettings) -> rusqlite::Result<()> {
    conn.busy_timeout(settings.busy_timeout)?;
    keep_wal_on_close(conn)?;
    let page_bytes: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    conn.execute_batch(&format!(
        "PRAGMA foreign_keys = ON; PRAGMA synchronous = {}; PRAGMA cache_size = -{CACHE_KIB}; \
         PRAGMA journal_size_limit = {WAL_KEEP_BYTES}; PRAGMA secure_delete = ON; \
         PRAGMA max_page_count = {};",
        settings.synchronous.pragma(),
        (settings.max_guild_bytes / page_bytes.max(512).unsigned_abs()).max(1),
    ))
}

/// By default the last connection to close a database checkpoints its WAL, then deletes its
/// `-wal` and `-shm`, and the next open creates them again. Evicted guilds are reopened all the
/// time, and profiles of a many-guild workload put a third of the store's time in those two
/// steps: the file system allocating the two inodes, and three fsyncs per close and reopen
/// (the WAL before the checkpoint, the database after it, and the WAL's header when the next
/// write starts it afresh).
///
/// So closing does neither (SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, SQLITE_FCNTL_PERSIST_WAL): both
/// files stay, and the WAL keeps the frames written since its last checkpoint, which SQLite
/// reads back when the guild reopens. A WAL is still checkpointed when it reaches SQLite's
/// automatic checkpoint size (1000 pages) during a commit, and when its guild is closed for
/// being idle or open at shutdown (`manager.rs`), so a quiet guild ends as one complete file.
/// Until then, a guild's `-wal` is part of its data.
fn keep_wal_on_close(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
    let mut keep: std::ffi::c_int = 1;
    // SAFETY: the handle belongs to `conn`, which outlives the call; `keep` is the int that
    // SQLITE_FCNTL_PERSIST_WAL reads (and writes back), alive for the call.
    let code = unsafe {
        rusqlite::ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            rusqlite::ffi::SQLITE_FCNTL_PERSIST_WAL,
            (&raw mut keep).cast(),
        )
    };
    match code {
        rusqlite::ffi::SQLITE_OK => Ok(()),
        code => Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(code),
            Some("keeping the WAL files on close".to_owned()),
        )),
    }
}

/// Where a database header keeps the file format's write and read versions: 2 and 2 in WAL
/// mode, 1 and 1 in rollback-journal mode (sqlite.org/fileformat2.html, "File format version
/// numbers"). Nothing else in the header depends on the journal mode.
pub(super) const FORMAT_VERSIONS_AT: usize = 18;
pub(super) const WAL_FORMAT: [u8; 2] = [2, 2];
pub(super) const ROLLBACK_FORMAT: [u8; 2] = [1, 1];

/// A new guild's database as bytes: the schema at its latest version, built once per process
/// from `schema/`. Writing these bytes costs one file write instead of dozens of DDL
/// statements for every new guild.
pub struct Template {
    image: Vec<u8>,
}

impl Template {
    pub fn build(migrations: &Migrations) -> Result<Self, StoreError> {
        let mut conn = Connection::open_in_memory()?;
        migrations.apply(&mut conn)?;
        let mut image = conn.serialize(MAIN_DB)?.to_vec();
        // Written in WAL mode already: switching a new file with `PRAGMA journal_mode` is a
        // rollback-journal transaction of its own (a `-journal` created, three fsyncs, the
        // journal removed) on every new guild's path, only to rewrite these two bytes.
        image[FORMAT_VERSIONS_AT..FORMAT_VERSIONS_AT + 2].copy_from_slice(&WAL_FORMAT);
        Ok(Self { image })
    }

    /// Writes a new database at `path`; `Ok(false)` if a file is there already.
    pub(super) fn write_new(&self, path: &Path) -> Result<bool, StoreError> {
        paths::write_new_file(path, &self.image)
    }
}

/// How a guild's database came to be there when `open_guild` opened it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Existing,
    /// Created now, from the spare (`spare.rs`).
    Spare,
    /// Created now, from the template.
    Template,
}

/// Opens `guild`'s database read-write, ready for use: created when absent (if `create`), from
/// the spare if there is one, else from the template; PRAGMAs set, WAL on, migrated to the
/// latest version. The file is checked before anything is written to it: a newer schema is
/// refused untouched, and a file that is not a database is moved to quarantine.
pub fn open_guild(
    dir: &DataDir,
    guild: GuildId,
    create: bool,
    template: &Template,
    migrations: &Migrations,
    settings: ConnectionSettings,
) -> Result<(Connection, Origin), StoreError> {
    let db = dir.guild_db(guild);
    if db.exists() {
        return Ok((
            open_file(dir, guild, &db, migrations, settings)?,
            Origin::Existing,
        ));
    }
    if !create {
        return Err(StoreError::UnknownGuild(guild.get()));
    }
    let creating = paths::lock_guild_creation(dir)?;
    // Another process, or another use of this one, may have created it while this one waited.
    if db.exists() {
        drop(creating);
        return Ok((
            open_file(dir, guild, &db, migrations, settings)?,
            Origin::Existing,
        ));
    }
    if !spare::take(dir, guild, migrations.latest())? {
        create_from_template(dir, guild, &db, template)?;
        drop(creating);
        return Ok((
            open_file(dir, guild, &db, migrations, settings)?,
            Origin::Template,
        ));
    }
    drop(creating);
    // The spare's new name is made durable while SQLite opens the file; the guild is neither
    // used nor reported created before both are done.
    std::thread::scope(|scope| {
        let named = scope.spawn(|| paths::fsync_dir(&dir.guilds_dir()));
        let opened = open_file(dir, guild, &db, migrations, settings);
        named.join().expect("an fsync does not panic")?;
        Ok((opened?, Origin::Spare))
    })
}

/// Opens an existing guild database, checks it, and makes it ready (`open_guild`).
fn open_file(
    dir: &DataDir,
    guild: GuildId,
    db: &Path,
    migrations: &Migrations,
    settings: ConnectionSettings,
) -> Result<Connection, StoreError> {
    // SQLite takes an empty file for an empty database, so a guild whose file was emptied
    // would silently start afresh. This store never writes an empty file (new ones are
    // written whole, then linked), so an empty one is damage: quarantined, and logged.
    if fs::metadata(db).map_err(StoreError::io(db))?.len() == 0 {
        return Err(quarantine(dir, guild, db)?);
    }
    let opened = Connection::open_with_flags(db, flags()).and_then(|conn| {
        configure(&conn, settings)?;
        let version = user_version(&conn)?;
        Ok((conn, version))
    });
    let (mut conn, version) = match opened {
        Ok(opened) => opened,
        Err(e) if is_not_a_database(&e) => return Err(quarantine(dir, guild, db)?),
        Err(e) => {
            return Err(StoreError::OpenFailed {
                guild: guild.get(),
                reason: e.to_string(),
            })
        }
    };
    // Before anything is written (the switch to WAL rewrites the header): a file newer than
    // this binary, or not ours at all, is refused untouched.
    if version > migrations.latest() || version == 0 {
        migrations.judge(&conn)?;
    }
    match conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0)) {
        Ok(_) => {}
        Err(e) if is_not_a_database(&e) => {
            drop(conn);
            return Err(quarantine(dir, guild, db)?);
        }
        Err(e) => return Err(e.into()),
    }
    // `apply` reads the version again, a statement that every reopen would pay for nothing.
    if version < migrations.latest() {
        migrations.apply(&mut conn)?;
    }
    Ok(conn)
}

fn create_from_template(
    dir: &DataDir,
    guild: GuildId,
    db: &Path,
    template: &Template,
) -> Result<(), StoreError> {
    paths::create_private_dir(&dir.guild_dir(guild))?;
    // Side files beside a missing database belong to an old file (a deletion cut short by a
    // crash, or a file removed by hand). SQLite would replay that WAL into the new file,
    // bringing deleted rows back or corrupting it. The caller holds the creation lock and
    // found no database, so no process has created one here since: these cannot be a live
    // database's.
    for suffix in SIDE_FILES {
        paths::remove_if_present(&paths::with_suffix(db, suffix))?;
    }
    // Under the lock nobody else creates it, so the file is ours.
    template.write_new(db)?;
    Ok(())
}

/// Opens an existing guild database read-only, with no PRAGMA that writes and no migration:
/// for reports (`stats`, `check`, `schema status`) that must not change what they look at.
pub fn open_read_only(
    dir: &DataDir,
    guild: GuildId,
    busy_timeout: Duration,
) -> Result<Connection, StoreError> {
    let db = dir.guild_db(guild);
    if !db.exists() {
        return Err(StoreError::UnknownGuild(guild.get()));
    }
    let conn = Connection::open_with_flags(
        &db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(busy_timeout)?;
    Ok(conn)
}

pub fn is_not_a_database(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt)
    )
}

/// Moves a damaged database (and its side files) out of the guild directory, so the guild's
/// next use starts afresh and an operator can restore a backup. Returns the error to report.
fn quarantine(dir: &DataDir, guild: GuildId, db: &Path) -> Result<StoreError, StoreError> {
    // Under the creation lock: a guild created in the moment between moving the database and
    // removing its side files would lose its own.
    let _creating = paths::lock_guild_creation(dir)?;
    let target_dir = dir.quarantine_dir();
    paths::create_private_dir(&target_dir)?;
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
    let moved_to: PathBuf = target_dir.join(format!("{guild}-{stamp}.db"));
    fs::rename(db, &moved_to).map_err(StoreError::io(db))?;
    for suffix in SIDE_FILES {
        let side = paths::with_suffix(db, suffix);
        // A WAL with frames may hold the last transactions, so it goes with the database;
        // an empty one (closed guilds keep theirs) and the `-shm` index of it hold nothing.
        let holds_data = suffix == "-wal" && side.metadata().is_ok_and(|m| m.len() > 0);
        if holds_data {
            fs::rename(&side, paths::with_suffix(&moved_to, suffix))
                .map_err(StoreError::io(&side))?;
        } else {
            paths::remove_if_present(&side)?;
        }
    }
    // Both directories changed: the files' new names must last as well as their old ones'
    // removal, or a power loss could leave the damaged file in neither place.
    paths::fsync_dir(&target_dir)?;
    paths::fsync_dir(&dir.guild_dir(guild))?;
    tracing::error!(guild = guild.get(), moved_to = %moved_to.display(), "guild database is not a valid SQLite file; quarantined");
    Ok(StoreError::Quarantined {
        guild: guild.get(),
        moved_to,
    })
}

/// One guild's connections, each lent to one use at a time: at most `max` open, the first the
/// one `open_guild` opened and migrated, the others opened (with the same PRAGMAs) by the use
/// that needs one, on the blocking thread it runs on. Not r2d2: r2d2 opens every connection on
/// a worker thread of its own, the first included, so each reopen waited for two thread
/// hand-overs, and every guild's opens queued for the one worker the store gave it.
pub struct GuildConnections {
    db: PathBuf,
    settings: ConnectionSettings,
    max: usize,
    free: Mutex<Free>,
    returned: Condvar,
}

struct Free {
    idle: Vec<Connection>,
    /// Connections open, lent or idle.
    open: usize,
}

impl GuildConnections {
    pub fn new(db: PathBuf, settings: ConnectionSettings, max: usize, first: Connection) -> Self {
        Self {
            db,
            settings,
            max: max.max(1),
            free: Mutex::new(Free {
                idle: vec![first],
                open: 1,
            }),
            returned: Condvar::new(),
        }
    }

    /// An idle connection, else a new one while fewer than `max` are open, else the first one
    /// given back within the busy timeout.
    pub fn get(&self) -> Result<Lent<'_>, StoreError> {
        let deadline = std::time::Instant::now() + self.settings.busy_timeout;
        let mut free = self.lock();
        loop {
            if let Some(conn) = free.idle.pop() {
                return Ok(self.lend(conn));
            }
            if free.open < self.max {
                free.open += 1;
                drop(free);
                let opened = Connection::open_with_flags(&self.db, flags())
                    .and_then(|conn| configure(&conn, self.settings).map(|()| conn));
                return opened.map(|conn| self.lend(conn)).map_err(|e| {
                    self.lock().open -= 1;
                    self.returned.notify_one();
                    e.into()
                });
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(StoreError::ConnectionsBusy {
                    db: self.db.clone(),
                    max: self.max,
                    waited: self.settings.busy_timeout,
                });
            }
            free = self
                .returned
                .wait_timeout(free, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn lend(&self, conn: Connection) -> Lent<'_> {
        Lent {
            from: self,
            conn: Some(conn),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Free> {
        // Nothing panics while holding it, so a poisoned lock still holds consistent counts.
        self.free.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A connection lent by [`GuildConnections::get`], given back when dropped.
pub struct Lent<'a> {
    from: &'a GuildConnections,
    conn: Option<Connection>,
}

impl Deref for Lent<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn.as_ref().expect("held until dropped")
    }
}

impl DerefMut for Lent<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        self.conn.as_mut().expect("held until dropped")
    }
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.from.lock().idle.push(conn);
            self.from.returned.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Barrier;

    use super::*;

    /// Several processes meeting a new guild at once each open it and commit a row, keeping
    /// their connection open as a running bot would: every row is in the database, because
    /// no creator removes the side files of a database another has just created and written.
    #[test]
    fn concurrent_creators_of_one_guild_keep_every_row_each_of_them_committed() {
        const CREATORS: usize = 3;
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path());
        let migrations = Migrations::embedded();
        let template = Template::build(&migrations).unwrap();
        let settings = ConnectionSettings {
            busy_timeout: Duration::from_secs(5),
            synchronous: Synchronous::Normal,
            max_guild_bytes: 1 << 30,
        };
        for raw in 1..=100 {
            let guild = GuildId::new(raw).unwrap();
            let start = Barrier::new(CREATORS);
            let open: Vec<Connection> = std::thread::scope(|scope| {
                let creators: Vec<_> = (0..CREATORS)
                    .map(|creator| {
                        let (dir, template, migrations, start) =
                            (&dir, &template, &migrations, &start);
                        scope.spawn(move || {
                            start.wait();
                            let (conn, _) =
                                open_guild(dir, guild, true, template, migrations, settings)
                                    .unwrap();
                            conn.execute(
                                "INSERT INTO quotes (text, added_by, created_at, updated_at)
                                 VALUES (?1, 1, 0, 0)",
                                [format!("creator {creator}")],
                            )
                            .unwrap();
                            conn
                        })
                    })
                    .collect();
                creators.into_iter().map(|c| c.join().unwrap()).collect()
            });
            let fresh = Connection::open_with_flags(dir.guild_db(guild), flags()).unwrap();
            let rows: i64 = fresh
                .query_row("SELECT count(*) FROM quotes", [], |r| r.get(0))
                .unwrap();
            assert_eq!(rows, CREATORS as i64, "guild {guild}");
            drop(open);
        }
    }

    /// At most `max` connections are lent at once: one more use waits for one to be given
    /// back, and gives up with a clear error after the busy timeout.
    #[test]
    fn a_use_beyond_the_connection_limit_waits_for_one_given_back_or_gives_up() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path());
        let migrations = Migrations::embedded();
        let template = Template::build(&migrations).unwrap();
        let settings = |busy_timeout| ConnectionSettings {
            busy_timeout,
            synchronous: Synchronous::Normal,
            max_guild_bytes: 1 << 30,
        };
        let guild = GuildId::new(1).unwrap();
        let open = |busy| {
            let (first, _) =
                open_guild(&dir, guild, true, &template, &migrations, settings(busy)).unwrap();
            GuildConnections::new(dir.guild_db(guild), settings(busy), 2, first)
        };

        let impatient = open(Duration::from_millis(20));
        let (_a, _b) = (impatient.get().unwrap(), impatient.get().unwrap());
        match impatient.get() {
            Err(e @ StoreError::ConnectionsBusy { max: 2, .. }) => {
                assert!(e.to_string().contains("stayed in use"), "{e}");
            }
            other => panic!("expected ConnectionsBusy, got {:?}", other.map(|_| ())),
        }

        let patient = open(Duration::from_secs(30));
        let (a, b) = (patient.get().unwrap(), patient.get().unwrap());
        // A temporary table belongs to its connection: it marks `a`.
        a.execute_batch("CREATE TEMP TABLE marked (x)").unwrap();
        std::thread::scope(|scope| {
            let waiter = scope.spawn(|| {
                let conn = patient.get().unwrap();
                conn.query_row(
                    "SELECT count(*) FROM temp.sqlite_master WHERE name = 'marked'",
                    [],
                    |r| r.get::<_, i64>(0),
                )
                .unwrap()
            });
            drop(a);
            assert_eq!(
                waiter.join().unwrap(),
                1,
                "the waiter got the one given back"
            );
        });
        drop(b);
        assert_eq!(patient.lock().open, 2, "no third connection was opened");
    }
}
