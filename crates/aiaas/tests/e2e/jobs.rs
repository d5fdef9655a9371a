//! Training jobs over HTTP: cancellation, refusal and failure with clear messages, and a job
//! interrupted by a shutdown resuming on the next start.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::common::{bbc_dir, synthetic_csv, Server, ServerOptions, ADMIN_KEY};

async fn wait_running(server: &Server, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (status, job) = server
            .call("GET", &format!("/api/v1/jobs/{id}"), Some(ADMIN_KEY), None)
            .await;
        assert_eq!(status, 200, "{job}");
        if job["status"] == "running" {
            return;
        }
        assert!(Instant::now() < deadline, "job never started: {job}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether the job's event stream shows `needle` within a few seconds (the stream stays
/// open while the job runs, so read what arrives).
async fn events_text(server: &Server, id: &str, needle: &str) -> bool {
    let events = server
        .http
        .get(server.url(&format!("/api/v1/jobs/{id}/events")))
        .bearer_auth(ADMIN_KEY)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .unwrap();
    let mut text = String::new();
    let mut stream = events.bytes_stream();
    while let Ok(Some(Ok(chunk))) =
        tokio::time::timeout(Duration::from_secs(3), stream.next()).await
    {
        text.push_str(&String::from_utf8_lossy(&chunk));
        if text.contains(needle) {
            return true;
        }
    }
    eprintln!("events of {id}: {text}");
    false
}

async fn submit(server: &Server, body: Value) -> String {
    let (status, job) = server
        .call("POST", "/api/v1/jobs", Some(ADMIN_KEY), Some(body))
        .await;
    assert_eq!(status, 202, "{job}");
    job["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_cancel_fail_cleanly_and_resume_after_restart() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(ServerOptions::new(data.path()));
    let csv = std::fs::read(bbc_dir().join("bbc-train.csv")).unwrap();
    let (status, v) = server.upload(ADMIN_KEY, "name=bbc", csv).await;
    assert_eq!(status, 201, "{v}");
    let long = json!({"dataset": "bbc", "model": "long",
                      "config": {"architecture": "avgpool", "epochs": 500, "embedding": {"init": "random"}}});

    // Cancel a running job: it stops within seconds and its event stream ends.
    let id = submit(&server, long.clone()).await;
    wait_running(&server, &id).await;
    let (status, v) = server
        .call(
            "POST",
            &format!("/api/v1/jobs/{id}/cancel"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let job = server
        .wait_for_job(ADMIN_KEY, &id, Duration::from_secs(60))
        .await;
    assert_eq!(job["status"], "cancelled", "{job}");
    let (status, _) = server
        .call(
            "POST",
            &format!("/api/v1/jobs/{id}/cancel"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(status, 409, "a finished job cannot be cancelled again");
    let (status, models) = server
        .call("GET", "/api/v1/models", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        models["models"].as_array().unwrap().len(),
        0,
        "a cancelled job registers no model"
    );

    // A job whose test set has a label unseen in training fails with a clear message.
    let (status, _) = server
        .upload(ADMIN_KEY, "name=small", synthetic_csv(10, 1).into_bytes())
        .await;
    assert_eq!(status, 201);
    let odd = "text,label\nsomething new,astronomy\nanother new,astronomy\nrain storm,weather\nsnow wind,weather\n";
    let (status, _) = server
        .upload(ADMIN_KEY, "name=odd-test", odd.as_bytes().to_vec())
        .await;
    assert_eq!(status, 201);
    // Labels the training data lacks are refused at submission, before any work.
    let (status, v) = server
        .call(
            "POST",
            "/api/v1/jobs",
            Some(ADMIN_KEY),
            Some(
                json!({"dataset": "small", "test_dataset": "odd-test", "model": "odd",
                          "config": {"architecture": "tfidf-logreg"}}),
            ),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("astronomy"),
        "{v}"
    );
    // A job that can only fail while training ends `failed` with a message to act on.
    let id = submit(
        &server,
        json!({"dataset": "small", "model": "odd",
               "config": {"architecture": "avgpool", "min_count": 1000000}}),
    )
    .await;
    let job = server
        .wait_for_job(ADMIN_KEY, &id, Duration::from_secs(120))
        .await;
    assert_eq!(job["status"], "failed", "{job}");
    assert!(
        job["error"].as_str().unwrap().contains("min_count"),
        "{job}"
    );

    // Shutdown mid-training: the server exits promptly, the job resumes on restart.
    let id = submit(&server, long).await;
    wait_running(&server, &id).await;
    let stopping = Instant::now();
    server.stop();
    assert!(
        stopping.elapsed() < Duration::from_secs(30),
        "shutdown took {:?}",
        stopping.elapsed()
    );
    let server = Server::start(ServerOptions::new(data.path()));
    wait_running(&server, &id).await;
    let (_, job) = server
        .call("GET", &format!("/api/v1/jobs/{id}"), Some(ADMIN_KEY), None)
        .await;
    assert_eq!(
        job["attempts"], 1,
        "a graceful stop does not count as a failed attempt: {job}"
    );
    assert!(events_text(&server, &id, "goes back to the queue").await);

    // A crash (SIGKILL) mid-training: the next start finds the job running and queues it again.
    server.kill();
    let server = Server::start(ServerOptions::new(data.path()));
    wait_running(&server, &id).await;
    let (_, job) = server
        .call("GET", &format!("/api/v1/jobs/{id}"), Some(ADMIN_KEY), None)
        .await;
    assert_eq!(job["attempts"], 2, "{job}");
    assert!(events_text(&server, &id, "queued again").await);
    let (status, _) = server
        .call(
            "POST",
            &format!("/api/v1/jobs/{id}/cancel"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let job = server
        .wait_for_job(ADMIN_KEY, &id, Duration::from_secs(60))
        .await;
    assert_eq!(job["status"], "cancelled");
    server.stop();
}
