//! Per-kind body schemas (SPEC.md §3): strict (unknown fields are
//! refused, naming the field), bounded (every string and array has a maximum), and for signed
//! statements restricted to what RFC 8785 canonicalises identically everywhere.
//!
//! These check shape only. Signatures, references to other entries and people's identities
//! are the server's and the gate's checks.

use serde_json::{Map, Value};

use crate::entry::SchemaError;

pub use crate::rfc3339::{date_or_time_to_ms, is_rfc3339, rfc3339_to_ms};

/// Maximum length of a short text field (names, identifiers, enum-like values).
pub const MAX_SHORT: usize = 256;

/// A helper that checks an object's fields one by one and refuses unknown ones at the end.
pub struct ObjectCheck<'a> {
    map: &'a Map<String, Value>,
    path: String,
    known: Vec<&'static str>,
}

impl<'a> ObjectCheck<'a> {
    /// Starts checking `map`, found at `path` (empty for the body itself).
    pub fn new(map: &'a Map<String, Value>, path: &str) -> ObjectCheck<'a> {
        ObjectCheck {
            map,
            path: path.to_owned(),
            known: Vec::new(),
        }
    }

    pub(crate) fn field(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_owned()
        } else {
            format!("{}.{name}", self.path)
        }
    }

    fn get(
        &mut self,
        name: &'static str,
        required: bool,
    ) -> Result<Option<&'a Value>, SchemaError> {
        self.known.push(name);
        match self.map.get(name) {
            None if required => Err(SchemaError::new(
                self.field(name),
                "required field is missing",
            )),
            v => Ok(v),
        }
    }

    /// Checks a string field of 1..=max bytes.
    pub fn string(
        &mut self,
        name: &'static str,
        required: bool,
        max: usize,
    ) -> Result<Option<&'a str>, SchemaError> {
        let Some(v) = self.get(name, required)? else {
            return Ok(None);
        };
        let s = v
            .as_str()
            .ok_or_else(|| SchemaError::new(self.field(name), "must be a string"))?;
        if s.is_empty() || s.len() > max {
            return Err(SchemaError::new(
                self.field(name),
                format!("must be 1 to {max} bytes long"),
            ));
        }
        Ok(Some(s))
    }

    /// Checks an object field.
    pub fn object(
        &mut self,
        name: &'static str,
        required: bool,
    ) -> Result<Option<&'a Map<String, Value>>, SchemaError> {
        let Some(v) = self.get(name, required)? else {
            return Ok(None);
        };
        v.as_object()
            .map(Some)
            .ok_or_else(|| SchemaError::new(self.field(name), "must be an object"))
    }

    /// Checks an array of 0..=max_items strings of 1..=max_len bytes each.
    pub fn string_array(
        &mut self,
        name: &'static str,
        required: bool,
        max_items: usize,
        max_len: usize,
    ) -> Result<Option<Vec<&'a str>>, SchemaError> {
        let Some(v) = self.get(name, required)? else {
            return Ok(None);
        };
        let arr = v
            .as_array()
            .ok_or_else(|| SchemaError::new(self.field(name), "must be an array of strings"))?;
        if arr.len() > max_items {
            return Err(SchemaError::new(
                self.field(name),
                format!("at most {max_items} items"),
            ));
        }
        arr.iter()
            .enumerate()
            .map(|(i, x)| {
                x.as_str()
                    .filter(|s| !s.is_empty() && s.len() <= max_len)
                    .ok_or_else(|| {
                        SchemaError::new(
                            format!("{}[{i}]", self.field(name)),
                            format!("must be a string of 1 to {max_len} bytes"),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// Checks an RFC 3339 timestamp string field.
    pub fn timestamp(
        &mut self,
        name: &'static str,
        required: bool,
    ) -> Result<Option<&'a str>, SchemaError> {
        self.matching(
            name,
            required,
            64,
            |t| rfc3339_to_ms(t).is_some(),
            "must be an RFC 3339 time after 1970 such as 2026-11-26T09:30:00Z",
        )
    }

    /// Checks a string field of 1..=max bytes that `ok` accepts, else fails with `message`.
    pub fn matching(
        &mut self,
        name: &'static str,
        required: bool,
        max: usize,
        ok: impl Fn(&str) -> bool,
        message: impl Into<String>,
    ) -> Result<Option<&'a str>, SchemaError> {
        let s = self.string(name, required, max)?;
        match s {
            Some(v) if !ok(v) => Err(SchemaError::new(self.field(name), message)),
            _ => Ok(s),
        }
    }

    /// Refuses any field that no check asked for.
    pub fn finish(self) -> Result<(), SchemaError> {
        for key in self.map.keys() {
            if !self.known.contains(&key.as_str()) {
                return Err(SchemaError::new(self.field(key), "unknown field"));
            }
        }
        Ok(())
    }
}

/// The audit event schema (SPEC.md §3.1).
pub fn audit(map: &Map<String, Value>) -> Result<(), SchemaError> {
    let mut c = ObjectCheck::new(map, "");
    c.string("event_type", true, MAX_SHORT)?;
    c.string("component", true, MAX_SHORT)?;
    c.string("action", true, MAX_SHORT)?;
    c.object("details", true)?;
    c.string_array("compliance_tags", true, 32, 64)?;
    c.string("severity", false, 32)?;
    c.string("actor", false, MAX_SHORT)?;
    c.timestamp("occurred_at", false)?;
    c.finish()
}

/// An object found inside another, with its JSON path.
pub type Located<'a> = (String, &'a Map<String, Value>);

/// Most datasets, dependencies and other list items in one entry.
pub const MAX_ITEMS: usize = 64;

fn is_digest(s: &str) -> bool {
    s.strip_prefix("sha256:").is_some_and(is_hex64)
}

/// Returns true for a GitHub `owner/name`.
pub fn is_github_repo(s: &str) -> bool {
    let part = |p: &str| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    };
    matches!(s.split_once('/'), Some((owner, name)) if part(owner) && part(name))
}

/// Returns true for a git commit SHA (SHA-1 or SHA-256 object name, lowercase hex).
pub fn is_commit_sha(s: &str) -> bool {
    matches!(s.len(), 40 | 64) && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Returns true for an identifier a source query may carry verbatim (a ServiceNow change
/// number or `sys_id`): 1 to 64 ASCII letters, digits, `-` and `_`. Anything else could change
/// the meaning of an encoded query (`^`, `=`, spaces), so it is refused, not escaped.
pub fn is_source_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

/// Returns true for a decimal number written as a string (`-0.25`, `1.7`, `3`): what a signed
/// statement carries instead of a float.
pub fn is_decimal(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, "0"));
    !int.is_empty()
        && !frac.is_empty()
        && int.len() + frac.len() <= 40
        && int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl<'a> ObjectCheck<'a> {
    /// Returns the JSON path of a field of this object.
    pub fn path_of(&self, name: &str) -> String {
        self.field(name)
    }

    /// Checks an integer field within `min..=max`.
    pub fn integer(
        &mut self,
        name: &'static str,
        required: bool,
        min: i64,
        max: i64,
    ) -> Result<Option<i64>, SchemaError> {
        let Some(v) = self.get(name, required)? else {
            return Ok(None);
        };
        match v.as_i64() {
            Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(SchemaError::new(
                self.field(name),
                format!("must be an integer from {min} to {max}"),
            )),
        }
    }

    /// Checks a string field that must be one of `allowed`.
    pub fn one_of(
        &mut self,
        name: &'static str,
        required: bool,
        allowed: &[&str],
    ) -> Result<Option<&'a str>, SchemaError> {
        let s = self.string(name, required, MAX_SHORT)?;
        if let Some(s) = s {
            if !allowed.contains(&s) {
                return Err(SchemaError::new(
                    self.field(name),
                    format!("must be one of {}", allowed.join(", ")),
                ));
            }
        }
        Ok(s)
    }

    /// Checks a content digest `sha256:<64 lowercase hex>`.
    pub fn digest(
        &mut self,
        name: &'static str,
        required: bool,
    ) -> Result<Option<&'a str>, SchemaError> {
        self.matching(
            name,
            required,
            71,
            is_digest,
            "must be sha256:<64 lowercase hex>",
        )
    }

    /// Checks an entry reference: a leaf hash as 64 lowercase hex characters.
    pub fn leaf_ref(
        &mut self,
        name: &'static str,
        required: bool,
    ) -> Result<Option<&'a str>, SchemaError> {
        self.matching(
            name,
            required,
            64,
            is_hex64,
            "must be a leaf hash: 64 lowercase hex characters",
        )
    }

    /// Checks an Ed25519 signature: standard base64 of 64 bytes.
    pub fn signature(
        &mut self,
        name: &'static str,
        required: bool,
    ) -> Result<Option<&'a str>, SchemaError> {
        use base64::Engine;
        let s = self.string(name, required, 88)?;
        if let Some(s) = s {
            let ok = base64::engine::general_purpose::STANDARD
                .decode(s)
                .is_ok_and(|b| b.len() == 64);
            if !ok {
                return Err(SchemaError::new(
                    self.field(name),
                    "must be base64 of a 64-byte Ed25519 signature",
                ));
            }
        }
        Ok(s)
    }

    /// Checks an array of digests.
    pub fn digest_array(
        &mut self,
        name: &'static str,
        required: bool,
        max: usize,
    ) -> Result<(), SchemaError> {
        if let Some(items) = self.string_array(name, required, max, 71)? {
            for (i, s) in items.iter().enumerate() {
                if !s.strip_prefix("sha256:").is_some_and(is_hex64) {
                    return Err(SchemaError::new(
                        format!("{}[{i}]", self.field(name)),
                        "must be sha256:<64 lowercase hex>",
                    ));
                }
            }
        }
        Ok(())
    }

    /// Checks an array of objects, returning each with its path for nested checks.
    pub fn objects(
        &mut self,
        name: &'static str,
        required: bool,
        min: usize,
        max: usize,
    ) -> Result<Vec<Located<'a>>, SchemaError> {
        let Some(v) = self.get(name, required)? else {
            return Ok(vec![]);
        };
        let arr = v
            .as_array()
            .ok_or_else(|| SchemaError::new(self.field(name), "must be an array of objects"))?;
        if arr.len() < min || arr.len() > max {
            return Err(SchemaError::new(
                self.field(name),
                format!("must hold {min} to {max} items"),
            ));
        }
        arr.iter()
            .enumerate()
            .map(|(i, x)| {
                let path = format!("{}[{i}]", self.field(name));
                x.as_object()
                    .map(|m| (path.clone(), m))
                    .ok_or_else(|| SchemaError::new(path, "must be an object"))
            })
            .collect()
    }

    /// Checks that every field of this object is a decimal number written as a string, or an
    /// integer (at most `max` fields), and returns.
    pub fn decimals(self, max: usize) -> Result<(), SchemaError> {
        if self.map.len() > max {
            return Err(SchemaError::new(
                self.path.clone(),
                format!("must hold at most {max} fields"),
            ));
        }
        for (name, v) in self.map {
            let ok = match v {
                Value::String(s) => is_decimal(s),
                Value::Number(n) => n.is_i64(),
                _ => false,
            };
            if name.is_empty() || name.len() > MAX_SHORT || !ok {
                return Err(SchemaError::new(
                    self.field(name),
                    "must be a decimal number as a string (\"0.25\") or an integer",
                ));
            }
        }
        Ok(())
    }

    /// Checks a nested object field with its own schema.
    pub fn nested(
        &mut self,
        name: &'static str,
        required: bool,
        check: impl FnOnce(ObjectCheck<'a>) -> Result<(), SchemaError>,
    ) -> Result<(), SchemaError> {
        let path = self.field(name);
        if let Some(m) = self.object(name, required)? {
            check(ObjectCheck::new(m, &path))?;
        }
        Ok(())
    }
}

/// Refuses a signed statement that RFC 8785 would not canonicalise identically everywhere.
fn canonical(path: &str, statement: &Map<String, Value>) -> Result<(), SchemaError> {
    crate::jcs::canonicalize(&Value::Object(statement.clone()))
        .map(|_| ())
        .map_err(|e| SchemaError::new(path, e.to_string()))
}

/// The model-lineage schema (SPEC.md §3.2).
pub fn lineage(map: &Map<String, Value>) -> Result<(), SchemaError> {
    let mut c = ObjectCheck::new(map, "");
    c.string("model_id", true, MAX_SHORT)?;
    c.string("model_name", false, MAX_SHORT)?;
    c.string("model_version", true, MAX_SHORT)?;
    c.string("model_type", false, MAX_SHORT)?;
    c.string("created_by", true, MAX_SHORT)?;
    for name in [
        "training_config",
        "hyperparameters",
        "training_metrics",
        "validation_metrics",
    ] {
        c.object(name, false)?;
    }
    for (path, d) in c.objects("datasets", true, 1, MAX_ITEMS)? {
        let mut d = ObjectCheck::new(d, &path);
        d.string("name", true, MAX_SHORT)?;
        d.one_of("type", true, &["training", "validation", "test"])?;
        d.digest("sha256", true)?;
        d.integer("size_bytes", true, 0, i64::MAX)?;
        d.integer("files", false, 0, i64::MAX)?;
        d.string_array("transformations", false, MAX_ITEMS, MAX_SHORT)?;
        d.one_of("method", false, &["file", "directory", "pandas-csv-v1"])?;
        d.finish()?;
    }
    c.nested("artifact", true, |mut a| {
        a.string("path", true, 1024)?;
        a.digest("sha256", true)?;
        a.integer("size_bytes", true, 0, i64::MAX)?;
        a.finish()
    })?;
    c.nested("code", false, |mut k| {
        k.string("repo", true, 1024)?;
        k.string("commit", true, MAX_SHORT)?;
        k.finish()
    })?;
    let deps_path = c.path_of("dependencies");
    if let Some(deps) = c.object("dependencies", false)? {
        if deps.len() > 4 * MAX_ITEMS {
            return Err(SchemaError::new(deps_path, "too many dependencies"));
        }
        for (k, v) in deps {
            if !v
                .as_str()
                .is_some_and(|s| !s.is_empty() && s.len() <= MAX_SHORT)
                || k.len() > MAX_SHORT
            {
                return Err(SchemaError::new(
                    format!("{deps_path}.{k}"),
                    "must map a name to a version string",
                ));
            }
        }
    }
    c.leaf_ref("parent", false)?;
    c.finish()
}

/// The approval-request schema: a statement signed by the requester (SPEC.md §3.3).
pub fn approval_request(map: &Map<String, Value>) -> Result<(), SchemaError> {
    let mut c = ObjectCheck::new(map, "");
    let path = c.path_of("statement");
    let statement = c
        .object("statement", true)?
        .expect("a required member is Some or an error");
    let mut s = ObjectCheck::new(statement, &path);
    s.string("model_id", true, MAX_SHORT)?;
    s.digest("artifact_sha256", true)?;
    s.digest_array("dataset_sha256", true, MAX_ITEMS)?;
    s.leaf_ref("lineage", true)?;
    s.string("requested_by", true, MAX_SHORT)?;
    s.string("environment", true, MAX_SHORT)?;
    s.string("policy", true, MAX_SHORT)?;
    s.timestamp("signed_at", true)?;
    s.nested("github", false, |mut g| {
        g.matching(
            "repo",
            true,
            MAX_SHORT,
            is_github_repo,
            "must be owner/name (letters, digits, '.', '-', '_')",
        )?;
        g.integer("pr", true, 1, i64::from(u32::MAX))?;
        g.matching(
            "head_sha",
            true,
            64,
            is_commit_sha,
            "must be a commit SHA: 40 or 64 lowercase hex characters",
        )?;
        g.finish()
    })?;
    s.nested("servicenow", false, |mut n| {
        n.matching(
            "change",
            true,
            64,
            is_source_id,
            "must be a change number: letters, digits, '-' and '_' only",
        )?;
        n.finish()
    })?;
    s.nested("performance_metrics", false, |m| m.decimals(MAX_ITEMS))?;
    s.finish()?;
    canonical(&path, statement)?;
    c.signature("signature", true)?;
    c.object("performance_metrics", false)?;
    c.finish()
}

/// The approval schema: a statement signed by the approver, or imported from GitHub or
/// ServiceNow with its evidence (SPEC.md §3.4).
pub fn approval(map: &Map<String, Value>) -> Result<(), SchemaError> {
    let mut c = ObjectCheck::new(map, "");
    let path = c.path_of("statement");
    let statement = c
        .object("statement", true)?
        .expect("a required member is Some or an error");
    let mut s = ObjectCheck::new(statement, &path);
    s.leaf_ref("request", true)?;
    s.digest("artifact_sha256", true)?;
    s.one_of("decision", true, &["approve", "reject"])?;
    s.string("approver", true, MAX_SHORT)?;
    s.string("role", true, MAX_SHORT)?;
    s.timestamp("signed_at", true)?;
    s.string("comment", false, 4096)?;
    s.finish()?;
    canonical(&path, statement)?;
    let source = c.one_of("source", false, &["github", "servicenow"])?;
    match source {
        None => {
            c.signature("signature", true)?;
            for only_imported in ["evidence", "decided_at"] {
                if map.contains_key(only_imported) {
                    return Err(SchemaError::new(
                        only_imported,
                        format!("{only_imported} comes with a source"),
                    ));
                }
            }
        }
        Some(src) => {
            if map.contains_key("signature") {
                return Err(SchemaError::new(
                    "signature",
                    "imported approvals carry evidence, not a personal signature",
                ));
            }
            c.timestamp("decided_at", true)?;
            c.nested("evidence", true, |mut e| {
                if src == "github" {
                    e.integer("review_id", true, 1, i64::MAX)?;
                    e.string("reviewer", true, MAX_SHORT)?;
                    e.string("commit_sha", true, 64)?;
                    e.timestamp("submitted_at", true)?;
                    e.one_of("state", true, &["APPROVED", "CHANGES_REQUESTED"])?;
                } else {
                    e.string("change", true, MAX_SHORT)?;
                    e.string("sys_id", true, MAX_SHORT)?;
                    e.string("approver", true, MAX_SHORT)?;
                    e.one_of("state", true, &["approved", "rejected"])?;
                    e.string("sys_updated_on", true, 64)?;
                }
                e.finish()
            })?;
        }
    }
    c.signature("signature", false)?;
    c.finish()
}

/// The deployment-record schema (SPEC.md §3.5).
pub fn deployment(map: &Map<String, Value>) -> Result<(), SchemaError> {
    let mut c = ObjectCheck::new(map, "");
    c.string("model_id", true, MAX_SHORT)?;
    c.leaf_ref("request", true)?;
    c.one_of("status", true, &["SUCCESS", "FAILURE", "ROLLBACK"])?;
    c.string("environment", true, MAX_SHORT)?;
    c.string("executed_by", true, MAX_SHORT)?;
    c.object("details", false)?;
    c.finish()
}
