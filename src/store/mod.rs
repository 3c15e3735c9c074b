//! The store: the only code that knows where guild databases live and how they are opened.
//! Everything else reaches a guild's data through [`GuildDatabaseManager::with_guild`].
//!
//! - `manager.rs`: the pool cache, leases, eviction, deletion, stats and shutdown.
//! - `slots.rs`: which open guild to close first (a segmented LRU).
//! - `open.rs`: opening one guild's file (create from the template, PRAGMAs, migrations,
//!   quarantine of files that are not SQLite).
//! - `spare.rs`: the empty guild kept ready so a new guild costs one rename.
//! - `owner.rs`: the lock that makes one process at a time the data directory's owner.
//! - `paths.rs`: the data directory layout and private (0700/0600) files.
//! - `migrate.rs`: the numbered migrations of `schema/`.
//! - `pending_deletions.rs`: guilds whose data is due to be deleted, persisted across restarts.
//! - `backup.rs`: online-backup copies of a guild's database (backup, restore, rehearsal).

pub mod backup;
mod error;
mod manager;
pub mod migrate;
mod open;
pub mod owner;
pub mod paths;
pub mod pending_deletions;
mod slots;
mod spare;

pub use error::StoreError;
pub use manager::{side_by_side, GuildDatabaseManager, ShardOwnership, Stats, StoreConfig};
pub use migrate::{Migration, Migrations};
pub use open::{configure, ConnectionSettings, Synchronous};
pub use paths::GuildId;
pub use pending_deletions::PendingDeletions;
