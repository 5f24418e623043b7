//! GitHub (octocrab): a pull request's reviews. An APPROVED review on the head commit the
//! request names, by a login mapped to a registered person, is an approval; CHANGES_REQUESTED
//! is a rejection; DISMISSED, COMMENTED, PENDING and reviews on other commits (stale) are
//! skipped.
//!
//! Authentication: a token from the environment, or a GitHub App (`app_id`, `app_key`): a JWT
//! signed with the App's key finds the installation on the repository (or takes the
//! configured one) and octocrab exchanges it for an installation token.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{json, Value};

use super::{with_retries, Imported, Mapping, Skipped, SourceError};
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
        let known = app
            .installation
            .or_else(|| self.installations.lock().unwrap().get(repo).copied());
        if let Some(c) = known.and_then(|id| self.clients.lock().unwrap().get(&id).cloned()) {
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
            .unwrap()
            .insert(repo.to_owned(), installation);
        let client = Arc::new(
            as_app
                .installation(installation)
                .map_err(|e| SourceError::new(500, format!("github: {e}")))?,
        );
        Ok(self
            .clients
            .lock()
            .unwrap()
            .entry(installation)
            .or_insert(client)
            .clone())
    }

    /// Drops the cached installation client of `repo` after a failed call (the App may have been
    /// uninstalled, its token revoked): the next call exchanges a new token.
    fn forget(&self, repo: &str) {
        if let Some(id) = self.installations.lock().unwrap().remove(repo) {
            self.clients.lock().unwrap().remove(&id);
        }
    }

    /// Reads the reviews of `repo` (OWNER/NAME) pull request `pr`, against `head_sha`.
    pub async fn decisions(
        &self,
        repo: &str,
        pr: u64,
        head_sha: &str,
        who: &Mapping,
    ) -> Result<(Vec<Imported>, Vec<Skipped>), SourceError> {
        let oc = self.client(repo).await?;
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
            let id = r["id"].as_u64().map(|i| i.to_string()).unwrap_or_default();
            let login = r["user"]["login"].as_str().unwrap_or_default().to_owned();
            let state = r["state"].as_str().unwrap_or_default().to_owned();
            let commit = r["commit_id"].as_str().unwrap_or_default().to_owned();
            let skip = |reason: String| Skipped {
                source: "github",
                id: id.clone(),
                reason,
            };
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
            let Some(person) = who.github.get(&login.to_lowercase()) else {
                skipped.push(skip(format!(
                    "{login:?} is not mapped to a registered approver"
                )));
                continue;
            };
            let submitted = r["submitted_at"].as_str().unwrap_or_default().to_owned();
            if !ledger_format::schema::is_rfc3339(&submitted) {
                skipped.push(skip(format!("submitted_at {submitted:?} is not a time")));
                continue;
            }
            out.push(Imported {
                source: "github",
                id: id.clone(),
                approver: person.clone(),
                decision,
                signed_at: submitted.clone(),
                evidence: json!({"review_id": r["id"], "reviewer": login, "commit_sha": commit, "submitted_at": submitted, "state": state}),
            });
        }
        Ok((out, skipped))
    }
}
