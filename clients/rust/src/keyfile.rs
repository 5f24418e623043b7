//! Signer key files (the one implementation is `govledger_connectors::keyfile`), and
//! `govledger keygen`.

use anyhow::Result;

pub use govledger_connectors::keyfile::{generate, read, write_new};

/// `govledger keygen`: writes a new signer key and returns its verifier key.
pub fn keygen_command(c: crate::args::KeygenCmd) -> Result<crate::cli::Outcome> {
    let key = generate(&c.name)?;
    write_new(&c.out, &key)?;
    Ok(crate::cli::Outcome::Valid(key.verifier().to_string()))
}
