//! OpenAI's fine-tuning API: `POST /v1/fine_tuning/jobs`, `GET /v1/fine_tuning/jobs`
//! (`after`, `limit`), `GET /v1/fine_tuning/jobs/{id}`, `POST .../cancel`,
//! `GET .../events` and `GET .../checkpoints` (both paginated), so the official client's
//! `fine_tuning.jobs.*` and `fine_tuning.jobs.checkpoints.list` work unchanged. The
//! adapter's shape is an aiaas extension of `hyperparameters` (`lora_rank`,
//! `lora_alpha`, `lora_dropout`, `lora_targets`).

use aiaas_core::{
    CoreError, FineTuneCheckpoint, FineTuneEvent, FineTuneJob, FineTuneRequest, Hyperparameters,
    LoraSpec, Page, Setting,
};
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::{oai, OResult};
use crate::error::ApiError;
use crate::extract::{ApiJson, Auth};
use crate::AppState;

pub(super) fn router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    utoipa_axum::router::OpenApiRouter::new()
        .routes(utoipa_axum::routes!(create_job, list_jobs))
        .routes(utoipa_axum::routes!(get_job))
        .routes(utoipa_axum::routes!(cancel_job))
        .routes(utoipa_axum::routes!(list_events))
        .routes(utoipa_axum::routes!(list_checkpoints))
}

/// OpenAI's error object of a failed job.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct JobErrorObject {
    code: String,
    message: String,
    #[schema(value_type = Option<String>)]
    param: Option<String>,
}

/// OpenAI's fine-tuning job object.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct JobObject {
    id: String,
    /// Always `fine_tuning.job`.
    object: &'static str,
    /// The base model.
    model: String,
    /// Unix seconds.
    created_at: i64,
    #[schema(value_type = Option<i64>)]
    finished_at: Option<i64>,
    #[schema(value_type = Option<String>)]
    fine_tuned_model: Option<String>,
    /// The tenant.
    organization_id: String,
    /// `validating_files`, `queued`, `running`, `succeeded`, `failed` or `cancelled`.
    status: String,
    /// `n_epochs`, `batch_size`, `learning_rate_multiplier` (numbers, or `auto` until
    /// the files are validated).
    #[schema(value_type = Object)]
    hyperparameters: Value,
    /// `{"type": "supervised", "supervised": {"hyperparameters": ...}}`.
    #[schema(value_type = Object)]
    method: Value,
    training_file: String,
    #[schema(value_type = Option<String>)]
    validation_file: Option<String>,
    result_files: Vec<String>,
    #[schema(value_type = Option<i64>)]
    trained_tokens: Option<i64>,
    #[schema(value_type = Option<JobErrorObject>)]
    error: Option<JobErrorObject>,
    seed: u64,
    #[schema(value_type = Option<String>)]
    user_provided_suffix: Option<String>,
    #[schema(value_type = Option<i64>)]
    estimated_finish: Option<i64>,
    integrations: Vec<Value>,
    /// aiaas: the adapter's shape (rank, alpha, dropout, targets).
    #[schema(value_type = Object)]
    lora: Value,
}

impl JobObject {
    fn new(j: FineTuneJob, organization: &str) -> JobObject {
        JobObject {
            object: "fine_tuning.job",
            model: j.model,
            created_at: j.created_at / 1000,
            finished_at: j.finished_at.map(|t| t / 1000),
            fine_tuned_model: j.fine_tuned_model,
            organization_id: organization.to_string(),
            status: j.status.as_str().to_string(),
            method: json!({"type": "supervised", "supervised": {"hyperparameters": j.hyperparameters}}),
            hyperparameters: j.hyperparameters,
            training_file: j.training_file,
            validation_file: j.validation_file,
            result_files: j.result_files,
            trained_tokens: j.trained_tokens,
            error: j.error.map(|e| JobErrorObject {
                code: e.code,
                message: e.message,
                param: e.param,
            }),
            seed: j.seed,
            user_provided_suffix: j.suffix,
            estimated_finish: j.estimated_finish,
            integrations: Vec::new(),
            lora: j.lora,
            id: j.id,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct EventObject {
    id: String,
    /// Always `fine_tuning.job.event`.
    object: &'static str,
    created_at: i64,
    /// `info`, `warn` or `error`.
    level: String,
    message: String,
    /// `message` or `metrics`.
    #[serde(rename = "type")]
    kind: String,
    /// A step's metrics: step, total_steps, epoch, train_loss, train_mean_token_accuracy,
    /// learning_rate, trained_tokens, valid_loss and valid_mean_token_accuracy at an
    /// epoch's end.
    #[schema(value_type = Object)]
    data: Value,
}

impl From<FineTuneEvent> for EventObject {
    fn from(e: FineTuneEvent) -> Self {
        EventObject {
            id: e.id,
            object: "fine_tuning.job.event",
            created_at: e.created_at / 1000,
            level: e.level,
            message: e.message,
            kind: e.kind,
            data: e.data,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct CheckpointObject {
    id: String,
    /// Always `fine_tuning.job.checkpoint`.
    object: &'static str,
    created_at: i64,
    fine_tuned_model_checkpoint: String,
    fine_tuning_job_id: String,
    step_number: i64,
    #[schema(value_type = Object)]
    metrics: Value,
}

impl From<FineTuneCheckpoint> for CheckpointObject {
    fn from(c: FineTuneCheckpoint) -> Self {
        CheckpointObject {
            id: c.id,
            object: "fine_tuning.job.checkpoint",
            created_at: c.created_at / 1000,
            fine_tuned_model_checkpoint: c.model,
            fine_tuning_job_id: c.job_id,
            step_number: c.step,
            metrics: c.metrics,
        }
    }
}

/// A page: `{"object": "list", "data": [...], "has_more": ...}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct List<T> {
    object: &'static str,
    data: Vec<T>,
    has_more: bool,
    #[schema(value_type = Option<String>)]
    first_id: Option<String>,
    #[schema(value_type = Option<String>)]
    last_id: Option<String>,
}

fn list<T, W: From<T>>(page: Page<T>, id: impl Fn(&W) -> String) -> List<W> {
    let data: Vec<W> = page.items.into_iter().map(W::from).collect();
    List {
        object: "list",
        first_id: data.first().map(&id),
        last_id: data.last().map(&id),
        has_more: page.has_more,
        data,
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct PageQuery {
    /// The id of the last item of the previous page.
    after: Option<String>,
    /// 1-100 (default 20).
    limit: Option<usize>,
    /// Accepted and ignored (OpenAI's filter on job metadata).
    #[serde(default, rename = "metadata")]
    _metadata: Option<String>,
}

impl PageQuery {
    fn limit(&self) -> OResult<usize> {
        match self.limit {
            None => Ok(20),
            Some(n) if (1..=aiaas_core::MAX_FINE_TUNING_PAGE).contains(&n) => Ok(n),
            Some(n) => Err(ApiError::openai_param(
                "limit",
                format!(
                    "limit must be 1-{}, got {n}",
                    aiaas_core::MAX_FINE_TUNING_PAGE
                ),
            )),
        }
    }
}

/// The request parameter a core error about the request names (its message starts
/// with it and a colon).
fn param_of(e: &CoreError) -> Option<&'static str> {
    let (CoreError::InvalidInput(m) | CoreError::NotFound(m)) = e else {
        return None;
    };
    const PARAMS: [&str; 9] = [
        "model",
        "training_file",
        "validation_file",
        "suffix",
        "hyperparameters.n_epochs",
        "hyperparameters.batch_size",
        "hyperparameters.learning_rate_multiplier",
        "hyperparameters.lora_targets",
        "hyperparameters.lora",
    ];
    let head = m.split(':').next()?;
    PARAMS.into_iter().find(|p| *p == head)
}

fn setting_u32(
    h: &Map<String, Value>,
    k: &str,
    range: std::ops::RangeInclusive<u64>,
) -> OResult<Option<Setting<u32>>> {
    let param = format!("hyperparameters.{k}");
    match h.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s == "auto" => Ok(Some(Setting::Auto)),
        Some(v) => match v.as_u64() {
            Some(n) if range.contains(&n) => Ok(Some(Setting::Value(n as u32))),
            _ => Err(ApiError::openai_param(
                &param,
                format!(
                    "{param} must be \"auto\" or an integer from {} to {}",
                    range.start(),
                    range.end()
                ),
            )),
        },
    }
}

/// `hyperparameters`, or `method.supervised.hyperparameters`.
fn hyperparameters(v: Option<&Value>) -> OResult<Hyperparameters> {
    let h = match v {
        None | Some(Value::Null) => return Ok(Hyperparameters::default()),
        Some(Value::Object(h)) => h,
        Some(_) => {
            return Err(ApiError::openai_param(
                "hyperparameters",
                "hyperparameters must be an object",
            ))
        }
    };
    const KNOWN: [&str; 7] = [
        "n_epochs",
        "batch_size",
        "learning_rate_multiplier",
        "lora_rank",
        "lora_alpha",
        "lora_dropout",
        "lora_targets",
    ];
    if let Some(k) = h.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(ApiError::openai_param(
            &format!("hyperparameters.{k}"),
            format!("unknown hyperparameter {k:?}; known: {}", KNOWN.join(", ")),
        ));
    }
    let lr = match h.get("learning_rate_multiplier") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s == "auto" => Some(Setting::Auto),
        Some(v) => Some(Setting::Value(v.as_f64().ok_or_else(|| {
            ApiError::openai_param(
                "hyperparameters.learning_rate_multiplier",
                "learning_rate_multiplier must be \"auto\" or a number",
            )
        })?)),
    };
    let number = |k: &str| -> OResult<Option<f64>> {
        match h.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v.as_f64().map(Some).ok_or_else(|| {
                ApiError::openai_param(
                    &format!("hyperparameters.{k}"),
                    format!("{k} must be a number"),
                )
            }),
        }
    };
    let targets = match h.get("lora_targets") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .map(|t| t.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    ApiError::openai_param(
                        "hyperparameters.lora_targets",
                        "lora_targets must be a list of projection names",
                    )
                })?,
        ),
        Some(_) => {
            return Err(ApiError::openai_param(
                "hyperparameters.lora_targets",
                "lora_targets must be a list of projection names",
            ))
        }
    };
    Ok(Hyperparameters {
        n_epochs: setting_u32(h, "n_epochs", 1..=50)?,
        batch_size: setting_u32(h, "batch_size", 1..=256)?,
        learning_rate_multiplier: lr,
        lora: LoraSpec {
            rank: number("lora_rank")?.map(|r| r as usize),
            alpha: number("lora_alpha")?.map(|a| a as f32),
            dropout: number("lora_dropout")?.map(|d| d as f32),
            targets,
        },
    })
}

fn request(body: Value) -> OResult<FineTuneRequest> {
    let Value::Object(b) = body else {
        return Err(ApiError::openai(CoreError::InvalidInput(
            "the request body must be a JSON object".into(),
        )));
    };
    const KNOWN: [&str; 9] = [
        "model",
        "training_file",
        "validation_file",
        "hyperparameters",
        "method",
        "suffix",
        "seed",
        "integrations",
        "metadata",
    ];
    if let Some(k) = b.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(ApiError::openai_param(
            k,
            format!("unknown parameter {k:?}"),
        ));
    }
    let string = |k: &str| -> OResult<Option<String>> {
        match b.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ApiError::openai_param(k, format!("{k} must be a string"))),
        }
    };
    let required = |k: &str| -> OResult<String> {
        string(k)?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ApiError::openai_param(k, format!("{k} is required")))
    };
    if let Some(Value::Array(items)) = b.get("integrations") {
        if !items.is_empty() {
            return Err(ApiError::openai_param(
                "integrations",
                "integrations (Weights & Biases) are not available on this server",
            ));
        }
    }
    let mut hyper = b.get("hyperparameters");
    if let Some(method) = b.get("method").filter(|m| !m.is_null()) {
        let kind = method["type"].as_str().unwrap_or("supervised");
        if kind != "supervised" {
            return Err(ApiError::openai_param(
                "method.type",
                format!("method {kind:?} is not available: aiaas trains \"supervised\""),
            ));
        }
        let inner = method["supervised"].get("hyperparameters");
        if inner.is_some_and(|v| !v.is_null()) {
            if hyper.is_some_and(|v| !v.is_null()) {
                return Err(ApiError::openai_param(
                    "hyperparameters",
                    "give hyperparameters once: in method.supervised or at the top level",
                ));
            }
            hyper = inner;
        }
    }
    let seed = match b.get("seed") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .filter(|s| *s <= i64::MAX as u64)
                .ok_or_else(|| {
                    ApiError::openai_param("seed", "seed must be a non-negative integer")
                })?,
        ),
    };
    Ok(FineTuneRequest {
        model: required("model")?,
        training_file: required("training_file")?,
        validation_file: string("validation_file")?,
        hyperparameters: hyperparameters(hyper)?,
        suffix: string("suffix")?,
        seed,
    })
}

fn with_param(e: CoreError) -> ApiError {
    let param = param_of(&e);
    let error = oai(e);
    match param {
        Some(p) => error.with_param(p),
        None => error,
    }
}

#[utoipa::path(
    post,
    path = "/v1/fine_tuning/jobs",
    operation_id = "openai_fine_tuning_create_job",
    tag = "openai",
    summary = "Create a fine-tuning job (OpenAI format)",
    request_body(content = Object, description = "model (a library GGUF model), training_file, validation_file, hyperparameters or method.supervised.hyperparameters (n_epochs, batch_size, learning_rate_multiplier: number or \"auto\"; aiaas: lora_rank, lora_alpha, lora_dropout, lora_targets), suffix, seed"),
    responses(
        (status = 200, description = "the job, validating its files", body = JobObject),
        crate::wire::Refused
    ),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::Train.as_str()))),
)]
async fn create_job(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<Value>,
) -> OResult<Json<JobObject>> {
    // A key that may not train learns nothing about the body.
    aiaas_core::require(&p, aiaas_types::Permission::Train).map_err(oai)?;
    let req = request(body)?;
    let job = s
        .platform
        .fine_tuning()
        .create(&p, req)
        .await
        .map_err(with_param)?;
    Ok(Json(JobObject::new(job, &p.tenant_id)))
}

#[utoipa::path(
    get,
    path = "/v1/fine_tuning/jobs",
    operation_id = "openai_fine_tuning_list_jobs",
    tag = "openai",
    summary = "Fine-tuning jobs, newest first (OpenAI format)",
    params(PageQuery),
    responses((status = 200, description = "a page of jobs", body = List<JobObject>), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::ReadData.as_str()))),
)]
async fn list_jobs(
    State(s): State<AppState>,
    Auth(p): Auth,
    Query(q): Query<PageQuery>,
) -> OResult<Json<List<JobObject>>> {
    let page = s
        .platform
        .fine_tuning()
        .list(&p, q.after.as_deref(), q.limit()?)
        .await
        .map_err(oai)?;
    let items = page
        .items
        .into_iter()
        .map(|j| JobObject::new(j, &p.tenant_id))
        .collect();
    Ok(Json(list(
        Page {
            items,
            has_more: page.has_more,
        },
        |j: &JobObject| j.id.clone(),
    )))
}

#[utoipa::path(
    get,
    path = "/v1/fine_tuning/jobs/{id}",
    operation_id = "openai_fine_tuning_get_job",
    tag = "openai",
    summary = "One fine-tuning job (OpenAI format)",
    params(("id" = String, Path)),
    responses((status = 200, description = "the job", body = JobObject), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::ReadData.as_str()))),
)]
async fn get_job(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> OResult<Json<JobObject>> {
    let job = s.platform.fine_tuning().get(&p, &id).await.map_err(oai)?;
    Ok(Json(JobObject::new(job, &p.tenant_id)))
}

#[utoipa::path(
    post,
    path = "/v1/fine_tuning/jobs/{id}/cancel",
    operation_id = "openai_fine_tuning_cancel_job",
    tag = "openai",
    summary = "Cancel a fine-tuning job (OpenAI format)",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "the job, cancelled (a running one stops at its next step)", body = JobObject),
        (status = 409, description = "the job has already finished"),
        crate::wire::Refused
    ),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::Train.as_str()))),
)]
async fn cancel_job(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> OResult<Json<JobObject>> {
    let job = s
        .platform
        .fine_tuning()
        .cancel(&p, &id)
        .await
        .map_err(oai)?;
    Ok(Json(JobObject::new(job, &p.tenant_id)))
}

#[utoipa::path(
    get,
    path = "/v1/fine_tuning/jobs/{id}/events",
    operation_id = "openai_fine_tuning_list_events",
    tag = "openai",
    summary = "A fine-tuning job's events, newest first (OpenAI format)",
    params(("id" = String, Path), PageQuery),
    responses((status = 200, description = "a page of events", body = List<EventObject>), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::ReadData.as_str()))),
)]
async fn list_events(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> OResult<Json<List<EventObject>>> {
    let page = s
        .platform
        .fine_tuning()
        .events(&p, &id, q.after.as_deref(), q.limit()?)
        .await
        .map_err(with_after)?;
    Ok(Json(list(page, |e: &EventObject| e.id.clone())))
}

#[utoipa::path(
    get,
    path = "/v1/fine_tuning/jobs/{id}/checkpoints",
    operation_id = "openai_fine_tuning_list_checkpoints",
    tag = "openai",
    summary = "A fine-tuning job's checkpoints, the latest first (OpenAI format)",
    params(("id" = String, Path), PageQuery),
    responses((status = 200, description = "a page of checkpoints", body = List<CheckpointObject>), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::ReadData.as_str()))),
)]
async fn list_checkpoints(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> OResult<Json<List<CheckpointObject>>> {
    let page = s
        .platform
        .fine_tuning()
        .checkpoints(&p, &id, q.after.as_deref(), q.limit()?)
        .await
        .map_err(with_after)?;
    Ok(Json(list(page, |c: &CheckpointObject| c.id.clone())))
}

fn with_after(e: CoreError) -> ApiError {
    let after = matches!(&e, CoreError::InvalidInput(m) if m.starts_with("after"));
    let error = oai(e);
    if after {
        error.with_param("after")
    } else {
        error
    }
}
