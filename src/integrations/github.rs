//! GitHub: a pull request's description (its `body`, which must name the request:
//! `super::binding`) and reviews. An APPROVED review on the head commit the request names, by
//! a login mapped to a registered person, is an approval; CHANGES_REQUESTED is a rejection;
//! DISMISSED, COMMENTED, PENDING, reviews on other commits (stale) and reviews whose id, login
//! or time is not plain are skipped. The repository, number and head commit are checked
//! before they go into a URL (`check_target`), also for requests logged before the schema
//! refused unsafe ones.
//!
//! Authentication: a token from the environment, or a GitHub App (`app_id`, `app_key`), as
//! `govledger_connectors::github` does it for the server and the CLI alike.

use serde_json::{json, Value};

use govledger_connectors::github::{Auth, GitHub as Api};

use super::{is_account, Decisions, Imported, Mapping, Skipped, SourceError};
use crate::config::GithubConfig;

/// Reviews per page (GitHub's maximum).
const PAGE: usize = 100;

/// The GitHub API as configured (`govledger_connectors::github` makes the calls).
pub struct GitHub {
    api: Api,
}

impl GitHub {
    /// Reads the App's key, if one is configured: a key that is not an RSA PEM stops the
    /// start.
    pub fn new(cfg: &GithubConfig) -> anyhow::Result<GitHub> {
        let auth = match (cfg.app_id, &cfg.app_key) {
            (Some(id), Some(path)) => Auth::app(id, path, cfg.installation_id)
                .map_err(|e| anyhow::anyhow!("github: {e}"))?,
            _ => Auth::Token {
                env: cfg.token_env.clone(),
            },
        };
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()?;
        Ok(GitHub {
            api: Api::new(&cfg.api_url, auth, http),
        })
    }

    async fn get(&self, repo: &str, path: &str) -> Result<Value, SourceError> {
        self.api.get(repo, path).await.map_err(|e| {
            let mut e = SourceError::from(e);
            e.message = format!("github: {}", e.message);
            e
        })
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
        let pull = self.get(repo, &format!("/repos/{repo}/pulls/{pr}")).await?;
        let description = pull["body"].as_str().unwrap_or_default().to_owned();
        let mut reviews: Vec<Value> = Vec::new();
        for page in 1.. {
            let route = format!("/repos/{repo}/pulls/{pr}/reviews?per_page={PAGE}&page={page}");
            let batch = match self.get(repo, &route).await? {
                Value::Array(b) => b,
                other => {
                    return Err(SourceError::new(
                        502,
                        format!("github: {route} answered {other}, not a list of reviews"),
                    ))
                }
            };
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
