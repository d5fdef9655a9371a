//! Rate limits, token quotas and IP allow-lists, per key and per tenant, over HTTP:
//! 429 with `Retry-After` and `X-RateLimit-*` headers, 403 from an address outside a key's
//! allow-list.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{Server, ServerOptions, ADMIN_KEY};

async fn get(server: &Server, key: &str, path: &str) -> (u16, reqwest::header::HeaderMap, Value) {
    let resp = server
        .http
        .get(server.url(path))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

fn header(h: &reqwest::header::HeaderMap, name: &str) -> Option<u64> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

async fn new_key(server: &Server, tenant: &str, body: Value) -> (String, String) {
    let mut body = body;
    body["name"] = json!("limited");
    body["role"] = json!("developer");
    body["tenant"] = json!(tenant);
    let (status, v) = server
        .call("POST", "/api/v1/keys", Some(ADMIN_KEY), Some(body))
        .await;
    assert_eq!(status, 201, "{v}");
    (
        v["secret"].as_str().unwrap().to_string(),
        v["id"].as_str().unwrap().to_string(),
    )
}

async fn put_ips(server: &Server, key_id: &str, ips: Value) -> (u16, Value) {
    let path = format!("/api/v1/keys/{key_id}");
    let body = json!({"allowed_ips": ips});
    server.call("PUT", &path, Some(ADMIN_KEY), Some(body)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_limits_per_key_and_tenant_and_ip_allow_lists() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(ServerOptions::new(data.path()));
    for name in ["acme", "calm"] {
        server.tenant(name).await;
    }

    // A key with 60 requests per minute and bursts of 3.
    let (key, key_id) = new_key(
        &server,
        "acme",
        json!({"limits": {"requests_per_minute": 60, "burst": 3}}),
    )
    .await;
    for remaining in [2, 1, 0] {
        let (status, h, _) = get(&server, &key, "/api/v1/models").await;
        assert_eq!(status, 200);
        assert_eq!(header(&h, "x-ratelimit-limit"), Some(3));
        assert_eq!(header(&h, "x-ratelimit-remaining"), Some(remaining));
    }
    let (status, h, v) = get(&server, &key, "/api/v1/models").await;
    assert_eq!(status, 429, "{v}");
    assert_eq!(v["error"]["code"], "rate_limited");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("rate limit of the key"),
        "{v}"
    );
    let retry = header(&h, "retry-after").expect("Retry-After");
    assert!((1..=2).contains(&retry), "{retry}");
    assert_eq!(header(&h, "x-ratelimit-remaining"), Some(0));
    // The refill is one request per second.
    tokio::time::sleep(Duration::from_millis(1100 * retry)).await;
    let (status, _, _) = get(&server, &key, "/api/v1/models").await;
    assert_eq!(status, 200);
    // Other keys are not affected; keys without limits get no headers.
    let (status, h, _) = get(&server, ADMIN_KEY, "/api/v1/models").await;
    assert_eq!(status, 200);
    assert!(h.get("x-ratelimit-limit").is_none());

    // A tenant limit is shared by all of its keys.
    let (status, v) = server
        .call(
            "PUT",
            "/api/v1/tenants/calm/limits",
            Some(ADMIN_KEY),
            Some(json!({"requests_per_minute": 2})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["limits"]["requests_per_minute"], 2);
    let (a, _) = new_key(&server, "calm", json!({})).await;
    let (b, _) = new_key(&server, "calm", json!({})).await;
    assert_eq!(get(&server, &a, "/api/v1/models").await.0, 200);
    let (status, h, _) = get(&server, &b, "/api/v1/models").await;
    assert_eq!(status, 200);
    assert_eq!(
        header(&h, "x-ratelimit-limit"),
        Some(2),
        "the tenant's limit shows when the key has none"
    );
    let (status, _, v) = get(&server, &a, "/api/v1/models").await;
    assert_eq!(status, 429);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("of the tenant"),
        "{v}"
    );
    // Only admins set tenant limits; bad limits are named.
    let (developer, _) = new_key(&server, "acme", json!({})).await;
    let (status, _) = server
        .call(
            "PUT",
            "/api/v1/tenants/calm/limits",
            Some(&developer),
            Some(json!({"requests_per_minute": 1000})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, v) = server
        .call(
            "PUT",
            "/api/v1/tenants/calm/limits",
            Some(ADMIN_KEY),
            Some(json!({"requests_per_minute": 0})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        v["error"]["message"].as_str().unwrap().contains("positive"),
        "{v}"
    );
    let (status, _) = server
        .call(
            "PUT",
            "/api/v1/tenants/calm/limits",
            Some(ADMIN_KEY),
            Some(json!({"rpm": 5})),
        )
        .await;
    assert_eq!(status, 400);

    // IP allow-lists: this test's client is 127.0.0.1.
    let (far, far_id) = new_key(&server, "acme", json!({"allowed_ips": ["10.0.0.0/8"]})).await;
    let (status, _, v) = get(&server, &far, "/api/v1/models").await;
    assert_eq!(status, 403, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("127.0.0.1"),
        "{v}"
    );
    let (status, v) = server
        .call(
            "PUT",
            &format!("/api/v1/keys/{far_id}"),
            Some(ADMIN_KEY),
            Some(json!({"allowed_ips": ["10.0.0.0/8", "127.0.0.0/8"]})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(get(&server, &far, "/api/v1/models").await.0, 200);
    // The model allow-list is editable too: a list, kept when left out, null for all.
    let embed = |model: &'static str| {
        let (server, far) = (&server, far.clone());
        async move {
            let body = json!({"model": model, "input": "hi"});
            server
                .call("POST", "/v1/embeddings", Some(&far), Some(body))
                .await
                .0
        }
    };
    assert_eq!(
        embed("other").await,
        404,
        "every model allowed: an unknown one is missing"
    );
    let put = |body: Value| {
        let (server, path) = (&server, format!("/api/v1/keys/{far_id}"));
        async move { server.call("PUT", &path, Some(ADMIN_KEY), Some(body)).await }
    };
    let ips = json!(["10.0.0.0/8", "127.0.0.0/8"]);
    let (status, v) = put(json!({"allowed_ips": ips, "allowed_models": ["only-this"]})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["allowed_models"], json!(["only-this"]));
    assert_eq!(embed("other").await, 403);
    assert_eq!(embed("only-this").await, 404);
    let (status, v) = put(json!({"allowed_ips": ips})).await;
    assert_eq!(
        (status, &v["allowed_models"]),
        (200, &json!(["only-this"])),
        "kept: {v}"
    );
    let (status, _) = put(json!({"allowed_ips": ips, "allowed_models": ["../etc"]})).await;
    assert_eq!(status, 400);
    let (status, v) = put(json!({"allowed_ips": ips, "allowed_models": null})).await;
    assert_eq!((status, &v["allowed_models"]), (200, &Value::Null), "{v}");
    assert_eq!(embed("other").await, 404);
    let (status, v) = server
        .call(
            "POST",
            "/api/v1/keys",
            Some(ADMIN_KEY),
            Some(json!({"name": "x", "role": "inference", "allowed_ips": ["not-an-ip"]})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not-an-ip"),
        "{v}"
    );
    // An IPv4-mapped entry names its IPv4 address and nothing more (it once admitted
    // every IPv4 client); a mapped range below /96 is refused, naming the entry.
    let (mapped, mapped_id) = new_key(
        &server,
        "acme",
        json!({"allowed_ips": ["::ffff:203.0.113.5"]}),
    )
    .await;
    let (status, _, v) = get(&server, &mapped, "/api/v1/models").await;
    assert_eq!(
        status, 403,
        "a mapped entry for another address admits 127.0.0.1: {v}"
    );
    let (status, v) = put_ips(&server, &mapped_id, json!(["::ffff:127.0.0.1"])).await;
    assert_eq!(
        (status, &v["allowed_ips"]),
        (200, &json!(["127.0.0.1/32"])),
        "{v}"
    );
    assert_eq!(get(&server, &mapped, "/api/v1/models").await.0, 200);
    let (status, v) = put_ips(&server, &mapped_id, json!(["::ffff:0.0.0.0/95"])).await;
    assert_eq!(status, 400, "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains("::ffff:0.0.0.0/95"), "{v}");
    assert_eq!(
        get(&server, &mapped, "/api/v1/models").await.0,
        200,
        "unchanged on 400"
    );
    let (status, v) = put_ips(&server, &mapped_id, json!(["::/0"])).await;
    assert_eq!(status, 200, "{v}");
    let (status, _, v) = get(&server, &mapped, "/api/v1/models").await;
    assert_eq!(
        status, 403,
        "an IPv6 range never admits an IPv4 client: {v}"
    );
    // Lifting a key's limits takes effect at once.
    let (status, _) = server
        .call(
            "PUT",
            &format!("/api/v1/keys/{key_id}"),
            Some(ADMIN_KEY),
            Some(json!({"limits": {}})),
        )
        .await;
    assert_eq!(status, 200);
    for _ in 0..5 {
        assert_eq!(get(&server, &key, "/api/v1/models").await.0, 200);
    }
    // The denials are audited.
    let (_, v) = server
        .call("GET", "/api/v1/audit?outcome=denied", Some(ADMIN_KEY), None)
        .await;
    assert!(
        v["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["key_id"] == far_id.as_str()),
        "{v}"
    );
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monthly_token_quota_stops_model_calls() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with_wheels(data.path(), &[]);
    server.pull("all-minilm-l6-v2").await;
    let (key, _) = new_key(
        &server,
        "default",
        json!({"limits": {"tokens_per_month": 20}}),
    )
    .await;
    let body = json!({"model": "all-minilm-l6-v2", "input": "The quarterly results beat the forecast by a wide margin."});
    let (status, v) = server
        .call("POST", "/v1/embeddings", Some(&key), Some(body.clone()))
        .await;
    assert_eq!(status, 200, "{v}");
    let used = v["usage"]["prompt_tokens"].as_u64().unwrap();
    assert!(used > 10 && used < 20, "{used}");
    let (status, _) = server
        .call("POST", "/v1/embeddings", Some(&key), Some(body.clone()))
        .await;
    assert_eq!(status, 200, "under the quota before the call");
    let resp = server
        .http
        .post(server.url("/v1/embeddings"))
        .bearer_auth(&key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        retry > 0 && retry <= 31 * 24 * 3600,
        "until the next month: {retry}"
    );
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "rate_limited", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("monthly token quota"),
        "{v}"
    );
    // Usage was recorded per key and day.
    let (_, u) = server
        .call("GET", "/api/v1/usage", Some(ADMIN_KEY), None)
        .await;
    let total: u64 = u["usage"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["prompt_tokens"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 2 * used);
    // After a restart the quota still holds (seeded from the recorded usage).
    server.stop();
    let server = Server::start_with_wheels(data.path(), &[]);
    let (status, v) = server
        .call("POST", "/v1/embeddings", Some(&key), Some(body))
        .await;
    assert_eq!(status, 429, "{v}");
    server.stop();
}
