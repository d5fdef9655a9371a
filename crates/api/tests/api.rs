//! The router in-process (`tower::ServiceExt::oneshot`) over a real platform on a temporary
//! SQLite data directory: authentication, the error format of each API family, and the
//! operations endpoints.

use aiaas_core::{Platform, PlatformConfig};
use aiaas_types::Secret;
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt;

const ADMIN: &str = "aiaas_1111111111111111111111111111111111111111111111111111111111111111";

async fn app() -> (tempfile::TempDir, axum::Router) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = PlatformConfig::new(dir.path());
    config.admin_key = Some(Secret::new(ADMIN));
    // A key from "the environment": nothing written beside the temp dir.
    config.master_key = aiaas_core::MasterKeySource::Value("ab".repeat(32));
    let (platform, report) = Platform::open(config).await.unwrap();
    platform.start(&report);
    (dir, aiaas_api::app(platform))
}

async fn send(
    app: &axum::Router,
    req: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, headers, value)
}

fn get(path: &str, key: Option<&str>) -> Request<Body> {
    let mut b = Request::get(path);
    if let Some(k) = key {
        b = b.header(header::AUTHORIZATION, format!("Bearer {k}"));
    }
    b.body(Body::empty()).unwrap()
}

fn post_json(path: &str, key: &str, body: &str) -> Request<Body> {
    Request::post(path)
        .header(header::AUTHORIZATION, format!("Bearer {key}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

#[tokio::test]
async fn native_errors_have_codes_and_messages() {
    let (_dir, app) = app().await;
    let (status, headers, body) = send(&app, get("/api/v1/models", None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer");
    assert_eq!(body["error"]["code"], "unauthenticated");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Authorization"));

    let (status, _, body) = send(&app, post_json("/api/v1/models/x/predict", ADMIN, "{}")).await;
    assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
    let (status, _, body) = send(&app, get("/api/v1/models/x/predict", Some(ADMIN))).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["error"]["code"], "method_not_allowed", "{body}");

    let (status, _, body) = send(&app, get("/api/v1/models/nope", Some(ADMIN))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");

    let (status, _, body) = send(&app, post_json("/api/v1/tenants", ADMIN, "{\"name\": ")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "invalid_request");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("invalid JSON"));

    let (status, _, body) = send(
        &app,
        post_json("/api/v1/tenants", ADMIN, r#"{"name": "a", "extra": 1}"#),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "unknown fields are refused: {body}"
    );

    let (status, _, body) = send(
        &app,
        post_json("/api/v1/tenants", ADMIN, r#"{"name": "acme"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, _, body) = send(
        &app,
        post_json("/api/v1/tenants", ADMIN, r#"{"name": "acme"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "conflict");
}

#[tokio::test]
async fn kserve_routes_answer_in_the_kserve_error_format() {
    let (_dir, app) = app().await;
    let (status, _, body) = send(&app, get("/v2/models/nope", None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["error"].is_string(), "{body}");
    let (status, _, body) = send(&app, get("/v2/models/nope", Some(ADMIN))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].as_str().unwrap().contains("nope"));
    let (status, _, body) = send(&app, post_json("/v2/models/nope/infer", ADMIN, "not json")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("JSON"), "{body}");
    let (status, _, body) = send(&app, get("/v2", None)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["name"], "aiaas");
}

#[tokio::test]
async fn probes_need_no_key_and_metrics_count_requests() {
    let (_dir, app) = app().await;
    for path in [
        "/healthz",
        "/readyz",
        "/v2/health/live",
        "/v2/health/ready",
        "/openapi.json",
    ] {
        let (status, _, _) = send(&app, get(path, None)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    let (_, _, _) = send(&app, get("/api/v1/models", Some(ADMIN))).await;
    // Metrics name every tenant's models: a key is needed on the main router.
    let (status, _, _) = send(&app, get("/metrics", None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let resp = app
        .clone()
        .oneshot(get("/metrics", Some(ADMIN)))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = String::from_utf8(
        axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    assert!(
        text.contains(
            r#"aiaas_http_requests_total{route="/api/v1/models",method="GET",status="200"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains("aiaas_http_request_duration_seconds_bucket"),
        "{text}"
    );
}

#[tokio::test]
async fn created_keys_show_their_secret_once() {
    let (_dir, app) = app().await;
    let (status, _, key) = send(
        &app,
        post_json(
            "/api/v1/keys",
            ADMIN,
            &json!({"name": "ci", "role": "developer"}).to_string(),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let secret = key["secret"].as_str().unwrap();
    assert!(secret.starts_with("aiaas_") && secret.len() == 70);
    let (_, _, list) = send(&app, get("/api/v1/keys", Some(ADMIN))).await;
    assert!(!list.to_string().contains(secret));
    // The key's fields, and never its hash, wherever a key is shown.
    let hash = hex_sha256(secret);
    let (_, _, me) = send(&app, get("/api/v1/me", Some(secret))).await;
    for body in [&key, &list, &me] {
        let text = body.to_string();
        assert!(!text.contains(&hash) && !text.contains("secret_hash"), "{text}");
    }
    assert_eq!(me["key"]["id"], key["id"]);
    assert_eq!(me["key"]["role"], "developer");
    let listed = list["keys"].as_array().unwrap();
    assert!(listed.iter().any(|k| k["id"] == key["id"] && k["name"] == "ci"), "{list}");
    for field in ["id", "tenant_id", "name", "role", "created_at", "limits"] {
        assert!(key.get(field).is_some(), "{field} in {key}");
    }
    let (status, _, _) = send(&app, get("/api/v1/datasets", Some(secret))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = send(&app, get("/api/v1/tenants", Some(secret))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "forbidden");
}

/// Numbers a caller sends that no `Duration` can hold are a 400 naming the parameter,
/// never a panic in the handler.
#[tokio::test]
async fn huge_keep_alive_is_a_400_not_a_panic() {
    let (_dir, app) = app().await;
    let messages = r#"[{"role": "user", "content": "hi"}]"#;
    for keep_alive in [
        "1e20",
        "1.8e19",
        r#""99999999999999999999""#,
        r#""6000000000000000h""#,
    ] {
        let body =
            format!(r#"{{"model": "m", "messages": {messages}, "keep_alive": {keep_alive}}}"#);
        let (status, _, v) = send(&app, post_json("/v1/chat/completions", ADMIN, &body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{keep_alive}: {v}");
        assert_eq!(v["error"]["param"], "keep_alive", "{v}");
    }
    let body = r#"{"model": "m", "input": "hi", "keep_alive": "99999999999999999999"}"#;
    let (status, _, v) = send(&app, post_json("/v1/embeddings", ADMIN, body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
}

fn hex_sha256(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}
