//! `govledger`: the log server. `config` → `store` (sled) → `log` (open, verify, prove) →
//! `sequencer` (single writer, group commit; with `replication`, each group in the write-ahead
//! topic before it is signed) → `http` (the API). `anchor` takes checkpoints off the machine
//! (directory, S3, Kafka, witnesses) and mirrors the whole log to the WORM bucket
//! (`anchor::mirror`); `archive` and `restore` read such a log back into a data dir. `server`
//! wires them together.

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
pub mod settings;
pub mod store;
pub mod tls;
pub mod tree_writer;
