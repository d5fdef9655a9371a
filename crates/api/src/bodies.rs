//! Request bodies that are uploads or forms, shared by the routes that take them (data
//! sets, files, models, audio, images): whether a body is a multipart form; a body that
//! declares more than the limit is refused before any of it is read; a form's file part
//! streams into the core's sealed `Upload`, and past the limit a bounded rest of it is
//! read and dropped before the 413, so a client still sending gets the answer rather
//! than a reset connection.

use aiaas_core::{CoreError, Upload};
use axum::extract::multipart::Field;
use axum::http::{header, HeaderMap};

/// At most this much of a body is read (and dropped) past the limit.
pub(crate) const DRAIN_LIMIT: u64 = 32 * 1024 * 1024;

/// Whether the body is a `multipart/form-data` form.
pub(crate) fn is_multipart(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"))
}

/// 413 for a body that declares more than `limit` (and more than would be drained).
pub(crate) fn refuse_declared_oversize(headers: &HeaderMap, limit: u64) -> Result<(), CoreError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit.saturating_add(DRAIN_LIMIT)) {
        return Err(CoreError::PayloadTooLarge(format!(
            "upload exceeds the limit of {limit} bytes"
        )));
    }
    Ok(())
}

/// Stream a form's file part into `upload`.
pub(crate) async fn field_into_upload(
    field: &mut Field<'_>,
    upload: &mut Upload,
) -> Result<(), CoreError> {
    let interrupted = |e: axum::extract::multipart::MultipartError| {
        CoreError::InvalidInput(format!("upload interrupted: {e}"))
    };
    while let Some(chunk) = field.chunk().await.map_err(interrupted)? {
        if let Err(e) = upload.write_chunk(&chunk).await {
            let mut drained = 0u64;
            while let Ok(Some(c)) = field.chunk().await {
                drained += c.len() as u64;
                if drained > DRAIN_LIMIT {
                    break;
                }
            }
            return Err(e);
        }
    }
    Ok(())
}
