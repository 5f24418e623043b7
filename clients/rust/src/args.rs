//! The `govledger` command line: every command, flag and default (clap derive).

use clap::{Parser, Subcommand};
use std::path::PathBuf;

pub use crate::arg_groups::*;

#[derive(Parser)]
#[command(
    name = "govledger",
    version,
    about = "Submit to and verify a govledger transparency log"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub tls: crate::http::TlsArgs,
}

#[derive(Subcommand)]
pub enum Command {
    /// Generate an Ed25519 signer key (mode 0600) and print its note verifier key.
    Keygen(KeygenCmd),
    /// Verify Merkle proofs offline (hashes as standard base64 or 64 hex characters).
    #[command(subcommand)]
    Proof(ProofCommand),
    /// Signed notes and checkpoints.
    #[command(subcommand)]
    Note(NoteCommand),
    /// Verify a receipt (C2SP tlog-proof text or a JSON receipt) offline against the log key.
    Verify(VerifyCmd),
    /// Submit an entry (or a batch) and print or save its receipt. Exit 1 if the server refuses.
    Submit(SubmitCmd),
    /// Sign and submit a release approval request (requested_by = the key's name).
    Request(RequestCmd),
    /// Sign and submit an approval or rejection of a request (approver = the key's name).
    Approve(ApproveCmd),
    /// Record a deployment (SUCCESS, FAILURE or ROLLBACK) against its approval request.
    DeployRecord(DeployRecordCmd),
    /// Record a model's lineage: hash its datasets and artifact, submit the lineage entry and
    /// write metadata.json beside the artifact. `lineage verify` checks files against the log.
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Lineage(LineageCmd),
    /// Follow a log: verify every checkpoint and entry, compare with anchors and witnesses,
    /// raise governance alerts (JSON lines on stdout). With --once: exit 0 without alerts, 1
    /// with alerts, 2 on errors.
    Monitor(MonitorCmd),
    /// The regulator's audit: replay every entry through the tiles, recompute every root,
    /// verify stored and anchored checkpoints, re-check approvals and deployments against the
    /// policy, and write report.json and report.html. Exit 0 without anomalies, 1 with (0 with
    /// --exit-zero-on-anomalies), 2 on errors.
    Audit(AuditCmd),
    /// Anchored checkpoints: read them back from every backend and verify them.
    #[command(subcommand)]
    Anchors(AnchorsCommand),
    /// GitHub pull-request reviews: have the log import them as approvals.
    #[command(subcommand)]
    Github(SyncCommand),
    /// ServiceNow change approvals: have the log import them as approvals.
    #[command(subcommand)]
    Servicenow(SyncCommand),
    /// A C2SP tlog-witness.
    #[command(subcommand)]
    Witness(WitnessCommand),
    /// Deploy gate: exit 0 only when the policy holds for the request; otherwise exit 1 with
    /// every failed rule listed (2 on usage or I/O errors). Trusts only the policy file.
    Gate(GateCmd),
    /// Print the SHA-256 fingerprint of each dataset (a file, or a directory's manifest), as
    /// recorded in lineage entries: `sha256:<hex>  PATH` per line.
    HashDataset(HashDatasetCmd),
    /// Load generator: throughput, latency percentiles, errors, and every receipt verified.
    Loadgen(LoadgenCmd),
}

/// Where the server is and how to authenticate.
#[derive(Subcommand)]
pub enum AnchorsCommand {
    /// Read every anchored checkpoint back from each backend given, verify its signature and
    /// its consistency with the log's current tree, check S3 retention, and report gaps against
    /// GET /v1/checkpoints. Exit 0 when all hold, 1 otherwise, 2 on usage or I/O errors.
    Verify(AnchorsVerifyCmd),
}

#[derive(Subcommand)]
pub enum SyncCommand {
    /// Ask the server to read the request's source now and append every new approval or
    /// rejection (each exactly once, however often sync runs); prints what it logged and skipped.
    Sync(SyncCmd),
}

#[derive(Subcommand)]
pub enum WitnessCommand {
    /// Serve POST /add-checkpoint and GET /<hex sha256(origin)>/checkpoint; prints the address
    /// and the witness's cosigner key (type 0x04) on start; SIGTERM or Ctrl-C stops it.
    Serve(WitnessServeCmd),
}

#[derive(Subcommand)]
pub enum LineageCommand {
    /// Recompute dataset and artifact fingerprints and compare them with the logged lineage
    /// entry (found through the index, proven by its inclusion proof); exit 1 listing every
    /// mismatch.
    Verify(LineageVerifyCmd),
}

#[derive(Subcommand)]
pub enum ProofCommand {
    /// Check that a leaf hash is at an index in a tree of a given size and root (RFC 9162 §2.1.3.2).
    VerifyInclusion(VerifyInclusionCmd),
    /// Check that the old tree is a prefix of the new one (RFC 9162 §2.1.4.2). Old size 0 is invalid.
    VerifyConsistency(VerifyConsistencyCmd),
}

#[derive(Subcommand)]
pub enum NoteCommand {
    /// Exit 0 if a signature by one of the keys verifies over the note (or checkpoint) in FILE.
    Verify(NoteVerifyCmd),
}

// The arguments of each `govledger` command.

#[derive(clap::Args)]
pub struct KeygenCmd {
    /// Key name: the log origin for a log key, a person's name for a personal key.
    #[arg(long)]
    pub name: String,
    /// Where to write the signer key (refuses to overwrite).
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(clap::Args)]
pub struct VerifyCmd {
    /// The receipt file (C2SP tlog-proof, JSON receipt, or a saved batch answer, every
    /// receipt of which is verified), or - for standard input.
    pub receipt: PathBuf,
    /// The log's note verifier key (name+keyid+base64).
    #[arg(long)]
    pub log_key: String,
    /// Witness cosigner keys to check (type 0x04); repeat per witness.
    #[arg(long = "witness-key")]
    pub witness_keys: Vec<String>,
    /// How many of the given witnesses must have cosigned (default: none).
    #[arg(long, default_value_t = 0)]
    pub witnesses_required: usize,
    /// Leaf hash, for tlog-proofs that carry no leaf bytes in `extra`; in a batch answer,
    /// the one entry to verify.
    #[arg(long)]
    pub leaf_hash: Option<String>,
    /// Follow the log's key rotations from --log-key (key_event entries, each checked
    /// against the receipt's tree) by asking this server; without it the receipt must be
    /// signed by --log-key itself.
    #[arg(long)]
    pub url: Option<String>,
}

#[derive(clap::Args)]
pub struct SubmitCmd {
    #[command(flatten)]
    pub server: ServerArgs,
    /// A full submission ({"kind", "entry_id", "body"} or {"entries": [...]}) or, with
    /// --kind, a bare body; - (the default) reads standard input.
    #[arg(default_value = "-")]
    pub input: PathBuf,
    /// Entry kind when the input is a bare body (audit, lineage, approval_request, ...).
    #[arg(long)]
    pub kind: Option<String>,
    /// Idempotency key when the input is a bare body: a retry returns the same entry.
    #[arg(long)]
    pub entry_id: Option<String>,
    /// Save the receipt to this file instead of printing it.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Ask for the C2SP tlog-proof text instead of the JSON receipt.
    #[arg(long)]
    pub text: bool,
    /// Verify the answer against this log key before printing it (the tlog-proof with
    /// --text, every receipt of a batch); exit 1 if one does not verify.
    #[arg(long)]
    pub log_key: Option<String>,
}

#[derive(clap::Args)]
pub struct RequestCmd {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Your signer key file (govledger keygen).
    #[arg(long)]
    pub key: PathBuf,
    /// metadata.json written by `govledger lineage`: model id, artifact digest, dataset
    /// digests and lineage hash default from it.
    #[arg(long)]
    pub metadata: Option<PathBuf>,
    #[arg(long, required_unless_present = "metadata")]
    pub model_id: Option<String>,
    /// The artifact file (hashed here) ...
    #[arg(long)]
    pub artifact: Option<PathBuf>,
    /// ... or its digest, sha256:<hex>.
    #[arg(long)]
    pub artifact_sha256: Option<String>,
    /// Dataset digests, sha256:<hex>; repeat per dataset.
    #[arg(long = "dataset-sha256")]
    pub dataset_sha256: Vec<String>,
    /// Leaf hash (hex) of the lineage entry.
    #[arg(long, required_unless_present = "metadata")]
    pub lineage: Option<String>,
    #[arg(long, default_value = "production")]
    pub environment: String,
    #[arg(long, default_value = "four-eyes-v1")]
    pub policy: String,
    /// GitHub pull request: OWNER/REPO, number and head commit.
    #[arg(long, requires_all = ["github_pr", "github_head_sha"])]
    pub github_repo: Option<String>,
    #[arg(long)]
    pub github_pr: Option<u64>,
    #[arg(long)]
    pub github_head_sha: Option<String>,
    /// ServiceNow change request number.
    #[arg(long)]
    pub servicenow_change: Option<String>,
    /// JSON file of performance metrics, signed in the statement (numbers that are not
    /// integers become decimal strings); the policy's `performance_metrics.*` thresholds
    /// read them.
    #[arg(long)]
    pub metrics: Option<PathBuf>,
    /// Save the receipt here instead of printing it.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct ApproveCmd {
    #[command(flatten)]
    pub server: ServerArgs,
    #[arg(long)]
    pub key: PathBuf,
    /// Leaf hash (hex) of the approval request.
    #[arg(long)]
    pub request: String,
    #[arg(long, value_parser = ["approve", "reject"])]
    pub decision: String,
    /// Your role (as registered on the server, e.g. risk).
    #[arg(long)]
    pub role: String,
    #[arg(long)]
    pub comment: Option<String>,
    /// The artifact digest you approve; default: the one the request names.
    #[arg(long)]
    pub artifact_sha256: Option<String>,
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct DeployRecordCmd {
    #[command(flatten)]
    pub server: ServerArgs,
    #[arg(long)]
    pub request: String,
    #[arg(long)]
    pub model_id: String,
    #[arg(long, value_parser = ["SUCCESS", "FAILURE", "ROLLBACK"])]
    pub status: String,
    #[arg(long, default_value = "production")]
    pub environment: String,
    #[arg(long)]
    pub executed_by: String,
    /// JSON object with free-form details.
    #[arg(long)]
    pub details: Option<String>,
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct LineageCmd {
    #[command(subcommand)]
    pub verify: Option<LineageCommand>,
    #[command(flatten)]
    pub record: Box<LineageRecord>,
}

#[derive(clap::Args)]
pub struct MonitorCmd {
    #[arg(long, default_value = "http://127.0.0.1:7800")]
    pub url: String,
    #[command(flatten)]
    pub tiles: StaticTiles,
    /// With --tiles-s3: the S3 endpoint (default AWS), region and path-style addressing.
    #[arg(long)]
    pub s3_endpoint: Option<String>,
    #[arg(long, default_value = "us-east-1")]
    pub s3_region: String,
    #[arg(long)]
    pub s3_path_style: bool,
    /// The log's note verifier key (pinned).
    #[arg(long)]
    pub log_key: String,
    /// Directory of the monitor's state (monitor.json), so that a restart resumes.
    #[arg(long)]
    pub state: PathBuf,
    /// Seconds between polls.
    #[arg(long, default_value_t = 60.0)]
    pub interval: f64,
    /// Poll once and exit.
    #[arg(long)]
    pub once: bool,
    /// Release policy: people, keys and quorum for the governance alerts.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// File of witness verifier keys (type 0x04), one per line.
    #[arg(long)]
    pub witness_keys: Option<PathBuf>,
    /// Alert when the newest witness cosignature is older than this many seconds.
    #[arg(long)]
    pub max_witness_age: Option<u64>,
    /// A local anchor directory to compare the served checkpoint with.
    #[arg(long)]
    pub anchor_dir: Option<PathBuf>,
    /// A witness's URL, asked directly for the checkpoint it last cosigned; repeat per
    /// witness.
    #[arg(long = "witness-url")]
    pub witness_urls: Vec<String>,
    /// POST every alert (JSON) to this URL.
    #[arg(long)]
    pub alert_webhook: Option<String>,
}

#[derive(clap::Args)]
pub struct AuditCmd {
    #[arg(long, default_value = "http://127.0.0.1:7800")]
    pub url: String,
    #[command(flatten)]
    pub tiles: StaticTiles,
    #[arg(long)]
    pub log_key: String,
    /// Report from this date (YYYY-MM-DD or RFC 3339), inclusive.
    #[arg(long)]
    pub from: Option<String>,
    /// Report until this date (YYYY-MM-DD or RFC 3339), exclusive.
    #[arg(long)]
    pub to: Option<String>,
    /// Release policy for re-checking approvals and deployments.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// A local anchor directory.
    #[arg(long)]
    pub anchor_dir: Option<PathBuf>,
    #[command(flatten)]
    pub remote: RemoteAnchors,
    /// Sign report.json's SHA-256 as a note with this key (report.json.sig).
    #[arg(long)]
    pub auditor_key: Option<PathBuf>,
    /// Output directory for report.json, report.html (and report.json.sig).
    #[arg(long)]
    pub out: PathBuf,
    /// Parallel downloads.
    #[arg(long, default_value_t = 4)]
    pub jobs: usize,
    /// Exit 0 when the report was written, anomalies or not (they are still printed and in
    /// report.json): for scheduled jobs that tell "report written" from failure (exit 2).
    #[arg(long)]
    pub exit_zero_on_anomalies: bool,
}

#[derive(clap::Args)]
pub struct GateCmd {
    /// The policy (config/policy.toml documents the format): log key, people, rules.
    #[arg(long)]
    pub policy: PathBuf,
    /// An approval bundle saved from GET /v1/approvals/{request}/bundle (- for stdin) ...
    #[arg(long, required_unless_present = "url")]
    pub bundle: Option<PathBuf>,
    /// ... or the server's URL: fetch the bundle (unless --bundle is given) and check with
    /// the index that it omits no approval or rejection.
    #[arg(long)]
    pub url: Option<String>,
    /// Leaf hash of the approval request (hex or base64).
    #[arg(long)]
    pub request: String,
    /// The artifact about to be deployed: its SHA-256 must be the approved one.
    #[arg(long)]
    pub artifact: Option<PathBuf>,
    /// Print the report as JSON ({"ok", "request", "policy", "checkpoint", "rules",
    /// "failed", "approvers", "decisions", "github_status", "github_check_run"}).
    #[arg(long)]
    pub json: bool,
    /// Decide as of this time instead of now (RFC 3339, a date at its midnight UTC, or Unix
    /// ms): approvals' age, the checkpoint's freshness and entry times are measured at it.
    #[arg(long)]
    pub at: Option<String>,
    /// Re-read every imported approval from GitHub or ServiceNow and refuse when the source
    /// no longer agrees (GITHUB_TOKEN or the GitHub App; SERVICENOW_CLIENT_ID and
    /// _CLIENT_SECRET for OAuth, or SERVICENOW_TOKEN, or SERVICENOW_USER/_PASSWORD).
    #[arg(long)]
    pub recheck_sources: bool,
    /// Publish the verdict as `govledger/four-eyes` on the request's head commit: a commit
    /// status with GITHUB_TOKEN, a check run with GitHub App authentication.
    #[arg(long)]
    pub github_status: bool,
    #[command(flatten)]
    pub sources: GateSources,
}

#[derive(clap::Args)]
pub struct HashDatasetCmd {
    /// Files or directories.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Print JSON: [{"path", "sha256", "method"}].
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct LoadgenCmd {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Concurrent clients.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Seconds to run.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Entries per request (1 = single submissions; >1 = batch submissions).
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Offered load in entries/s (open loop); without it each client sends back to back.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Log key to verify receipts with (default: the one /v1/log announces).
    #[arg(long)]
    pub log_key: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct AnchorsVerifyCmd {
    #[arg(long, default_value = "http://127.0.0.1:7800")]
    pub url: String,
    /// The log's note verifier key.
    #[arg(long)]
    pub log_key: String,
    /// The local anchor directory.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    #[command(flatten)]
    pub remote: RemoteAnchors,
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct SyncCmd {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Leaf hash of the approval request.
    #[arg(long)]
    pub request: String,
}

#[derive(clap::Args)]
pub struct WitnessServeCmd {
    /// The witness's signer key file (govledger keygen --name WITNESS-NAME).
    #[arg(long)]
    pub key: PathBuf,
    /// A log's note verifier key (its name is the origin); repeat per log. Give a log's old
    /// and new key together, oldest first, while it rotates its key (`govledgerd
    /// rotate-key`): checkpoints signed by either are cosigned until one signed by the newer
    /// key (the hand-over head) has been; from then on the older key alone is refused.
    #[arg(long = "log", required = true)]
    pub logs: Vec<String>,
    /// Directory of the persisted state (one file per log).
    #[arg(long)]
    pub state: PathBuf,
    #[arg(long, default_value = "127.0.0.1:7900")]
    pub listen: std::net::SocketAddr,
}

#[derive(clap::Args)]
pub struct LineageVerifyCmd {
    #[arg(long, default_value = "http://127.0.0.1:7800")]
    pub url: String,
    #[arg(long)]
    pub model_id: String,
    /// A particular lineage entry (leaf hash); default: the model's latest.
    #[arg(long)]
    pub lineage: Option<String>,
    /// NAME=PATH (or TYPE:NAME=PATH); default: the datasets metadata.json lists.
    #[arg(long = "dataset")]
    pub datasets: Vec<String>,
    #[arg(long)]
    pub artifact: Option<PathBuf>,
    /// metadata.json to take dataset paths from (default: beside --artifact).
    #[arg(long)]
    pub metadata: Option<PathBuf>,
    /// The log key the receipt must verify with (default: the one the server announces).
    #[arg(long)]
    pub log_key: Option<String>,
}

#[derive(clap::Args)]
pub struct VerifyInclusionCmd {
    #[arg(long)]
    pub leaf_hash: String,
    #[arg(long)]
    pub index: u64,
    #[arg(long)]
    pub size: u64,
    #[arg(long)]
    pub root: String,
    /// One proof hash, leaf sibling first; repeat in proof order; absent for an empty proof.
    #[arg(long = "proof")]
    pub proof: Vec<String>,
}

#[derive(clap::Args)]
pub struct VerifyConsistencyCmd {
    #[arg(long)]
    pub old_size: u64,
    #[arg(long)]
    pub new_size: u64,
    #[arg(long)]
    pub old_root: String,
    #[arg(long)]
    pub new_root: String,
    /// One proof hash; repeat in proof order; absent for an empty proof.
    #[arg(long = "proof")]
    pub proof: Vec<String>,
}

#[derive(clap::Args)]
pub struct NoteVerifyCmd {
    /// A note verifier key; repeat to accept several.
    #[arg(long = "key", required = true)]
    pub keys: Vec<String>,
    /// The signed note, or - for standard input.
    pub file: PathBuf,
}
