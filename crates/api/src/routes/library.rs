//! Native routes of the model library (`/api/v1/library`, `/api/v1/ps`): the catalogue,
//! pulls with streamed progress (newline-delimited JSON, as Ollama's), listing, details,
//! removal, serving settings, explicit load and unload.

use std::convert::Infallible;
use std::sync::Arc;

use aiaas_core::{CancelFlag, PullProgress};
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{status_of, ApiResult};
use crate::extract::{ApiJson, Auth};
use crate::{wire, AppState};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(catalogue))
        .routes(routes!(pull))
        .routes(routes!(show, remove))
        .routes(routes!(set_settings))
        .routes(routes!(load))
        .routes(routes!(unload))
        .routes(routes!(ps))
        .routes(routes!(usage))
}

#[utoipa::path(
    get,
    path = "/api/v1/usage",
    tag = "library",
    summary = "Usage per key, model and day",
    responses((status = 200, description = "usage rows", body = crate::wire::UsageList), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::ReadModels.as_str()))),
)]
async fn usage(State(s): State<AppState>, Auth(p): Auth) -> ApiResult<impl IntoResponse> {
    Ok(Json(wire::UsageList {
        usage: wire::all(s.platform.inference().usage(&p).await?),
    }))
}

#[utoipa::path(
    get,
    path = "/api/v1/library",
    operation_id = "list_library_models",
    tag = "library",
    summary = "Models in the library (LLMs, encoders)",
    responses((status = 200, description = "library models", body = crate::wire::LibraryList), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::ReadModels.as_str()))),
)]
async fn list(State(s): State<AppState>, Auth(p): Auth) -> ApiResult<impl IntoResponse> {
    Ok(Json(wire::LibraryList {
        models: wire::all(s.platform.library().list(&p).await?),
    }))
}

#[utoipa::path(
    get,
    path = "/api/v1/library/catalogue",
    tag = "library",
    summary = "The catalogue of models to pull",
    responses((status = 200, description = "catalogue models", body = crate::wire::Catalogue), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::ReadModels.as_str()))),
)]
async fn catalogue(State(s): State<AppState>, Auth(p): Auth) -> ApiResult<impl IntoResponse> {
    Ok(Json(wire::Catalogue {
        models: wire::all(s.platform.library().catalogue(&p).await?),
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct PullBody {
    /// A catalogue name, a local path, or a Hugging Face repo id (`hf:org/name`).
    source: String,
    #[serde(default)]
    name: Option<String>,
    /// Stream progress as newline-delimited JSON (default); false answers once at the end.
    #[serde(default)]
    stream: Option<bool>,
}

/// Pull a model. Streaming: one JSON object per line (`status`, `completed`, `total`),
/// ending with `{"status": "success", "model": ...}` or `{"error": ...}`. A client that
/// disconnects cancels the pull (downloaded parts stay for a resumed pull).
#[utoipa::path(
    post,
    path = "/api/v1/library/pull",
    tag = "library",
    summary = "Pull a model (admin; NDJSON progress unless stream is false)",
    request_body = PullBody,
    responses((status = 201, description = "pulled (stream: false)", body = crate::wire::LibraryEntry), (status = 200, description = "progress lines, then the model", body = String, content_type = "application/x-ndjson"), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::ManageLibrary.as_str()))),
)]
async fn pull(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<PullBody>,
) -> ApiResult<Response> {
    s.platform
        .library()
        .check_pull(&p, &body.source, body.name.as_deref())?;
    let cancel = CancelFlag::new();
    if body.stream == Some(false) {
        let record = s
            .platform
            .library()
            .pull(
                &p,
                &body.source,
                body.name.as_deref(),
                Arc::new(|_| {}),
                cancel,
            )
            .await?;
        return Ok((StatusCode::CREATED, Json(wire::LibraryEntry::from(record))).into_response());
    }
    let (tx, rx) = mpsc::unbounded_channel::<Value>();
    let progress_tx = tx.clone();
    let progress = Arc::new(move |pr: PullProgress| {
        // The final line (with the registered model) is ours to send.
        if pr.status == "success" {
            return;
        }
        let _ = progress_tx.send(json!({
            "status": pr.status,
            "completed": pr.completed_bytes,
            "total": pr.total_bytes,
        }));
    });
    let platform = s.platform.clone();
    let flag = cancel.clone();
    tokio::spawn(async move {
        let outcome = platform
            .library()
            .pull(&p, &body.source, body.name.as_deref(), progress, flag)
            .await;
        let last = match outcome {
            Ok(record) => json!({"status": "success", "model": wire::LibraryEntry::from(record)}),
            Err(e) => {
                let (status, code) = status_of(&e);
                json!({"error": {"code": code, "status": status.as_u16(), "message": e.to_string()}})
            }
        };
        let _ = tx.send(last);
    });
    let guard = CancelOnDrop(cancel);
    let lines = futures_util::stream::unfold((rx, guard), |(mut rx, guard)| async move {
        let v = rx.recv().await?;
        let mut line = v.to_string();
        line.push('\n');
        Some((Ok::<_, Infallible>(Bytes::from(line)), (rx, guard)))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines),
    )
        .into_response())
}

/// Cancels a pull when its progress stream is dropped (the client went away).
struct CancelOnDrop(CancelFlag);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/library/{name}",
    tag = "library",
    summary = "A library model's details",
    params(("name" = String, Path)),
    responses((status = 200, description = "the model", body = crate::wire::LibraryShown), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::ReadModels.as_str()))),
)]
async fn show(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!(wire::LibraryShown::from(
        s.platform.library().get(&p, &name).await?
    ))))
}

#[utoipa::path(
    delete,
    path = "/api/v1/library/{name}",
    tag = "library",
    summary = "Remove a library model (admin)",
    params(("name" = String, Path)),
    responses((status = 204, description = "removed"), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::ManageLibrary.as_str()))),
)]
async fn remove(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    s.platform.library().remove(&p, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    put,
    path = "/api/v1/library/{name}/settings",
    tag = "library",
    summary = "Serving settings (admin)",
    params(("name" = String, Path)),
    request_body = crate::wire::LibrarySettings,
    responses((status = 200, description = "the model", body = crate::wire::LibraryEntry), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::ManageLibrary.as_str()))),
)]
async fn set_settings(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(name): Path<String>,
    ApiJson(settings): ApiJson<wire::LibrarySettings>,
) -> ApiResult<Json<Value>> {
    let record = s
        .platform
        .library()
        .set_settings(&p, &name, settings.into())
        .await?;
    Ok(Json(json!(wire::LibraryEntry::from(record))))
}

#[utoipa::path(
    post,
    path = "/api/v1/library/{name}/load",
    tag = "library",
    summary = "Load a model now (admin)",
    params(("name" = String, Path)),
    responses((status = 200, description = "loaded", body = crate::wire::LoadState), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::ManageLibrary.as_str()))),
)]
async fn load(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(name): Path<String>,
) -> ApiResult<impl IntoResponse> {
    s.platform.library().load(&p, &name).await?;
    Ok(Json(wire::LoadState {
        model: name,
        loaded: true,
        was_loaded: None,
    }))
}

#[utoipa::path(
    post,
    path = "/api/v1/library/{name}/unload",
    tag = "library",
    summary = "Unload a model now (admin)",
    params(("name" = String, Path)),
    responses((status = 200, description = "unloaded", body = crate::wire::LoadState), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::ManageLibrary.as_str()))),
)]
async fn unload(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(name): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let was = s.platform.library().unload(&p, &name).await?;
    Ok(Json(wire::LoadState {
        model: name,
        loaded: false,
        was_loaded: Some(was),
    }))
}

#[utoipa::path(
    get,
    path = "/api/v1/ps",
    tag = "library",
    summary = "Loaded models: memory, slots, idle time",
    responses((status = 200, description = "loaded models", body = crate::wire::RunningList), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::ReadModels.as_str()))),
)]
async fn ps(State(s): State<AppState>, Auth(p): Auth) -> ApiResult<impl IntoResponse> {
    Ok(Json(wire::RunningList {
        models: wire::all(s.platform.library().running(&p).await?),
    }))
}
