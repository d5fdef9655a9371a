//! Training jobs: submission, listing, details, cancellation, and their events as
//! server-sent events.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use axum::Json;
use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::json;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiQuery, Auth};
use crate::{wire, AppState};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_jobs, create_job))
        .routes(routes!(get_job))
        .routes(routes!(job_events))
        .routes(routes!(cancel_job))
}

#[utoipa::path(
    post,
    path = "/api/v1/jobs",
    tag = "training",
    summary = "Start a training job",
    request_body = crate::wire::SubmitJob,
    responses((status = 202, description = "queued", body = crate::wire::Job), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::Train.as_str()))),
)]
async fn create_job(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<wire::SubmitJob>,
) -> ApiResult<impl IntoResponse> {
    let job = s.platform.jobs().submit(&p, body.into()).await?;
    Ok((StatusCode::ACCEPTED, Json(wire::Job::from(job))))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Most recent N only.
    limit: Option<usize>,
}

#[utoipa::path(
    get,
    path = "/api/v1/jobs",
    tag = "training",
    summary = "List training jobs, newest first (query: limit)",
    params(ListQuery),
    responses((status = 200, description = "jobs", body = crate::wire::JobList), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::ReadData.as_str()))),
)]
async fn list_jobs(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<impl IntoResponse> {
    let mut jobs = s.platform.jobs().list(&p).await?;
    jobs.truncate(q.limit.unwrap_or(usize::MAX));
    Ok(Json(wire::JobList {
        jobs: wire::all(jobs),
    }))
}

#[utoipa::path(
    get,
    path = "/api/v1/jobs/{id}",
    tag = "training",
    summary = "A job with its report",
    params(("id" = String, Path)),
    responses((status = 200, description = "the job", body = crate::wire::Job), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::ReadData.as_str()))),
)]
async fn get_job(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(wire::Job::from(s.platform.jobs().get(&p, &id).await?)))
}

#[utoipa::path(
    post,
    path = "/api/v1/jobs/{id}/cancel",
    tag = "training",
    summary = "Cancel a job",
    params(("id" = String, Path)),
    responses((status = 200, description = "the job", body = crate::wire::Job), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::Train.as_str()))),
)]
async fn cancel_job(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(wire::Job::from(
        s.platform.jobs().cancel(&p, &id).await?,
    )))
}

/// Server-sent events of a job: its stored events first (after `Last-Event-ID` when
/// reconnecting), then new ones as they come, then an `end` event with the final status.
#[utoipa::path(
    get,
    path = "/api/v1/jobs/{id}/events",
    tag = "training",
    summary = "Job events as server-sent events (Last-Event-ID resumes)",
    params(("id" = String, Path)),
    responses((status = 200, description = "events, then `end`", body = String, content_type = "text/event-stream"), crate::wire::Refused),
    extensions(("x-aiaas-permission" = json!(aiaas_types::Permission::ReadData.as_str()))),
)]
async fn job_events(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(0);
    // Check access before the stream starts, so errors get a proper status.
    s.platform.jobs().get(&p, &id).await?;
    let stream = futures_util::stream::unfold(
        (s, p, id, after, false),
        |(s, p, id, after, done)| async move {
            if done {
                return None;
            }
            loop {
                let (job, events) = match s.platform.jobs().events(&p, &id, after).await {
                    Ok(v) => v,
                    Err(e) => {
                        let message = match e {
                            aiaas_core::CoreError::Internal(detail) => {
                                let reference = aiaas_types::new_id();
                                tracing::error!(error_ref = %reference, %detail, "job event stream failed");
                                format!("internal error; reference {reference}")
                            }
                            other => other.to_string(),
                        };
                        let ev = Event::default().event("error").data(message);
                        return Some((vec![ev], (s, p, id, after, true)));
                    }
                };
                if !events.is_empty() {
                    let last = events.last().map(|e| e.seq).unwrap_or(after);
                    let out = events
                        .into_iter()
                        .map(|e| {
                            let kind = e.event.get("type").and_then(|t| t.as_str()).unwrap_or("event").to_string();
                            Event::default().id(e.seq.to_string()).event(kind).data(e.event.to_string())
                        })
                        .collect();
                    return Some((out, (s, p, id, last, false)));
                }
                if s.platform.is_shutting_down() {
                    // End without an `end` event: the client can tell a cut stream from a
                    // finished job, and reconnect with Last-Event-ID to another replica.
                    return None;
                }
                if job.status.is_terminal() {
                    let end = json!({"status": job.status.as_str(), "error": job.error, "model_version": job.model_version});
                    let ev = Event::default().event("end").data(end.to_string());
                    return Some((vec![ev], (s, p, id, after, true)));
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        },
    )
    .flat_map(|events| futures_util::stream::iter(events.into_iter().map(Ok)));
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
