//! Every route of the router, found by asking it: each `.route("…")` path and each
//! `#[utoipa::path(path = "…")]` in the API crate's sources is probed with every method; whatever does not answer 405 is a route.
//! Each must be in the OpenAPI document, and each answers 401 without a valid key unless
//! the document marks it open (health, readiness, the documents themselves, the
//! console's static files).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use crate::common::{Server, ServerOptions};

/// Paths of `.route("PATH", ...)` calls and `#[utoipa::path(path = "PATH")]` handlers
/// under `crates/api/src`.
pub(crate) fn source_paths() -> BTreeSet<String> {
    let root = PathBuf::from(crate::common::crate_dir()).join("../api/src");
    let mut out = BTreeSet::new();
    let mut dirs = vec![root];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).expect("api sources") {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap();
            // Plain routes, and the handlers `routes!` mounts at their documented path.
            for marker in [".route(", "path = "] {
                let mut rest = text.as_str();
                while let Some(i) = rest.find(marker) {
                    rest = &rest[i + marker.len()..];
                    let trimmed = rest.trim_start();
                    if let Some(lit) = trimmed.strip_prefix('"') {
                        if let Some(end) = lit.find('"') {
                            out.insert(lit[..end].to_string());
                        }
                    }
                }
            }
        }
    }
    out
}

fn concrete(path: &str) -> String {
    path.split('/')
        .map(|seg| match seg {
            "{version}" => "1".to_string(),
            s if s.starts_with('{') => "some-name".to_string(),
            s => s.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_is_documented_and_needs_a_key_unless_declared_open() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(ServerOptions::new(data.path()));
    let (status, doc) = server.call("GET", "/openapi.json", None, None).await;
    assert_eq!(status, 200);
    // (path, method) -> open?
    let mut documented: BTreeMap<(String, String), bool> = BTreeMap::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            // `security: []` (or one empty requirement) lifts the document's bearer scheme.
            let open = op.get("security").is_some_and(|s| {
                s.as_array().is_some_and(|reqs| {
                    reqs.is_empty()
                        || reqs
                            .iter()
                            .all(|r| r.as_object().is_some_and(|o| o.is_empty()))
                })
            });
            documented.insert((path.clone(), method.to_uppercase()), open);
        }
    }
    let paths = source_paths();
    assert!(
        paths.len() > 40,
        "found {} route paths in the sources",
        paths.len()
    );
    let mut found = BTreeSet::new();
    let mut problems = BTreeSet::new();
    for path in &paths {
        for method in ["GET", "POST", "PUT", "DELETE", "PATCH"] {
            for key in [None, Some("aiaas_not-a-real-key")] {
                let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
                let mut rb = server.http.request(m, server.url(&concrete(path)));
                if let Some(k) = key {
                    rb = rb.bearer_auth(k);
                }
                if method != "GET" && method != "DELETE" {
                    rb = rb.header("content-type", "application/json").body("{}");
                }
                let status = rb.send().await.unwrap().status().as_u16();
                if status == 405 {
                    continue;
                }
                // OpenAPI writes a catch-all segment `{*id}` as `{id}`.
                let path = &path.replace("{*", "{");
                found.insert((path.clone(), method.to_string()));
                match documented.get(&(path.clone(), method.to_string())) {
                    None => {
                        problems.insert(format!(
                            "{method} {path} is a route but not in /openapi.json"
                        ));
                    }
                    Some(true) => {
                        if status == 401 {
                            problems.insert(format!(
                                "{method} {path} is documented open but answered 401"
                            ));
                        }
                    }
                    Some(false) => {
                        if status != 401 {
                            problems.insert(format!(
                                "{method} {path} answered {status} with {} key (401 expected)",
                                if key.is_some() { "an invalid" } else { "no" }
                            ));
                        }
                    }
                }
            }
        }
    }
    for (path, method) in documented.keys() {
        if !found.contains(&(path.clone(), method.clone())) {
            problems.insert(format!(
                "/openapi.json documents {method} {path}, which the router does not serve"
            ));
        }
    }
    // Only these are open: health, readiness, the API's own description, and the
    // console's static files (which hold no data: every call they make needs a key).
    let open: BTreeSet<_> = documented
        .iter()
        .filter(|(_, o)| **o)
        .map(|((p, _), _)| p.as_str())
        .collect();
    let allowed: BTreeSet<_> = [
        "/healthz",
        "/readyz",
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        "/openapi.json",
        "/docs",
        "/",
        "/assets/{file}",
    ]
    .into_iter()
    .collect();
    for p in open.difference(&allowed) {
        problems.insert(format!(
            "{p} is open (no key) but is not health, readiness, documentation or the console"
        ));
    }
    assert!(
        problems.is_empty(),
        "{}",
        problems.into_iter().collect::<Vec<_>>().join("\n")
    );
    assert!(found.len() >= 50, "{} routes", found.len());
    server.stop();
}

/// Every authenticated operation declares its permission (`x-aiaas-permission`), and the
/// server enforces exactly that: a key of each role the permission is not given to gets
/// 403, a key of each role it is given to gets something else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_enforces_the_permission_it_declares() {
    use aiaas_types::{Permission, Role};
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(ServerOptions::new(data.path()));
    let (_, doc) = server.call("GET", "/openapi.json", None, None).await;
    let keys = [
        (
            Role::Owner,
            server
                .key(crate::common::ADMIN_KEY, "default", "owner")
                .await,
        ),
        (
            Role::Developer,
            server
                .key(crate::common::ADMIN_KEY, "default", "developer")
                .await,
        ),
        (
            Role::Inference,
            server
                .key(crate::common::ADMIN_KEY, "default", "inference")
                .await,
        ),
        (
            Role::Metrics,
            server
                .key(crate::common::ADMIN_KEY, "default", "metrics")
                .await,
        ),
    ];
    let mut problems = BTreeSet::new();
    let mut checked = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            // `security: []` (or one empty requirement) lifts the document's bearer scheme.
            let open = op.get("security").is_some_and(|s| {
                s.as_array().is_some_and(|reqs| {
                    reqs.is_empty()
                        || reqs
                            .iter()
                            .all(|r| r.as_object().is_some_and(|o| o.is_empty()))
                })
            });
            if open {
                continue;
            }
            let Some(permission) = op["x-aiaas-permission"]
                .as_str()
                .and_then(Permission::parse)
            else {
                problems.insert(format!("{method} {path} declares no permission"));
                continue;
            };
            for (role, key) in &keys {
                let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                let mut rb = server
                    .http
                    .request(m, server.url(&concrete(path)))
                    .bearer_auth(key);
                if method != "get" && method != "delete" {
                    rb = rb.json(&valid_body(path));
                }
                let status = rb.send().await.unwrap().status().as_u16();
                let allowed = role.can(permission);
                if !allowed && status != 403 {
                    problems.insert(format!(
                        "{method} {path} needs {} but a {} key got {status}",
                        permission.as_str(),
                        role.as_str()
                    ));
                }
                if allowed && status == 403 {
                    problems.insert(format!(
                        "{method} {path} declares {} (a {} key has it) but answered 403",
                        permission.as_str(),
                        role.as_str()
                    ));
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 100, "{checked} checks");
    assert!(
        problems.is_empty(),
        "{}",
        problems.into_iter().collect::<Vec<_>>().join("\n")
    );
    server.stop();
}

/// A body that passes validation, so what answers is the permission check.
fn valid_body(path: &str) -> serde_json::Value {
    use serde_json::json;
    match path {
        "/api/v1/jobs" => json!({"dataset": "some-data", "model": "some-model"}),
        "/api/v1/keys" => json!({"name": "k", "role": "inference"}),
        "/api/v1/tenants" => json!({"name": "another-tenant"}),
        "/api/v1/library/pull" => json!({"source": "no-such-model", "stream": false}),
        p if p.ends_with("/aliases") => json!({"alias": "prod", "version": 1}),
        p if p.ends_with("/predict") => json!({"texts": ["a"]}),
        p if p.ends_with("/infer") => {
            json!({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["a"]}]})
        }
        "/v1/chat/completions" => {
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
        }
        "/v1/completions" => json!({"model": "m", "prompt": "hi"}),
        "/v1/embeddings" => json!({"model": "m", "input": "hi"}),
        "/v1/responses" => json!({"model": "m", "input": "hi"}),
        "/api/v1/privacy/mask" => json!({"text": "hi"}),
        p if p.ends_with("/limits") => json!({"requests_per_minute": 100}),
        p if p.ends_with("/privacy") => json!({"inputs": null}),
        _ => json!({}),
    }
}
