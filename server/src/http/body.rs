//! Request bodies and query strings, with limits.

use axum::body::{Body, Bytes};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::{Map, Value};

use crate::core::Error;

/// How long a client may take to send its body.
pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Reads the whole body, refusing more than `limit` bytes (413) or a body
/// that takes longer than [`BODY_TIMEOUT`] to arrive (408).
pub async fn read(body: Body, limit: usize) -> Result<Bytes, Error> {
    let collected = tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, limit).collect())
        .await
        .map_err(|_| Error::RequestTimeout(BODY_TIMEOUT.as_secs()))?;
    match collected {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.downcast_ref::<LengthLimitError>().is_some() => Err(Error::TooLarge(limit)),
        Err(_) => Err(Error::invalid("failed to read the request body")),
    }
}

/// A JSON object body, as Vault parses it whatever the Content-Type. An
/// empty body is an empty object.
pub fn parse_json_object(body: &[u8], max_depth: usize) -> Result<Map<String, Value>, Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| Error::invalid(format!("failed to decode JSON input: {e}")))?;
    if depth_exceeds(&value, max_depth) {
        return Err(Error::invalid(format!(
            "failed to decode JSON input: nesting deeper than {max_depth} levels"
        )));
    }
    match value {
        Value::Object(map) => Ok(map),
        // `vault write -f` sends a literal null: Vault reads it as no data.
        Value::Null => Ok(Map::new()),
        _ => Err(Error::invalid(
            "failed to decode JSON input: the body must be a JSON object",
        )),
    }
}

/// Whether `value` nests deeper than `max` (checked without recursion).
fn depth_exceeds(value: &Value, max: usize) -> bool {
    let mut stack = vec![(value, 1usize)];
    while let Some((v, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match v {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(map) => Box::new(map.values()),
            _ => continue,
        };
        if depth > max {
            return true;
        }
        stack.extend(children.map(|c| (c, depth + 1)));
    }
    false
}

/// Query parameters as request data (Vault passes them to GET, DELETE and
/// LIST handlers). The first value of a repeated key wins.
pub fn parse_query(query: &str) -> Map<String, Value> {
    let mut map = Map::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        map.entry(k.into_owned())
            .or_insert(Value::String(v.into_owned()));
    }
    map
}

/// Whether a boolean query parameter is set to true: its first value, read
/// as Go's `strconv.ParseBool` (as Vault reads `?list=`), so the flag and
/// the request data ([`parse_query`]) agree.
pub fn query_flag(query: &str, name: &str) -> bool {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .is_some_and(|(_, v)| matches!(v.as_ref(), "true" | "1" | "t" | "T" | "True" | "TRUE"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn empty_body_is_an_empty_object() {
        assert!(parse_json_object(b"", 8).unwrap().is_empty());
        assert!(parse_json_object(b"  \n", 8).unwrap().is_empty());
        assert!(parse_json_object(b"null", 8).unwrap().is_empty());
    }

    #[test]
    fn non_objects_and_garbage_are_refused() {
        for bad in [&b"[1,2]"[..], b"\"x\"", b"{\"data\":", b"nul", b"{}}"] {
            let err = parse_json_object(bad, 8).unwrap_err();
            assert!(matches!(err, Error::InvalidRequest(_)), "{bad:?}");
        }
    }

    #[test]
    fn deep_nesting_is_refused() {
        let deep = format!(
            "{}{}",
            "{\"a\":".repeat(70),
            "1".to_owned() + &"}".repeat(70)
        );
        assert!(parse_json_object(deep.as_bytes(), 64).is_err());
        let ok = format!(
            "{}{}",
            "{\"a\":".repeat(10),
            "1".to_owned() + &"}".repeat(10)
        );
        assert!(parse_json_object(ok.as_bytes(), 64).is_ok());
        // Far deeper than serde_json's own recursion limit: still a clean error.
        let very_deep = "[".repeat(100_000);
        assert!(parse_json_object(very_deep.as_bytes(), 64).is_err());
    }

    #[test]
    fn query_parameters_become_data() {
        let map = parse_query("version=2&list=true&x=%2Fa");
        assert_eq!(map["version"], "2");
        assert_eq!(map["x"], "/a");
        assert!(query_flag("list=true", "list"));
        assert!(!query_flag("list=false", "list"));
    }

    #[test]
    fn the_first_list_value_decides_as_go_parses_booleans() {
        // Found by fuzz/request_path: `T` was not true, and a later
        // `list=true` overrode the `list=false` the request data kept.
        assert!(query_flag("list=T", "list"));
        assert!(!query_flag("list=false&list=true", "list"));
        assert_eq!(parse_query("list=false&list=true")["list"], "false");
        assert!(query_flag("x=1&list=t&list=0", "list"));
    }

    proptest! {
        #[test]
        fn json_parsing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_json_object(&bytes, 16);
        }

        #[test]
        fn json_like_input_never_panics(s in "[\\[\\]{}\":,0-9a-z ]{0,200}") {
            let _ = parse_json_object(s.as_bytes(), 16);
        }
    }
}
