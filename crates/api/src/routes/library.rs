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
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::error::{status_of, ApiResult};
use crate::extract::{ApiJson, Auth};
use crate::{wire, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/library", get(list))
        .route("/api/v1/library/catalogue", get(catalogue))
        .route("/api/v1/library/pull", post(pull))
        .route("/api/v1/library/{name}", get(show).delete(remove))
        .route(
            "/api/v1/library/{name}/settings",
            axum::routing::put(set_settings),
        )
        .route("/api/v1/library/{name}/load", post(load))
        .route("/api/v1/library/{name}/unload", post(unload))
        .route("/api/v1/ps", get(ps))
        .route("/api/v1/usage", get(usage))
}

async fn usage(State(s): State<AppState>, Auth(p): Auth) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({"usage": wire::all::<_, wire::Usage>(s.platform.inference().usage(&p).await?)}),
    ))
}

async fn list(State(s): State<AppState>, Auth(p): Auth) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({"models": wire::all::<_, wire::LibraryListed>(s.platform.library().list(&p).await?)}),
    ))
}

async fn catalogue(State(s): State<AppState>, Auth(p): Auth) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({"models": wire::all::<_, wire::CatalogueEntry>(s.platform.library().catalogue(&p).await?)}),
    ))
}

#[derive(Deserialize)]
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

async fn show(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!(wire::LibraryShown::from(
        s.platform.library().get(&p, &name).await?
    ))))
}

async fn remove(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    s.platform.library().remove(&p, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

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

async fn load(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    s.platform.library().load(&p, &name).await?;
    Ok(Json(json!({"model": name, "loaded": true})))
}

async fn unload(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let was = s.platform.library().unload(&p, &name).await?;
    Ok(Json(
        json!({"model": name, "loaded": false, "was_loaded": was}),
    ))
}

async fn ps(State(s): State<AppState>, Auth(p): Auth) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({"models": wire::all::<_, wire::RunningModel>(s.platform.library().running(&p).await?)}),
    ))
}
