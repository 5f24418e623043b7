//! `govledger audit` against a real server: the report's counts equal what was submitted, the
//! anchors and stored checkpoints are re-checked, a deployment without quorum is an anomaly, and
//! an entry tampered with in a copy of the data dir is found and named by its index.

use std::path::Path;

use base64::Engine;
use govledger_client::audit::AuditArgs;
use govledger_client::cli::Outcome;
use ledger_format::note::SignerKey;
use serde_json::{json, Value};

use crate::harness::{start_in, start_with, TestServer};

fn sign(k: &SignerKey, st: &Value) -> String {
    let c = ledger_format::jcs::canonicalize(st).unwrap();
    base64::engine::general_purpose::STANDARD.encode(k.sign_raw(c.as_bytes()))
}

/// Runs the audit into `out` and returns its outcome and report.json.
pub async fn audit(
    s: &TestServer,
    policy: Option<&str>,
    out: &Path,
    key: Option<SignerKey>,
) -> (Outcome, Value) {
    let args = AuditArgs {
        tiles: None,
        url: s.url.clone(),
        log_key: s.vkey.clone(),
        from_ms: None,
        to_ms: None,
        policy: policy.map(|p| ledger_format::policy::Policy::parse(p).unwrap()),
        anchor_dir: Some(s.dir.path().join("anchors")),
        s3: None,
        kafka: None,
        auditor_key: key,
        out: out.to_path_buf(),
        jobs: 4,
    };
    let outcome = tokio::task::spawn_blocking(move || govledger_client::audit::run(&args).unwrap())
        .await
        .unwrap();
    let report = serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    (outcome, report)
}

/// Fills a log with a known mix: 30 audit events (20 MIFID_II, 10 SOX, 5 of them both), two
/// lineage entries, a properly approved release and its deployment.
pub async fn fill(s: &TestServer, keys: &[SignerKey]) -> String {
    for i in 0..30 {
        let tags: Vec<&str> = match i {
            0..=14 => vec!["MIFID_II"],
            15..=19 => vec!["MIFID_II", "SOX"],
            _ => vec!["SOX"],
        };
        let (st, v) = s
            .post(&json!({"kind": "audit", "body": {"event_type": "RISK_DECISION", "component": "risk-agent",
                "action": "reduce", "details": {"n": i}, "compliance_tags": tags}}).to_string())
            .await;
        assert_eq!(st, 200, "{v}");
    }
    let art = format!("sha256:{}", "ab".repeat(32));
    let ds = format!("sha256:{}", "cd".repeat(32));
    let mut lineage = String::new();
    for model in ["ppo-1", "ppo-2"] {
        let (st, v) = s
            .post(&json!({"kind": "lineage", "body": {"model_id": model, "model_version": "1", "created_by": "t",
                "datasets": [{"name": "md", "type": "training", "sha256": ds, "size_bytes": 1}],
                "artifact": {"path": "p.pt", "sha256": art, "size_bytes": 1}}}).to_string())
            .await;
        assert_eq!(st, 200, "{v}");
        lineage = v["leaf_hash"].as_str().unwrap().to_owned();
    }
    let st = json!({"model_id": "ppo-2", "artifact_sha256": art, "dataset_sha256": [ds], "lineage": lineage,
                    "requested_by": "alice", "environment": "production", "policy": "p", "signed_at": crate::harness::signed_now()});
    let (_, r) = s
        .post(&json!({"kind": "approval_request", "body": {"statement": st, "signature": sign(&keys[0], &st)}}).to_string())
        .await;
    let request = r["leaf_hash"].as_str().unwrap().to_owned();
    for k in &keys[1..3] {
        let st = json!({"request": request, "artifact_sha256": art, "decision": "approve", "approver": k.name(),
                        "role": "risk", "signed_at": crate::harness::signed_now()});
        let (code, v) = s
            .post(
                &json!({"kind": "approval", "body": {"statement": st, "signature": sign(k, &st)}})
                    .to_string(),
            )
            .await;
        assert_eq!(code, 200, "{v}");
    }
    let (code, _) = s
        .post(&json!({"kind": "deployment", "body": {"model_id": "ppo-2", "request": request, "status": "SUCCESS",
            "environment": "production", "executed_by": "ci"}}).to_string())
        .await;
    assert_eq!(code, 200);
    request
}

pub fn people() -> (Vec<SignerKey>, String, Vec<govledger::config::PersonConfig>) {
    let keys: Vec<SignerKey> = ["alice", "bob", "carol"]
        .iter()
        .enumerate()
        .map(|(i, n)| SignerKey::from_seed(n, [i as u8 + 1; 32]).unwrap())
        .collect();
    let mut policy = String::from("name = \"p\"\n[approvals]\nmin_approvers = 2\n");
    let mut cfg = Vec::new();
    for k in &keys {
        policy.push_str(&format!(
            "[[people]]\nname = \"{}\"\nroles = [\"risk\"]\nkey = \"{}\"\n",
            k.name(),
            k.verifier()
        ));
        cfg.push(govledger::config::PersonConfig {
            name: k.name().into(),
            roles: vec!["risk".into()],
            key: k.verifier().to_string(),
            ..Default::default()
        });
    }
    (keys, policy, cfg)
}

#[tokio::test]
async fn the_report_counts_what_was_submitted_and_finds_tampering() {
    let (keys, policy, cfg) = people();
    let s = start_with(move |c| {
        c.people = cfg;
        c.anchors.interval_ms = 100;
    })
    .await;
    let request = fill(&s, &keys).await;
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let out = tempfile::tempdir().unwrap();
    let auditor = SignerKey::from_seed("auditor", [7; 32]).unwrap();
    let (outcome, r) = audit(&s, Some(&policy), out.path(), Some(auditor.clone())).await;
    assert!(matches!(outcome, Outcome::Valid(_)), "{outcome:?}\n{r:#}");
    assert_eq!(r["tree_size"], 36);
    assert_eq!(
        r["entries"]["by_kind"],
        json!({"audit": 30, "lineage": 2, "approval_request": 1, "approval": 2, "deployment": 1})
    );
    assert_eq!(r["audit_events_by_tag"], json!({"MIFID_II": 20, "SOX": 15}));
    assert_eq!(r["models"].as_array().unwrap().len(), 2);
    assert_eq!(
        r["models"][1]["datasets"][0]["sha256"],
        format!("sha256:{}", "cd".repeat(32))
    );
    assert_eq!(
        (
            r["approvals"]["approved"].as_u64(),
            r["approvals"]["pending"].as_u64()
        ),
        (Some(1), Some(0))
    );
    assert_eq!(r["approvals"]["requests"][0]["request"], request.as_str());
    assert_eq!(
        (
            r["deployments"]["with_quorum"].as_u64(),
            r["deployments"]["without_quorum"].as_u64()
        ),
        (Some(1), Some(0))
    );
    assert!(
        r["replay"]["checkpoints_checked"].as_u64().unwrap() >= 2,
        "{r}"
    );
    assert!(
        r["anchors"]["verified_by_backend"]["dir"].as_u64().unwrap() >= 1,
        "{r}"
    );
    // The signed note over the report's digest.
    let sig = std::fs::read(out.path().join("report.json.sig")).unwrap();
    let note = ledger_format::note::Note::parse(&sig).unwrap();
    note.verify(&[auditor.verifier()]).unwrap();
    let digest = hex::encode(ledger_format::hash::sha256(
        &std::fs::read(out.path().join("report.json")).unwrap(),
    ));
    assert!(note
        .text
        .starts_with("govledger/audit-report/v1\nlocalhost/govledger\n36\n"));
    assert!(note.text.ends_with(&format!("\n{digest}\n")));
    let html = std::fs::read_to_string(out.path().join("report.html")).unwrap();
    assert!(html.contains("<svg id=\"entries-chart\""));
    for external in ["<script", "<link", "src=", "href=", "url("] {
        assert!(
            !html.contains(external),
            "the report is self-contained: {external}"
        );
    }

    // A deployment without quorum is an anomaly.
    let (code, _) = s
        .post(&json!({"kind": "approval_request", "body": {}}).to_string())
        .await;
    assert_eq!(code, 400);
    let lineage = r["models"][1]["leaf_hash"].as_str().unwrap().to_owned();
    let art = format!("sha256:{}", "ab".repeat(32));
    let ds = format!("sha256:{}", "cd".repeat(32));
    let st = json!({"model_id": "ppo-2", "artifact_sha256": art, "dataset_sha256": [ds], "lineage": lineage,
                    "requested_by": "alice", "environment": "production", "policy": "p", "signed_at": crate::harness::signed_now()});
    let (_, r2) = s
        .post(&json!({"kind": "approval_request", "body": {"statement": st, "signature": sign(&keys[0], &st)}}).to_string())
        .await;
    let r2 = r2["leaf_hash"].as_str().unwrap().to_owned();
    let (code, _) = s
        .post(&json!({"kind": "deployment", "body": {"model_id": "ppo-2", "request": r2, "status": "SUCCESS",
            "environment": "production", "executed_by": "ci"}}).to_string())
        .await;
    assert_eq!(code, 200);
    let (outcome, r) = audit(&s, Some(&policy), out.path(), None).await;
    assert!(matches!(outcome, Outcome::Invalid(_)));
    let kinds: Vec<&str> = r["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["deployment_without_quorum"], "{r:#}");
    assert_eq!(r["approvals"]["pending"], 1);
    // The CLI: exit 1 on anomalies, or 0 with --exit-zero-on-anomalies once the report is
    // written, the anomalies printed either way.
    let policy_file = out.path().join("policy.toml");
    std::fs::write(&policy_file, &policy).unwrap();
    for (flag, code) in [(None, 1), (Some("--exit-zero-on-anomalies"), 0)] {
        let cli_out = tempfile::tempdir().unwrap();
        let mut cmd = std::process::Command::new(
            std::path::Path::new(env!("CARGO_BIN_EXE_govledgerd")).with_file_name("govledger"),
        );
        let vkey = s.vkey.to_string();
        cmd.args(["audit", "--url", &s.url, "--log-key", &vkey, "--policy"])
            .arg(&policy_file)
            .arg("--out")
            .arg(cli_out.path())
            .args(flag);
        let run = tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&run.stdout);
        assert_eq!(run.status.code(), Some(code), "{flag:?}: {stdout}");
        assert!(
            stdout.contains("ANOMALY deployment_without_quorum"),
            "{stdout}"
        );
        assert!(cli_out.path().join("report.json").exists());
    }

    // Tamper with entry 7 in a copy of the data dir: the audit names it.
    let dir = s.stop().await;
    let copy = tempfile::tempdir().unwrap();
    crate::monitor::copy_dir(dir.path(), copy.path());
    {
        let db = sled::Config::new()
            .path(copy.path().join("db"))
            .segment_size(8 << 20)
            .open()
            .unwrap();
        let tree = db.open_tree("log").unwrap();
        let mut k = vec![b'E'];
        k.extend_from_slice(&0u64.to_be_bytes());
        let mut v = tree.get(&k).unwrap().unwrap().to_vec();
        let needle = b"\"n\":7}";
        let at = v
            .windows(needle.len())
            .position(|w| w == needle)
            .expect("entry 7 in chunk 0");
        v[at + 4] = b'8';
        tree.insert(k, v).unwrap();
        db.flush().unwrap();
    }
    let t = start_in(copy, |_| {}).await;
    let (outcome, r) = audit(&t, None, out.path(), None).await;
    assert!(matches!(outcome, Outcome::Invalid(_)));
    let tampered: Vec<&Value> = r["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "tampered_entry")
        .collect();
    assert_eq!(tampered.len(), 1, "{r:#}");
    assert_eq!(tampered[0]["index"], 7);
    t.stop().await;
}

/// Returns the Chromium binary (Debian's `chromium`; GOVLEDGER_CHROMIUM overrides it).
fn chromium() -> String {
    let c = std::env::var("GOVLEDGER_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&c).exists(),
        "{c} is missing: install Debian's chromium (scripts/services.sh does) or set GOVLEDGER_CHROMIUM"
    );
    c
}

fn headless(profile: &Path) -> Vec<String> {
    [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--enable-logging=stderr",
        "--v=0",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("--user-data-dir={}", profile.display())])
    .collect()
}

/// Runs headless chromium with `args`; a browser that fails to start or crashes (seen under
/// the full suite's load) is tried again, up to three times: the test is about the page.
fn browse(chromium: &str, profile: &Path, args: &[String]) -> std::process::Output {
    let mut out = None;
    for _ in 0..3 {
        let o = std::process::Command::new(chromium)
            .args(headless(profile))
            .args(args)
            .output()
            .unwrap();
        if o.status.success() {
            return o;
        }
        out = Some(o);
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    out.expect("tried")
}

/// Counts the pixels of a screenshot with exactly this RGB colour.
fn pixels(png_path: &Path, rgb: [u8; 3]) -> (u32, u32, usize) {
    let decoder = png::Decoder::new(std::fs::File::open(png_path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let step = info.color_type.samples();
    let n = buf[..info.buffer_size()]
        .chunks(step)
        .filter(|p| p[..3] == rgb)
        .count();
    (info.width, info.height, n)
}

#[tokio::test]
async fn the_html_report_renders_in_headless_chromium() {
    let chromium = chromium();
    let (keys, policy, cfg) = people();
    let s = start_with(move |c| c.people = cfg).await;
    fill(&s, &keys).await;
    let out = tempfile::tempdir().unwrap();
    let (outcome, _) = audit(&s, Some(&policy), out.path(), None).await;
    assert!(matches!(outcome, Outcome::Valid(_)), "{outcome:?}");
    s.stop().await;
    let html = out.path().join("report.html");
    let profile = tempfile::tempdir().unwrap();
    let url = format!("file://{}", html.display());
    // The rendered DOM: the chart's bars and every table.
    let dom = browse(
        &chromium,
        profile.path(),
        &["--dump-dom".into(), url.clone()],
    );
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let text = String::from_utf8_lossy(&dom.stdout);
    assert!(
        text.matches("class=\"bar\"").count() >= 5,
        "the chart has bars for every kind"
    );
    for id in [
        "summary",
        "entries-by-kind",
        "tags",
        "models",
        "requests",
        "deployments",
        "anchors",
        "anomalies",
    ] {
        assert!(text.contains(&format!("<table id=\"{id}\"")), "table {id}");
    }
    let log = String::from_utf8_lossy(&dom.stderr);
    for bad in ["Uncaught", "Failed to load resource", "Refused to"] {
        assert!(!log.contains(bad), "console error: {log}");
    }
    // The screenshot: the chart's audit bars (#4e79a7) and the tables' header shading (#f3f3f3)
    // are on the page, far beyond a blank page's count of either.
    let shot = out.path().join("report.png");
    let r = browse(
        &chromium,
        profile.path(),
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1200,2400".into(),
            url.clone(),
        ],
    );
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let (w, h, bars) = pixels(&shot, [0x4e, 0x79, 0xa7]);
    let (_, _, headers) = pixels(&shot, [0xf3, 0xf3, 0xf3]);
    assert_eq!((w, h), (1200, 2400));
    assert!(bars > 500, "chart bars: {bars} pixels");
    assert!(headers > 2000, "table headers: {headers} pixels");
}
