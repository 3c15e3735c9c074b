//! Small file helpers the operator jobs share: sha256 digests and their hex form.
//! Not here: anything about guild databases (the store owns those paths).

use std::{fs::File, io::Read, path::Path};

use anyhow::Context as _;
use sha2::{Digest, Sha256};

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
