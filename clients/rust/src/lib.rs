//! `govledger-client`: offline verification helpers and the `govledger` CLI's commands. HTTP
//! submission and the monitor, gate and audit commands build on the same pieces.

#![deny(clippy::unwrap_used)]

pub mod anchors;
pub mod arg_groups;
pub mod args;
pub mod audit;
pub mod cli;
pub mod dataset;
pub mod gate;
pub mod github;
pub mod http;
pub mod keyfile;
pub mod keys;
pub mod lineage;
pub mod loadgen;
pub mod monitor;
pub mod report_html;
pub mod statements;
pub mod submit;
pub mod tiles;
pub mod time;
pub mod witness;
