//! Integration tests of the metadata store, each run on SQLite and on PostgreSQL
//! (common/mod.rs).

mod common;

use aiaas_store::{
    ApiKeyRecord, AuditRecord, Backend, CheckpointRecord, DatasetRecord, FileQuery, FileRecord,
    JobKind, JobOutcome, JobStatus, Metadata, NewJob, NewModelVersion, StoreError,
};
use aiaas_types::{Format, Task};

/// A migrated database for one test, and where it lives (to reopen it).
struct Db {
    url: String,
    meta: Metadata,
}

async fn fixture(blank: &common::Blank) -> Db {
    let meta = Metadata::connect(&blank.url).await.unwrap();
    if blank.url.starts_with("postgres") {
        assert_eq!(meta.backend(), Backend::Postgres);
    }
    Db {
        url: blank.url.clone(),
        meta,
    }
}

async fn finish(db: Db) {
    db.meta.close().await;
}

impl Db {
    async fn reopen(&self) -> Metadata {
        Metadata::connect(&self.url).await.unwrap()
    }
}

on_both_databases!(
    migrations_are_idempotent_and_data_survives_reopen,
    duplicate_names_are_conflicts,
    keys_round_trip_and_revoke_once,
    each_job_is_claimed_exactly_once_by_concurrent_workers,
    cancel_and_finish_follow_the_state_machine,
    events_get_consecutive_sequence_numbers,
    a_job_whose_lease_ran_out_is_claimed_again_and_the_old_worker_is_locked_out,
    concurrent_audit_appends_from_several_connections_form_one_chain,
    model_versions_keep_their_task_and_format,
    files_page_by_cursor_within_their_tenant,
    fine_tuning_jobs_validate_queue_apart_and_keep_checkpoints,
);

async fn files_page_by_cursor_within_their_tenant(fx: &Db) {
    let db = &fx.meta;
    let a = db.create_tenant("acme").await.unwrap();
    let b = db.create_tenant("other").await.unwrap();
    let file = |tenant: &str, i: i64, purpose: &str| FileRecord {
        id: format!("file-{i:03}"),
        tenant_id: tenant.into(),
        filename: format!("f{i}.jsonl"),
        purpose: purpose.into(),
        bytes: 10 * i,
        format: "chat".into(),
        examples: i,
        masked: (i % 2 == 0).then(|| "label".to_string()),
        artifact_key: format!("files/{tenant}/file-{i:03}"),
        // Two files per millisecond: ties are ordered by id.
        created_at: 1_000 + i / 2,
    };
    for i in 0..7 {
        db.insert_file(&file(&a.id, i, "fine-tune")).await.unwrap();
    }
    db.insert_file(&file(&a.id, 7, "batch")).await.unwrap();
    db.insert_file(&file(&b.id, 8, "fine-tune")).await.unwrap();
    assert_eq!(
        db.file("file-003").await.unwrap(),
        Some(file(&a.id, 3, "fine-tune"))
    );
    let page = |after: Option<FileRecord>, ascending: bool| {
        let tenant = a.id.clone();
        async move {
            let q = FileQuery {
                purpose: Some("fine-tune"),
                after: after.as_ref(),
                limit: 3,
                ascending,
            };
            db.files(&tenant, q)
                .await
                .unwrap()
                .into_iter()
                .map(|f| f.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(page(None, true).await, ["file-000", "file-001", "file-002"]);
    let after = db.file("file-002").await.unwrap();
    assert_eq!(
        page(after, true).await,
        ["file-003", "file-004", "file-005"]
    );
    let after = db.file("file-005").await.unwrap();
    assert_eq!(page(after, true).await, ["file-006"]);
    assert_eq!(
        page(None, false).await,
        ["file-006", "file-005", "file-004"]
    );
    let after = db.file("file-004").await.unwrap();
    assert_eq!(
        page(after, false).await,
        ["file-003", "file-002", "file-001"]
    );
    // No purpose filter: the other purpose too, never the other tenant's.
    let all = db
        .files(
            &a.id,
            FileQuery {
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(all.len(), 8);
    assert!(all.iter().all(|f| f.tenant_id == a.id));
    assert!(db.delete_file("file-003").await.unwrap());
    assert!(!db.delete_file("file-003").await.unwrap());
    assert_eq!(db.file("file-003").await.unwrap(), None);
}

async fn model_versions_keep_their_task_and_format(fx: &Db) {
    let db = &fx.meta;
    let t = db.create_tenant("acme").await.unwrap();
    let new = NewModelVersion {
        tenant_id: t.id.clone(),
        model_name: "clf".into(),
        task: Task::TextClassification,
        format: Format::AiaasClassifier,
        architecture: "avgpool".into(),
        labels: vec!["a".into(), "b".into()],
        artifact_prefix: "models/acme/clf/1".into(),
        files: vec!["model.json".into()],
        report: serde_json::json!({}),
        config: serde_json::json!({}),
        job_id: None,
        dataset_id: None,
    };
    let stored = db.insert_model_version(&new).await.unwrap();
    assert_eq!(stored.format, Format::AiaasClassifier);
    let model = db.model_by_name(&t.id, "clf").await.unwrap().unwrap();
    assert_eq!(model.task, Task::TextClassification);
    let read = db.model_version(&model.id, 1).await.unwrap().unwrap();
    assert_eq!((read.version, read.format), (1, Format::AiaasClassifier));
    // A row holding a format this build does not know is corrupt, not a default (read
    // through a fresh connection: the first one caches versions).
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&fx.url).await.unwrap();
    sqlx::query("UPDATE model_versions SET format = 'no-such-format'")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let fresh = fx.reopen().await;
    assert!(matches!(
        fresh.model_version(&model.id, 1).await,
        Err(StoreError::Corrupt(_))
    ));
    fresh.close().await;
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

fn new_job(tenant: &str, dataset: &str) -> NewJob {
    NewJob {
        kind: aiaas_store::JobKind::Classifier,
        tenant_id: tenant.into(),
        model_name: "m".into(),
        dataset_id: dataset.into(),
        test_dataset_id: None,
        config: serde_json::json!({}),
        deploy: false,
    }
}

const LEASE: i64 = 60_000;

async fn migrations_are_idempotent_and_data_survives_reopen(fx: &Db) {
    let t = fx.meta.create_tenant("acme").await.unwrap();
    // Two more opens at once (replicas starting together) migrate nothing twice.
    let (a, b) = tokio::join!(fx.reopen(), fx.reopen());
    assert_eq!(a.tenant(&t.id).await.unwrap().unwrap().name, "acme");
    assert_eq!(b.tenant(&t.id).await.unwrap().unwrap().name, "acme");
    a.close().await;
    b.close().await;
}

async fn duplicate_names_are_conflicts(fx: &Db) {
    let db = &fx.meta;
    db.create_tenant("acme").await.unwrap();
    assert!(matches!(
        db.create_tenant("acme").await,
        Err(StoreError::Conflict(_))
    ));
}

async fn keys_round_trip_and_revoke_once(fx: &Db) {
    let db = &fx.meta;
    let t = db.create_tenant("acme").await.unwrap();
    let key = ApiKeyRecord {
        id: aiaas_types::new_id(),
        tenant_id: t.id.clone(),
        name: "ci".into(),
        role: aiaas_types::Role::Developer,
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

async fn each_job_is_claimed_exactly_once_by_concurrent_workers(fx: &Db) {
    let db = &fx.meta;
    let t = db.create_tenant("acme").await.unwrap();
    let ds = dataset(db, &t.id, "news").await;
    for _ in 0..40 {
        db.insert_job(&NewJob {
            kind: aiaas_store::JobKind::Classifier,
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
    // Each worker on its own connection pool, as replicas would be.
    let mut workers = Vec::new();
    for w in 0..4 {
        let db = fx.reopen().await;
        workers.push(tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(job) = db.claim_next_job(&format!("w{w}"), LEASE).await.unwrap() {
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

async fn cancel_and_finish_follow_the_state_machine(fx: &Db) {
    let db = &fx.meta;
    let t = db.create_tenant("acme").await.unwrap();
    let ds = dataset(db, &t.id, "news").await;
    let new = NewJob {
        kind: aiaas_store::JobKind::Classifier,
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
    let claimed = db.claim_next_job("w", LEASE).await.unwrap().unwrap();
    assert_eq!(claimed.id, job.id);
    assert_eq!(
        db.request_cancel(&job.id).await.unwrap(),
        Some(JobStatus::Running)
    );
    assert!(db.cancel_requested(&job.id).await.unwrap());
    assert!(db
        .finish_job(&job.id, "w", &JobOutcome::Cancelled)
        .await
        .unwrap());
    // A finished job cannot be finished again.
    assert!(!db
        .finish_job(&job.id, "w", &JobOutcome::Failed("x".into()))
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

async fn events_get_consecutive_sequence_numbers(fx: &Db) {
    let db = &fx.meta;
    let t = db.create_tenant("acme").await.unwrap();
    let ds = dataset(db, &t.id, "news").await;
    let job = db
        .insert_job(&NewJob {
            kind: aiaas_store::JobKind::Classifier,
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

async fn a_job_whose_lease_ran_out_is_claimed_again_and_the_old_worker_is_locked_out(fx: &Db) {
    let db = &fx.meta;
    let t = db.create_tenant("acme").await.unwrap();
    let ds = dataset(db, &t.id, "news").await;
    let job = db.insert_job(&new_job(&t.id, &ds.id)).await.unwrap();
    let first = db.claim_next_job("dead", 200).await.unwrap().unwrap();
    assert_eq!((first.id.as_str(), first.attempts), (job.id.as_str(), 1));
    // While the lease holds, nobody else gets the job; the holder can renew it.
    assert!(db.claim_next_job("other", LEASE).await.unwrap().is_none());
    assert!(db.renew_job_lease(&job.id, "dead", 200).await.unwrap());
    assert!(!db.renew_job_lease(&job.id, "other", LEASE).await.unwrap());
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let again = db.claim_next_job("other", LEASE).await.unwrap().unwrap();
    assert_eq!((again.id.as_str(), again.attempts), (job.id.as_str(), 2));
    // The worker that lost the lease can neither renew, nor finish, nor release it.
    assert!(!db.renew_job_lease(&job.id, "dead", LEASE).await.unwrap());
    assert!(!db
        .finish_job(&job.id, "dead", &JobOutcome::Failed("late".into()))
        .await
        .unwrap());
    assert!(!db.release_job(&job.id, "dead").await.unwrap());
    assert!(db
        .finish_job(&job.id, "other", &JobOutcome::Cancelled)
        .await
        .unwrap());
    assert_eq!(
        db.job(&job.id).await.unwrap().unwrap().status,
        JobStatus::Cancelled
    );
}

async fn concurrent_audit_appends_from_several_connections_form_one_chain(fx: &Db) {
    let mut tasks = Vec::new();
    for replica in 0..3 {
        let db = fx.reopen().await;
        tasks.push(tokio::spawn(async move {
            for i in 0..15 {
                let mut tries = 0;
                loop {
                    let appended = db
                        .append_audit(|head| {
                            let (seq, prev) = head.unwrap_or((0, "genesis".into()));
                            AuditRecord {
                                seq: seq + 1,
                                id: aiaas_types::new_id(),
                                at: aiaas_types::now_ms(),
                                tenant_id: None,
                                key_id: None,
                                role: None,
                                action: format!("r{replica}.{i}"),
                                target: None,
                                outcome: "success".into(),
                                source: None,
                                detail: "{}".into(),
                                hash: format!("{prev}>{}", seq + 1),
                                prev_hash: prev,
                            }
                        })
                        .await;
                    match appended {
                        Ok(_) => break,
                        // SQLite: another connection took the sequence number; build again.
                        Err(StoreError::Conflict(_)) if tries < 50 => tries += 1,
                        Err(e) => panic!("append failed: {e}"),
                    }
                }
            }
            db.close().await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let all = fx
        .meta
        .audit_entries(&aiaas_store::AuditFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 45);
    let mut prev = "genesis".to_string();
    for (i, r) in all.iter().enumerate() {
        assert_eq!(r.seq, i as i64 + 1);
        assert_eq!(r.prev_hash, prev, "entry {} links to the one before", r.seq);
        prev = r.hash.clone();
    }
}

/// A database that is not there is a clear error after the start-up patience, naming
/// the host and never the password.
#[tokio::test]
async fn an_unreachable_postgres_is_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port(); // bound, then closed: nobody listens there
    let url = format!("postgres://aiaas:hunter2@127.0.0.1:{port}/aiaas");
    let err = match Metadata::connect_postgres_within(&url, std::time::Duration::from_secs(1)).await
    {
        Ok(_) => panic!("connected to a closed port"),
        Err(e) => e,
    };
    assert!(err.is_unavailable(), "{err}");
    let message = err.to_string();
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
}

async fn fine_tuning_jobs_validate_queue_apart_and_keep_checkpoints(fx: &Db) {
    let db = &fx.meta;
    let t = db.create_tenant("acme").await.unwrap();
    let other = db.create_tenant("other").await.unwrap();
    let new = |tenant: &str| NewJob {
        kind: JobKind::FineTune,
        tenant_id: tenant.into(),
        model_name: "smollm2".into(),
        dataset_id: "file-1".into(),
        test_dataset_id: None,
        config: serde_json::json!({"n_epochs": "auto"}),
        deploy: false,
    };
    let job = db.insert_job(&new(&t.id)).await.unwrap();
    assert!(job.id.starts_with("ftjob-"), "{}", job.id);
    assert_eq!(
        (job.kind, job.status),
        (JobKind::FineTune, JobStatus::ValidatingFiles)
    );
    // Not claimable while validating; never claimed by classifier workers.
    assert!(db
        .claim_next_job_of(JobKind::FineTune, "w", LEASE)
        .await
        .unwrap()
        .is_none());
    let resolved = serde_json::json!({"n_epochs": 3});
    assert!(db.end_validation(&job.id, &resolved, Ok(())).await.unwrap());
    assert!(!db
        .end_validation(&job.id, &resolved, Err("late".into()))
        .await
        .unwrap());
    assert!(db.claim_next_job("w", LEASE).await.unwrap().is_none());
    assert!(
        db.jobs(None).await.unwrap().is_empty(),
        "classifier listings leave them out"
    );
    let claimed = db
        .claim_next_job_of(JobKind::FineTune, "w", LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (claimed.id.as_str(), claimed.config.clone()),
        (job.id.as_str(), resolved)
    );
    let checkpoint = |step: i64| CheckpointRecord {
        id: format!("ftckpt-{step}"),
        job_id: job.id.clone(),
        step,
        metrics: serde_json::json!({"train_loss": 1.0 / step as f64}),
        artifact_key: format!("finetune/{step}/trainer.safetensors"),
        adapter_key: format!("finetune/{step}/adapter.gguf"),
        created_at: step,
    };
    assert!(db.insert_checkpoint("w", &checkpoint(3)).await.unwrap());
    assert!(db.insert_checkpoint("w", &checkpoint(6)).await.unwrap());
    assert!(!db
        .insert_checkpoint("intruder", &checkpoint(9))
        .await
        .unwrap());
    let steps: Vec<i64> = db
        .checkpoints(&job.id)
        .await
        .unwrap()
        .iter()
        .map(|c| c.step)
        .collect();
    assert_eq!(steps, [6, 3]);
    let referenced = db.referenced_artifacts().await.unwrap();
    assert!(
        referenced.contains(&"finetune/6/adapter.gguf".to_string()),
        "{referenced:?}"
    );
    for i in 0..5 {
        db.append_job_event(&job.id, &serde_json::json!({"message": i}))
            .await
            .unwrap();
    }
    let newest = db.job_events_page(&job.id, None, 2).await.unwrap();
    let seqs: Vec<i64> = newest.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [5, 4]);
    let older = db.job_events_page(&job.id, Some(4), 10).await.unwrap();
    assert_eq!(older.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 2, 1]);
    // Pages of a tenant's jobs, newest first, by cursor; another tenant's are apart.
    let mut ids = vec![job.id.clone()];
    for _ in 0..3 {
        ids.push(db.insert_job(&new(&t.id)).await.unwrap().id);
    }
    db.insert_job(&new(&other.id)).await.unwrap();
    let first = db
        .jobs_page(JobKind::FineTune, &t.id, None, 2)
        .await
        .unwrap();
    let second = db
        .jobs_page(JobKind::FineTune, &t.id, Some(&first[1].id), 10)
        .await
        .unwrap();
    let paged: Vec<String> = first.iter().chain(&second).map(|j| j.id.clone()).collect();
    ids.reverse();
    assert_eq!(paged, ids);
    // A fine-tuned model's name carries the end of its job's id: it finds that job, and
    // only among its tenant's.
    let tail = &ids[1][ids[1].len() - 12..];
    let found = db
        .jobs_ending_with(JobKind::FineTune, &t.id, tail)
        .await
        .unwrap();
    assert_eq!(
        found.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(),
        [ids[1].as_str()]
    );
    assert!(db
        .jobs_ending_with(JobKind::FineTune, &other.id, tail)
        .await
        .unwrap()
        .is_empty());
    for odd in ["", "%", "_x", "a' OR 1=1"] {
        assert!(db
            .jobs_ending_with(JobKind::FineTune, &t.id, odd)
            .await
            .unwrap()
            .is_empty());
    }
    // A validating or queued job is cancelled at once.
    assert_eq!(
        db.request_cancel(&ids[0]).await.unwrap(),
        Some(JobStatus::Cancelled)
    );
}
