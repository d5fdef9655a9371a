//! Serving over HTTP: versions and aliases, undeploy and delete, back-pressure (429),
//! Chinese text, and the demo seeded on a first start.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{bbc_dir, train_small, Server, ServerOptions, ADMIN_KEY};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_aliases_and_deployments() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(ServerOptions::new(data.path()));
    train_small(
        &server,
        ADMIN_KEY,
        "d1",
        "topics",
        json!({"architecture": "tfidf-logreg"}),
    )
    .await;
    let (status, job) = server
        .call("POST", "/api/v1/jobs", Some(ADMIN_KEY),
              Some(json!({"dataset": "d1", "model": "topics", "config": {"architecture": "avgpool", "epochs": 5}})))
        .await;
    assert_eq!(status, 202);
    let job = server
        .wait_for_job(
            ADMIN_KEY,
            job["id"].as_str().unwrap(),
            Duration::from_secs(300),
        )
        .await;
    assert_eq!(job["model_version"], 2, "{job}");
    let (_, model) = server
        .call("GET", "/api/v1/models/topics", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(model["versions"].as_array().unwrap().len(), 2);
    assert_eq!(
        model["deployment"]["version"], 1,
        "version 2 was not asked to deploy"
    );

    let body = json!({"texts": ["stock market and bank profit"]});
    let (status, v) = server
        .call(
            "POST",
            "/api/v1/models/topics/predict",
            Some(ADMIN_KEY),
            Some(body.clone()),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["version"], 1);
    assert_eq!(v["predictions"][0]["label"], "finance");
    let (status, v) = server
        .call(
            "POST",
            "/api/v1/models/topics:2/predict",
            Some(ADMIN_KEY),
            Some(body.clone()),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["version"], 2);

    // A version whose files are damaged cannot be deployed, and the running deployment
    // stays as it was.
    let weights = find_file(
        &data.path().join("artifacts/models"),
        job["id"].as_str().unwrap(),
        "weights.safetensors",
    );
    let good = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &good[..good.len() / 2]).unwrap();
    let (status, v) = server
        .call(
            "POST",
            "/api/v1/models/topics/deploy",
            Some(ADMIN_KEY),
            Some(json!({"version": 2})),
        )
        .await;
    assert_eq!(status, 500, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("reference"),
        "5xx bodies carry a reference: {v}"
    );
    let (_, model) = server
        .call("GET", "/api/v1/models/topics", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(model["deployment"]["version"], 1);
    let (status, _) = server
        .call(
            "POST",
            "/api/v1/models/topics/predict",
            Some(ADMIN_KEY),
            Some(body.clone()),
        )
        .await;
    assert_eq!(status, 200);
    std::fs::write(&weights, &good).unwrap();

    // Aliases: set, deploy by alias, address by alias.
    let (status, _) = server
        .call(
            "POST",
            "/api/v1/models/topics/aliases",
            Some(ADMIN_KEY),
            Some(json!({"alias": "prod", "version": 2})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = server
        .call(
            "POST",
            "/api/v1/models/topics/aliases",
            Some(ADMIN_KEY),
            Some(json!({"alias": "prod", "version": 9})),
        )
        .await;
    assert_eq!(status, 404, "an alias must point at an existing version");
    let (status, d) = server
        .call(
            "POST",
            "/api/v1/models/topics/deploy",
            Some(ADMIN_KEY),
            Some(json!({"alias": "prod"})),
        )
        .await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["version"], 2);
    let (_, v) = server
        .call(
            "POST",
            "/api/v1/models/topics:prod/predict",
            Some(ADMIN_KEY),
            Some(body.clone()),
        )
        .await;
    assert_eq!(v["version"], 2);
    let (status, v) = server
        .call(
            "POST",
            "/api/v1/models/topics:nope/predict",
            Some(ADMIN_KEY),
            Some(body.clone()),
        )
        .await;
    assert_eq!(status, 404, "{v}");

    // KServe versioned routes.
    let infer = json!({"inputs": [{"name": "text", "shape": [1, 1], "datatype": "BYTES", "data": [["rain and snow storm"]]}]});
    let (status, out) = server
        .call(
            "POST",
            "/v2/models/topics/versions/1/infer",
            Some(ADMIN_KEY),
            Some(infer.clone()),
        )
        .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["model_version"], "1");
    assert_eq!(out["outputs"][0]["data"][0], "weather");
    let (status, out) = server
        .call(
            "POST",
            "/v2/models/topics/versions/7/infer",
            Some(ADMIN_KEY),
            Some(infer.clone()),
        )
        .await;
    assert_eq!(status, 404);
    assert!(
        out["error"].is_string(),
        "KServe errors are {{\"error\": \"...\"}}: {out}"
    );
    let (status, _) = server
        .call("GET", "/v2/models/missing/ready", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(status, 404);
    let (status, _) = server.call("GET", "/v2/health/live", None, None).await;
    assert_eq!(status, 200);

    // Undeploy: predict answers 409 with how to fix it; delete: 404.
    let (status, _) = server
        .call(
            "POST",
            "/api/v1/models/topics/undeploy",
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, v) = server
        .call(
            "POST",
            "/api/v1/models/topics/predict",
            Some(ADMIN_KEY),
            Some(body.clone()),
        )
        .await;
    assert_eq!(status, 409);
    assert!(
        v["error"]["message"].as_str().unwrap().contains("deploy"),
        "{v}"
    );
    let (status, _) = server
        .call("GET", "/v2/models/topics/ready", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(status, 400, "an undeployed model is not ready");
    let (status, _) = server
        .call("DELETE", "/api/v1/models/topics", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = server
        .call("GET", "/api/v1/models/topics", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_429_with_retry_after() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(ServerOptions::new(data.path()));
    train_small(
        &server,
        ADMIN_KEY,
        "d",
        "topics",
        json!({"architecture": "tfidf-logreg"}),
    )
    .await;
    // One admitted request at a time, and each waits 400 ms for its batch to fill:
    // concurrent callers must be turned away, not queued without bound.
    let (status, d) = server
        .call(
            "POST",
            "/api/v1/models/topics/deploy",
            Some(ADMIN_KEY),
            Some(
                json!({"version": 1, "queue_capacity": 1, "max_batch": 4096, "max_delay_ms": 400}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{d}");
    let mut calls = Vec::new();
    for _ in 0..8 {
        let http = server.http.clone();
        let url = server.url("/api/v1/models/topics/predict");
        calls.push(tokio::spawn(async move {
            let r = http
                .post(url)
                .bearer_auth(ADMIN_KEY)
                .json(&json!({"texts": ["bake the bread in the oven"]}))
                .send()
                .await
                .unwrap();
            let retry = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string());
            (r.status().as_u16(), retry)
        }));
    }
    let mut ok = 0;
    let mut rejected = 0;
    for c in calls {
        match c.await.unwrap() {
            (200, _) => ok += 1,
            (429, Some(retry)) => {
                assert!(retry.parse::<u64>().unwrap() >= 1);
                rejected += 1;
            }
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert!(ok >= 1, "some requests are served");
    assert!(
        rejected >= 1,
        "some requests are refused while the queue is full"
    );
    let metrics = server
        .http
        .get(server.url("/metrics"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("aiaas_inference_rejections_total{model=\"default/topics:1\"}"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chinese_text_is_segmented_into_words() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(ServerOptions::new(data.path()));
    let sport = [
        "足球比赛非常精彩",
        "球队在比赛中进球",
        "运动员获得冠军",
        "篮球比赛今晚开始",
        "教练训练球队",
    ];
    let money = [
        "股票市场今天上涨",
        "银行提高贷款利率",
        "公司利润大幅增长",
        "投资者购买债券",
        "经济增长放缓",
    ];
    let mut csv = String::from("text,label\n");
    for i in 0..8 {
        for s in sport {
            csv.push_str(&format!("{s}{},体育\n", i));
        }
        for s in money {
            csv.push_str(&format!("{s}{},财经\n", i));
        }
    }
    let (status, d) = server.upload(ADMIN_KEY, "name=zh", csv.into_bytes()).await;
    assert_eq!(status, 201, "{d}");
    assert!(
        d["stats"]["text_tokens"]["min"].as_u64().unwrap() >= 3,
        "sentences split into words: {d}"
    );
    let (status, job) = server
        .call(
            "POST",
            "/api/v1/jobs",
            Some(ADMIN_KEY),
            Some(json!({"dataset": "zh", "model": "zh-news", "deploy": true,
                          "config": {"architecture": "tfidf-logreg"}})),
        )
        .await;
    assert_eq!(status, 202);
    let job = server
        .wait_for_job(
            ADMIN_KEY,
            job["id"].as_str().unwrap(),
            Duration::from_secs(120),
        )
        .await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let (status, v) = server
        .call(
            "POST",
            "/api/v1/models/zh-news/predict",
            Some(ADMIN_KEY),
            Some(json!({"texts": ["银行股票市场", "足球队比赛"]})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["predictions"][0]["label"], "财经");
    assert_eq!(v["predictions"][1]["label"], "体育");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_start_seeds_the_demo_news_classifier() {
    let data = tempfile::tempdir().unwrap();
    // The data directory has no copy of the corpus: the server takes it from the shared
    // cache that the test command fills (AIAAS_TEST_DATA).
    assert!(bbc_dir().join("bbc-news.csv").is_file());
    let server = Server::start(ServerOptions {
        demo: true,
        ..ServerOptions::new(data.path())
    });
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let (status, m) = server
            .call(
                "GET",
                "/api/v1/models/news-classifier",
                Some(ADMIN_KEY),
                None,
            )
            .await;
        if status == 200 && m["deployment"]["version"] == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "demo model not deployed in time");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (status, v) = server
        .call(
            "POST",
            "/api/v1/models/news-classifier/predict",
            Some(ADMIN_KEY),
            Some(json!({"text": "The government announced a general election and new taxes."})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["predictions"][0]["label"], "politics", "{v}");
    assert!(data.path().join("cache/bbc-news.csv").is_file());
    // A second start of the same data directory does not seed again.
    server.stop();
    let server = Server::start(ServerOptions {
        demo: true,
        ..ServerOptions::new(data.path())
    });
    let (_, jobs) = server
        .call("GET", "/api/v1/jobs", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 1);
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_routed() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(ServerOptions::new(data.path()));
    let (status, doc) = server.call("GET", "/openapi.json", None, None).await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    let mut checked = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            let concrete = path
                .replace("{id}", "x")
                .replace("{name}", "x")
                .replace("{version}", "1");
            let resp = server
                .http
                .request(
                    method.to_uppercase().parse().unwrap(),
                    server.url(&concrete),
                )
                .bearer_auth(ADMIN_KEY)
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap();
            assert_ne!(status, 405, "{method} {path} is documented but not routed");
            assert!(
                !text.contains("no route for"),
                "{method} {path} is documented but not routed: {text}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 30, "only {checked} operations documented");
    let (status, v) = server
        .call("GET", "/api/v1/nothing-here", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(status, 404);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("openapi.json"),
        "{v}"
    );
    let page = server
        .http
        .get(server.url("/docs"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("/openapi.json"));
}

/// The file `name` under a directory whose path contains `component` (an artifact of a job).
fn find_file(root: &std::path::Path, component: &str, name: &str) -> std::path::PathBuf {
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n == name)
                && path.to_string_lossy().contains(component)
            {
                return path;
            }
        }
    }
    panic!("no {name} under {} for {component}", root.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_follow_their_own_limits() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(ServerOptions::new(data.path()));
    // A multipart upload larger than the JSON limit (16 MiB) but within the upload limit.
    let csv = std::fs::read_to_string(bbc_dir().join("bbc-train.csv")).unwrap();
    let (header, rows) = csv.split_once('\n').unwrap();
    let mut big = String::from(header);
    big.push('\n');
    while big.len() < 20 * 1024 * 1024 {
        big.push_str(rows);
    }
    let form = reqwest::multipart::Form::new()
        .text("name", "big")
        .text("label_column", "category")
        .part(
            "file",
            reqwest::multipart::Part::bytes(big.into_bytes()).file_name("big.csv"),
        );
    let resp = server
        .http
        .post(server.url("/api/v1/datasets"))
        .bearer_auth(ADMIN_KEY)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(status, 201, "{v}");
    assert!(v["byte_count"].as_i64().unwrap() > 20 * 1024 * 1024);
    // A JSON body past 16 MiB is 413, not 400.
    // On its own connection: the server answers before reading the whole body and then
    // closes that connection, which a pooled client could otherwise try to reuse.
    let huge = json!({"texts": ["x".repeat(17 * 1024 * 1024)]});
    let resp = reqwest::Client::new()
        .post(server.url("/api/v1/privacy/mask"))
        .bearer_auth(ADMIN_KEY)
        .json(&huge)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(status, 413, "{v}");
    // Inference takes tensors and images, bigger: the same body is read (and refused for
    // what it says: no such model, not tensors), not turned away for its size.
    for (path, want) in [
        ("/api/v1/models/any/predict", 404),
        ("/v2/models/any/infer", 400),
    ] {
        let resp = reqwest::Client::new()
            .post(server.url(path))
            .bearer_auth(ADMIN_KEY)
            .json(&huge)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), want, "{path}");
    }
    // curl -d sends form encoding by default: the body is still read as JSON.
    let resp = server
        .http
        .post(server.url("/api/v1/tenants"))
        .bearer_auth(ADMIN_KEY)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(r#"{"name": "from-curl"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
}
