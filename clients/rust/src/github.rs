//! The gate's GitHub calls: re-reading reviews and publishing the verdict, authenticated with a
//! token (`GITHUB_TOKEN`) or as a GitHub App installation.
//!
//! App authentication follows GitHub's documented flow: a JWT signed RS256 with the App's
//! private key (`iss` the App id, issued 60 s in the past, valid 9 minutes) authenticates as
//! the App; with it the installation on the repository is found (`GET
//! /repos/{owner}/{repo}/installation`, unless its id is given) and an installation token is
//! created (`POST /app/installations/{id}/access_tokens`), which then authenticates the calls.
//! With App authentication the verdict is a check run; with a token, a commit status (a token
//! cannot create check runs). Secrets are never printed.

use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

/// The name of the status or check run that carries the gate's verdict.
pub const CONTEXT: &str = "govledger/four-eyes";

/// A GitHub App: its id, its private key (PEM file, as GitHub hands it out) and optionally the
/// installation to act as.
#[derive(Clone, Debug)]
pub struct App {
    pub id: u64,
    pub key: PathBuf,
    pub installation: Option<u64>,
}

/// How the gate authenticates to GitHub.
#[derive(Clone, Debug)]
pub enum Auth {
    /// A personal, fine-grained or Actions token.
    Token(String),
    App(App),
}

impl Auth {
    /// The App when `app` is given, else `GITHUB_TOKEN` from the environment.
    pub fn resolve(app: Option<&App>) -> Result<Auth> {
        if let Some(a) = app {
            return Ok(Auth::App(a.clone()));
        }
        std::env::var("GITHUB_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())
            .map(Auth::Token)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "set GITHUB_TOKEN, or GITHUB_APP_ID and GITHUB_APP_KEY, to reach GitHub"
                )
            })
    }
}

/// The verdict as published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    /// `success` or `failure`.
    pub state: String,
    /// The check run's id, when the verdict became a check run.
    pub check_run: Option<u64>,
}

/// A GitHub API endpoint with its credentials; the App's installation token is made once.
pub struct GitHub {
    api: String,
    auth: Auth,
    installation_token: Mutex<Option<String>>,
}

/// JWT claims of a GitHub App.
#[derive(serde::Serialize)]
struct Claims {
    iat: u64,
    exp: u64,
    iss: String,
}

impl GitHub {
    pub fn new(api: &str, auth: Auth) -> GitHub {
        GitHub {
            api: api.trim_end_matches('/').to_owned(),
            auth,
            installation_token: Mutex::new(None),
        }
    }

    fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        bearer: &str,
    ) -> reqwest::blocking::RequestBuilder {
        crate::http::blocking()
            .request(method, format!("{}{path}", self.api))
            .bearer_auth(bearer)
            .header("accept", "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28")
            .header("user-agent", "govledger")
    }

    /// A JWT authenticating as the App.
    fn app_jwt(app: &App) -> Result<String> {
        let pem = std::fs::read(&app.key)
            .with_context(|| format!("reading the GitHub App key {}", app.key.display()))?;
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(&pem).with_context(|| {
            format!(
                "the GitHub App key {} is not an RSA private key in PEM",
                app.key.display()
            )
        })?;
        let now = crate::time::now_ms() / 1000;
        let claims = Claims {
            iat: now.saturating_sub(60),
            exp: now + 9 * 60,
            iss: app.id.to_string(),
        };
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
            &claims,
            &key,
        )
        .context("signing the GitHub App JWT")
    }

    /// The bearer credential for calls on `repo` (OWNER/NAME).
    fn bearer(&self, repo: &str) -> Result<String> {
        let app = match &self.auth {
            Auth::Token(t) => return Ok(t.clone()),
            Auth::App(app) => app,
        };
        let mut cached = self.installation_token.lock().expect("lock poisoned");
        if let Some(t) = cached.as_ref() {
            return Ok(t.clone());
        }
        let jwt = Self::app_jwt(app)?;
        let installation = match app.installation {
            Some(id) => id,
            None => {
                let path = format!("/repos/{repo}/installation");
                let r = self
                    .request(reqwest::Method::GET, &path, &jwt)
                    .send()
                    .with_context(|| format!("reaching {}{path}", self.api))?;
                let v = answer(r, "finding the App's installation", &format!("on {repo}"))?;
                v["id"].as_u64().ok_or_else(|| {
                    anyhow::anyhow!("GitHub: the installation on {repo} has no id")
                })?
            }
        };
        let path = format!("/app/installations/{installation}/access_tokens");
        let r = self
            .request(reqwest::Method::POST, &path, &jwt)
            .json(&json!({}))
            .send()
            .with_context(|| format!("reaching {}{path}", self.api))?;
        let v = answer(
            r,
            "creating an installation token",
            &format!("for installation {installation}"),
        )?;
        let token = v["token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| anyhow::anyhow!("GitHub: the installation token answer has no token"))?
            .to_owned();
        *cached = Some(token.clone());
        Ok(token)
    }

    /// The review `id` of pull request `pr` on `repo`, or None when it no longer exists.
    pub fn review(&self, repo: &str, pr: &Value, id: &Value) -> Result<Option<Value>> {
        let path = format!("/repos/{repo}/pulls/{pr}/reviews/{id}");
        let r = self
            .request(reqwest::Method::GET, &path, &self.bearer(repo)?)
            .send()
            .with_context(|| format!("reaching {}{path}", self.api))?;
        if r.status().as_u16() == 404 {
            return Ok(None);
        }
        answer(r, "reading", &path).map(Some)
    }

    /// Publishes the verdict on `sha` of `repo`: a check run with App authentication, a
    /// commit status with a token. `target` links to the approval bundle.
    pub fn publish(
        &self,
        repo: &str,
        sha: &str,
        ok: bool,
        target: Option<String>,
        failed: &[String],
    ) -> Result<Published> {
        let state = if ok { "success" } else { "failure" };
        let description = if ok {
            "four-eyes approval proven by the log".to_owned()
        } else {
            format!("refused: {}", failed.join(", "))
        };
        let bearer = self.bearer(repo)?;
        let (path, body) = match &self.auth {
            Auth::App(_) => {
                let mut body = json!({"name": CONTEXT, "head_sha": sha, "status": "completed",
                    "conclusion": state, "completed_at": crate::time::rfc3339_ms(crate::time::now_ms()),
                    "output": {"title": if ok { "four-eyes approval: passed" } else { "four-eyes approval: refused" },
                               "summary": description}});
                if let Some(t) = target {
                    body["details_url"] = t.into();
                }
                (format!("/repos/{repo}/check-runs"), body)
            }
            Auth::Token(_) => {
                // A status description holds at most 140 characters.
                let short: String = description.chars().take(140).collect();
                let mut body = json!({"state": state, "context": CONTEXT, "description": short});
                if let Some(t) = target {
                    body["target_url"] = t.into();
                }
                (format!("/repos/{repo}/statuses/{sha}"), body)
            }
        };
        let r = self
            .request(reqwest::Method::POST, &path, &bearer)
            .json(&body)
            .send()
            .with_context(|| format!("reaching {}{path}", self.api))?;
        let v = answer(r, "publishing the verdict", &format!("on {repo}@{sha}"))?;
        Ok(Published {
            state: state.to_owned(),
            check_run: matches!(self.auth, Auth::App(_))
                .then(|| v["id"].as_u64())
                .flatten(),
        })
    }
}

/// The JSON of a successful answer, or an error naming what was being done (never the
/// credentials).
fn answer(r: reqwest::blocking::Response, doing: &str, what: &str) -> Result<Value> {
    let status = r.status().as_u16();
    let body: Value = r.json().unwrap_or(Value::Null);
    let msg = body["message"].as_str().unwrap_or_default().to_owned();
    match status {
        200..=299 => Ok(body),
        401 => bail!("GitHub rejected the credentials (401 {msg}) {doing} {what}"),
        403 if msg.to_lowercase().contains("rate limit") => {
            bail!("GitHub rate-limited {doing} {what} (403 {msg}); try again later")
        }
        s => bail!("GitHub answered {s} {msg} {doing} {what}"),
    }
}
