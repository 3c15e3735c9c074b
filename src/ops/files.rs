//! Small file helpers the operator jobs share: sha256 digests and their hex form, and the
//! settings for reading a SQLite file that came from outside (a copy to restore, the legacy
//! source). Not here: anything about guild databases (the store owns those paths).

use std::{fs::File, io::Read, path::Path};

use anyhow::Context as _;
use rusqlite::{config::DbConfig, Connection};
use sha2::{Digest, Sha256};

/// Makes `conn` safe to point at a file someone else may have crafted: no writes to the schema
/// or pages by SQL (`DEFENSIVE`), no functions with side effects run from the file's own views,
/// triggers or indexes (`trusted_schema`), and every b-tree cell checked as it is read, so a
/// malformed page is an error rather than a wild read (`cell_size_check`).
pub fn distrust(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)?;
    conn.execute_batch("PRAGMA trusted_schema = OFF; PRAGMA cell_size_check = ON;")
}

pub fn sha256_file(path: &Path) -> anyhow::Result<[u8; 32]> {
    let mut file = File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 1 << 20];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            return Ok(hasher.finalize().into());
        }
        hasher.update(&buffer[..n]);
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
