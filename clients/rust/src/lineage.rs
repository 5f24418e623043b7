//! `govledger lineage`: hash a model's datasets and artifact, submit the lineage entry and write
//! `metadata.json` beside the artifact; `govledger lineage verify`: recompute the fingerprints
//! and compare them with the logged entry, proven by its inclusion proof.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use ledger_format::note::VerifierKey;
use ledger_format::receipt::Receipt;
use serde_json::{json, Map, Value};

use crate::cli::Outcome;

/// A dataset on the command line: `TYPE:NAME=PATH` (`training:market_data_2024=data/md.csv`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatasetArg {
    pub kind: Option<String>,
    pub name: String,
    pub path: PathBuf,
}

/// Parses `TYPE:NAME=PATH`, or `NAME=PATH` when `typed` is false.
pub fn parse_dataset(s: &str, typed: bool) -> Result<DatasetArg> {
    let (lhs, path) = s
        .split_once('=')
        .ok_or_else(|| anyhow!("--dataset {s:?}: write TYPE:NAME=PATH"))?;
    let (kind, name) = match (typed, lhs.split_once(':')) {
        (true, Some((k, n))) => {
            if !["training", "validation", "test"].contains(&k) {
                bail!("--dataset {s:?}: the type is training, validation or test");
            }
            (Some(k.to_owned()), n)
        }
        (true, None) => bail!("--dataset {s:?}: write TYPE:NAME=PATH"),
        (false, _) => (None, lhs),
    };
    if name.is_empty() || path.is_empty() {
        bail!("--dataset {s:?}: the name and the path must not be empty");
    }
    Ok(DatasetArg {
        kind,
        name: name.to_owned(),
        path: PathBuf::from(path),
    })
}

/// A dataset's fingerprint and size.
fn describe(path: &Path) -> Result<(String, &'static str, u64, u64)> {
    let (sha, method) = crate::dataset::fingerprint(path, &mut |_| {})?;
    let size = crate::dataset::total_bytes(path)?;
    let files = match method {
        "directory" => crate::dataset::files_below(path)?.len() as u64,
        _ => 1,
    };
    Ok((sha, method, size, files))
}

/// What a lineage entry records.
pub struct LineageArgs<'a> {
    pub url: &'a str,
    pub token: Option<&'a str>,
    pub model_id: &'a str,
    pub model_version: &'a str,
    pub model_name: Option<&'a str>,
    pub model_type: Option<&'a str>,
    pub created_by: &'a str,
    pub datasets: &'a [DatasetArg],
    pub artifact: &'a Path,
    /// Objects from JSON files: validation_metrics, training_metrics, training_config,
    /// hyperparameters, dependencies.
    pub objects: Vec<(&'static str, Value)>,
    pub code: Option<(&'a str, &'a str)>,
    pub parent: Option<&'a str>,
    pub entry_id: Option<&'a str>,
    /// Where to write metadata.json (default: beside the artifact).
    pub metadata: Option<&'a Path>,
    pub log_key: Option<&'a str>,
}

/// Returns the lineage body and the metadata.json skeleton (without the receipt).
pub fn build(a: &LineageArgs) -> Result<(Value, Value)> {
    let mut datasets = Vec::new();
    let mut meta_datasets = Vec::new();
    for d in a.datasets {
        let (sha, method, size, files) = describe(&d.path)?;
        let kind = d.kind.as_deref().unwrap_or("training");
        datasets.push(
            json!({"name": d.name, "type": kind, "sha256": sha, "size_bytes": size,
                             "files": files, "method": method}),
        );
        meta_datasets.push(json!({"name": d.name, "type": kind, "path": d.path.display().to_string(),
                                  "sha256": sha, "size_bytes": size, "files": files, "method": method}));
    }
    let (art_hex, art_size) = crate::dataset::hash_file(a.artifact, &mut |_| {})?;
    let artifact_name = a
        .artifact
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let artifact = json!({"path": artifact_name, "sha256": format!("sha256:{art_hex}"), "size_bytes": art_size});
    let mut body = Map::new();
    body.insert("model_id".into(), a.model_id.into());
    body.insert("model_version".into(), a.model_version.into());
    if let Some(n) = a.model_name {
        body.insert("model_name".into(), n.into());
    }
    if let Some(t) = a.model_type {
        body.insert("model_type".into(), t.into());
    }
    body.insert("created_by".into(), a.created_by.into());
    for (name, v) in &a.objects {
        if !v.is_object() {
            bail!("{name}: the file must hold a JSON object");
        }
        body.insert((*name).into(), v.clone());
    }
    body.insert("datasets".into(), datasets.into());
    body.insert("artifact".into(), artifact.clone());
    if let Some((repo, commit)) = a.code {
        body.insert("code".into(), json!({"repo": repo, "commit": commit}));
    }
    if let Some(p) = a.parent {
        body.insert("parent".into(), p.into());
    }
    let meta = json!({"model_id": a.model_id, "model_version": a.model_version,
                      "artifact": artifact, "datasets": meta_datasets});
    Ok((Value::Object(body), meta))
}

/// Returns where metadata.json goes: `--metadata`, else beside the artifact.
pub fn metadata_path(artifact: &Path, given: Option<&Path>) -> PathBuf {
    given.map(Path::to_path_buf).unwrap_or_else(|| {
        artifact
            .parent()
            .unwrap_or(Path::new("."))
            .join("metadata.json")
    })
}

/// Builds, submits and records the lineage entry.
pub fn record(a: &LineageArgs) -> Result<Outcome> {
    let (body, mut meta) = build(a)?;
    let mut sub = json!({"kind": "lineage", "body": body});
    if let Some(id) = a.entry_id {
        sub["entry_id"] = id.into();
    }
    let args = crate::submit::SubmitArgs {
        url: a.url,
        input: Path::new("-"),
        kind: None,
        entry_id: None,
        token: a.token,
        out: None,
        text: false,
        log_key: a.log_key,
    };
    let text = match crate::submit::send(&args, &sub)? {
        Outcome::Valid(t) => t,
        refused => return Ok(refused),
    };
    let receipt: Receipt = serde_json::from_str(&text).context("the server's receipt")?;
    meta["lineage"] = json!({"leaf_hash": receipt.leaf_hash, "index": receipt.index,
                             "receipt": serde_json::to_value(&receipt)?});
    let path = metadata_path(a.artifact, a.metadata);
    std::fs::write(&path, serde_json::to_string_pretty(&meta)? + "\n")
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(Outcome::Valid(format!(
        "lineage {} logged at index {}; {} written",
        receipt.leaf_hash,
        receipt.index,
        path.display()
    )))
}

/// What `lineage verify` compares.
pub struct VerifyArgs<'a> {
    pub url: &'a str,
    pub model_id: &'a str,
    /// A particular lineage entry (leaf hash); default: the model's latest.
    pub lineage: Option<&'a str>,
    /// `NAME=PATH`; default: the datasets metadata.json lists, when it is found.
    pub datasets: &'a [DatasetArg],
    pub artifact: Option<&'a Path>,
    pub metadata: Option<&'a Path>,
    /// The log key receipts must verify with; default: the one the server announces.
    pub log_key: Option<&'a str>,
}

use crate::http::get_json;

/// Returns the receipt of the model's latest lineage entry (or of `hash`).
fn find_lineage(url: &str, model_id: &str, hash: Option<&str>) -> Result<Receipt> {
    if let Some(h) = hash {
        return Ok(serde_json::from_value(get_json(&format!(
            "{url}/v1/receipts/{h}"
        ))?)?);
    }
    let mut cursor = 0u64;
    let mut last = None;
    loop {
        let q = format!(
            "{url}/v1/entries?kind=lineage&model_id={}&limit=1000&cursor={cursor}",
            encode(model_id)
        );
        let page = get_json(&q)?;
        if let Some(e) = page["entries"].as_array().and_then(|a| a.last()) {
            last = Some(e.clone());
        }
        match page["next_cursor"].as_u64() {
            Some(c) => cursor = c,
            None => break,
        }
    }
    let last =
        last.ok_or_else(|| anyhow!("the log holds no lineage entry for model {model_id:?}"))?;
    Ok(serde_json::from_value(last)?)
}

/// Percent-encodes a query value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Recomputes the fingerprints and compares them with the logged lineage entry.
pub fn verify(a: &VerifyArgs) -> Result<Outcome> {
    let url = a.url.trim_end_matches('/');
    let key = match a.log_key {
        Some(k) => k.to_owned(),
        None => get_json(&format!("{url}/v1/log"))?["verifier_key"]
            .as_str()
            .ok_or_else(|| anyhow!("{url}/v1/log names no verifier_key"))?
            .to_owned(),
    };
    let key = VerifierKey::parse(&key).context("the log key")?;
    let receipt = find_lineage(url, a.model_id, a.lineage)?;
    if let Err(e) = receipt.verify(&key) {
        return Ok(Outcome::Invalid(format!(
            "the lineage receipt does not verify: {e}"
        )));
    }
    let leaf = base64::engine::general_purpose::STANDARD.decode(&receipt.leaf)?;
    let leaf = ledger_format::leaf::Leaf::parse(&leaf)?;
    let body: Value = serde_json::from_slice(&leaf.body)?;
    if leaf.kind != ledger_format::entry::EntryKind::Lineage || body["model_id"] != a.model_id {
        return Ok(Outcome::Invalid(format!(
            "entry {} is not a lineage entry of model {}",
            receipt.leaf_hash, a.model_id
        )));
    }
    let mut datasets = a.datasets.to_vec();
    let meta_path = a
        .metadata
        .map(Path::to_path_buf)
        .or_else(|| a.artifact.map(|p| metadata_path(p, None)));
    if datasets.is_empty() {
        if let Some(mp) = meta_path.filter(|p| p.exists()) {
            let meta: Value = serde_json::from_slice(&std::fs::read(&mp)?)
                .with_context(|| format!("{}", mp.display()))?;
            for d in meta["datasets"].as_array().into_iter().flatten() {
                datasets.push(DatasetArg {
                    kind: None,
                    name: d["name"].as_str().unwrap_or_default().to_owned(),
                    path: PathBuf::from(d["path"].as_str().unwrap_or_default()),
                });
            }
        }
    }
    if datasets.is_empty() && a.artifact.is_none() {
        bail!("nothing to compare: give --dataset NAME=PATH, --artifact or --metadata");
    }
    let mut lines = vec![format!(
        "lineage {} (index {}, model {} version {}) proven in the tree of size {}",
        receipt.leaf_hash,
        receipt.index,
        a.model_id,
        body["model_version"].as_str().unwrap_or("?"),
        receipt.tree_size
    )];
    let mut mismatches = Vec::new();
    for d in &datasets {
        let logged = body["datasets"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|x| x["name"] == d.name.as_str());
        let Some(logged) = logged else {
            mismatches.push(format!("dataset {}: not in the logged lineage", d.name));
            continue;
        };
        let want = logged["sha256"].as_str().unwrap_or_default();
        let logged_method = logged["method"].as_str().unwrap_or("unknown");
        if d.path.as_os_str().is_empty() {
            mismatches.push(format!(
                "dataset {}: no path is recorded for it (logged as {logged_method}{}); give --dataset {}=PATH",
                d.name,
                if logged_method == "pandas-csv-v1" {
                    ", a DataFrame fingerprint: compare it in Python with the same DataFrame"
                } else {
                    ""
                },
                d.name
            ));
            continue;
        }
        match describe(&d.path) {
            Ok((sha, _, _, _)) if sha == want => lines.push(format!(
                "ok   dataset {} ({}): {sha}",
                d.name,
                d.path.display()
            )),
            Ok((sha, method, _, _)) => mismatches.push(format!(
                "dataset {} ({}): logged {want} ({logged_method}), computed {sha} ({method})",
                d.name,
                d.path.display()
            )),
            Err(e) => mismatches.push(format!("dataset {}: {e:#}", d.name)),
        }
    }
    if let Some(art) = a.artifact {
        let want = body["artifact"]["sha256"].as_str().unwrap_or_default();
        let (hex, _) = crate::dataset::hash_file(art, &mut |_| {})?;
        let have = format!("sha256:{hex}");
        if have == want {
            lines.push(format!("ok   artifact ({}): {have}", art.display()));
        } else {
            mismatches.push(format!(
                "artifact ({}): logged {want}, computed {have}",
                art.display()
            ));
        }
    }
    if mismatches.is_empty() {
        return Ok(Outcome::Valid(lines.join("\n")));
    }
    for m in &mismatches {
        lines.push(format!("MISMATCH {m}"));
    }
    println!("{}", lines.join("\n"));
    Ok(Outcome::Invalid(format!(
        "{} mismatch(es) with the logged lineage: {}",
        mismatches.len(),
        mismatches.join("; ")
    )))
}

/// `govledger lineage` (record) and `govledger lineage verify`.
pub fn command(c: crate::args::LineageCmd) -> Result<Outcome> {
    match c.verify {
        Some(crate::args::LineageCommand::Verify(v)) => verify_command(v),
        None => record_command(&c.record),
    }
}

fn verify_command(v: crate::args::LineageVerifyCmd) -> Result<Outcome> {
    // Names as metadata.json lists them: a TYPE: prefix on the command line is dropped.
    let datasets = v
        .datasets
        .iter()
        .map(|d| {
            parse_dataset(d, false).map(|mut a| {
                a.name = a.name.rsplit(':').next().unwrap_or_default().to_owned();
                a
            })
        })
        .collect::<Result<Vec<_>>>()?;
    verify(&VerifyArgs {
        url: &v.url,
        model_id: &v.model_id,
        lineage: v.lineage.as_deref(),
        datasets: &datasets,
        artifact: v.artifact.as_deref(),
        metadata: v.metadata.as_deref(),
        log_key: v.log_key.as_deref(),
    })
}

fn record_command(r: &crate::args::LineageRecord) -> Result<Outcome> {
    let datasets = r
        .datasets
        .iter()
        .map(|d| parse_dataset(d, true))
        .collect::<Result<Vec<_>>>()?;
    let mut objects = Vec::new();
    for (name, file) in [
        ("validation_metrics", &r.metrics),
        ("training_metrics", &r.training_metrics),
        ("training_config", &r.training_config),
        ("hyperparameters", &r.hyperparameters),
        ("dependencies", &r.dependencies),
    ] {
        if let Some(f) = file {
            objects.push((name, read_json(f)?));
        }
    }
    let created_by = r
        .created_by
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "unknown".into());
    let code = match (&r.code_repo, &r.code_commit) {
        (Some(repo), Some(c)) => Some((repo.as_str(), c.as_str())),
        _ => None,
    };
    record(&LineageArgs {
        url: &r.server.url,
        token: r.server.token.as_deref(),
        model_id: r.model_id.as_deref().unwrap_or_default(),
        model_version: &r.model_version,
        model_name: r.model_name.as_deref(),
        model_type: r.model_type.as_deref(),
        created_by: &created_by,
        datasets: &datasets,
        artifact: r.artifact.as_deref().unwrap_or(Path::new("")),
        objects,
        code,
        parent: r.parent.as_deref(),
        entry_id: r.entry_id.as_deref(),
        metadata: r.metadata.as_deref(),
        log_key: r.log_key.as_deref(),
    })
}

/// Returns the JSON document in `path`, errors naming the file.
pub fn read_json(path: &Path) -> Result<Value> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{}: not JSON", path.display()))
}
