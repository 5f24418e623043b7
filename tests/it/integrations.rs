//! GitHub reviews and ServiceNow change approvals imported as approvals, against local HTTP
//! servers that emulate the GitHub REST API and the ServiceNow Table API with their documented
//! JSON shapes (pagination, errors): exactly once across syncs, stale and dismissed reviews
//! ignored, changes requested blocks, the commit status posted, bad credentials reported
//! clearly, and the gate passing with one GitHub and one ServiceNow approval. A GitHub App
//! (JWT RS256 with a test key in tests/fixtures, installation tokens) reads reviews and
//! publishes the verdict as a check run.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Json;
use govledger::config::{GithubConfig, PersonConfig, ServiceNowConfig};
use ledger_format::note::SignerKey;
use serde_json::{json, Value};

use crate::harness::{start_with, TestServer};

const GH_TOKEN: &str = "gh-secret-token-123";
const SN_PASSWORD: &str = "sn-secret-pass-456";
const HEAD: &str = "1111111111111111111111111111111111111111";
const OLD: &str = "0000000000000000000000000000000000000000";

#[derive(Default)]
struct Emulated {
    /// Answer this many review-list requests with 502 (a flaky upstream) first.
    fail_next: usize,
    /// Answer review-list requests with GitHub's rate-limit 403 while set.
    rate_limited: bool,
    reviews: Vec<Value>,
    statuses: Vec<(String, Value)>,
    approvals: Vec<Value>,
    /// Installation tokens issued to the emulated App, and those revoked since.
    app_tokens: Vec<String>,
    revoked: Vec<String>,
    /// Installation lookups by repository.
    installation_lookups: usize,
    check_runs: Vec<Value>,
    /// ServiceNow OAuth: the grant type of each token issued, the tokens revoked since, and
    /// the lifetime given to new tokens (s; 0 means ServiceNow's default, 1,799).
    sn_grants: Vec<String>,
    sn_revoked: Vec<String>,
    sn_expires_in: u64,
    /// The pull request's description (GitHub `body`) and the change's `description`: where
    /// the marker `govledger-request: <hash>` goes.
    pr_body: String,
    change_description: String,
    /// The change's sys_id, when not `chg-sys-1` (an instance answering with query syntax).
    change_sys_id: Option<String>,
    /// Every `sysparm_query` the Table API was asked, by table.
    sn_queries: Vec<(String, String)>,
}

const SN_CLIENT_ID: &str = "govledger-oauth-client";
const SN_CLIENT_SECRET: &str = "sn-client-secret-789";

/// ServiceNow's OAuth token endpoint: form-encoded grants, JSON tokens.
async fn oauth_token(
    State(s): State<Shared>,
    axum::extract::Form(f): axum::extract::Form<HashMap<String, String>>,
) -> Response {
    let denied = || {
        (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error_description": "access_denied", "error": "server_error"})),
        )
            .into_response()
    };
    let get = |k: &str| f.get(k).map(String::as_str);
    if get("client_id") != Some(SN_CLIENT_ID) || get("client_secret") != Some(SN_CLIENT_SECRET) {
        return denied();
    }
    match get("grant_type") {
        Some("client_credentials") => {}
        Some("password")
            if get("username") == Some("svc") && get("password") == Some(SN_PASSWORD) => {}
        _ => return denied(),
    }
    let mut st = s.lock().unwrap();
    st.sn_grants.push(get("grant_type").unwrap().to_owned());
    let expires = if st.sn_expires_in == 0 {
        1799
    } else {
        st.sn_expires_in
    };
    Json(
        json!({"access_token": format!("sn-oauth-{}", st.sn_grants.len()), "refresh_token": "r",
        "scope": "useraccount", "token_type": "Bearer", "expires_in": expires}),
    )
    .into_response()
}

/// The emulated GitHub App.
const APP_ID: u64 = 31337;
const INSTALLATION: u64 = 4242;

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Returns the 401 answer unless the request carries a JWT of the App, signed RS256 with its
/// key, issued by its id and valid for at most 10 minutes (GitHub's rules).
fn app_auth(h: &HeaderMap) -> Option<Response> {
    #[derive(serde::Deserialize)]
    struct Claims {
        iat: u64,
        exp: u64,
        /// The App id, as a number or a string (GitHub takes both).
        iss: Value,
    }
    let bad = |why: &str| {
        Some((StatusCode::UNAUTHORIZED, Json(json!({"message": why, "documentation_url": "https://docs.github.com/rest", "status": "401"}))).into_response())
    };
    let Some(jwt) = h
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return bad("A JSON web token could not be decoded");
    };
    let pem = std::fs::read(fixture("github-app.pub.pem")).unwrap();
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(&pem).unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    v.set_required_spec_claims(&["exp", "iat"]);
    match jsonwebtoken::decode::<Claims>(jwt, &key, &v) {
        Ok(t) if t.claims.iss.to_string().trim_matches('"') != APP_ID.to_string() => {
            bad("'Issuer' claim ('iss') must be an Integer")
        }
        Ok(t) if t.claims.exp.saturating_sub(t.claims.iat) <= 600 => None,
        Ok(_) => bad("'Expiration time' claim ('exp') is too far in the future"),
        Err(_) => bad("A JSON web token could not be decoded"),
    }
}

async fn repo_installation(
    State(s): State<Shared>,
    h: HeaderMap,
    Path((o, r)): Path<(String, String)>,
) -> Response {
    if let Some(e) = app_auth(&h) {
        return e;
    }
    s.lock().unwrap().installation_lookups += 1;
    let u = |p: &str| format!("https://api.github.com/users/{o}{p}");
    Json(json!({"id": INSTALLATION, "client_id": "Iv1.8a61f9b3a7aba766", "app_id": APP_ID, "app_slug": "govledger",
        "account": {"login": o, "id": 1, "node_id": "MDQ6VXNlcjE=", "avatar_url": "https://github.com/images/error/octocat_happy.gif",
            "gravatar_id": "", "url": u(""), "html_url": format!("https://github.com/{o}"), "followers_url": u("/followers"),
            "following_url": u("/following{/other_user}"), "gists_url": u("/gists{/gist_id}"), "starred_url": u("/starred{/owner}{/repo}"),
            "subscriptions_url": u("/subscriptions"), "organizations_url": u("/orgs"), "repos_url": u("/repos"), "events_url": u("/events{/privacy}"),
            "received_events_url": u("/received_events"), "type": "Organization", "site_admin": false},
        "repository_selection": "selected", "access_tokens_url": format!("https://api.github.com/app/installations/{INSTALLATION}/access_tokens"),
        "repositories_url": format!("https://api.github.com/repos/{o}/{r}"), "html_url": format!("https://github.com/organizations/{o}/settings/installations/{INSTALLATION}"),
        "target_id": 1, "target_type": "Organization", "permissions": {"checks": "write", "pull_requests": "read", "statuses": "write"},
        "events": ["pull_request"], "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z", "single_file_name": null}))
    .into_response()
}

async fn access_token(State(s): State<Shared>, h: HeaderMap, Path(id): Path<u64>) -> Response {
    if let Some(e) = app_auth(&h) {
        return e;
    }
    if id != INSTALLATION {
        return (StatusCode::NOT_FOUND, Json(json!({"message": "Not Found"}))).into_response();
    }
    let mut st = s.lock().unwrap();
    let token = format!("ghs_installation{}", st.app_tokens.len());
    st.app_tokens.push(token.clone());
    (StatusCode::CREATED, Json(json!({"token": token, "expires_at": "2099-01-01T00:00:00Z",
        "permissions": {"checks": "write", "pull_requests": "read"}, "repository_selection": "selected"}))).into_response()
}

async fn post_check_run(
    State(s): State<Shared>,
    h: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let token = h
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_owned();
    let mut st = s.lock().unwrap();
    if !st.app_tokens.contains(&token) {
        // Only GitHub Apps may create check runs.
        return (
            StatusCode::FORBIDDEN,
            Json(json!({"message": "You must authenticate via a GitHub App."})),
        )
            .into_response();
    }
    st.check_runs.push(body.clone());
    let id = 7000 + st.check_runs.len() as u64;
    (StatusCode::CREATED, Json(json!({"id": id, "head_sha": body["head_sha"], "name": body["name"],
        "status": body["status"], "conclusion": body["conclusion"], "details_url": body["details_url"]}))).into_response()
}

type Shared = Arc<Mutex<Emulated>>;

/// Returns the 401 answer unless the request carries the token or an installation token.
fn gh_auth(s: &Shared, h: &HeaderMap) -> Option<Response> {
    let (issued, revoked) = {
        let st = s.lock().unwrap();
        (st.app_tokens.clone(), st.revoked.clone())
    };
    let ok = h
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or(v.strip_prefix("token ")))
        .is_some_and(|t| {
            t == GH_TOKEN || (issued.iter().any(|i| i == t) && !revoked.iter().any(|r| r == t))
        });
    (!ok).then(|| (StatusCode::UNAUTHORIZED, Json(json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest", "status": "401"}))).into_response())
}

async fn list_reviews(
    State(s): State<Shared>,
    h: HeaderMap,
    Path((o, r, n)): Path<(String, String, u64)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(e) = gh_auth(&s, &h) {
        return e;
    }
    {
        let mut st = s.lock().unwrap();
        if st.rate_limited {
            let mut r = (StatusCode::FORBIDDEN, Json(json!({"message": "API rate limit exceeded for user ID 1.", "documentation_url": "https://docs.github.com/rest/overview/resources-in-the-rest-api#rate-limiting"}))).into_response();
            r.headers_mut()
                .insert("x-ratelimit-remaining", "0".parse().unwrap());
            return r;
        }
        if st.fail_next > 0 {
            st.fail_next -= 1;
            return (
                StatusCode::BAD_GATEWAY,
                Json(json!({"message": "Server Error"})),
            )
                .into_response();
        }
    }
    let per: usize = q
        .get("per_page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(30)
        .min(100);
    let page: usize = q
        .get("page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    let all = s.lock().unwrap().reviews.clone();
    let items: Vec<Value> = all
        .iter()
        .skip((page - 1) * per)
        .take(per)
        .cloned()
        .collect();
    let mut resp = Json(items).into_response();
    if page * per < all.len() {
        let link = format!("<http://localhost/repos/{o}/{r}/pulls/{n}/reviews?per_page={per}&page={}>; rel=\"next\"", page + 1);
        resp.headers_mut().insert("link", link.parse().unwrap());
    }
    resp
}

/// A pull request (the fields the server reads: its description and head).
async fn pull(
    State(s): State<Shared>,
    h: HeaderMap,
    Path((o, r, n)): Path<(String, String, u64)>,
) -> Response {
    if let Some(e) = gh_auth(&s, &h) {
        return e;
    }
    let body = s.lock().unwrap().pr_body.clone();
    Json(json!({"id": 90_000 + n, "number": n, "state": "open", "title": "Release ppo",
        "body": if body.is_empty() { Value::Null } else { body.into() },
        "head": {"ref": "release", "sha": HEAD}, "base": {"ref": "main", "repo": {"full_name": format!("{o}/{r}")}},
        "html_url": format!("https://github.com/{o}/{r}/pull/{n}")}))
    .into_response()
}

async fn one_review(
    State(s): State<Shared>,
    h: HeaderMap,
    Path((_, _, _, id)): Path<(String, String, u64, u64)>,
) -> Response {
    if let Some(e) = gh_auth(&s, &h) {
        return e;
    }
    match s.lock().unwrap().reviews.iter().find(|r| r["id"] == id) {
        Some(r) => Json(r.clone()).into_response(),
        None => (StatusCode::NOT_FOUND, Json(json!({"message": "Not Found"}))).into_response(),
    }
}

async fn post_status(
    State(s): State<Shared>,
    h: HeaderMap,
    Path((_, _, sha)): Path<(String, String, String)>,
    Json(body): Json<Value>,
) -> Response {
    if let Some(e) = gh_auth(&s, &h) {
        return e;
    }
    s.lock().unwrap().statuses.push((sha, body.clone()));
    (
        StatusCode::CREATED,
        Json(json!({"id": 1, "state": body["state"], "context": body["context"]})),
    )
        .into_response()
}

/// Returns the 401 answer unless the request carries the basic credentials.
/// Returns the 401 answer unless the request carries the basic credentials or an OAuth token
/// issued and not revoked.
fn sn_auth(s: &Shared, h: &HeaderMap) -> Option<Response> {
    use base64::Engine;
    let want = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("svc:{SN_PASSWORD}"))
    );
    let got = h.get("authorization").and_then(|v| v.to_str().ok());
    let oauth = got
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| {
            let st = s.lock().unwrap();
            let n = st.sn_grants.len();
            (1..=n).any(|i| format!("sn-oauth-{i}") == t) && !st.sn_revoked.iter().any(|r| r == t)
        });
    (got != Some(want.as_str()) && !oauth).then(|| {
        (StatusCode::UNAUTHORIZED, Json(json!({"error": {"message": "User Not Authenticated", "detail": "Required to provide Auth information"}, "status": "failure"}))).into_response()
    })
}

async fn changes(
    State(s): State<Shared>,
    h: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(e) = sn_auth(&s, &h) {
        return e;
    }
    let mut st = s.lock().unwrap();
    let query = q.get("sysparm_query").cloned().unwrap_or_default();
    st.sn_queries.push(("change_request".into(), query.clone()));
    let result = if query == "number=CHG0001" {
        let sys_id = st.change_sys_id.clone().unwrap_or("chg-sys-1".into());
        vec![json!({"sys_id": sys_id, "number": "CHG0001", "description": st.change_description})]
    } else {
        vec![]
    };
    Json(json!({"result": result})).into_response()
}

async fn approvals(
    State(s): State<Shared>,
    h: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(e) = sn_auth(&s, &h) {
        return e;
    }
    let query = q.get("sysparm_query").cloned().unwrap_or_default();
    s.lock()
        .unwrap()
        .sn_queries
        .push(("sysapproval_approver".into(), query.clone()));
    assert!(query.starts_with("sysapproval=chg-sys-1^"), "{q:?}");
    let limit: usize = q
        .get("sysparm_limit")
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let offset: usize = q
        .get("sysparm_offset")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let all = s.lock().unwrap().approvals.clone();
    let page: Vec<Value> = all.iter().skip(offset).take(limit).cloned().collect();
    let mut resp = Json(json!({"result": page})).into_response();
    resp.headers_mut()
        .insert("x-total-count", all.len().to_string().parse().unwrap());
    resp
}

async fn approval(State(s): State<Shared>, h: HeaderMap, Path(id): Path<String>) -> Response {
    if let Some(e) = sn_auth(&s, &h) {
        return e;
    }
    match s
        .lock()
        .unwrap()
        .approvals
        .iter()
        .find(|a| a["sys_id"] == id.as_str())
    {
        Some(a) => Json(json!({"result": a})).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": {"message": "No Record found"}, "status": "failure"})),
        )
            .into_response(),
    }
}

async fn emulators(state: Shared) -> String {
    emulators_at(state, "").await
}

/// The emulators under a path prefix (GitHub Enterprise serves its API under `/api/v3`).
async fn emulators_at(state: Shared, prefix: &str) -> String {
    let app = axum::Router::new()
        .route("/repos/{o}/{r}/pulls/{n}", get(pull))
        .route("/repos/{o}/{r}/pulls/{n}/reviews", get(list_reviews))
        .route("/repos/{o}/{r}/pulls/{n}/reviews/{id}", get(one_review))
        .route(
            "/repos/{o}/{r}/statuses/{sha}",
            axum::routing::post(post_status),
        )
        .route("/repos/{o}/{r}/installation", get(repo_installation))
        .route(
            "/app/installations/{id}/access_tokens",
            axum::routing::post(access_token),
        )
        .route(
            "/repos/{o}/{r}/check-runs",
            axum::routing::post(post_check_run),
        )
        .route("/api/now/table/change_request", get(changes))
        .route("/oauth_token.do", axum::routing::post(oauth_token))
        .route("/api/now/table/sysapproval_approver", get(approvals))
        .route("/api/now/table/sysapproval_approver/{id}", get(approval))
        .with_state(state);
    let app = if prefix.is_empty() {
        app
    } else {
        axum::Router::new().nest(prefix, app)
    };
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}{prefix}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    url
}

fn review(id: u64, login: &str, state: &str, commit: &str, at: &str) -> Value {
    json!({"id": id, "node_id": format!("PRR_{id}"), "user": {"login": login, "id": id, "type": "User"},
           "body": "", "state": state, "html_url": format!("https://github.com/quant/ppo/pull/7#pullrequestreview-{id}"),
           "pull_request_url": "https://api.github.com/repos/quant/ppo/pulls/7", "author_association": "MEMBER",
           "submitted_at": at, "commit_id": commit})
}

/// A time `secs` from now as GitHub writes it (`2026-11-26T09:00:00Z`). Decisions count only
/// when made after the request was logged, so the emulators' decisions are dated from now.
fn gh_at(secs: i64) -> String {
    let ms = govledger_client::time::now_ms() as i64 + secs * 1000;
    let t = govledger_client::time::rfc3339_ms(ms as u64);
    format!("{}Z", &t[..19])
}

/// A time `secs` from now as ServiceNow writes it (`2026-11-26 09:00:00`, UTC).
fn sn_at(secs: i64) -> String {
    gh_at(secs)[..19].replacen('T', " ", 1)
}

/// Names `request` in the pull request's and the change's descriptions.
fn mark(state: &Shared, request: &str) {
    let mut st = state.lock().unwrap();
    st.pr_body = format!("Release ppo 1.\n\ngovledger-request: {request}\n");
    st.change_description = format!("Model release.\r\nGovLedger-Request: {request}");
}

fn sign(k: &SignerKey, st: &Value) -> String {
    use base64::Engine;
    let c = ledger_format::jcs::canonicalize(st).unwrap();
    base64::engine::general_purpose::STANDARD.encode(k.sign_raw(c.as_bytes()))
}

/// Adds each of `keys` to `policy` as a person with the matching role of `roles`, and returns
/// them as the server's people, the ones named in `github` and `servicenow` (name, account)
/// mapped to those accounts.
fn people(
    policy: &mut String,
    keys: &[SignerKey],
    roles: &[&str],
    github: Option<(&str, &str)>,
    servicenow: Option<(&str, &str)>,
) -> Vec<PersonConfig> {
    let account = |m: Option<(&str, &str)>, name: &str| {
        m.filter(|(n, _)| *n == name).map(|(_, a)| a.to_owned())
    };
    keys.iter()
        .zip(roles)
        .map(|(k, r)| {
            policy.push_str(&format!(
                "[[people]]\nname = \"{}\"\nroles = [\"{r}\"]\nkey = \"{}\"\n",
                k.name(),
                k.verifier()
            ));
            PersonConfig {
                name: k.name().into(),
                roles: vec![(*r).into()],
                key: k.verifier().to_string(),
                github: account(github, k.name()),
                servicenow: account(servicenow, k.name()),
            }
        })
        .collect()
}

/// Writes `policy` with the log's key beside it, logs a lineage entry and a release request
/// signed by `requester` that names `sources` (its `github` and `servicenow` fields); returns
/// the policy file and the request's leaf hash.
async fn policy_and_request(
    s: &TestServer,
    work: &std::path::Path,
    policy: &str,
    requester: &SignerKey,
    sources: Value,
) -> (std::path::PathBuf, String) {
    let policy_path = work.join("policy.toml");
    std::fs::write(
        &policy_path,
        format!("{policy}[log]\nkey = \"{}\"\n", s.vkey),
    )
    .unwrap();
    let (code, req) = s
        .post(&release(s, requester, sources, None).await.to_string())
        .await;
    assert_eq!(code, 200, "{req}");
    (policy_path, req["leaf_hash"].as_str().unwrap().to_owned())
}

/// Logs a lineage entry and returns the submission of a release request signed by
/// `requester` whose statement has the fields of `sources` (`github`, `servicenow`, or any
/// field to override), with `entry_id` when given.
async fn release(
    s: &TestServer,
    requester: &SignerKey,
    sources: Value,
    entry_id: Option<&str>,
) -> Value {
    let art = format!("sha256:{}", "ab".repeat(32));
    let ds = format!("sha256:{}", "cd".repeat(32));
    let (_, lineage) = s
        .post(&json!({"kind": "lineage", "body": {"model_id": "ppo", "model_version": "1", "created_by": "t",
            "datasets": [{"name": "d", "type": "training", "sha256": ds, "size_bytes": 1}],
            "artifact": {"path": "p.pt", "sha256": art, "size_bytes": 1}}}).to_string())
        .await;
    let mut st = json!({"model_id": "ppo", "artifact_sha256": art, "dataset_sha256": [ds], "lineage": lineage["leaf_hash"],
                        "requested_by": requester.name(), "environment": "production", "policy": "p",
                        "signed_at": crate::harness::signed_now()});
    for (k, v) in sources.as_object().unwrap() {
        st[k] = v.clone();
    }
    let mut sub = json!({"kind": "approval_request", "body": {"statement": st, "signature": sign(requester, &st)}});
    if let Some(id) = entry_id {
        sub["entry_id"] = id.into();
    }
    sub
}

/// Runs the gate online against `url` with `--github-status`, on a blocking thread.
fn run_gate(
    policy: &std::path::Path,
    url: &str,
    request: &str,
    sources: govledger_client::gate::Sources,
    recheck: bool,
) -> tokio::task::JoinHandle<anyhow::Result<govledger_client::gate::Report>> {
    let (policy, url, request) = (policy.to_owned(), url.to_owned(), request.to_owned());
    tokio::task::spawn_blocking(move || {
        let args = govledger_client::gate::GateArgs {
            policy: &policy,
            bundle: None,
            url: Some(&url),
            request: &request,
            artifact: None,
            now_ms: govledger_client::time::now_ms(),
            recheck,
            sources,
            github_status: true,
        };
        crate::gate::gate_corpus::record(&args);
        govledger_client::gate::run(&args)
    })
}

#[tokio::test]
async fn github_and_servicenow_approvals_flow_into_the_log_and_the_gate() {
    let state: Shared = Arc::new(Mutex::new(Emulated::default()));
    {
        let mut s = state.lock().unwrap();
        for i in 0..150 {
            s.reviews
                .push(review(i, "ci-bot", "COMMENTED", HEAD, &gh_at(5)));
        }
        s.reviews
            .push(review(1001, "Bob-GH", "APPROVED", HEAD, &gh_at(60)));
        s.reviews
            .push(review(1002, "bob-gh", "APPROVED", OLD, &gh_at(30)));
        s.reviews
            .push(review(1003, "bob-gh", "DISMISSED", HEAD, &gh_at(40)));
        s.reviews
            .push(review(1004, "mallory-gh", "APPROVED", HEAD, &gh_at(70)));
        for i in 0..120 {
            s.approvals.push(json!({"sys_id": format!("filler-{i}"), "approver.user_name": "someone", "state": "requested", "sys_updated_on": sn_at(5)}));
        }
        s.approvals.push(json!({"sys_id": "sn-approved-1", "approver.user_name": "carol.sn", "state": "approved", "sys_updated_on": sn_at(90)}));
        s.approvals.push(json!({"sys_id": "sn-requested-2", "approver.user_name": "carol.sn", "state": "requested", "sys_updated_on": sn_at(91)}));
    }
    let emu = emulators(state.clone()).await;
    std::env::set_var("GOVLEDGER_TEST_GH_TOKEN", GH_TOKEN);
    std::env::set_var("GOVLEDGER_TEST_SN_PASSWORD", SN_PASSWORD);
    let keys: Vec<SignerKey> = ["alice", "bob", "carol"]
        .iter()
        .enumerate()
        .map(|(i, n)| SignerKey::from_seed(n, [i as u8 + 1; 32]).unwrap())
        .collect();
    let roles = ["quant", "engineering", "risk"];
    let mut policy = String::from("[approvals]\nmin_approvers = 2\naccept_imported = [\"github\", \"servicenow\"]\n[[approvals.require]]\nrole = \"engineering\"\nsource = \"github\"\n[[approvals.require]]\nrole = \"risk\"\nsource = \"servicenow\"\n");
    let people = people(
        &mut policy,
        &keys,
        &roles,
        Some(("bob", "bob-gh")),
        Some(("carol", "carol.sn")),
    );
    let emu2 = emu.clone();
    let s = start_with(move |c| {
        c.people = people;
        c.github = Some(GithubConfig {
            api_url: emu2.clone(),
            token_env: "GOVLEDGER_TEST_GH_TOKEN".into(),
            ..Default::default()
        });
        c.servicenow = Some(ServiceNowConfig {
            instance_url: emu2,
            user: Some("svc".into()),
            password_env: "GOVLEDGER_TEST_SN_PASSWORD".into(),
            token_env: "GOVLEDGER_TEST_SN_TOKEN_UNSET".into(),
            ..Default::default()
        });
    })
    .await;
    let work = tempfile::tempdir().unwrap();
    // A release request naming the pull request and the change.
    let (policy_path, request) = policy_and_request(
        &s,
        work.path(),
        &policy,
        &keys[0],
        json!({"github": {"repo": "quant/ppo", "pr": 7, "head_sha": HEAD}, "servicenow": {"change": "CHG0001"}}),
    )
    .await;
    mark(&state, &request);

    // Sync twice: two approvals, logged exactly once.
    let http = reqwest::Client::new();
    let sync = |source: Option<&str>| {
        let url = match source {
            Some(src) => format!("{}/v1/approvals/{request}/sync?source={src}", s.url),
            None => format!("{}/v1/approvals/{request}/sync", s.url),
        };
        let http = http.clone();
        async move {
            let r = http.post(url).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (code, v) = sync(None).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["appended"], 2, "{v:#}");
    let reasons: Vec<String> = v["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            format!(
                "{} {}",
                x["id"].as_str().unwrap(),
                x["reason"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        reasons.iter().any(|r| r.starts_with("1002 stale")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("1003 review state DISMISSED")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("1004") && r.contains("not mapped")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.starts_with("sn-requested-2")),
        "{reasons:?}"
    );
    let size = s.tree_size().await;
    let (code, v) = sync(None).await;
    assert_eq!((code, v["appended"].as_u64()), (200, Some(0)), "{v}");
    assert_eq!(v["logged"].as_array().unwrap().len(), 2);
    assert_eq!(s.tree_size().await, size, "a repeated sync appends nothing");

    // The gate passes with one GitHub and one ServiceNow approval, re-reads both, and posts
    // the commit status.
    std::env::set_var("GITHUB_TOKEN", GH_TOKEN);
    std::env::set_var("SERVICENOW_USER", "svc");
    std::env::set_var("SERVICENOW_PASSWORD", SN_PASSWORD);
    let gate = |recheck: bool| {
        let sources = govledger_client::gate::Sources {
            github_api: emu.clone(),
            github_app: None,
            servicenow_url: Some(emu.clone()),
        };
        let run = run_gate(&policy_path, &s.url, &request, sources, recheck);
        async move { run.await.unwrap().unwrap() }
    };
    let r = gate(true).await;
    assert!(r.ok, "{}", r.to_text());
    assert!(
        r.to_text().contains("evidence for bob (github, approve)"),
        "{}",
        r.to_text()
    );
    assert_eq!(r.github_status.as_deref(), Some("success"));
    {
        let st = state.lock().unwrap();
        let (sha, body) = st.statuses.last().unwrap();
        assert_eq!(
            (
                sha.as_str(),
                body["state"].as_str(),
                body["context"].as_str()
            ),
            (HEAD, Some("success"), Some("govledger/four-eyes"))
        );
        assert!(body["target_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/v1/approvals/{request}/bundle")));
    }

    // The review is dismissed at the source: re-reading refuses.
    state
        .lock()
        .unwrap()
        .reviews
        .iter_mut()
        .find(|r| r["id"] == 1001)
        .unwrap()["state"] = json!("DISMISSED");
    let r = gate(true).await;
    assert_eq!(r.failed, ["sources_recheck"], "{}", r.to_text());
    assert_eq!(
        state.lock().unwrap().statuses.last().unwrap().1["state"],
        "failure"
    );
    state
        .lock()
        .unwrap()
        .reviews
        .iter_mut()
        .find(|r| r["id"] == 1001)
        .unwrap()["state"] = json!("APPROVED");

    // Changes requested after the approval: a rejection that blocks (read through two 502s,
    // which the integration retries with backoff).
    state.lock().unwrap().fail_next = 2;
    state.lock().unwrap().reviews.push(review(
        1005,
        "bob-gh",
        "CHANGES_REQUESTED",
        HEAD,
        &gh_at(120),
    ));
    let (code, v) = sync(Some("github")).await;
    assert_eq!((code, v["appended"].as_u64()), (200, Some(1)), "{v}");
    assert_eq!(
        state.lock().unwrap().fail_next,
        0,
        "both failures were retried"
    );
    let r = gate(false).await;
    assert_eq!(
        r.failed,
        ["approvals", "required_sources", "no_later_rejection"],
        "{}",
        r.to_text()
    );

    // Rate limited: after the retries, 503 with Retry-After and a clear message.
    state.lock().unwrap().rate_limited = true;
    let r = http
        .post(format!(
            "{}/v1/approvals/{request}/sync?source=github",
            s.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "source_unavailable");
    assert!(
        v["message"].as_str().unwrap().contains("rate limited"),
        "{v}"
    );
    state.lock().unwrap().rate_limited = false;

    // Bad credentials: a clear error that never shows the token.
    std::env::set_var("GOVLEDGER_TEST_GH_TOKEN", "wrong-token");
    let (code, v) = sync(Some("github")).await;
    assert_eq!(code, 502, "{v}");
    let msg = v["message"].as_str().unwrap();
    assert!(msg.contains("rejected the credentials"), "{msg}");
    assert!(!msg.contains("wrong-token") && !msg.contains(GH_TOKEN));
    std::env::set_var("GOVLEDGER_TEST_SN_PASSWORD", "wrong");
    let (code, v) = sync(Some("servicenow")).await;
    assert_eq!(code, 502, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("rejected the credentials"),
        "{v}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_github_app_imports_reviews_and_publishes_the_verdict_as_a_check_run() {
    let state: Shared = Arc::new(Mutex::new(Emulated::default()));
    state
        .lock()
        .unwrap()
        .reviews
        .push(review(2001, "bob-gh", "APPROVED", HEAD, &gh_at(60)));
    // As GitHub Enterprise: the API under /api/v3, which every call (the App's JWT and
    // token exchange included) must keep.
    let emu = emulators_at(state.clone(), "/api/v3").await;
    let keys: Vec<SignerKey> = ["alice", "bob", "carol"]
        .iter()
        .enumerate()
        .map(|(i, n)| SignerKey::from_seed(n, [i as u8 + 11; 32]).unwrap())
        .collect();
    let roles = ["quant", "engineering", "risk"];
    let mut policy = String::from("[approvals]\nmin_approvers = 2\naccept_imported = [\"github\"]\n[[approvals.require]]\nrole = \"engineering\"\nsource = \"github\"\n[[approvals.require]]\nrole = \"risk\"\nsource = \"signed\"\n");
    let people = people(&mut policy, &keys, &roles, Some(("bob", "bob-gh")), None);
    let app = |key: &str, installation: Option<u64>| GithubConfig {
        api_url: emu.clone(),
        token_env: "GOVLEDGER_TEST_GH_TOKEN_UNSET".into(),
        app_id: Some(APP_ID),
        app_key: Some(fixture(key)),
        installation_id: installation,
    };
    let cfg = app("github-app.pem", None);
    let s = start_with(move |c| {
        c.people = people;
        c.github = Some(cfg);
    })
    .await;
    let work = tempfile::tempdir().unwrap();
    let (policy_path, request) = policy_and_request(
        &s,
        work.path(),
        &policy,
        &keys[0],
        json!({"github": {"repo": "quant/ppo", "pr": 7, "head_sha": HEAD}}),
    )
    .await;
    mark(&state, &request);
    let art = format!("sha256:{}", "ab".repeat(32));

    // The server finds the installation on quant/ppo with the App's JWT, takes an
    // installation token and reads the reviews with it.
    let http = reqwest::Client::new();
    let sync_url = format!("{}/v1/approvals/{request}/sync?source=github", s.url);
    let sync = || async {
        let r = http.post(&sync_url).send().await.unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    };
    // (installation lookups, installation tokens) the emulated GitHub answered.
    let exchanges = || {
        let st = state.lock().unwrap();
        (st.installation_lookups, st.app_tokens.len())
    };
    let v = sync().await.1;
    assert_eq!(v["appended"], 1, "{v:#}");
    assert_eq!(exchanges(), (1, 1));
    // A second sync reuses the installation and its token.
    let v = sync().await.1;
    assert_eq!(v["appended"], 0, "{v:#}");
    assert_eq!(exchanges(), (1, 1));
    // The token is revoked: that sync fails clearly, the next one takes a new token.
    {
        let mut st = state.lock().unwrap();
        let t = st.app_tokens[0].clone();
        st.revoked.push(t);
    }
    let (code, v) = sync().await;
    assert_eq!(code, 502);
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("rejected the credentials"),
        "{v}"
    );
    let v = sync().await.1;
    assert_eq!(v["appended"], 0, "{v:#}");
    assert_eq!(exchanges(), (2, 2));
    let rst = json!({"request": request, "artifact_sha256": art, "decision": "approve", "approver": "carol",
                     "role": "risk", "signed_at": crate::harness::signed_now()});
    let (code, v) = s
        .post(&json!({"kind": "approval", "body": {"statement": rst, "signature": sign(&keys[2], &rst)}}).to_string())
        .await;
    assert_eq!(code, 200, "{v}");

    // The gate, as the same App, re-reads the review and publishes a check run.
    let gate = |key: &str, installation: Option<u64>| {
        let sources = govledger_client::gate::Sources {
            github_api: emu.clone(),
            github_app: Some(govledger_client::github::App {
                id: APP_ID,
                key: fixture(key),
                installation,
            }),
            servicenow_url: None,
        };
        let run = run_gate(&policy_path, &s.url, &request, sources, true);
        async move { run.await.unwrap() }
    };
    let r = gate("github-app.pem", None).await.unwrap();
    assert!(r.ok, "{}", r.to_text());
    assert_eq!(r.github_status.as_deref(), Some("success"));
    assert_eq!(r.github_check_run, Some(7001));
    assert!(
        r.to_text()
            .contains("check run govledger/four-eyes (7001): success"),
        "{}",
        r.to_text()
    );
    {
        let st = state.lock().unwrap();
        let run = st.check_runs.last().unwrap();
        assert_eq!(
            (
                run["name"].as_str(),
                run["head_sha"].as_str(),
                run["status"].as_str(),
                run["conclusion"].as_str()
            ),
            (
                Some("govledger/four-eyes"),
                Some(HEAD),
                Some("completed"),
                Some("success")
            )
        );
        assert!(run["details_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/v1/approvals/{request}/bundle")));
        assert!(st.statuses.is_empty(), "an App publishes a check run");
        // One installation token for the whole gate run (re-read and check run).
        assert_eq!((st.installation_lookups, st.app_tokens.len()), (3, 3));
    }

    // The review is dismissed: the recheck refuses and the check run says failure; with the
    // installation given, no lookup is made.
    state.lock().unwrap().reviews[0]["state"] = json!("DISMISSED");
    let r = gate("github-app.pem", Some(INSTALLATION)).await.unwrap();
    assert_eq!(r.failed, ["sources_recheck"], "{}", r.to_text());
    {
        let st = state.lock().unwrap();
        assert_eq!(st.check_runs.last().unwrap()["conclusion"], "failure");
        assert_eq!(st.installation_lookups, 3);
    }

    // A key GitHub does not know: clear errors, from the gate and from the server, and no key
    // material in them.
    let e = gate("github-app-other.pem", None).await.unwrap_err();
    let msg = format!("{e:#}");
    assert!(
        msg.contains("GitHub rejected the credentials (401"),
        "{msg}"
    );
    assert!(!msg.contains("PRIVATE KEY"), "{msg}");
    s.stop().await;
    let gh = govledger::integrations::github::GitHub::new(&app(
        "github-app-other.pem",
        Some(INSTALLATION),
    ))
    .unwrap();
    let e = match gh
        .decisions(
            "quant/ppo",
            7,
            HEAD,
            &govledger::integrations::Mapping::default(),
        )
        .await
    {
        Err(e) => e,
        Ok(_) => panic!("an unknown App key was accepted"),
    };
    assert_eq!(e.status, 502, "{}", e.message);
    assert!(
        e.message.contains("rejected the credentials"),
        "{}",
        e.message
    );
    assert!(!e.message.contains("PRIVATE KEY"), "{}", e.message);
    // A key file that is not an RSA key stops the start.
    let bad = work.path().join("not-a-key.pem");
    std::fs::write(
        &bad,
        "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n",
    )
    .unwrap();
    let mut cfg = app("github-app.pem", None);
    cfg.app_key = Some(bad);
    let e = govledger::integrations::github::GitHub::new(&cfg)
        .err()
        .expect("a broken App key is refused");
    assert!(e.to_string().contains("is not an RSA private key"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servicenow_oauth_tokens_are_taken_kept_and_renewed() {
    let state: Shared = Arc::new(Mutex::new(Emulated::default()));
    state.lock().unwrap().approvals.push(
        json!({"sys_id": "sn-approved-9", "approver.user_name": "carol.sn",
        "state": "approved", "sys_updated_on": sn_at(1)}),
    );
    let emu = emulators(state.clone()).await;
    std::env::set_var("GOVLEDGER_TEST_SN_OAUTH_SECRET", SN_CLIENT_SECRET);
    let keys: Vec<SignerKey> = ["alice", "carol"]
        .iter()
        .enumerate()
        .map(|(i, n)| SignerKey::from_seed(n, [i as u8 + 31; 32]).unwrap())
        .collect();
    let mut policy =
        String::from("[approvals]\nmin_approvers = 1\naccept_imported = [\"servicenow\"]\n");
    let people = people(
        &mut policy,
        &keys,
        &["quant", "risk"],
        None,
        Some(("carol", "carol.sn")),
    );
    let emu2 = emu.clone();
    let s = start_with(move |c| {
        c.people = people;
        c.servicenow = Some(ServiceNowConfig {
            instance_url: emu2,
            token_env: "GOVLEDGER_TEST_SN_TOKEN_UNSET".into(),
            password_env: "GOVLEDGER_TEST_SN_PASSWORD_UNSET".into(),
            oauth_client_id: Some(SN_CLIENT_ID.into()),
            oauth_secret_env: "GOVLEDGER_TEST_SN_OAUTH_SECRET".into(),
            ..Default::default()
        });
    })
    .await;
    let work = tempfile::tempdir().unwrap();
    let (_, request) = policy_and_request(
        &s,
        work.path(),
        &policy,
        &keys[0],
        json!({"servicenow": {"change": "CHG0001"}}),
    )
    .await;
    mark(&state, &request);
    let http = reqwest::Client::new();
    let url = format!("{}/v1/approvals/{request}/sync?source=servicenow", s.url);
    let sync = || async {
        let r = http.post(&url).send().await.unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    };
    let grants = || state.lock().unwrap().sn_grants.clone();
    // Client credentials: one token, kept for the next sync.
    let (code, v) = sync().await;
    assert_eq!((code, v["appended"].as_u64()), (200, Some(1)), "{v}");
    assert_eq!(sync().await.0, 200);
    assert_eq!(grants(), ["client_credentials"]);
    // Revoked: the Table API's 401 drops it and the same sync takes a new one.
    state.lock().unwrap().sn_revoked.push("sn-oauth-1".into());
    assert_eq!(sync().await.0, 200);
    assert_eq!(grants().len(), 2);
    // Renewed before it expires (ServiceNow's expires_in less a minute).
    state.lock().unwrap().sn_expires_in = 61;
    state.lock().unwrap().sn_revoked.push("sn-oauth-2".into());
    assert_eq!(sync().await.0, 200);
    assert_eq!(grants().len(), 3);
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    assert_eq!(sync().await.0, 200);
    assert_eq!(grants().len(), 4, "the token was renewed");
    // The gate re-reads the approval with its own OAuth token (the CLI, with the client's
    // credentials in its environment only).
    let before = grants().len();
    let policy_path = work.path().join("policy.toml");
    let (cli, surl, req, emu3) = (
        crate::tls::govledger_cli(),
        s.url.clone(),
        request.clone(),
        emu.clone(),
    );
    let o = tokio::task::spawn_blocking(move || {
        std::process::Command::new(cli)
            .args(["gate", "--policy"])
            .arg(&policy_path)
            .args([
                "--url",
                &surl,
                "--request",
                &req,
                "--recheck-sources",
                "--json",
            ])
            .args(["--servicenow-url", &emu3])
            .env("SERVICENOW_CLIENT_ID", SN_CLIENT_ID)
            .env("SERVICENOW_CLIENT_SECRET", SN_CLIENT_SECRET)
            .env_remove("SERVICENOW_TOKEN")
            .env_remove("SERVICENOW_USER")
            .env_remove("SERVICENOW_PASSWORD")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let report: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&o.stderr)));
    let recheck = report["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule"] == "sources_recheck")
        .cloned()
        .unwrap_or_else(|| panic!("{report:#}"));
    assert_eq!(recheck["ok"], true, "{report:#}");
    assert_eq!(grants().len(), before + 1, "{report:#}");
    assert_eq!(grants().last().unwrap(), "client_credentials");

    // A wrong client secret: a clear error that does not show it.
    std::env::set_var("GOVLEDGER_TEST_SN_OAUTH_SECRET", "wrong-secret");
    state.lock().unwrap().sn_revoked.push("sn-oauth-4".into());
    let (code, v) = sync().await;
    assert_eq!(code, 502, "{v}");
    let msg = v["message"].as_str().unwrap();
    assert!(
        msg.contains("OAuth endpoint rejected the credentials"),
        "{msg}"
    );
    assert!(
        !msg.contains("wrong-secret") && !msg.contains(SN_CLIENT_SECRET),
        "{msg}"
    );
    s.stop().await;

    // With a user and password configured, the password grant.
    std::env::set_var("GOVLEDGER_TEST_SN_OAUTH_SECRET2", SN_CLIENT_SECRET);
    std::env::set_var("GOVLEDGER_TEST_SN_OAUTH_PASSWORD", SN_PASSWORD);
    let sn = govledger::integrations::servicenow::ServiceNow::new(&ServiceNowConfig {
        instance_url: emu.clone(),
        user: Some("svc".into()),
        password_env: "GOVLEDGER_TEST_SN_OAUTH_PASSWORD".into(),
        token_env: "GOVLEDGER_TEST_SN_TOKEN_UNSET".into(),
        oauth_client_id: Some(SN_CLIENT_ID.into()),
        oauth_secret_env: "GOVLEDGER_TEST_SN_OAUTH_SECRET2".into(),
    })
    .unwrap();
    let mut mapping = govledger::integrations::Mapping::default();
    mapping.servicenow.insert("carol.sn".into(), "carol".into());
    let read = sn.decisions("CHG0001", &mapping).await.unwrap();
    assert_eq!(read.imported.len(), 1);
    assert!(read.description.contains("GovLedger-Request:"));
    assert_eq!(grants().last().unwrap(), "password");
}

/// A server reading both emulated sources, with alice (quant, the requester), bob
/// (engineering, GitHub `bob-gh`) and carol (risk, ServiceNow `carol.sn`), whose own policy is
/// `approvals` (a policy file's `[approvals]` table) with the three as its people.
struct TwoSources {
    s: TestServer,
    state: Shared,
    keys: Vec<SignerKey>,
    _work: tempfile::TempDir,
}

async fn two_sources(seed: u8, approvals: &str) -> TwoSources {
    let state: Shared = Arc::new(Mutex::new(Emulated::default()));
    let emu = emulators(state.clone()).await;
    // Variables of these tests only: others set theirs to wrong values on purpose.
    std::env::set_var("GOVLEDGER_TEST_BIND_GH_TOKEN", GH_TOKEN);
    std::env::set_var("GOVLEDGER_TEST_BIND_SN_PASSWORD", SN_PASSWORD);
    let keys: Vec<SignerKey> = ["alice", "bob", "carol"]
        .iter()
        .enumerate()
        .map(|(i, n)| SignerKey::from_seed(n, [i as u8 + seed; 32]).unwrap())
        .collect();
    let mut policy = String::from(approvals);
    let people = people(
        &mut policy,
        &keys,
        &["quant", "engineering", "risk"],
        Some(("bob", "bob-gh")),
        Some(("carol", "carol.sn")),
    );
    let work = tempfile::tempdir().unwrap();
    let policy_path = work.path().join("server-policy.toml");
    std::fs::write(&policy_path, policy).unwrap();
    let s = start_with(move |c| {
        c.people = people;
        c.policy = Some(policy_path);
        c.github = Some(GithubConfig {
            api_url: emu.clone(),
            token_env: "GOVLEDGER_TEST_BIND_GH_TOKEN".into(),
            ..Default::default()
        });
        c.servicenow = Some(ServiceNowConfig {
            instance_url: emu,
            user: Some("svc".into()),
            password_env: "GOVLEDGER_TEST_BIND_SN_PASSWORD".into(),
            token_env: "GOVLEDGER_TEST_SN_TOKEN_UNSET".into(),
            ..Default::default()
        });
    })
    .await;
    TwoSources {
        s,
        state,
        keys,
        _work: work,
    }
}

impl TwoSources {
    async fn sync(&self, request: &str) -> (u16, Value) {
        let r = self
            .s
            .http
            .post(format!("{}/v1/approvals/{request}/sync", self.s.url))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    async fn status(&self, request: &str) -> String {
        let (code, v) = self.s.get_json(&format!("/v1/approvals/{request}")).await;
        assert_eq!(code, 200, "{v}");
        v["status"].as_str().unwrap().to_owned()
    }
}

/// `skipped` as "source id: reason" lines.
fn skipped(v: &Value) -> Vec<String> {
    v["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| format!("{} {}: {}", x["source"], x["id"], x["reason"]))
        .collect()
}

const PR7: &str =
    r#"{"repo": "quant/ppo", "pr": 7, "head_sha": "1111111111111111111111111111111111111111"}"#;

/// A PR or change counts only for the request it names back and that first named it; later
/// requests get 409 `source_bound`; import ids carry the request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_count_only_for_the_release_the_pr_and_the_change_name() {
    let t = two_sources(
        51,
        "[approvals]\nmin_approvers = 2\naccept_imported = [\"github\", \"servicenow\"]\n",
    )
    .await;
    // bob and carol approved this PR and this change an hour ago, for another release.
    {
        let mut st = t.state.lock().unwrap();
        st.reviews
            .push(review(3001, "bob-gh", "APPROVED", HEAD, &gh_at(-3600)));
        st.approvals.push(
            json!({"sys_id": "sn-old-1", "approver.user_name": "carol.sn",
            "state": "approved", "sys_updated_on": sn_at(-3600)}),
        );
    }
    let pr: Value = serde_json::from_str(PR7).unwrap();
    let sources = json!({"github": pr, "servicenow": {"change": "CHG0001"}});
    let sub = release(&t.s, &t.keys[0], sources.clone(), Some("release-1")).await;
    let (code, v) = t.s.post(&sub.to_string()).await;
    assert_eq!(code, 200, "{v}");
    let request = v["leaf_hash"].as_str().unwrap().to_owned();

    // Neither the PR nor the change names the request: nothing is imported, and the sync
    // says why for each source.
    let (code, v) = t.sync(&request).await;
    assert_eq!((code, v["appended"].as_u64()), (200, Some(0)), "{v:#}");
    let why = skipped(&v);
    assert!(
        why.iter()
            .any(|r| r.starts_with("\"github\" \"quant/ppo#7\"")
                && r.contains("does not name this request")),
        "{why:?}"
    );
    assert!(
        why.iter()
            .any(|r| r.starts_with("\"servicenow\" \"CHG0001\"")
                && r.contains("does not name this request")),
        "{why:?}"
    );
    assert_eq!(t.status(&request).await, "pending");
    // The PR names another request: still nothing.
    t.state.lock().unwrap().pr_body = format!("govledger-request: {}", "ab".repeat(32));
    let (_, v) = t.sync(&request).await;
    assert!(
        skipped(&v)
            .iter()
            .any(|r| r.contains("names another request")),
        "{v:#}"
    );

    // Both name it: the decisions made before the request was logged still do not count.
    mark(&t.state, &request);
    let (code, v) = t.sync(&request).await;
    assert_eq!((code, v["appended"].as_u64()), (200, Some(0)), "{v:#}");
    let why = skipped(&v);
    for id in ["3001", "sn-old-1"] {
        assert!(
            why.iter()
                .any(|r| r.contains(&format!("\"{id}\""))
                    && r.contains("before the request was logged")),
            "{id}: {why:?}"
        );
    }
    assert_eq!(t.status(&request).await, "pending");

    // Decisions made for it count; their entry ids carry the request.
    {
        let mut st = t.state.lock().unwrap();
        st.reviews
            .push(review(3002, "bob-gh", "APPROVED", HEAD, &gh_at(30)));
        st.approvals.push(
            json!({"sys_id": "sn-new-1", "approver.user_name": "carol.sn",
            "state": "approved", "sys_updated_on": sn_at(40)}),
        );
    }
    let (code, v) = t.sync(&request).await;
    assert_eq!((code, v["appended"].as_u64()), (200, Some(2)), "{v:#}");
    let ids: Vec<&str> = v["logged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["entry_id"].as_str().unwrap())
        .collect();
    let scope = &request[..16];
    assert!(
        ids[0].starts_with(&format!("github-review-{scope}-3002-"))
            && ids[0].len() == 14 + 17 + 5 + 16,
        "{ids:?}"
    );
    assert!(
        ids[1].starts_with(&format!("servicenow-{scope}-sn-new-1-")),
        "{ids:?}"
    );
    assert_eq!(
        v["logged"][0]["decided_at"],
        v["logged"][0]["evidence"]["submitted_at"]
    );
    assert_eq!(t.status(&request).await, "approved");

    // A later request naming the bound PR, or the bound change, is refused.
    let size = t.s.tree_size().await;
    for (field, named) in [
        (
            "github",
            json!({"github": pr, "signed_at": crate::harness::signed_now()}),
        ),
        (
            "servicenow",
            json!({"servicenow": {"change": "CHG0001"}, "signed_at": crate::harness::signed_now()}),
        ),
        (
            "github",
            // The repository's case does not matter to GitHub, nor to the binding.
            json!({"github": {"repo": "Quant/PPO", "pr": 7, "head_sha": HEAD}}),
        ),
    ] {
        let sub = release(&t.s, &t.keys[0], named, None).await;
        let (code, v) = t.s.post(&sub.to_string()).await;
        assert_eq!(code, 409, "{v}");
        assert_eq!(v["error"], "source_bound", "{v}");
        assert_eq!(v["field"], format!("body.statement.{field}"), "{v}");
        assert!(v["message"].as_str().unwrap().contains(&request), "{v}");
    }
    // Another PR is free.
    let other = json!({"github": {"repo": "quant/ppo", "pr": 8, "head_sha": HEAD}});
    let (code, v) =
        t.s.post(&release(&t.s, &t.keys[0], other, None).await.to_string())
            .await;
    assert_eq!(code, 200, "{v}");
    // The same request again (a retry) gets its original receipt.
    let size_before_retry = t.s.tree_size().await;
    assert!(size_before_retry > size);
    let (code, v) = t.s.post(&sub.to_string()).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["leaf_hash"].as_str(), Some(request.as_str()), "{v}");
    assert_eq!(t.s.tree_size().await, size_before_retry);
    t.s.stop().await;
}

/// A decision that changes at the source is a new entry (the id carries the body digest), so a
/// later rejection is logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_servicenow_decision_that_changes_is_logged_again() {
    let t = two_sources(
        61,
        "[approvals]\nmin_approvers = 1\naccept_imported = [\"servicenow\"]\n",
    )
    .await;
    let sub = release(
        &t.s,
        &t.keys[0],
        json!({"servicenow": {"change": "CHG0001"}}),
        None,
    )
    .await;
    let (code, v) = t.s.post(&sub.to_string()).await;
    assert_eq!(code, 200, "{v}");
    let request = v["leaf_hash"].as_str().unwrap().to_owned();
    mark(&t.state, &request);
    t.state.lock().unwrap().approvals.push(
        json!({"sys_id": "sn-flip-1", "approver.user_name": "carol.sn",
        "state": "approved", "sys_updated_on": sn_at(30)}),
    );
    let (code, v) = t.sync(&request).await;
    assert_eq!((code, v["appended"].as_u64()), (200, Some(1)), "{v:#}");
    assert_eq!(t.status(&request).await, "approved");
    let size = t.s.tree_size().await;

    // carol changes her mind a minute later.
    {
        let mut st = t.state.lock().unwrap();
        st.approvals[0]["state"] = "rejected".into();
        st.approvals[0]["sys_updated_on"] = sn_at(90).into();
    }
    let (code, v) = t.sync(&request).await;
    assert_eq!((code, v["appended"].as_u64()), (200, Some(1)), "{v:#}");
    assert_eq!(v["logged"][0]["decision"], "reject", "{v:#}");
    assert_eq!(
        t.s.tree_size().await,
        size + 1,
        "the approval stays, the rejection is added"
    );
    assert_ne!(t.status(&request).await, "approved");
    let (_, st) = t.s.get_json(&format!("/v1/approvals/{request}")).await;
    assert_eq!(st["status"], "rejected", "{st:#}");
    // Nothing more to log.
    let (code, v) = t.sync(&request).await;
    assert_eq!((code, v["appended"].as_u64()), (200, Some(0)), "{v:#}");
    t.s.stop().await;
}

/// A record that cannot be logged is skipped with its reason; the others are logged and the
/// server keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_records_that_cannot_be_logged_are_skipped_and_the_server_keeps_serving() {
    let t = two_sources(
        71,
        "[approvals]\nmin_approvers = 2\naccept_imported = [\"github\", \"servicenow\"]\n",
    )
    .await;
    let pr: Value = serde_json::from_str(PR7).unwrap();
    let sub = release(
        &t.s,
        &t.keys[0],
        json!({"github": pr, "servicenow": {"change": "CHG0001"}}),
        None,
    )
    .await;
    let (code, v) = t.s.post(&sub.to_string()).await;
    assert_eq!(code, 200, "{v}");
    let request = v["leaf_hash"].as_str().unwrap().to_owned();
    mark(&t.state, &request);
    let long = "x".repeat(300);
    {
        let mut st = t.state.lock().unwrap();
        let rec = |id: &str, user: &str, at: String| json!({"sys_id": id, "approver.user_name": user, "state": "approved", "sys_updated_on": at});
        st.approvals.push(rec("bad id", "carol.sn", sn_at(20)));
        st.approvals.push(rec(&long, "carol.sn", sn_at(21)));
        st.approvals
            .push(rec("sn-quote-1", "carol.sn^ORx", sn_at(22)));
        st.approvals.push(rec("sn-zed-1", "zed", sn_at(23)));
        st.approvals
            .push(rec("sn-time-1", "carol.sn", "yesterday".into()));
        // An hour ahead of the server's clock: refused by the submission check every import
        // passes (400 decided_at_invalid), imported by a later sync once it is due.
        st.approvals
            .push(rec("sn-ahead-1", "carol.sn", sn_at(3600)));
        st.approvals.push(rec("sn-good-1", "carol.sn", sn_at(24)));
        let mut no_id = review(1, "bob-gh", "APPROVED", HEAD, &gh_at(25));
        no_id["id"] = "4000".into();
        st.reviews.push(no_id);
        st.reviews
            .push(review(4001, "bob gh", "APPROVED", HEAD, &gh_at(26)));
        st.reviews
            .push(review(4002, "bob-gh", "APPROVED", HEAD, &gh_at(27)));
    }
    let (code, v) = t.sync(&request).await;
    assert_eq!((code, v["appended"].as_u64()), (200, Some(2)), "{v:#}");
    let why = skipped(&v);
    for (id, reason) in [
        ("\"bad id\"", "not a plain identifier"),
        (&format!("\"{}\"", "x".repeat(64)), "not a plain identifier"),
        ("\"sn-quote-1\"", "is not plain"),
        ("\"sn-zed-1\"", "not mapped"),
        ("\"sn-time-1\"", "is not a time"),
        ("\"sn-ahead-1\"", "decided_at_invalid: decided at"),
        ("\"\\\"4000\\\"\"", "no id"),
        ("\"4001\"", "is not plain"),
    ] {
        assert!(
            why.iter().any(|r| r.contains(id) && r.contains(reason)),
            "{id} {reason}: {why:?}"
        );
    }
    let logged: Vec<&str> = v["logged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    assert_eq!(logged, ["sn-good-1", "4002"], "{v:#}");
    // The server still serves and appends.
    let (code, v) =
        t.s.post(&json!({"kind": "audit", "body": crate::harness::audit(1)}).to_string())
            .await;
    assert_eq!(code, 200, "{v}");
    let (code, v) = t.sync(&request).await;
    assert_eq!((code, v["appended"].as_u64()), (200, Some(0)), "{v:#}");
    t.s.stop().await;
}

/// Source identifiers must be plain: the schema refuses unsafe change numbers, and the
/// integrations refuse to query or build URLs with one.
#[tokio::test]
async fn source_queries_carry_only_plain_identifiers() {
    let state: Shared = Arc::new(Mutex::new(Emulated::default()));
    let emu = emulators(state.clone()).await;
    std::env::set_var("GOVLEDGER_TEST_PLAIN_SN_PASSWORD", SN_PASSWORD);
    std::env::set_var("GOVLEDGER_TEST_PLAIN_GH_TOKEN", GH_TOKEN);
    let sn = govledger::integrations::servicenow::ServiceNow::new(&ServiceNowConfig {
        instance_url: emu.clone(),
        user: Some("svc".into()),
        password_env: "GOVLEDGER_TEST_PLAIN_SN_PASSWORD".into(),
        token_env: "GOVLEDGER_TEST_SN_TOKEN_UNSET".into(),
        ..Default::default()
    })
    .unwrap();
    let who = govledger::integrations::Mapping::default();
    for bad in [
        "CHG0001^ORnumber=CHG0002",
        "CHG0001 2",
        "CHG0001&sysparm_limit=1000",
    ] {
        match sn.decisions(bad, &who).await {
            Err(e) => {
                assert_eq!(e.status, 400, "{bad}: {}", e.message);
                assert!(
                    e.message.contains("not a plain change number"),
                    "{}",
                    e.message
                );
            }
            Ok(_) => panic!("{bad} was queried"),
        }
    }
    assert!(state.lock().unwrap().sn_queries.is_empty());
    // The instance answers with a sys_id carrying query syntax: it is not queried.
    state.lock().unwrap().change_sys_id = Some("chg-sys-1^ORsysapprovalISNOTEMPTY".into());
    match sn.decisions("CHG0001", &who).await {
        Err(e) => {
            assert_eq!(e.status, 502, "{}", e.message);
            assert!(
                e.message.contains("not a plain identifier"),
                "{}",
                e.message
            );
        }
        Ok(_) => panic!("the change's sys_id went into a query"),
    }
    let queried: Vec<String> = state
        .lock()
        .unwrap()
        .sn_queries
        .iter()
        .map(|(t, _)| t.clone())
        .collect();
    assert_eq!(queried, ["change_request"]);

    let gh = govledger::integrations::github::GitHub::new(&GithubConfig {
        api_url: emu,
        token_env: "GOVLEDGER_TEST_PLAIN_GH_TOKEN".into(),
        ..Default::default()
    })
    .unwrap();
    for (repo, pr, head) in [
        ("quant/ppo/../../orgs/x", 7, HEAD),
        ("quant/ppo?x=", 7, HEAD),
        ("quant/ppo", 0, HEAD),
        ("quant/ppo", 7, "main"),
    ] {
        match gh.decisions(repo, pr, head, &who).await {
            Err(e) => assert_eq!(e.status, 400, "{repo} {pr} {head}: {}", e.message),
            Ok(_) => panic!("{repo} {pr} {head} went into a URL"),
        }
    }
}

/// One GitHub login (case-insensitive) or ServiceNow user maps to one person; otherwise the
/// start fails, naming both. One person may have several accounts.
#[tokio::test]
async fn one_source_account_maps_to_one_person() {
    let keys: Vec<SignerKey> = ["bob", "mallory"]
        .iter()
        .enumerate()
        .map(|(i, n)| SignerKey::from_seed(n, [i as u8 + 81; 32]).unwrap())
        .collect();
    let person = |k: &SignerKey, github: Option<&str>, servicenow: Option<&str>| PersonConfig {
        name: k.name().into(),
        roles: vec!["engineering".into()],
        key: k.verifier().to_string(),
        github: github.map(Into::into),
        servicenow: servicenow.map(Into::into),
    };
    let dir = tempfile::tempdir().unwrap();
    let config = |people: Vec<PersonConfig>| govledger::config::Config {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        people,
        ..Default::default()
    };
    for (people, what) in [
        (
            vec![
                person(&keys[0], Some("bob-gh"), None),
                person(&keys[1], Some("Bob-GH"), None),
            ],
            "GitHub login",
        ),
        (
            vec![
                person(&keys[0], None, Some("bob.smith")),
                person(&keys[1], Some("mallory-gh"), Some("bob.smith")),
            ],
            "ServiceNow user",
        ),
    ] {
        let e = govledger::server::run(config(people), async {}, |_, _| {})
            .await
            .expect_err("the server started with one account for two people");
        let msg = format!("{e:#}");
        assert!(
            msg.contains(what) && msg.contains("bob") && msg.contains("mallory"),
            "{msg}"
        );
    }
    let fine = config(vec![
        person(&keys[0], Some("bob-gh"), Some("bob.smith")),
        person(&keys[0], Some("bob-gh"), None),
        person(&keys[0], Some("bob-gh-2"), None),
    ]);
    let m = govledger::settings::Settings::new(fine).unwrap().accounts;
    assert_eq!(m.github_person("BOB-GH").map(String::as_str), Some("bob"));
    // Not an account name.
    let e =
        govledger::settings::Settings::new(config(vec![person(&keys[0], Some("bob gh"), None)]))
            .err()
            .unwrap();
    assert!(format!("{e:#}").contains("bob gh"), "{e:#}");
}

/// The order of syncs cannot change the verdict: the decision's own time orders a person's
/// decisions, and a standing rejection blocks whoever approved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_order_of_syncs_cannot_change_the_verdict() {
    let t = two_sources(
        81,
        "[approvals]\nmin_approvers = 1\naccept_imported = [\"github\", \"servicenow\"]\n",
    )
    .await;
    let pr: Value = serde_json::from_str(PR7).unwrap();
    let sub = release(
        &t.s,
        &t.keys[0],
        json!({"github": pr, "servicenow": {"change": "CHG0001"}}),
        None,
    )
    .await;
    let (code, v) = t.s.post(&sub.to_string()).await;
    assert_eq!(code, 200, "{v}");
    let request = v["leaf_hash"].as_str().unwrap().to_owned();
    mark(&t.state, &request);
    {
        let mut st = t.state.lock().unwrap();
        st.reviews
            .push(review(5001, "bob-gh", "APPROVED", HEAD, &gh_at(1)));
        st.approvals.push(
            json!({"sys_id": "sn-order-1", "approver.user_name": "carol.sn",
            "state": "rejected", "sys_updated_on": sn_at(3)}),
        );
    }
    for source in ["servicenow", "github"] {
        let r =
            t.s.http
                .post(format!(
                    "{}/v1/approvals/{request}/sync?source={source}",
                    t.s.url
                ))
                .send()
                .await
                .unwrap();
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["appended"].as_u64(), Some(1), "{source}: {v:#}");
    }
    let (_, st) = t.s.get_json(&format!("/v1/approvals/{request}")).await;
    assert_eq!(st["status"], "rejected", "{st:#}");
    t.s.stop().await;
}
