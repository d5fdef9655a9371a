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
    /// OpenAI: `{"error": {"message", "type", "param", "code"}}`
    OpenAi,
}

impl ErrorStyle {
    /// The style of the API a path belongs to.
    pub fn for_path(path: &str) -> ErrorStyle {
        if path.starts_with("/v2/") {
            ErrorStyle::KServe
        } else if path.starts_with("/v1/") {
            ErrorStyle::OpenAi
        } else {
            ErrorStyle::Native
        }
    }
}

#[derive(Debug)]
pub struct ApiError {
    pub error: CoreError,
    pub style: ErrorStyle,
    /// The request parameter at fault, when one is (OpenAI's `param`).
    pub param: Option<String>,
}

impl ApiError {
    pub fn kserve(error: CoreError) -> ApiError {
        ApiError {
            error,
            style: ErrorStyle::KServe,
            param: None,
        }
    }

    pub fn openai(error: CoreError) -> ApiError {
        ApiError {
            error,
            style: ErrorStyle::OpenAi,
            param: None,
        }
    }

    /// An OpenAI-style 400 naming the parameter at fault.
    pub fn openai_param(param: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            error: CoreError::InvalidInput(message.into()),
            style: ErrorStyle::OpenAi,
            param: Some(param.to_string()),
        }
    }

    /// The same error, naming the parameter at fault.
    pub fn with_param(mut self, param: &str) -> ApiError {
        self.param = Some(param.to_string());
        self
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
            param: None,
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
        CoreError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
        CoreError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        CoreError::Loading { .. } => (StatusCode::SERVICE_UNAVAILABLE, "model_loading"),
        CoreError::TimedOut(_) => (StatusCode::GATEWAY_TIMEOUT, "timeout"),
        CoreError::BadUpstream(_) => (StatusCode::BAD_GATEWAY, "bad_upstream"),
        CoreError::Integrity(_) => (StatusCode::INTERNAL_SERVER_ERROR, "data_integrity"),
        CoreError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = status_of(&self.error);
        let message = if status.is_server_error()
            && !matches!(
                status,
                StatusCode::SERVICE_UNAVAILABLE
                    | StatusCode::GATEWAY_TIMEOUT
                    | StatusCode::BAD_GATEWAY
            ) {
            let reference = aiaas_types::new_id();
            tracing::error!(error_ref = %reference, detail = %self.error, "request failed");
            match &self.error {
                // A fixed message (which object failed stays in the log), but one that
                // tells the operator what happened.
                CoreError::Integrity(_) => format!(
                    "stored data failed its integrity check (tampered with or truncated) and \
                     was not used; restore it from a backup; reference {reference}"
                ),
                _ => format!("internal error; reference {reference}"),
            }
        } else {
            self.error.to_string()
        };
        let body = match self.style {
            ErrorStyle::Native => json!({"error": {"code": code, "message": message}}),
            ErrorStyle::KServe => json!({"error": message}),
            ErrorStyle::OpenAi => json!({"error": {
                "message": message,
                "type": openai_type(status),
                "param": self.param,
                "code": code,
            }}),
        };
        let mut response = (status, Json(body)).into_response();
        let retry_after = match &self.error {
            CoreError::Overloaded {
                retry_after_secs, ..
            }
            | CoreError::Loading {
                retry_after_secs, ..
            }
            | CoreError::RateLimited {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            // The database away, a draining replica: another try (or replica) soon.
            CoreError::Unavailable(_) => Some(1),
            _ => None,
        };
        if let Some(secs) = retry_after {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        if let CoreError::RateLimited {
            retry_after_secs,
            limit,
            ..
        } = &self.error
        {
            crate::audit::rate_limit_headers(
                response.headers_mut(),
                &aiaas_core::RateStatus {
                    limit: *limit,
                    remaining: 0,
                    reset_secs: *retry_after_secs,
                },
            );
        }
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// OpenAI's error `type` for a status.
fn openai_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        _ => "server_error",
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
