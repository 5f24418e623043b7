//! The offline-verifiable approval bundle (SPEC.md §8): a release request, its lineage, the
//! other requests for the same artifact, every approval and rejection of them and every
//! deployment record of the request, each with an inclusion proof to one signed checkpoint.
//!
//! A bundle is canonical or it is refused (`bundle_format`): each list in strictly ascending
//! log index, no entry twice, every entry parsed by its kind's schema, and each entry where the
//! bundle says (the request is an approval_request, the lineage the one it names, the related
//! entries requests for its artifact, every decision on one of them, every deployment of it).
//! So a reordered, duplicated or misplaced entry cannot change a verdict: it cannot pass.

use std::collections::BTreeSet;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::approval::{Case, Logged};
use crate::checkpoint::{Checkpoint, SignedCheckpoint};
use crate::entry::{Body, EntryKind};
use crate::note::{SigType, VerifierKey};
use crate::policy::Check;
use crate::proof::InclusionProof;
use crate::{leaf_hash, Hash, LeafIndex, TreeSize};

/// An entry in a bundle: a receipt without its checkpoint (the bundle's one checkpoint).
pub use crate::receipt::EntryProof as BundleEntry;

/// The value of a bundle's `format`.
pub const BUNDLE_FORMAT: &str = "govledger-approval-bundle/v1";

/// Everything a deploy gate needs to decide on a request offline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    pub format: String,
    /// The signed checkpoint note (log signature, and witness cosignatures when present).
    pub checkpoint: String,
    pub tree_size: u64,
    /// The checkpoint's root hash, base64.
    pub root: String,
    pub request: BundleEntry,
    pub lineage: Option<BundleEntry>,
    /// The other approval requests for the same artifact, in log order (their rejections can
    /// block this one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub related: Vec<BundleEntry>,
    /// Approvals and rejections of the request and of the related requests, in log order.
    pub approvals: Vec<BundleEntry>,
    /// Deployment records of the request, in log order.
    #[serde(default)]
    pub deployments: Vec<BundleEntry>,
}

/// Why a bundle could not be opened at all.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum BundleError {
    #[error("not a {BUNDLE_FORMAT} bundle: {0}")]
    Format(String),
}

/// A bundle whose checkpoint, proofs and shape were checked.
#[derive(Clone, Debug, Default)]
pub struct OpenedBundle {
    pub checkpoint: Option<Checkpoint>,
    /// Names of the witnesses whose cosignatures verified (distinct keys).
    pub cosigners: Vec<String>,
    /// The newest timestamp (Unix seconds) of a verified witness cosignature.
    pub newest_cosignature: Option<u64>,
    /// `checkpoint_signature`, `inclusion_proofs`, and `bundle_format` when the bundle is not
    /// canonical.
    pub checks: Vec<Check>,
    pub request: Option<Logged>,
    pub lineage: Option<Logged>,
    pub related: Vec<Logged>,
    pub approvals: Vec<Logged>,
    pub deployments: Vec<Logged>,
}

impl OpenedBundle {
    /// Returns the case to evaluate, when the request was proven.
    pub fn case(&self) -> Option<Case<'_>> {
        self.request.as_ref().map(|request| Case {
            request,
            lineage: self.lineage.as_ref(),
            related: &self.related,
            decisions: &self.approvals,
        })
    }

    /// Returns every entry of the bundle, request first.
    pub fn entries(&self) -> impl Iterator<Item = &Logged> {
        self.request
            .iter()
            .chain(&self.lineage)
            .chain(&self.related)
            .chain(&self.approvals)
            .chain(&self.deployments)
    }
}

/// Why one entry did not open.
enum EntryFailure {
    /// Its proof or leaf hash is wrong: an `inclusion_proofs` failure.
    Proof(String),
    /// It is proven but its body does not parse: a `bundle_format` failure.
    Body(String),
}

impl BundleEntry {
    /// Returns the entry after checking that its leaf hashes to `leaf_hash`, that its proof
    /// leads to `root` in a tree of `size`, and that its body parses.
    fn open(&self, size: TreeSize, root: &Hash) -> Result<Logged, EntryFailure> {
        let proof = |m: String| EntryFailure::Proof(format!("entry {}: {m}", self.index));
        let leaf = STANDARD
            .decode(&self.leaf)
            .map_err(|_| proof("leaf is not base64".into()))?;
        let hash = leaf_hash(&leaf);
        if hash.to_hex() != self.leaf_hash {
            return Err(proof(format!(
                "the leaf hashes to {}, not {}",
                hash.to_hex(),
                self.leaf_hash
            )));
        }
        let path = self
            .proof
            .iter()
            .map(|p| Hash::from_base64(p))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| proof(format!("proof: {e}")))?;
        InclusionProof {
            index: LeafIndex(self.index),
            size,
            path,
        }
        .verify(&hash, root)
        .map_err(|e| proof(format!("inclusion proof: {e}")))?;
        Logged::from_leaf(self.index, &leaf).map_err(EntryFailure::Body)
    }
}

/// Returns why the opened entries are not where a canonical bundle puts them.
fn shape_errors(o: &OpenedBundle) -> Vec<String> {
    let mut errors = Vec::new();
    let mut seen = BTreeSet::new();
    for e in o.entries() {
        if !seen.insert(e.index) {
            errors.push(format!("entry {} appears more than once", e.index));
        }
    }
    for (name, list) in [
        ("related", &o.related),
        ("approvals", &o.approvals),
        ("deployments", &o.deployments),
    ] {
        if list.windows(2).any(|w| w[0].index >= w[1].index) {
            errors.push(format!("{name} are not in strictly ascending log order"));
        }
    }
    let Some(request) = &o.request else {
        return errors;
    };
    let Some(req) = request.request() else {
        errors.push(format!(
            "entry {} is not an approval_request",
            request.index
        ));
        return errors;
    };
    if let Some(l) = &o.lineage {
        if l.kind() != EntryKind::Lineage || l.leaf_hash != req.statement.lineage {
            errors.push(format!(
                "entry {} is not the lineage the request names",
                l.index
            ));
        }
    }
    let mut targets = BTreeSet::from([request.leaf_hash]);
    for r in &o.related {
        match r.request() {
            Some(other)
                if other.statement.artifact_sha256 == req.statement.artifact_sha256
                    && r.leaf_hash != request.leaf_hash =>
            {
                targets.insert(r.leaf_hash);
            }
            _ => errors.push(format!(
                "related entry {} is not another request for the artifact",
                r.index
            )),
        }
    }
    for a in &o.approvals {
        if !a
            .approval()
            .is_some_and(|d| targets.contains(&d.statement.request))
        {
            errors.push(format!(
                "entry {} is not a decision on the request or a related one",
                a.index
            ));
        }
    }
    for d in &o.deployments {
        if !matches!(&d.body, Body::Deployment(x) if x.request == request.leaf_hash) {
            errors.push(format!(
                "entry {} is not a deployment of the request",
                d.index
            ));
        }
    }
    errors
}

impl Bundle {
    /// Parses a bundle (JSON).
    pub fn parse(bytes: &[u8]) -> Result<Bundle, BundleError> {
        let b: Bundle =
            serde_json::from_slice(bytes).map_err(|e| BundleError::Format(e.to_string()))?;
        if b.format != BUNDLE_FORMAT {
            return Err(BundleError::Format(format!("format is {:?}", b.format)));
        }
        Ok(b)
    }

    /// Checks the checkpoint against `log_key` (collecting cosignatures by `witness_keys`),
    /// every entry's inclusion proof against it, every body against its schema, and the
    /// bundle's shape. Entries whose proofs fail are left out and named in `inclusion_proofs`;
    /// with a bad checkpoint nothing is proven and every entry is left out; a malformed body or
    /// a non-canonical shape fails `bundle_format` and leaves every entry out.
    pub fn open(&self, log_key: &VerifierKey, witness_keys: &[VerifierKey]) -> OpenedBundle {
        let mut opened = OpenedBundle::default();
        let c = match self.open_checkpoint(log_key, witness_keys, &mut opened) {
            Ok(c) => c,
            Err(e) => {
                opened.checks.push(Check::new(
                    "checkpoint_signature",
                    false,
                    format!("the checkpoint does not verify with the policy's log key: {e}"),
                ));
                opened.checks.push(Check::new(
                    "inclusion_proofs",
                    false,
                    "nothing can be proven without a valid checkpoint",
                ));
                return opened;
            }
        };
        opened.checks.push(Check::new(
            "checkpoint_signature",
            true,
            format!(
                "{} at size {} signed by {}",
                c.origin,
                c.size,
                log_key.name()
            ),
        ));
        let (mut proofs, mut bodies) = (Vec::new(), Vec::new());
        let mut open = |e: &BundleEntry| match e.open(c.size, &c.root) {
            Ok(l) => Some(l),
            Err(EntryFailure::Proof(why)) => {
                proofs.push(why);
                None
            }
            Err(EntryFailure::Body(why)) => {
                bodies.push(why);
                None
            }
        };
        opened.request = Some(&self.request).and_then(&mut open);
        opened.lineage = self.lineage.as_ref().and_then(&mut open);
        opened.related = self.related.iter().filter_map(&mut open).collect();
        opened.approvals = self.approvals.iter().filter_map(&mut open).collect();
        opened.deployments = self.deployments.iter().filter_map(&mut open).collect();
        let total = 1
            + self.lineage.is_some() as usize
            + self.related.len()
            + self.approvals.len()
            + self.deployments.len();
        opened.checks.push(if proofs.is_empty() {
            Check::new(
                "inclusion_proofs",
                true,
                format!("{total} entries proven in the tree of size {}", c.size),
            )
        } else {
            Check::new("inclusion_proofs", false, proofs.join("; "))
        });
        bodies.extend(shape_errors(&opened));
        if !bodies.is_empty() {
            opened
                .checks
                .push(Check::new("bundle_format", false, bodies.join("; ")));
            opened.request = None;
            opened.lineage = None;
            opened.related.clear();
            opened.approvals.clear();
            opened.deployments.clear();
        }
        opened.checkpoint = Some(c);
        opened
    }

    /// Verifies the checkpoint note and that the bundle's size and root are its own.
    fn open_checkpoint(
        &self,
        log_key: &VerifierKey,
        witness_keys: &[VerifierKey],
        opened: &mut OpenedBundle,
    ) -> Result<Checkpoint, String> {
        let (s, verified) =
            SignedCheckpoint::open(self.checkpoint.as_bytes(), log_key, witness_keys)
                .map_err(|e| e.to_string())?;
        let cosigs: Vec<_> = verified
            .iter()
            .filter(|v| v.key.sig_type() == SigType::Cosignature)
            .collect();
        let mut names: Vec<String> = cosigs.iter().map(|v| v.key.name().to_owned()).collect();
        names.sort();
        names.dedup();
        opened.cosigners = names;
        opened.newest_cosignature = cosigs.iter().filter_map(|v| v.timestamp).max();
        let c = s.checkpoint;
        if c.size.0 != self.tree_size || c.root.to_base64() != self.root {
            return Err(format!(
                "the bundle says size {} root {}, its checkpoint size {} root {}",
                self.tree_size, self.root, c.size, c.root
            ));
        }
        Ok(c)
    }
}
