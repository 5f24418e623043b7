//! A ServiceNow instance's Table API.
//!
//! Credentials, the first that applies: OAuth with a client id and its secret (the password
//! grant when a user and password are given, else client credentials), tokens renewed shortly
//! before they expire and dropped when the instance rejects one; a bearer token; basic auth
//! with a user and password. Secrets are read from their environment variables at each call
//! (an OAuth token when it is renewed), so a rotated secret applies without a restart.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::env;
use crate::error::{with_retries, Error, Failure};

/// Renew an OAuth token this long before ServiceNow says it expires.
const RENEW_BEFORE: Duration = Duration::from_secs(60);

/// Where the credentials are: a user and an OAuth client id by value, secrets by the name of
/// the environment variable that holds them.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub user: Option<String>,
    pub oauth_client_id: Option<String>,
    pub password_env: String,
    pub token_env: String,
    pub oauth_secret_env: String,
}

impl Credentials {
    /// Every credential from the environment under the names of [`crate::env`]
    /// (`SERVICENOW_USER`, `SERVICENOW_CLIENT_ID`, ...).
    pub fn from_env() -> Credentials {
        Credentials {
            user: env::var(env::SERVICENOW_USER),
            oauth_client_id: env::var(env::SERVICENOW_CLIENT_ID),
            ..Credentials::default()
        }
    }
}

impl Default for Credentials {
    /// No user or OAuth client; secrets under the names of [`crate::env`].
    fn default() -> Credentials {
        Credentials {
            user: None,
            oauth_client_id: None,
            password_env: env::SERVICENOW_PASSWORD.into(),
            token_env: env::SERVICENOW_TOKEN.into(),
            oauth_secret_env: env::SERVICENOW_CLIENT_SECRET.into(),
        }
    }
}

enum Auth {
    Basic(String, String),
    Bearer(String),
    /// A token from the OAuth client.
    OAuthToken(String),
}

/// A ServiceNow instance.
pub struct ServiceNow {
    base: String,
    creds: Credentials,
    http: reqwest::Client,
    /// The OAuth access token and when to renew it.
    token: Mutex<Option<(String, Instant)>>,
}

/// `2026-11-26 10:00:00` (ServiceNow, UTC) to `2026-11-26T10:00:00Z`.
pub fn to_rfc3339(s: &str) -> Option<String> {
    let t = format!("{}Z", s.trim().replacen(' ', "T", 1));
    ledger_format::schema::is_rfc3339(&t).then_some(t)
}

impl ServiceNow {
    /// Returns a client of the instance at `instance_url` (`https://INSTANCE.service-now.com`)
    /// making its calls with `http`.
    pub fn new(instance_url: &str, creds: Credentials, http: reqwest::Client) -> ServiceNow {
        ServiceNow {
            base: instance_url.trim_end_matches('/').to_owned(),
            creds,
            http,
            token: Default::default(),
        }
    }

    /// Sends `req` (to `url`) asking for JSON: the status and the body (null when not JSON); a
    /// network error is retryable.
    async fn send(req: reqwest::RequestBuilder, url: &str) -> Result<(u16, Value), Error> {
        let r = req
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| {
                Error::transient(
                    Failure::Upstream,
                    format!("ServiceNow: reaching {url}: {e}"),
                )
            })?;
        let status = r.status().as_u16();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }

    async fn auth(&self) -> Result<Auth, Error> {
        let c = &self.creds;
        if let Some(client_id) = &c.oauth_client_id {
            return self.oauth(client_id).await.map(Auth::OAuthToken);
        }
        match (env::var(&c.token_env), &c.user, env::var(&c.password_env)) {
            (Some(t), _, _) => Ok(Auth::Bearer(t)),
            (None, Some(u), Some(p)) => Ok(Auth::Basic(u.clone(), p)),
            _ => Err(Error::new(
                Failure::Credentials,
                format!(
                    "ServiceNow: set {} (OAuth token), or a user and {} (password), or an OAuth client id",
                    c.token_env, c.password_env
                ),
            )),
        }
    }

    /// The kept OAuth access token, or a new one from `/oauth_token.do`: the password grant
    /// when a user and password are given, else client credentials.
    async fn oauth(&self, client_id: &str) -> Result<String, Error> {
        if let Some((t, renew)) = self.token.lock().expect("lock poisoned").as_ref() {
            if Instant::now() < *renew {
                return Ok(t.clone());
            }
        }
        let c = &self.creds;
        let secret = env::var(&c.oauth_secret_env).ok_or_else(|| {
            Error::new(
                Failure::Credentials,
                format!(
                    "ServiceNow: set {} to the OAuth client's secret",
                    c.oauth_secret_env
                ),
            )
        })?;
        let mut form = vec![
            ("client_id", client_id.to_owned()),
            ("client_secret", secret),
        ];
        match (&c.user, env::var(&c.password_env)) {
            (Some(u), Some(p)) => {
                form.push(("grant_type", "password".into()));
                form.push(("username", u.clone()));
                form.push(("password", p));
            }
            _ => form.push(("grant_type", "client_credentials".into())),
        }
        let url = format!("{}/oauth_token.do", self.base);
        let v: Value = with_retries(|| async {
            let (status, v) = Self::send(self.http.post(&url).form(&form), &url).await?;
            match status {
                200 => Ok(v),
                s if s >= 500 => Err(Error::transient(
                    Failure::Upstream,
                    format!("ServiceNow: {url} answered {s}"),
                )),
                s => Err(Error::new(
                    Failure::Credentials,
                    format!(
                        "ServiceNow: the OAuth endpoint rejected the credentials ({s}: {})",
                        v["error_description"]
                            .as_str()
                            .or(v["error"].as_str())
                            .unwrap_or("denied")
                    ),
                )),
            }
        })
        .await?;
        let token = v["access_token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                Error::new(
                    Failure::Upstream,
                    "ServiceNow: the OAuth answer has no access_token",
                )
            })?
            .to_owned();
        let lifetime = Duration::from_secs(v["expires_in"].as_u64().unwrap_or(0));
        let renew = Instant::now() + lifetime.saturating_sub(RENEW_BEFORE);
        *self.token.lock().expect("lock poisoned") = Some((token.clone(), renew));
        Ok(token)
    }

    /// GETs `path` (below the instance URL) with `query`; returns the answer's `result`.
    async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, Error> {
        let url = format!("{}{path}", self.base);
        with_retries(|| async {
            let auth = self.auth().await?;
            let mut req = self.http.get(&url).query(query);
            req = match &auth {
                Auth::Basic(u, p) => req.basic_auth(u, Some(p)),
                Auth::Bearer(t) | Auth::OAuthToken(t) => req.bearer_auth(t),
            };
            let (status, v) = Self::send(req, &url).await?;
            match status {
                200 => Ok(v["result"].clone()),
                // An OAuth token revoked or expired early: drop it and retry with a new one.
                401 if matches!(auth, Auth::OAuthToken(_)) => {
                    *self.token.lock().expect("lock poisoned") = None;
                    Err(Error::transient(
                        Failure::Credentials,
                        "ServiceNow: the instance rejected the OAuth token (401)",
                    ))
                }
                401 | 403 => Err(Error::new(
                    Failure::Credentials,
                    format!(
                        "ServiceNow: the instance rejected the credentials ({status}: {})",
                        v["error"]["message"].as_str().unwrap_or("unauthorized")
                    ),
                )),
                404 => Err(Error::new(
                    Failure::NotFound,
                    format!("ServiceNow: {url} answered 404"),
                )),
                429 => Err(Error::transient(
                    Failure::RateLimited,
                    "ServiceNow: rate limited (429)",
                )),
                s if s >= 500 => Err(Error::transient(
                    Failure::Upstream,
                    format!("ServiceNow: {url} answered {s}"),
                )),
                s => Err(Error::new(
                    Failure::Upstream,
                    format!("ServiceNow: {url} answered {s}: {v}"),
                )),
            }
        })
        .await
    }

    /// Returns the records of `table` that `query` selects (`sysparm_*` parameters).
    pub async fn table(&self, table: &str, query: &[(&str, String)]) -> Result<Vec<Value>, Error> {
        let v = self.get(&format!("/api/now/table/{table}"), query).await?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    /// Returns the record `sys_id` of `table` with `fields`, or None when it does not exist.
    /// `sys_id` must be a plain identifier (`ledger_format::schema::is_source_id`).
    pub async fn record(
        &self,
        table: &str,
        sys_id: &str,
        fields: &str,
    ) -> Result<Option<Value>, Error> {
        if !ledger_format::schema::is_source_id(sys_id) {
            return Err(Error::new(
                Failure::BadTarget,
                format!("ServiceNow: {sys_id:?} is not a plain sys_id"),
            ));
        }
        let path = format!("/api/now/table/{table}/{sys_id}");
        match self
            .get(&path, &[("sysparm_fields", fields.to_owned())])
            .await
        {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.failure == Failure::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}
