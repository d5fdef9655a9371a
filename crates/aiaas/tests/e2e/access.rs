//! Keys and roles over HTTP: revocation, expiry, model allow-lists, tenant scoping of key
//! management, and secrets kept out of responses and logs.

use std::time::Duration;

use serde_json::json;

use crate::common::{train_small, Server, ServerOptions, ADMIN_KEY};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_revocable_expire_and_follow_allow_lists() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(ServerOptions::new(data.path()));
    for name in ["acme", "rival"] {
        let (status, _) = server
            .call(
                "POST",
                "/api/v1/tenants",
                Some(ADMIN_KEY),
                Some(json!({"name": name})),
            )
            .await;
        assert_eq!(status, 201);
    }
    let (status, v) = server
        .call(
            "POST",
            "/api/v1/tenants",
            Some(ADMIN_KEY),
            Some(json!({"name": "acme"})),
        )
        .await;
    assert_eq!(status, 409, "{v}");
    let (status, _) = server
        .call(
            "POST",
            "/api/v1/tenants",
            Some(ADMIN_KEY),
            Some(json!({"name": "bad name/"})),
        )
        .await;
    assert_eq!(status, 400);

    let owner = server.key(ADMIN_KEY, "acme", "owner").await;
    let dev = server.key(&owner, "acme", "developer").await;
    let rival_owner = server.key(ADMIN_KEY, "rival", "owner").await;
    let (status, _) = server
        .call(
            "POST",
            "/api/v1/tenants",
            Some(&owner),
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(status, 403, "only admins manage tenants");
    let (status, _) = server
        .call(
            "POST",
            "/api/v1/keys",
            Some(&owner),
            Some(json!({"name": "x", "role": "inference", "tenant": "rival"})),
        )
        .await;
    assert_eq!(status, 404, "an owner cannot even see another tenant");

    train_small(
        &server,
        &dev,
        "topics-data",
        "topics",
        json!({"architecture": "tfidf-logreg"}),
    )
    .await;
    let body = json!({"texts": ["the oven and flour for the recipe"]});

    // Allow-lists.
    let (status, v) = server
        .call("POST", "/api/v1/keys", Some(&owner),
              Some(json!({"name": "narrow", "role": "inference", "allowed_models": ["something-else"]})))
        .await;
    assert_eq!(status, 201, "{v}");
    let narrow = v["secret"].as_str().unwrap().to_string();
    let (status, v) = server
        .call(
            "POST",
            "/api/v1/models/topics/predict",
            Some(&narrow),
            Some(body.clone()),
        )
        .await;
    assert_eq!(status, 403, "{v}");
    let (status, v) = server
        .call("GET", "/api/v1/models", Some(&narrow), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        v["models"].as_array().unwrap().len(),
        0,
        "allow-listed keys list only their models"
    );
    for path in [
        "/api/v1/models/topics",
        "/api/v1/models/topics/versions/1",
        "/v2/models/topics",
        "/v2/models/topics/ready",
    ] {
        let (status, v) = server.call("GET", path, Some(&narrow), None).await;
        assert_eq!(status, 403, "{path}: {v}");
    }
    // A key limited to some models can only hand out a subset of them.
    let (status, v) = server
        .call(
            "POST",
            "/api/v1/keys",
            Some(&owner),
            Some(json!({"name": "limited-owner", "role": "owner", "allowed_models": ["topics"]})),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let limited_owner = v["secret"].as_str().unwrap().to_string();
    for (models, expected) in [
        (json!(null), 403),
        (json!(["other"]), 403),
        (json!(["topics"]), 201),
    ] {
        let (status, v) = server
            .call(
                "POST",
                "/api/v1/keys",
                Some(&limited_owner),
                Some(json!({"name": "sub", "role": "inference", "allowed_models": models})),
            )
            .await;
        assert_eq!(status, expected, "allowed_models {models}: {v}");
    }
    let (status, v) = server
        .call(
            "POST",
            "/api/v1/keys",
            Some(&owner),
            Some(json!({"name": "topics-only", "role": "inference", "allowed_models": ["topics"]})),
        )
        .await;
    assert_eq!(status, 201);
    let allowed = v["secret"].as_str().unwrap().to_string();
    let allowed_id = v["id"].as_str().unwrap().to_string();
    let (status, v) = server
        .call(
            "POST",
            "/api/v1/models/topics/predict",
            Some(&allowed),
            Some(body.clone()),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["predictions"][0]["label"], "cooking");

    // Revocation: only within the tenant, and effective at once.
    let (status, _) = server
        .call(
            "DELETE",
            &format!("/api/v1/keys/{allowed_id}"),
            Some(&rival_owner),
            None,
        )
        .await;
    assert_eq!(status, 404, "another tenant's key is invisible");
    let (status, _) = server
        .call(
            "DELETE",
            &format!("/api/v1/keys/{allowed_id}"),
            Some(&dev),
            None,
        )
        .await;
    assert_eq!(status, 403, "developers do not manage keys");
    let (status, v) = server
        .call(
            "DELETE",
            &format!("/api/v1/keys/{allowed_id}"),
            Some(&owner),
            None,
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert!(v["revoked_at"].is_i64());
    let (status, v) = server
        .call(
            "POST",
            "/api/v1/models/topics/predict",
            Some(&allowed),
            Some(body.clone()),
        )
        .await;
    assert_eq!(status, 401);
    assert!(
        v["error"]["message"].as_str().unwrap().contains("revoked"),
        "{v}"
    );

    // Expiry.
    let (status, v) = server
        .call(
            "POST",
            "/api/v1/keys",
            Some(&owner),
            Some(json!({"name": "short", "role": "inference", "expires_in_secs": 1})),
        )
        .await;
    assert_eq!(status, 201);
    let short = v["secret"].as_str().unwrap().to_string();
    let (status, v) = server
        .call(
            "POST",
            "/api/v1/keys",
            Some(&owner),
            Some(json!({"name": "forever", "role": "inference", "expires_in_secs": u64::MAX})),
        )
        .await;
    assert_eq!(status, 400, "absurd lifetimes are refused: {v}");
    let (status, _) = server
        .call("GET", "/api/v1/models", Some(&short), None)
        .await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, v) = server
        .call("GET", "/api/v1/models", Some(&short), None)
        .await;
    assert_eq!(status, 401);
    assert!(
        v["error"]["message"].as_str().unwrap().contains("expired"),
        "{v}"
    );

    // Listings carry no secrets or hashes, and owners see only their tenant's keys.
    let (status, v) = server.call("GET", "/api/v1/keys", Some(&owner), None).await;
    assert_eq!(status, 200);
    let text = v.to_string();
    assert!(!text.contains("secret"), "{text}");
    assert!(!text.contains(&owner) && !text.contains(&dev));
    let (_, all) = server
        .call("GET", "/api/v1/keys", Some(ADMIN_KEY), None)
        .await;
    assert!(all["keys"].as_array().unwrap().len() > v["keys"].as_array().unwrap().len());

    // Malformed Authorization headers.
    for header in ["Basic abc", "Bearer", "token aiaas_x"] {
        let resp = server
            .http
            .get(server.url("/api/v1/models"))
            .header("authorization", header)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{header}");
    }

    // No secret ever reaches the log.
    let logs = server.logs();
    for secret in [
        ADMIN_KEY,
        &owner,
        &dev,
        &narrow,
        &allowed,
        &short,
        &limited_owner,
    ] {
        assert!(
            !logs.contains(secret),
            "a key secret appeared in the server log"
        );
    }
}
