//! PII policies on the serving path: a tenant's policy masks what its keys send to models
//! and what models send back (streamed replies too); a deployed model's own policy applies
//! to every caller. Real binary on port 0, real weights.

use serde_json::{json, Value};

use crate::common::{Server, ServerOptions, ADMIN_KEY};

/// `PUT /api/v1/tenants/{tenant}/privacy` with `body`.
async fn set_privacy(server: &Server, key: &str, tenant: &str, body: Value) -> (u16, Value) {
    let path = format!("/api/v1/tenants/{tenant}/privacy");
    server.call("PUT", &path, Some(key), Some(body)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_policy_masks_what_its_keys_send_to_models() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with_wheels(data.path(), &[]);
    server.pull("all-minilm-l6-v2").await;
    server.tenant("clinic").await;
    let owner = server.key(ADMIN_KEY, "clinic", "owner").await;
    let app = server.key(&owner, "clinic", "inference").await;
    let embed = |key: String, text: &'static str| {
        let server = &server;
        async move {
            let (status, v) = server
                .call(
                    "POST",
                    "/v1/embeddings",
                    Some(&key),
                    Some(json!({"model": "all-minilm-l6-v2", "input": text})),
                )
                .await;
            assert_eq!(status, 200, "{v}");
            let vector: Vec<f64> = v["data"][0]["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect();
            (vector, v["usage"]["prompt_tokens"].as_u64().unwrap())
        }
    };
    let raw = "please call the patient on 138 1234 5678 tomorrow";
    let labelled = "please call the patient on [PHONE] tomorrow";
    let (before, _) = embed(app.clone(), raw).await;
    let (as_label, label_tokens) = embed(app.clone(), labelled).await;
    assert_ne!(before, as_label);
    // The owner turns the policy on: the model now sees the labelled text.
    let (status, v) = set_privacy(&server, &owner, "clinic", json!({"inputs": "label"})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["pii_inputs"], "label");
    let (after, tokens) = embed(app.clone(), raw).await;
    assert_eq!(after, as_label, "the model got the masked text");
    assert_eq!(tokens, label_tokens);
    // Other tenants are not affected; bad modes and foreign tenants are refused.
    let (other, _) = embed(ADMIN_KEY.to_string(), raw).await;
    assert_eq!(other, before);
    let (status, _) = set_privacy(&server, &owner, "clinic", json!({"inputs": "hide"})).await;
    assert_eq!(status, 400);
    let (status, _) = set_privacy(&server, &owner, "default", json!({"inputs": "label"})).await;
    assert_eq!(status, 404);
    let (status, _) = set_privacy(&server, &app, "clinic", json!({"inputs": null})).await;
    assert_eq!(status, 403);
    // Off again.
    let (status, _) = set_privacy(&server, &owner, "clinic", json!({"inputs": null})).await;
    assert_eq!(status, 200);
    assert_eq!(embed(app, raw).await.0, before);
    server.stop();
}

/// Generated replies, one per prompt (greedy), through `/v1/completions`; streamed
/// replies are put together from their SSE chunks.
async fn complete(server: &Server, key: &str, prompts: &[&str], stream: bool) -> Vec<String> {
    let body = json!({
        "model": "chat", "prompt": prompts, "max_tokens": 24, "temperature": 0, "stream": stream
    });
    let (status, v) = server
        .call("POST", "/v1/completions", Some(key), Some(body))
        .await;
    assert_eq!(status, 200, "{v}");
    let mut texts = vec![String::new(); prompts.len()];
    let chunks: Vec<Value> = if stream {
        v.as_str()
            .expect("an event stream")
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str(d).expect("a JSON chunk"))
            .collect()
    } else {
        vec![v]
    };
    for chunk in chunks {
        for c in chunk["choices"].as_array().unwrap() {
            let i = c["index"].as_u64().unwrap() as usize;
            texts[i].push_str(c["text"].as_str().unwrap());
        }
    }
    texts
}

/// What `/api/v1/privacy/mask` makes of `texts` in `mode`, and the values it found.
async fn masked(server: &Server, texts: &[String], mode: &str) -> (Vec<String>, Vec<String>) {
    let (status, v) = server
        .call(
            "POST",
            "/api/v1/privacy/mask",
            Some(ADMIN_KEY),
            Some(json!({"texts": texts, "mode": mode})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let mut found = Vec::new();
    let results = v["results"].as_array().unwrap();
    for (text, r) in texts.iter().zip(results) {
        for f in r["findings"].as_array().unwrap() {
            let (a, b) = (f["start"].as_u64().unwrap(), f["end"].as_u64().unwrap());
            found.push(text[a as usize..b as usize].to_string());
        }
    }
    let out = results
        .iter()
        .map(|r| r["text"].as_str().unwrap().to_string())
        .collect();
    (out, found)
}

/// Prompts a small chat model continues with personal data of its own accord.
const PROMPTS: [&str; 2] = [
    "Contact list:\nAlice: alice.smith@example.com\nBob: bob.jones@example.com\nAlice:",
    "Our support line is +1 415 555 2671. Again, the support line is",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_replies_are_masked_by_tenant_and_model_policies() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(ServerOptions::new(data.path()));
    let gguf = crate::common::test_data().join("models/smollm2-135m-instruct.gguf");
    let (status, v) = server.pull_as(gguf.to_str().unwrap(), Some("chat")).await;
    assert_eq!(status, 201, "{v}");
    server.tenant("clinic").await;
    let owner = server.key(ADMIN_KEY, "clinic", "owner").await;
    let app = server.key(&owner, "clinic", "inference").await;

    let raw = complete(&server, &app, &PROMPTS, false).await;
    let (as_mask, found) = masked(&server, &raw, "mask").await;
    // The unmasked replies carry personal data, or this test would prove nothing.
    assert!(found.len() >= 2, "{raw:?}");

    // The tenant masks its replies; its input policy is left as it was.
    let (status, v) = set_privacy(&server, &owner, "clinic", json!({"outputs": "mask"})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (v["pii_outputs"].as_str(), v["pii_inputs"].as_str()),
        (Some("mask"), None)
    );
    for stream in [false, true] {
        let replies = complete(&server, &app, &PROMPTS, stream).await;
        assert_eq!(replies, as_mask, "stream: {stream}");
        for value in &found {
            assert!(
                replies.iter().all(|r| !r.contains(value.as_str())),
                "{value} leaked"
            );
        }
    }
    // Token log-probabilities would show the unmasked tokens: refused, with the reason.
    let (status, v) = server
        .call(
            "POST",
            "/v1/completions",
            Some(&app),
            Some(json!({"model": "chat", "prompt": PROMPTS[0], "max_tokens": 4, "logprobs": 1})),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("PII policy"),
        "{v}"
    );
    // Other tenants are not affected.
    assert_eq!(complete(&server, ADMIN_KEY, &PROMPTS, false).await, raw);

    // The model's own policy applies to every caller and wins over the tenant's.
    let (as_label, _) = masked(&server, &raw, "label").await;
    let settings = |body: Value| {
        let server = &server;
        async move {
            let (status, v) = server
                .call(
                    "PUT",
                    "/api/v1/library/chat/settings",
                    Some(ADMIN_KEY),
                    Some(body),
                )
                .await;
            assert_eq!(status, 200, "{v}");
        }
    };
    settings(json!({"pii_outputs": "label"})).await;
    assert_eq!(complete(&server, ADMIN_KEY, &PROMPTS, true).await, as_label);
    assert_eq!(complete(&server, &app, &PROMPTS, false).await, as_label);
    // An input policy on the model: it answers the masked prompt, not the original.
    settings(json!({"pii_inputs": "label"})).await;
    let prompts: Vec<String> = PROMPTS.iter().map(|p| p.to_string()).collect();
    let (masked_prompts, _) = masked(&server, &prompts, "label").await;
    let masked_refs: Vec<&str> = masked_prompts.iter().map(String::as_str).collect();
    let from_masked = complete(&server, ADMIN_KEY, &masked_refs, false).await;
    assert_ne!(from_masked, raw);
    assert_eq!(
        complete(&server, ADMIN_KEY, &PROMPTS, false).await,
        from_masked
    );
    let (status, _) = server
        .call(
            "PUT",
            "/api/v1/library/chat/settings",
            Some(ADMIN_KEY),
            Some(json!({"pii_outputs": "hide"})),
        )
        .await;
    assert_eq!(status, 400);

    // Both off: the original replies again.
    settings(json!({})).await;
    let (status, _) = set_privacy(&server, &owner, "clinic", json!({"outputs": null})).await;
    assert_eq!(status, 200);
    assert_eq!(complete(&server, &app, &PROMPTS, true).await, raw);
    let (status, v) = set_privacy(&server, &owner, "clinic", json!({})).await;
    assert_eq!(status, 400, "{v}");
    server.stop();
}

async fn predict(server: &Server, key: &str, text: &str) -> Value {
    let (status, v) = server
        .call(
            "POST",
            "/api/v1/models/topics/predict",
            Some(key),
            Some(json!({"texts": [text]})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    v["predictions"][0]["probabilities"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_policy_masks_what_every_caller_sends() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(ServerOptions::new(data.path()));
    crate::common::train_small(
        &server,
        ADMIN_KEY,
        "topics-data",
        "topics",
        json!({"architecture": "avgpool", "epochs": 3}),
    )
    .await;
    // Words of the "finance" class inside an e-mail address.
    let raw = "write to stock.profit@market-bank.com about the rain and snow";
    let labelled = "write to [EMAIL] about the rain and snow";
    let before = predict(&server, ADMIN_KEY, raw).await;
    let as_label = predict(&server, ADMIN_KEY, labelled).await;
    assert_ne!(before, as_label, "masking must change what the model sees");

    let deploy = |body: Value| {
        let server = &server;
        async move {
            server
                .call(
                    "POST",
                    "/api/v1/models/topics/deploy",
                    Some(ADMIN_KEY),
                    Some(body),
                )
                .await
        }
    };
    let (status, v) = deploy(json!({"pii_inputs": "label", "max_batch": 8})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["pii_inputs"], "label");
    assert_eq!(predict(&server, ADMIN_KEY, raw).await, as_label);
    // A redeploy that does not mention the policy keeps it (and the other settings).
    let (status, v) = deploy(json!({"version": 1})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (v["pii_inputs"].as_str(), v["max_batch"].as_i64()),
        (Some("label"), Some(8))
    );
    let (status, v) = server
        .call("GET", "/api/v1/models/topics", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["deployment"]["pii_inputs"], "label");
    let (status, v) = deploy(json!({"pii_inputs": "hide"})).await;
    assert_eq!(status, 400, "{v}");
    // null turns it off.
    let (status, v) = deploy(json!({"pii_inputs": null})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["pii_inputs"], Value::Null);
    assert_eq!(predict(&server, ADMIN_KEY, raw).await, before);
    server.stop();
}
