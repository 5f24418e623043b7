//! Signer key files: one Go-format signer key (`PRIVATE+KEY+...`) per file, mode 0600, written
//! once (never overwritten) and fsynced.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};
use ledger_format::note::SignerKey;

/// Returns a new signer key for `name` seeded from the operating system's CSPRNG.
pub fn generate(name: &str) -> Result<SignerKey> {
    use rand::RngCore;
    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    Ok(SignerKey::from_seed(name, seed)?)
}

/// Writes `text` and a newline to a new file at `path`, mode 0600 from its creation, and
/// fsyncs it; refuses to overwrite an existing file.
pub fn write_private(path: &Path, text: &str) -> Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("creating key file {}", path.display()))?;
    writeln!(f, "{text}")?;
    f.sync_all()?;
    Ok(())
}

/// Writes `key` to a new file at `path` ([`write_private`]).
pub fn write_new(path: &Path, key: &SignerKey) -> Result<()> {
    write_private(path, &key.to_secret_string())
}

/// Reads a signer key file: its first non-empty line.
pub fn read(path: &Path) -> Result<SignerKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading key file {}", path.display()))?;
    match text.lines().map(str::trim).find(|l| !l.is_empty()) {
        Some(l) => SignerKey::parse(l).with_context(|| format!("key file {}", path.display())),
        None => bail!("key file {} is empty", path.display()),
    }
}

/// [`read`], refusing a file that group or others may read or write (a key that signs for
/// the log or a person must be its owner's alone).
pub fn read_private(path: &Path) -> Result<SignerKey> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .with_context(|| format!("reading {}", path.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            bail!(
                "the key {} is readable or writable by group or others (mode {:o}); run `chmod 600 {}`",
                path.display(),
                mode & 0o777,
                path.display()
            );
        }
    }
    read(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_is_private_written_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let key = generate("alice").unwrap();
        write_new(&path, &key).unwrap();
        assert_eq!(read_private(&path).unwrap().verifier(), key.verifier());
        assert!(
            write_new(&path, &key).is_err(),
            "an existing key file is never overwritten"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let meta = std::fs::metadata(&path).unwrap();
            assert_eq!(meta.permissions().mode() & 0o777, 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(
                read_private(&path).is_err(),
                "a key others can read is refused"
            );
        }
    }
}
