//! S3-compatible object storage: `s3://<bucket>/<path>` for checkpoint and savepoint
//! directories, through opendal's S3 service.
//!
//! [`S3Settings`] are the connection settings, under Flink's key names (`s3.endpoint`,
//! `s3.access-key`, `s3.secret-key`, `s3.path.style.access`, `s3.region`) with the standard
//! AWS environment variables (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_SESSION_TOKEN`, `AWS_REGION` / `AWS_DEFAULT_REGION`) filling what the configuration
//! leaves unset. Like Flink's file systems they are process-wide: the CLI calls [`configure`]
//! once with the loaded configuration, and every `s3://` location of the process (a job's
//! checkpoints, `-s s3://…`, `weir checkpoints s3://…`, dispose) uses them. An application
//! embedding Weir calls [`configure`] itself, or relies on the environment variables.
//!
//! Settings are checked when a location is opened ([`operator`]): missing credentials, a
//! missing region without an endpoint, or an endpoint that is not an `http(s)://` URL are a
//! [`StorageError::S3Config`] that names the key to set. Credentials are only ever taken from
//! the settings or those variables (no instance metadata or profile files), so what a process
//! uses is what its configuration says.
//!
//! Every operator gets opendal's retry layer: a transient error (a dropped connection, a 5xx,
//! a throttled request) is retried with exponential backoff and jitter ([`RETRY`]); what still
//! fails is a [`StorageError::Io`], which fails the checkpoint (and the job only when more
//! checkpoints fail in a row than `tolerable-failed-checkpoints` allows).
//!
//! The commit protocol on S3: S3 has no rename, so `_metadata` is written last with a
//! conditional PUT (`If-None-Match: *`), which the store refuses when the object exists; a PUT
//! only becomes visible once complete. A service that ignores `If-None-Match` (some older
//! S3-compatible servers) still gets the existence check made just before the write, which
//! leaves a window only for two writers of the same checkpoint of the same job.

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use opendal::layers::RetryLayer;
use opendal::Operator;

use super::error::StorageError;
use crate::config::keys;

/// How transient S3 errors are retried: attempts after the first, and the backoff bounds.
pub const RETRY: RetryPolicy = RetryPolicy {
    max_times: 4,
    min_delay: Duration::from_millis(100),
    max_delay: Duration::from_secs(2),
};

/// Backoff of the retry layer.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    pub max_times: usize,
    pub min_delay: Duration,
    pub max_delay: Duration,
}

/// How to reach an S3-compatible store. `None` fields are unset (see [`S3Settings::or`]).
/// `Debug` never shows the secret key or the session token.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct S3Settings {
    /// `s3.endpoint`: e.g. `http://127.0.0.1:9000`; unset = AWS.
    pub endpoint: Option<String>,
    /// `s3.region`; `us-east-1` when an endpoint is set and no region.
    pub region: Option<String>,
    /// `s3.access-key`.
    pub access_key: Option<String>,
    /// `s3.secret-key`.
    pub secret_key: Option<String>,
    /// `AWS_SESSION_TOKEN`, for temporary credentials.
    pub session_token: Option<String>,
    /// `s3.path.style.access`: `http://endpoint/bucket/key` instead of
    /// `http://bucket.endpoint/key` (Flink's default: false; no environment variable).
    pub path_style: bool,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |v: &Option<String>| v.as_ref().map(|_| "******");
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key", &self.access_key)
            .field("secret_key", &hidden(&self.secret_key))
            .field("session_token", &hidden(&self.session_token))
            .field("path_style", &self.path_style)
            .finish()
    }
}

impl S3Settings {
    /// The settings the standard AWS environment variables give.
    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// The settings the variables `var` returns give (`from_env` with the process's).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let get = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| var(n).filter(|v| !v.trim().is_empty()))
        };
        Self {
            endpoint: get(&["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]),
            region: get(&["AWS_REGION", "AWS_DEFAULT_REGION"]),
            access_key: get(&["AWS_ACCESS_KEY_ID"]),
            secret_key: get(&["AWS_SECRET_ACCESS_KEY"]),
            session_token: get(&["AWS_SESSION_TOKEN"]),
            path_style: false,
        }
    }

    /// These settings, each unset one taken from `fallback` (path style: either).
    pub fn or(self, fallback: S3Settings) -> Self {
        Self {
            endpoint: self.endpoint.or(fallback.endpoint),
            region: self.region.or(fallback.region),
            access_key: self.access_key.or(fallback.access_key),
            secret_key: self.secret_key.or(fallback.secret_key),
            session_token: self.session_token.or(fallback.session_token),
            path_style: self.path_style || fallback.path_style,
        }
    }

    /// The checked settings for `uri`: credentials, region and endpoint as opendal needs them.
    ///
    /// # Errors
    ///
    /// [`StorageError::S3Config`] naming the key that is missing or wrong.
    pub fn checked(&self, uri: &str) -> Result<CheckedS3, StorageError> {
        let err = |key: &'static str, reason: &'static str| StorageError::S3Config {
            uri: uri.to_string(),
            key,
            reason,
        };
        let (access_key, secret_key) = match (&self.access_key, &self.secret_key) {
            (Some(a), Some(s)) => (a.clone(), s.clone()),
            (None, None) => {
                return Err(err(
                    keys::S3_ACCESS_KEY,
                    "no S3 credentials: set `s3.access-key` and `s3.secret-key` (or the \
                     environment variables AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)",
                ))
            }
            (Some(_), None) => {
                return Err(err(
                    keys::S3_SECRET_KEY,
                    "`s3.access-key` is set but `s3.secret-key` is not (nor \
                     AWS_SECRET_ACCESS_KEY)",
                ))
            }
            (None, Some(_)) => {
                return Err(err(
                    keys::S3_ACCESS_KEY,
                    "`s3.secret-key` is set but `s3.access-key` is not (nor AWS_ACCESS_KEY_ID)",
                ))
            }
        };
        if let Some(e) = &self.endpoint {
            let rest = e
                .strip_prefix("http://")
                .or_else(|| e.strip_prefix("https://"));
            if rest.is_none_or(|r| r.trim_matches('/').is_empty()) {
                return Err(err(
                    keys::S3_ENDPOINT,
                    "the endpoint must be an http:// or https:// URL with a host, e.g. \
                     `http://127.0.0.1:9000`",
                ));
            }
        }
        let region = match (&self.region, &self.endpoint) {
            (Some(r), _) => r.clone(),
            // S3-compatible servers accept any region in the signature; AWS's default.
            (None, Some(_)) => "us-east-1".to_string(),
            (None, None) => {
                return Err(err(
                    keys::S3_REGION,
                    "no region and no endpoint: set `s3.region` (or AWS_REGION) for AWS, or \
                     `s3.endpoint` for another S3-compatible store",
                ))
            }
        };
        Ok(CheckedS3 {
            endpoint: self.endpoint.clone(),
            region,
            access_key,
            secret_key,
            session_token: self.session_token.clone(),
            path_style: self.path_style,
        })
    }
}

/// Settings that [`S3Settings::checked`] accepted.
#[derive(Clone, PartialEq, Eq)]
pub struct CheckedS3 {
    endpoint: Option<String>,
    region: String,
    access_key: String,
    secret_key: String,
    session_token: Option<String>,
    path_style: bool,
}

impl std::fmt::Debug for CheckedS3 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckedS3")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("path_style", &self.path_style)
            .finish_non_exhaustive()
    }
}

impl CheckedS3 {
    /// What identifies the store an operator reaches (never the secret).
    pub(super) fn store_key(&self, bucket: &str) -> String {
        format!(
            "s3:{bucket}|{}|{}|{}|{}",
            self.endpoint.as_deref().unwrap_or("aws"),
            self.region,
            self.access_key,
            self.path_style
        )
    }

    /// The opendal operator of `bucket`, with the retry layer.
    pub(super) fn operator(&self, bucket: &str) -> opendal::Result<Operator> {
        opendal::install_default();
        let mut b = opendal::services::S3::default()
            .bucket(bucket)
            .root("/")
            .region(&self.region)
            .access_key_id(&self.access_key)
            .secret_access_key(&self.secret_key)
            .disable_config_load()
            .disable_ec2_metadata();
        if let Some(e) = &self.endpoint {
            b = b.endpoint(e);
        }
        if let Some(t) = &self.session_token {
            b = b.session_token(t);
        }
        if !self.path_style {
            b = b.enable_virtual_host_style();
        }
        Ok(Operator::new(b)?.layer(
            RetryLayer::new()
                .with_max_times(RETRY.max_times)
                .with_min_delay(RETRY.min_delay)
                .with_max_delay(RETRY.max_delay)
                .with_jitter(),
        ))
    }
}

fn configured() -> &'static Mutex<Option<S3Settings>> {
    static SETTINGS: OnceLock<Mutex<Option<S3Settings>>> = OnceLock::new();
    SETTINGS.get_or_init(Default::default)
}

/// Sets the process's S3 settings (the environment variables fill what `settings` leaves
/// unset). Locations opened afterwards use them; an operator already opened with other
/// settings stays as it was.
pub fn configure(settings: S3Settings) {
    *configured()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(settings);
}

/// The settings in force: the configured ones over the environment variables.
pub fn current() -> S3Settings {
    let set = configured()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone()
        .unwrap_or_default();
    set.or(S3Settings::from_env())
}

/// Splits the part of an `s3://` URI after the scheme into bucket and key.
///
/// # Errors
///
/// [`StorageError::InvalidLocation`] when there is no bucket name.
pub(super) fn split(uri: &str, rest: &str) -> Result<(String, String), StorageError> {
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(StorageError::InvalidLocation {
            uri: uri.to_string(),
            reason: "an `s3://` URI needs a bucket, e.g. `s3://my-bucket/checkpoints`",
        });
    }
    Ok((bucket.to_string(), key.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> S3Settings {
        S3Settings {
            endpoint: Some("http://127.0.0.1:9000".into()),
            access_key: Some("a".into()),
            secret_key: Some("s".into()),
            ..S3Settings::default()
        }
    }

    #[test]
    fn missing_or_wrong_settings_name_the_key() {
        let cases = [
            (
                S3Settings {
                    access_key: None,
                    secret_key: None,
                    ..full()
                },
                "s3.access-key",
            ),
            (
                S3Settings {
                    secret_key: None,
                    ..full()
                },
                "s3.secret-key",
            ),
            (
                S3Settings {
                    access_key: None,
                    ..full()
                },
                "s3.access-key",
            ),
            (
                S3Settings {
                    endpoint: None,
                    ..full()
                },
                "s3.region",
            ),
            (
                S3Settings {
                    endpoint: Some("127.0.0.1:9000".into()),
                    ..full()
                },
                "s3.endpoint",
            ),
        ];
        for (settings, key) in cases {
            let e = settings.checked("s3://b/cp").unwrap_err();
            let msg = e.to_string();
            assert!(
                matches!(e, StorageError::S3Config { key: k, .. } if k == key),
                "{msg}"
            );
            assert!(msg.contains(key) && msg.contains("s3://b/cp"), "{msg}");
        }
        assert!(
            !format!("{:?}", full()).contains("\"s\""),
            "no secret in Debug"
        );
        let ok = full().checked("s3://b/cp").unwrap();
        assert_eq!(ok.region, "us-east-1");
        assert!(!format!("{ok:?}").contains("\"s\""), "no secret in Debug");
    }

    #[test]
    fn configuration_wins_over_the_environment() {
        let env = S3Settings::from_vars(|name| match name {
            "AWS_ACCESS_KEY_ID" => Some("env-a".into()),
            "AWS_SECRET_ACCESS_KEY" => Some("env-s".into()),
            "AWS_DEFAULT_REGION" => Some("eu-west-1".into()),
            "AWS_ENDPOINT_URL" => Some(" ".into()),
            _ => None,
        });
        assert_eq!(env.region.as_deref(), Some("eu-west-1"));
        assert_eq!(env.endpoint, None, "blank variables are unset");
        let merged = S3Settings {
            access_key: Some("conf-a".into()),
            secret_key: Some("conf-s".into()),
            ..S3Settings::default()
        }
        .or(env);
        assert_eq!(merged.access_key.as_deref(), Some("conf-a"));
        assert_eq!(merged.region.as_deref(), Some("eu-west-1"));
    }

    #[test]
    fn uris_need_a_bucket() {
        assert_eq!(
            split("s3://b/x/y", "b/x/y").unwrap(),
            ("b".to_string(), "x/y".to_string())
        );
        assert_eq!(split("s3://b", "b").unwrap(), ("b".into(), String::new()));
        assert!(matches!(
            split("s3:///x", "/x"),
            Err(StorageError::InvalidLocation { .. })
        ));
    }
}
