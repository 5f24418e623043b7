//! ServiceNow (Table API, reqwest): a change request's `description` (which must name the
//! request: `super::binding`) and its approval records (`sysapproval_approver`), which become
//! approvals (`approved`) and rejections (`rejected`), decided at their `sys_updated_on`.
//!
//! Nothing goes into an encoded query (`sysparm_query`) unless it can only mean itself: the
//! change number and every `sys_id` the instance returns must pass
//! `ledger_format::schema::is_source_id` (`^`, `=`, spaces and the like would change the
//! query), also for requests logged before the schema refused unsafe change numbers. An
//! approval record whose `sys_id` or user name is not plain is skipped.

use serde_json::{json, Value};

use super::{
    is_account, is_source_id, with_retries, Decisions, Imported, Mapping, Skipped, SourceError,
};
use crate::config::ServiceNowConfig;

/// Records per page.
const PAGE: usize = 100;

enum Auth {
    Basic(String, String),
    Bearer(String),
    /// A token from the OAuth client, cached until shortly before it expires.
    OAuthToken(String),
}

/// Renew an OAuth token this long before ServiceNow says it expires.
const RENEW_BEFORE: std::time::Duration = std::time::Duration::from_secs(60);

/// A ServiceNow instance. Credentials are read from the environment at each call (an OAuth
/// token when it is renewed), so a rotated secret applies without a restart.
pub struct ServiceNow {
    base: String,
    cfg: ServiceNowConfig,
    http: reqwest::Client,
    /// The OAuth access token and when to renew it.
    token: std::sync::Mutex<Option<(String, std::time::Instant)>>,
}

/// `2026-11-26 10:00:00` (ServiceNow, UTC) to `2026-11-26T10:00:00Z`.
pub fn to_rfc3339(s: &str) -> Option<String> {
    let t = format!("{}Z", s.trim().replacen(' ', "T", 1));
    ledger_format::schema::is_rfc3339(&t).then_some(t)
}

/// Sends `req` (to `url`) asking for JSON: the status and the body (null when not JSON); a
/// network error is retryable.
async fn send(
    req: reqwest::RequestBuilder,
    url: &str,
) -> Result<(u16, Value), (bool, SourceError)> {
    let r = req
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|e| {
            (
                true,
                SourceError::new(502, format!("servicenow: reaching {url}: {e}")),
            )
        })?;
    let status = r.status().as_u16();
    Ok((status, r.json().await.unwrap_or(Value::Null)))
}

fn env(n: &str) -> Option<String> {
    std::env::var(n).ok().filter(|v| !v.is_empty())
}

impl ServiceNow {
    async fn auth(&self) -> Result<Auth, SourceError> {
        let cfg = &self.cfg;
        if let Some(client_id) = &cfg.oauth_client_id {
            return self.oauth(client_id).await.map(Auth::OAuthToken);
        }
        match (env(&cfg.token_env), &cfg.user, env(&cfg.password_env)) {
            (Some(t), _, _) => Ok(Auth::Bearer(t)),
            (None, Some(u), Some(p)) => Ok(Auth::Basic(u.clone(), p)),
            _ => Err(SourceError::new(
                502,
                format!(
                    "servicenow: set {} (OAuth token), or user in the config and {} (password), or configure oauth_client_id",
                    cfg.token_env, cfg.password_env
                ),
            )),
        }
    }

    /// The cached OAuth access token, or a new one from `/oauth_token.do`: the password grant
    /// when a user and password are configured, else client credentials.
    async fn oauth(&self, client_id: &str) -> Result<String, SourceError> {
        if let Some((t, renew)) = self.token.lock().expect("lock poisoned").as_ref() {
            if std::time::Instant::now() < *renew {
                return Ok(t.clone());
            }
        }
        let cfg = &self.cfg;
        let secret = env(&cfg.oauth_secret_env).ok_or_else(|| {
            SourceError::new(
                502,
                format!(
                    "servicenow: set {} to the OAuth client's secret",
                    cfg.oauth_secret_env
                ),
            )
        })?;
        let mut form = vec![
            ("client_id", client_id.to_owned()),
            ("client_secret", secret),
        ];
        match (&cfg.user, env(&cfg.password_env)) {
            (Some(u), Some(p)) => {
                form.push(("grant_type", "password".into()));
                form.push(("username", u.clone()));
                form.push(("password", p));
            }
            _ => form.push(("grant_type", "client_credentials".into())),
        }
        let url = format!("{}/oauth_token.do", self.base);
        let v: Value = with_retries(|| async {
            let req = self.http.post(&url).form(&form);
            let (status, v) = send(req, &url).await?;
            match status {
                200 => Ok(v),
                s if s >= 500 => Err((
                    true,
                    SourceError::new(502, format!("servicenow: {url} answered {s}")),
                )),
                s => Err((
                    false,
                    SourceError::new(
                        502,
                        format!(
                            "servicenow: the OAuth endpoint rejected the credentials ({s}: {})",
                            v["error_description"]
                                .as_str()
                                .or(v["error"].as_str())
                                .unwrap_or("denied")
                        ),
                    ),
                )),
            }
        })
        .await?;
        let token = v["access_token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                SourceError::new(502, "servicenow: the OAuth answer has no access_token")
            })?
            .to_owned();
        let lifetime = std::time::Duration::from_secs(v["expires_in"].as_u64().unwrap_or(0));
        let renew = std::time::Instant::now() + lifetime.saturating_sub(RENEW_BEFORE);
        *self.token.lock().expect("lock poisoned") = Some((token.clone(), renew));
        Ok(token)
    }

    pub fn new(cfg: &ServiceNowConfig) -> anyhow::Result<ServiceNow> {
        Ok(ServiceNow {
            base: cfg.instance_url.trim_end_matches('/').to_owned(),
            cfg: cfg.clone(),
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()?,
            token: Default::default(),
        })
    }

    async fn table(
        &self,
        table: &str,
        query: &[(&str, String)],
    ) -> Result<Vec<Value>, SourceError> {
        let url = format!("{}/api/now/table/{table}", self.base);
        with_retries(|| async {
            let auth = self.auth().await.map_err(|e| (false, e))?;
            let mut req = self.http.get(&url).query(query);
            req = match &auth {
                Auth::Basic(u, p) => req.basic_auth(u, Some(p)),
                Auth::Bearer(t) | Auth::OAuthToken(t) => req.bearer_auth(t),
            };
            let (status, v) = send(req, &url).await?;
            match status {
                200 => Ok(v["result"].as_array().cloned().unwrap_or_default()),
                // An OAuth token revoked or expired early: drop it and retry with a new one.
                401 if matches!(auth, Auth::OAuthToken(_)) => {
                    *self.token.lock().expect("lock poisoned") = None;
                    Err((
                        true,
                        SourceError::new(
                            502,
                            "servicenow: the instance rejected the OAuth token (401)",
                        ),
                    ))
                }
                401 | 403 => Err((
                    false,
                    SourceError::new(
                        502,
                        format!(
                            "servicenow: the instance rejected the credentials ({status}: {})",
                            v["error"]["message"].as_str().unwrap_or("unauthorized")
                        ),
                    ),
                )),
                429 => Err((
                    true,
                    SourceError::new(503, "servicenow: rate limited (429)"),
                )),
                s if s >= 500 => Err((
                    true,
                    SourceError::new(502, format!("servicenow: {url} answered {s}")),
                )),
                s => Err((
                    false,
                    SourceError::new(502, format!("servicenow: {url} answered {s}: {v}")),
                )),
            }
        })
        .await
    }

    /// Reads the description and the approval records of change `number`; a number that is
    /// not plain ([`check_change`]) is refused (400) before any query.
    pub async fn decisions(&self, number: &str, who: &Mapping) -> Result<Decisions, SourceError> {
        check_change(number).map_err(|why| SourceError::new(400, why))?;
        let changes = self
            .table(
                "change_request",
                &[
                    ("sysparm_query", format!("number={number}")),
                    ("sysparm_limit", "1".into()),
                    ("sysparm_fields", "sys_id,number,description".into()),
                ],
            )
            .await?;
        let Some(change) = changes.first() else {
            return Err(SourceError::new(
                404,
                format!("servicenow: no change request {number}"),
            ));
        };
        let sys_id = change["sys_id"].as_str().unwrap_or_default().to_owned();
        if !is_source_id(&sys_id) {
            return Err(SourceError::new(
                502,
                format!(
                    "servicenow: the instance gave change {number} the sys_id {:?}, which is not a plain identifier; it is not queried",
                    sys_id.chars().take(80).collect::<String>()
                ),
            ));
        }
        let description = change["description"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let mut records = Vec::new();
        let mut offset = 0;
        loop {
            let page = self
                .table(
                    "sysapproval_approver",
                    &[
                        (
                            "sysparm_query",
                            format!("sysapproval={sys_id}^ORDERBYsys_updated_on"),
                        ),
                        (
                            "sysparm_fields",
                            "sys_id,approver.user_name,state,sys_updated_on".into(),
                        ),
                        ("sysparm_limit", PAGE.to_string()),
                        ("sysparm_offset", offset.to_string()),
                    ],
                )
                .await?;
            let n = page.len();
            records.extend(page);
            if n < PAGE {
                break;
            }
            offset += PAGE;
        }
        let (mut out, mut skipped) = (Vec::new(), Vec::new());
        for r in records {
            let raw = r["sys_id"].as_str().unwrap_or_default();
            // What `skipped` shows of an id that cannot be logged: at most 64 characters.
            let id: String = raw.chars().take(64).collect();
            let user = r["approver.user_name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let state = r["state"].as_str().unwrap_or_default().to_owned();
            let skip = |reason: String| Skipped {
                source: "servicenow",
                id: id.clone(),
                reason,
            };
            if !is_source_id(raw) {
                skipped.push(skip(format!(
                    "sys_id {:?} is not a plain identifier (1 to 64 letters, digits, '-', '_')",
                    id
                )));
                continue;
            }
            let decision = match state.as_str() {
                "approved" => "approve",
                "rejected" => "reject",
                other => {
                    skipped.push(skip(format!("state {other:?} is not a decision")));
                    continue;
                }
            };
            if !is_account(&user) {
                skipped.push(skip(format!(
                    "the approver's user name {user:?} is not plain"
                )));
                continue;
            }
            let Some(person) = who.servicenow_person(&user) else {
                skipped.push(skip(format!(
                    "{user:?} is not mapped to a registered approver"
                )));
                continue;
            };
            let updated = r["sys_updated_on"].as_str().unwrap_or_default().to_owned();
            let Some(at) = to_rfc3339(&updated).filter(|_| updated.len() <= 64) else {
                skipped.push(skip(format!("sys_updated_on {updated:?} is not a time")));
                continue;
            };
            out.push(Imported {
                source: "servicenow",
                id: id.clone(),
                approver: person.clone(),
                decision,
                decided_at: at,
                evidence: json!({"change": number, "sys_id": id, "approver": user, "state": state, "sys_updated_on": updated}),
            });
        }
        Ok(Decisions {
            description,
            imported: out,
            skipped,
        })
    }
}

/// Checks a request's change number before it goes into a query: `is_source_id` (what the
/// schema has required since 4ee4af9; requests logged before may hold anything).
pub fn check_change(number: &str) -> Result<(), String> {
    if is_source_id(number) {
        Ok(())
    } else {
        Err(format!(
            "servicenow: the request's change {:?} is not a plain change number (1 to 64 letters, digits, '-', '_'); it is not queried",
            number.chars().take(80).collect::<String>()
        ))
    }
}
