//! The governance story end to end, against the real server: train (lineage with two datasets),
//! request the release, approvals, the deploy gate (offline from a bundle and online), the
//! deployment record, and every way the gate must refuse.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use govledger_client::cli::Outcome;
use govledger_client::gate::{BundleInput, GateArgs, Report};
use govledger_client::lineage::{DatasetArg, LineageArgs, VerifyArgs};
use ledger_format::approval::Bundle;
use ledger_format::note::SignerKey;
use serde_json::{json, Value};

use crate::harness::start_with;

#[path = "../../clients/rust/tests/support/gate_corpus.rs"]
pub(crate) mod gate_corpus;

fn key(name: &str, seed: u8) -> SignerKey {
    SignerKey::from_seed(name, [seed; 32]).unwrap()
}

fn sign(k: &SignerKey, statement: &Value) -> String {
    let c = ledger_format::jcs::canonicalize(statement).unwrap();
    STANDARD.encode(k.sign_raw(c.as_bytes()))
}

fn rfc3339(ms: u64) -> String {
    govledger_client::time::rfc3339_ms(ms)
}

fn now() -> u64 {
    govledger_client::time::now_ms()
}

/// Posts a submission (blocking); returns the status and the JSON answer.
fn post(url: &str, body: &Value) -> (u16, Value) {
    let r = reqwest::blocking::Client::new()
        .post(format!("{url}/v1/entries"))
        .json(body)
        .send()
        .unwrap();
    (r.status().as_u16(), r.json().unwrap())
}

fn get(url: &str) -> Value {
    reqwest::blocking::get(url).unwrap().json().unwrap()
}

fn approval(
    k: &SignerKey,
    request: &str,
    artifact: &str,
    decision: &str,
    role: &str,
    at: u64,
) -> Value {
    let st = json!({"request": request, "artifact_sha256": artifact, "decision": decision,
                    "approver": k.name(), "role": role, "signed_at": rfc3339(at)});
    json!({"kind": "approval", "body": {"statement": st, "signature": sign(k, &st)}})
}

/// Submits and returns the leaf hash, failing the test on a refusal.
fn ok(url: &str, body: &Value) -> String {
    let (st, v) = post(url, body);
    assert_eq!(st, 200, "{v}");
    v["leaf_hash"].as_str().unwrap().to_owned()
}

struct Story {
    url: String,
    policy: PathBuf,
    dir: PathBuf,
}

impl Story {
    fn gate(
        &self,
        bundle: Option<&Path>,
        online: bool,
        request: &str,
        artifact: Option<&Path>,
    ) -> Report {
        self.gate_at(bundle, online, request, artifact, now())
    }

    /// [`Story::gate`] with the gate's clock at `now_ms`.
    fn gate_at(
        &self,
        bundle: Option<&Path>,
        online: bool,
        request: &str,
        artifact: Option<&Path>,
        now_ms: u64,
    ) -> Report {
        let args = GateArgs {
            policy: &self.policy,
            bundle: bundle.map(BundleInput::File),
            url: online.then_some(self.url.as_str()),
            request,
            artifact,
            now_ms,
            recheck: false,
            sources: Default::default(),
            github_status: false,
        };
        gate_corpus::record(&args);
        govledger_client::gate::run(&args).unwrap()
    }

    /// Saves the request's current bundle and returns its path.
    fn save_bundle(&self, request: &str, name: &str) -> PathBuf {
        let b = reqwest::blocking::get(format!("{}/v1/approvals/{request}/bundle", self.url))
            .unwrap()
            .error_for_status()
            .unwrap()
            .text()
            .unwrap();
        let p = self.dir.join(name);
        std::fs::write(&p, b).unwrap();
        p
    }

    fn edit_bundle(&self, from: &Path, name: &str, edit: impl FnOnce(&mut Bundle)) -> PathBuf {
        let mut b = Bundle::parse(&std::fs::read(from).unwrap()).unwrap();
        edit(&mut b);
        let p = self.dir.join(name);
        std::fs::write(&p, serde_json::to_vec(&b).unwrap()).unwrap();
        p
    }

    /// Signs a request for the lineage recorded in `meta` (metadata.json).
    fn request(&self, k: &SignerKey, meta: &Value) -> Value {
        let datasets: Vec<&str> = meta["datasets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["sha256"].as_str().unwrap())
            .collect();
        let st = json!({"model_id": meta["model_id"], "artifact_sha256": meta["artifact"]["sha256"],
                        "dataset_sha256": datasets, "lineage": meta["lineage"]["leaf_hash"],
                        "requested_by": k.name(), "environment": "production", "policy": "four-eyes-v1",
                        "signed_at": rfc3339(now())});
        json!({"kind": "approval_request", "body": {"statement": st, "signature": sign(k, &st),
                                                     "performance_metrics": {"sharpe": 2}}})
    }
}

fn failed(r: &Report) -> Vec<&str> {
    r.failed.iter().map(String::as_str).collect()
}

fn detail<'a>(r: &'a Report, rule: &str) -> &'a str {
    &r.rules.iter().find(|c| c.rule == rule).unwrap().detail
}

fn policy_text(people: &[(&SignerKey, &[&str])]) -> String {
    let mut t = String::from(
        "name = \"four-eyes-v1\"\n[approvals]\nmin_approvers = 2\nrequired_roles = [\"risk\"]\nmax_age = \"1d\"\nenvironment = \"production\"\n[lineage]\nmin_datasets = 2\n[[metrics]]\nmetric = \"validation_metrics.accuracy\"\nmin = 0.9\n",
    );
    for (k, roles) in people {
        t.push_str(&format!(
            "[[people]]\nname = \"{}\"\nroles = {:?}\nkey = \"{}\"\n",
            k.name(),
            roles,
            k.verifier()
        ));
    }
    t
}

#[tokio::test]
async fn the_governance_story_and_every_refusal_of_the_gate() {
    let (alice, bob, carol, dave) = (
        key("alice", 1),
        key("bob", 2),
        key("carol", 3),
        key("dave", 4),
    );
    let work = tempfile::tempdir().unwrap();
    let text = policy_text(&[
        (&alice, &["quant"]),
        (&bob, &["risk"]),
        (&carol, &["compliance", "risk"]),
        (&dave, &["quant"]),
    ]);
    let server_policy = work.path().join("server-policy.toml");
    std::fs::write(&server_policy, &text).unwrap();
    let sp = server_policy.clone();
    let s = start_with(move |c| c.policy = Some(sp)).await;
    // The gate's policy pins the log key.
    let policy = work.path().join("policy.toml");
    std::fs::write(&policy, format!("{text}[log]\nkey = \"{}\"\n", s.vkey)).unwrap();
    let log_key_file = s.dir.path().join("log.key");
    let story = Story {
        url: s.url.clone(),
        policy,
        dir: work.path().to_path_buf(),
    };
    let before = s.tree_size().await;
    let gate_policy = story.policy.clone();
    let (request, good) = tokio::task::spawn_blocking(move || {
        run_story(&story, &log_key_file, [alice, bob, carol, dave])
    })
    .await
    .unwrap();
    assert!(s.tree_size().await > before);

    // The log's key rotates; the gate's policy still pins the old key.
    let dir = s.stop().await;
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_govledgerd"))
        .args(["rotate-key", "--keep-retired-key", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Whoever holds the retired key (kept here to play them).
    let retired = work.path().join("retired.key");
    for e in std::fs::read_dir(dir.path()).unwrap().flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with("log.key.retired-") && !n.ends_with(".pub") {
            std::fs::copy(e.path(), &retired).unwrap();
        }
    }
    let s = crate::harness::start_in(dir, move |c| c.policy = Some(server_policy)).await;
    // (Until the next append the head is the hand-over checkpoint, signed by both keys.)
    s.submit(crate::harness::audit(1), None).await;
    let story = Story {
        url: s.url.clone(),
        policy: gate_policy,
        dir: work.path().to_path_buf(),
    };
    tokio::task::spawn_blocking(move || {
        // Online, the gate follows the rotation from the pinned key through the log.
        // (dave's later rejection of another request for this artifact now stands against
        // this one too: the only failing rule.)
        let r = story.gate(None, true, &request, None);
        assert_eq!(failed(&r), ["no_later_rejection"], "{}", r.to_text());
        assert!(
            detail(&r, "key_rotation").contains("followed 1 key rotation"),
            "{}",
            r.to_text()
        );
        // A server that drops dave's standing rejection of the other request for the
        // artifact (and that request) from the bundle: the evaluation alone would approve, the
        // index shows what the bundle omits.
        let full = story.save_bundle(&request, "full.json");
        let on_others = |e: &ledger_format::approval::BundleEntry| {
            let leaf =
                ledger_format::leaf::Leaf::parse(&STANDARD.decode(&e.leaf).unwrap()).unwrap();
            let body: Value = serde_json::from_slice(&leaf.body).unwrap();
            body["statement"]["request"].as_str() != Some(request.as_str())
        };
        let dropped: Vec<String> = Bundle::parse(&std::fs::read(&full).unwrap())
            .unwrap()
            .approvals
            .iter()
            .filter(|e| on_others(e))
            .map(|e| e.leaf_hash.clone())
            .collect();
        assert!(!dropped.is_empty());
        let doctored = story.edit_bundle(&full, "doctored.json", |b| {
            b.approvals.retain(|e| !on_others(e));
        });
        let r = story.gate(Some(&doctored), true, &request, None);
        assert_eq!(failed(&r), ["bundle_complete"], "{}", r.to_text());
        for h in &dropped {
            assert!(
                detail(&r, "bundle_complete").contains(h.as_str()),
                "{}",
                r.to_text()
            );
        }
        // ... or the other requests for the artifact too.
        let doctored = story.edit_bundle(&doctored, "doctored2.json", |b| b.related.clear());
        let r = story.gate(Some(&doctored), true, &request, None);
        assert_eq!(failed(&r), ["bundle_complete"], "{}", r.to_text());
        assert!(
            detail(&r, "bundle_complete").contains("request "),
            "{}",
            r.to_text()
        );
        // A tree fabricated over the real log (one approval more) and signed with the retired
        // key fails online: the key in use for that size is the new one, and the fabricated
        // tree is not the log's.
        let rogue = rogue_bundle(
            &story,
            &retired,
            &request,
            approval(
                &key("carol", 3),
                &request,
                &format!("sha256:{}", "ab".repeat(32)),
                "approve",
                "risk",
                now(),
            ),
        );
        let r = story.gate(Some(&rogue), true, &request, None);
        assert!(!r.ok, "{}", r.to_text());
        let f = failed(&r);
        assert!(
            f.contains(&"log_consistency")
                && (f.contains(&"key_rotation") || f.contains(&"checkpoint_signature")),
            "{}",
            r.to_text()
        );
        // Offline, a bundle saved before the rotation still passes; one signed by the new key
        // cannot be checked against the pinned key alone.
        assert!(story.gate(Some(&good), false, &request, None).ok);
        let fresh = story.save_bundle(&request, "fresh.json");
        let r = story.gate(Some(&fresh), false, &request, None);
        assert!(
            failed(&r).contains(&"checkpoint_signature"),
            "{}",
            r.to_text()
        );
    })
    .await
    .unwrap();
    s.stop().await;
}

/// Runs the story; returns the request that ends approved and deployed, and its bundle saved
/// offline.
fn run_story(
    story: &Story,
    log_key_file: &Path,
    [alice, bob, carol, dave]: [SignerKey; 4],
) -> (String, PathBuf) {
    let url = story.url.as_str();
    let d = &story.dir;
    // Train: two datasets (a file and a directory), an artifact, validation metrics.
    std::fs::create_dir_all(d.join("data/val/2024")).unwrap();
    std::fs::write(d.join("data/md.csv"), "ts,px\n1,100\n2,101\n").unwrap();
    std::fs::write(d.join("data/val/a.csv"), "x\n1\n").unwrap();
    std::fs::write(d.join("data/val/2024/b.csv"), "y\n2\n").unwrap();
    std::fs::create_dir_all(d.join("model")).unwrap();
    let artifact = d.join("model/policy.pt");
    std::fs::write(&artifact, b"weights v1").unwrap();
    let datasets = vec![
        DatasetArg {
            kind: Some("training".into()),
            name: "market_data_2024".into(),
            path: d.join("data/md.csv"),
        },
        DatasetArg {
            kind: Some("validation".into()),
            name: "holdout".into(),
            path: d.join("data/val"),
        },
    ];
    let lineage = |model: &str, accuracy: f64, metadata: &Path| {
        govledger_client::lineage::record(&LineageArgs {
            url,
            token: None,
            model_id: model,
            model_version: "1",
            model_name: Some("PPO"),
            model_type: Some("reinforcement_learning"),
            created_by: "trainer",
            datasets: &datasets,
            artifact: &artifact,
            objects: vec![("validation_metrics", json!({"accuracy": accuracy}))],
            code: Some(("git@example:quant/ppo", "abc123")),
            parent: None,
            entry_id: None,
            metadata: Some(metadata),
            log_key: None,
        })
        .unwrap()
    };
    let out = lineage("ppo-42", 0.93, &d.join("model/metadata.json"));
    assert!(matches!(out, Outcome::Valid(_)), "{out:?}");
    let meta: Value =
        serde_json::from_slice(&std::fs::read(d.join("model/metadata.json")).unwrap()).unwrap();
    assert_eq!(meta["datasets"].as_array().unwrap().len(), 2);
    assert_eq!(meta["datasets"][1]["method"], "directory");
    assert_eq!(meta["datasets"][1]["files"], 2);
    let receipt: ledger_format::receipt::Receipt =
        serde_json::from_value(meta["lineage"]["receipt"].clone()).unwrap();
    let log = get(&format!("{url}/v1/log"));
    let vkey = ledger_format::note::VerifierKey::parse(log["verifier_key"].as_str().unwrap());
    receipt.verify(&vkey.unwrap()).unwrap();

    // Reproducibility: the files match the log; a changed dataset is named.
    let verify = |datasets: &[DatasetArg]| {
        govledger_client::lineage::verify(&VerifyArgs {
            url,
            model_id: "ppo-42",
            lineage: None,
            datasets,
            artifact: Some(&artifact),
            metadata: None,
            log_key: None,
        })
        .unwrap()
    };
    assert!(matches!(verify(&[]), Outcome::Valid(_)));
    std::fs::write(d.join("data/val/a.csv"), "x\n9\n").unwrap();
    match verify(&[]) {
        Outcome::Invalid(m) => assert!(
            m.contains("dataset holdout") && !m.contains("market_data"),
            "{m}"
        ),
        v => panic!("{v:?}"),
    }
    // The mismatch names how each side was fingerprinted.
    match verify(&[]) {
        Outcome::Invalid(m) => assert!(m.contains("(directory), computed sha256:"), "{m}"),
        v => panic!("{v:?}"),
    }
    std::fs::write(d.join("data/val/a.csv"), "x\n1\n").unwrap();
    // A dataset with no path (as metadata.json records a DataFrame): said so, nothing read.
    let no_path = [DatasetArg {
        kind: None,
        name: "holdout".into(),
        path: std::path::PathBuf::new(),
    }];
    match verify(&no_path) {
        Outcome::Invalid(m) => assert!(
            m.contains("dataset holdout: no path is recorded for it (logged as directory)")
                && !m.contains("No such file"),
            "{m}"
        ),
        v => panic!("{v:?}"),
    }

    // Pre-approval checks: a model below the accuracy threshold cannot be put up for release.
    lineage("ppo-weak", 0.85, &d.join("model/weak.json"));
    let weak: Value =
        serde_json::from_slice(&std::fs::read(d.join("model/weak.json")).unwrap()).unwrap();
    let size = get(&format!("{url}/v1/log"))["tree_size"].as_u64().unwrap();
    let (st, v) = post(url, &story.request(&alice, &weak));
    assert_eq!(
        (st, v["error"].as_str().unwrap()),
        (400, "policy_check_failed"),
        "{v}"
    );
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("metric:validation_metrics.accuracy: 0.85 is below the minimum 0.9"),
        "{v}"
    );
    assert_eq!(
        get(&format!("{url}/v1/log"))["tree_size"].as_u64().unwrap(),
        size
    );

    // Status and bundle answer for approval requests only.
    let lineage_hash = meta["lineage"]["leaf_hash"].as_str().unwrap();
    for path in [
        format!("/v1/approvals/{lineage_hash}"),
        format!("/v1/approvals/{lineage_hash}/bundle"),
        format!("/v1/approvals/{}", "00".repeat(32)),
        "/v1/approvals/nothex".to_owned(),
    ] {
        let r = reqwest::blocking::get(format!("{url}{path}")).unwrap();
        let st = r.status().as_u16();
        let v: Value = r.json().unwrap();
        assert!(
            st == 404 || (st == 400 && v["field"] == "request"),
            "{path}: {st} {v}"
        );
    }

    // Request, one approval: pending, the gate refuses.
    let request = ok(url, &story.request(&alice, &meta));
    let art = meta["artifact"]["sha256"].as_str().unwrap().to_owned();
    let status = get(&format!("{url}/v1/approvals/{request}"));
    assert_eq!(
        (status["status"].as_str(), status["approved"].as_bool()),
        (Some("pending"), Some(false))
    );
    assert!(
        status["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["ok"] == true),
        "{status}"
    );
    ok(
        url,
        &approval(&bob, &request, &art, "approve", "risk", now()),
    );
    let r = story.gate(None, true, &request, Some(&artifact));
    assert_eq!(failed(&r), ["approvals"], "{}", r.to_text());
    assert!(detail(&r, "approvals").starts_with("1 distinct approvers of 2 required"));

    // Second approver: approved; the gate passes online and offline, with the artifact.
    ok(
        url,
        &approval(&carol, &request, &art, "approve", "compliance", now()),
    );
    let status = get(&format!("{url}/v1/approvals/{request}"));
    assert_eq!(status["status"], "approved", "{status}");
    assert_eq!(status["approvers"], json!(["bob", "carol"]));
    assert_eq!(status["approvals"][1]["who"], "carol");
    assert_eq!(status["approvals"][1]["source"], "signed");
    let r = story.gate(None, true, &request, Some(&artifact));
    assert!(r.ok, "{}", r.to_text());
    let good = story.save_bundle(&request, "good.json");
    let r = story.gate(Some(&good), false, &request, Some(&artifact));
    assert!(r.ok, "{}", r.to_text());
    assert_eq!(r.approvers, ["bob", "carol"]);

    // The deploy pipeline records the deployment against the request.
    let deployed = ok(
        url,
        &json!({"kind": "deployment", "body": {"model_id": "ppo-42", "request": request,
        "status": "SUCCESS", "environment": "production", "executed_by": "ci"}}),
    );
    let status = get(&format!("{url}/v1/approvals/{request}"));
    assert_eq!(status["deployments"][0]["leaf_hash"], deployed.as_str());
    let with_deploy = story.save_bundle(&request, "deployed.json");
    let b = Bundle::parse(&std::fs::read(&with_deploy).unwrap()).unwrap();
    assert_eq!(b.deployments.len(), 1);
    assert!(story.gate(Some(&with_deploy), false, &request, None).ok);

    // A tampered artifact.
    let other = d.join("model/other.pt");
    std::fs::write(&other, b"weights v2").unwrap();
    let r = story.gate(Some(&good), false, &request, Some(&other));
    assert_eq!(failed(&r), ["artifact"]);
    assert!(detail(&r, "artifact").contains("the approved artifact is sha256:"));

    // A tampered bundle: one byte of carol's approval changed.
    let tampered = story.edit_bundle(&good, "tampered.json", |b| {
        let mut leaf = STANDARD.decode(&b.approvals[1].leaf).unwrap();
        let n = leaf.len();
        leaf[n - 3] ^= 1;
        b.approvals[1].leaf = STANDARD.encode(leaf);
    });
    let r = story.gate(Some(&tampered), false, &request, None);
    assert!(
        failed(&r).contains(&"inclusion_proofs") && failed(&r).contains(&"approvals"),
        "{}",
        r.to_text()
    );
    // ... and a forged proof hash.
    let forged = story.edit_bundle(&good, "forged.json", |b| {
        b.approvals[0].proof[0] = ledger_format::Hash([7; 32]).to_base64();
    });
    assert!(failed(&story.gate(Some(&forged), false, &request, None)).contains(&"inclusion_proofs"));

    // A checkpoint signed by another key under the log's name.
    let imposter = key(&story_origin(&good), 99);
    let resigned = story.edit_bundle(&good, "resigned.json", |b| {
        let text = &b.checkpoint[..b.checkpoint.find("\n\n").unwrap() + 1];
        b.checkpoint = ledger_format::note::Note::sign(text, &[&imposter])
            .unwrap()
            .to_text();
    });
    let r = story.gate(Some(&resigned), false, &request, None);
    assert_eq!(
        &failed(&r)[..2],
        ["checkpoint_signature", "inclusion_proofs"],
        "{}",
        r.to_text()
    );

    // A bundle for another request.
    let r = story.gate(Some(&good), false, &"ab".repeat(32), None);
    assert_eq!(failed(&r), ["request_match"]);

    // A reused approver: bob approves twice, counted once.
    let r2 = ok(url, &story.request(&alice, &meta));
    ok(
        url,
        &approval(&bob, &r2, &art, "approve", "risk", now() - 1000),
    );
    ok(url, &approval(&bob, &r2, &art, "approve", "risk", now()));
    let r = story.gate(None, true, &r2, None);
    assert_eq!(failed(&r), ["approvals"]);
    assert!(
        detail(&r, "approvals").contains("superseded by bob's later decision"),
        "{}",
        r.to_text()
    );

    // The requester approving their own release: the server refuses it ...
    let (st, v) = post(url, &approval(&alice, &r2, &art, "approve", "quant", now()));
    assert_eq!((st, v["error"].as_str().unwrap()), (403, "self_approval"));
    // ... and the gate refuses it even from a log that signed it (a compromised server).
    let rogue = rogue_bundle(
        story,
        log_key_file,
        &request,
        approval(&alice, &request, &art, "approve", "quant", now()),
    );
    let r = story.gate(Some(&rogue), false, &request, None);
    assert_eq!(failed(&r), ["not_requester"], "{}", r.to_text());
    // Online, the fabricated tree (the real log plus an entry the server refused, signed with
    // the log's own key) is not the log's: log_consistency fails.
    let r = story.gate(Some(&rogue), true, &request, None);
    assert!(failed(&r).contains(&"log_consistency"), "{}", r.to_text());
    // Roles come from the policy: dave holds no risk role, so his approval in that role is refused.
    let (st, v) = post(url, &approval(&dave, &r2, &art, "approve", "risk", now()));
    assert_eq!(
        (st, v["error"].as_str().unwrap()),
        (403, "role_not_held"),
        "{v}"
    );

    // A rejection after the approvals: rejected, and the gate refuses; a bundle saved before the
    // rejection passes offline but not online, where the index shows what it omits.
    let r3 = ok(url, &story.request(&alice, &meta));
    ok(url, &approval(&bob, &r3, &art, "approve", "risk", now()));
    ok(url, &approval(&carol, &r3, &art, "approve", "risk", now()));
    let stale = story.save_bundle(&r3, "stale.json");
    let rejection = ok(url, &approval(&dave, &r3, &art, "reject", "quant", now()));
    assert_eq!(
        get(&format!("{url}/v1/approvals/{r3}"))["status"],
        "rejected"
    );
    let r = story.gate(None, true, &r3, None);
    assert_eq!(failed(&r), ["no_later_rejection"], "{}", r.to_text());
    assert!(story.gate(Some(&stale), false, &r3, None).ok);
    let r = story.gate(Some(&stale), true, &r3, None);
    assert_eq!(failed(&r), ["bundle_complete"]);
    assert!(detail(&r, "bundle_complete").contains(&rejection));

    // A statement dated two days ago is refused at submission: signed_at must be within the
    // skew of the log's clock.
    let r4 = ok(url, &story.request(&alice, &meta));
    let (st, v) = post(
        url,
        &approval(&bob, &r4, &art, "approve", "risk", now() - 2 * 86_400_000),
    );
    assert_eq!(
        (st, v["error"].as_str().unwrap()),
        (400, "signed_at_skew"),
        "{v}"
    );
    // An expired approval: the gate's clock two days on; the policy allows one.
    ok(url, &approval(&bob, &r4, &art, "approve", "risk", now()));
    ok(url, &approval(&carol, &r4, &art, "approve", "risk", now()));
    // Two days on, both approvals have expired; and dave's standing rejection of an earlier
    // request for this artifact in production blocks this request too.
    let r = story.gate_at(None, true, &r4, None, now() + 2 * 86_400_000);
    assert_eq!(
        failed(&r),
        [
            "approvals",
            "required_roles",
            "no_later_rejection",
            "approval_age"
        ],
        "{}",
        r.to_text()
    );
    assert!(detail(&r, "no_later_rejection").contains("dave"));
    assert!(detail(&r, "approval_age").contains("bob"));
    let _ = (dave, carol);
    (request, good)
}

fn story_origin(bundle: &Path) -> String {
    let b = Bundle::parse(&std::fs::read(bundle).unwrap()).unwrap();
    b.checkpoint.lines().next().unwrap().to_owned()
}

/// Builds the bundle a compromised server could serve: the real log plus one entry the real
/// server refused, all signed with the log's own key.
fn rogue_bundle(story: &Story, log_key_file: &Path, request: &str, extra: Value) -> PathBuf {
    use ledger_format::approval::BundleEntry;
    use ledger_format::leaf::Leaf;
    use ledger_format::tree::MemoryTree;
    let signer = SignerKey::parse(std::fs::read_to_string(log_key_file).unwrap().trim()).unwrap();
    let size = get(&format!("{}/v1/log", story.url))["tree_size"]
        .as_u64()
        .unwrap();
    let mut leaves: Vec<Vec<u8>> = (0..size)
        .map(|i| {
            STANDARD
                .decode(
                    get(&format!("{}/v1/entries/{i}", story.url))["leaf"]
                        .as_str()
                        .unwrap(),
                )
                .unwrap()
        })
        .collect();
    leaves.push(
        Leaf {
            kind: ledger_format::entry::EntryKind::Approval,
            logged_at_ms: now(),
            submitter: "anonymous".into(),
            entry_id: String::new(),
            body: extra["body"].to_string().into_bytes(),
        }
        .encode()
        .unwrap(),
    );
    let mut tree = MemoryTree::new();
    for l in &leaves {
        tree.push(ledger_format::leaf_hash(l));
    }
    let good =
        Bundle::parse(&std::fs::read(story.save_bundle(request, "base.json")).unwrap()).unwrap();
    let entry = |i: u64| {
        let proof =
            ledger_format::proof::prove_inclusion(ledger_format::LeafIndex(i), tree.size(), &tree)
                .unwrap();
        BundleEntry {
            index: i,
            leaf_hash: ledger_format::leaf_hash(&leaves[i as usize]).to_hex(),
            leaf: STANDARD.encode(&leaves[i as usize]),
            proof: proof.path.iter().map(|h| h.to_base64()).collect(),
        }
    };
    let origin = signer.name().to_owned();
    let mut approvals: Vec<BundleEntry> = good.approvals.iter().map(|a| entry(a.index)).collect();
    approvals.push(entry(size));
    let b = Bundle {
        format: ledger_format::approval::BUNDLE_FORMAT.into(),
        checkpoint: govledger::log::sign_checkpoint(&signer, &origin, tree.size().0, tree.root()),
        tree_size: tree.size().0,
        root: tree.root().to_base64(),
        request: entry(good.request.index),
        lineage: good.lineage.as_ref().map(|l| entry(l.index)),
        related: good.related.iter().map(|r| entry(r.index)).collect(),
        approvals,
        deployments: vec![],
    };
    let p = story.dir.join("rogue.json");
    std::fs::write(&p, serde_json::to_vec(&b).unwrap()).unwrap();
    p
}
