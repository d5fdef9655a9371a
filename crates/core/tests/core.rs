//! Integration tests of `Platform` on a real SQLite data directory: authorisation in the
//! core — tenants cannot see or touch each other's datasets, jobs, models, deployments,
//! aliases and keys (always `NotFound`, nothing changed), roles are enforced (`Forbidden`),
//! and the platform shuts down cleanly.

use std::fmt::Debug;
use std::time::{Duration, Instant};

use aiaas_core::{
    CoreError, CreatedKey, DatasetRecord, DatasetSpec, DeployRequest, JobRecord, JobStatus, NewKey,
    Platform, PlatformConfig, Tenant, TrainRequest,
};
use aiaas_types::{Architecture, EmbeddingInit, Principal, Role, Secret, TrainConfig};

const ADMIN_KEY: &str = "aiaas_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_are_enforced_in_the_core() {
    let w = World::start().await;
    let a = &w.acme;
    let data = upload(&w.platform, &a.developer, "data", &topic_csv(&TOPICS, 30)).await;
    let job = w
        .platform
        .jobs()
        .submit(&a.developer, train_request(&data.id, "clf"))
        .await
        .unwrap();
    wait_for_job(&w.platform, &a.developer, &job.id).await;

    // Inference keys call models and nothing else.
    let inf = &a.inference;
    forbidden(
        "begin_upload",
        w.platform.datasets().begin_upload(inf).await.map(|_| ()),
    );
    forbidden(
        "submit_job",
        w.platform
            .jobs()
            .submit(inf, train_request(&data.id, "clf"))
            .await,
    );
    forbidden(
        "deploy",
        w.platform
            .models()
            .deploy(inf, "clf", DeployRequest::default())
            .await,
    );
    forbidden(
        "set_alias",
        w.platform.models().set_alias(inf, "clf", "prod", 1).await,
    );
    forbidden("delete_model", w.platform.models().delete(inf, "clf").await);
    forbidden("list_datasets", w.platform.datasets().list(inf).await);
    forbidden(
        "get_dataset",
        w.platform.datasets().get(inf, &data.id).await,
    );
    forbidden(
        "delete_dataset",
        w.platform.datasets().delete(inf, &data.id).await,
    );
    forbidden("cancel_job", w.platform.jobs().cancel(inf, &job.id).await);
    forbidden(
        "create_key",
        w.platform
            .accounts()
            .create_key(inf, new_key(None, Role::Inference))
            .await,
    );
    assert_eq!(
        w.platform
            .models()
            .get(inf, "clf")
            .await
            .unwrap()
            .versions
            .len(),
        1
    );
    assert!(w
        .platform
        .models()
        .get(&a.developer, "clf")
        .await
        .unwrap()
        .deployment
        .is_none());

    // Developers work with data and models but do not manage keys or tenants.
    let dev = &a.developer;
    forbidden(
        "create_key",
        w.platform
            .accounts()
            .create_key(dev, new_key(None, Role::Inference))
            .await,
    );
    forbidden("list_keys", w.platform.accounts().list_keys(dev).await);
    forbidden(
        "revoke_key",
        w.platform
            .accounts()
            .revoke_key(dev, &a.inference_key.key.id)
            .await,
    );
    forbidden(
        "create_tenant",
        w.platform.accounts().create_tenant(dev, "newco").await,
    );
    w.platform
        .accounts()
        .authenticate(a.inference_key.secret.expose())
        .await
        .unwrap();

    // A deploy-on-success job needs Deploy as well as Train; developers have both.
    let mut deploying = train_request(&data.id, "clf");
    deploying.deploy = true;
    forbidden(
        "submit_job (deploy)",
        w.platform.jobs().submit(inf, deploying.clone()).await,
    );
    let job = w.platform.jobs().submit(dev, deploying).await.unwrap();
    assert_eq!(
        wait_for_job(&w.platform, dev, &job.id).await.status,
        JobStatus::Succeeded
    );
    let details = w.platform.models().get(dev, "clf").await.unwrap();
    assert_eq!(details.deployment.map(|d| d.version), Some(2));

    // Owners manage their tenant's keys, but not tenants, and mint no key above their own.
    let owner = &a.owner;
    forbidden(
        "create_tenant",
        w.platform.accounts().create_tenant(owner, "newco").await,
    );
    forbidden(
        "list_tenants",
        w.platform.accounts().list_tenants(owner).await,
    );
    forbidden(
        "create_key (admin)",
        w.platform
            .accounts()
            .create_key(owner, new_key(None, Role::Admin))
            .await,
    );
    let tenant_admin = w
        .platform
        .accounts()
        .create_key(&w.admin, new_key(Some("acme"), Role::Admin))
        .await
        .unwrap();
    forbidden(
        "revoke_key (admin)",
        w.platform
            .accounts()
            .revoke_key(owner, &tenant_admin.key.id)
            .await,
    );
    w.platform
        .accounts()
        .authenticate(tenant_admin.secret.expose())
        .await
        .unwrap();
    let names: Vec<String> = w
        .platform
        .accounts()
        .list_tenants(&w.admin)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert!(!names.contains(&"newco".to_string()), "{names:?}");

    // An owner's revocation takes effect at once.
    let extra = w
        .platform
        .accounts()
        .create_key(owner, new_key(None, Role::Developer))
        .await
        .unwrap();
    w.platform
        .accounts()
        .authenticate(extra.secret.expose())
        .await
        .unwrap();
    let revoked = w
        .platform
        .accounts()
        .revoke_key(owner, &extra.key.id)
        .await
        .unwrap();
    assert!(revoked.revoked_at.is_some());
    assert!(matches!(
        w.platform
            .accounts()
            .authenticate(extra.secret.expose())
            .await,
        Err(CoreError::Unauthenticated(_))
    ));

    // Allow-lists restrict inference keys to the named models.
    let mut narrow = new_key(None, Role::Inference);
    narrow.allowed_models = Some(vec!["other".into()]);
    let narrow = w
        .platform
        .accounts()
        .create_key(owner, narrow)
        .await
        .unwrap();
    let narrow = w
        .platform
        .accounts()
        .authenticate(narrow.secret.expose())
        .await
        .unwrap();
    forbidden(
        "predict (allow-list)",
        w.platform
            .models()
            .predict(&narrow, "clf", vec!["goal".into()])
            .await,
    );
    assert_eq!(
        w.platform
            .models()
            .predict(inf, "clf", vec!["goal".into()])
            .await
            .unwrap()
            .version,
        2
    );

    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_keys_are_unauthenticated_and_shutdown_completes() {
    let w = World::start().await;
    let unknown = format!("aiaas_{}", "f".repeat(64));
    for secret in ["", "Bearer x", "aiaas_short", unknown.as_str()] {
        assert!(
            matches!(
                w.platform.accounts().authenticate(secret).await,
                Err(CoreError::Unauthenticated(_))
            ),
            "{secret:?}"
        );
    }
    w.platform.ready().await.unwrap();
    let platform = w.platform.clone();
    w.shutdown().await;
    assert!(matches!(
        platform.ready().await,
        Err(CoreError::Unavailable(_))
    ));
}

// ---- fixture ----

/// A started platform with an admin and two tenants, each with one key of every role.
struct World {
    _dir: tempfile::TempDir,
    platform: Platform,
    admin: Principal,
    acme: TenantKeys,
    rival: TenantKeys,
}

struct TenantKeys {
    tenant: Tenant,
    owner: Principal,
    developer: Principal,
    inference: Principal,
    owner_key: CreatedKey,
    developer_key: CreatedKey,
    inference_key: CreatedKey,
}

impl World {
    async fn start() -> World {
        let dir = tempfile::tempdir().unwrap();
        let mut config = PlatformConfig::new(dir.path());
        config.admin_key = Some(Secret::new(ADMIN_KEY));
        config.demo = false;
        // From "the environment": nothing written beside the temp dir.
        config.master_key = aiaas_core::MasterKeySource::Value("ef".repeat(32));
        let (platform, report) = Platform::open(config).await.unwrap();
        assert!(report.first_start && report.admin_key_from_env);
        assert!(report.new_admin_key.is_none());
        platform.start(&report);
        let admin = platform.accounts().authenticate(ADMIN_KEY).await.unwrap();
        assert_eq!(admin.role, Role::Admin);
        let acme = TenantKeys::create(&platform, &admin, "acme").await;
        let rival = TenantKeys::create(&platform, &admin, "rival").await;
        World {
            _dir: dir,
            platform,
            admin,
            acme,
            rival,
        }
    }

    async fn shutdown(self) {
        tokio::time::timeout(Duration::from_secs(30), self.platform.shutdown())
            .await
            .expect("shutdown did not complete");
    }
}

impl TenantKeys {
    async fn create(platform: &Platform, admin: &Principal, name: &str) -> TenantKeys {
        let tenant = platform
            .accounts()
            .create_tenant(admin, name)
            .await
            .unwrap();
        let owner_key = platform
            .accounts()
            .create_key(admin, new_key(Some(name), Role::Owner))
            .await
            .unwrap();
        let owner = platform
            .accounts()
            .authenticate(owner_key.secret.expose())
            .await
            .unwrap();
        assert_eq!(
            (owner.role, owner.tenant_id.as_str()),
            (Role::Owner, tenant.id.as_str())
        );
        let developer_key = platform
            .accounts()
            .create_key(&owner, new_key(None, Role::Developer))
            .await
            .unwrap();
        let developer = platform
            .accounts()
            .authenticate(developer_key.secret.expose())
            .await
            .unwrap();
        let inference_key = platform
            .accounts()
            .create_key(&owner, new_key(None, Role::Inference))
            .await
            .unwrap();
        let inference = platform
            .accounts()
            .authenticate(inference_key.secret.expose())
            .await
            .unwrap();
        for p in [&developer, &inference] {
            assert_eq!(p.tenant_id, tenant.id);
        }
        TenantKeys {
            tenant,
            owner,
            developer,
            inference,
            owner_key,
            developer_key,
            inference_key,
        }
    }
}

/// What tenant A can observe of its objects; compared before and after tenant B's attempts.
#[derive(Debug, PartialEq)]
struct Snapshot {
    dataset: DatasetRecord,
    preview: Vec<(u64, String, String)>,
    job: JobRecord,
    events: usize,
    jobs: usize,
    model: String,
    keys_usable: Vec<bool>,
}

impl Snapshot {
    async fn take(
        platform: &Platform,
        a: &TenantKeys,
        dataset: &DatasetRecord,
        job: &JobRecord,
    ) -> Snapshot {
        let preview = platform
            .datasets()
            .preview(&a.developer, &dataset.id, 1000)
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.line, r.text, r.label))
            .collect();
        let (job, events) = platform
            .jobs()
            .events(&a.developer, &job.id, 0)
            .await
            .unwrap();
        let model = platform.models().get(&a.developer, "clf").await.unwrap();
        // Versions, aliases, deployment and whether it is loaded, as one comparable value.
        let model = format!(
            "{:?} {:?} {:?} {}",
            model.versions, model.aliases, model.deployment, model.loaded
        );
        let mut keys_usable = Vec::new();
        for key in [&a.owner_key, &a.developer_key, &a.inference_key] {
            keys_usable.push(
                platform
                    .accounts()
                    .authenticate(key.secret.expose())
                    .await
                    .is_ok(),
            );
        }
        keys_usable.push(platform.accounts().authenticate(ADMIN_KEY).await.is_ok());
        Snapshot {
            dataset: platform
                .datasets()
                .get(&a.developer, &dataset.id)
                .await
                .unwrap(),
            preview,
            job,
            events: events.len(),
            jobs: platform.jobs().list(&a.developer).await.unwrap().len(),
            model,
            keys_usable,
        }
    }
}

// ---- helpers ----

const TOPICS: [(&str, [&str; 5]); 3] = [
    ("sport", ["goal", "match", "team", "league", "coach"]),
    ("tech", ["software", "chip", "phone", "internet", "data"]),
    (
        "politics",
        ["vote", "minister", "election", "party", "senate"],
    ),
];
const MAIL: [(&str, [&str; 5]); 2] = [
    ("spam", ["free", "offer", "win", "prize", "click"]),
    ("ham", ["meeting", "lunch", "report", "family", "weekend"]),
];

/// A CSV of `rows` short texts cycling through the classes, each of its class's words.
fn topic_csv(classes: &[(&str, [&str; 5])], rows: usize) -> String {
    let mut csv = String::from("text,label\n");
    for i in 0..rows {
        let (label, words) = classes[i % classes.len()];
        let text: Vec<&str> = (0..6)
            .map(|j| words[(i * 7 + j * 3) % words.len()])
            .collect();
        csv.push_str(&format!("the {} today,{label}\n", text.join(" ")));
    }
    csv
}

async fn upload(
    platform: &Platform,
    principal: &Principal,
    name: &str,
    csv: &str,
) -> DatasetRecord {
    let mut upload = platform.datasets().begin_upload(principal).await.unwrap();
    let (head, tail) = csv.as_bytes().split_at(csv.len() / 2);
    upload.write_chunk(head).await.unwrap();
    upload.write_chunk(tail).await.unwrap();
    let spec = DatasetSpec {
        name: name.into(),
        format: None,
        text_column: None,
        label_column: None,
        mask_pii: None,
    };
    let record = platform
        .datasets()
        .create(principal, spec, upload)
        .await
        .unwrap();
    assert_eq!(record.tenant_id, principal.tenant_id);
    assert_eq!(record.row_count as usize, csv.lines().count() - 1);
    record
}

fn train_request(dataset: &str, model: &str) -> TrainRequest {
    TrainRequest {
        dataset: dataset.into(),
        test_dataset: None,
        model: model.into(),
        config: TrainConfig {
            architecture: Architecture::TfidfLogreg,
            embedding: EmbeddingInit::Random,
            epochs: 3,
            threads: 1,
            ..TrainConfig::default()
        },
        deploy: false,
    }
}

fn new_key(tenant: Option<&str>, role: Role) -> NewKey {
    NewKey {
        tenant: tenant.map(str::to_string),
        name: format!("{} key", role.as_str()),
        role,
        allowed_models: None,
        expires_in_secs: None,
        limits: None,
        allowed_ips: None,
    }
}

/// Poll a job until it reaches a terminal status (training here takes milliseconds).
async fn wait_for_job(platform: &Platform, principal: &Principal, id: &str) -> JobRecord {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let job = platform.jobs().get(principal, id).await.unwrap();
        if job.status.is_terminal() {
            return job;
        }
        assert!(Instant::now() < deadline, "job {id} still {:?}", job.status);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn not_found<T: Debug>(what: &str, result: Result<T, CoreError>) {
    match result {
        Err(CoreError::NotFound(_)) => {}
        other => panic!("{what}: expected NotFound, got {other:?}"),
    }
}

fn forbidden<T: Debug>(what: &str, result: Result<T, CoreError>) {
    match result {
        Err(CoreError::Forbidden(_)) => {}
        other => panic!("{what}: expected Forbidden, got {other:?}"),
    }
}
