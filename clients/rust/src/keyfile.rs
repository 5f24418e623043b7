//! Signer key files: one Go-format signer key (`PRIVATE+KEY+...`) per file, mode 0600.

use anyhow::{bail, Context, Result};
use ledger_format::note::SignerKey;
use std::io::Write;
use std::path::Path;

/// Returns a new signer key for `name` seeded from the operating system's CSPRNG.
pub fn generate(name: &str) -> Result<SignerKey> {
    use rand::RngCore;
    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    Ok(SignerKey::from_seed(name, seed)?)
}

/// Writes `key` to a new file at `path` with mode 0600; refuses to overwrite an existing file.
pub fn write_new(path: &Path, key: &SignerKey) -> Result<()> {
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
    writeln!(f, "{}", key.to_secret_string())?;
    f.sync_all()?;
    Ok(())
}

/// Reads a signer key file.
pub fn read(path: &Path) -> Result<SignerKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading key file {}", path.display()))?;
    let line = text.lines().find(|l| !l.trim().is_empty());
    match line {
        Some(l) => Ok(SignerKey::parse(l).with_context(|| format!("key file {}", path.display()))?),
        None => bail!("key file {} is empty", path.display()),
    }
}

/// `govledger keygen`: writes a new signer key and returns its verifier key.
pub fn keygen_command(c: crate::args::KeygenCmd) -> Result<crate::cli::Outcome> {
    let key = generate(&c.name)?;
    write_new(&c.out, &key)?;
    Ok(crate::cli::Outcome::Valid(key.verifier().to_string()))
}
