//! The one mapping from core errors to HTTP responses: an exhaustive match with no `_`,
//! so a new error variant cannot ship unmapped. 5xx bodies carry a fixed message and a
//! reference id; the detail goes to the log only.

use aiaas_core::CoreError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// Which wire format an error is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorStyle {
    /// `{"error": {"code": ..., "message": ...}}`
    Native,
    /// KServe v2: `{"error": "..."}`
    KServe,
}

#[derive(Debug)]
pub struct ApiError {
    pub error: CoreError,
    pub style: ErrorStyle,
}

impl ApiError {
    pub fn kserve(error: CoreError) -> ApiError {
        ApiError {
            error,
            style: ErrorStyle::KServe,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        CoreError::InvalidInput(message.into()).into()
    }
}

impl From<CoreError> for ApiError {
    fn from(error: CoreError) -> Self {
        ApiError {
            error,
            style: ErrorStyle::Native,
        }
    }
}

/// Status and machine-readable code of each core error.
pub fn status_of(e: &CoreError) -> (StatusCode, &'static str) {
    match e {
        CoreError::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "unauthenticated"),
        CoreError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
        CoreError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
        CoreError::InvalidInput(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
        CoreError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
        CoreError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        CoreError::Overloaded { .. } => (StatusCode::TOO_MANY_REQUESTS, "overloaded"),
        CoreError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        CoreError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = status_of(&self.error);
        let message = if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
            let reference = aiaas_types::new_id();
            tracing::error!(error_ref = %reference, detail = %self.error, "request failed");
            format!("internal error; reference {reference}")
        } else {
            self.error.to_string()
        };
        let body = match self.style {
            ErrorStyle::Native => json!({"error": {"code": code, "message": message}}),
            ErrorStyle::KServe => json!({"error": message}),
        };
        let mut response = (status, Json(body)).into_response();
        if let CoreError::Overloaded {
            retry_after_secs, ..
        } = &self.error
        {
            if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
