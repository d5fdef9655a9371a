//! Extractors: the caller's principal from `Authorization: Bearer`, and JSON / query
//! extractors whose rejections use the API's error format.

use aiaas_core::CoreError;
use aiaas_types::Principal;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorStyle};
use crate::AppState;

/// The authenticated caller.
pub struct Auth(pub Principal);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let style = ErrorStyle::for_path(parts.uri.path());
        let reject = |error: CoreError| ApiError {
            error,
            style,
            param: None,
        };
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| {
                reject(CoreError::Unauthenticated(
                    "missing API key: send Authorization: Bearer <key>".into(),
                ))
            })?
            .to_str()
            .map_err(|_| {
                reject(CoreError::Unauthenticated(
                    "malformed Authorization header".into(),
                ))
            })?;
        let secret = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                reject(CoreError::Unauthenticated(
                    "Authorization must use the Bearer scheme".into(),
                ))
            })?;
        let ip = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip());
        let (principal, record) = state
            .platform
            .accounts()
            .authenticate_record(secret)
            .await
            .map_err(reject)?;
        let caller = parts.extensions.get::<crate::audit::Caller>().cloned();
        // Known from here on, so a refusal below is audited with the key.
        if let Some(c) = &caller {
            c.set(&principal, None);
        }
        let rate = state
            .platform
            .limiter()
            .admit_request(&principal, &record, ip)
            .await
            .map_err(reject)?;
        if let Some(c) = &caller {
            c.set(&principal, rate);
        }
        Ok(Auth(principal))
    }
}

/// `Json<T>` with errors in the API's format.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    /// The body is parsed as JSON whatever its declared content type (`curl -d` sends
    /// form encoding by default); the body limit still applies (413 past it).
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let style = ErrorStyle::for_path(req.uri().path());
        let reject = |error: CoreError| ApiError {
            error,
            style,
            param: None,
        };
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|r| {
                if r.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    reject(CoreError::PayloadTooLarge(
                        "the request body is larger than the limit of 16 MiB".into(),
                    ))
                } else {
                    reject(CoreError::InvalidInput(format!(
                        "cannot read the request body: {}",
                        r.body_text()
                    )))
                }
            })?;
        serde_json::from_slice(&bytes)
            .map(ApiJson)
            .map_err(|e| reject(CoreError::InvalidInput(format!("invalid JSON body: {e}"))))
    }
}

/// `Query<T>` with errors in the API's format.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(ApiQuery(v)),
            Err(r) => Err(ApiError::bad_request(format!(
                "invalid query string: {}",
                r.body_text()
            ))),
        }
    }
}
