//! Integration tests of `Platform` on a real SQLite data directory: authorisation in the
//! core — tenants cannot see or touch each other's datasets, jobs, models, deployments,
//! aliases and keys (always `NotFound`, nothing changed), roles are enforced (`Forbidden`),
//! and the platform shuts down cleanly.

use aiaas_core::{CoreError, DeployRequest, JobStatus};
use aiaas_types::Role;

#[path = "core/canary.rs"]
mod canary;
#[path = "core/roles.rs"]
mod roles;
#[path = "core/support.rs"]
mod support;
#[path = "core/tensor_models.rs"]
mod tensor_models;

use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_cannot_see_or_touch_each_others_objects() {
    let w = World::start().await;
    let (a, b) = (&w.acme, &w.rival);

    let news = upload(&w.platform, &a.developer, "news", &topic_csv(&TOPICS, 60)).await;
    let spare = upload(&w.platform, &a.developer, "spare", &topic_csv(&TOPICS, 12)).await;
    let job = w
        .platform
        .jobs()
        .submit(&a.developer, train_request(&news.id, "clf"))
        .await
        .unwrap();

    // While the job is (most likely) still queued or running: the other tenant can neither
    // read nor cancel it, and the job is not cancelled by the attempt.
    for p in [&b.owner, &b.developer] {
        not_found("cancel_job", w.platform.jobs().cancel(p, &job.id).await);
        not_found("get_job", w.platform.jobs().get(p, &job.id).await);
    }
    let job = wait_for_job(&w.platform, &a.developer, &job.id).await;
    assert_eq!(job.status, JobStatus::Succeeded, "{job:?}");
    assert!(!job.cancel_requested);
    assert_eq!(job.model_version, Some(1));

    let deployment = w
        .platform
        .models()
        .deploy(&a.developer, "clf", DeployRequest::default())
        .await
        .unwrap();
    assert_eq!(deployment.version, 1);
    w.platform
        .models()
        .set_alias(&a.developer, "clf", "prod", 1)
        .await
        .unwrap();
    let texts = vec![
        "the goal of the match".to_string(),
        "a vote in the senate".to_string(),
    ];
    let answer = w
        .platform
        .models()
        .predict(&a.inference, "clf", texts.clone())
        .await
        .unwrap();
    assert_eq!(answer.labels, ["politics", "sport", "tech"]);

    let before = Snapshot::take(&w.platform, a, &news, &job).await;

    // Every lookup of tenant A's objects by any key of tenant B, by id and by name.
    for p in [&b.owner, &b.developer] {
        for ds in [news.id.as_str(), "news", spare.id.as_str(), "spare"] {
            not_found("get_dataset", w.platform.datasets().get(p, ds).await);
            not_found(
                "preview_dataset",
                w.platform.datasets().preview(p, ds, 5).await,
            );
            not_found("delete_dataset", w.platform.datasets().delete(p, ds).await);
        }
        not_found("get_job", w.platform.jobs().get(p, &job.id).await);
        not_found("cancel_job", w.platform.jobs().cancel(p, &job.id).await);
        not_found("job_events", w.platform.jobs().events(p, &job.id, 0).await);
        not_found(
            "submit_job on another tenant's dataset",
            w.platform
                .jobs()
                .submit(p, train_request(&news.id, "stolen"))
                .await,
        );
        not_found("get_model", w.platform.models().get(p, "clf").await);
        not_found(
            "get_version",
            w.platform.models().get_version(p, "clf", Some("1")).await,
        );
        not_found(
            "model_ready",
            w.platform.models().model_ready(p, "clf", None).await,
        );
        not_found(
            "deploy",
            w.platform
                .models()
                .deploy(p, "clf", DeployRequest::default())
                .await,
        );
        not_found("undeploy", w.platform.models().undeploy(p, "clf").await);
        not_found(
            "set_alias",
            w.platform.models().set_alias(p, "clf", "prod", 1).await,
        );
        not_found(
            "set_alias (new)",
            w.platform.models().set_alias(p, "clf", "hijack", 1).await,
        );
        not_found("delete_model", w.platform.models().delete(p, "clf").await);
    }
    for reference in ["clf", "clf:1", "clf:prod"] {
        for p in [&b.owner, &b.developer, &b.inference] {
            not_found(
                "predict",
                w.platform
                    .models()
                    .predict(p, reference, texts.clone())
                    .await,
            );
        }
    }
    for key in [&a.owner_key, &a.developer_key, &a.inference_key] {
        not_found(
            "revoke_key",
            w.platform
                .accounts()
                .revoke_key(&b.owner, &key.key.id)
                .await,
        );
    }
    not_found(
        "revoke_key (admin)",
        w.platform
            .accounts()
            .revoke_key(&b.owner, &w.admin.key_id)
            .await,
    );
    for tenant in [a.tenant.id.as_str(), a.tenant.name.as_str()] {
        let new = new_key(Some(tenant), Role::Inference);
        not_found(
            "create_key in another tenant",
            w.platform.accounts().create_key(&b.owner, new).await,
        );
    }

    // Listings of tenant B show none of tenant A's objects.
    assert!(w
        .platform
        .datasets()
        .list(&b.developer)
        .await
        .unwrap()
        .is_empty());
    assert!(w
        .platform
        .jobs()
        .list(&b.developer)
        .await
        .unwrap()
        .is_empty());
    assert!(w
        .platform
        .models()
        .list(&b.inference)
        .await
        .unwrap()
        .is_empty());
    let keys = w.platform.accounts().list_keys(&b.owner).await.unwrap();
    assert_eq!(keys.len(), 3);
    assert!(keys.iter().all(|k| k.tenant_id == b.tenant.id), "{keys:?}");

    // Nothing of tenant A changed.
    let after = Snapshot::take(&w.platform, a, &news, &job).await;
    assert_eq!(after, before);
    w.platform
        .datasets()
        .get(&a.developer, "spare")
        .await
        .unwrap();
    assert_eq!(
        w.platform
            .models()
            .predict(&a.inference, "clf:prod", texts)
            .await
            .unwrap(),
        answer
    );

    // The admin sees every tenant's datasets and jobs.
    let all = w.platform.datasets().list(&w.admin).await.unwrap();
    assert!(all.iter().any(|d| d.id == news.id));
    assert_eq!(
        w.platform.jobs().get(&w.admin, &job.id).await.unwrap().id,
        job.id
    );

    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_names_in_two_tenants_are_separate_objects() {
    let w = World::start().await;
    let (a, b) = (&w.acme, &w.rival);
    let a_data = upload(&w.platform, &a.developer, "data", &topic_csv(&TOPICS, 45)).await;
    let b_data = upload(&w.platform, &b.developer, "data", &topic_csv(&MAIL, 40)).await;
    assert_ne!(a_data.id, b_data.id);
    assert_eq!(
        w.platform
            .datasets()
            .get(&a.developer, "data")
            .await
            .unwrap()
            .id,
        a_data.id
    );
    assert_eq!(
        w.platform
            .datasets()
            .get(&b.developer, "data")
            .await
            .unwrap()
            .id,
        b_data.id
    );
    let b_rows = w
        .platform
        .datasets()
        .preview(&b.developer, "data", 100)
        .await
        .unwrap();
    assert!(b_rows.iter().all(|r| r.label == "spam" || r.label == "ham"));

    for (t, data) in [(a, &a_data), (b, &b_data)] {
        let job = w
            .platform
            .jobs()
            .submit(&t.developer, train_request(&data.id, "clf"))
            .await
            .unwrap();
        let mut request = train_request(&data.id, "clf");
        request.deploy = true;
        let deployed = w
            .platform
            .jobs()
            .submit(&t.developer, request)
            .await
            .unwrap();
        for id in [&job.id, &deployed.id] {
            let done = wait_for_job(&w.platform, &t.developer, id).await;
            assert_eq!(done.status, JobStatus::Succeeded, "{done:?}");
        }
    }
    let text = vec!["free offer win a prize".to_string()];
    let a_answer = w
        .platform
        .models()
        .predict(&a.inference, "clf", text.clone())
        .await
        .unwrap();
    let b_answer = w
        .platform
        .models()
        .predict(&b.inference, "clf", text)
        .await
        .unwrap();
    assert_eq!(a_answer.labels, ["politics", "sport", "tech"]);
    assert_eq!(b_answer.labels, ["ham", "spam"]);
    assert_eq!((a_answer.version, b_answer.version), (2, 2));

    // Tenant B removing its own "clf" leaves tenant A's alone.
    w.platform
        .models()
        .delete(&b.developer, "clf")
        .await
        .unwrap();
    not_found(
        "deleted model",
        w.platform.models().get(&b.developer, "clf").await,
    );
    let a_model = w.platform.models().get(&a.developer, "clf").await.unwrap();
    assert_eq!(a_model.versions.len(), 2);
    assert!(a_model.loaded);
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_dataset_id_neither_shadows_nor_reveals_a_name() {
    let w = World::start().await;
    let (a, b) = (&w.acme, &w.rival);
    let a_data = upload(&w.platform, &a.developer, "data", &topic_csv(&TOPICS, 30)).await;
    // rival names its dataset after acme's id: it must still reach its own by that name.
    let b_data = upload(&w.platform, &b.developer, &a_data.id, &topic_csv(&MAIL, 30)).await;
    let found = w
        .platform
        .datasets()
        .get(&b.developer, &a_data.id)
        .await
        .unwrap();
    assert_eq!(found.id, b_data.id);
    assert_eq!(found.tenant_id, b.developer.tenant_id);
    // And acme still reaches its own by id.
    let own = w
        .platform
        .datasets()
        .get(&a.developer, &a_data.id)
        .await
        .unwrap();
    assert_eq!(own.id, a_data.id);
    w.platform.shutdown().await;
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &std::path::Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_containing(&path, needle));
        } else if std::fs::read(&path)
            .is_ok_and(|b| needle.is_empty() || b.windows(needle.len()).any(|w| w == needle))
        {
            found.push(path);
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_responses_belong_to_their_tenant_are_sealed_and_expire() {
    let w = World::start_with(|c| c.response_retention = std::time::Duration::from_secs(3)).await;
    let responses = w.platform.responses();
    let doc = br#"{"response": "the sky over Lisbon is sunny-7f3a"}"#.to_vec();
    responses
        .save(&w.acme.inference, "resp_0123abcd", doc.clone())
        .await
        .unwrap();
    assert_eq!(
        responses.get(&w.acme.owner, "resp_0123abcd").await.unwrap(),
        doc
    );
    // Another tenant: not found, exactly like a missing id; nothing it can delete.
    for attempt in [
        responses
            .get(&w.rival.owner, "resp_0123abcd")
            .await
            .map(|_| ()),
        responses.delete(&w.rival.owner, "resp_0123abcd").await,
        responses.get(&w.acme.owner, "resp_ffff").await.map(|_| ()),
    ] {
        assert!(
            matches!(attempt, Err(CoreError::NotFound(_))),
            "{attempt:?}"
        );
    }
    // Ids are checked before they become artifact keys.
    assert!(responses
        .save(&w.acme.owner, "resp_../../x", b"{}".to_vec())
        .await
        .is_err());
    // Sealed at rest: the text is nowhere in the data directory.
    assert!(files_containing(w._dir.path(), b"sunny-7f3a").is_empty());
    let stored = || files_containing(&w._dir.path().join("artifacts/responses"), b"");
    assert_eq!(stored().len(), 1);
    // Past the retention it is gone at once, and the reconcile loop removes its file.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert!(matches!(
        responses.get(&w.acme.owner, "resp_0123abcd").await,
        Err(CoreError::NotFound(_))
    ));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !stored().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "expired response still stored"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    w.shutdown().await;
}
