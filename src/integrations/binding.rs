//! Which release request a pull request or a ServiceNow change counts for (docs/THREATS.md).
//!
//! A source's decisions are imported as approvals of a request only when the binding holds in
//! both directions:
//!
//! - the log side: the request is the first approval_request in the log that names the PR
//!   (`github_pr=<owner/name, lowercase>#<number>`) or the change (`servicenow_change=<number>`),
//!   the attributes of `ledger_format::entry::source_bindings`. [`check_bindings`] refuses a
//!   later request naming a bound PR or change at submission (409 `source_bound`), and the
//!   sync checks it again ([`bound_elsewhere`]), for two requests that raced past the
//!   submission check;
//! - the source side: the PR's description (GitHub `body`) or the change's `description` has a
//!   line `govledger-request: <the request's leaf hash, hex>` ([`check_marker`]), naming no
//!   other request.

use ledger_format::entry::{attribute_key, source_bindings, EntryKind};
use ledger_format::leaf::Leaf;
use ledger_format::Hash;
use serde_json::Value;

use crate::governance::{refuse, Reason, Refusal};
use crate::log::Log;

/// What starts the line of a PR or change description that names the request it is for.
pub const MARKER: &str = "govledger-request:";

/// Postings read per lookup page.
const PAGE: usize = 256;

/// Returns the requests `description` names: the value of every line that starts (after
/// blanks) with [`MARKER`] (in any case), lowercased, each once, in order.
pub fn named_requests(description: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in description.lines() {
        let line = line.trim();
        let Some(head) = line.get(..MARKER.len()) else {
            continue;
        };
        if !head.eq_ignore_ascii_case(MARKER) {
            continue;
        }
        let value = line[MARKER.len()..].trim().to_ascii_lowercase();
        if !out.contains(&value) {
            out.push(value);
        }
    }
    out
}

/// Checks that `description` (of `what`, e.g. "the pull request's description") names
/// `request` (a leaf hash in lowercase hex) and nothing else; the error is the reason, for
/// `skipped`.
pub fn check_marker(what: &str, description: &str, request: &str) -> Result<(), String> {
    let named = named_requests(description);
    match named.as_slice() {
        [] => Err(format!(
            "{what} does not name this request: add the line \"{MARKER} {request}\""
        )),
        [one] if one == request => Ok(()),
        [one] => Err(format!(
            "{what} names another request ({MARKER} {one}), not {request}"
        )),
        many => Err(format!(
            "{what} names {} requests ({}); it must name exactly one",
            many.len(),
            many.join(", ")
        )),
    }
}

/// A logged approval request that carries a binding.
#[derive(Clone, Debug)]
pub struct Bound {
    pub index: u64,
    pub leaf_hash: Hash,
    pub statement: Value,
}

/// Returns the first approval request in the log (below index `below`) whose statement carries
/// `binding`. Postings are keyed by a 64-bit hash of the attribute, so each candidate is read
/// and its bindings recomputed; entries not yet published are read from the store (they are
/// durable once indexed).
pub fn first_bound(log: &Log, binding: &str, below: u64) -> Result<Option<Bound>, String> {
    let attr = attribute_key(binding);
    let mut from = 0;
    loop {
        let page = log
            .index
            .postings(attr, from, PAGE)
            .map_err(|e| e.to_string())?;
        let Some(&last) = page.last() else {
            return Ok(None);
        };
        let full = page.len() == PAGE;
        for index in page.into_iter().filter(|i| *i < below) {
            let Some(bytes) = log
                .store
                .entries(index, index + 1)
                .map_err(|e| e.to_string())?
                .pop()
            else {
                continue;
            };
            let Ok(leaf) = Leaf::parse(&bytes) else {
                continue;
            };
            if leaf.kind != EntryKind::ApprovalRequest {
                continue;
            }
            let Ok(body) = serde_json::from_slice::<Value>(&leaf.body) else {
                continue;
            };
            let statement = &body["statement"];
            if source_bindings(statement).iter().any(|b| b == binding) {
                return Ok(Some(Bound {
                    index,
                    leaf_hash: ledger_format::leaf_hash(&bytes),
                    statement: statement.clone(),
                }));
            }
        }
        if !full || last >= below || last == u64::MAX {
            return Ok(None);
        }
        from = last + 1;
    }
}

/// The field of a request statement that holds `binding`.
fn field_of(binding: &str) -> &'static str {
    if binding.starts_with("github_pr=") {
        "statement.github"
    } else {
        "statement.servicenow"
    }
}

/// Refuses an approval_request `statement` that names a PR or change an earlier request
/// already names (409 `source_bound`, field `<prefix>statement.github` or
/// `<prefix>statement.servicenow`). The same statement again (a retry of the bound request) is
/// not refused: the sequencer then answers a retry with the same entry_id with the original
/// receipt.
pub fn check_bindings(log: &Log, statement: &Value, prefix: &str) -> Result<(), Refusal> {
    for binding in source_bindings(statement) {
        let field = format!("{prefix}{}", field_of(&binding));
        let bound = first_bound(log, &binding, u64::MAX).map_err(|why| {
            refuse(
                Reason::IndexUnavailable,
                &field,
                format!("reading the index: {why}"),
            )
        })?;
        if let Some(b) = bound.filter(|b| &b.statement != statement) {
            return Err(Refusal {
                reason: Reason::SourceBound,
                message: format!(
                    "{} is bound to request {} (index {}), which named it first; a pull request or change counts for one request",
                    binding.split_once('=').map_or(binding.as_str(), |(_, v)| v),
                    b.leaf_hash.to_hex(),
                    b.index
                ),
                field,
            });
        }
    }
    Ok(())
}

/// Returns the binding of `statement` to `source` (`github`, `servicenow`), if it names one.
pub fn binding_of(statement: &Value, source: &str) -> Option<String> {
    let prefix = if source == "github" {
        "github_pr="
    } else {
        "servicenow_change="
    };
    source_bindings(statement)
        .into_iter()
        .find(|b| b.starts_with(prefix))
}

/// For the sync: the leaf hash of an earlier request (below `index`) that holds `binding`.
pub fn bound_elsewhere(log: &Log, binding: &str, index: u64) -> Result<Option<Hash>, String> {
    Ok(first_bound(log, binding, index)?.map(|b| b.leaf_hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: &str = "aa00000000000000000000000000000000000000000000000000000000000000";

    #[test]
    fn markers_name_one_request() {
        let d = format!(
            "Release ppo.\n\n  GovLedger-Request: {}  \n",
            R.to_uppercase()
        );
        assert_eq!(named_requests(&d), [R]);
        assert_eq!(check_marker("the PR", &d, R), Ok(()));
        assert!(check_marker("the PR", "no marker", R)
            .unwrap_err()
            .contains("does not name"));
        let two = format!("{d}govledger-request: bb\n");
        assert!(check_marker("the PR", &two, R)
            .unwrap_err()
            .contains("names 2 requests"));
        // Only at the start of a line.
        assert!(check_marker("the PR", &format!("see govledger-request: {R}"), R).is_err());
    }
}
