//! The platform object: opens the stores, bootstraps the admin key, runs background
//! work (training workers, deployment loading, the demo) and shuts down cleanly.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use aiaas_engine::{BatchSettings, Engine, Metrics};
use aiaas_store::{ApiKeyRecord, ArtifactStore, LocalArtifacts, Metadata};
use aiaas_types::{Permission, Principal, Role, Secret};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::auth::{self, hash_secret};
use crate::{CoreError, Result};

/// Settings of one platform instance, validated by the binary before it gets here.
#[derive(Debug, Clone)]
pub struct PlatformConfig {
    pub data_dir: PathBuf,
    /// `sqlite://...` or `postgres://...`; `None` means `<data_dir>/metadata.db`.
    pub database_url: Option<String>,
    /// Where artifacts live: `None` is `<data_dir>/artifacts`; S3 for replicas.
    pub artifacts: Option<aiaas_store::S3Config>,
    /// This process's name among replicas (a pod name), in job logs and metrics.
    pub replica_id: String,
    /// How long a claimed training job stays this replica's without a renewal.
    pub job_lease: std::time::Duration,
    /// How long in-flight requests get to finish after SIGTERM.
    pub drain_timeout: std::time::Duration,
    /// Largest dataset upload accepted, in bytes.
    pub max_upload_bytes: u64,
    /// Training jobs run at once by this process.
    pub training_workers: usize,
    /// Seed the demo (news data set, `news-classifier`) on an empty data directory.
    pub demo: bool,
    /// Admin key from the environment, instead of a generated one.
    pub admin_key: Option<Secret>,
    /// Batching and queue bounds for new deployments.
    pub batch: BatchSettings,
    /// The demo's CSV; `None` means `<data_dir>/cache/bbc-news.csv`.
    pub demo_data: Option<PathBuf>,
    /// The model library: cache, sources, serving defaults, memory budget.
    pub library: crate::library::LibraryConfig,
    /// Where the master keys encrypting every artifact come from.
    pub master_key: crate::MasterKeySource,
}

impl PlatformConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> PlatformConfig {
        let data_dir: PathBuf = data_dir.into();
        PlatformConfig {
            data_dir: data_dir.clone(),
            database_url: None,
            artifacts: None,
            replica_id: default_replica_id(),
            job_lease: std::time::Duration::from_secs(30),
            drain_timeout: std::time::Duration::from_secs(30),
            max_upload_bytes: 100 * 1024 * 1024,
            training_workers: 1,
            demo: false,
            admin_key: None,
            batch: BatchSettings::default(),
            demo_data: None,
            library: crate::library::LibraryConfig::default(),
            master_key: crate::MasterKeySource::default_for(&data_dir),
        }
    }

    pub(crate) fn demo_csv(&self) -> PathBuf {
        self.demo_data
            .clone()
            .unwrap_or_else(|| self.data_dir.join("cache").join("bbc-news.csv"))
    }
}

/// Seconds between two reconciliations of loaded models with the database.
const RECONCILE_TICKS: u64 = 2;

/// The host name (a pod's name on Kubernetes), else "local".
fn default_replica_id() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| "local".into())
}

/// What happened at start that the operator must be told once.
#[derive(Debug)]
pub struct StartupReport {
    /// A newly generated admin key: print it once, it is not stored.
    pub new_admin_key: Option<Secret>,
    /// The admin key from the environment was registered.
    pub admin_key_from_env: bool,
    pub first_start: bool,
    /// Jobs found running from a previous process and put back in the queue.
    pub resumed_jobs: usize,
    /// The master key file created at this start (tell the operator to keep it safe).
    pub master_key_created: Option<PathBuf>,
    /// Artifacts of an older version found in plain text and encrypted at this start.
    pub encrypted_plaintext: usize,
}

/// The platform: cheap to clone, shared by every request handler.
#[derive(Clone)]
pub struct Platform {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: PlatformConfig,
    pub(crate) meta: Metadata,
    pub(crate) artifacts: Arc<dyn ArtifactStore>,
    pub(crate) engine: Engine,
    pub(crate) metrics: Arc<Metrics>,
    /// Cancel flags of the jobs this process is running.
    pub(crate) running: Mutex<HashMap<String, Arc<AtomicBool>>>,
    pub(crate) job_wakeup: Notify,
    pub(crate) shutting_down: AtomicBool,
    /// Set once the deployments found at start have been loaded (readiness waits for it).
    pub(crate) started: tokio::sync::watch::Sender<bool>,
    pub(crate) workers: Mutex<Vec<JoinHandle<()>>>,
    pub(crate) worker_id: String,
    pub(crate) admin: Mutex<Option<Principal>>,
    /// Serialises model loads so concurrent first requests load a model once.
    pub(crate) loading: tokio::sync::Mutex<()>,
    pub(crate) library: crate::library::LibraryState,
    /// Serialises this process's audit appends (the chain is linear).
    pub(crate) audit_lock: tokio::sync::Mutex<()>,
    pub(crate) limiter: crate::limits::Limiter,
    pub(crate) master_keys: Arc<aiaas_store::MasterKeys>,
    pub(crate) pseudonym_secret: std::sync::OnceLock<Vec<u8>>,
    /// Tenants' PII policies for model inputs and outputs, cached for a few seconds.
    pub(crate) pii_policies:
        Mutex<HashMap<String, (crate::privacy::ModelPrivacy, std::time::Instant)>>,
}

impl Platform {
    /// Open (or create) the data directory and the stores, and bootstrap the admin key.
    pub async fn open(config: PlatformConfig) -> Result<(Platform, StartupReport)> {
        // Partial uploads of a process that died are worthless: start with an empty tmp/.
        let _ = std::fs::remove_dir_all(config.data_dir.join("tmp"));
        for dir in ["artifacts", "tmp", "cache", "models"] {
            std::fs::create_dir_all(config.data_dir.join(dir)).map_err(|e| {
                CoreError::InvalidInput(format!(
                    "cannot create data directory {}: {e}",
                    config.data_dir.display()
                ))
            })?;
        }
        let db_path = config.data_dir.join("metadata.db");
        let meta = match &config.database_url {
            None => Metadata::open_sqlite(&db_path).await?,
            Some(url) => Metadata::connect(url).await?,
        };
        let (keys, master_key_created) = crate::keys_at_rest::load(&config.master_key)?;
        let (artifacts, encrypted_plaintext): (Arc<dyn ArtifactStore>, usize) = match &config
            .artifacts
        {
            None => {
                let local = LocalArtifacts::open(&config.data_dir.join("artifacts"), keys.clone())?;
                let n = local.encrypt_plaintext_objects()?;
                (Arc::new(local), n)
            }
            Some(s3) => {
                let scratch = config.data_dir.join("tmp");
                let (s3, keys) = (s3.clone(), keys.clone());
                let store = tokio::task::spawn_blocking(move || {
                    let store = aiaas_store::S3Artifacts::open(s3, keys, &scratch)?;
                    store.check()?;
                    Ok::<_, aiaas_store::StoreError>(store)
                })
                .await??;
                (Arc::new(store), 0)
            }
        };
        let metrics = Arc::new(Metrics::new());
        let platform = Platform {
            inner: Arc::new(Inner {
                engine: Engine::new(metrics.clone()),
                metrics,
                meta,
                artifacts,
                running: Mutex::new(HashMap::new()),
                job_wakeup: Notify::new(),
                shutting_down: AtomicBool::new(false),
                started: tokio::sync::watch::Sender::new(false),
                workers: Mutex::new(Vec::new()),
                worker_id: format!(
                    "{}/{}-{}",
                    config.replica_id,
                    std::process::id(),
                    aiaas_types::new_id()
                ),
                admin: Mutex::new(None),
                loading: tokio::sync::Mutex::new(()),
                library: crate::library::LibraryState::default(),
                audit_lock: tokio::sync::Mutex::new(()),
                limiter: crate::limits::Limiter::default(),
                master_keys: keys,
                pseudonym_secret: std::sync::OnceLock::new(),
                pii_policies: Mutex::new(HashMap::new()),
                config,
            }),
        };
        // A first start is one that finds no key at all (not merely a missing file, so an
        // interrupted first start is still treated as one).
        let lock = platform.inner.meta.startup_lock().await?;
        let bootstrapped = async {
            let first_start = platform.inner.meta.count_keys().await? == 0;
            let report = platform.bootstrap_admin().await?;
            Ok::<_, CoreError>((first_start, report))
        }
        .await;
        lock.release().await?;
        let (first_start, mut report) = bootstrapped?;
        report.first_start = first_start;
        report.master_key_created = master_key_created;
        report.encrypted_plaintext = encrypted_plaintext + platform.seal_library_models().await?;
        report.resumed_jobs = platform.recover_jobs().await?;
        Ok((platform, report))
    }

    /// Start the background work: training workers, deployments, and the demo on a
    /// first start. Returns at once.
    pub fn start(&self, report: &StartupReport) {
        self.spawn_job_workers();
        let p = self.clone();
        let seed_demo = report.first_start && self.inner.config.demo;
        tokio::spawn(async move {
            p.load_deployments().await;
            p.inner.started.send_replace(true);
            if seed_demo {
                if let Err(e) = p.seed_demo().await {
                    tracing::warn!(error = %e, "demo not seeded");
                }
            }
        });
        if report.first_start {
            for name in self.inner.config.library.first_start_pulls.clone() {
                let p = self.clone();
                tokio::spawn(async move { p.pull_in_background(&name).await });
            }
        }
        let p = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            let mut n = 0u64;
            while !p.is_shutting_down() {
                tick.tick().await;
                p.reap_idle().await;
                n += 1;
                if n % RECONCILE_TICKS == 0 {
                    p.reconcile().await;
                }
            }
        });
    }

    /// Follow changes other replicas made in the database: deployments, and library
    /// models removed. Failures (the database away) are logged and retried next time.
    async fn reconcile(&self) {
        if let Err(e) = self.reconcile_deployments().await {
            tracing::warn!(error = %e, "reconciling deployments failed");
        }
        for m in self.inner.engine.loaded() {
            let Some(name) = m.key.strip_prefix("lib:") else {
                continue;
            };
            if let Ok(None) = self.inner.meta.library_model(name).await {
                tracing::info!(model = %name, "unloading a library model removed elsewhere");
                self.unload_library(name).await;
            }
        }
        self.forget_removed_models().await;
    }

    /// Resolve a bearer secret to its principal (no rate limiting: see
    /// `authenticate_request` for requests).
    pub async fn authenticate(&self, secret: &str) -> Result<Principal> {
        Ok(self.authenticate_record(secret).await?.0)
    }

    /// The principal of a bearer secret and its key's record (limits, allow-lists).
    pub async fn authenticate_record(&self, secret: &str) -> Result<(Principal, ApiKeyRecord)> {
        if !secret.starts_with(auth::KEY_PREFIX) {
            return Err(auth::invalid_key());
        }
        let record = self
            .inner
            .meta
            .key_by_hash(&hash_secret(secret))
            .await?
            .ok_or_else(auth::invalid_key)?;
        let principal = auth::principal_for(secret, &record, aiaas_types::now_ms())?;
        Ok((principal, record))
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// The Prometheus text of every metric, scheduler gauges refreshed first, for a key
    /// that may read them (admin or metrics: the labels name every tenant's models).
    pub fn metrics_for(&self, principal: &Principal) -> Result<String> {
        auth::require(principal, Permission::ReadMetrics)?;
        Ok(self.render_metrics())
    }

    /// The Prometheus text, unauthenticated: only for a listener the operator opened for
    /// scrapers (`--metrics-listen`).
    pub fn render_metrics(&self) -> String {
        self.inner.engine.refresh_gauges();
        self.inner.metrics.render()
    }

    /// This replica's name (`--replica-id`, else the host name).
    pub fn replica_id(&self) -> &str {
        &self.inner.config.replica_id
    }

    pub fn max_upload_bytes(&self) -> u64 {
        self.inner.config.max_upload_bytes
    }

    pub fn data_dir(&self) -> &Path {
        &self.inner.config.data_dir
    }

    /// Ready to serve: started (deployments loaded), not shutting down, and the
    /// database answers.
    pub async fn ready(&self) -> Result<()> {
        if self.inner.shutting_down.load(Ordering::SeqCst) {
            return Err(CoreError::Unavailable("shutting down".into()));
        }
        // A probe during start waits a moment (a start with little to load is ready by
        // then) before it answers "starting".
        let mut started = self.inner.started.subscribe();
        if !matches!(
            tokio::time::timeout(std::time::Duration::from_secs(1), started.wait_for(|s| *s)).await,
            Ok(Ok(_))
        ) {
            return Err(CoreError::Unavailable("starting".into()));
        }
        self.inner
            .meta
            .ping()
            .await
            .map_err(|e| CoreError::Unavailable(format!("metadata database unavailable: {e}")))
    }

    /// The first step of a shutdown, taken as soon as the signal arrives (before HTTP
    /// drains): readiness turns false, event streams end, running training stops at its
    /// next batch (its job goes back to the queue) and no new job is claimed.
    pub fn begin_shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::SeqCst);
        for flag in self
            .inner
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
        {
            flag.store(true, Ordering::SeqCst);
        }
        self.inner.job_wakeup.notify_waiters();
    }

    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::SeqCst)
    }

    /// Stop training (running jobs go back to the queue, to resume on the next start),
    /// wait for the workers, unload models and close the database.
    pub async fn shutdown(&self) {
        self.begin_shutdown();
        let workers: Vec<_> = self
            .inner
            .workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        for w in workers {
            let _ = w.await;
        }
        let p = self.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for m in p.inner.engine.loaded() {
                p.inner.engine.unload(&m.key);
            }
        })
        .await;
        self.inner.meta.close().await;
    }

    async fn bootstrap_admin(&self) -> Result<StartupReport> {
        let meta = &self.inner.meta;
        let tenant = match meta.tenant_by_name("default").await? {
            Some(t) => t,
            None => meta.create_tenant("default").await?,
        };
        let mut report = StartupReport {
            new_admin_key: None,
            admin_key_from_env: false,
            first_start: false,
            resumed_jobs: 0,
            master_key_created: None,
            encrypted_plaintext: 0,
        };
        let secret = match &self.inner.config.admin_key {
            Some(s) => {
                if !s.expose().starts_with(auth::KEY_PREFIX) || s.expose().len() < 32 {
                    return Err(CoreError::InvalidInput(format!(
                        "AIAAS_ADMIN_KEY must start with {:?} and be at least 32 characters long",
                        auth::KEY_PREFIX
                    )));
                }
                if let Some(existing) = meta.key_by_hash(&hash_secret(s.expose())).await? {
                    self.remember_admin(&existing);
                    return Ok(report);
                }
                report.admin_key_from_env = true;
                s.clone()
            }
            None => {
                let admins: Vec<ApiKeyRecord> = meta
                    .keys(Some(&tenant.id))
                    .await?
                    .into_iter()
                    .filter(|k| k.role == Role::Admin.as_str() && k.revoked_at.is_none())
                    .collect();
                if let Some(existing) = admins.first() {
                    self.remember_admin(existing);
                    return Ok(report);
                }
                let s = auth::generate_secret();
                report.new_admin_key = Some(s.clone());
                s
            }
        };
        let record = ApiKeyRecord {
            id: aiaas_types::new_id(),
            tenant_id: tenant.id,
            name: "admin".into(),
            role: Role::Admin.as_str().into(),
            secret_hash: hash_secret(secret.expose()),
            allowed_models: None,
            expires_at: None,
            revoked_at: None,
            created_at: aiaas_types::now_ms(),
            limits: aiaas_types::Limits::default(),
            allowed_ips: None,
        };
        meta.insert_key(&record).await?;
        self.remember_admin(&record);
        Ok(report)
    }

    fn remember_admin(&self, record: &ApiKeyRecord) {
        *self.inner.admin.lock().unwrap_or_else(|e| e.into_inner()) = Some(Principal {
            key_id: record.id.clone(),
            tenant_id: record.tenant_id.clone(),
            role: Role::Admin,
            allowed_models: None,
        });
    }
}
