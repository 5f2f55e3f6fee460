//! The CLI's calls to the REST API: one blocking JSON request and its answer, through `ureq`.
//!
//! [`request`] sends `method path` to `weir run` at `host:port`, with an optional JSON body, and
//! returns the [`Response`]: its status and its body, parsed as JSON when it is JSON. Every
//! status comes back as a `Response`, 4xx and 5xx too (Flink's `{"errors": [...]}`, see
//! [`Response::error_message`]); an [`HttpError`] means there was no answer: nothing listens
//! there ([`HttpError::is_refused`]), the connection failed or timed out, or what came back was
//! not HTTP.
//!
//! The client is plain HTTP/1.1 on a fresh connection per call, with no proxy (the API is on
//! loopback or a named host, never behind `HTTP_PROXY`), no redirects, and no TLS, compression
//! or cookies (none of ureq's optional features are built).

use std::time::Duration;

use serde_json::Value;
use ureq::http;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for any one read from the connection.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a call did not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// No connection, or it broke or timed out: nothing listens there, the name does not
    /// resolve, the network is down, or the server stopped answering.
    #[error("cannot reach the REST API at {address}: {source} (is `weir run` running there? see --address)")]
    Connect {
        address: String,
        #[source]
        source: std::io::Error,
    },
    /// Something answered, but not in HTTP the client can read (or the request itself could
    /// not be built, e.g. from an address that is not `host:port`).
    #[error("REST API at {address}: {source}")]
    Protocol {
        address: String,
        #[source]
        source: ureq::Error,
    },
}

impl HttpError {
    /// True when nothing listens at the address (the process has gone).
    pub fn is_refused(&self) -> bool {
        matches!(self, HttpError::Connect { source, .. } if source.kind() == std::io::ErrorKind::ConnectionRefused)
    }

    fn new(address: &str, error: ureq::Error) -> Self {
        let address = address.to_owned();
        match error {
            ureq::Error::Io(source) => HttpError::Connect { address, source },
            e @ (ureq::Error::Timeout(_)
            | ureq::Error::HostNotFound
            | ureq::Error::ConnectionFailed) => HttpError::Connect {
                address,
                source: e.into_io(),
            },
            source => HttpError::Protocol { address, source },
        }
    }
}

/// A response: status and body (parsed as JSON when it is JSON, else a string).
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub body: Value,
}

impl Response {
    /// The first message of Flink's `{"errors": [...]}`, or the body.
    pub fn error_message(&self) -> String {
        self.body["errors"][0]
            .as_str()
            .map_or_else(|| self.body.to_string(), str::to_owned)
    }
}

/// Sends one request to `address` (`host:port`) and reads the whole answer, whatever its
/// status.
///
/// # Errors
/// [`HttpError`] when the connection fails or the answer is not HTTP.
pub fn request(
    address: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<Response, HttpError> {
    let fail = |e| HttpError::new(address, e);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .max_redirects(0)
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .timeout_per_read(Some(READ_TIMEOUT))
        .build()
        .into();
    let mut builder = http::Request::builder()
        .method(method)
        .uri(format!("http://{address}{path}"))
        .header(http::header::ACCEPT, "application/json");
    if body.is_some() {
        builder = builder.header(http::header::CONTENT_TYPE, "application/json");
    }
    let request = builder
        .body(body.map(Value::to_string).unwrap_or_default())
        .map_err(|e| fail(e.into()))?;
    let mut response = agent.run(request).map_err(fail)?;
    let status = response.status().as_u16();
    // The API is `weir run`'s own; its answers are read whole, as before, with no size cap.
    let bytes = response
        .body_mut()
        .with_config()
        .limit(u64::MAX)
        .read_to_vec()
        .map_err(fail)?;
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    Ok(Response { status, body })
}
