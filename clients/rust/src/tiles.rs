//! Where readers (`audit`, `monitor`) get a log's C2SP tlog-tiles objects: a govledgerd, any
//! static tlog-tiles base URL (the WORM bucket's endpoint, a CDN, an export directory behind
//! any web server), or the WORM mirror read through the S3 API (`--tiles-s3 BUCKET/PREFIX`),
//! where a tile's or bundle's oldest version is the mirrored one and a key with more than one
//! version is reported.

use anyhow::{anyhow, Context, Result};

/// A source of `checkpoint`, `tile/...` and `tile/entries/...`.
pub enum TileSource {
    /// A govledgerd or a static tlog-tiles base URL.
    Url {
        base: String,
        client: reqwest::blocking::Client,
    },
    /// The WORM mirror in an S3 bucket.
    #[cfg(feature = "s3")]
    S3(S3Tiles),
}

impl TileSource {
    /// A base URL (`https://host/prefix`, `http://127.0.0.1:7800`).
    pub fn url(base: &str) -> Result<TileSource> {
        Ok(TileSource::Url {
            base: base.trim_end_matches('/').to_owned(),
            client: crate::http::blocking_builder()
                .timeout(std::time::Duration::from_secs(120))
                .build()?,
        })
    }

    /// Where it is, for reports.
    pub fn describe(&self) -> String {
        match self {
            TileSource::Url { base, .. } => base.clone(),
            #[cfg(feature = "s3")]
            TileSource::S3(s) => format!("s3://{}/{}", s.bucket, s.prefix),
        }
    }

    /// Returns the object at `path` (`checkpoint` or `tile/...`).
    pub fn bytes(&self, path: &str) -> Result<Vec<u8>> {
        match self {
            TileSource::Url { base, client } => {
                use std::io::Read;
                let url = format!("{base}/{path}");
                let limit = max_bytes(path);
                let mut out = Vec::new();
                client
                    .get(&url)
                    .send()
                    .with_context(|| format!("reaching {url}"))?
                    .error_for_status()
                    .with_context(|| format!("GET {url}"))?
                    .take(limit + 1)
                    .read_to_end(&mut out)
                    .with_context(|| format!("reading {url}"))?;
                anyhow::ensure!(
                    out.len() as u64 <= limit,
                    "{url}: more than {limit} bytes, larger than any {path} can be"
                );
                Ok(out)
            }
            #[cfg(feature = "s3")]
            TileSource::S3(s) => s.read(path),
        }
    }

    /// Returns, once, what the source noticed while it was read (objects written over).
    pub fn take_notes(&self) -> Vec<String> {
        match self {
            TileSource::Url { .. } => Vec::new(),
            #[cfg(feature = "s3")]
            TileSource::S3(s) => std::mem::take(&mut *s.notes.lock().expect("lock poisoned")),
        }
    }
}

/// The most bytes the object at `path` can hold: a tile 256 hashes, a bundle 256 framed
/// entries of at most 65,535 bytes, a checkpoint a small note.
fn max_bytes(path: &str) -> u64 {
    if path.starts_with("tile/entries/") {
        256 * (2 + 65_535)
    } else if path.starts_with("tile/") {
        256 * 32
    } else {
        1 << 20
    }
}

/// The WORM mirror of one log in a bucket.
#[cfg(feature = "s3")]
pub struct S3Tiles {
    rt: tokio::runtime::Runtime,
    client: aws_sdk_s3::Client,
    bucket: String,
    /// `<prefix>/<hex sha256(origin)>/`.
    prefix: String,
    notes: std::sync::Mutex<Vec<String>>,
}

#[cfg(feature = "s3")]
impl S3Tiles {
    /// The mirror of `origin` under `bucket_prefix` (`BUCKET/PREFIX`, the `[anchors.s3]`
    /// bucket and prefix), with the connection of `conn`.
    pub fn open(
        bucket_prefix: &str,
        origin: &str,
        conn: &crate::anchors::S3Source,
    ) -> Result<S3Tiles> {
        let (bucket, prefix) = bucket_prefix.split_once('/').unwrap_or((bucket_prefix, ""));
        anyhow::ensure!(!bucket.is_empty(), "--tiles-s3 BUCKET/PREFIX: no bucket");
        Ok(S3Tiles {
            rt: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?,
            client: crate::anchors::s3_client(conn)?,
            bucket: bucket.to_owned(),
            prefix: ledger_format::anchor::s3_log_prefix(prefix.trim_end_matches('/'), origin),
            notes: Default::default(),
        })
    }

    /// `checkpoint`: its newest version (the newest mirrored checkpoint); anything else: its
    /// oldest version (the one the mirror wrote, which retention keeps).
    fn read(&self, path: &str) -> Result<Vec<u8>> {
        use aws_sdk_s3::error::DisplayErrorContext;
        let key = format!("{}{path}", self.prefix);
        self.rt.block_on(async {
            let mut ids = Vec::new();
            let (mut key_marker, mut version_marker) = (None, None);
            loop {
                let r = self
                    .client
                    .list_object_versions()
                    .bucket(&self.bucket)
                    .prefix(&key)
                    .set_key_marker(key_marker)
                    .set_version_id_marker(version_marker)
                    .send()
                    .await
                    .map_err(|e| anyhow!("listing s3://{}/{key}: {}", self.bucket, DisplayErrorContext(&e)))?;
                // Newest first; other keys that start with this one come after it.
                ids.extend(
                    r.versions()
                        .iter()
                        .filter(|v| v.key() == Some(key.as_str()))
                        .filter_map(|v| v.version_id().map(str::to_owned)),
                );
                let past = r.versions().iter().any(|v| v.key() != Some(key.as_str()));
                if past || r.is_truncated() != Some(true) {
                    break;
                }
                key_marker = r.next_key_marker().map(str::to_owned);
                version_marker = r.next_version_id_marker().map(str::to_owned);
            }
            let id = if path == "checkpoint" { ids.first() } else { ids.last() }
                .ok_or_else(|| anyhow!("s3://{}/{key} does not exist", self.bucket))?;
            if ids.len() > 1 && path != "checkpoint" {
                self.notes.lock().expect("lock poisoned").push(format!(
                    "s3://{}/{key} has {} versions: it was written over; the oldest (mirrored) one was read",
                    self.bucket,
                    ids.len()
                ));
            }
            let obj = self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(&key)
                .version_id(id)
                .send()
                .await
                .map_err(|e| anyhow!("reading s3://{}/{key}: {}", self.bucket, DisplayErrorContext(&e)))?;
            Ok(obj
                .body
                .collect()
                .await
                .map_err(|e| anyhow!("reading s3://{}/{key}: {e}", self.bucket))?
                .into_bytes()
                .to_vec())
        })
    }
}
