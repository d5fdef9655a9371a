//! What a failed S3 request was: the store's answer (refused, missing, forbidden, away)
//! or the local scratch file, read from `object_store`'s errors.

use std::io;

/// Why a request failed: the store's answer, or the local scratch file.
pub(super) enum Failure {
    Store(object_store::Error),
    Local(io::Error),
}

impl From<object_store::Error> for Failure {
    fn from(e: object_store::Error) -> Self {
        Failure::Store(e)
    }
}

/// No answer at all: connection refused, reset or timed out, TLS.
pub(super) fn is_transport(e: &object_store::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err
            .downcast_ref::<object_store::client::HttpError>()
            .is_some()
        {
            return true;
        }
        source = err.source();
    }
    false
}

/// The error and every cause, as one line.
pub(super) fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

/// The HTTP status in `object_store`'s error text ("... status code: 503 ..."), pinned
/// to the version in Cargo.lock: its status type is not public.
pub(super) fn http_status(text: &str) -> Option<u16> {
    let at = text.find("status code: ")? + "status code: ".len();
    text.get(at..at + 3)?.parse().ok()
}

/// The S3 error code of an answer's XML body (`<Code>NoSuchBucket</Code>`).
pub(super) fn s3_code(text: &str) -> Option<&str> {
    let start = text.find("<Code>")? + "<Code>".len();
    let len = text[start..].find("</Code>")?;
    Some(&text[start..start + len])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_codes_are_read_from_error_text() {
        let text = "Generic S3 error: Error performing GET http://h/b in 2ms - Server returned \
                    non-2xx status code: 404 Not Found: <Error><Code>NoSuchBucket</Code></Error>";
        assert_eq!(http_status(text), Some(404));
        assert_eq!(s3_code(text), Some("NoSuchBucket"));
        assert_eq!(http_status("connection refused"), None);
        assert_eq!(s3_code("<Code>unterminated"), None);
    }
}
