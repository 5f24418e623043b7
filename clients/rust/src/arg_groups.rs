//! Argument groups that several `govledger` commands flatten in: the server to talk to, a
//! lineage record, the gate's approval sources, the anchors to read back.

use std::path::PathBuf;

#[derive(clap::Args)]
pub struct ServerArgs {
    /// Server base URL.
    #[arg(long, default_value = "http://127.0.0.1:7800")]
    pub url: String,
    /// Bearer token (or the GOVLEDGER_TOKEN environment variable); never printed.
    #[arg(long, env = "GOVLEDGER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

#[derive(clap::Args)]
pub struct LineageRecord {
    #[command(flatten)]
    pub server: ServerArgs,
    #[arg(long, required = true)]
    pub model_id: Option<String>,
    #[arg(long, default_value = "1")]
    pub model_version: String,
    #[arg(long)]
    pub model_name: Option<String>,
    #[arg(long)]
    pub model_type: Option<String>,
    /// Who trained the model (default: $USER).
    #[arg(long)]
    pub created_by: Option<String>,
    /// A dataset as TYPE:NAME=PATH (type training, validation or test; PATH a file or a
    /// directory); repeat per dataset.
    #[arg(long = "dataset", required = true)]
    pub datasets: Vec<String>,
    /// The trained model file.
    #[arg(long, required = true)]
    pub artifact: Option<PathBuf>,
    /// JSON file: validation metrics (the policy's thresholds read these).
    #[arg(long)]
    pub metrics: Option<PathBuf>,
    /// JSON file: training metrics.
    #[arg(long)]
    pub training_metrics: Option<PathBuf>,
    /// JSON file: training configuration.
    #[arg(long)]
    pub training_config: Option<PathBuf>,
    /// JSON file: hyperparameters.
    #[arg(long)]
    pub hyperparameters: Option<PathBuf>,
    /// JSON file: dependencies, name to version.
    #[arg(long)]
    pub dependencies: Option<PathBuf>,
    /// Code repository and commit.
    #[arg(long, requires = "code_commit")]
    pub code_repo: Option<String>,
    #[arg(long)]
    pub code_commit: Option<String>,
    /// Leaf hash of the lineage entry this model derives from.
    #[arg(long)]
    pub parent: Option<String>,
    /// Idempotency key: a retry returns the same entry.
    #[arg(long)]
    pub entry_id: Option<String>,
    /// Where to write metadata.json (default: beside the artifact).
    #[arg(long)]
    pub metadata: Option<PathBuf>,
    /// Verify the receipt against this log key.
    #[arg(long)]
    pub log_key: Option<String>,
}

/// Where the gate re-reads imported approvals and publishes its verdict.
#[derive(clap::Args)]
pub struct GateSources {
    /// Authenticate to GitHub as this App (its id) instead of with GITHUB_TOKEN; needs
    /// --github-app-key.
    #[arg(long, env = "GITHUB_APP_ID", requires = "github_app_key")]
    pub github_app_id: Option<u64>,
    /// The GitHub App's private key (the PEM file GitHub hands out).
    #[arg(long, env = "GITHUB_APP_KEY", requires = "github_app_id")]
    pub github_app_key: Option<PathBuf>,
    /// The App's installation to act as (default: the one on the request's repository).
    #[arg(long, env = "GITHUB_APP_INSTALLATION_ID")]
    pub github_app_installation: Option<u64>,
    /// GitHub API base URL (GitHub Enterprise: https://HOST/api/v3).
    #[arg(long, default_value = "https://api.github.com")]
    pub github_api: String,
    /// ServiceNow instance URL, for --recheck-sources.
    #[arg(long)]
    pub servicenow_url: Option<String>,
}

impl GateSources {
    pub fn sources(self) -> crate::gate::Sources {
        crate::gate::Sources {
            github_api: self.github_api,
            github_app: self
                .github_app_id
                .zip(self.github_app_key)
                .map(|(id, key)| crate::github::App {
                    id,
                    key,
                    installation: self.github_app_installation,
                }),
            servicenow_url: self.servicenow_url,
        }
    }
}

/// S3 and Kafka anchors to read back.
#[derive(clap::Args)]
pub struct RemoteAnchors {
    /// S3 bucket (credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY).
    #[arg(long)]
    pub s3_bucket: Option<String>,
    #[arg(long, default_value = "govledger")]
    pub s3_prefix: String,
    #[arg(long)]
    pub s3_endpoint: Option<String>,
    #[arg(long, default_value = "us-east-1")]
    pub s3_region: String,
    #[arg(long)]
    pub s3_path_style: bool,
    /// Every anchored version must be locked (COMPLIANCE) at least until this RFC 3339 time
    /// (default: now).
    #[arg(long)]
    pub s3_retain_until: Option<String>,
    /// Kafka bootstrap servers.
    #[arg(long)]
    pub kafka_brokers: Option<String>,
    #[arg(long, default_value = "govledger.checkpoints")]
    pub kafka_topic: String,
}

impl RemoteAnchors {
    pub fn sources(
        self,
    ) -> anyhow::Result<(
        Option<crate::anchors::S3Source>,
        Option<crate::anchors::KafkaSource>,
    )> {
        let retain_until = match &self.s3_retain_until {
            Some(t) => {
                (ledger_format::schema::rfc3339_to_ms(t)
                    .ok_or_else(|| anyhow::anyhow!("--s3-retain-until: not an RFC 3339 time"))?
                    / 1000) as i64
            }
            None => (crate::time::now_ms() / 1000) as i64,
        };
        Ok((
            self.s3_bucket.map(|bucket| crate::anchors::S3Source {
                bucket,
                prefix: self.s3_prefix,
                endpoint: self.s3_endpoint,
                region: self.s3_region,
                path_style: self.s3_path_style,
                retain_until,
            }),
            self.kafka_brokers
                .map(|brokers| crate::anchors::KafkaSource {
                    brokers,
                    topic: self.kafka_topic,
                }),
        ))
    }
}

/// A date (YYYY-MM-DD, UTC midnight) or an RFC 3339 time, as Unix ms.
pub fn parse_date(flag: &str, s: &str) -> anyhow::Result<u64> {
    ledger_format::schema::date_or_time_to_ms(s).ok_or_else(|| {
        anyhow::anyhow!("--{flag}: {s:?} is not a date (YYYY-MM-DD) or an RFC 3339 time")
    })
}

/// Read the log from static tlog-tiles instead of a govledgerd (`--url` is then not used).
#[derive(clap::Args)]
pub struct StaticTiles {
    /// Any static tlog-tiles base URL: the WORM bucket's endpoint, a CDN, an export directory
    /// served by any web server.
    #[arg(long, conflicts_with = "tiles_s3")]
    pub tiles_url: Option<String>,
    /// The WORM mirror in S3: BUCKET/PREFIX (the `[anchors.s3]` bucket and prefix); connection
    /// from --s3-endpoint, --s3-region, --s3-path-style; credentials from AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY. The oldest version of each tile and bundle is read.
    #[arg(long)]
    pub tiles_s3: Option<String>,
}

impl StaticTiles {
    /// Returns the source, when one was given: `(endpoint, region, path_style)` connect to S3;
    /// `origin` is the log key's name.
    pub fn source(
        &self,
        (endpoint, region, path_style): (Option<String>, String, bool),
        origin: &str,
    ) -> anyhow::Result<Option<crate::tiles::TileSource>> {
        if let Some(u) = &self.tiles_url {
            return Ok(Some(crate::tiles::TileSource::url(u)?));
        }
        let Some(bp) = &self.tiles_s3 else {
            return Ok(None);
        };
        #[cfg(feature = "s3")]
        {
            let conn = crate::anchors::S3Source {
                bucket: String::new(),
                prefix: String::new(),
                endpoint,
                region,
                path_style,
                retain_until: 0,
            };
            Ok(Some(crate::tiles::TileSource::S3(
                crate::tiles::S3Tiles::open(bp, origin, &conn)?,
            )))
        }
        #[cfg(not(feature = "s3"))]
        {
            let _ = (bp, endpoint, region, path_style, origin);
            anyhow::bail!("--tiles-s3: this govledger was built without the `s3` feature")
        }
    }
}
