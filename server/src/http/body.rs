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

/// What a JSON body may hold beyond its size (Vault's listener limits of
/// the same names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonLimits {
    /// Deepest nesting of objects and arrays (`max_json_depth`).
    pub max_depth: usize,
    /// Most entries in one object (`max_json_object_entry_count`).
    pub max_object_entries: usize,
    /// Most elements in one array (`max_json_array_element_count`).
    pub max_array_elements: usize,
}

impl Default for JsonLimits {
    fn default() -> Self {
        JsonLimits {
            max_depth: 64,
            max_object_entries: 10_000,
            max_array_elements: 10_000,
        }
    }
}

/// A JSON object body, as Vault parses it whatever the Content-Type. An
/// empty body is an empty object.
pub fn parse_json_object(body: &[u8], limits: JsonLimits) -> Result<Map<String, Value>, Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| Error::invalid(format!("failed to decode JSON input: {e}")))?;
    if let Some(broken) = exceeded_limit(&value, limits) {
        return Err(Error::invalid(format!(
            "failed to decode JSON input: {broken}"
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

/// The first limit `value` breaks, said as a client should read it
/// (checked without recursion).
fn exceeded_limit(value: &Value, limits: JsonLimits) -> Option<String> {
    let mut stack = vec![(value, 1usize)];
    while let Some((v, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match v {
            Value::Array(items) if items.len() > limits.max_array_elements => {
                return Some(format!(
                    "an array has {} elements, more than the {} allowed",
                    items.len(),
                    limits.max_array_elements
                ));
            }
            Value::Object(map) if map.len() > limits.max_object_entries => {
                return Some(format!(
                    "an object has {} keys, more than the {} allowed",
                    map.len(),
                    limits.max_object_entries
                ));
            }
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(map) => Box::new(map.values()),
            _ => continue,
        };
        if depth > limits.max_depth {
            return Some(format!("nesting deeper than {} levels", limits.max_depth));
        }
        stack.extend(children.map(|c| (c, depth + 1)));
    }
    None
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

    /// The default limits with this depth.
    fn depth(max_depth: usize) -> JsonLimits {
        JsonLimits {
            max_depth,
            ..JsonLimits::default()
        }
    }

    #[test]
    fn empty_body_is_an_empty_object() {
        assert!(parse_json_object(b"", depth(8)).unwrap().is_empty());
        assert!(parse_json_object(b"  \n", depth(8)).unwrap().is_empty());
        assert!(parse_json_object(b"null", depth(8)).unwrap().is_empty());
    }

    #[test]
    fn non_objects_and_garbage_are_refused() {
        for bad in [&b"[1,2]"[..], b"\"x\"", b"{\"data\":", b"nul", b"{}}"] {
            let err = parse_json_object(bad, depth(8)).unwrap_err();
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
        assert!(parse_json_object(deep.as_bytes(), depth(64)).is_err());
        let ok = format!(
            "{}{}",
            "{\"a\":".repeat(10),
            "1".to_owned() + &"}".repeat(10)
        );
        assert!(parse_json_object(ok.as_bytes(), depth(64)).is_ok());
        // Far deeper than serde_json's own recursion limit: still a clean error.
        let very_deep = "[".repeat(100_000);
        assert!(parse_json_object(very_deep.as_bytes(), depth(64)).is_err());
    }

    #[test]
    fn objects_and_arrays_are_counted() {
        let limits = JsonLimits {
            max_depth: 8,
            max_object_entries: 3,
            max_array_elements: 2,
        };
        assert!(parse_json_object(br#"{"a":1,"b":[1,2],"c":{"x":1,"y":2,"z":3}}"#, limits).is_ok());
        for (body, says) in [
            (
                &br#"{"a":1,"b":2,"c":3,"d":4}"#[..],
                "an object has 4 keys, more than the 3 allowed",
            ),
            (
                br#"{"data":{"a":1,"b":2,"c":3,"d":4}}"#,
                "an object has 4 keys",
            ),
            (
                br#"{"a":[1,2,3]}"#,
                "an array has 3 elements, more than the 2 allowed",
            ),
            (br#"{"a":[[],[{"k":[1,2,3]}]]}"#, "an array has 3 elements"),
        ] {
            let err = parse_json_object(body, limits).unwrap_err().to_string();
            assert!(err.contains(says), "{err}");
        }
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
            let _ = parse_json_object(&bytes, depth(16));
        }

        #[test]
        fn json_like_input_never_panics(s in "[\\[\\]{}\":,0-9a-z ]{0,200}") {
            let _ = parse_json_object(s.as_bytes(), depth(16));
        }
    }
}
