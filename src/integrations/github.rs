//! GitHub (octocrab): a pull request's description (its `body`, which must name the request:
//! `super::binding`) and reviews. An APPROVED review on the head commit the request names, by
//! a login mapped to a registered person, is an approval; CHANGES_REQUESTED is a rejection;
//! DISMISSED, COMMENTED, PENDING, reviews on other commits (stale) and reviews whose id, login
//! or time is not plain are skipped. The repository, number and head commit are checked
//! before they go into a URL (`check_target`), also for requests logged before the schema
//! refused unsafe ones.
//!
//! Authentication: a token from the environment, or a GitHub App (`app_id`, `app_key`): a JWT
//! signed with the App's key finds the installation on the repository (or takes the
//! configured one) and octocrab exchanges it for an installation token.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{json, Value};

use super::{is_account, with_retries, Decisions, Imported, Mapping, Skipped, SourceError};
use crate::config::GithubConfig;

/// Reviews per page (GitHub's maximum).
const PAGE: usize = 100;

/// The GitHub API as configured.
pub struct GitHub {
    api: String,
    token_env: String,
    app: Option<App>,
    /// The App's installation on each repository asked about, and a client per installation
    /// (octocrab keeps its installation token and renews it when it expires): one token
    /// exchange per installation and hour, not per sync.
    installations: std::sync::Mutex<HashMap<String, octocrab::models::InstallationId>>,
    clients: std::sync::Mutex<HashMap<octocrab::models::InstallationId, Arc<octocrab::Octocrab>>>,
}

/// A GitHub App's credentials.
struct App {
    id: octocrab::models::AppId,
    key: jsonwebtoken::EncodingKey,
    installation: Option<octocrab::models::InstallationId>,
}

fn classify(e: octocrab::Error) -> (bool, SourceError) {
    match e {
        octocrab::Error::GitHub { source, .. } => {
            let status = source.status_code.as_u16();
            let msg = source.message.clone();
            match status {
                401 => (
                    false,
                    SourceError::new(
                        502,
                        format!("github: the API rejected the credentials (401 {msg})"),
                    ),
                ),
                403 | 429 if msg.to_lowercase().contains("rate limit") => (
                    true,
                    SourceError::new(503, format!("github: rate limited ({status} {msg})")),
                ),
                404 => (
                    false,
                    SourceError::new(404, format!("github: not found (404 {msg})")),
                ),
                s if s >= 500 => (true, SourceError::new(502, format!("github: {s} {msg}"))),
                s => (false, SourceError::new(502, format!("github: {s} {msg}"))),
            }
        }
        other => (true, SourceError::new(502, format!("github: {other}"))),
    }
}

impl GitHub {
    /// Reads the App's key, if one is configured: a key that is not an RSA PEM stops the
    /// start.
    pub fn new(cfg: &GithubConfig) -> anyhow::Result<GitHub> {
        let app = match (cfg.app_id, &cfg.app_key) {
            (Some(id), Some(path)) => {
                let pem = std::fs::read(path).map_err(|e| {
                    anyhow::anyhow!("github: reading the App key {}: {e}", path.display())
                })?;
                let key = jsonwebtoken::EncodingKey::from_rsa_pem(&pem).map_err(|e| {
                    anyhow::anyhow!(
                        "github: the App key {} is not an RSA private key in PEM ({e})",
                        path.display()
                    )
                })?;
                Some(App {
                    id: octocrab::models::AppId(id),
                    key,
                    installation: cfg.installation_id.map(octocrab::models::InstallationId),
                })
            }
            _ => None,
        };
        Ok(GitHub {
            api: cfg.api_url.trim_end_matches('/').to_owned(),
            token_env: cfg.token_env.clone(),
            app,
            installations: Default::default(),
            clients: Default::default(),
        })
    }

    /// A client for calls on `repo` (OWNER/NAME): with the token, or as the App's installation
    /// on the repository.
    async fn client(&self, repo: &str) -> Result<Arc<octocrab::Octocrab>, SourceError> {
        // With several rustls providers compiled in (ring here, aws-lc-rs from the S3 SDK) none
        // is the default; choose ring once for the process (an error means one is already set).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let builder = octocrab::Octocrab::builder()
            .base_uri(self.api.as_str())
            .map_err(|e| SourceError::new(500, format!("github: api_url {}: {e}", self.api)))?;
        let Some(app) = &self.app else {
            let token = std::env::var(&self.token_env)
                .ok()
                .filter(|t| !t.is_empty())
                .ok_or_else(|| {
                    SourceError::new(
                        502,
                        format!(
                            "github: set {} to a token, or configure app_id and app_key",
                            self.token_env
                        ),
                    )
                })?;
            return builder
                .personal_token(token)
                .build()
                .map(Arc::new)
                .map_err(|e| SourceError::new(500, format!("github: {e}")));
        };
        let known = app.installation.or_else(|| {
            self.installations
                .lock()
                .expect("lock poisoned")
                .get(repo)
                .copied()
        });
        if let Some(c) = known.and_then(|id| {
            self.clients
                .lock()
                .expect("lock poisoned")
                .get(&id)
                .cloned()
        }) {
            return Ok(c);
        }
        let as_app = builder
            .app(app.id, app.key.clone())
            .build()
            .map_err(|e| SourceError::new(500, format!("github: {e}")))?;
        let installation = match known {
            Some(id) => id,
            None => {
                let (owner, name) = repo.split_once('/').unwrap_or((repo, ""));
                with_retries(|| async {
                    as_app
                        .apps()
                        .get_repository_installation(owner, name)
                        .await
                        .map_err(classify)
                })
                .await
                .map_err(|e| {
                    SourceError::new(
                        e.status,
                        format!("{} (finding the App's installation on {repo})", e.message),
                    )
                })?
                .id
            }
        };
        self.installations
            .lock()
            .expect("lock poisoned")
            .insert(repo.to_owned(), installation);
        let client = Arc::new(
            as_app
                .installation(installation)
                .map_err(|e| SourceError::new(500, format!("github: {e}")))?,
        );
        Ok(self
            .clients
            .lock()
            .expect("lock poisoned")
            .entry(installation)
            .or_insert(client)
            .clone())
    }

    /// Drops the cached installation client of `repo` after a failed call (the App may have been
    /// uninstalled, its token revoked): the next call exchanges a new token.
    fn forget(&self, repo: &str) {
        if let Some(id) = self
            .installations
            .lock()
            .expect("lock poisoned")
            .remove(repo)
        {
            self.clients.lock().expect("lock poisoned").remove(&id);
        }
    }

    /// Reads the description and the reviews of `repo` (OWNER/NAME) pull request `pr`, against
    /// `head_sha`; a target that is not plain (`check_target`) is refused (400) before any
    /// call.
    pub async fn decisions(
        &self,
        repo: &str,
        pr: u64,
        head_sha: &str,
        who: &Mapping,
    ) -> Result<Decisions, SourceError> {
        check_target(repo, pr, head_sha).map_err(|why| SourceError::new(400, why))?;
        let oc = self.client(repo).await?;
        let route = format!("/repos/{repo}/pulls/{pr}");
        let pull: Value =
            with_retries(|| async { oc.get(&route, None::<&()>).await.map_err(classify) })
                .await
                .inspect_err(|_| self.forget(repo))?;
        let description = pull["body"].as_str().unwrap_or_default().to_owned();
        let mut reviews: Vec<Value> = Vec::new();
        for page in 1.. {
            let route = format!("/repos/{repo}/pulls/{pr}/reviews?per_page={PAGE}&page={page}");
            let batch: Vec<Value> =
                with_retries(|| async { oc.get(&route, None::<&()>).await.map_err(classify) })
                    .await
                    .inspect_err(|_| self.forget(repo))?;
            let n = batch.len();
            reviews.extend(batch);
            if n < PAGE {
                break;
            }
        }
        let (mut out, mut skipped) = (Vec::new(), Vec::new());
        for r in reviews {
            let review_id = r["id"].as_u64().filter(|i| *i >= 1);
            let id = review_id.map(|i| i.to_string()).unwrap_or_else(|| {
                let raw = r["id"].to_string();
                raw.chars().take(64).collect()
            });
            let login = r["user"]["login"].as_str().unwrap_or_default().to_owned();
            let state = r["state"].as_str().unwrap_or_default().to_owned();
            let commit = r["commit_id"].as_str().unwrap_or_default().to_owned();
            let skip = |reason: String| Skipped {
                source: "github",
                id: id.clone(),
                reason,
            };
            if review_id.is_none() {
                skipped.push(skip("the review has no id (a positive integer)".into()));
                continue;
            }
            let decision = match state.as_str() {
                "APPROVED" => "approve",
                "CHANGES_REQUESTED" => "reject",
                other => {
                    skipped.push(skip(format!("review state {other}")));
                    continue;
                }
            };
            if commit != head_sha {
                skipped.push(skip(format!(
                    "stale: on commit {commit}, the request names {head_sha}"
                )));
                continue;
            }
            if !is_account(&login) {
                skipped.push(skip(format!("the reviewer's login {login:?} is not plain")));
                continue;
            }
            let Some(person) = who.github_person(&login) else {
                skipped.push(skip(format!(
                    "{login:?} is not mapped to a registered approver"
                )));
                continue;
            };
            let submitted = r["submitted_at"].as_str().unwrap_or_default().to_owned();
            if !ledger_format::schema::is_rfc3339(&submitted) || !submitted.ends_with('Z') {
                skipped.push(skip(format!(
                    "submitted_at {submitted:?} is not an RFC 3339 UTC time"
                )));
                continue;
            }
            out.push(Imported {
                source: "github",
                id: id.clone(),
                approver: person.clone(),
                decision,
                decided_at: submitted.clone(),
                evidence: json!({"review_id": r["id"], "reviewer": login, "commit_sha": commit, "submitted_at": submitted, "state": state}),
            });
        }
        Ok(Decisions {
            description,
            imported: out,
            skipped,
        })
    }
}

/// Checks a request's pull request before it goes into a URL path: `repo` OWNER/NAME in a
/// plain charset, `pr` at least 1, `head_sha` a commit SHA (what the schema has required since
/// 4ee4af9; requests logged before may hold anything).
pub fn check_target(repo: &str, pr: u64, head_sha: &str) -> Result<(), String> {
    use ledger_format::schema::{is_commit_sha, is_github_repo};
    if !is_github_repo(repo) {
        return Err(format!(
            "github: the request's repo {repo:?} is not OWNER/NAME (letters, digits, '.', '-', '_')"
        ));
    }
    if pr == 0 || pr > u64::from(u32::MAX) {
        return Err(format!(
            "github: the request's pr {pr} is not a pull request number"
        ));
    }
    if !is_commit_sha(head_sha) {
        return Err(format!(
            "github: the request's head_sha {head_sha:?} is not a commit SHA (40 or 64 lowercase hex)"
        ));
    }
    Ok(())
}
