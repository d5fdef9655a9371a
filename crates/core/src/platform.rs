//! The platform object: opens the stores, bootstraps the admin key, runs background
//! work (training workers, deployment loading, the demo) and shuts down cleanly.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use aiaas_engine::{BatchSettings, Engine, Metrics};
use aiaas_store::{ArtifactStore, LocalArtifacts, Metadata};
use aiaas_types::{Permission, Principal, Secret};

use crate::audit::AuditLog;
use crate::auth;
use crate::backup::Backups;
use crate::datasets::Datasets;
use crate::files::Files;
use crate::finetune::FineTuning;
use crate::generate::Inference;
use crate::jobs::TrainingJobs;
use crate::library::Library;
use crate::limits::Limiter;
use crate::models::Models;
use crate::privacy::Privacy;
use crate::responses::Responses;
use crate::tenants::Accounts;
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
    /// Most texts one predict request may ask explanations for.
    pub max_explain_texts: usize,
    /// Training jobs run at once by this process.
    pub training_workers: usize,
    /// Fine-tuning jobs run at once by this process (0: none here; another replica
    /// trains them).
    pub fine_tuning_workers: usize,
    /// A running fine-tuning job saves a checkpoint at each epoch's end and at least
    /// this often.
    pub checkpoint_every: std::time::Duration,
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
    /// How long stored responses (Responses API) are kept.
    pub response_retention: std::time::Duration,
    /// ONNX Runtime's shared library for uploaded ONNX models; `None`: the newest
    /// `libonnxruntime.so*` in `<data_dir>/cache/onnxruntime` (where the set-up script
    /// puts it), if any.
    pub onnxruntime: Option<PathBuf>,
    /// The library model masking runs on when a request or an upload asks for the `ner`
    /// detector (a token-classification model: person names, addresses, ...).
    pub pii_ner_model: String,
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
            max_explain_texts: 16,
            training_workers: 1,
            fine_tuning_workers: 1,
            checkpoint_every: std::time::Duration::from_secs(120),
            demo: false,
            admin_key: None,
            batch: BatchSettings::default(),
            demo_data: None,
            library: crate::library::LibraryConfig::default(),
            master_key: crate::MasterKeySource::default_for(&data_dir),
            response_retention: crate::responses::DEFAULT_RESPONSE_RETENTION,
            onnxruntime: None,
            pii_ner_model: "pii-ner".into(),
        }
    }

    fn demo_csv(&self) -> PathBuf {
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

/// The platform: cheap to clone, shared by every request handler. It opens the stores,
/// wires the services (each owns its state and gets what it uses in its constructor) and
/// runs the lifecycle: start, reconcile, readiness, shutdown. Requests go to a service:
/// `platform.datasets().create(..)`.
#[derive(Clone)]
pub struct Platform {
    inner: Arc<Inner>,
}

struct Inner {
    meta: Metadata,
    engine: Arc<Engine>,
    metrics: Arc<Metrics>,
    replica_id: String,
    max_upload_bytes: u64,
    demo: bool,
    demo_csv: PathBuf,
    first_start_pulls: Vec<String>,
    shutting_down: AtomicBool,
    /// Set once the deployments found at start have been loaded (readiness waits for it).
    started: tokio::sync::watch::Sender<bool>,
    accounts: Accounts,
    limiter: Limiter,
    audit: AuditLog,
    privacy: Privacy,
    datasets: Datasets,
    files: Files,
    jobs: TrainingJobs,
    fine_tuning: FineTuning,
    models: Models,
    library: Library,
    inference: Inference,
    responses: Responses,
    backups: Backups,
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
        let (artifacts, encrypted_plaintext) = open_artifacts(&config, &keys).await?;
        let platform = Platform::wire(config, meta, artifacts, keys);
        let accounts = &platform.inner.accounts;
        // A first start is one that finds no key at all (not merely a missing file, so an
        // interrupted first start is still treated as one).
        let lock = platform.inner.meta.startup_lock().await?;
        let bootstrapped = async {
            let first_start = platform.inner.meta.count_keys().await? == 0;
            let admin = accounts.bootstrap_admin().await?;
            Ok::<_, CoreError>((first_start, admin))
        }
        .await;
        lock.release().await?;
        let (first_start, admin) = bootstrapped?;
        let report = StartupReport {
            new_admin_key: admin.generated,
            admin_key_from_env: admin.from_env,
            first_start,
            resumed_jobs: platform.inner.jobs.recover().await?,
            master_key_created,
            encrypted_plaintext: encrypted_plaintext
                + platform.inner.library.seal_library_models().await?,
        };
        Ok((platform, report))
    }

    /// Build every service over the opened stores: each gets what it uses, nothing more.
    fn wire(
        config: PlatformConfig,
        meta: Metadata,
        artifacts: Arc<dyn ArtifactStore>,
        keys: Arc<aiaas_store::MasterKeys>,
    ) -> Platform {
        let metrics = Arc::new(Metrics::new());
        let engine = Arc::new(Engine::new(metrics.clone()));
        let loading = Arc::new(tokio::sync::Mutex::new(()));
        let limiter = Limiter::new(meta.clone());
        let accounts = Accounts::new(meta.clone(), limiter.clone(), config.admin_key.clone());
        let audit = AuditLog::new(meta.clone(), config.data_dir.clone(), metrics.clone());
        let onnxruntime =
            crate::tensor_models::find_onnxruntime(config.onnxruntime.clone(), &config.data_dir);
        let library = Library::new(crate::library::LibraryWiring {
            meta: meta.clone(),
            artifacts: artifacts.clone(),
            engine: engine.clone(),
            loading: loading.clone(),
            master_keys: keys.clone(),
            scratch: config.data_dir.join("tmp"),
            onnxruntime: onnxruntime.clone(),
            cache_dir: config
                .library
                .cache_dir
                .clone()
                .unwrap_or_else(|| config.data_dir.join("models")),
            config: config.library.clone(),
        });
        let privacy = Privacy::new(crate::privacy::PrivacyWiring {
            meta: meta.clone(),
            accounts: accounts.clone(),
            data_dir: config.data_dir.clone(),
            library: library.clone(),
            ner_model: config.pii_ner_model.clone(),
        });
        let datasets = Datasets::new(crate::datasets::DatasetsConfig {
            meta: meta.clone(),
            artifacts: artifacts.clone(),
            privacy: privacy.clone(),
            scratch: config.data_dir.join("tmp"),
            max_upload_bytes: config.max_upload_bytes,
        });
        let files = Files::new(crate::files::FilesConfig {
            meta: meta.clone(),
            artifacts: artifacts.clone(),
            privacy: privacy.clone(),
            scratch: config.data_dir.join("tmp"),
            max_upload_bytes: config.max_upload_bytes,
        });
        let models = Models::new(crate::models::ModelsConfig {
            meta: meta.clone(),
            artifacts: artifacts.clone(),
            engine: engine.clone(),
            loading: loading.clone(),
            privacy: privacy.clone(),
            batch: config.batch,
            onnxruntime: onnxruntime.clone(),
            metrics: metrics.clone(),
            audit: audit.clone(),
            traffic: Default::default(),
            max_explain_texts: config.max_explain_texts,
        });
        let jobs = TrainingJobs::new(crate::jobs::JobsConfig {
            meta: meta.clone(),
            artifacts: artifacts.clone(),
            datasets: datasets.clone(),
            models: models.clone(),
            replica_id: config.replica_id.clone(),
            workers: config.training_workers,
            lease: config.job_lease,
        });
        let fine_tuning = FineTuning::new(crate::finetune::FineTuningConfig {
            meta: meta.clone(),
            artifacts: artifacts.clone(),
            library: library.clone(),
            files: files.clone(),
            models: models.clone(),
            replica_id: config.replica_id.clone(),
            workers: config.fine_tuning_workers,
            lease: config.job_lease,
            checkpoint_every: config.checkpoint_every,
        });
        let inference = Inference::new(
            meta.clone(),
            engine.clone(),
            library.clone(),
            privacy.clone(),
            limiter.clone(),
        );
        let responses = Responses::new(meta.clone(), artifacts.clone(), config.response_retention);
        let backups = Backups::new(meta.clone(), artifacts, keys, config.data_dir.clone());
        Platform {
            inner: Arc::new(Inner {
                demo_csv: config.demo_csv(),
                demo: config.demo,
                first_start_pulls: config.library.first_start_pulls.clone(),
                replica_id: config.replica_id,
                max_upload_bytes: config.max_upload_bytes,
                meta,
                engine,
                metrics,
                shutting_down: AtomicBool::new(false),
                started: tokio::sync::watch::Sender::new(false),
                accounts,
                limiter,
                audit,
                privacy,
                datasets,
                files,
                jobs,
                fine_tuning,
                models,
                library,
                inference,
                responses,
                backups,
            }),
        }
    }

    /// Tenants and API keys: authentication, roles, `whoami`.
    pub fn accounts(&self) -> &Accounts {
        &self.inner.accounts
    }

    /// Rate limits, token quotas and IP allow-lists.
    pub fn limiter(&self) -> &Limiter {
        &self.inner.limiter
    }

    /// The hash-chained audit log.
    pub fn audit_log(&self) -> &AuditLog {
        &self.inner.audit
    }

    /// PII masking and the tenants' privacy policies.
    pub fn privacy(&self) -> &Privacy {
        &self.inner.privacy
    }

    pub fn datasets(&self) -> &Datasets {
        &self.inner.datasets
    }

    /// Files of the OpenAI files API (training files).
    pub fn files(&self) -> &Files {
        &self.inner.files
    }

    pub fn jobs(&self) -> &TrainingJobs {
        &self.inner.jobs
    }

    /// Fine-tuning jobs and fine-tuned models (OpenAI's fine-tuning API).
    pub fn fine_tuning(&self) -> &FineTuning {
        &self.inner.fine_tuning
    }

    /// Trained models: versions, aliases, deployments, predict.
    pub fn models(&self) -> &Models {
        &self.inner.models
    }

    /// Pulled models: catalogue, pulls, loading, the memory budget.
    pub fn library(&self) -> &Library {
        &self.inner.library
    }

    /// Chat, completions and embeddings on library models, with usage per key.
    pub fn inference(&self) -> &Inference {
        &self.inner.inference
    }

    /// Stored responses of the Responses API.
    pub fn responses(&self) -> &Responses {
        &self.inner.responses
    }

    pub fn backups(&self) -> &Backups {
        &self.inner.backups
    }

    /// Start the background work: training workers, deployments, and the demo on a
    /// first start. Returns at once.
    pub fn start(&self, report: &StartupReport) {
        self.inner.jobs.spawn_workers();
        self.inner.fine_tuning.spawn_workers();
        let p = self.clone();
        let seed_demo = report.first_start && self.inner.demo;
        tokio::spawn(async move {
            p.inner.models.load_deployments().await;
            p.inner.started.send_replace(true);
            if seed_demo {
                if let Err(e) = p.seed_demo(&p.inner.demo_csv).await {
                    tracing::warn!(error = %e, "demo not seeded");
                }
            }
        });
        if report.first_start {
            for name in self.inner.first_start_pulls.clone() {
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
                p.inner.library.reap_idle().await;
                n += 1;
                if n.is_multiple_of(RECONCILE_TICKS) {
                    p.reconcile().await;
                }
            }
        });
    }

    /// Follow changes other replicas made in the database: deployments, and library
    /// models removed. Failures (the database away) are logged and retried next time.
    async fn reconcile(&self) {
        if let Err(e) = self.inner.models.reconcile_deployments().await {
            tracing::warn!(error = %e, "reconciling deployments failed");
        }
        self.inner.library.reconcile().await;
        self.inner.fine_tuning.reconcile().await;
        if let Err(e) = self.inner.responses.purge_expired().await {
            tracing::warn!(error = %e, "purging expired responses failed");
        }
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
        &self.inner.replica_id
    }

    pub fn max_upload_bytes(&self) -> u64 {
        self.inner.max_upload_bytes
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
        self.inner.jobs.begin_shutdown();
        self.inner.fine_tuning.begin_shutdown();
    }

    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::SeqCst)
    }

    /// Stop training (running jobs go back to the queue, to resume on the next start),
    /// wait for the workers, unload models and close the database.
    pub async fn shutdown(&self) {
        self.begin_shutdown();
        self.inner.jobs.join_workers().await;
        self.inner.fine_tuning.join_workers().await;
        let engine = self.inner.engine.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for m in engine.loaded() {
                engine.unload(&m.key);
            }
        })
        .await;
        self.inner.meta.close().await;
    }
}

/// The artifact store the configuration names, and how many plain-text objects of an
/// older version were encrypted on the way.
async fn open_artifacts(
    config: &PlatformConfig,
    keys: &Arc<aiaas_store::MasterKeys>,
) -> Result<(Arc<dyn ArtifactStore>, usize)> {
    Ok(match &config.artifacts {
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
    })
}
