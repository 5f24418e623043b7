//! Integration tests: the real server on port 0, real HTTP, a module per area.

mod anchoring;
#[cfg(all(feature = "s3", feature = "kafka"))]
mod anchors_verify;
mod api;
mod archive;
mod audit;
mod bad_input;
mod connections;
mod crash;
mod disk;
mod faults;
mod gate;
mod governance;
mod harness;
#[cfg(feature = "github")]
mod integrations;
mod interop;
#[cfg(feature = "kafka")]
mod kafka;
#[cfg(feature = "s3")]
mod mirror;
mod monitor;
#[cfg(all(feature = "s3", feature = "kafka"))]
mod outage;
mod reads;
#[cfg(all(feature = "s3", feature = "kafka"))]
mod replicated;
mod rotation;
#[cfg(feature = "s3")]
mod s3;
mod summary;
mod tiles;
mod tls;
