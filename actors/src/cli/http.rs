//! A minimal HTTP/1.1 client for the CLI's calls to the REST API: one request per connection
//! (`Connection: close`), JSON bodies, `Content-Length` or chunked responses.
//!
//! Why not `reqwest` or `awc`: the CLI only talks JSON to `weir run` on loopback; a client
//! crate would add a second HTTP stack (hyper, or awc's TLS and compression features) to the
//! build for ~150 lines of code here.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use serde_json::Value;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a call did not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot reach the REST API at {address}: {source} (is `weir run` running there? see --address)")]
    Connect {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("REST API at {address}: {message}")]
    Protocol { address: String, message: String },
}

impl HttpError {
    /// True when nothing listens at the address (the process has gone).
    pub fn is_refused(&self) -> bool {
        matches!(self, HttpError::Connect { source, .. } if source.kind() == std::io::ErrorKind::ConnectionRefused)
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

/// Sends one request to `address` (`host:port`) and reads the whole answer.
///
/// # Errors
/// [`HttpError`] when the connection fails or the answer is not HTTP.
pub fn request(
    address: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<Response, HttpError> {
    let connect = |source| HttpError::Connect {
        address: address.to_owned(),
        source,
    };
    let protocol = |message: String| HttpError::Protocol {
        address: address.to_owned(),
        message,
    };
    let addrs: Vec<_> = address.to_socket_addrs().map_err(connect)?.collect();
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
    let mut stream = None;
    for a in addrs {
        match TcpStream::connect_timeout(&a, CONNECT_TIMEOUT) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = e,
        }
    }
    let mut stream = stream.ok_or_else(|| connect(last))?;
    stream
        .set_read_timeout(Some(READ_TIMEOUT))
        .map_err(connect)?;
    let payload = body.map(Value::to_string).unwrap_or_default();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nAccept: application/json\r\nContent-Length: {}\r\n",
        payload.len()
    );
    if body.is_some() {
        head.push_str("Content-Type: application/json\r\n");
    }
    head.push_str("\r\n");
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(payload.as_bytes()))
        .map_err(connect)?;

    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).map_err(connect)?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| protocol(format!("not an HTTP status line: {line:?}")))?;
    let mut length = None;
    let mut chunked = false;
    loop {
        line.clear();
        reader.read_line(&mut line).map_err(connect)?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse::<usize>().ok();
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            }
        }
    }
    let mut bytes = Vec::new();
    if chunked {
        loop {
            line.clear();
            reader.read_line(&mut line).map_err(connect)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| protocol(format!("bad chunk size {line:?}")))?;
            if size == 0 {
                break;
            }
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).map_err(connect)?;
            bytes.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(n) = length {
        bytes.resize(n, 0);
        reader.read_exact(&mut bytes).map_err(connect)?;
    } else {
        reader.read_to_end(&mut bytes).map_err(connect)?;
    }
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    Ok(Response { status, body })
}
