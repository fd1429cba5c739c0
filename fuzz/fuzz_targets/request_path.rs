//! The request line: `http::parse_target` (strip `/v1/`, percent-decode,
//! method and `?list=true` to an operation), `core::path::validate`, and
//! the query parameters, on any request target a client can send.
//!
//! Asserts: nothing panics; the operation is the one the method asks for;
//! an accepted path has no `.`/`..` or empty segment, no control
//! character, is not empty and not over the limit, and stays valid with
//! the `/` a LIST appends; `?list=` means the same to the operation as to
//! the request data (the first value wins, as in Vault).
#![no_main]

use http::{Method, Uri};
use libfuzzer_sys::fuzz_target;
use secretd::core::Operation;
use secretd::core::path::{MAX_PATH_LEN, validate};
use secretd::http::{Target, parse_query, parse_target, query_flag};

const METHODS: &[&str] = &[
    "GET", "PUT", "POST", "PATCH", "DELETE", "LIST", "HEAD", "OPTIONS", "get", "TRACE",
];

fn assert_clean(path: &str) {
    assert!(!path.is_empty());
    assert!(path.len() <= MAX_PATH_LEN, "{} bytes", path.len());
    assert!(!path.chars().any(char::is_control), "{path:?}");
    let body = path.strip_suffix('/').unwrap_or(path);
    for segment in body.split('/') {
        assert!(!matches!(segment, "" | "." | ".."), "{path:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, target)) = data.split_first() else {
        return;
    };
    let method = Method::from_bytes(METHODS[usize::from(selector) % METHODS.len()].as_bytes())
        .expect("a valid method");
    // Only what hyper would have parsed reaches the handler.
    let Ok(uri) = Uri::try_from(target) else {
        return;
    };
    let query = uri.query().unwrap_or("");

    let data = parse_query(query);
    let list_in_data = data
        .get("list")
        .and_then(|v| v.as_str())
        .is_some_and(|v| matches!(v, "true" | "1" | "t" | "T" | "True" | "TRUE"));
    assert_eq!(query_flag(query, "list"), list_in_data, "query {query:?}");

    let Ok(target) = parse_target(&method, uri.path(), query) else {
        return;
    };
    let (path, operation) = match target {
        Target::Lifecycle(path) => {
            assert!(path.starts_with("sys/"), "{path:?}");
            return;
        }
        Target::Api { path, operation } => (path, operation),
    };
    let expected = match method.as_str() {
        "GET" if list_in_data => Operation::List,
        "GET" => Operation::Read,
        "PUT" | "POST" => Operation::Write,
        "PATCH" => Operation::Patch,
        "DELETE" => Operation::Delete,
        "LIST" => Operation::List,
        other => panic!("{other} was accepted as {operation:?}"),
    };
    assert_eq!(operation, expected);

    if validate(&path).is_ok() {
        assert_clean(&path);
        if operation == Operation::List && !path.ends_with('/') {
            let listed = format!("{path}/");
            if listed.len() <= MAX_PATH_LEN {
                assert!(validate(&listed).is_ok(), "{listed:?}");
            }
        }
    }
});
