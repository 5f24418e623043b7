//! `govledger-connectors`: one client per external system, shared by the server (`govledgerd`)
//! and the CLI (`govledger`), which never links the server.
//!
//! - [`keyfile`]: signer key files (one Go-format `PRIVATE+KEY+...` per file, mode 0600).
//! - [`github`]: the GitHub REST API with a token or as a GitHub App installation: pull
//!   requests, reviews, and the gate's verdict (commit status or check run).
//! - [`servicenow`]: a ServiceNow instance's Table API with OAuth (client credentials or
//!   password grant), a bearer token or basic auth.
//! - `s3` (feature `s3`): an S3 bucket with Object Lock: conditional writes, retention,
//!   versions oldest first.
//!
//! Credentials come from the environment under one set of names ([`env`]); secrets are never
//! printed.

#![deny(clippy::unwrap_used)]
#![forbid(unsafe_code)]

pub mod env;
pub mod error;
pub mod github;
pub mod keyfile;
#[cfg(feature = "s3")]
pub mod s3;
pub mod servicenow;

pub use error::{Error, Failure};
