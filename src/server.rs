//! Wiring: from a [`Config`] to a running server, and the offline `check`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use ledger_format::note::SignerKey;

use govledger_connectors::keyfile;

use crate::config::Config;
use crate::http::{router, AppState};
use crate::log::{Log, LogError};
use crate::sequencer;
use crate::settings::Settings;
use crate::store::{leaf_fingerprint, IndexSpace, SledStore, Store, StoreError};

/// Returns the log signer: `GOVLEDGER_LOG_KEY`, else the key file (which only its owner may
/// read: it signs every checkpoint), else a new key written to the key file (mode 0600) with
/// `log.pub` beside it.
pub fn load_or_create_key(cfg: &Config) -> Result<SignerKey> {
    if let Ok(s) = std::env::var(govledger_connectors::env::GOVLEDGER_LOG_KEY) {
        return SignerKey::parse(&s).context("GOVLEDGER_LOG_KEY");
    }
    let path = cfg.key_path();
    let key = if path.exists() {
        keyfile::read_private(&path).context("the log key")?
    } else {
        let key = keyfile::generate(&cfg.origin)?;
        keyfile::write_new(&path, &key)?;
        key
    };
    let pub_path = cfg.data_dir.join("log.pub");
    std::fs::write(&pub_path, format!("{}\n", key.verifier()))
        .with_context(|| format!("writing {}", pub_path.display()))?;
    Ok(key)
}

/// Opens the store in the config's data dir.
pub fn open_store(cfg: &Config) -> Result<Arc<dyn Store>> {
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating data dir {}", cfg.data_dir.display()))?;
    let store = SledStore::open(&cfg.data_dir.join("db"), cfg.cache_mb)
        .with_context(|| format!("opening the store in {}", cfg.data_dir.display()))?;
    Ok(Arc::new(store))
}

/// Runs the server until `shutdown` resolves: stops accepting, drains the queue, commits and
/// returns. `on_listen` is told the bound address and verifier key before serving.
///
/// A storage failure (a write the store could not make, e.g. for lack of space despite the
/// `min_free_mb` reserve) stops the sequencer, which signs nothing more. The server then closes
/// the log, answers every request with 503 on the same listener while it waits for the store to
/// take a durable write again, and reopens the log from disk, exactly as a restart would.
pub async fn run(
    cfg: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_listen: impl FnOnce(SocketAddr, &str),
) -> Result<()> {
    let settings = Settings::new(cfg)?;
    let cfg = &settings.config;
    let listener = std::net::TcpListener::bind(cfg.listen)
        .with_context(|| format!("listening on {}", cfg.listen))?;
    listener.set_nonblocking(true)?;
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let mut on_listen = Some(on_listen);
    let connections = Arc::new(crate::http::conn::ConnStats::default());
    loop {
        let listening = listener.try_clone()?;
        let first = on_listen.is_some();
        let outcome = serve_log(
            &settings,
            listening,
            connections.clone(),
            stop.clone(),
            |addr, vkey| {
                if let Some(f) = on_listen.take() {
                    f(addr, vkey)
                }
            },
        )
        .await;
        let why = match outcome {
            Ok(None) => return Ok(()),
            Ok(Some(why)) => why,
            // A startup error is the operator's to fix; after a storage failure, reopening the
            // log may fail the same way (the store still refuses writes): wait again.
            Err(e) if first => return Err(e),
            Err(e) => match (e.downcast_ref::<StoreError>(), e.downcast_ref::<LogError>()) {
                (Some(store), _) | (_, Some(LogError::Store(store))) => store.clone(),
                _ => StoreError::io(format!("{e:#}")),
            },
        };
        tracing::error!("storage failure ({why}): the log is closed; answering 503 until the store writes again");
        let listening = listener.try_clone()?;
        if !wait_for_storage(cfg, listening, connections.clone(), stop.clone(), &why).await? {
            return Ok(());
        }
        tracing::warn!("the store writes again: reopening the log");
    }
}

/// Resolves when `stop` turns true.
async fn stopped(mut stop: tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Serves the log until `stop` (returns `None`) or a storage failure (returns why).
async fn serve_log(
    settings: &Settings,
    listener: std::net::TcpListener,
    connections: Arc<crate::http::conn::ConnStats>,
    stop: tokio::sync::watch::Receiver<bool>,
    on_listen: impl FnOnce(SocketAddr, &str),
) -> Result<Option<StoreError>> {
    let cfg = &settings.config;
    let store = open_store(cfg)?;
    let key = load_or_create_key(cfg)?;
    let replication = replication(cfg, &store).await?;
    let (log, compact, last_ms) = Log::open(store, key, &cfg.origin)?;
    let (handle, thread) = sequencer::start(
        log.clone(),
        compact,
        last_ms,
        sequencer::Settings {
            batch_interval: Duration::from_millis(cfg.batch_interval_ms),
            max_batch: cfg.max_batch,
            queue_capacity: cfg.queue_capacity,
            disk: (cfg.min_free_mb > 0).then(|| sequencer::DiskGuard {
                dir: cfg.data_dir.clone(),
                min_free: cfg.min_free_mb << 20,
            }),
            replication,
        },
    );
    let mut failed = handle.failed.clone();
    let failure = handle.failed.clone();
    let policy = settings.policy.clone();
    if let Some(k) = policy.log_key.as_ref().filter(|k| **k != log.verifier) {
        tracing::warn!(
            "the policy pins the log key {k}, but this log signs with {}: gates using this policy will refuse its bundles",
            log.verifier
        );
    }
    let anchorer = crate::anchor::Anchorer::new(
        log.clone(),
        anchor_backends(cfg, &log.store).await?,
        settings
            .witnesses
            .iter()
            .map(|(url, key)| crate::anchor::witness_client::WitnessClient::new(url, key))
            .collect(),
        crate::anchor::Rounds {
            interval: Duration::from_millis(cfg.anchors.interval_ms),
            backoff_max: Duration::from_millis(cfg.anchors.backoff_max_ms),
            max_unmirrored: cfg
                .anchors
                .s3
                .as_ref()
                .and_then(|s| s.max_unmirrored_entries),
        },
    )?;
    let (stop_anchoring, stop_rx) = tokio::sync::watch::channel(false);
    let anchoring = tokio::spawn(crate::anchor::run(
        anchorer.clone(),
        Duration::from_millis(cfg.anchors.interval_ms),
        stop_rx,
    ));
    let state = Arc::new(AppState {
        log: log.clone(),
        sequencer: handle,
        tokens: settings.tokens.clone(),
        max_body_bytes: cfg.max_body_bytes,
        max_batch_entries: cfg.max_batch_entries,
        policy,
        anchorer,
        integrations: crate::integrations::Integrations::new(cfg, settings.accounts.clone())?,
        limiter: Default::default(),
        anonymous_limit: settings.anonymous_limit,
        certificates: settings.certificates.clone(),
        request_timeout: Duration::from_millis(cfg.connections.request_timeout_ms),
        connections: connections.clone(),
        budget: crate::http::reads::ResponseBudget::new(cfg.reads.response_budget_mb),
        read_limiter: crate::http::limits::Limiter::counting("reads"),
        read_limit: settings.read_limit,
        max_response_bytes: cfg.reads.max_response_bytes,
        regulations: ledger_format::summary::Regulations::new(&cfg.regulations),
        max_summary_entries: cfg.max_summary_entries,
        summaries: Arc::new(tokio::sync::Semaphore::new(1)),
    });
    let tls = tls_state(cfg)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    on_listen(listener.local_addr()?, &log.verifier.to_string());
    if state.tokens.is_empty() && state.certificates.is_empty() {
        tracing::warn!("no tokens configured: only loopback clients may submit, as `anonymous`");
    }
    if let Some(tls) = &tls {
        tokio::spawn(reload_on_sighup(tls.clone()));
    }
    crate::http::conn::serve(
        listener,
        router(state),
        tls,
        cfg.connections.clone(),
        connections,
        async move {
            tokio::select! {
                _ = stopped(stop) => {}
                _ = failed.wait_for(|f| f.is_some()) => {}
            }
        },
    )
    .await?;
    // The router (and with it the last sequencer handle) is gone: the sequencer drains what is
    // queued, commits it and exits.
    tokio::task::spawn_blocking(move || thread.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the sequencer thread panicked"))?;
    // Everything is committed: one last anchoring round chooses the final checkpoint.
    let _ = stop_anchoring.send(true);
    anchoring.await?;
    let why = failure.borrow().clone();
    Ok(why)
}

/// Replicated durability: connects the write-ahead topic's producer and reconciles the store
/// with the topic (`replication::reconcile`). Call it before `Log::open` wherever a log is
/// opened to sign (`serve`, `rotate-key`, `export`): opening signs the stored head, and nothing
/// may be signed that the topic lacks. `None` in local durability. Blocking.
#[cfg(feature = "kafka")]
pub fn connect_replication(
    cfg: &Config,
    store: &Arc<dyn Store>,
) -> Result<Option<Arc<dyn crate::replication::Replicator>>> {
    let (crate::config::Durability::Replicated, Some(rc)) = (cfg.durability, &cfg.replication)
    else {
        return Ok(None);
    };
    let wal = Arc::new(crate::replication::Wal::connect(rc, &cfg.origin)?);
    let reader = crate::replication::WalReader::new(rc, &cfg.origin);
    let r = crate::replication::reconcile(store, &reader, wal.as_ref()).with_context(|| {
        format!(
            "reconciling the store with the write-ahead topic {}",
            rc.topic
        )
    })?;
    tracing::info!(
        "write-ahead topic {}: {} records read, {} entries applied from it, {} produced to it; tree size {}",
        rc.topic,
        r.records,
        r.applied,
        r.produced,
        r.size
    );
    Ok(Some(wal as Arc<dyn crate::replication::Replicator>))
}

/// Without the `kafka` feature every log is local (`Config::validate` refuses replicated).
#[cfg(not(feature = "kafka"))]
pub fn connect_replication(
    _cfg: &Config,
    _store: &Arc<dyn Store>,
) -> Result<Option<Arc<dyn crate::replication::Replicator>>> {
    Ok(None)
}

/// [`connect_replication`] off the async runtime.
async fn replication(
    cfg: &Config,
    store: &Arc<dyn Store>,
) -> Result<Option<Arc<dyn crate::replication::Replicator>>> {
    let (cfg, store) = (cfg.clone(), store.clone());
    tokio::task::spawn_blocking(move || connect_replication(&cfg, &store)).await?
}

/// After a storage failure: answers every request with 503 on `listener` until the store takes
/// a durable write again (returns true) or `stop` (returns false).
async fn wait_for_storage(
    cfg: &Config,
    listener: std::net::TcpListener,
    connections: Arc<crate::http::conn::ConnStats>,
    stop: tokio::sync::watch::Receiver<bool>,
    why: &StoreError,
) -> Result<bool> {
    let message = format!(
        "storage failure ({why}); the log is closed and reopens by itself once the store writes again"
    );
    let code = if why.is_out_of_space() {
        "disk_full"
    } else {
        "unavailable"
    };
    let closed = axum::Router::new().fallback(move || {
        let message = message.clone();
        async move {
            crate::http::ApiError {
                retry_after: Some(5),
                ..crate::http::ApiError::new(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    code,
                    message,
                )
            }
        }
    });
    let tls = tls_state(cfg)?;
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
    let probe_cfg = cfg.clone();
    let probing = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let c = probe_cfg.clone();
            match tokio::task::spawn_blocking(move || storage_writes(&c)).await {
                Ok(Ok(())) => {
                    let _ = ready_tx.send(());
                    return;
                }
                Ok(Err(e)) => tracing::debug!("the store does not write yet: {e:#}"),
                Err(e) => tracing::error!("storage probe: {e}"),
            }
        }
    });
    let stopping = stop.clone();
    crate::http::conn::serve(
        tokio::net::TcpListener::from_std(listener)?,
        closed,
        tls,
        cfg.connections.clone(),
        connections,
        async move {
            tokio::select! {
                _ = stopped(stopping) => {}
                _ = ready_rx => {}
            }
        },
    )
    .await?;
    probing.abort();
    Ok(!*stop.borrow())
}

/// Returns Ok when the data dir has its reserve of free space and the store opens and makes a
/// durable write (the last checkpoint, rewritten as it is).
fn storage_writes(cfg: &Config) -> Result<()> {
    if cfg.min_free_mb > 0 {
        let free = fs2::available_space(&cfg.data_dir)?;
        anyhow::ensure!(
            free >= cfg.min_free_mb << 20,
            "{} MiB free, below the reserve",
            free >> 20
        );
    }
    let store = open_store(cfg)?;
    if let Some(cp) = store.head()?.and_then(|h| h.checkpoint) {
        store.put_checkpoint(&cp)?;
    }
    Ok(())
}

/// Re-reads the TLS certificate and key on every SIGHUP.
async fn reload_on_sighup(tls: Arc<crate::tls::TlsState>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP: TLS certificates will not be reloaded");
        return;
    };
    while hup.recv().await.is_some() {
        match tls.reload() {
            Ok(()) => tracing::info!("SIGHUP: TLS certificate and key reloaded"),
            Err(e) => tracing::error!(
                "SIGHUP: TLS reload failed, keeping the previous certificate: {e:#}"
            ),
        }
    }
}

/// Returns the configured anchor backends; a backend that cannot work (an S3 bucket that
/// answers without Object Lock, say) is a startup error. An S3 endpoint that does not answer
/// is not: the log starts, and the S3 anchor and the mirror wait for it (degraded).
#[cfg_attr(not(feature = "s3"), allow(unused_variables))]
async fn anchor_backends(
    cfg: &Config,
    store: &Arc<dyn Store>,
) -> Result<Vec<Box<dyn crate::anchor::Backend>>> {
    let mut out: Vec<Box<dyn crate::anchor::Backend>> = Vec::new();
    if cfg.anchors.dir_enabled {
        let dir = cfg
            .anchors
            .dir
            .clone()
            .unwrap_or_else(|| cfg.data_dir.join("anchors"));
        out.push(Box::new(
            crate::anchor::dir::DirAnchor::new(&dir)
                .with_context(|| format!("anchor directory {}", dir.display()))?,
        ));
    }
    #[cfg(feature = "s3")]
    if let Some(s3) = &cfg.anchors.s3 {
        let bucket = Arc::new(crate::anchor::s3::bucket(s3, &cfg.origin)?);
        bucket.check_at_start(Duration::from_secs(5)).await?;
        out.push(Box::new(crate::anchor::s3::S3Anchor::new(bucket.clone())));
        if s3.tiles {
            out.push(Box::new(crate::anchor::mirror::TileMirror::new(
                bucket,
                store.clone(),
            )));
        }
    }
    #[cfg(feature = "kafka")]
    if let Some(k) = &cfg.anchors.kafka {
        out.push(Box::new(crate::anchor::kafka::KafkaAnchor::connect(
            k,
            &cfg.origin,
        )?));
    }
    Ok(out)
}

/// `govledgerd check`: recomputes every hash from the stored entries, compares each with the
/// stored tiles and the leaf index, and the final root with the last signed checkpoint.
/// Memory stays O(log n); progress goes to stderr.
pub fn check(cfg: &Config) -> Result<u64> {
    check_store(cfg, open_store(cfg)?)
}

/// [`check`] on an already open store.
pub fn check_store(cfg: &Config, store: Arc<dyn Store>) -> Result<u64> {
    use ledger_format::checkpoint::SignedCheckpoint;
    use ledger_format::tree::CompactRange;
    let Some(head) = store.head()? else {
        bail!("{} holds no log", cfg.data_dir.display());
    };
    let note = head
        .checkpoint
        .clone()
        .context("no signed checkpoint is stored; start the server once to sign one")?;
    let signed = SignedCheckpoint::parse(note.as_bytes())?;
    if let Ok(key) = load_existing_key(cfg) {
        SignedCheckpoint::open(note.as_bytes(), &key.verifier(), &[])
            .context("the last checkpoint does not verify with the log key")?;
    }
    let mut compact = CompactRange::new();
    let mut tile: Option<((u8, u64), crate::store::FatTile)> = None;
    let mut problems = Vec::new();
    // Entries past this mark are indexed on the next start (the index is derived data).
    let indexed = store.indexed_up_to()?;
    let step = 65_536u64;
    let mut start = 0;
    let size = signed.checkpoint.size.0;
    if head.size > size {
        // A crash lost the last checkpoint (it is fsynced with the next group): the server
        // signs these entries again when it starts.
        eprintln!(
            "check: the last {} entries come after the last stored checkpoint (size {size}) and are checked when govledgerd has started once and signed them",
            head.size - size
        );
    }
    while start < size {
        let end = (start + step).min(size);
        for (i, leaf) in (start..).zip(store.entries(start, end)?) {
            let h = ledger_format::leaf_hash(&leaf);
            if i < indexed
                && !store
                    .index_candidates(IndexSpace::LeafHash, leaf_fingerprint(&h))?
                    .contains(&i)
            {
                problems.push(format!("entry {i}: leaf-hash index does not point back"));
            }
            let mut err: Option<String> = None;
            compact.append_with(h, |node, hash| {
                let (l, t, r, slot) = crate::store::fattile::locate(node.level, node.index);
                if tile.as_ref().map(|x| x.0) != Some((l, t)) {
                    tile = store.tile(l, t).ok().flatten().map(|f| ((l, t), f));
                }
                let stored = tile.as_ref().and_then(|x| x.1.get(r, slot));
                if stored != Some(hash) && err.is_none() {
                    err = Some(format!(
                        "entry {i}: stored node {node:?} differs from the recomputed hash"
                    ));
                }
            });
            problems.extend(err);
        }
        start = end;
        eprintln!("checked {end}/{size} entries");
    }
    if compact.root() != signed.checkpoint.root {
        problems.push(format!(
            "recomputed root {} differs from the last checkpoint's {}",
            compact.root(),
            signed.checkpoint.root
        ));
    }
    if !problems.is_empty() {
        for p in problems.iter().take(50) {
            eprintln!("{p}");
        }
        bail!("{} problems found", problems.len());
    }
    Ok(size)
}

/// Returns the configured log key without creating one.
pub fn load_existing_key(cfg: &Config) -> Result<SignerKey> {
    if let Ok(s) = std::env::var(govledger_connectors::env::GOVLEDGER_LOG_KEY) {
        return SignerKey::parse(&s).context("GOVLEDGER_LOG_KEY");
    }
    keyfile::read(&cfg.key_path())
}

/// The TLS state of `[tls]`, when configured.
fn tls_state(cfg: &Config) -> Result<Option<Arc<crate::tls::TlsState>>> {
    cfg.tls
        .as_ref()
        .map(crate::tls::TlsState::new)
        .transpose()
        .context("tls")
}
