//! Request bodies: `http::parse_json_object` with a depth limit, the
//! lifecycle endpoints' typed bodies, and the lenient field readers
//! (`core::Fields`) the backends use on what it accepts.
//!
//! Input: one byte picks the depth limit (1 to 64, the default) and the
//! object and array limits (1 to 4), the rest is the body. Asserts:
//! nothing panics; an accepted body is exactly what serde_json reads (an
//! object; empty or `null` is the empty object), nests no deeper than the
//! limit and has no object or array larger than its limit; a duration read
//! is at most 100 years.
//! The size limit is enforced while reading (`http_body_util::Limited`),
//! before this parser runs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secretd::core::Fields;
use secretd::http::{JsonLimits, parse_json_object};
use secretd_client::duration::MAX_SECONDS;
use secretd_client::wire::{InitRequest, UnsealRequest};
use serde_json::{Map, Value};

fn depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// The most entries of any object and elements of any array in `value`.
fn widest(value: &Value) -> (usize, usize) {
    let wider = |(a, b): (usize, usize), (c, d): (usize, usize)| (a.max(c), b.max(d));
    match value {
        Value::Array(items) => items.iter().map(widest).fold((0, items.len()), wider),
        Value::Object(map) => map.values().map(widest).fold((map.len(), 0), wider),
        _ => (0, 0),
    }
}

/// Reads fields the way the backends do; `Fields` takes `'static` names.
fn read_fields(map: &Map<String, Value>) {
    let mut fields = Fields::new(map);
    for name in ["ttl", "max_ttl", "period", "delete_version_after"] {
        if let Ok(Some(secs)) = fields.duration(name) {
            assert!(secs <= MAX_SECONDS, "{name} = {secs}");
        }
    }
    let _ = fields.u64("cas");
    let _ = fields.u32("max_versions");
    let _ = fields.bool("cas_required");
    let _ = fields.string("type");
    let _ = fields.string_list("policies");
    let _ = fields.u64_list("versions");
    let _ = fields.string_map("metadata");
    let _ = fields.object("data");
    let _ = fields.raw("options");
    let _ = fields.unrecognized_warning();
    let _ = fields.refuse_unrecognized();
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let max_depth = 1 + usize::from(selector) % 64;
    let limits = JsonLimits {
        max_depth,
        max_object_entries: 1 + usize::from(selector >> 6),
        max_array_elements: 1 + usize::from(selector >> 6),
    };
    let Ok(map) = parse_json_object(body, limits) else {
        return;
    };
    let object = Value::Object(map);
    assert!(
        depth(&object) <= max_depth.max(1),
        "deeper than {max_depth}"
    );
    let (entries, elements) = widest(&object);
    assert!(entries <= limits.max_object_entries && elements <= limits.max_array_elements);
    if body.iter().all(u8::is_ascii_whitespace) {
        assert_eq!(object, Value::Object(Map::new()));
    } else {
        match serde_json::from_slice::<Value>(body).expect("accepted, so valid JSON") {
            Value::Null => assert_eq!(object, Value::Object(Map::new())),
            direct => assert_eq!(object, direct),
        }
    }
    let Value::Object(map) = object else {
        unreachable!()
    };
    read_fields(&map);
    let _ = serde_json::from_value::<UnsealRequest>(Value::Object(map.clone()));
    let _ = serde_json::from_value::<InitRequest>(Value::Object(map));
});
