//! `govledgerd rotate-key`: hands the log over to a new key, recorded in the log itself.
//!
//! Run on a stopped server (the store is locked while it runs). Steps, each durable before
//! the next, so that running the command again after a crash finishes the same rotation:
//!
//! 1. the new key is written beside the old one as `<key file>.next` (mode 0600);
//! 2. a `key_event` entry signed by both keys (ledger-format SPEC.md §3.6) is appended at index
//!    `after.size` and covered by a checkpoint signed with the old key;
//! 3. that checkpoint is signed again by both keys, so a verifier holding either key accepts
//!    the hand-over head;
//! 4. the new key takes the old one's place and `log.pub` names the new key; the old private
//!    key is destroyed (its file overwritten with zeros, synced and removed) and only its
//!    verifier key stays, as `<key file>.retired-<key id>.pub`. Whoever later reads the data
//!    dir cannot sign as the retired key. `--keep-retired-key` keeps the private key instead,
//!    as `<key file>.retired-<key id>` (mode 0400), for an operator who escrows it.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use ledger_format::checkpoint::Checkpoint;
use ledger_format::entry::{attribute_key, EntryKind};
use ledger_format::key_event::KeyEvent;
use ledger_format::leaf::Leaf;
use ledger_format::note::{Note, SignerKey, VerifierKey};

use crate::config::Config;
use crate::log::Log;
use crate::sequencer::{self, Pending, Settings};
use crate::server::{load_or_create_key, open_store};
use govledger_connectors::keyfile;

/// What a rotation did.
#[derive(Debug)]
pub struct Rotation {
    pub old_key: VerifierKey,
    pub new_key: VerifierKey,
    /// Index of the key_event entry.
    pub index: u64,
    /// The tree size of the hand-over checkpoint (signed by both keys).
    pub size: u64,
    /// Where the retired key is: its private key file with `keep_retired`, else its verifier
    /// key file (the private key is destroyed).
    pub retired: PathBuf,
    pub kept_private: bool,
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Rotates the log key of the stopped server configured by `cfg`.
pub fn rotate_key(cfg: &Config, reason: &str, keep_retired: bool) -> Result<Rotation> {
    if std::env::var_os(govledger_connectors::env::GOVLEDGER_LOG_KEY).is_some() {
        bail!("GOVLEDGER_LOG_KEY is set: rotate-key rotates the key file; unset it (and provide the new key the same way afterwards)");
    }
    let key_path = cfg.key_path();
    let next_path = with_suffix(&key_path, ".next");
    if !key_path.exists() && next_path.exists() {
        bail!(
            "{} is missing but {} exists: an earlier rotation stopped between its two renames; rename {} to {} to finish it",
            key_path.display(),
            next_path.display(),
            next_path.display(),
            key_path.display()
        );
    }
    if !key_path.exists() {
        bail!("no log key at {}: nothing to rotate", key_path.display());
    }
    let store = open_store(cfg)
        .context("opening the store (is the server still running? stop it first)")?;
    let old = load_or_create_key(cfg)?;
    // 1. The new key, reused when an interrupted rotation left one.
    let new = if next_path.exists() {
        keyfile::read_private(&next_path)?
    } else {
        let key = keyfile::generate(&cfg.origin)?;
        keyfile::write_new(&next_path, &key)?;
        key
    };
    // Replicated durability: the key_event goes to the write-ahead topic like any entry, and
    // nothing the topic lacks is signed (opening the log signs its head).
    let replication = crate::server::connect_replication(cfg, &store)?;
    let (log, compact, last_ms) = Log::open(store, old.clone(), &cfg.origin)?;
    let head = log.published();

    // 2. The key_event entry, unless the log already ends with this very rotation.
    let done = match head.size {
        0 => None,
        n => {
            let leaf = Leaf::parse(&log.leaf(n - 1)?)?;
            (leaf.kind == EntryKind::KeyEvent)
                .then(|| KeyEvent::parse(&leaf.body).ok())
                .flatten()
                .filter(|e| e.new_key == new.verifier() && e.old_key == old.verifier())
                .map(|_| n - 1)
        }
    };
    let index = match done {
        Some(i) => i,
        None => {
            let event = KeyEvent {
                origin: cfg.origin.clone(),
                old_key: old.verifier(),
                new_key: new.verifier(),
                after_size: head.size,
                after_root: head.root,
                reason: reason.to_owned(),
            };
            let body = event.sign(&old, &new)?;
            let (handle, thread) = sequencer::start(
                log.clone(),
                compact,
                last_ms,
                Settings {
                    batch_interval: std::time::Duration::ZERO,
                    max_batch: 1,
                    queue_capacity: 1,
                    disk: None,
                    replication,
                },
            );
            let rx = handle
                .submit(vec![Pending {
                    kind: EntryKind::KeyEvent,
                    submitter: "govledger".into(),
                    entry_id: format!("key-rotation-{:08x}", new.verifier().key_id()),
                    body: body.into_bytes(),
                    attrs: vec![attribute_key("kind=key_event")],
                }])
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let committed = rx
                .blocking_recv()
                .context("the sequencer stopped")?
                .map_err(|e| anyhow::anyhow!("appending the key_event: {e}"))?;
            drop(handle);
            thread
                .join()
                .map_err(|_| anyhow::anyhow!("the sequencer thread panicked"))?;
            let placed = &committed.placed[0];
            if placed.index != head.size {
                bail!(
                    "the key_event landed at index {}, not {}",
                    placed.index,
                    head.size
                );
            }
            placed.index
        }
    };

    // 3. The hand-over checkpoint, signed by both keys.
    let p = log.published();
    let cp = Checkpoint {
        origin: cfg.origin.clone(),
        size: ledger_format::TreeSize(p.size),
        root: p.root,
        extensions: vec![],
    };
    let note = Note::sign(&cp.to_text(), &[&old, &new])?.to_text();
    log.writes.put_checkpoint(&note)?;
    drop(log);

    // 4. The key files.
    let retired = install_keys(cfg, &key_path, &next_path, &old, &new, keep_retired)?;
    Ok(Rotation {
        old_key: old.verifier(),
        new_key: new.verifier(),
        index,
        size: p.size,
        retired,
        kept_private: keep_retired,
    })
}

/// Step 4: the new key takes the key file's place, `log.pub` and `<key file>.retired-<id>.pub`
/// name the new and the old verifier key, and the old private key is destroyed (or, with
/// `keep_retired`, kept read-only). Returns where the retired key is.
fn install_keys(
    cfg: &Config,
    key_path: &Path,
    next_path: &Path,
    old: &SignerKey,
    new: &SignerKey,
    keep_retired: bool,
) -> Result<PathBuf> {
    let retired = with_suffix(
        key_path,
        &format!(".retired-{:08x}", old.verifier().key_id()),
    );
    std::fs::rename(key_path, &retired)
        .with_context(|| format!("moving {} aside", key_path.display()))?;
    std::fs::rename(next_path, key_path)
        .with_context(|| format!("installing {}", key_path.display()))?;
    sync_dir(key_path);
    let pub_path = cfg.data_dir.join("log.pub");
    std::fs::write(&pub_path, format!("{}\n", new.verifier()))
        .with_context(|| format!("writing {}", pub_path.display()))?;
    let retired_pub = with_suffix(&retired, ".pub");
    std::fs::write(&retired_pub, format!("{}\n", old.verifier()))
        .with_context(|| format!("writing {}", retired_pub.display()))?;
    if keep_retired {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&retired, std::fs::Permissions::from_mode(0o400))
            .with_context(|| format!("making {} read-only", retired.display()))?;
        Ok(retired)
    } else {
        destroy(&retired)?;
        Ok(retired_pub)
    }
}

/// Overwrites the key file at `path` with zeros, syncs it and removes it. (On a copy-on-write
/// or journaling file system the old blocks may survive on disk: the data dir's disk is to be
/// encrypted or destroyed with the machine, as for any key.)
fn destroy(path: &Path) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let len = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("making {} writable to destroy it", path.display()))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .with_context(|| format!("opening {} to destroy it", path.display()))?;
    f.write_all(&vec![0u8; len as usize])?;
    f.sync_all()?;
    drop(f);
    std::fs::remove_file(path).with_context(|| format!("removing {}", path.display()))?;
    sync_dir(path);
    Ok(())
}

/// Makes the renames and removals in `path`'s directory durable (best effort).
fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
}
