//! Server configuration: embedded defaults, an optional TOML file
//! (`config/govledger.toml` documents every key), then command-line flags, then environment
//! variables for secrets.

use anyhow::{Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Everything `govledgerd serve` needs. Field docs are the reference for the config file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Directory holding the sled database, `log.key` and `log.pub`.
    pub data_dir: PathBuf,
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// Log origin: the first checkpoint line and the log key's name.
    pub origin: String,
    /// Signer key file; default `<data_dir>/log.key`, generated on first start with mode 0600.
    /// The environment variable `GOVLEDGER_LOG_KEY` (a `PRIVATE+KEY+...` string) overrides it.
    pub key_file: Option<PathBuf>,
    /// sled page-cache size in MiB (bounds the store's memory use).
    pub cache_mb: u64,
    /// Group commit: the longest a submission waits for others to share its fsync, in ms.
    pub batch_interval_ms: u64,
    /// Group commit: the most entries committed in one group.
    pub max_batch: usize,
    /// Pending submissions the queue holds before answering 503 with Retry-After.
    pub queue_capacity: usize,
    /// Free space (MiB) the data dir's file system must keep: below it, submissions get 503
    /// `disk_full` and nothing is written or signed until space is freed (0: no reserve).
    pub min_free_mb: u64,
    /// Largest request body, in bytes (413 beyond).
    pub max_body_bytes: usize,
    /// Most entries in one batch submission.
    pub max_batch_entries: usize,
    /// Bearer tokens. Without any, only loopback clients may submit, as `anonymous`.
    pub tokens: Vec<TokenConfig>,
    /// Default per-client rate limit in entries per second (0: unlimited). (`rate_limit_per_s`
    /// is read as this too.)
    #[serde(alias = "rate_limit_per_s")]
    pub rate_per_s: f64,
    /// Default burst, in entries (at least the batch limit is sensible). (`rate_burst` is read
    /// as this too.)
    #[serde(alias = "rate_burst")]
    pub burst: f64,
    /// Default per-client quota in entries per UTC day (0: none; 429 `quota_exceeded` beyond).
    pub quota_per_day: u64,
    /// People who sign approval requests and approvals: name, roles and note verifier key.
    /// One key, one name.
    pub people: Vec<PersonConfig>,
    /// Release policy file (`config/policy.toml` documents the format): the server refuses
    /// approval requests that fail its pre-approval checks, registers its people beside
    /// `people`, and reports approval status against its rules. Default: two distinct approvers,
    /// lineage required, no thresholds.
    pub policy: Option<PathBuf>,
    /// Anchoring: where signed checkpoints leave the machine, and how often.
    pub anchors: AnchorsConfig,
    /// C2SP tlog-witnesses the log sends its checkpoint to at each anchoring round.
    pub witnesses: Vec<WitnessConfig>,
    /// GitHub: pull-request reviews as approvals (needs the `github` feature).
    pub github: Option<GithubConfig>,
    /// ServiceNow: change-request approvals as approvals.
    pub servicenow: Option<ServiceNowConfig>,
    /// TLS (and mutual TLS): without it the server speaks plain HTTP.
    pub tls: Option<TlsConfig>,
    /// Clients that authenticate with a TLS client certificate instead of a bearer token
    /// (needs `tls.client_ca`).
    pub certificates: Vec<CertificateClientConfig>,
    /// Connection limits and timeouts: slow or idle clients cannot hold connections.
    pub connections: ConnectionsConfig,
    /// What a reader may cost: list pages bounded in bytes, a server-wide budget of response
    /// memory, per-client read rates.
    pub reads: ReadsConfig,
    /// What a receipt means: `local` (the default), the group is fsynced here; `replicated`,
    /// it is also in the write-ahead topic of `[replication]`, acknowledged by Kafka with
    /// `acks=all`, before anything is signed or answered.
    pub durability: Durability,
    /// The write-ahead topic, for `durability = "replicated"` (needs the `kafka` feature).
    pub replication: Option<ReplicationConfig>,
    /// Regulations and the compliance tags that stand for them (`"MiFID II" = ["mifid2",
    /// "best-execution"]`): `GET /v1/summary` counts audit events by regulation with it. Tags
    /// match without regard to ASCII case.
    pub regulations: BTreeMap<String, Vec<String>>,
    /// Largest range `GET /v1/summary` reads, in entries (422 `range_too_large` beyond: narrow
    /// the range, or replay the whole log with `govledger audit`).
    pub max_summary_entries: u64,
}

/// What a receipt promises about where the entry is.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Fsynced on this machine's disk.
    #[default]
    Local,
    /// Fsynced here and acknowledged by the Kafka cluster (`acks=all`) in the write-ahead topic.
    Replicated,
}

/// The write-ahead topic of replicated durability. Production: a topic with one partition,
/// replication factor 3, `min.insync.replicas = 2`, retention longer than the WORM mirror's
/// worst lag (the entries not yet in the bucket are only there and on this disk).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicationConfig {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// The write-ahead topic (default `govledger.wal`); records go to its partition 0.
    #[serde(default = "default_wal_topic")]
    pub topic: String,
    /// How long one produce may wait for the cluster's acknowledgement before the group is
    /// refused with 503 `replication_unavailable` (ms).
    #[serde(default = "default_wal_timeout")]
    pub timeout_ms: u64,
    /// Extra librdkafka properties (e.g. security settings).
    #[serde(default)]
    pub properties: std::collections::BTreeMap<String, String>,
}

fn default_wal_topic() -> String {
    "govledger.wal".into()
}
fn default_wal_timeout() -> u64 {
    5_000
}

/// TLS with rustls. The PEM files are read at start and again on SIGHUP (a failed reload keeps
/// the previous certificate and logs why).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Certificate chain, PEM (the server's certificate first).
    pub cert: PathBuf,
    /// Private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificates (PEM) that sign client certificates: enables mutual TLS.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    /// With `client_ca`: `required` refuses connections without a valid client certificate;
    /// `optional` (default) lets bearer-token and read-only clients connect without one.
    #[serde(default)]
    pub client_auth: ClientAuth,
}

/// Whether a client certificate is required in the TLS handshake.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    #[default]
    Optional,
    Required,
}

/// A client known by its certificate subject.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateClientConfig {
    /// The certificate's subject as `ATTRIBUTE=value` pairs, e.g. `CN=risk-agent,O=Desk`,
    /// compared as a set: attribute order and spaces after commas do not matter.
    pub subject: String,
    /// The client name recorded as the submitter.
    pub name: String,
    /// Entry kinds this client may submit; empty means all.
    #[serde(default)]
    pub kinds: Vec<String>,
    #[serde(default)]
    pub rate_per_s: Option<f64>,
    #[serde(default)]
    pub burst: Option<f64>,
    #[serde(default)]
    pub quota_per_day: Option<u64>,
}

/// Bounds on reads: unauthenticated clients must not be able to hold the server's memory.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReadsConfig {
    /// Largest list page (`GET /v1/entries`), in bytes of answer: the page ends before the
    /// entry that would pass it (always at least one entry) and `next_cursor` continues there.
    pub max_response_bytes: usize,
    /// Memory, in MiB, that answers to reads may hold at once until their last byte is sent;
    /// an answer that does not fit gets 503 `overloaded` with `Retry-After`.
    pub response_budget_mb: u64,
    /// Reads per second per client (bearer token's client, else IP address); 0: unlimited
    /// (the default, so monitors, audits and benchmarks are not throttled). 429 `rate_limited`
    /// with `Retry-After` beyond. (`read_rate_per_s` is read as this too.)
    #[serde(alias = "read_rate_per_s")]
    pub rate_per_s: f64,
    /// Reads a client may make at once before the rate applies. (`read_burst` is read as
    /// this too.)
    #[serde(alias = "read_burst")]
    pub burst: f64,
}

impl Default for ReadsConfig {
    fn default() -> ReadsConfig {
        ReadsConfig {
            max_response_bytes: 4 << 20,
            response_budget_mb: 256,
            rate_per_s: 0.0,
            burst: 100.0,
        }
    }
}

/// Connection limits.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionsConfig {
    /// Open connections at most; beyond it a new connection gets 503 and is closed.
    pub max_connections: usize,
    /// Open connections per client IP address at most.
    pub max_per_ip: usize,
    /// A connection with no request in flight and no bytes moving for this long is closed (ms).
    pub idle_timeout_ms: u64,
    /// Request headers (and the TLS handshake) must arrive within this (ms).
    pub header_timeout_ms: u64,
    /// A request, body included, must be answered within this (ms); 408 beyond.
    pub request_timeout_ms: u64,
    /// Largest request head (request line and headers), in bytes; 431 beyond.
    pub max_header_bytes: usize,
    /// Most request headers; 431 beyond.
    pub max_headers: usize,
}

impl Default for ConnectionsConfig {
    fn default() -> ConnectionsConfig {
        ConnectionsConfig {
            max_connections: 1024,
            max_per_ip: 256,
            idle_timeout_ms: 60_000,
            header_timeout_ms: 10_000,
            request_timeout_ms: 30_000,
            max_header_bytes: 64 << 10,
            max_headers: 64,
        }
    }
}

/// The GitHub REST API, authenticated with a token from `token_env` (default `GITHUB_TOKEN`)
/// or, when `app_id` and `app_key` are set, as a GitHub App installation. Secrets are never
/// printed.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubConfig {
    /// API base URL: `https://api.github.com`, or `https://HOST/api/v3` for GitHub Enterprise.
    #[serde(default = "default_github_api")]
    pub api_url: String,
    /// Environment variable holding the token.
    #[serde(default = "default_github_env")]
    pub token_env: String,
    /// The GitHub App's id: authenticate as the App (with `app_key`) instead of the token.
    #[serde(default)]
    pub app_id: Option<u64>,
    /// The App's private key, the PEM file GitHub hands out (readable by the owner only).
    #[serde(default)]
    pub app_key: Option<PathBuf>,
    /// The App's installation to act as; by default the one on each request's repository.
    #[serde(default)]
    pub installation_id: Option<u64>,
}

impl Default for GithubConfig {
    fn default() -> Self {
        GithubConfig {
            api_url: default_github_api(),
            token_env: default_github_env(),
            app_id: None,
            app_key: None,
            installation_id: None,
        }
    }
}

fn default_github_api() -> String {
    "https://api.github.com".into()
}
fn default_github_env() -> String {
    "GITHUB_TOKEN".into()
}

/// A ServiceNow instance (Table API). Credentials, first that applies: OAuth with
/// `oauth_client_id` and the client secret in `oauth_secret_env` (default
/// `SERVICENOW_CLIENT_SECRET`), the password grant when `user` and `password_env` are set, else
/// client credentials, tokens renewed before they expire; an OAuth bearer token from
/// `token_env` (default `SERVICENOW_TOKEN`); basic auth from `user` and `password_env`
/// (default `SERVICENOW_PASSWORD`). Secrets are never printed.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceNowConfig {
    /// `https://INSTANCE.service-now.com`.
    pub instance_url: String,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default = "default_sn_password")]
    pub password_env: String,
    #[serde(default = "default_sn_token")]
    pub token_env: String,
    /// An OAuth application registry entry's client id: tokens from `/oauth_token.do`.
    #[serde(default)]
    pub oauth_client_id: Option<String>,
    /// Environment variable holding that client's secret.
    #[serde(default = "default_sn_secret")]
    pub oauth_secret_env: String,
}

impl Default for ServiceNowConfig {
    fn default() -> Self {
        ServiceNowConfig {
            instance_url: String::new(),
            user: None,
            password_env: default_sn_password(),
            token_env: default_sn_token(),
            oauth_client_id: None,
            oauth_secret_env: default_sn_secret(),
        }
    }
}

fn default_sn_secret() -> String {
    "SERVICENOW_CLIENT_SECRET".into()
}
fn default_sn_password() -> String {
    "SERVICENOW_PASSWORD".into()
}
fn default_sn_token() -> String {
    "SERVICENOW_TOKEN".into()
}

/// Anchoring settings (names and formats pinned in ledger-format SPEC.md §9).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnchorsConfig {
    /// An anchoring round every this many ms: the latest checkpoint is chosen (when the tree
    /// grew), published to every backend, and sent to every witness.
    pub interval_ms: u64,
    /// Longest wait between retries of a failing backend, in ms (backoff doubles from 500 ms).
    pub backoff_max_ms: u64,
    /// Local WORM directory: one read-only file per anchored checkpoint. Default
    /// `<data_dir>/anchors`; set `dir_enabled = false` to turn it off.
    pub dir: Option<PathBuf>,
    pub dir_enabled: bool,
    /// S3 Object Lock (needs the `s3` feature).
    pub s3: Option<S3Config>,
    /// Kafka (needs the `kafka` feature).
    pub kafka: Option<KafkaConfig>,
}

impl Default for AnchorsConfig {
    fn default() -> AnchorsConfig {
        AnchorsConfig {
            interval_ms: 60_000,
            backoff_max_ms: 60_000,
            dir: None,
            dir_enabled: true,
            s3: None,
            kafka: None,
        }
    }
}

/// An S3 bucket with Object Lock. Credentials come from the environment
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`), as the AWS SDK reads them.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    pub bucket: String,
    /// Object name prefix (default `govledger`).
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Endpoint URL for S3-compatible stores (default: AWS).
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default = "default_region")]
    pub region: String,
    /// Path-style addressing (`endpoint/bucket/key`), as most S3-compatible stores want.
    #[serde(default)]
    pub path_style: bool,
    /// COMPLIANCE retention of each object, in days (default 2,557: 7 years).
    #[serde(default = "default_retention")]
    pub retention_days: u32,
    /// The WORM mirror: every anchoring round also uploads the whole log (entry bundles, hash
    /// tiles, then the checkpoint) as C2SP tlog-tiles objects under
    /// `<prefix>/<hex sha256(origin)>/`, locked like the checkpoints (ledger-format SPEC.md §9).
    #[serde(default)]
    pub tiles: bool,
    /// With `tiles`: past this many published entries that the bucket does not hold yet,
    /// submissions get 503 `mirror_behind` with Retry-After (default: no bound).
    #[serde(default)]
    pub max_unmirrored_entries: Option<u64>,
}

fn default_prefix() -> String {
    "govledger".into()
}
fn default_region() -> String {
    "us-east-1".into()
}
fn default_retention() -> u32 {
    2557
}

/// A Kafka cluster: checkpoints to one topic and, optionally, every entry to another.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// Topic of checkpoints (key = origin).
    #[serde(default = "default_topic")]
    pub topic: String,
    /// Topic of every entry (key = index), when set.
    #[serde(default)]
    pub entries_topic: Option<String>,
    /// Extra librdkafka properties (e.g. security settings).
    #[serde(default)]
    pub properties: std::collections::BTreeMap<String, String>,
}

fn default_topic() -> String {
    "govledger.checkpoints".into()
}

/// A witness: its URL (the submission prefix) and its cosigner key.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessConfig {
    pub url: String,
    /// The witness's note verifier key (type 0x04, or 0x01 re-derived as a cosigner key).
    pub key: String,
}

/// A person who may request or approve releases.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonConfig {
    /// The name statements use (`requested_by`, `approver`).
    pub name: String,
    /// Their GitHub login: their approving pull-request reviews become approvals. One login
    /// (case-insensitive) belongs to one person; the server refuses to start otherwise.
    #[serde(default)]
    pub github: Option<String>,
    /// Their ServiceNow user name: their approved change approvals become approvals. One user
    /// name (case-insensitive) belongs to one person.
    #[serde(default)]
    pub servicenow: Option<String>,
    /// Roles (e.g. `risk`, `engineering`), for the deploy gate's policy.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Ed25519 note verifier key, as `govledger keygen` prints it.
    pub key: String,
}

/// A bearer token, stored as the SHA-256 of the token text (hex), and what it may do.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// The client name recorded as the submitter (printable ASCII without spaces).
    pub name: String,
    /// Hex SHA-256 of the token (`printf %s "$TOKEN" | sha256sum`).
    pub sha256: String,
    /// Entry kinds this client may submit (`audit`, `lineage`, ...); empty means all.
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Entries per second this client may submit (token bucket; 429 with Retry-After beyond).
    /// Default: the top-level `rate_per_s`.
    #[serde(default)]
    pub rate_per_s: Option<f64>,
    /// Entries it may submit at once (default: the top-level `burst`).
    #[serde(default)]
    pub burst: Option<f64>,
    /// Entries it may submit per UTC day (default: `quota_per_day`).
    #[serde(default)]
    pub quota_per_day: Option<u64>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            data_dir: PathBuf::from("govledger-data"),
            listen: "127.0.0.1:7800".parse().expect("valid literal address"),
            origin: "localhost/govledger".into(),
            key_file: None,
            cache_mb: 24,
            batch_interval_ms: 2,
            max_batch: 1024,
            queue_capacity: 65_536,
            min_free_mb: 64,
            max_body_bytes: 4 << 20,
            max_batch_entries: 1000,
            tokens: Vec::new(),
            rate_per_s: 0.0,
            burst: 2000.0,
            quota_per_day: 0,
            people: Vec::new(),
            policy: None,
            anchors: AnchorsConfig::default(),
            witnesses: Vec::new(),
            github: None,
            servicenow: None,
            tls: None,
            certificates: Vec::new(),
            connections: ConnectionsConfig::default(),
            reads: ReadsConfig::default(),
            durability: Durability::Local,
            replication: None,
            regulations: BTreeMap::new(),
            max_summary_entries: 5_000_000,
        }
    }
}

impl Config {
    /// Returns the defaults overlaid with the TOML file at `path`, if any.
    pub fn load(path: Option<&Path>) -> Result<Config> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        let cfg: Config =
            toml::from_str(&text).with_context(|| format!("parsing config {}", path.display()))?;
        cfg.check_values()?;
        Ok(cfg)
    }

    /// Returns an error naming the first value out of range or combination that cannot work
    /// (what needs parsing is checked where it is parsed, [`crate::settings::Settings::new`]).
    pub fn check_values(&self) -> Result<()> {
        ledger_format::note::check_key_name(&self.origin).context("origin")?;
        anyhow::ensure!(self.max_batch >= 1, "max_batch must be at least 1");
        anyhow::ensure!(
            self.queue_capacity >= 1,
            "queue_capacity must be at least 1"
        );
        anyhow::ensure!(
            self.max_batch_entries >= 1,
            "max_batch_entries must be at least 1"
        );
        anyhow::ensure!(
            self.certificates.is_empty()
                || self.tls.as_ref().is_some_and(|t| t.client_ca.is_some()),
            "certificate clients are configured, but tls.client_ca is not: no client certificate could be verified"
        );
        let c = &self.connections;
        anyhow::ensure!(
            c.max_connections >= 1 && c.max_per_ip >= 1,
            "connections.max_connections and max_per_ip must be at least 1"
        );
        anyhow::ensure!(
            c.max_header_bytes >= 8192,
            "connections.max_header_bytes must be at least 8192"
        );
        anyhow::ensure!(
            c.idle_timeout_ms >= 1 && c.header_timeout_ms >= 1 && c.request_timeout_ms >= 1,
            "connection timeouts must be at least 1 ms"
        );
        let r = &self.reads;
        anyhow::ensure!(
            r.max_response_bytes >= 64 << 10,
            "reads.max_response_bytes must be at least 65536 (one entry and its proof)"
        );
        anyhow::ensure!(
            r.response_budget_mb >= 1
                && (r.response_budget_mb << 20) as usize >= r.max_response_bytes,
            "reads.response_budget_mb must hold at least one page of reads.max_response_bytes"
        );
        anyhow::ensure!(
            r.rate_per_s >= 0.0 && r.burst >= 1.0,
            "reads.rate_per_s must be at least 0 and reads.burst at least 1"
        );
        anyhow::ensure!(
            self.anchors.interval_ms >= 10,
            "anchors.interval_ms must be at least 10"
        );
        if let Some(s3) = &self.anchors.s3 {
            anyhow::ensure!(
                s3.max_unmirrored_entries.is_none() || s3.tiles,
                "anchors.s3.max_unmirrored_entries bounds the WORM mirror's lag: it needs tiles = true"
            );
            anyhow::ensure!(
                s3.max_unmirrored_entries != Some(0),
                "anchors.s3.max_unmirrored_entries must be at least 1 (leave it out for no bound)"
            );
        }
        #[cfg(not(feature = "s3"))]
        anyhow::ensure!(
            self.anchors.s3.is_none(),
            "anchors.s3 is configured, but this govledgerd was built without the `s3` feature"
        );
        if let Some(g) = &self.github {
            anyhow::ensure!(
                g.app_id.is_some() == g.app_key.is_some(),
                "github: app_id and app_key go together (GitHub App authentication needs both)"
            );
        }
        #[cfg(not(feature = "github"))]
        anyhow::ensure!(
            self.github.is_none(),
            "github is configured, but this govledgerd was built without the `github` feature"
        );
        anyhow::ensure!(
            self.durability == Durability::Local || self.replication.is_some(),
            "durability = \"replicated\" needs a [replication] section (brokers, topic)"
        );
        if let Some(r) = &self.replication {
            anyhow::ensure!(
                r.timeout_ms >= 100,
                "replication.timeout_ms must be at least 100"
            );
        }
        #[cfg(not(feature = "kafka"))]
        anyhow::ensure!(
            self.durability == Durability::Local,
            "durability = \"replicated\" needs a govledgerd built with the `kafka` feature"
        );
        #[cfg(not(feature = "kafka"))]
        anyhow::ensure!(
            self.anchors.kafka.is_none(),
            "anchors.kafka is configured, but this govledgerd was built without the `kafka` feature"
        );
        Ok(())
    }

    /// Returns the signer key file path.
    pub fn key_path(&self) -> PathBuf {
        self.key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("log.key"))
    }
}

#[cfg(test)]
mod tests {
    use super::Config;

    #[test]
    fn one_name_per_setting_and_the_older_names_still_read() {
        let new: Config = toml::from_str(
            "rate_per_s = 5.0\nburst = 3.0\n[reads]\nrate_per_s = 2.0\nburst = 4.0\n",
        )
        .unwrap();
        let old: Config = toml::from_str(
            "rate_limit_per_s = 5.0\nrate_burst = 3.0\n[reads]\nread_rate_per_s = 2.0\nread_burst = 4.0\n",
        )
        .unwrap();
        for c in [new, old] {
            assert_eq!((c.rate_per_s, c.burst), (5.0, 3.0));
            assert_eq!((c.reads.rate_per_s, c.reads.burst), (2.0, 4.0));
        }
    }
}
