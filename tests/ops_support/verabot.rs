//! A VeraBot per-guild file at one of our guild paths, as an operator who copied VeraBot's
//! `data/db/guilds` into our data directory would leave it (the same path shape as ours), and
//! the check that nothing touched it. Shared by `tests/ops_verabot.rs` (through `ops_support`)
//! and the end-to-end tests (which include this file).

use std::path::{Path, PathBuf};

/// The VeraBot per-guild file the tests put at a guild's path (tests/fixtures/verabot).
const VERABOT_FILE: &str =
    "tests/fixtures/verabot/v4.9.0-per-guild/guilds/400000000000000001/quotes.db";

/// Copies a VeraBot per-guild file to `guild`'s path in `data_dir`, as an operator who copied
/// VeraBot's `data/db/guilds` there would (the same path shape as ours); returns the path.
pub fn verabot_file_at(data_dir: &Path, guild: u64) -> PathBuf {
    let file = data_dir
        .join("guilds")
        .join(guild.to_string())
        .join("quotes.db");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join(VERABOT_FILE),
        &file,
    )
    .unwrap();
    file
}

/// Asserts that the file [`verabot_file_at`] put there is byte for byte as VeraBot wrote it
/// and alone in its directory (no -wal or -shm beside it).
pub fn assert_verabot_file_untouched(file: &Path) {
    let verabot = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(VERABOT_FILE)).unwrap();
    // Not assert_eq!: a failure would print the 100 kB of both files.
    assert!(
        std::fs::read(file).unwrap() == verabot,
        "not a byte changed"
    );
    let beside: Vec<_> = std::fs::read_dir(file.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(beside, ["quotes.db"], "no -wal or -shm beside it");
}
