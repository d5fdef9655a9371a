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
        assert!(
            !text.contains(&hash) && !text.contains("secret_hash"),
            "{text}"
        );
    }
    assert_eq!(me["key"]["id"], key["id"]);
    assert_eq!(me["key"]["role"], "developer");
    let listed = list["keys"].as_array().unwrap();
    assert!(
        listed
            .iter()
            .any(|k| k["id"] == key["id"] && k["name"] == "ci"),
        "{list}"
    );
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

/// The document is generated from the handlers and wire types: every operation has a
/// summary, a success response, its path parameters, a schema for each JSON body it
/// names, and (unless open) the permission it needs; every `$ref` resolves.
#[tokio::test]
async fn the_generated_document_describes_every_operation() {
    let doc = aiaas_api::openapi_document();
    std::fs::write(
        std::env::temp_dir().join("aiaas-openapi.json"),
        serde_json::to_vec_pretty(&doc).unwrap(),
    )
    .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let permissions: Vec<&str> = aiaas_types::Permission::ALL
        .iter()
        .map(|p| p.as_str())
        .collect();
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            let what = format!("{method} {path}");
            assert!(
                op["summary"].as_str().is_some_and(|s| !s.is_empty()),
                "{what}"
            );
            let responses = op["responses"].as_object().unwrap();
            assert!(
                ["200", "201", "202", "204"]
                    .iter()
                    .any(|s| responses.contains_key(*s)),
                "{what} has no success response"
            );
            for name in path.split('/').filter_map(|s| s.strip_prefix('{')) {
                let name = name.trim_end_matches('}');
                let declared = op["parameters"]
                    .as_array()
                    .is_some_and(|ps| ps.iter().any(|p| p["name"] == name && p["in"] == "path"));
                assert!(
                    declared,
                    "{what} does not declare its path parameter {name}"
                );
            }
            let open = op["security"].as_array().is_some_and(|s| {
                s.iter()
                    .all(|r| r.as_object().is_some_and(|o| o.is_empty()))
            });
            if !open {
                let p = op["x-aiaas-permission"].as_str().unwrap_or_default();
                assert!(permissions.contains(&p), "{what} declares permission {p:?}");
            }
        }
    }
    assert!(operations >= 60, "{operations} operations");
    // Every reference points at a schema the document holds.
    let text = doc.to_string();
    for r in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = &r[..r.find('"').unwrap()];
        assert!(schemas.contains_key(name), "dangling $ref to {name}");
    }
    // The wire types are there, with their fields.
    assert!(
        schemas["ModelShown"]["allOf"].is_array()
            || schemas["ModelShown"]["properties"].is_object()
    );
    assert!(schemas["CreateKey"]["properties"]["role"].is_object());
    assert!(schemas["SubmitJob"]["properties"]["config"].is_object());
}

#[test]
fn operation_ids_are_unique() {
    let doc = aiaas_api::openapi_document();
    let mut seen = std::collections::BTreeSet::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            let id = op["operationId"].as_str().unwrap().to_string();
            assert!(seen.insert(id.clone()), "operationId {id} is used twice");
        }
    }
}

/// The console's `web/src/types.ts` against the document: every field the console reads
/// from an API answer is a property of that answer's schema, and its `Permission` type
/// lists exactly the permissions there are. (Report shapes inside `report`/`stats`,
/// which the API passes through as JSON, are the console's own.)
#[test]
fn console_types_agree_with_the_document() {
    let doc = aiaas_api::openapi_document();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let path = std::path::PathBuf::from(crate_dir()).join("../../web/src/types.ts");
    let ts = std::fs::read_to_string(&path).expect("web/src/types.ts");
    let interfaces = ts_interfaces(&ts);
    // TypeScript interface -> the schema of the answer it describes.
    let pairs = [
        ("Me", "Me"),
        ("ModelSummary", "ModelListed"),
        ("ModelDetails", "ModelShown"),
        ("ModelVersion", "ModelVersion"),
        ("Deployment", "Deployment"),
        ("LibraryModel", "LibraryListed"),
        ("Running", "RunningModel"),
        ("Dataset", "Dataset"),
        ("Job", "Job"),
        ("ApiKey", "ApiKey"),
        ("Limits", "Limits"),
        ("Tenant", "TenantBody"),
    ];
    for (interface, schema) in pairs {
        let fields = interfaces
            .get(interface)
            .unwrap_or_else(|| panic!("types.ts has no interface {interface}"));
        let properties = schema_properties(schemas, &schemas[schema]);
        for f in fields {
            assert!(
                properties.contains(f),
                "types.ts {interface}.{f} is not in the {schema} schema ({properties:?})"
            );
        }
    }
    let union = ts
        .split("export type Permission =")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .expect("a Permission type");
    let mut listed: Vec<&str> = union
        .split('|')
        .map(|v| v.trim().trim_matches('"'))
        .filter(|v| !v.is_empty())
        .collect();
    let mut known: Vec<&str> = aiaas_types::Permission::ALL
        .iter()
        .map(|p| p.as_str())
        .collect();
    listed.sort_unstable();
    known.sort_unstable();
    assert_eq!(listed, known);
}

/// `export interface Name { field: ...; }` -> the fields at the interface's top level.
fn ts_interfaces(ts: &str) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut out = std::collections::BTreeMap::new();
    for block in ts.split("export interface ").skip(1) {
        let name = block
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();
        let mut depth = 0i32;
        let mut fields = Vec::new();
        for line in block.lines() {
            if depth == 1 {
                let t = line.trim();
                if let Some((field, _)) = t.split_once(':') {
                    if !field.is_empty()
                        && field
                            .chars()
                            .all(|c| c.is_alphanumeric() || c == '_' || c == '?')
                    {
                        fields.push(field.trim_end_matches('?').to_string());
                    }
                }
            }
            depth += line.matches('{').count() as i32 - line.matches('}').count() as i32;
            if depth <= 0 && line.contains('}') {
                break;
            }
        }
        out.insert(name, fields);
    }
    out
}

/// A schema's property names, through `$ref` and `allOf` (flattened structs).
fn schema_properties(
    schemas: &serde_json::Map<String, Value>,
    schema: &Value,
) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.rsplit('/').next().unwrap_or_default();
        return schema_properties(schemas, &schemas[name]);
    }
    if let Some(props) = schema["properties"].as_object() {
        out.extend(props.keys().cloned());
    }
    for part in schema["allOf"].as_array().into_iter().flatten() {
        out.extend(schema_properties(schemas, part));
    }
    out
}

/// The OpenAI request schemas list every field the handlers read (the handlers read a
/// body field by field, so the schemas are kept in step by this test).
#[test]
fn openai_request_schemas_cover_every_field_the_handlers_read() {
    let doc = aiaas_api::openapi_document();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let mut documented = std::collections::BTreeSet::new();
    for name in ["ChatCompletionBody", "CompletionBody", "EmbeddingBody"] {
        documented.extend(schema_properties(schemas, &schemas[name]));
    }
    let dir = std::path::PathBuf::from(crate_dir()).join("src/routes/openai");
    let mut read = std::collections::BTreeSet::new();
    for file in ["request.rs", "valid.rs", "tools.rs"] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        for method in [
            "get",
            "string",
            "required_string",
            "number",
            "integer",
            "boolean",
            "texts",
        ] {
            for rest in text.split(&format!(".{method}(")).skip(1) {
                let rest = rest.trim_start();
                if let Some(lit) = rest.strip_prefix('"') {
                    read.insert(lit[..lit.find('"').unwrap()].to_string());
                }
            }
        }
    }
    // Nested fields, read from inside one of the documented objects.
    for nested in [
        "role",
        "type",
        "json_schema",
        "schema",
        "include_usage",
        "text",
        "content",
        "function",
        "name",
        "description",
        "parameters",
        "strict",
        "id",
        "arguments",
        "tool_call_id",
        "tool_calls",
    ] {
        read.remove(nested);
    }
    assert!(read.len() > 20, "{read:?}");
    let missing: Vec<_> = read.difference(&documented).collect();
    assert!(missing.is_empty(), "read but not documented: {missing:?}");
}

/// This crate's folder: cargo sets CARGO_MANIFEST_DIR for the test process too, which
/// stays right when the compiled test was built from another checkout of the repository
/// (a shared target folder keeps a test binary whose sources did not change).
fn crate_dir() -> String {
    std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into())
}
