//! Where the bucket is and who we are to it: the `s3://` URL, the endpoint, and the
//! credentials (static keys, or the standard AWS chain that refreshes itself).

use std::fmt;

use crate::artifacts::valid_key;

/// Where and how to reach the bucket.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Config {
    /// `http(s)://host[:port]` of an S3-compatible server (MinIO: `http://127.0.0.1:9000`);
    /// `None` is AWS: `https://s3.{region}.amazonaws.com`.
    pub endpoint: Option<String>,
    pub region: String,
    pub bucket: String,
    /// Key prefix of every object, without leading or trailing `/`; may be empty.
    pub prefix: String,
    /// Static keys; `None` uses the standard AWS chain: web identity (IRSA on EKS:
    /// `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`), container credentials (ECS, EKS
    /// Pod Identity), then EC2 instance metadata (IMDSv2); temporary credentials from
    /// it are refreshed before they expire.
    pub credentials: Option<S3Credentials>,
    /// `https://host/bucket/key` (MinIO and most self-hosted servers) instead of
    /// `https://bucket.host/key` (AWS's default).
    pub path_style: bool,
}

/// An access key pair, with the session token of temporary (STS) credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Credentials {
    pub access_key: String,
    pub secret_key: String,
    pub session_token: Option<String>,
}

impl S3Credentials {
    pub fn new(access_key: &str, secret_key: &str) -> S3Credentials {
        S3Credentials {
            access_key: access_key.into(),
            secret_key: secret_key.into(),
            session_token: None,
        }
    }
}

impl fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Credentials")
            .field("access_key", &self.access_key)
            .field("secret_key", &"***")
            .field("session_token", &self.session_token.as_ref().map(|_| "***"))
            .finish()
    }
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("credentials", &self.credentials)
            .field("path_style", &self.path_style)
            .finish()
    }
}

impl S3Config {
    /// The bucket and the prefix of `s3://BUCKET` or `s3://BUCKET/PREFIX` (slashes around
    /// the prefix are dropped). The error says what is wrong and what is expected.
    pub fn parse_url(url: &str) -> Result<(String, String), S3UrlError> {
        const EXPECTED: &str = "expected s3://BUCKET or s3://BUCKET/PREFIX";
        let invalid = |message: String| Err(S3UrlError(message));
        let Some(rest) = url.trim().strip_prefix("s3://") else {
            return invalid(format!("{url:?} is not an S3 URL: {EXPECTED}"));
        };
        let (bucket, prefix) = match rest.split_once('/') {
            Some((bucket, prefix)) => (bucket, prefix.trim_matches('/')),
            None => (rest, ""),
        };
        if bucket.is_empty() {
            return invalid(format!("{url:?} names no bucket: {EXPECTED}"));
        }
        if !valid_bucket(bucket) {
            return invalid(format!(
                "{url:?}: {bucket:?} is not a valid bucket name (3-63 characters of a-z 0-9 . -, \
                 starting and ending with a letter or digit); {EXPECTED}"
            ));
        }
        if !prefix.is_empty() && !valid_key(prefix) {
            return invalid(format!(
                "{url:?}: the prefix {prefix:?} must be /-separated names of A-Z a-z 0-9 - _ . \
                 (none empty or starting with a dot, no query or fragment)"
            ));
        }
        Ok((bucket.to_string(), prefix.to_string()))
    }

    /// The endpoint requests go to.
    pub fn endpoint_url(&self) -> String {
        match &self.endpoint {
            Some(endpoint) => endpoint.trim().trim_end_matches('/').to_string(),
            None => format!("https://s3.{}.amazonaws.com", self.region),
        }
    }

    /// `s3://bucket/prefix`, for messages.
    pub fn url(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }

    /// Everything `open` needs to hold before a request is made; the message says what
    /// to change.
    pub(super) fn validate(&self) -> Result<(), String> {
        if !valid_bucket(&self.bucket) {
            return Err(format!(
                "{:?} is not a valid bucket name (3-63 characters of a-z 0-9 . -)",
                self.bucket
            ));
        }
        if !self.prefix.is_empty() && !valid_key(&self.prefix) {
            return Err(format!(
                "the prefix {:?} must be /-separated names of A-Z a-z 0-9 - _ . without \
                 leading or trailing /",
                self.prefix
            ));
        }
        if self.region.trim().is_empty() {
            return Err("the S3 region is empty (AWS: e.g. us-east-1; MinIO: us-east-1)".into());
        }
        if let Some(c) = &self.credentials {
            if c.access_key.is_empty() || c.secret_key.is_empty() {
                return Err(
                    "the S3 access key and secret key are both required when either \
                            is given (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)"
                        .into(),
                );
            }
        }
        if let Some(endpoint) = &self.endpoint {
            let url = url::Url::parse(endpoint.trim())
                .map_err(|e| format!("the S3 endpoint {endpoint:?} is not a URL ({e}); expected http(s)://host[:port]"))?;
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                return Err(format!(
                    "the S3 endpoint {endpoint:?} must be http(s)://host[:port]"
                ));
            }
            if !url.username().is_empty() || url.password().is_some() {
                return Err(format!(
                    "the S3 endpoint {endpoint:?} must not carry credentials: use \
                     AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
                ));
            }
        }
        Ok(())
    }
}

/// A malformed `s3://` URL; the message says what is wrong and what is expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct S3UrlError(String);

/// DNS-compatible bucket names (the rule AWS and MinIO enforce).
fn valid_bucket(bucket: &str) -> bool {
    let bytes = bucket.as_bytes();
    (3..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> S3Config {
        S3Config {
            endpoint: None,
            region: "eu-west-1".into(),
            bucket: "bucket".into(),
            prefix: String::new(),
            credentials: Some(S3Credentials {
                access_key: "AKID".into(),
                secret_key: "very-secret".into(),
                session_token: Some("token-secret".into()),
            }),
            path_style: false,
        }
    }

    #[test]
    fn s3_urls_are_parsed_with_actionable_errors() {
        let ok = |url: &str| S3Config::parse_url(url).unwrap();
        assert_eq!(ok("s3://bucket"), ("bucket".into(), String::new()));
        assert_eq!(
            ok("s3://my.bucket-1/"),
            ("my.bucket-1".into(), String::new())
        );
        assert_eq!(
            ok("s3://bucket/aiaas/prod/"),
            ("bucket".into(), "aiaas/prod".into())
        );
        for (bad, says) in [
            ("https://bucket/x", "not an S3 URL"),
            ("s3://", "names no bucket"),
            ("s3:///prefix", "names no bucket"),
            ("s3://Bucket_Name/x", "not a valid bucket name"),
            ("s3://ab", "not a valid bucket name"),
            ("s3://bucket/a//b", "prefix"),
            ("s3://bucket/a/../b", "prefix"),
            ("s3://bucket/a?x=1", "prefix"),
        ] {
            let err = S3Config::parse_url(bad).unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
            assert!(
                err.contains("s3://") || err.contains("prefix"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let config = config();
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("very-secret") && !shown.contains("token-secret"),
            "{shown}"
        );
        assert!(
            shown.contains("AKID"),
            "the key id helps and is no secret: {shown}"
        );
        assert_eq!(config.endpoint_url(), "https://s3.eu-west-1.amazonaws.com");
        assert_eq!(config.url(), "s3://bucket");
    }

    #[test]
    fn endpoints_and_credentials_are_checked_before_any_request() {
        let mut c = config();
        c.validate().unwrap();
        for bad in [
            "127.0.0.1:9000",
            "ftp://host",
            "https://user:pw@host",
            "http://",
        ] {
            c.endpoint = Some(bad.into());
            assert!(c.validate().is_err(), "{bad}");
        }
        c.endpoint = Some("http://127.0.0.1:9000/".into());
        c.validate().unwrap();
        c.credentials = Some(S3Credentials::new("AKID", ""));
        assert!(c.validate().unwrap_err().contains("secret key"));
        c.credentials = None;
        c.validate().unwrap();
        c.region = " ".into();
        assert!(c.validate().unwrap_err().contains("region"));
    }
}
