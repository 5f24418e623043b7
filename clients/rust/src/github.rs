//! How the gate reaches GitHub: the App given on the command line, else `GITHUB_TOKEN`. The
//! client itself is `govledger_connectors::github`, the one the server uses too.

use std::path::PathBuf;

use anyhow::Result;
use govledger_connectors::env;
use govledger_connectors::github::Auth;
pub use govledger_connectors::github::{GitHub, Published, CONTEXT};

/// A GitHub App: its id, its private key (PEM file, as GitHub hands it out) and optionally the
/// installation to act as.
#[derive(Clone, Debug)]
pub struct App {
    pub id: u64,
    pub key: PathBuf,
    pub installation: Option<u64>,
}

/// Returns a client of the API at `api`: as the App when `app` is given, else with
/// `GITHUB_TOKEN` (which must be set).
pub fn connect(api: &str, app: Option<&App>) -> Result<GitHub> {
    let auth = match app {
        Some(a) => Auth::app(a.id, &a.key, a.installation)?,
        None => {
            anyhow::ensure!(
                env::var(env::GITHUB_TOKEN).is_some(),
                "set {}, or {} and {}, to reach GitHub",
                env::GITHUB_TOKEN,
                env::GITHUB_APP_ID,
                env::GITHUB_APP_KEY
            );
            Auth::Token {
                env: env::GITHUB_TOKEN.into(),
            }
        }
    };
    Ok(GitHub::new(api, auth, crate::http::builder().build()?))
}
