//! `govledger witness serve`: a C2SP tlog-witness (v1.0.0 `add-checkpoint`, and the monitoring
//! `GET /<hex sha256(origin)>/checkpoint`). It cosigns (cosignature/v1, type 0x04) only
//! checkpoints consistent with the last one it cosigned for that log, and persists the new
//! state atomically (write, fsync, rename, fsync the directory) before it answers; one lock
//! makes the old-size check and the state update a single compare-and-swap.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use ledger_format::note::{SignerKey, VerifierKey};
use ledger_format::witness::{decide, AddCheckpoint, LogState, SIZE_CONTENT_TYPE};
use sha2::{Digest, Sha256};

/// Largest request body: 63 proof lines and a checkpoint with many cosignatures fit easily.
const MAX_BODY: usize = 64 << 10;

struct Logged {
    state: LogState,
    /// The cosigned checkpoint: the log's signature and ours.
    note: String,
}

struct Witness {
    key: SignerKey,
    logs: Vec<VerifierKey>,
    dir: PathBuf,
    state: Mutex<HashMap<String, Logged>>,
}

/// Returns the file name of an origin's state: lowercase hex SHA-256 of the origin.
pub fn origin_id(origin: &str) -> String {
    hex::encode(Sha256::digest(origin.as_bytes()))
}

/// Writes `bytes` to `path` atomically and durably.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

fn load(dir: &Path, logs: &[VerifierKey]) -> Result<HashMap<String, Logged>> {
    let mut out = HashMap::new();
    for key in logs {
        let origin = key.name();
        if out.contains_key(origin) {
            continue; // another key of the same log (a rotation)
        }
        let path = dir.join(origin_id(origin));
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let signed = ledger_format::witness::open_trusted(text.as_bytes(), origin, logs)
            .map_err(|e| anyhow::anyhow!("witness state {}: {e}", path.display()))?;
        out.insert(
            origin.to_owned(),
            Logged {
                state: LogState {
                    size: signed.checkpoint.size.0,
                    root: signed.checkpoint.root,
                    key: ledger_format::witness::signer_rank(&signed, logs),
                },
                note: text,
            },
        );
    }
    Ok(out)
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(1)
}

fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

async fn add_checkpoint(State(w): State<Arc<Witness>>, body: Bytes) -> Response {
    let w2 = w.clone();
    let r = tokio::task::spawn_blocking(move || add(&w2, &body)).await;
    match r {
        Ok(Ok(line)) => text(StatusCode::OK, line),
        Ok(Err(e)) => {
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
            let ctype = if e.status() == 409 {
                SIZE_CONTENT_TYPE
            } else {
                "text/plain; charset=utf-8"
            };
            (status, [(header::CONTENT_TYPE, ctype)], e.body()).into_response()
        }
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    }
}

fn add(w: &Witness, body: &[u8]) -> Result<String, ledger_format::witness::WitnessError> {
    use ledger_format::witness::WitnessError;
    let req = AddCheckpoint::parse(body)?;
    // The lock spans the check and the durable update: a compare-and-swap.
    let mut state = w.state.lock().expect("lock poisoned");
    let signed = decide(&req, &w.logs, |origin| state.get(origin).map(|l| l.state))?;
    let origin = signed.checkpoint.origin.clone();
    let cosig = ledger_format::cosig::cosign(&w.key, &signed.note.text, now_secs());
    // `decide` left only the lines of the log keys that verified the checkpoint.
    let rank = ledger_format::witness::signer_rank(&signed, &w.logs);
    let mut kept = signed.note;
    kept.signatures.push(cosig.clone());
    let note = kept.to_text();
    write_atomic(&w.dir.join(origin_id(&origin)), note.as_bytes())
        .map_err(|e| WitnessError::Malformed(format!("could not persist the state: {e}")))?;
    state.insert(
        origin,
        Logged {
            state: LogState {
                size: signed.checkpoint.size.0,
                root: signed.checkpoint.root,
                key: rank,
            },
            note,
        },
    );
    Ok(cosig.to_line())
}

async fn latest(State(w): State<Arc<Witness>>, UrlPath(id): UrlPath<String>) -> Response {
    let state = w.state.lock().expect("lock poisoned");
    match state.iter().find(|(origin, _)| origin_id(origin) == id) {
        Some((_, l)) => text(StatusCode::OK, l.note.clone()),
        None => text(
            StatusCode::NOT_FOUND,
            "no checkpoint cosigned for this log\n".into(),
        ),
    }
}

/// Where and as whom the witness runs.
pub struct ServeArgs {
    pub key: SignerKey,
    pub logs: Vec<VerifierKey>,
    pub state_dir: PathBuf,
    pub listen: SocketAddr,
}

/// Binds, then calls `ready` with the address and the witness's cosigner key, and serves until
/// `shutdown` resolves.
pub async fn serve(
    a: ServeArgs,
    ready: impl FnOnce(SocketAddr, &VerifierKey),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    std::fs::create_dir_all(&a.state_dir)
        .with_context(|| format!("creating {}", a.state_dir.display()))?;
    let state = load(&a.state_dir, &a.logs)?;
    let vkey = a.key.cosigner_verifier();
    let w = Arc::new(Witness {
        key: a.key,
        logs: a.logs,
        dir: a.state_dir,
        state: Mutex::new(state),
    });
    let app = Router::new()
        .route("/add-checkpoint", post(add_checkpoint))
        .route("/{id}/checkpoint", get(latest))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(w);
    let listener = tokio::net::TcpListener::bind(a.listen)
        .await
        .with_context(|| format!("binding {}", a.listen))?;
    ready(listener.local_addr()?, &vkey);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

/// `govledger witness serve`: serves until SIGTERM or Ctrl-C.
pub fn command(c: crate::args::WitnessCommand) -> Result<crate::cli::Outcome> {
    let crate::args::WitnessCommand::Serve(a) = c;
    let key = crate::keyfile::read(&a.key)?;
    let logs = a
        .logs
        .iter()
        .map(|l| VerifierKey::parse(l).map_err(|e| anyhow::anyhow!("--log {l}: {e}")))
        .collect::<Result<Vec<_>>>()?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(serve(
        ServeArgs {
            key,
            logs,
            state_dir: a.state,
            listen: a.listen,
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
    Ok(crate::cli::Outcome::Valid(String::new()))
}
