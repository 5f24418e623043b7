//! The governance summary of a stretch of the log, as a report needs it: entries by kind and
//! by day, audit events by compliance tag and by regulation, the models trained with their
//! datasets, the approval requests made and the deployments recorded. The server's
//! `GET /v1/summary` and `govledger audit` count with this one tally, so their figures agree.
//!
//! Compliance tags are free strings; a table of regulations (`name = [tags]`) says which tags
//! stand for which regulation. Tags match without regard to ASCII case, and an audit event
//! counts once for a regulation however many of its tags name it.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use crate::entry::EntryKind;
use crate::leaf::Leaf;
use crate::rfc3339::{day_of, format_ms};
use crate::Hash;

/// Which compliance tags stand for which regulation.
#[derive(Clone, Debug, Default)]
pub struct Regulations {
    /// Lowercased tag to the regulations it stands for.
    by_tag: BTreeMap<String, BTreeSet<String>>,
    names: BTreeSet<String>,
}

impl Regulations {
    /// The table `regulation name -> tags` (a config's `[regulations]`).
    pub fn new(table: &BTreeMap<String, Vec<String>>) -> Regulations {
        let mut r = Regulations::default();
        for (name, tags) in table {
            r.names.insert(name.clone());
            for t in tags {
                r.by_tag
                    .entry(t.to_ascii_lowercase())
                    .or_default()
                    .insert(name.clone());
            }
        }
        r
    }

    /// The regulations any of `tags` stands for.
    pub fn of<'a>(&self, tags: impl IntoIterator<Item = &'a str>) -> BTreeSet<&str> {
        tags.into_iter()
            .filter_map(|t| self.by_tag.get(&t.to_ascii_lowercase()))
            .flatten()
            .map(String::as_str)
            .collect()
    }
}

/// The counts and lists of the entries accounted.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    pub in_range: u64,
    pub by_kind: BTreeMap<&'static str, u64>,
    pub by_day: BTreeMap<String, BTreeMap<&'static str, u64>>,
    pub tags: BTreeMap<String, u64>,
    /// Audit events per regulation (every regulation of the table, zero included).
    pub regulations: BTreeMap<String, u64>,
    /// Audit events none of whose tags names a regulation.
    pub unregulated: u64,
    /// One item per lineage entry: `model_id`, `model_version`, `index`, `leaf_hash`,
    /// `logged_at`, `datasets` (`name`, `type`, `sha256`), `artifact_sha256`.
    pub models: Vec<Value>,
    /// The approval requests accounted: (index, leaf hash).
    pub requests: Vec<(u64, Hash)>,
    /// One item per deployment entry: `index`, `leaf_hash`, `request`, `model_id`, `status`,
    /// `environment`, `executed_by`, `logged_at`, `logged_at_ms`.
    pub deployments: Vec<Value>,
    table: Regulations,
}

impl Tally {
    /// An empty tally that counts audit events by the regulations of `table`.
    pub fn new(table: Regulations) -> Tally {
        Tally {
            regulations: table.names.iter().map(|n| (n.clone(), 0)).collect(),
            table,
            ..Tally::default()
        }
    }

    /// Accounts entry `index` (its leaf, its hash and its body as JSON).
    pub fn account(&mut self, index: u64, leaf_hash: &Hash, leaf: &Leaf, body: &Value) {
        let kind = leaf.kind.name();
        self.in_range += 1;
        *self.by_kind.entry(kind).or_default() += 1;
        *self
            .by_day
            .entry(day_of(leaf.logged_at_ms))
            .or_default()
            .entry(kind)
            .or_default() += 1;
        let logged_at = format_ms(leaf.logged_at_ms);
        match leaf.kind {
            EntryKind::Audit => self.audit(body),
            EntryKind::Lineage => {
                let datasets: Vec<Value> = body["datasets"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|d| json!({"name": d["name"], "type": d["type"], "sha256": d["sha256"]}))
                    .collect();
                self.models.push(json!({"model_id": body["model_id"],
                    "model_version": body["model_version"], "index": index,
                    "leaf_hash": leaf_hash.to_hex(), "logged_at": logged_at, "datasets": datasets,
                    "artifact_sha256": body["artifact"]["sha256"]}));
            }
            EntryKind::ApprovalRequest => self.requests.push((index, *leaf_hash)),
            EntryKind::Deployment => {
                self.deployments
                    .push(json!({"index": index, "leaf_hash": leaf_hash.to_hex(),
                    "request": body["request"], "model_id": body["model_id"],
                    "status": body["status"], "environment": body["environment"],
                    "executed_by": body["executed_by"], "logged_at": logged_at,
                    "logged_at_ms": leaf.logged_at_ms}));
            }
            _ => {}
        }
    }

    fn audit(&mut self, body: &Value) {
        let tags: Vec<&str> = body["compliance_tags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        for t in &tags {
            *self.tags.entry((*t).to_owned()).or_default() += 1;
        }
        let regulations = self.table.of(tags.iter().copied());
        if regulations.is_empty() {
            self.unregulated += 1;
        }
        for r in regulations {
            *self.regulations.entry(r.to_owned()).or_default() += 1;
        }
    }

    /// `{"in_range", "by_kind", "by_day"}`: the report's `entries`.
    pub fn entries_json(&self) -> Value {
        json!({"in_range": self.in_range, "by_kind": self.by_kind, "by_day": self.by_day})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(kind: EntryKind, at: u64) -> Leaf {
        Leaf {
            kind,
            logged_at_ms: at,
            submitter: "anonymous".into(),
            entry_id: String::new(),
            body: Vec::new(),
        }
    }

    #[test]
    fn audit_events_count_once_per_regulation_whatever_the_case_of_their_tags() {
        let table = BTreeMap::from([
            (
                "MiFID II".to_owned(),
                vec!["mifid2".to_owned(), "MIFID_II".to_owned()],
            ),
            ("SOX".to_owned(), vec!["sox".to_owned()]),
            ("SR 11-7".to_owned(), vec!["sr11-7".to_owned()]),
        ]);
        let mut t = Tally::new(Regulations::new(&table));
        let h = Hash::from_slice(&[7; 32]).unwrap();
        let day = 1_700_000_000_000;
        for (i, tags) in [
            json!(["MiFID2", "mifid_ii", "SOX"]),
            json!(["best-execution"]),
            json!(["sox", "SOX"]),
            json!([]),
        ]
        .into_iter()
        .enumerate()
        {
            t.account(
                i as u64,
                &h,
                &leaf(EntryKind::Audit, day),
                &json!({ "compliance_tags": tags }),
            );
        }
        assert_eq!(t.regulations["MiFID II"], 1);
        assert_eq!(t.regulations["SOX"], 2);
        assert_eq!(t.regulations["SR 11-7"], 0);
        assert_eq!(t.unregulated, 2);
        assert_eq!(t.tags["SOX"], 2);
        assert_eq!(t.tags["sox"], 1);
        assert_eq!(t.in_range, 4);
        assert_eq!(t.by_kind["audit"], 4);
        assert_eq!(t.by_day["2023-11-14"]["audit"], 4);
    }

    #[test]
    fn lineage_requests_and_deployments_are_listed() {
        let mut t = Tally::new(Regulations::default());
        let h = Hash::from_slice(&[1; 32]).unwrap();
        t.account(
            3,
            &h,
            &leaf(EntryKind::Lineage, 0),
            &json!({"model_id": "m", "model_version": "1",
                "datasets": [{"name": "d", "type": "training", "sha256": "sha256:00", "path": "x"}],
                "artifact": {"sha256": "sha256:aa"}}),
        );
        t.account(4, &h, &leaf(EntryKind::ApprovalRequest, 0), &json!({}));
        t.account(
            5,
            &h,
            &leaf(EntryKind::Deployment, 1000),
            &json!({"request": "r", "model_id": "m", "status": "SUCCESS", "environment": "production", "executed_by": "ci"}),
        );
        assert_eq!(
            t.models[0]["datasets"],
            json!([{"name": "d", "type": "training", "sha256": "sha256:00"}])
        );
        assert_eq!(t.models[0]["artifact_sha256"], "sha256:aa");
        assert_eq!(t.requests, vec![(4, h)]);
        assert_eq!(t.deployments[0]["logged_at"], "1970-01-01T00:00:01.000Z");
        assert!(t.regulations.is_empty());
    }
}
