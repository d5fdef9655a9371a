//! The one thing the `object_store` client does not send: a precondition on
//! CompleteMultipartUpload (its `PutMultipartOptions` has no mode; apache/arrow-rs-
//! object-store#289). Every request goes through [`ConditionalConnector`]'s service, and
//! a CompleteMultipartUpload (a POST with `uploadId`) made inside
//! [`with_complete_condition`] gets that write's header: `If-None-Match: *` for a create,
//! `If-Match: <etag>` for a replace. The header is not signed, as `object_store`'s own
//! create-only completion sends it; S3 honours unsigned conditional headers.
//!
//! The condition travels as a task-local: the completion request runs inside the task
//! that awaits `MultipartUpload::complete` (the reqwest connector does not spawn), and
//! nothing else can see or change it.

use std::future::Future;

use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpRequest, HttpResponse, HttpService, ReqwestConnector,
};
use object_store::ClientOptions;

/// A write's precondition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Condition {
    /// Unconditional: create or replace.
    None,
    /// Create only: `If-None-Match: *`.
    Absent,
    /// Replace only the copy with this ETag: `If-Match`.
    Matches(String),
}

impl Condition {
    fn header(&self) -> Option<(&'static str, &str)> {
        match self {
            Condition::None => None,
            Condition::Absent => Some(("if-none-match", "*")),
            Condition::Matches(etag) => Some(("if-match", etag.as_str())),
        }
    }
}

tokio::task_local! {
    static COMPLETE_CONDITION: Condition;
}

/// Runs `fut` (a multipart upload's completion) with `condition` on its request.
pub(super) fn with_complete_condition<F: Future>(
    condition: Condition,
    fut: F,
) -> impl Future<Output = F::Output> {
    COMPLETE_CONDITION.scope(condition, fut)
}

/// The reqwest connector `object_store` uses by default, wrapped.
#[derive(Debug, Default)]
pub(super) struct ConditionalConnector;

impl HttpConnector for ConditionalConnector {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let inner = ReqwestConnector::default().connect(options)?;
        Ok(HttpClient::new(ConditionalService { inner }))
    }
}

#[derive(Debug)]
struct ConditionalService {
    inner: HttpClient,
}

#[async_trait::async_trait]
impl HttpService for ConditionalService {
    async fn call(&self, mut req: HttpRequest) -> Result<HttpResponse, HttpError> {
        if is_complete_multipart(&req) {
            let condition = COMPLETE_CONDITION.try_with(Condition::clone).ok();
            if let Some((name, value)) = condition.as_ref().and_then(Condition::header) {
                if let Ok(value) = http::HeaderValue::from_str(value) {
                    req.headers_mut().insert(name, value);
                }
            }
        }
        self.inner.execute(req).await
    }
}

/// CompleteMultipartUpload: `POST /key?uploadId=...` (creating one is `POST /key?uploads`).
fn is_complete_multipart(req: &HttpRequest) -> bool {
    req.method() == http::Method::POST
        && req
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|pair| pair.starts_with("uploadId=")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: http::Method, uri: &str) -> HttpRequest {
        http::Request::builder()
            .method(method)
            .uri(uri)
            .body(object_store::client::HttpRequestBody::empty())
            .unwrap()
    }

    #[test]
    fn only_completions_are_conditioned() {
        let post = http::Method::POST;
        assert!(is_complete_multipart(&request(
            post.clone(),
            "http://h/b/k?uploadId=abc"
        )));
        assert!(is_complete_multipart(&request(
            post.clone(),
            "http://h/b/k?x=1&uploadId=abc"
        )));
        assert!(!is_complete_multipart(&request(
            post.clone(),
            "http://h/b/k?uploads"
        )));
        assert!(!is_complete_multipart(&request(
            post,
            "http://h/b/k?delete"
        )));
        let put = http::Method::PUT;
        assert!(!is_complete_multipart(&request(
            put,
            "http://h/b/k?partNumber=1&uploadId=abc"
        )));
    }

    #[test]
    fn conditions_name_their_headers() {
        assert_eq!(Condition::Absent.header(), Some(("if-none-match", "*")));
        assert_eq!(
            Condition::Matches("\"e\"".into()).header(),
            Some(("if-match", "\"e\""))
        );
        assert_eq!(Condition::None.header(), None);
    }
}
