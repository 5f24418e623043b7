//! Saves the cases the Rust gate tests decide, for the Python gate's differential test: with
//! `GOVLEDGER_GATE_CORPUS=DIR`, every case the gate evaluates is written to
//! `DIR/<digest>/` as `policy.toml`, `bundle.json`, the artifact (if any) and `case.json`
//! (`request`, `now_ms`, `artifact`, `case_dir`, and `report`: the offline gate's report on those files, as
//! `gate --json` prints it; online rules and source re-reads are left out).
//! Identical cases share one directory.

use std::path::Path;

use govledger_client::gate::{run, BundleInput, GateArgs, Report};

/// Records the case of `args` when `GOVLEDGER_GATE_CORPUS` is set: the bundle given, or the
/// one the server serves now.
pub fn record(args: &GateArgs) {
    let Some(dir) = std::env::var_os("GOVLEDGER_GATE_CORPUS") else {
        return;
    };
    let policy = std::fs::read(args.policy).unwrap();
    let Ok(bundle) = govledger_client::gate::bundle_bytes(args) else {
        return;
    };
    let artifact = args.artifact.map(|p| std::fs::read(p).unwrap());
    let mut all = Vec::new();
    for part in [&policy, &bundle, &artifact.clone().unwrap_or_default()] {
        all.extend((part.len() as u64).to_be_bytes());
        all.extend(part);
    }
    all.extend(args.request.as_bytes());
    all.extend(args.now_ms.to_be_bytes());
    let digest = ledger_format::hash::sha256(&all);
    let case = Path::new(&dir).join(&hex::encode(digest)[..16]);
    std::fs::create_dir_all(&case).unwrap();
    std::fs::write(case.join("policy.toml"), &policy).unwrap();
    std::fs::write(case.join("bundle.json"), &bundle).unwrap();
    if let Some(a) = &artifact {
        std::fs::write(case.join("artifact.bin"), a).unwrap();
    }
    let report = offline(args, &case);
    let meta = serde_json::json!({
        "request": args.request,
        "now_ms": args.now_ms,
        "artifact": artifact.as_ref().map(|_| "artifact.bin"),
        // The report's details name the case's files by this directory.
        "case_dir": case.display().to_string(),
        "report": report,
    });
    std::fs::write(
        case.join("case.json"),
        serde_json::to_vec_pretty(&meta).unwrap(),
    )
    .unwrap();
}

/// The offline gate's report on the saved case (its files, so paths in details are the case's).
fn offline(args: &GateArgs, case: &Path) -> Report {
    let artifact = case.join("artifact.bin");
    run(&GateArgs {
        policy: &case.join("policy.toml"),
        bundle: Some(BundleInput::File(&case.join("bundle.json"))),
        url: None,
        request: args.request,
        artifact: args.artifact.map(|_| artifact.as_path()),
        now_ms: args.now_ms,
        recheck: false,
        sources: Default::default(),
        github_status: false,
    })
    .unwrap()
}
