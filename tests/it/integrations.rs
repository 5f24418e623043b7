//! GitHub reviews and ServiceNow change approvals imported as approvals, against local HTTP
//! servers that emulate the GitHub REST API and the ServiceNow Table API with their documented
//! JSON shapes (pagination, errors): exactly once across syncs, stale and dismissed reviews
//! ignored, changes requested blocks, the commit status posted, bad credentials reported
//! clearly, and the gate passing with one GitHub and one ServiceNow approval.

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

use crate::harness::start_with;

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
}

type Shared = Arc<Mutex<Emulated>>;

/// Returns the 401 answer unless the request carries the token.
fn gh_auth(h: &HeaderMap) -> Option<Response> {
    let ok = h
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {GH_TOKEN}") || v == format!("token {GH_TOKEN}"));
    (!ok).then(|| (StatusCode::UNAUTHORIZED, Json(json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest", "status": "401"}))).into_response())
}

async fn list_reviews(
    State(s): State<Shared>,
    h: HeaderMap,
    Path((o, r, n)): Path<(String, String, u64)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(e) = gh_auth(&h) {
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

async fn one_review(
    State(s): State<Shared>,
    h: HeaderMap,
    Path((_, _, _, id)): Path<(String, String, u64, u64)>,
) -> Response {
    if let Some(e) = gh_auth(&h) {
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
    if let Some(e) = gh_auth(&h) {
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
fn sn_auth(h: &HeaderMap) -> Option<Response> {
    use base64::Engine;
    let want = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("svc:{SN_PASSWORD}"))
    );
    (h.get("authorization").and_then(|v| v.to_str().ok()) != Some(want.as_str())).then(|| {
        (StatusCode::UNAUTHORIZED, Json(json!({"error": {"message": "User Not Authenticated", "detail": "Required to provide Auth information"}, "status": "failure"}))).into_response()
    })
}

async fn changes(h: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    if let Some(e) = sn_auth(&h) {
        return e;
    }
    let result = if q.get("sysparm_query").map(String::as_str) == Some("number=CHG0001") {
        vec![json!({"sys_id": "chg-sys-1", "number": "CHG0001"})]
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
    if let Some(e) = sn_auth(&h) {
        return e;
    }
    assert!(
        q["sysparm_query"].starts_with("sysapproval=chg-sys-1"),
        "{q:?}"
    );
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
    if let Some(e) = sn_auth(&h) {
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
    let app = axum::Router::new()
        .route("/repos/{o}/{r}/pulls/{n}/reviews", get(list_reviews))
        .route("/repos/{o}/{r}/pulls/{n}/reviews/{id}", get(one_review))
        .route(
            "/repos/{o}/{r}/statuses/{sha}",
            axum::routing::post(post_status),
        )
        .route("/api/now/table/change_request", get(changes))
        .route("/api/now/table/sysapproval_approver", get(approvals))
        .route("/api/now/table/sysapproval_approver/{id}", get(approval))
        .with_state(state);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    url
}

fn review(id: u64, login: &str, state: &str, commit: &str, at: &str) -> Value {
    json!({"id": id, "node_id": format!("PRR_{id}"), "user": {"login": login, "id": id, "type": "User"},
           "body": "", "state": state, "html_url": format!("https://github.com/quant/ppo/pull/7#pullrequestreview-{id}"),
           "pull_request_url": "https://api.github.com/repos/quant/ppo/pulls/7", "author_association": "MEMBER",
           "submitted_at": at, "commit_id": commit})
}

fn sign(k: &SignerKey, st: &Value) -> String {
    use base64::Engine;
    let c = ledger_format::jcs::canonicalize(st).unwrap();
    base64::engine::general_purpose::STANDARD.encode(k.sign_raw(c.as_bytes()))
}

#[tokio::test]
async fn github_and_servicenow_approvals_flow_into_the_log_and_the_gate() {
    let state: Shared = Arc::new(Mutex::new(Emulated::default()));
    {
        let mut s = state.lock().unwrap();
        for i in 0..150 {
            s.reviews.push(review(
                i,
                "ci-bot",
                "COMMENTED",
                HEAD,
                "2026-11-26T08:00:00Z",
            ));
        }
        s.reviews.push(review(
            1001,
            "Bob-GH",
            "APPROVED",
            HEAD,
            "2026-11-26T09:00:00Z",
        ));
        s.reviews.push(review(
            1002,
            "bob-gh",
            "APPROVED",
            OLD,
            "2026-11-26T08:30:00Z",
        ));
        s.reviews.push(review(
            1003,
            "bob-gh",
            "DISMISSED",
            HEAD,
            "2026-11-26T08:40:00Z",
        ));
        s.reviews.push(review(
            1004,
            "mallory-gh",
            "APPROVED",
            HEAD,
            "2026-11-26T09:10:00Z",
        ));
        for i in 0..120 {
            s.approvals.push(json!({"sys_id": format!("filler-{i}"), "approver.user_name": "someone", "state": "requested", "sys_updated_on": "2026-11-26 07:00:00"}));
        }
        s.approvals.push(json!({"sys_id": "sn-approved-1", "approver.user_name": "carol.sn", "state": "approved", "sys_updated_on": "2026-11-26 09:30:00"}));
        s.approvals.push(json!({"sys_id": "sn-requested-2", "approver.user_name": "carol.sn", "state": "requested", "sys_updated_on": "2026-11-26 09:31:00"}));
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
    for (k, r) in keys.iter().zip(roles) {
        policy.push_str(&format!(
            "[[people]]\nname = \"{}\"\nroles = [\"{r}\"]\nkey = \"{}\"\n",
            k.name(),
            k.verifier()
        ));
    }
    let people = vec![
        PersonConfig {
            name: "alice".into(),
            roles: vec!["quant".into()],
            key: keys[0].verifier().to_string(),
            ..Default::default()
        },
        PersonConfig {
            name: "bob".into(),
            roles: vec!["engineering".into()],
            key: keys[1].verifier().to_string(),
            github: Some("bob-gh".into()),
            ..Default::default()
        },
        PersonConfig {
            name: "carol".into(),
            roles: vec!["risk".into()],
            key: keys[2].verifier().to_string(),
            servicenow: Some("carol.sn".into()),
            ..Default::default()
        },
    ];
    let emu2 = emu.clone();
    let s = start_with(move |c| {
        c.people = people;
        c.github = Some(GithubConfig {
            api_url: emu2.clone(),
            token_env: "GOVLEDGER_TEST_GH_TOKEN".into(),
        });
        c.servicenow = Some(ServiceNowConfig {
            instance_url: emu2,
            user: Some("svc".into()),
            password_env: "GOVLEDGER_TEST_SN_PASSWORD".into(),
            token_env: "GOVLEDGER_TEST_SN_TOKEN_UNSET".into(),
        });
    })
    .await;
    let work = tempfile::tempdir().unwrap();
    let policy_path = work.path().join("policy.toml");
    std::fs::write(
        &policy_path,
        format!("{policy}[log]\nkey = \"{}\"\n", s.vkey),
    )
    .unwrap();

    // A release request naming the pull request and the change.
    let art = format!("sha256:{}", "ab".repeat(32));
    let ds = format!("sha256:{}", "cd".repeat(32));
    let (_, lineage) = s
        .post(&json!({"kind": "lineage", "body": {"model_id": "ppo", "model_version": "1", "created_by": "t",
            "datasets": [{"name": "d", "type": "training", "sha256": ds, "size_bytes": 1}],
            "artifact": {"path": "p.pt", "sha256": art, "size_bytes": 1}}}).to_string())
        .await;
    let st = json!({"model_id": "ppo", "artifact_sha256": art, "dataset_sha256": [ds], "lineage": lineage["leaf_hash"],
                    "requested_by": "alice", "environment": "production", "policy": "p", "signed_at": "2026-11-26T07:00:00Z",
                    "github": {"repo": "quant/ppo", "pr": 7, "head_sha": HEAD}, "servicenow": {"change": "CHG0001"}});
    let (code, req) = s
        .post(&json!({"kind": "approval_request", "body": {"statement": st, "signature": sign(&keys[0], &st)}}).to_string())
        .await;
    assert_eq!(code, 200, "{req}");
    let request = req["leaf_hash"].as_str().unwrap().to_owned();

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
        let (policy, url, request, emu) = (
            policy_path.clone(),
            s.url.clone(),
            request.clone(),
            emu.clone(),
        );
        tokio::task::spawn_blocking(move || {
            govledger_client::gate::run(&govledger_client::gate::GateArgs {
                policy: &policy,
                bundle: None,
                url: Some(&url),
                request: &request,
                artifact: None,
                now_ms: govledger_client::time::now_ms(),
                recheck,
                sources: govledger_client::gate::Sources {
                    github_api: emu.clone(),
                    servicenow_url: Some(emu),
                },
                github_status: true,
            })
            .unwrap()
        })
    };
    let r = gate(true).await.unwrap();
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
    let r = gate(true).await.unwrap();
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
        "2026-11-26T10:00:00Z",
    ));
    let (code, v) = sync(Some("github")).await;
    assert_eq!((code, v["appended"].as_u64()), (200, Some(1)), "{v}");
    assert_eq!(
        state.lock().unwrap().fail_next,
        0,
        "both failures were retried"
    );
    let r = gate(false).await.unwrap();
    assert_eq!(r.failed, ["no_later_rejection"], "{}", r.to_text());

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
