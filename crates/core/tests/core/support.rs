//! The fixtures: two tenants with a key per role, their objects, and snapshots that
//! prove a refused operation changed nothing.

use std::fmt::Debug;
use std::time::{Duration, Instant};

use aiaas_core::{
    CoreError, CreatedKey, DatasetRecord, DatasetSpec, JobRecord, NewKey, Platform, PlatformConfig,
    Tenant, TrainRequest,
};
use aiaas_types::{Architecture, EmbeddingInit, Principal, Role, Secret, TrainConfig};

/// A started platform with an admin and two tenants, each with one key of every role.
pub(crate) struct World {
    pub(crate) _dir: tempfile::TempDir,
    pub(crate) platform: Platform,
    pub(crate) admin: Principal,
    pub(crate) acme: TenantKeys,
    pub(crate) rival: TenantKeys,
}

pub(crate) struct TenantKeys {
    pub(crate) tenant: Tenant,
    pub(crate) owner: Principal,
    pub(crate) developer: Principal,
    pub(crate) inference: Principal,
    pub(crate) owner_key: CreatedKey,
    pub(crate) developer_key: CreatedKey,
    pub(crate) inference_key: CreatedKey,
}

impl World {
    pub(crate) async fn start() -> World {
        World::start_with(|_| {}).await
    }

    /// As `start`, with the configuration changed by `adjust` first.
    pub(crate) async fn start_with(adjust: impl FnOnce(&mut PlatformConfig)) -> World {
        let dir = tempfile::tempdir().unwrap();
        let mut config = PlatformConfig::new(dir.path());
        config.admin_key = Some(Secret::new(ADMIN_KEY));
        config.demo = false;
        // From "the environment": nothing written beside the temp dir.
        config.master_key = aiaas_core::MasterKeySource::Value("ef".repeat(32));
        adjust(&mut config);
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

    pub(crate) async fn shutdown(self) {
        tokio::time::timeout(Duration::from_secs(30), self.platform.shutdown())
            .await
            .expect("shutdown did not complete");
    }
}

impl TenantKeys {
    pub(crate) async fn create(platform: &Platform, admin: &Principal, name: &str) -> TenantKeys {
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
pub(crate) struct Snapshot {
    pub(crate) dataset: DatasetRecord,
    pub(crate) preview: Vec<(u64, String, String)>,
    pub(crate) job: JobRecord,
    pub(crate) events: usize,
    pub(crate) jobs: usize,
    pub(crate) model: String,
    pub(crate) keys_usable: Vec<bool>,
}

impl Snapshot {
    pub(crate) async fn take(
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

pub(crate) const TOPICS: [(&str, [&str; 5]); 3] = [
    ("sport", ["goal", "match", "team", "league", "coach"]),
    ("tech", ["software", "chip", "phone", "internet", "data"]),
    (
        "politics",
        ["vote", "minister", "election", "party", "senate"],
    ),
];
pub(crate) const MAIL: [(&str, [&str; 5]); 2] = [
    ("spam", ["free", "offer", "win", "prize", "click"]),
    ("ham", ["meeting", "lunch", "report", "family", "weekend"]),
];

/// A CSV of `rows` short texts cycling through the classes, each of its class's words.
pub(crate) fn topic_csv(classes: &[(&str, [&str; 5])], rows: usize) -> String {
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

pub(crate) async fn upload(
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
        pii_detectors: Vec::new(),
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

pub(crate) fn train_request(dataset: &str, model: &str) -> TrainRequest {
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

pub(crate) fn new_key(tenant: Option<&str>, role: Role) -> NewKey {
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
pub(crate) async fn wait_for_job(
    platform: &Platform,
    principal: &Principal,
    id: &str,
) -> JobRecord {
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

pub(crate) fn not_found<T: Debug>(what: &str, result: Result<T, CoreError>) {
    match result {
        Err(CoreError::NotFound(_)) => {}
        other => panic!("{what}: expected NotFound, got {other:?}"),
    }
}

pub(crate) fn forbidden<T: Debug>(what: &str, result: Result<T, CoreError>) {
    match result {
        Err(CoreError::Forbidden(_)) => {}
        other => panic!("{what}: expected Forbidden, got {other:?}"),
    }
}

pub(crate) const ADMIN_KEY: &str =
    "aiaas_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
