//! The one error type of the client.
//!
//! Variants are named for what went wrong from the caller's side: the
//! server answered with an error ([`Error::Api`]), the server could not be
//! reached ([`Error::Http`]), its answer could not be read
//! ([`Error::Decode`]), the client was set up wrongly ([`Error::Config`]),
//! or a call was given an argument the client refuses before sending
//! anything ([`Error::InvalidInput`]).
//!
//! Display messages are one line, say what to look at, and already include
//! the underlying cause (so [`std::error::Error::source`] is `None`: print
//! the error once, not its chain). They never contain the token: it is
//! only ever put in a request header.

use std::fmt::Write as _;

/// Everything a client call can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered with a non-success status. `errors` holds the
    /// messages of Vault's `{"errors": [...]}` body (often empty, e.g. for a
    /// plain 404). Branch on [`Error::status`] rather than on the text: the
    /// wording differs between servers.
    #[error("{}", api_message(*status, errors))]
    Api {
        /// The HTTP status code.
        status: u16,
        /// The server's error messages, as sent.
        errors: Vec<String>,
    },

    /// The request did not get an HTTP answer: connection refused, TLS
    /// failure, timeout, DNS. The message includes the whole cause chain.
    #[error("cannot talk to the server: {}", chain(.0))]
    Http(reqwest::Error),

    /// The server answered with a success status but a body this client
    /// cannot read (not JSON, or not the expected shape).
    #[error("cannot read the server's answer to {path}: {error}")]
    Decode {
        /// The API path that was called (e.g. `secret/data/app`).
        path: String,
        /// What did not parse.
        error: serde_json::Error,
    },

    /// The client is configured wrongly: bad address, unreadable CA file,
    /// a token that cannot be sent in a header.
    #[error("client configuration: {0}")]
    Config(String),

    /// An argument was refused before anything was sent (e.g. KV data that
    /// is not a JSON object, or a path with `..` in it).
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

impl Error {
    /// The HTTP status of an [`Error::Api`]; `None` for every other kind.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The server's error messages of an [`Error::Api`]; empty otherwise.
    pub fn errors(&self) -> &[String] {
        match self {
            Error::Api { errors, .. } => errors,
            _ => &[],
        }
    }

    /// True when the server answered 404: the path, key or version does not
    /// exist (or the mount is unknown).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// True when the server answered 403: missing, unknown or expired
    /// token, or a policy denied the request.
    pub fn is_permission_denied(&self) -> bool {
        self.status() == Some(403)
    }

    /// True when the server answered 503: it is sealed, not initialised or
    /// otherwise unavailable.
    pub fn is_sealed(&self) -> bool {
        self.status() == Some(503)
    }

    /// True when the server answered at all (an [`Error::Api`]); false for
    /// transport, decoding, configuration and input errors.
    pub fn is_api(&self) -> bool {
        matches!(self, Error::Api { .. })
    }

    /// Builds an [`Error::Api`] from a status and the raw body of the
    /// answer. A body that is not Vault's error shape is kept, shortened,
    /// as the one message (a proxy's HTML page says more than nothing).
    pub(crate) fn from_response(status: u16, body: &[u8]) -> Error {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Error::Api {
                status,
                errors: Vec::new(),
            };
        }
        let errors = match serde_json::from_slice::<crate::wire::ErrorBody>(body) {
            Ok(parsed) => parsed.errors,
            Err(_) => vec![snippet(body)],
        };
        Error::Api { status, errors }
    }
}

/// `server answered 404 Not Found` or `server answered 400 Bad Request:
/// msg; msg`. Vault's multi-error text (`1 error occurred:\n\t* ...`) is
/// flattened so the message stays on one line.
fn api_message(status: u16, errors: &[String]) -> String {
    let mut out = format!("server answered {status}");
    if let Some(reason) = reason_phrase(status) {
        let _ = write!(out, " {reason}");
    }
    let messages: Vec<String> = errors
        .iter()
        .map(|e| one_line(e))
        .filter(|e| !e.is_empty())
        .collect();
    if !messages.is_empty() {
        let _ = write!(out, ": {}", messages.join("; "));
    }
    out
}

fn reason_phrase(status: u16) -> Option<&'static str> {
    Some(match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        412 => "Precondition Failed",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => return None,
    })
}

/// Collapses Vault's multierror layout into one line:
/// `"1 error occurred:\n\t* permission denied\n\n"` → `"permission denied"`.
fn one_line(message: &str) -> String {
    let lines: Vec<&str> = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let lines = match lines.split_first() {
        Some((first, rest)) if first.ends_with("occurred:") && !rest.is_empty() => rest,
        _ => &lines[..],
    };
    lines
        .iter()
        .map(|l| l.trim_start_matches("* "))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The start of a body that is not JSON, on one line.
fn snippet(body: &[u8]) -> String {
    const MAX: usize = 200;
    let text = String::from_utf8_lossy(body);
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > MAX {
        let cut: String = flat.chars().take(MAX).collect();
        format!("{cut}…")
    } else {
        flat
    }
}

/// An error and its causes, `a: b: c`, skipping causes whose text the
/// previous message already contains (reqwest repeats itself).
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            let _ = write!(out, ": {text}");
        }
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vault_error_bodies() {
        let err = Error::from_response(
            400,
            br#"{"errors":["check-and-set parameter did not match the current version"]}"#,
        );
        assert_eq!(err.status(), Some(400));
        assert_eq!(
            err.to_string(),
            "server answered 400 Bad Request: check-and-set parameter did not match the current version"
        );
        assert_eq!(err.errors().len(), 1);
    }

    #[test]
    fn a_bare_404_is_not_found_with_no_messages() {
        let err = Error::from_response(404, br#"{"errors":[]}"#);
        assert!(err.is_not_found());
        assert!(err.errors().is_empty());
        assert_eq!(err.to_string(), "server answered 404 Not Found");
        let empty = Error::from_response(404, b"");
        assert!(empty.is_not_found());
        assert!(empty.errors().is_empty());
    }

    #[test]
    fn multierror_text_is_flattened_to_one_line() {
        let err = Error::from_response(
            403,
            br#"{"errors":["1 error occurred:\n\t* permission denied\n\n"]}"#,
        );
        assert!(err.is_permission_denied());
        assert_eq!(
            err.to_string(),
            "server answered 403 Forbidden: permission denied"
        );
        let two = one_line("2 errors occurred:\n\t* a\n\t* b\n\n");
        assert_eq!(two, "a; b");
    }

    #[test]
    fn non_json_bodies_are_kept_short() {
        let html = format!("<html>\n<body>{}</body></html>", "x".repeat(500));
        let err = Error::from_response(502, html.as_bytes());
        assert_eq!(err.status(), Some(502));
        let msg = &err.errors()[0];
        assert!(msg.starts_with("<html> <body>xxx"));
        assert!(msg.chars().count() <= 201);
        assert!(
            err.to_string()
                .starts_with("server answered 502 Bad Gateway: <html>")
        );
    }

    #[test]
    fn sealed_and_unknown_statuses() {
        let err = Error::from_response(503, br#"{"errors":["Vault is sealed"]}"#);
        assert!(err.is_sealed());
        assert!(err.is_api());
        let odd = Error::from_response(418, br#"{"errors":["teapot"]}"#);
        assert_eq!(odd.to_string(), "server answered 418: teapot");
        let config = Error::Config("bad".into());
        assert_eq!(config.status(), None);
        assert!(!config.is_not_found());
        assert!(!config.is_api());
    }
}
