//! The cross-tenant matrix: for every route of the router (found as in routes.rs) and
//! every method it takes, a key of tenant B aimed at tenant A's objects gets the answer a
//! missing object gets (404, or 403 where B's role may not act at all), never A's data,
//! and afterwards A's objects are exactly as they were.

use serde_json::{json, Value};

use crate::common::{train_small, Server, ServerOptions, ADMIN_KEY};
use crate::routes::source_paths;

/// A's objects as A's owner sees them (what B must not be able to change).
async fn snapshot(server: &Server, owner: &str) -> Value {
    let mut out = json!({});
    for (name, path) in [
        ("datasets", "/api/v1/datasets"),
        ("models", "/api/v1/models"),
        ("model", "/api/v1/models/a-model"),
        ("jobs", "/api/v1/jobs"),
        ("keys", "/api/v1/keys"),
    ] {
        let (status, v) = server.call("GET", path, Some(owner), None).await;
        assert_eq!(status, 200, "{path}: {v}");
        out[name] = v;
    }
    out
}

/// A body that passes validation where one is needed, so the answer is about the object.
fn body_for(method: &str, path: &str) -> Option<Value> {
    if method == "GET" || method == "DELETE" {
        return None;
    }
    Some(if path.ends_with("/aliases") {
        json!({"alias": "hijack", "version": 1})
    } else if path.ends_with("/predict") {
        json!({"texts": ["stock market and bank profit"]})
    } else if path.ends_with("/infer") {
        json!({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["stock market"]}]})
    } else if path.ends_with("/deploy") {
        json!({"version": 1})
    } else if path.starts_with("/api/v1/keys/") {
        json!({"limits": {"requests_per_minute": 1}})
    } else if path.ends_with("/limits") {
        json!({"requests_per_minute": 1})
    } else {
        json!({})
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_cannot_see_or_change_another_tenants_objects() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(ServerOptions::new(data.path()));
    for name in ["alpha", "beta"] {
        server.tenant(name).await;
    }
    let a_owner = server.key(ADMIN_KEY, "alpha", "owner").await;
    let b_owner = server.key(ADMIN_KEY, "beta", "owner").await;
    let job = train_small(
        &server,
        &a_owner,
        "a-data",
        "a-model",
        json!({"architecture": "avgpool", "epochs": 2}),
    )
    .await;
    let (status, a_key) = server
        .call(
            "POST",
            "/api/v1/keys",
            Some(&a_owner),
            Some(json!({"name": "a-app", "role": "inference"})),
        )
        .await;
    assert_eq!(status, 201);
    let (_, datasets) = server
        .call("GET", "/api/v1/datasets", Some(&a_owner), None)
        .await;
    let (_, tenants) = server
        .call("GET", "/api/v1/tenants", Some(ADMIN_KEY), None)
        .await;
    let alpha_id = tenants["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "alpha")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let ids = [
        (
            "datasets",
            datasets["datasets"][0]["id"].as_str().unwrap().to_string(),
        ),
        ("jobs", job["id"].as_str().unwrap().to_string()),
        ("keys", a_key["id"].as_str().unwrap().to_string()),
        ("tenants", alpha_id.clone()),
    ];
    let before = snapshot(&server, &a_owner).await;

    // A's object in each parameter, and a missing one in its place for comparison.
    let fill = |path: &str, missing: bool| -> String {
        let segs: Vec<&str> = path.split('/').collect();
        segs.iter()
            .enumerate()
            .map(|(i, seg)| {
                if !seg.starts_with('{') {
                    return seg.to_string();
                }
                if *seg == "{version}" {
                    return "1".to_string();
                }
                let collection = segs[i - 1];
                let found = ids
                    .iter()
                    .find(|(c, _)| *c == collection)
                    .map(|(_, id)| id.clone());
                match (found, missing) {
                    (Some(_), true) => "01a00000-0000-7000-8000-000000000000".to_string(),
                    (Some(id), false) => id,
                    (None, true) => "no-such-model".to_string(),
                    (None, false) => "a-model".to_string(),
                }
            })
            .collect::<Vec<_>>()
            .join("/")
    };
    let mut problems = Vec::new();
    let mut probed = 0;
    for path in source_paths() {
        // The library is the installation's (admins manage it), not a tenant's.
        if path.starts_with("/api/v1/library") || !path.contains('{') {
            continue;
        }
        for method in ["GET", "POST", "PUT", "DELETE", "PATCH"] {
            // An upload names a model of the caller's own: B uploading under A's model's
            // name makes B's model (its tenancy is tested with the ONNX models).
            if method == "POST" && path == "/api/v1/models/{name}/versions" {
                continue;
            }
            let send = |target: String| {
                let server = &server;
                let b_owner = &b_owner;
                async move {
                    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
                    let mut rb = server
                        .http
                        .request(m, server.url(&target))
                        .bearer_auth(b_owner);
                    if let Some(body) = body_for(method, &target) {
                        rb = rb.json(&body);
                    }
                    let resp = rb.send().await.unwrap();
                    let status = resp.status().as_u16();
                    let text = resp.text().await.unwrap();
                    (status, text)
                }
            };
            let (status, text) = send(fill(&path, false)).await;
            if status == 405 {
                continue;
            }
            probed += 1;
            let (missing_status, missing_text) = send(fill(&path, true)).await;
            // Same answer, word for word, once the identifiers sent are blanked out
            // (a 404 names the id it was asked for).
            let mut same_a = text.clone();
            for (_, id) in &ids {
                same_a = same_a.replace(id.as_str(), "ID");
            }
            let same_missing = missing_text
                .replace("01a00000-0000-7000-8000-000000000000", "ID")
                .replace("no-such-model", "a-model");
            if !(status == 404 || status == 403) {
                problems.push(format!("{method} {path}: {status} {text}"));
            } else if status != missing_status || same_a != same_missing {
                problems.push(format!(
                    "{method} {path}: A's object answers {status} {text}, a missing one {missing_status} {missing_text}"
                ));
            }
        }
    }
    assert!(probed >= 20, "probed {probed} routes");
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // Lists show B nothing of A.
    for path in [
        "/api/v1/datasets",
        "/api/v1/models",
        "/api/v1/jobs",
        "/api/v1/keys",
        "/api/v1/usage",
        "/v1/models",
    ] {
        let (status, v) = server.call("GET", path, Some(&b_owner), None).await;
        assert_eq!(status, 200, "{path}: {v}");
        let text = v.to_string();
        for needle in ["a-data", "a-model", "a-app", alpha_id.as_str()] {
            assert!(!text.contains(needle), "{path} shows B {needle}: {text}");
        }
    }

    // B's audit entries are B's own (its attempts on A's names included), none of A's.
    let (_, audit) = server
        .call("GET", "/api/v1/audit", Some(&b_owner), None)
        .await;
    let entries = audit["entries"].as_array().unwrap();
    assert!(!entries.is_empty());
    assert!(
        entries.iter().all(|e| e["tenant_id"] != alpha_id.as_str()),
        "{audit}"
    );

    // Nothing of A's changed, and its model still answers.
    assert_eq!(snapshot(&server, &a_owner).await, before);
    let (status, v) = server
        .call(
            "POST",
            "/api/v1/models/a-model/predict",
            Some(&a_owner),
            Some(json!({"texts": ["stock market and bank profit"]})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    server.stop();
}
