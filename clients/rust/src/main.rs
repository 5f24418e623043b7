//! `govledger`: the user CLI. Verifying commands exit 0 when valid, 1 when invalid or a check
//! failed (the reason on stderr, one line), 2 on usage or I/O errors.

#![deny(clippy::unwrap_used)]

use clap::Parser;
use std::process::ExitCode;

use govledger_client::cli::{self, Outcome};

mod arg_groups;
mod args;

use args::*;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = govledger_client::http::configure(&cli.tls) {
        eprintln!("error: {e:#}");
        return ExitCode::from(2);
    }
    let result = match cli.command {
        Command::Keygen { name, out } => cli::keygen(&name, &out),
        Command::Proof(ProofCommand::VerifyInclusion {
            leaf_hash,
            index,
            size,
            root,
            proof,
        }) => cli::verify_inclusion(&leaf_hash, index, size, &root, &proof),
        Command::Proof(ProofCommand::VerifyConsistency {
            old_size,
            new_size,
            old_root,
            new_root,
            proof,
        }) => cli::verify_consistency(old_size, new_size, &old_root, &new_root, &proof),
        Command::Note(NoteCommand::Verify { keys, file }) => cli::note_verify(&keys, &file),
        Command::Verify {
            receipt,
            log_key,
            witness_keys,
            witnesses_required,
            leaf_hash,
            url,
        } => cli::verify_receipt(
            &receipt,
            &log_key,
            &witness_keys,
            witnesses_required,
            leaf_hash.as_deref(),
            url.as_deref(),
        ),
        Command::Submit {
            server,
            input,
            kind,
            entry_id,
            out,
            text,
            log_key,
        } => govledger_client::submit::submit(&govledger_client::submit::SubmitArgs {
            url: &server.url,
            input: &input,
            kind: kind.as_deref(),
            entry_id: entry_id.as_deref(),
            token: server.token.as_deref(),
            out: out.as_deref(),
            text,
            log_key: log_key.as_deref(),
        }),
        Command::HashDataset { paths, json } => govledger_client::dataset::report(&paths, json),
        Command::Lineage {
            verify:
                Some(LineageCommand::Verify {
                    url,
                    model_id,
                    lineage,
                    datasets,
                    artifact,
                    metadata,
                    log_key,
                }),
            ..
        } => (|| {
            let datasets = datasets
                .iter()
                .map(|d| {
                    govledger_client::lineage::parse_dataset(d, false).map(|mut a| {
                        a.name = a.name.rsplit(':').next().unwrap_or_default().to_owned();
                        a
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            govledger_client::lineage::verify(&govledger_client::lineage::VerifyArgs {
                url: &url,
                model_id: &model_id,
                lineage: lineage.as_deref(),
                datasets: &datasets,
                artifact: artifact.as_deref(),
                metadata: metadata.as_deref(),
                log_key: log_key.as_deref(),
            })
        })(),
        Command::Lineage {
            verify: None,
            record: r,
        } => (|| {
            let datasets = r
                .datasets
                .iter()
                .map(|d| govledger_client::lineage::parse_dataset(d, true))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let mut objects = Vec::new();
            for (name, file) in [
                ("validation_metrics", &r.metrics),
                ("training_metrics", &r.training_metrics),
                ("training_config", &r.training_config),
                ("hyperparameters", &r.hyperparameters),
                ("dependencies", &r.dependencies),
            ] {
                if let Some(f) = file {
                    let v: serde_json::Value = serde_json::from_slice(
                        &std::fs::read(f).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?,
                    )
                    .map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
                    objects.push((name, v));
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
            govledger_client::lineage::record(&govledger_client::lineage::LineageArgs {
                url: &r.server.url,
                token: r.server.token.as_deref(),
                model_id: r.model_id.as_deref().unwrap_or_default(),
                model_version: &r.model_version,
                model_name: r.model_name.as_deref(),
                model_type: r.model_type.as_deref(),
                created_by: &created_by,
                datasets: &datasets,
                artifact: r.artifact.as_deref().unwrap_or(std::path::Path::new("")),
                objects,
                code,
                parent: r.parent.as_deref(),
                entry_id: r.entry_id.as_deref(),
                metadata: r.metadata.as_deref(),
                log_key: r.log_key.as_deref(),
            })
        })(),
        Command::Monitor {
            url,
            tiles,
            s3_endpoint,
            s3_region,
            s3_path_style,
            log_key,
            state,
            interval,
            once,
            policy,
            witness_keys,
            max_witness_age,
            anchor_dir,
            witness_urls,
            alert_webhook,
        } => (|| {
            let policy = policy
                .map(|p| govledger_client::gate::read_policy(&p))
                .transpose()?;
            let witness_keys = match witness_keys {
                Some(f) => std::fs::read_to_string(&f)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(|l| {
                        let k = ledger_format::note::VerifierKey::parse(l)
                            .map_err(|e| anyhow::anyhow!("--witness-keys: {l}: {e}"))?;
                        Ok(match k.sig_type() {
                            ledger_format::note::SigType::Cosignature => k,
                            _ => ledger_format::cosig::as_cosigner(&k),
                        })
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?,
                None => Vec::new(),
            };
            let log_key = ledger_format::note::VerifierKey::parse(&log_key)
                .map_err(|e| anyhow::anyhow!("--log-key: {e}"))?;
            let tiles = tiles.source((s3_endpoint, s3_region, s3_path_style), log_key.name())?;
            let m =
                govledger_client::monitor::Monitor::new(govledger_client::monitor::MonitorArgs {
                    url,
                    tiles,
                    log_key,
                    state,
                    policy,
                    witness_keys,
                    max_witness_age,
                    anchor_dir,
                    witness_urls,
                    webhook: alert_webhook,
                })?;
            if once {
                // Informational alerts (a followed key rotation) are printed, not failures.
                let alerts = m.poll()?;
                let serious = alerts.iter().filter(|a| a.severity != "info").count();
                return Ok(if serious == 0 {
                    Outcome::Valid(String::new())
                } else {
                    Outcome::Invalid(format!("{serious} alert(s)"))
                });
            }
            loop {
                if let Err(e) = m.poll() {
                    eprintln!("monitor: {e:#}");
                }
                std::thread::sleep(std::time::Duration::from_secs_f64(interval.max(0.1)));
            }
        })(),
        Command::Anchors(AnchorsCommand::Verify {
            url,
            log_key,
            dir,
            remote,
            json,
        }) => (|| {
            let (s3, kafka) = remote.sources()?;
            govledger_client::anchors::verify(&govledger_client::anchors::VerifyArgs {
                url,
                log_key,
                dir,
                s3,
                kafka,
                json,
            })
        })(),
        Command::Audit {
            url,
            tiles,
            log_key,
            from,
            to,
            policy,
            anchor_dir,
            remote,
            auditor_key,
            out,
            jobs,
        } => (|| {
            let log_key = ledger_format::note::VerifierKey::parse(&log_key)
                .map_err(|e| anyhow::anyhow!("--log-key: {e}"))?;
            let tiles = tiles.source(
                (
                    remote.s3_endpoint.clone(),
                    remote.s3_region.clone(),
                    remote.s3_path_style,
                ),
                log_key.name(),
            )?;
            let (s3, kafka) = remote.sources()?;
            let policy = policy
                .map(|p| govledger_client::gate::read_policy(&p))
                .transpose()?;
            govledger_client::audit::run(&govledger_client::audit::AuditArgs {
                url,
                tiles,
                log_key,
                from_ms: from.map(|d| parse_date("from", &d)).transpose()?,
                to_ms: to.map(|d| parse_date("to", &d)).transpose()?,
                policy,
                anchor_dir,
                s3,
                kafka,
                auditor_key: auditor_key
                    .map(|k| govledger_client::keyfile::read(&k))
                    .transpose()?,
                out,
                jobs,
            })
        })(),
        Command::Github(SyncCommand::Sync { server, request }) => {
            govledger_client::submit::sync(&server.url, server.token.as_deref(), &request, "github")
        }
        Command::Servicenow(SyncCommand::Sync { server, request }) => {
            govledger_client::submit::sync(
                &server.url,
                server.token.as_deref(),
                &request,
                "servicenow",
            )
        }
        Command::Witness(WitnessCommand::Serve {
            key,
            logs,
            state,
            listen,
        }) => (|| {
            let key = govledger_client::keyfile::read(&key)?;
            let logs = logs
                .iter()
                .map(|l| {
                    ledger_format::note::VerifierKey::parse(l)
                        .map_err(|e| anyhow::anyhow!("--log {l}: {e}"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(govledger_client::witness::serve(
                govledger_client::witness::ServeArgs {
                    key,
                    logs,
                    state_dir: state,
                    listen,
                },
                |addr, vkey| {
                    println!("listening on {addr}");
                    println!("witness key: {vkey}");
                },
                async {
                    let mut term =
                        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                            .expect("installing the SIGTERM handler");
                    tokio::select! {
                        _ = term.recv() => {},
                        _ = tokio::signal::ctrl_c() => {},
                    }
                },
            ))?;
            Ok(Outcome::Valid(String::new()))
        })(),
        Command::Gate {
            policy,
            bundle,
            url,
            request,
            artifact,
            json,
            recheck_sources,
            github_status,
            sources,
        } => gate(
            &govledger_client::gate::GateArgs {
                policy: &policy,
                bundle: bundle.as_deref(),
                url: url.as_deref(),
                request: &request,
                artifact: artifact.as_deref(),
                now_ms: govledger_client::time::now_ms(),
                recheck: recheck_sources,
                sources: sources.sources(),
                github_status,
            },
            json,
        ),
        Command::Request {
            server,
            key,
            metadata,
            model_id,
            artifact,
            artifact_sha256,
            dataset_sha256,
            lineage,
            environment,
            policy,
            github_repo,
            github_pr,
            github_head_sha,
            servicenow_change,
            metrics,
            out,
        } => (|| {
            let key = govledger_client::keyfile::read(&key)?;
            let meta: serde_json::Value = match &metadata {
                Some(m) => serde_json::from_slice(
                    &std::fs::read(m).map_err(|e| anyhow::anyhow!("{}: {e}", m.display()))?,
                )
                .map_err(|e| anyhow::anyhow!("{}: {e}", m.display()))?,
                None => serde_json::Value::Null,
            };
            let from_meta = |v: &serde_json::Value| v.as_str().map(str::to_owned);
            let model_id = model_id
                .or_else(|| from_meta(&meta["model_id"]))
                .ok_or_else(|| anyhow::anyhow!("--model-id: not given and not in --metadata"))?;
            let lineage = lineage
                .or_else(|| from_meta(&meta["lineage"]["leaf_hash"]))
                .ok_or_else(|| anyhow::anyhow!("--lineage: not given and not in --metadata"))?;
            let artifact_sha256 = match (&artifact_sha256, &artifact) {
                (None, None) => from_meta(&meta["artifact"]["sha256"]),
                _ => artifact_sha256,
            };
            let dataset_sha256 = if dataset_sha256.is_empty() {
                meta["datasets"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|d| from_meta(&d["sha256"]))
                    .collect()
            } else {
                dataset_sha256
            };
            let metrics = metrics
                .map(|m| -> anyhow::Result<serde_json::Value> {
                    Ok(serde_json::from_slice(&std::fs::read(&m)?)?)
                })
                .transpose()?;
            let github = match (&github_repo, github_pr, &github_head_sha) {
                (Some(r), Some(n), Some(h)) => Some((r.as_str(), n, h.as_str())),
                _ => None,
            };
            let body = govledger_client::statements::request(
                &key,
                &govledger_client::statements::RequestArgs {
                    model_id: &model_id,
                    artifact_sha256: govledger_client::statements::digest_of(
                        artifact_sha256.as_deref(),
                        artifact.as_deref(),
                    )?,
                    dataset_sha256: &dataset_sha256,
                    lineage: &lineage,
                    environment: &environment,
                    policy: &policy,
                    github,
                    servicenow_change: servicenow_change.as_deref(),
                    performance_metrics: metrics,
                },
            )?;
            send(&server, out.as_deref(), &body)
        })(),
        Command::Approve {
            server,
            key,
            request,
            decision,
            role,
            comment,
            artifact_sha256,
            out,
        } => (|| {
            let key = govledger_client::keyfile::read(&key)?;
            let artifact = match artifact_sha256 {
                Some(a) => a,
                None => {
                    let body = govledger_client::submit::fetch_body(&server.url, &request)?;
                    body["statement"]["artifact_sha256"]
                        .as_str()
                        .ok_or_else(|| {
                            anyhow::anyhow!("entry {request} is not an approval request")
                        })?
                        .to_owned()
                }
            };
            let body = govledger_client::statements::approval(
                &key,
                &request,
                &artifact,
                &decision,
                &role,
                comment.as_deref(),
            )?;
            send(&server, out.as_deref(), &body)
        })(),
        Command::DeployRecord {
            server,
            request,
            model_id,
            status,
            environment,
            executed_by,
            details,
            out,
        } => (|| {
            let mut body = serde_json::json!({"model_id": model_id, "request": request, "status": status,
                                              "environment": environment, "executed_by": executed_by});
            if let Some(d) = details {
                body["details"] =
                    serde_json::from_str(&d).map_err(|e| anyhow::anyhow!("--details: {e}"))?;
            }
            send(
                &server,
                out.as_deref(),
                &serde_json::json!({"kind": "deployment", "body": body}),
            )
        })(),
        Command::Loadgen {
            server,
            concurrency,
            duration,
            batch,
            rate,
            log_key,
            json,
        } => loadgen(
            govledger_client::loadgen::LoadArgs {
                url: server.url,
                concurrency: concurrency.max(1),
                duration: std::time::Duration::from_secs_f64(duration),
                batch: batch.max(1),
                rate,
                token: server.token,
                log_key,
            },
            json,
        ),
    };
    match result {
        Ok(Outcome::Valid(msg)) => {
            if !msg.is_empty() {
                println!("{msg}");
            }
            ExitCode::SUCCESS
        }
        Ok(Outcome::Invalid(why)) => {
            eprintln!("invalid: {why}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn loadgen(args: govledger_client::loadgen::LoadArgs, json: bool) -> anyhow::Result<Outcome> {
    let rt = tokio::runtime::Runtime::new()?;
    let report = rt.block_on(govledger_client::loadgen::run(args))?;
    let text = if json {
        serde_json::to_string_pretty(&report)?
    } else {
        let l = &report.latency_ms;
        format!(
            "entries: {} in {:.1} s = {:.0} entries/s ({} requests)\nlatency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}\nerrors: {:?}\nreceipts verified: {}  invalid: {}",
            report.entries, report.seconds, report.entries_per_second, report.requests,
            l["p50"], l["p90"], l["p99"], l["max"], report.errors, report.receipts_verified, report.receipts_invalid
        )
    };
    if report.receipts_invalid > 0 {
        println!("{text}");
        return Ok(Outcome::Invalid(format!(
            "{} receipts did not verify",
            report.receipts_invalid
        )));
    }
    Ok(Outcome::Valid(text))
}

fn gate(args: &govledger_client::gate::GateArgs, json: bool) -> anyhow::Result<Outcome> {
    let report = govledger_client::gate::run(args)?;
    let text = if json {
        serde_json::to_string_pretty(&report)?
    } else {
        report.to_text()
    };
    if report.ok {
        return Ok(Outcome::Valid(text));
    }
    println!("{text}");
    Ok(Outcome::Invalid(format!(
        "the gate refuses: {}",
        report.failed.join(", ")
    )))
}

fn send(
    server: &ServerArgs,
    out: Option<&std::path::Path>,
    body: &serde_json::Value,
) -> anyhow::Result<Outcome> {
    govledger_client::submit::send(
        &govledger_client::submit::SubmitArgs {
            url: &server.url,
            input: std::path::Path::new("-"),
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
