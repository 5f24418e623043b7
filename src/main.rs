//! `govledgerd`: the govledger log server.

#![deny(clippy::unwrap_used)]

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use govledger::config::Config;

// sled and the HTTP stack allocate heavily from several threads; mimalloc measured ~20% more
// throughput than glibc malloc here (benches/README.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "govledgerd",
    version,
    about = "govledger transparency-log server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Flags shared by the commands that open a data dir; they override the config file.
#[derive(clap::Args)]
struct Common {
    /// TOML config file (see config/govledger.toml); without it the embedded defaults apply.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data directory (config key `data_dir`; default ./govledger-data).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Log origin and key name (config key `origin`; default localhost/govledger).
    #[arg(long)]
    origin: Option<String>,
}

impl Common {
    fn load(&self) -> Result<Config> {
        let mut cfg = Config::load(self.config.as_deref())?;
        if let Some(d) = &self.data_dir {
            cfg.data_dir = d.clone();
        }
        if let Some(o) = &self.origin {
            cfg.origin = o.clone();
        }
        Ok(cfg)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the log server. Prints `listening on <addr>` and `verifier key: <vkey>` on stdout.
    Serve {
        #[command(flatten)]
        common: Common,
        /// Address to listen on (config key `listen`; default 127.0.0.1:7800; port 0 picks one).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Generate the log signing key in the data dir (log.key, mode 0600; log.pub beside it).
    Keygen {
        #[command(flatten)]
        common: Common,
    },
    /// Write the whole log as static C2SP tlog-tiles files (checkpoint, tiles, entry bundles):
    /// the archive and the backup. Run it on a stopped server's data dir (or a copy).
    Export {
        #[command(flatten)]
        common: Common,
        /// Directory to write (created if needed).
        #[arg(long)]
        to: PathBuf,
    },
    /// Rebuild a data dir from an export, verifying every hash and the checkpoint signature.
    /// The log key must be in the data dir (log.key) or in GOVLEDGER_LOG_KEY.
    Import {
        #[command(flatten)]
        common: Common,
        /// Directory written by `export`, or `s3://BUCKET/PREFIX`: the WORM mirror (the
        /// connection settings come from the config's [anchors.s3]).
        #[arg(long)]
        from: String,
    },
    /// Rebuild a lost data dir from the WORM mirror in the config's [anchors.s3] bucket:
    /// every hash verified, the result checked against every checkpoint the bucket holds.
    /// Refuses a non-empty data dir. The log key comes from GOVLEDGER_LOG_KEY or the key file.
    /// Exit 0 restored, 1 the sources do not verify, 2 usage or I/O.
    Restore {
        #[command(flatten)]
        common: Common,
    },
    /// Hand the log over to a new signing key, on a stopped server: appends a key_event entry
    /// signed by the old and the new key (ledger-format SPEC.md §3.6), signs the hand-over
    /// checkpoint with both, then installs the new key file (the old one is kept as
    /// `log.key.retired-<key id>`). Verifiers holding the old key follow the rotation from the
    /// log (`govledger verify --url`, `govledger monitor`). Running it again after an
    /// interruption finishes the same rotation.
    RotateKey {
        #[command(flatten)]
        common: Common,
        /// Why the key changes (recorded in the entry).
        #[arg(long, default_value = "scheduled rotation")]
        reason: String,
        /// Keep the retired private key as `<key file>.retired-<key id>` (mode 0400) instead of
        /// destroying it (the default: only its verifier key stays, as `...retired-<id>.pub`).
        #[arg(long)]
        keep_retired_key: bool,
    },
    /// Offline check of a data dir: recompute every hash from the entries and verify the last
    /// signed checkpoint. Exit 0 if consistent, 1 if not, 2 on errors.
    Check {
        #[command(flatten)]
        common: Common,
    },
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "govledger=info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<std::process::ExitCode> {
    match cli.command {
        Command::Serve { common, listen } => {
            let mut cfg = common.load()?;
            if let Some(l) = listen {
                cfg.listen = l;
            }
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(govledger::server::run(
                cfg,
                shutdown_signal(),
                |addr, vkey| {
                    use std::io::Write;
                    println!("listening on {addr}");
                    println!("verifier key: {vkey}");
                    let _ = std::io::stdout().flush();
                },
            ))?;
            eprintln!("govledgerd: drained and stopped");
        }
        Command::Keygen { common } => {
            let cfg = common.load()?;
            std::fs::create_dir_all(&cfg.data_dir)?;
            anyhow::ensure!(
                !cfg.key_path().exists(),
                "{} exists; refusing to replace a log key",
                cfg.key_path().display()
            );
            let key = govledger::server::load_or_create_key(&cfg)?;
            println!("{}", key.verifier());
        }
        Command::Export { common, to } => {
            let cfg = common.load()?;
            let store = govledger::server::open_store(&cfg)?;
            let key = govledger::server::load_existing_key(&cfg).ok();
            if let Some(k) = &key {
                // The last checkpoint is fsynced with the next group: after a crash it may be
                // missing while its entries are durable. Opening the log (checked against the
                // stored tree) signs that head again, byte for byte, so the archive holds
                // every acknowledged entry. Replicated, the store is reconciled with the
                // write-ahead topic first: nothing the topic lacks is signed.
                govledger::server::connect_replication(&cfg, &store)?;
                govledger::log::Log::open(store.clone(), k.clone(), &cfg.origin)?;
            }
            let vkey = key.map(|k| k.verifier().to_string());
            let n = govledger::archive::export(store.as_ref(), &to, vkey.as_deref())?;
            println!("exported {n} entries to {}", to.display());
        }
        Command::Import { common, from } => {
            let cfg = common.load()?;
            std::fs::create_dir_all(&cfg.data_dir)?;
            let key = govledger::server::load_existing_key(&cfg).context(
                "import needs the log's signing key: put log.key in the data dir or set GOVLEDGER_LOG_KEY",
            )?;
            let n = import(&cfg, &from, &key)?;
            std::fs::write(
                cfg.data_dir.join("log.pub"),
                format!("{}\n", key.verifier()),
            )?;
            println!(
                "imported {} entries into {}",
                n.size,
                cfg.data_dir.display()
            );
        }
        Command::Restore { common } => {
            let cfg = common.load()?;
            let key = govledger::server::load_existing_key(&cfg).context(
                "restore needs the log's signing key: set GOVLEDGER_LOG_KEY or put the key file in place (key_file, default <data_dir>/log.key)",
            )?;
            match govledger::restore::restore(&cfg, &key) {
                Ok(r) => govledger::restore::report(&r, &cfg.data_dir),
                Err(govledger::archive::ImportError::Invalid(why)) => {
                    eprintln!("restore failed: the sources do not verify: {why}");
                    return Ok(std::process::ExitCode::from(1));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Command::RotateKey {
            common,
            reason,
            keep_retired_key,
        } => {
            let cfg = common.load()?;
            let r = govledger::rotate::rotate_key(&cfg, &reason, keep_retired_key)?;
            println!("old key: {}", r.old_key);
            println!("new key: {}", r.new_key);
            println!(
                "key_event at index {}; hand-over checkpoint at size {} signed by both keys",
                r.index, r.size
            );
            let kept = if r.kept_private {
                format!(
                    "the old private key is kept (read-only) as {}",
                    r.retired.display()
                )
            } else {
                format!(
                    "the old private key was destroyed; its verifier key is in {}",
                    r.retired.display()
                )
            };
            eprintln!(
                "{kept}; give the new verifier key to witnesses (`govledger witness serve --log OLD --log NEW`, oldest first, trusts both while they catch up) and to policies that pin the log key (verifiers holding the old key follow the rotation from the log)"
            );
        }
        Command::Check { common } => {
            let cfg = common.load()?;
            match govledger::server::check(&cfg) {
                Ok(n) => println!("ok: {n} entries, every hash and the last checkpoint verified"),
                Err(e) => {
                    eprintln!("check failed: {e:#}");
                    return Ok(std::process::ExitCode::from(1));
                }
            }
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// Returns the import source `from` names: an export directory or `s3://BUCKET/PREFIX`.
/// Imports into the config's data dir from `from`: an export directory, or
/// `s3://BUCKET/PREFIX`, the WORM mirror (connection settings from the config's
/// [anchors.s3]), after which the mirror's cursor points at what the bucket holds.
fn import(
    cfg: &Config,
    from: &str,
    key: &ledger_format::note::SignerKey,
) -> Result<govledger::archive::Imported> {
    let db = cfg.data_dir.join("db");
    let Some(rest) = from.strip_prefix("s3://") else {
        let source = govledger::archive::DirSource(from.into());
        return Ok(govledger::archive::import(&source, &db, key, cfg.cache_mb)?);
    };
    #[cfg(feature = "s3")]
    {
        use govledger::archive::Source;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        anyhow::ensure!(!bucket.is_empty(), "--from s3://BUCKET/PREFIX: no bucket");
        let mut s3 = cfg.anchors.s3.clone().context(
            "--from s3://...: the S3 endpoint, region and addressing come from the config's [anchors.s3]",
        )?;
        s3.bucket = bucket.to_owned();
        s3.prefix = prefix.trim_end_matches('/').to_owned();
        let source = govledger::restore::S3Source::open(&s3, &cfg.origin, &key.verifier())?;
        let n = govledger::archive::import(&source, &db, key, cfg.cache_mb)?;
        for note in source.notes() {
            eprintln!("import: note: {note}");
        }
        let store = govledger::store::SledStore::open(&db, cfg.cache_mb)?;
        govledger::restore::adopt_mirror(&store, n.size, &source)?;
        Ok(n)
    }
    #[cfg(not(feature = "s3"))]
    {
        let _ = rest;
        anyhow::bail!("this govledgerd was built without the `s3` feature: it cannot read s3://")
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    eprintln!("govledgerd: shutting down, draining the queue");
}
