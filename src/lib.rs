//! `govledger`: the log server. `config` → `store` (sled) → `log` (open, verify, prove) →
//! `sequencer` (single writer, group commit) → `http` (the API). `server` wires them together.

#![deny(clippy::unwrap_used)]

pub mod anchor;
pub mod archive;
pub mod config;
pub mod governance;
pub mod http;
pub mod index;
pub mod integrations;
pub mod log;
pub mod metrics;
pub mod replication;
pub mod restore;
pub mod rotate;
pub mod sequencer;
pub mod server;
pub mod store;
pub mod tls;
pub mod tree_writer;
