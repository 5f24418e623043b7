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
            TileSource::S3(s) => format!("s3://{}/{}", s.bucket.bucket, s.bucket.log_prefix),
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
    bucket: govledger_connectors::s3::S3Bucket,
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
        let source = crate::anchors::S3Source {
            bucket: bucket.to_owned(),
            prefix: prefix.trim_end_matches('/').to_owned(),
            ..conn.clone()
        };
        Ok(S3Tiles {
            rt: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?,
            bucket: crate::anchors::s3_bucket(&source, origin)?,
            notes: Default::default(),
        })
    }

    /// `checkpoint`: its newest version (the newest mirrored checkpoint); anything else: its
    /// oldest version (the one the mirror wrote, which retention keeps).
    fn read(&self, path: &str) -> Result<Vec<u8>> {
        let b = &self.bucket;
        let key = format!("{}{path}", b.log_prefix);
        self.rt.block_on(async {
            let ids = b.version_ids(&key).await.map_err(|e| anyhow!(e))?;
            let id = if path == "checkpoint" { ids.first() } else { ids.last() }
                .ok_or_else(|| anyhow!("s3://{}/{key} does not exist", b.bucket))?;
            if ids.len() > 1 && path != "checkpoint" {
                self.notes.lock().expect("lock poisoned").push(format!(
                    "s3://{}/{key} has {} versions: it was written over; the oldest (mirrored) one was read",
                    b.bucket,
                    ids.len()
                ));
            }
            b.get(&key, Some(id))
                .await
                .map_err(|e| anyhow!("s3://{}/{key}: {e}", b.bucket))
        })
    }
}
