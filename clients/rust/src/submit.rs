//! `govledger submit`: send one entry or a batch and print or save the receipt.

use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::path::Path;

use crate::args::{ServerArgs, SubmitCmd, SyncCommand};
use crate::cli::{read_input, Outcome};
use ledger_format::note::VerifierKey;
use ledger_format::receipt::Receipt;

/// What to send and where.
pub struct SubmitArgs<'a> {
    pub url: &'a str,
    pub input: &'a Path,
    pub kind: Option<&'a str>,
    pub entry_id: Option<&'a str>,
    pub token: Option<&'a str>,
    pub out: Option<&'a Path>,
    pub text: bool,
    pub log_key: Option<&'a str>,
}

/// Returns the request body: the input as is when it is a full submission (`kind` or
/// `entries`), else the input wrapped as the body of a `--kind` entry.
pub fn build_body(input: &Value, kind: Option<&str>, entry_id: Option<&str>) -> Result<Value> {
    if input.get("kind").is_some() || input.get("entries").is_some() {
        if kind.is_some() || entry_id.is_some() {
            bail!("the input is already a submission; --kind and --entry-id apply to bare bodies");
        }
        return Ok(input.clone());
    }
    let Some(kind) = kind else {
        bail!("the input is a bare body: give --kind (audit, lineage, ...)");
    };
    let mut sub = serde_json::json!({"kind": kind, "body": input});
    if let Some(id) = entry_id {
        sub["entry_id"] = id.into();
    }
    Ok(sub)
}

/// Sends the submission. Exit 0 with the receipt, 1 when the server refused it (its JSON error
/// on stderr), 2 on usage or I/O errors.
pub fn submit(a: &SubmitArgs) -> Result<Outcome> {
    let bytes = read_input(a.input)?;
    let input: Value = serde_json::from_slice(&bytes).context("the input is not JSON")?;
    let body = build_body(&input, a.kind, a.entry_id)?;
    send(a, &body)
}

/// Posts `body` to the server as `a` says (token, text, verification, output file).
pub fn send(a: &SubmitArgs, body: &Value) -> Result<Outcome> {
    let client = crate::http::blocking();
    let mut req = client
        .post(format!("{}/v1/entries", a.url.trim_end_matches('/')))
        .header("content-type", "application/json")
        .body(body.to_string());
    if a.text {
        req = req.header("accept", "text/plain");
    }
    if let Some(t) = a.token {
        req = req.bearer_auth(t);
    }
    let resp = req
        .send()
        .with_context(|| format!("sending to {}", a.url))?;
    let status = resp.status();
    let text = resp.text()?;
    if !status.is_success() {
        return Ok(Outcome::Invalid(format!(
            "server answered {status}: {}",
            text.trim()
        )));
    }
    if let Some(k) = a.log_key {
        let key = VerifierKey::parse(k).context("--log-key")?;
        if let Err(why) = crate::cli::verify_answer(text.as_bytes(), &key) {
            return Ok(Outcome::Invalid(format!(
                "the receipt does not verify: {why}"
            )));
        }
    }
    match a.out {
        Some(path) => {
            std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
            Ok(Outcome::Valid(format!(
                "receipt saved to {}",
                path.display()
            )))
        }
        None => Ok(Outcome::Valid(text.trim_end().to_owned())),
    }
}

/// Returns the body of the entry with leaf hash `hash` from the server.
pub fn fetch_body(url: &str, hash: &str) -> Result<Value> {
    use base64::Engine;
    let r: Receipt = crate::http::blocking()
        .get(format!("{}/v1/receipts/{hash}", url.trim_end_matches('/')))
        .send()
        .with_context(|| format!("reaching {url}"))?
        .error_for_status()
        .with_context(|| format!("entry {hash}"))?
        .json()?;
    let leaf = base64::engine::general_purpose::STANDARD.decode(&r.leaf)?;
    let leaf = ledger_format::leaf::Leaf::parse(&leaf)?;
    Ok(serde_json::from_slice(&leaf.body)?)
}

/// `govledger github|servicenow sync`: asks the server to import the request's approvals from
/// `source` now. Exit 0 with the summary, 1 when the server refuses (its error on stderr).
pub fn sync(url: &str, token: Option<&str>, request: &str, source: &str) -> Result<Outcome> {
    let mut req = crate::http::blocking().post(format!(
        "{}/v1/approvals/{request}/sync?source={source}",
        url.trim_end_matches('/')
    ));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().with_context(|| format!("reaching {url}"))?;
    let status = r.status();
    let text = r.text()?;
    if !status.is_success() {
        return Ok(Outcome::Invalid(format!(
            "server answered {status}: {}",
            text.trim()
        )));
    }
    let v: Value = serde_json::from_str(&text)?;
    let mut out = format!(
        "{source}: {} new approval entries, {} already logged, {} skipped",
        v["appended"],
        v["logged"].as_array().map_or(0, Vec::len) as u64 - v["appended"].as_u64().unwrap_or(0),
        v["skipped"].as_array().map_or(0, Vec::len)
    );
    for l in v["logged"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "\n  {} {} {} by {} (entry {})",
            if l["new"] == true { "new " } else { "kept" },
            l["decision"].as_str().unwrap_or(""),
            l["id"].as_str().unwrap_or(""),
            l["approver"].as_str().unwrap_or(""),
            l["index"]
        ));
    }
    for s in v["skipped"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "\n  skipped {}: {}",
            s["id"].as_str().unwrap_or(""),
            s["reason"].as_str().unwrap_or("")
        ));
    }
    Ok(Outcome::Valid(out))
}

/// `govledger submit`.
pub fn submit_command(c: SubmitCmd) -> Result<Outcome> {
    submit(&SubmitArgs {
        url: &c.server.url,
        input: &c.input,
        kind: c.kind.as_deref(),
        entry_id: c.entry_id.as_deref(),
        token: c.server.token.as_deref(),
        out: c.out.as_deref(),
        text: c.text,
        log_key: c.log_key.as_deref(),
    })
}

/// `govledger github sync` and `govledger servicenow sync` (`source` names which).
pub fn sync_command(c: SyncCommand, source: &str) -> Result<Outcome> {
    match c {
        SyncCommand::Sync(a) => sync(&a.server.url, a.server.token.as_deref(), &a.request, source),
    }
}

/// Posts a body the CLI built (a statement, a deployment record) to `server`: the receipt
/// printed, or saved to `out`.
pub fn send_built(server: &ServerArgs, out: Option<&Path>, body: &Value) -> Result<Outcome> {
    send(
        &SubmitArgs {
            url: &server.url,
            input: Path::new("-"),
            kind: None,
            entry_id: None,
            token: server.token.as_deref(),
            out,
            text: false,
            log_key: None,
        },
        body,
    )
}
