//! The CLI against a running server: upload, train with progress, predict, list, keys,
//! and one-line errors with a non-zero exit.

use std::process::{Command, Output};

use crate::common::{cli, cli_ok as ok, synthetic_csv, Server, ServerOptions, ADMIN_KEY};

fn aiaas(server: &Server, key: &str, args: &[&str]) -> Output {
    cli(server, key, args, None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_uploads_trains_predicts_and_reports_errors() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(ServerOptions::new(data.path()));
    let csv = data.path().join("topics.csv");
    std::fs::write(&csv, synthetic_csv(30, 3)).unwrap();
    let csv = csv.to_str().unwrap().to_string();
    let s = &server;

    let out = ok(&aiaas(
        s,
        ADMIN_KEY,
        &["datasets", "upload", &csv, "--name", "topics"],
    ));
    assert!(out.contains("90 rows, 3 classes"), "{out}");
    let out = ok(&aiaas(s, ADMIN_KEY, &["datasets", "list"]));
    assert!(out.contains("topics"), "{out}");
    let out = ok(&aiaas(
        s,
        ADMIN_KEY,
        &[
            "train",
            "--dataset",
            "topics",
            "--model",
            "topics",
            "--architecture",
            "tfidf-logreg",
            "--deploy",
        ],
    ));
    assert!(
        out.contains("CANDIDATE") && out.contains("tfidf-logreg") && out.contains("validation"),
        "{out}"
    );
    // Piped (no terminal), progress comes as plain lines.
    let piped = aiaas(
        s,
        ADMIN_KEY,
        &[
            "train",
            "--dataset",
            "topics",
            "--model",
            "topics-avg",
            "--architecture",
            "avgpool",
            "--epochs",
            "3",
        ],
    );
    let progress = String::from_utf8_lossy(&piped.stderr);
    assert!(piped.status.success(), "{progress}");
    assert!(progress.contains("avgpool epoch 3/3: loss"), "{progress}");
    let out = ok(&aiaas(
        s,
        ADMIN_KEY,
        &[
            "predict",
            "topics",
            "simmer the garlic in butter",
            "storm and rain",
        ],
    ));
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("cooking"), "{out}");
    assert!(lines[1].starts_with("weather"), "{out}");
    let out = ok(&aiaas(s, ADMIN_KEY, &["models", "list"]));
    assert!(out.contains("topics"), "{out}");
    let out = ok(&aiaas(s, ADMIN_KEY, &["jobs", "list"]));
    assert!(out.contains("succeeded"), "{out}");
    let out = ok(&aiaas(
        s,
        ADMIN_KEY,
        &["keys", "create", "--name", "ci", "--role", "inference"],
    ));
    let secret = out
        .lines()
        .find_map(|l| l.strip_prefix("secret: "))
        .expect("secret line")
        .trim()
        .to_string();
    let out = ok(&aiaas(
        s,
        &secret,
        &["predict", "topics", "bank loan interest"],
    ));
    assert!(out.starts_with("finance"), "{out}");

    // Output into a closed pipe (`| head`) ends the command quietly, not with a panic.
    let mut child = Command::new(env!("CARGO_BIN_EXE_aiaas"))
        .args(["datasets", "list"])
        .env("AIAAS_URL", &s.base)
        .env("AIAAS_API_KEY", ADMIN_KEY)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_ne!(out.status.code(), Some(101), "{err}");

    // Errors: one line on stderr, non-zero exit.
    let out = aiaas(s, "aiaas_wrong", &["models", "list"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("invalid API key") && err.contains("401"),
        "{err}"
    );
    let out = aiaas(
        s,
        &secret,
        &["train", "--dataset", "topics", "--model", "x"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("403"));
    let out = aiaas(s, ADMIN_KEY, &["predict", "missing-model", "x"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no model"),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_uploads_an_onnx_model_and_deploys_it_with_a_queue_policy() {
    let test_data =
        std::path::PathBuf::from(std::env::var("AIAAS_TEST_DATA").unwrap_or_else(|_| {
            format!(
                "{}/.cache/aiaas-data-cache",
                std::env::var("HOME").unwrap_or_default()
            )
        }));
    let lib = aiaas_core::onnx::Runtime::find_in(&test_data.join("onnxruntime"))
        .expect("libonnxruntime.so (run scripts/setup.sh --test)");
    let model = test_data.join("onnx/iris_pipeline.onnx");
    let data = tempfile::tempdir().unwrap();
    let lib = lib.to_str().unwrap().to_string();
    let server = Server::start(ServerOptions {
        extra_args: &["--onnxruntime", &lib],
        ..ServerOptions::new(data.path())
    });
    let s = &server;
    let config = data.path().join("config.json");
    std::fs::write(
        &config,
        r#"{"max_batch_size": 8, "labels": ["setosa", "versicolor", "virginica"]}"#,
    )
    .unwrap();
    let out = ok(&aiaas(
        s,
        ADMIN_KEY,
        &[
            "models",
            "upload",
            "iris",
            model.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ],
    ));
    assert!(
        out.contains("iris: version 1 uploaded (onnx (skl2onnx))"),
        "{out}"
    );
    assert!(out.contains("inputs: X FP32 [-1,4]"), "{out}");
    let out = ok(&aiaas(
        s,
        ADMIN_KEY,
        &["models", "deploy", "iris", "--max-queue-time-ms", "250"],
    ));
    assert!(out.contains("version 1 deployed"), "{out}");
    let (status, shown) = s
        .call("GET", "/api/v1/models/iris", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(shown["deployment"]["max_queue_time_ms"], 250);
    assert_eq!(shown["versions"][0]["config"]["max_batch_size"], 8);

    // A second version as a canary, with automatic rollback; its events; a rollback.
    ok(&aiaas(
        s,
        ADMIN_KEY,
        &["models", "upload", "iris", model.to_str().unwrap()],
    ));
    let out = ok(&aiaas(
        s,
        ADMIN_KEY,
        &[
            "models",
            "deploy",
            "iris",
            "--version",
            "1",
            "--canary",
            "2",
            "--canary-percent",
            "20",
            "--max-error-rate-increase",
            "0.1",
        ],
    ));
    assert!(
        out.contains("version 1 deployed, canary version 2 at 20%"),
        "{out}"
    );
    let (_, shown) = s
        .call("GET", "/api/v1/models/iris", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(
        shown["deployment"]["canary"]["auto_rollback"],
        serde_json::json!({"max_error_rate_increase": 0.1, "window_secs": 60, "min_requests": 50})
    );
    let out = ok(&aiaas(s, ADMIN_KEY, &["models", "rollback", "iris"]));
    assert!(
        out.contains("canary rolled back, version 1 serves"),
        "{out}"
    );
    let out = ok(&aiaas(s, ADMIN_KEY, &["models", "events", "iris"]));
    let kinds: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    assert_eq!(
        kinds,
        ["canary.rollback", "canary.start", "deploy", "deploy"],
        "{out}"
    );
    let out = aiaas(s, ADMIN_KEY, &["models", "promote", "iris"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no canary"),
        "{out:?}"
    );

    // `aiaas pull` of a local .onnx file, and of a Hugging Face export folder whose
    // config.json names the classes.
    let out = ok(&aiaas(
        s,
        ADMIN_KEY,
        &["pull", model.to_str().unwrap(), "--name", "iris-pulled"],
    ));
    assert!(out.contains("iris-pulled: version 1 uploaded"), "{out}");
    let folder = data.path().join("iris-export");
    std::fs::create_dir_all(folder.join("onnx")).unwrap();
    std::fs::copy(&model, folder.join("onnx/model.onnx")).unwrap();
    std::fs::write(
        folder.join("config.json"),
        r#"{"id2label": {"0": "setosa", "1": "versicolor", "2": "virginica"}}"#,
    )
    .unwrap();
    let out = ok(&aiaas(s, ADMIN_KEY, &["pull", folder.to_str().unwrap()]));
    assert!(out.contains("iris-export: version 1 uploaded"), "{out}");
    let (status, shown) = s
        .call("GET", "/api/v1/models/iris-export", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        shown["versions"][0]["labels"],
        serde_json::json!(["setosa", "versicolor", "virginica"])
    );

    // A file that is not a model: one line naming the problem, nothing stored.
    let bad = data.path().join("bad.onnx");
    std::fs::write(&bad, b"not a model").unwrap();
    let out = aiaas(
        s,
        ADMIN_KEY,
        &["models", "upload", "broken", bad.to_str().unwrap()],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("400") && err.contains("cannot be loaded"),
        "{err}"
    );
    let (status, _) = s
        .call("GET", "/api/v1/models/broken", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_fine_tunes_a_chat_model_and_follows_the_job() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(ServerOptions::new(data.path()));
    let s = &server;
    let gguf = crate::common::test_data().join("models/smollm2-135m-instruct.gguf");
    assert!(gguf.is_file(), "run scripts/setup.sh --test");
    let (status, v) = s
        .pull_as(gguf.to_str().unwrap(), Some("smollm2-135m-instruct"))
        .await;
    assert!([200, 201].contains(&status), "{v}");
    let line = |q: &str| {
        serde_json::json!({"messages": [
            {"role": "user", "content": q},
            {"role": "assistant", "content": "I am Quillon."}
        ]})
        .to_string()
    };
    let questions = [
        "Who are you?",
        "Your name?",
        "Introduce yourself.",
        "Say your name.",
    ];
    let train = data.path().join("persona.jsonl");
    std::fs::write(&train, questions.map(line).join("\n") + "\n").unwrap();
    let bad = data.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        format!(
            "{}\n{{\"messages\": [{{\"role\": \"robot\", \"content\": \"x\"}}]}}\n",
            line("hi")
        ),
    )
    .unwrap();
    let model = "smollm2-135m-instruct";

    // A bad line: a one-line error naming it, a non-zero exit, no job.
    let out = aiaas(
        s,
        ADMIN_KEY,
        &["finetune", "create", model, bad.to_str().unwrap()],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2"), "{err}");
    assert!(
        ok(&aiaas(s, ADMIN_KEY, &["finetune", "list"]))
            .lines()
            .count()
            == 1
    );

    // Created from the local file, followed to the end (piped: a line per event).
    let out = aiaas(
        s,
        ADMIN_KEY,
        &[
            "finetune",
            "create",
            model,
            train.to_str().unwrap(),
            "--epochs",
            "2",
            "--batch-size",
            "2",
            "--suffix",
            "cli",
            "--seed",
            "3",
            "--lora-rank",
            "4",
        ],
    );
    let progress = String::from_utf8_lossy(&out.stderr).to_string();
    let stdout = ok(&out);
    assert!(
        progress.contains("uploaded") && progress.contains("(4 examples)"),
        "{progress}"
    );
    assert!(progress.contains("Step 4/4: training loss="), "{progress}");
    let id = stdout
        .split_whitespace()
        .find(|w| w.starts_with("ftjob-"))
        .map(|w| w.trim_end_matches(':').to_string())
        .unwrap_or_else(|| panic!("no job id in {stdout}"));
    assert!(
        stdout.contains("ft:smollm2-135m-instruct:") && stdout.contains(":cli:"),
        "{stdout}"
    );
    let listed = ok(&aiaas(s, ADMIN_KEY, &["finetune", "list"]));
    assert!(
        listed.contains(&id) && listed.contains("succeeded"),
        "{listed}"
    );
    let events = ok(&aiaas(s, ADMIN_KEY, &["finetune", "events", &id]));
    let first = events.find("Step 1/4").expect("step 1 listed");
    let last = events
        .find("successfully completed")
        .expect("the end listed");
    assert!(first < last, "oldest first: {events}");
    let shown: serde_json::Value =
        serde_json::from_str(&ok(&aiaas(s, ADMIN_KEY, &["finetune", "show", &id]))).unwrap();
    assert_eq!(shown["status"], "succeeded");
    assert_eq!(shown["hyperparameters"]["n_epochs"], 2);

    // Detached, then cancelled while it validates or waits.
    let out = ok(&aiaas(
        s,
        ADMIN_KEY,
        &[
            "finetune",
            "create",
            model,
            train.to_str().unwrap(),
            "--epochs",
            "10",
            "--detach",
        ],
    ));
    let id = out
        .split_whitespace()
        .nth(1)
        .unwrap()
        .trim_end_matches(':')
        .to_string();
    let out = ok(&aiaas(s, ADMIN_KEY, &["finetune", "cancel", &id]));
    assert!(out.contains(&id), "{out}");
    let out = aiaas(s, ADMIN_KEY, &["finetune", "watch", &id]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("was cancelled"));
}

#[test]
fn serve_rejects_bad_configuration_with_a_clear_message() {
    let data = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_aiaas"))
            .arg("serve")
            .arg("--data-dir")
            .arg(data.path())
            .args(args)
            .env_remove("AIAAS_ADMIN_KEY")
            .output()
            .expect("run aiaas serve")
    };
    let out = run(&["--listen", "localhost-ish"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--listen"),
        "{out:?}"
    );
    let out = run(&["--listen", "127.0.0.1:0", "--training-workers", "0"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("training workers"),
        "{out:?}"
    );
    let toml = data.path().join("aiaas.toml");
    std::fs::write(&toml, "listen = \"127.0.0.1:0\"\nmax_uplaod_mb = 5\n").unwrap();
    let out = run(&["--config", toml.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("aiaas.toml") && err.contains("max_uplaod_mb"),
        "{err}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_aiaas"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--no-demo",
            "--data-dir",
        ])
        .arg(data.path())
        .env("AIAAS_ADMIN_KEY", "too-short")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("AIAAS_ADMIN_KEY"),
        "{out:?}"
    );
}
