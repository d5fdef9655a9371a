//! Integration tests of the metadata store against a real SQLite file.

use aiaas_store::{
    ApiKeyRecord, DatasetRecord, JobOutcome, JobStatus, Metadata, NewJob, StoreError,
};

async fn open() -> (tempfile::TempDir, Metadata) {
    let dir = tempfile::tempdir().unwrap();
    let db = Metadata::open_sqlite(&dir.path().join("meta.db"))
        .await
        .unwrap();
    (dir, db)
}

async fn dataset(db: &Metadata, tenant: &str, name: &str) -> DatasetRecord {
    let d = DatasetRecord {
        id: aiaas_types::new_id(),
        tenant_id: tenant.into(),
        name: name.into(),
        format: "csv".into(),
        text_column: "text".into(),
        label_column: "label".into(),
        row_count: 3,
        byte_count: 10,
        artifact_key: format!("datasets/{name}"),
        stats: serde_json::json!({"rows": 3}),
        created_at: aiaas_types::now_ms(),
    };
    db.insert_dataset(&d).await.unwrap();
    d
}

#[tokio::test]
async fn migrations_are_idempotent_and_data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");
    let db = Metadata::open_sqlite(&path).await.unwrap();
    let t = db.create_tenant("acme").await.unwrap();
    db.close().await;
    let db = Metadata::open_sqlite(&path).await.unwrap();
    assert_eq!(db.tenant(&t.id).await.unwrap().unwrap().name, "acme");
}

#[tokio::test]
async fn duplicate_names_are_conflicts() {
    let (_d, db) = open().await;
    db.create_tenant("acme").await.unwrap();
    assert!(matches!(
        db.create_tenant("acme").await,
        Err(StoreError::Conflict(_))
    ));
}

#[tokio::test]
async fn keys_round_trip_and_revoke_once() {
    let (_d, db) = open().await;
    let t = db.create_tenant("acme").await.unwrap();
    let key = ApiKeyRecord {
        id: aiaas_types::new_id(),
        tenant_id: t.id.clone(),
        name: "ci".into(),
        role: "developer".into(),
        secret_hash: "abc".into(),
        allowed_models: Some(vec!["m".into()]),
        expires_at: None,
        revoked_at: None,
        created_at: 1,
        limits: aiaas_types::Limits {
            requests_per_minute: Some(60),
            burst: Some(10),
            tokens_per_minute: None,
            tokens_per_month: Some(1_000_000),
        },
        allowed_ips: Some(vec!["10.0.0.0/8".into()]),
    };
    db.insert_key(&key).await.unwrap();
    assert_eq!(db.key_by_hash("abc").await.unwrap().unwrap(), key);
    assert!(db.revoke_key(&key.id, 5).await.unwrap());
    assert!(!db.revoke_key(&key.id, 6).await.unwrap());
    assert_eq!(db.key(&key.id).await.unwrap().unwrap().revoked_at, Some(5));
}

#[tokio::test]
async fn each_job_is_claimed_exactly_once_by_concurrent_workers() {
    let (_d, db) = open().await;
    let t = db.create_tenant("acme").await.unwrap();
    let ds = dataset(&db, &t.id, "news").await;
    for _ in 0..40 {
        db.insert_job(&NewJob {
            tenant_id: t.id.clone(),
            model_name: "m".into(),
            dataset_id: ds.id.clone(),
            test_dataset_id: None,
            config: serde_json::json!({}),
            deploy: false,
        })
        .await
        .unwrap();
    }
    let mut workers = Vec::new();
    for w in 0..4 {
        let db = db.clone();
        workers.push(tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(job) = db.claim_next_job(&format!("w{w}")).await.unwrap() {
                got.push(job.id);
            }
            got
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap());
    }
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(n, 40, "every job claimed");
    assert_eq!(all.len(), 40, "no job claimed twice");
}

#[tokio::test]
async fn cancel_and_finish_follow_the_state_machine() {
    let (_d, db) = open().await;
    let t = db.create_tenant("acme").await.unwrap();
    let ds = dataset(&db, &t.id, "news").await;
    let new = NewJob {
        tenant_id: t.id.clone(),
        model_name: "m".into(),
        dataset_id: ds.id.clone(),
        test_dataset_id: None,
        config: serde_json::json!({}),
        deploy: true,
    };
    let queued = db.insert_job(&new).await.unwrap();
    assert_eq!(
        db.request_cancel(&queued.id).await.unwrap(),
        Some(JobStatus::Cancelled)
    );
    let job = db.insert_job(&new).await.unwrap();
    let claimed = db.claim_next_job("w").await.unwrap().unwrap();
    assert_eq!(claimed.id, job.id);
    assert_eq!(
        db.request_cancel(&job.id).await.unwrap(),
        Some(JobStatus::Running)
    );
    assert!(db.cancel_requested(&job.id).await.unwrap());
    assert!(db
        .finish_job(&job.id, &JobOutcome::Cancelled)
        .await
        .unwrap());
    // A finished job cannot be finished again.
    assert!(!db
        .finish_job(&job.id, &JobOutcome::Failed("x".into()))
        .await
        .unwrap());
    // A dataset a queued job needs cannot be deleted; once no job is active it can, and
    // the finished jobs keep its id as history.
    let pending = db.insert_job(&new).await.unwrap();
    assert!(!db.delete_dataset(&ds.id).await.unwrap());
    db.request_cancel(&pending.id).await.unwrap();
    assert!(db.delete_dataset(&ds.id).await.unwrap());
    assert_eq!(db.job(&job.id).await.unwrap().unwrap().dataset_id, ds.id);
}

#[tokio::test]
async fn events_get_consecutive_sequence_numbers() {
    let (_d, db) = open().await;
    let t = db.create_tenant("acme").await.unwrap();
    let ds = dataset(&db, &t.id, "news").await;
    let job = db
        .insert_job(&NewJob {
            tenant_id: t.id.clone(),
            model_name: "m".into(),
            dataset_id: ds.id,
            test_dataset_id: None,
            config: serde_json::json!({}),
            deploy: false,
        })
        .await
        .unwrap();
    for i in 0..3 {
        assert_eq!(
            db.append_job_event(&job.id, &serde_json::json!({"i": i}))
                .await
                .unwrap(),
            i + 1
        );
    }
    let after = db.job_events_after(&job.id, 1).await.unwrap();
    assert_eq!(after.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![2, 3]);
    assert_eq!(after[1].event["i"], 2);
}
