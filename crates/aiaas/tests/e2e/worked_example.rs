//! The founding worked example through the real server, bad inputs, tenant
//! isolation, restart. Starts the real binary on port 0 and talks HTTP.

use std::time::Duration;

use crate::common::{bbc_dir, Server, ServerOptions, ADMIN_KEY};
use serde_json::{json, Value};

async fn count(server: &Server, key: &str, path: &str, field: &str) -> usize {
    let (status, v) = server.call("GET", path, Some(key), None).await;
    assert_eq!(status, 200, "{v}");
    v[field].as_array().map(Vec::len).unwrap_or(0)
}

fn error_message(v: &Value) -> String {
    v["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn news_classifier_worked_example_end_to_end() {
    let data = tempfile::tempdir().unwrap();
    let bbc = bbc_dir();
    let server = Server::start(ServerOptions {
        extra_args: &["--max-upload-mb", "8"],
        ..ServerOptions::new(data.path())
    });

    // Health needs no key.
    let (status, _) = server.call("GET", "/healthz", None, None).await;
    assert_eq!(status, 200);
    let (status, _) = server.call("GET", "/readyz", None, None).await;
    assert_eq!(status, 200);

    // Tenants and keys of each role.
    for name in ["acme", "rival"] {
        let (status, v) = server
            .call(
                "POST",
                "/api/v1/tenants",
                Some(ADMIN_KEY),
                Some(json!({"name": name})),
            )
            .await;
        assert_eq!(status, 201, "{v}");
    }
    let owner = server.key(ADMIN_KEY, "acme", "owner").await;
    let dev = server.key(&owner, "acme", "developer").await;
    let infer = server.key(&owner, "acme", "inference").await;
    let rival = server.key(ADMIN_KEY, "rival", "developer").await;
    // An owner cannot mint an admin key; a developer cannot mint keys at all.
    let (status, _) = server
        .call(
            "POST",
            "/api/v1/keys",
            Some(&owner),
            Some(json!({"name": "x", "role": "admin"})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = server
        .call(
            "POST",
            "/api/v1/keys",
            Some(&dev),
            Some(json!({"name": "x", "role": "inference"})),
        )
        .await;
    assert_eq!(status, 403);

    // Upload the BBC split (raw body, streamed).
    let train_csv = std::fs::read(bbc.join("bbc-train.csv")).unwrap();
    let test_csv = std::fs::read(bbc.join("bbc-test.csv")).unwrap();
    let (status, train_ds) = server
        .upload(
            &dev,
            "name=bbc-train&text_column=text&label_column=category",
            train_csv.clone(),
        )
        .await;
    assert_eq!(status, 201, "{train_ds}");
    assert_eq!(train_ds["stats"]["classes"], 5);
    assert_eq!(train_ds["row_count"], 1699);
    let (status, test_ds) = server.upload(&dev, "name=bbc-test", test_csv).await;
    assert_eq!(status, 201, "{test_ds}");
    assert_eq!(
        test_ds["label_column"], "category",
        "label column picked automatically"
    );
    let (status, preview) = server
        .call(
            "GET",
            "/api/v1/datasets/bbc-train/preview?limit=3",
            Some(&dev),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(preview["rows"].as_array().unwrap().len(), 3);

    // Bad inputs: each refused with the right status, nothing stored.
    let datasets_before = count(&server, &dev, "/api/v1/datasets", "datasets").await;
    let (status, _) = server
        .upload(&infer, "name=x", b"text,label\na,b\n".to_vec())
        .await;
    assert_eq!(status, 403, "inference keys cannot upload");
    let (status, v) = server
        .upload(
            &dev,
            "name=ragged",
            b"text,label\nhello,a\nworld,a,extra\nbye,b\nsee,b\n".to_vec(),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    assert!(error_message(&v).contains("line 3"), "{v}");
    let (status, v) = server
        .upload(
            &dev,
            "name=single",
            b"text,label\nhello,a\nworld,a\nbye,b\n".to_vec(),
        )
        .await;
    assert_eq!(status, 400);
    assert!(error_message(&v).contains("single example"), "{v}");
    for (body, expected) in [
        (b"\xEF\xBB\xBF\n  \n".to_vec(), "empty"),
        (br#"[{"text": "a", "label": "x"}]"#.to_vec(), "JSON Lines"),
    ] {
        let (status, v) = server.upload(&dev, "name=odd", body).await;
        assert_eq!(status, 400, "{v}");
        assert!(error_message(&v).contains(expected), "{v}");
    }
    let oversize = train_csv.repeat(3);
    let (status, v) = server.upload(&dev, "name=huge", oversize).await;
    assert_eq!(status, 413, "{v}");
    // A training file past the limit too (OpenAI's files API, streamed through a form).
    let line =
        br#"{"prompt": "the quick brown fox jumps over the lazy dog", "completion": " yes"}"#;
    let big: Vec<u8> = line
        .iter()
        .chain(b"\n")
        .copied()
        .cycle()
        .take(12 << 20)
        .collect();
    let form = reqwest::multipart::Form::new()
        .text("purpose", "fine-tune")
        .part(
            "file",
            reqwest::multipart::Part::bytes(big).file_name("big.jsonl"),
        );
    let resp = server
        .http
        .post(server.url("/v1/files"))
        .bearer_auth(&dev)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 413);
    let v: Value = resp.json().await.unwrap();
    assert!(
        v["error"]["message"].as_str().unwrap().contains("limit"),
        "{v}"
    );
    let (_, v) = server.call("GET", "/v1/files", Some(&dev), None).await;
    assert_eq!(v["data"], json!([]), "{v}");
    let (status, _) = server
        .upload(
            &dev,
            "name=bbc-train",
            b"text,label\na,x\nb,x\nc,y\nd,y\n".to_vec(),
        )
        .await;
    assert_eq!(status, 409, "duplicate dataset name");
    let (status, _) = server.call("GET", "/api/v1/datasets", None, None).await;
    assert_eq!(status, 401, "no key");
    let (status, _) = server
        .call("GET", "/api/v1/datasets", Some("aiaas_nope"), None)
        .await;
    assert_eq!(status, 401, "bad key");
    assert_eq!(
        count(&server, &dev, "/api/v1/datasets", "datasets").await,
        datasets_before
    );
    let leftovers = std::fs::read_dir(data.path().join("tmp")).unwrap().count();
    assert_eq!(leftovers, 0, "failed uploads leave no temporary files");

    // Invalid JSON and invalid configs are 400 and queue nothing.
    let resp = server
        .http
        .post(server.url("/api/v1/jobs"))
        .bearer_auth(&dev)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let (status, v) = server
        .call(
            "POST",
            "/api/v1/jobs",
            Some(&dev),
            Some(json!({"dataset": "bbc-train", "model": "m", "config": {"epochs": 0}})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(error_message(&v).contains("epochs"), "{v}");
    let (status, _) = server
        .call(
            "POST",
            "/api/v1/jobs",
            Some(&infer),
            Some(json!({"dataset": "bbc-train", "model": "m"})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = server
        .call(
            "POST",
            "/api/v1/jobs",
            Some(&rival),
            Some(json!({"dataset": train_ds["id"], "model": "m"})),
        )
        .await;
    assert_eq!(
        status, 404,
        "another tenant's dataset does not exist for rival"
    );
    assert_eq!(count(&server, &dev, "/api/v1/jobs", "jobs").await, 0);

    // Train the founding example: word2vec init + average pooling, fixed 80/20 split.
    let (status, job) = server
        .call(
            "POST",
            "/api/v1/jobs",
            Some(&dev),
            Some(json!({
                "dataset": "bbc-train",
                "test_dataset": "bbc-test",
                "model": "news-classifier",
                "deploy": true,
                "config": {"architecture": "avgpool", "embedding": {"init": "word2vec"}, "seed": 42}
            })),
        )
        .await;
    assert_eq!(status, 202, "{job}");
    let job_id = job["id"].as_str().unwrap().to_string();
    let job = server
        .wait_for_job(&dev, &job_id, Duration::from_secs(1200))
        .await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["model_version"], 1);
    let chosen = &job["report"]["candidates"][0];
    let test = &chosen["test"];
    let accuracy = test["accuracy"].as_f64().unwrap();
    let f1 = test["macro_f1"].as_f64().unwrap();
    eprintln!("avgpool test accuracy {accuracy:.4}, macro-F1 {f1:.4}");
    assert!(accuracy >= 0.93, "test accuracy {accuracy}");
    assert!(f1 >= 0.93, "test macro-F1 {f1}");
    assert_eq!(test["confusion"].as_array().unwrap().len(), 5);
    assert_eq!(
        chosen["curve"].as_array().unwrap().len(),
        10,
        "one curve point per epoch"
    );

    // The job's events replay as SSE, ending with an `end` event.
    let sse = server
        .http
        .get(server.url(&format!("/api/v1/jobs/{job_id}/events")))
        .bearer_auth(&dev)
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status().as_u16(), 200);
    let text = sse.text().await.unwrap();
    assert!(text.contains("event: epoch"), "{text}");
    assert!(text.contains("event: end"), "{text}");
    let (status, _) = server
        .call("GET", &format!("/api/v1/jobs/{job_id}"), Some(&rival), None)
        .await;
    assert_eq!(status, 404, "another tenant's job is invisible");

    // Predict through the native API with an inference key.
    let texts = json!({"texts": [
        "The striker scored twice as the team won the league cup final at Wembley.",
        "Shares fell sharply after the bank reported lower quarterly profits and rising debt."
    ]});
    let (status, pred) = server
        .call(
            "POST",
            "/api/v1/models/news-classifier/predict",
            Some(&infer),
            Some(texts.clone()),
        )
        .await;
    assert_eq!(status, 200, "{pred}");
    assert_eq!(pred["predictions"][0]["label"], "sports", "{pred}");
    assert_eq!(pred["predictions"][1]["label"], "business", "{pred}");
    let total: f64 = pred["predictions"][0]["probabilities"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p.as_f64().unwrap())
        .sum();
    assert!((total - 1.0).abs() < 1e-3, "probabilities sum to {total}");
    let (status, _) = server
        .call(
            "POST",
            "/api/v1/models/news-classifier/predict",
            Some(&rival),
            Some(texts.clone()),
        )
        .await;
    assert_eq!(status, 404, "another tenant's model is invisible");
    let (status, _) = server
        .call(
            "POST",
            "/api/v1/models/no-such-model/predict",
            Some(&infer),
            Some(texts.clone()),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = server
        .call(
            "POST",
            "/api/v1/models/news-classifier/deploy",
            Some(&infer),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 403, "inference keys cannot deploy");

    // KServe v2.
    let (status, meta) = server
        .call("GET", "/v2/models/news-classifier", Some(&infer), None)
        .await;
    assert_eq!(status, 200, "{meta}");
    assert_eq!(meta["inputs"][0]["datatype"], "BYTES");
    let (status, _) = server
        .call(
            "GET",
            "/v2/models/news-classifier/ready",
            Some(&infer),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, out) = server
        .call(
            "POST",
            "/v2/models/news-classifier/infer",
            Some(&infer),
            Some(
                json!({"id": "r1", "inputs": [{"name": "text", "shape": [2], "datatype": "BYTES",
                "data": texts["texts"]}]}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["id"], "r1");
    assert_eq!(out["outputs"][0]["name"], "label");
    assert_eq!(out["outputs"][0]["data"][0], "sports");
    assert_eq!(out["outputs"][1]["shape"], json!([2, 5]));
    let (status, err) = server
        .call("POST", "/v2/models/news-classifier/infer", Some(&infer),
              Some(json!({"inputs": [{"name": "text", "shape": [3], "datatype": "BYTES", "data": ["a"]}]})))
        .await;
    assert_eq!(status, 400);
    assert!(err["error"].as_str().unwrap().contains("shape"), "{err}");

    // Metrics carry per-model inference series.
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
        metrics.contains("aiaas_inference_batch_size_bucket{model=\"acme/news-classifier:1\""),
        "{metrics}"
    );
    assert!(metrics.contains("aiaas_http_requests_total"), "{metrics}");

    // Restart: models, datasets and jobs survive; the deployment serves again.
    server.stop();
    let server = Server::start(ServerOptions::new(data.path()));
    assert_eq!(
        count(&server, &dev, "/api/v1/datasets", "datasets").await,
        2
    );
    assert_eq!(count(&server, &dev, "/api/v1/jobs", "jobs").await, 1);
    assert_eq!(
        count(&server, &dev, "/api/v1/jobs?limit=0", "jobs").await,
        0
    );
    let (status, model) = server
        .call("GET", "/api/v1/models/news-classifier", Some(&dev), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(model["deployment"]["version"], 1);
    let files: Vec<&str> = model["versions"][0]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    for f in [
        "config.json",
        "model.json",
        "report.json",
        "weights.safetensors",
    ] {
        assert!(files.contains(&f), "version files {files:?} lack {f}");
    }
    let (status, pred) = server
        .call(
            "POST",
            "/api/v1/models/news-classifier/predict",
            Some(&infer),
            Some(texts),
        )
        .await;
    assert_eq!(status, 200, "{pred}");
    assert_eq!(pred["predictions"][0]["label"], "sports");
    server.stop();
}
