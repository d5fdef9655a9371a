//! The one model registry: library models (installation-wide) and tenants' trained
//! models are rows of the same tables, apart only in their owner. Run on SQLite and on
//! PostgreSQL (common/mod.rs).

use aiaas_store::{
    AutoRollback, CanarySettings, DeploymentSettings, LibraryModelRecord, Metadata,
    NewModelVersion, StoreError, INSTALLATION,
};
use aiaas_types::{Format, Task};
use serde_json::json;

mod common;

/// Each body gets the URL of an empty database (the upgrade test lays out an old schema
/// first).
async fn fixture(blank: &common::Blank) -> String {
    blank.url.clone()
}

async fn finish(_: String) {}

on_both_databases!(
    library_models_are_installation_models_in_the_one_registry,
    library_models_of_an_older_schema_move_into_the_registry,
    a_canary_ends_once_and_its_events_stay_with_the_model,
);

fn pulled(name: &str) -> LibraryModelRecord {
    LibraryModelRecord {
        id: aiaas_types::new_id(),
        name: name.into(),
        task: Task::Chat,
        format: Format::Gguf,
        source: "catalogue:qwen".into(),
        license: "apache-2.0".into(),
        files: json!([{"name": "model.gguf", "size": 10, "sha256": "ab"}]),
        size_bytes: 10,
        defaults: json!({"temperature": 0.7}),
        settings: json!({}),
        created_at: 1,
    }
}

async fn library_models_are_installation_models_in_the_one_registry(url: &str) {
    let db = Metadata::connect(url).await.unwrap();
    let acme = db.create_tenant("acme").await.unwrap();
    // A tenant's trained model of the same name lives beside the library's.
    let trained = db
        .insert_model_version(&NewModelVersion {
            tenant_id: acme.id.clone(),
            model_name: "qwen".into(),
            task: Task::TextClassification,
            format: Format::AiaasClassifier,
            architecture: "avgpool".into(),
            labels: vec!["a".into()],
            artifact_prefix: "models/acme/qwen/1".into(),
            files: vec!["model.json".into()],
            report: json!({}),
            config: json!({}),
            job_id: None,
            dataset_id: None,
        })
        .await
        .unwrap();
    let settings = DeploymentSettings {
        max_queue_time_ms: 250,
        max_batch: 8,
        max_delay_ms: 2,
        queue_capacity: 64,
        pii_inputs: None,
        pii_detectors: Vec::new(),
    };
    db.upsert_deployment(&trained.model_id, 1, settings, None)
        .await
        .unwrap();

    let record = pulled("qwen");
    db.insert_library_model(&record).await.unwrap();
    assert!(matches!(
        db.insert_library_model(&pulled("qwen")).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(db.library_models().await.unwrap(), vec![record.clone()]);
    assert_eq!(
        db.library_model("qwen").await.unwrap(),
        Some(record.clone())
    );

    // In the registry: a model owned by the installation, version 1, deployed.
    let model = db
        .model_by_name(INSTALLATION, "qwen")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (model.id.as_str(), model.task),
        (record.id.as_str(), Task::Chat)
    );
    let version = db.model_version(&model.id, 1).await.unwrap().unwrap();
    assert_eq!(version.format, Format::Gguf);
    assert_eq!(version.files, vec!["model.gguf".to_string()]);
    assert_eq!(version.artifact_prefix, format!("library/{}", record.id));
    assert_eq!(db.deployment(&model.id).await.unwrap().unwrap().version, 1);

    // Never listed as a tenant, a tenant's model or a classifier deployment; never backed
    // up (pulled again instead).
    let tenants = db.tenants().await.unwrap();
    assert!(tenants.iter().all(|t| t.id != INSTALLATION), "{tenants:?}");
    assert!(db.tenant(INSTALLATION).await.unwrap().is_none());
    let all: Vec<_> = db.models(None).await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].tenant_id, acme.id);
    let deployments = db.deployments().await.unwrap();
    assert_eq!(deployments.len(), 1);
    assert_eq!(deployments[0].model_id, trained.model_id);
    let referenced = db.referenced_artifacts().await.unwrap();
    assert_eq!(referenced, vec!["models/acme/qwen/1".to_string()]);

    // Settings are the deployment's; removal takes the version and deployment along.
    assert!(db
        .set_library_settings("qwen", &json!({"slots": 2}))
        .await
        .unwrap());
    let changed = db.library_model("qwen").await.unwrap().unwrap();
    assert_eq!(changed.settings, json!({"slots": 2}));
    assert!(!db.set_library_settings("nope", &json!({})).await.unwrap());
    assert!(db.delete_library_model("qwen").await.unwrap());
    assert!(!db.delete_library_model("qwen").await.unwrap());
    assert!(db.library_models().await.unwrap().is_empty());
    assert!(db.model_version(&model.id, 1).await.unwrap().is_none());
    assert!(db.deployment(&model.id).await.unwrap().is_none());
    // The tenant's model is untouched.
    assert!(db.model_by_name(&acme.id, "qwen").await.unwrap().is_some());
    db.close().await;
}

/// The SQL statements of a migration file (comments dropped), as the store runs them.
fn statements(sql: &str) -> Vec<String> {
    let code: Vec<&str> = sql.lines().map(|l| l.split("--").next().unwrap()).collect();
    code.join("\n")
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// A database as the release before the one registry left it (migrations 1 to 8), with
/// a pulled model in `library_models`, opens with that model in the registry.
async fn library_models_of_an_older_schema_move_into_the_registry(url: &str) {
    const OLD: [&str; 8] = [
        include_str!("../migrations/0001_foundation.sql"),
        include_str!("../migrations/0002_library.sql"),
        include_str!("../migrations/0003_audit.sql"),
        include_str!("../migrations/0004_limits.sql"),
        include_str!("../migrations/0005_privacy.sql"),
        include_str!("../migrations/0006_output_privacy.sql"),
        include_str!("../migrations/0007_replicas.sql"),
        include_str!("../migrations/0008_version_formats.sql"),
    ];
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    sqlx::query(
        "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, \
         applied_at BIGINT NOT NULL)",
    )
    .execute(&pool)
    .await
    .unwrap();
    for (i, sql) in OLD.iter().enumerate() {
        for statement in statements(sql) {
            sqlx::query(&statement).execute(&pool).await.unwrap();
        }
        sqlx::query("INSERT INTO schema_migrations VALUES ($1, 'old', 0)")
            .bind(i as i64 + 1)
            .execute(&pool)
            .await
            .unwrap();
    }
    sqlx::query(
        "INSERT INTO library_models (id, name, task, format, source, license, dir, files, \
         size_bytes, defaults, settings, created_at) VALUES ('lib-1', 'minilm', 'embedding', \
         'hf-encoder', 'catalogue:minilm', 'apache-2.0', 'minilm', \
         '[{\"name\":\"model.safetensors\",\"size\":5}]', 5, '{}', '{\"max_batch\":16}', 7)",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    let db = Metadata::connect(url).await.unwrap();
    let moved = db.library_model("minilm").await.unwrap().unwrap();
    assert_eq!(
        moved,
        LibraryModelRecord {
            id: "lib-1".into(),
            name: "minilm".into(),
            task: Task::Embedding,
            format: Format::HfEncoder,
            source: "catalogue:minilm".into(),
            license: "apache-2.0".into(),
            files: json!([{"name": "model.safetensors", "size": 5}]),
            size_bytes: 5,
            defaults: json!({}),
            settings: json!({"max_batch": 16}),
            created_at: 7,
        }
    );
    let version = db.model_version("lib-1", 1).await.unwrap().unwrap();
    assert_eq!(version.artifact_prefix, "library/lib-1");
    // A second pull of the same name is still a conflict after the move.
    assert!(matches!(
        db.insert_library_model(&LibraryModelRecord {
            name: "minilm".into(),
            ..pulled("x")
        })
        .await,
        Err(StoreError::Conflict(_))
    ));
    db.close().await;
}

fn version_of(tenant_id: &str, name: &str) -> NewModelVersion {
    NewModelVersion {
        tenant_id: tenant_id.into(),
        model_name: name.into(),
        task: Task::Tensor,
        format: Format::Onnx,
        architecture: "onnx".into(),
        labels: vec![],
        artifact_prefix: format!("models/{tenant_id}/{name}/{}", aiaas_types::new_id()),
        files: vec!["model.onnx".into()],
        report: json!({}),
        config: json!({}),
        job_id: None,
        dataset_id: None,
    }
}

async fn a_canary_ends_once_and_its_events_stay_with_the_model(url: &str) {
    let db = Metadata::connect(url).await.unwrap();
    let acme = db.create_tenant("acme").await.unwrap();
    let v1 = db
        .insert_model_version(&version_of(&acme.id, "m"))
        .await
        .unwrap();
    db.insert_model_version(&version_of(&acme.id, "m"))
        .await
        .unwrap();
    let model_id = v1.model_id.clone();
    let settings = DeploymentSettings {
        max_queue_time_ms: 0,
        max_batch: 8,
        max_delay_ms: 0,
        queue_capacity: 64,
        pii_inputs: None,
        pii_detectors: Vec::new(),
    };
    let rule = AutoRollback {
        max_error_rate_increase: 0.05,
        window_secs: 60,
        min_requests: 50,
    };
    let canary = CanarySettings {
        version: 2,
        percent: 10,
        auto_rollback: Some(rule),
    };
    let d = db
        .upsert_deployment(&model_id, 1, settings.clone(), Some(&canary))
        .await
        .unwrap();
    let c = d.canary.clone().expect("a canary");
    assert_eq!(
        (d.version, c.version, c.percent, c.auto_rollback),
        (1, 2, 10, Some(rule))
    );
    assert!(c.started_at > 0);
    // Changing the share keeps the canary's start; the window runs from it.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let moved = CanarySettings {
        percent: 30,
        ..canary.clone()
    };
    let d = db
        .upsert_deployment(&model_id, 1, settings.clone(), Some(&moved))
        .await
        .unwrap();
    let c2 = d.canary.unwrap();
    assert_eq!((c2.percent, c2.started_at), (30, c.started_at));

    // Rolled back once: the second attempt (another replica) finds it ended.
    let d = db.end_canary(&model_id, 2, false).await.unwrap().unwrap();
    assert_eq!((d.version, d.canary), (1, None));
    assert_eq!(db.end_canary(&model_id, 2, false).await.unwrap(), None);
    assert_eq!(db.end_canary(&model_id, 2, true).await.unwrap(), None);

    // Promoted: the canary becomes the deployed version.
    db.upsert_deployment(&model_id, 1, settings, Some(&canary))
        .await
        .unwrap();
    let d = db.end_canary(&model_id, 2, true).await.unwrap().unwrap();
    assert_eq!((d.version, d.canary), (2, None));
    assert_eq!(db.deployment(&model_id).await.unwrap().unwrap().version, 2);

    db.append_model_event(&model_id, "canary.start", &json!({"version": 2}))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    db.append_model_event(&model_id, "canary.promote", &json!({"version": 2}))
        .await
        .unwrap();
    let events = db.model_events(&model_id, 10).await.unwrap();
    let kinds: Vec<_> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["canary.promote", "canary.start"]);
    assert_eq!((events[0].seq, events[1].seq), (2, 1));
    assert_eq!(events[0].detail, json!({"version": 2}));
    assert_eq!(db.model_events(&model_id, 1).await.unwrap().len(), 1);
    // Deleting the model takes its events along.
    db.delete_model(&model_id).await.unwrap();
    assert!(db.model_events(&model_id, 10).await.unwrap().is_empty());
}
