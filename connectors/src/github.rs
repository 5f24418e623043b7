//! The GitHub REST API, authenticated with a token or as a GitHub App installation.
//!
//! App authentication follows GitHub's documented flow: a JWT signed RS256 with the App's
//! private key (`iss` the App id, issued 60 s in the past, valid 9 minutes) authenticates as
//! the App; with it the installation on the repository is found (`GET
//! /repos/{owner}/{repo}/installation`, unless its id is configured) and an installation token
//! is created (`POST /app/installations/{id}/access_tokens`), which then authenticates the
//! calls. Installations and their tokens are kept (one exchange per installation until the
//! token nears its `expires_at`); [`GitHub::forget`] drops them after a failed call, so the
//! next call exchanges afresh. A token is read from its environment variable at each call,
//! so a rotated secret applies without a restart.
//!
//! Rate limits are recognised as GitHub documents them: 403 or 429 with
//! `x-ratelimit-remaining: 0` or a `retry-after` header.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::error::{with_retries, Error, Failure};

/// The name of the status or check run that carries the gate's verdict.
pub const CONTEXT: &str = "govledger/four-eyes";

/// Renew an installation token this long before GitHub says it expires.
const RENEW_BEFORE: Duration = Duration::from_secs(300);

/// How calls authenticate.
pub enum Auth {
    /// A personal, fine-grained or Actions token, read from this environment variable.
    Token { env: String },
    /// A GitHub App: its id, its private key, and the installation to act as (default: the
    /// one on each repository asked about).
    App {
        id: u64,
        key: jsonwebtoken::EncodingKey,
        installation: Option<u64>,
    },
}

impl Auth {
    /// Returns App authentication with the private key in `key` (the PEM file GitHub hands
    /// out), refusing a file that is not an RSA private key.
    pub fn app(id: u64, key: &Path, installation: Option<u64>) -> Result<Auth, Error> {
        let pem = std::fs::read(key).map_err(|e| {
            Error::new(
                Failure::Credentials,
                format!("reading the GitHub App key {}: {e}", key.display()),
            )
        })?;
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(&pem).map_err(|e| {
            Error::new(
                Failure::Credentials,
                format!(
                    "the GitHub App key {} is not an RSA private key in PEM ({e})",
                    key.display()
                ),
            )
        })?;
        Ok(Auth::App {
            id,
            key,
            installation,
        })
    }
}

/// JWT claims of a GitHub App.
#[derive(serde::Serialize)]
struct Claims {
    iat: u64,
    exp: u64,
    iss: String,
}

/// An installation token and when to renew it.
type Token = (String, Instant);

/// A GitHub API endpoint with its credentials.
pub struct GitHub {
    api: String,
    auth: Auth,
    http: reqwest::Client,
    /// The App's installation on each repository asked about.
    installations: Mutex<HashMap<String, u64>>,
    /// Each installation's token.
    tokens: Mutex<HashMap<u64, Token>>,
}

/// The verdict as published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    /// `success` or `failure`.
    pub state: String,
    /// The check run's id, when the verdict became a check run.
    pub check_run: Option<u64>,
}

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl GitHub {
    /// Returns a client of the API at `api` (`https://api.github.com`, or
    /// `https://HOST/api/v3` for GitHub Enterprise) making its calls with `http`.
    pub fn new(api: &str, auth: Auth, http: reqwest::Client) -> GitHub {
        GitHub {
            api: api.trim_end_matches('/').to_owned(),
            auth,
            http,
            installations: Default::default(),
            tokens: Default::default(),
        }
    }

    /// Returns true with App authentication (the gate's verdict is then a check run).
    pub fn is_app(&self) -> bool {
        matches!(self.auth, Auth::App { .. })
    }

    fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        bearer: &str,
    ) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.api))
            .bearer_auth(bearer)
            .header("accept", "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28")
            .header("user-agent", "govledger")
    }

    /// Sends `req`; returns the JSON of a successful answer, or the failure (`doing` says
    /// what was being done, for the message).
    async fn send(&self, req: reqwest::RequestBuilder, doing: &str) -> Result<Value, Error> {
        let r = req.send().await.map_err(|e| {
            Error::transient(
                Failure::Upstream,
                format!("GitHub: reaching {} {doing}: {e}", self.api),
            )
        })?;
        let status = r.status().as_u16();
        let limited = r
            .headers()
            .get("x-ratelimit-remaining")
            .is_some_and(|v| v.as_bytes() == b"0")
            || r.headers().contains_key("retry-after");
        let body: Value = r.json().await.unwrap_or(Value::Null);
        let msg = body["message"].as_str().unwrap_or_default();
        Err(match status {
            200..=299 => return Ok(body),
            401 => Error::new(
                Failure::Credentials,
                format!("GitHub rejected the credentials (401 {msg}) {doing}"),
            ),
            403 | 429 if limited => Error::transient(
                Failure::RateLimited,
                format!("GitHub rate limited {doing} ({status} {msg}); try again later"),
            ),
            404 => Error::new(
                Failure::NotFound,
                format!("GitHub: not found (404 {msg}) {doing}"),
            ),
            s if s >= 500 => Error::transient(
                Failure::Upstream,
                format!("GitHub answered {s} {msg} {doing}"),
            ),
            s => Error::new(
                Failure::Upstream,
                format!("GitHub answered {s} {msg} {doing}"),
            ),
        })
    }

    /// A JWT authenticating as the App.
    fn app_jwt(id: u64, key: &jsonwebtoken::EncodingKey) -> Result<String, Error> {
        let now = now_s();
        let claims = Claims {
            iat: now.saturating_sub(60),
            exp: now + 9 * 60,
            iss: id.to_string(),
        };
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
            &claims,
            key,
        )
        .map_err(|e| {
            Error::new(
                Failure::Credentials,
                format!("signing the GitHub App JWT: {e}"),
            )
        })
    }

    /// The bearer credential for calls on `repo` (OWNER/NAME).
    pub async fn bearer(&self, repo: &str) -> Result<String, Error> {
        let (id, key, configured) = match &self.auth {
            Auth::Token { env } => {
                return crate::env::var(env).ok_or_else(|| {
                    Error::new(
                        Failure::Credentials,
                        format!("GitHub: set {env} to a token, or use a GitHub App"),
                    )
                })
            }
            Auth::App {
                id,
                key,
                installation,
            } => (*id, key, *installation),
        };
        let known = configured.or_else(|| {
            let i = self.installations.lock().expect("lock poisoned");
            i.get(repo).copied()
        });
        if let Some(inst) = known {
            let tokens = self.tokens.lock().expect("lock poisoned");
            if let Some((t, _)) = tokens.get(&inst).filter(|(_, r)| Instant::now() < *r) {
                return Ok(t.clone());
            }
        }
        let jwt = Self::app_jwt(id, key)?;
        let installation = match known {
            Some(inst) => inst,
            None => {
                let path = format!("/repos/{repo}/installation");
                let doing = format!("finding the App's installation on {repo}");
                let v = with_retries(|| {
                    self.send(self.request(reqwest::Method::GET, &path, &jwt), &doing)
                })
                .await?;
                v["id"].as_u64().ok_or_else(|| {
                    Error::new(
                        Failure::Upstream,
                        format!("GitHub: the installation on {repo} has no id"),
                    )
                })?
            }
        };
        self.installations
            .lock()
            .expect("lock poisoned")
            .insert(repo.to_owned(), installation);
        let path = format!("/app/installations/{installation}/access_tokens");
        let doing = format!("creating an installation token for installation {installation}");
        let v = self
            .send(
                self.request(reqwest::Method::POST, &path, &jwt)
                    .json(&json!({})),
                &doing,
            )
            .await?;
        let token = v["token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                Error::new(
                    Failure::Upstream,
                    "GitHub: the installation token answer has no token",
                )
            })?
            .to_owned();
        let lifetime = v["expires_at"]
            .as_str()
            .and_then(ledger_format::schema::rfc3339_to_ms)
            .map_or(Duration::from_secs(3600), |ms| {
                Duration::from_secs((ms / 1000).saturating_sub(now_s()))
            });
        let renew = Instant::now() + lifetime.saturating_sub(RENEW_BEFORE);
        self.tokens
            .lock()
            .expect("lock poisoned")
            .insert(installation, (token.clone(), renew));
        Ok(token)
    }

    /// Drops what is kept for `repo` (its installation and that installation's token) after a
    /// failed call: the App may have been uninstalled or its token revoked.
    pub fn forget(&self, repo: &str) {
        let removed = self
            .installations
            .lock()
            .expect("lock poisoned")
            .remove(repo);
        let configured = match &self.auth {
            Auth::App { installation, .. } => *installation,
            Auth::Token { .. } => None,
        };
        if let Some(id) = removed.or(configured) {
            self.tokens.lock().expect("lock poisoned").remove(&id);
        }
    }

    /// GETs `path` for a call on `repo`, retrying transient failures; a failure forgets the
    /// repository's credentials ([`GitHub::forget`]).
    pub async fn get(&self, repo: &str, path: &str) -> Result<Value, Error> {
        let doing = format!("reading {path}");
        let result = with_retries(|| async {
            let bearer = self.bearer(repo).await?;
            self.send(self.request(reqwest::Method::GET, path, &bearer), &doing)
                .await
        })
        .await;
        if result.is_err() {
            self.forget(repo);
        }
        result
    }

    /// The review `id` of pull request `pr` on `repo`, or None when it does not exist.
    pub async fn review(&self, repo: &str, pr: &Value, id: &Value) -> Result<Option<Value>, Error> {
        match self
            .get(repo, &format!("/repos/{repo}/pulls/{pr}/reviews/{id}"))
            .await
        {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.failure == Failure::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Publishes the verdict on `sha` of `repo`: a check run with App authentication, a
    /// commit status with a token (a token cannot create check runs). `target` links to the
    /// approval bundle.
    pub async fn publish(
        &self,
        repo: &str,
        sha: &str,
        ok: bool,
        target: Option<String>,
        failed: &[String],
        completed_at: &str,
    ) -> Result<Published, Error> {
        let state = if ok { "success" } else { "failure" };
        let description = if ok {
            "four-eyes approval proven by the log".to_owned()
        } else {
            format!("refused: {}", failed.join(", "))
        };
        let (path, body) = if self.is_app() {
            let title = if ok {
                "four-eyes approval: passed"
            } else {
                "four-eyes approval: refused"
            };
            let mut body = json!({"name": CONTEXT, "head_sha": sha, "status": "completed",
                "conclusion": state, "completed_at": completed_at,
                "output": {"title": title, "summary": description}});
            if let Some(t) = target {
                body["details_url"] = t.into();
            }
            (format!("/repos/{repo}/check-runs"), body)
        } else {
            // A status description holds at most 140 characters.
            let short: String = description.chars().take(140).collect();
            let mut body = json!({"state": state, "context": CONTEXT, "description": short});
            if let Some(t) = target {
                body["target_url"] = t.into();
            }
            (format!("/repos/{repo}/statuses/{sha}"), body)
        };
        let bearer = self.bearer(repo).await?;
        let doing = format!("publishing the verdict on {repo}@{sha}");
        let v = self
            .send(
                self.request(reqwest::Method::POST, &path, &bearer)
                    .json(&body),
                &doing,
            )
            .await?;
        Ok(Published {
            state: state.to_owned(),
            check_run: self.is_app().then(|| v["id"].as_u64()).flatten(),
        })
    }
}
