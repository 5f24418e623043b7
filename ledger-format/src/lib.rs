//! `ledger-format`: govledger's formats and maths, with no I/O. It does not open files, sockets
//! or clocks; callers hand it bytes and a [`tree::HashReader`], and it hands back bytes, proofs
//! and verdicts. Every verifier (the server, the CLI, monitors, deploy gates) builds on it.
//!
//! - [`hash`]: RFC 6962 leaf and node hashing, the [`Hash`] newtype and its encodings.
//! - [`tree`]: indices and sizes, perfect subtrees, the incremental root, the hash-reader seam.
//! - [`proof`]: inclusion and consistency proofs (RFC 6962 generation, RFC 9162 verification).
//! - [`note`], [`checkpoint`], [`cosig`]: C2SP signed notes, tree heads, witness cosignatures.
//! - [`tile`]: C2SP tlog-tiles paths, tiles and entry bundles.
//! - [`leaf`], [`entry`], [`schema`], [`rfc3339`], [`jcs`]: the leaf envelope, entry kinds,
//!   their schemas and typed bodies, times, canonical JSON.
//! - [`policy`], [`approval`], [`bundle`]: the release policy, the four-eyes evaluation (the
//!   one meaning of "approved"), and the offline approval bundle.
//! - [`key_event`]: the log's key rotations.
//! - [`receipt`]: C2SP tlog-proof and the JSON receipt.
//! - [`anchor`], [`witness`]: anchor object names, the witness's checkpoint state.
//! - [`wal`]: the write-ahead record of replicated durability, and how a record continues a
//!   tree.
//!
//! The byte-exact formats are pinned in `SPEC.md` beside this crate.

#![deny(clippy::unwrap_used)]
#![forbid(unsafe_code)]

pub mod anchor;
pub mod approval;
pub mod bundle;
pub mod checkpoint;
pub mod cosig;
pub mod entry;
pub mod hash;
pub mod jcs;
pub mod key_event;
pub mod leaf;
pub mod note;
pub mod policy;
pub mod proof;
pub mod receipt;
pub mod rfc3339;
pub mod schema;
pub mod summary;
pub mod tile;
pub mod tree;
pub mod wal;
pub mod witness;

pub use hash::{leaf_hash, node_hash, Hash};
pub use tree::{LeafIndex, NodeId, TreeSize};
