//! Secret values and the JSON bodies that carry them.
//!
//! Values are deterministic pseudo-random alphanumeric strings: every run
//! writes the same bytes, and no two keys share a value (so nothing along the
//! way can get away with deduplicating or compressing them).

use serde::Serialize;

/// The field inside `data` that holds the value.
pub const VALUE_FIELD: &str = "value";

/// A `len`-byte alphanumeric string, determined by `seed`.
pub fn value(seed: u64, len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    // SplitMix64: tiny, fast, and good enough to make bytes look random.
    let mut state = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    (0..len)
        .map(|_| {
            let index = (next() % ALPHABET.len() as u64) as usize;
            char::from(ALPHABET[index])
        })
        .collect()
}

/// The body of a KV v2 write: `{"data":{"value":"..."}}`.
pub fn write_body(value: &str) -> Vec<u8> {
    serde_json::json!({ "data": { VALUE_FIELD: value } })
        .to_string()
        .into_bytes()
}

/// Vault's response envelope.
#[derive(Serialize)]
struct Envelope<'a, T> {
    request_id: &'a str,
    lease_id: &'a str,
    renewable: bool,
    lease_duration: u64,
    data: T,
    wrap_info: Option<()>,
    warnings: Option<()>,
    auth: Option<()>,
}

/// A KV v2 version's metadata as Vault shows it.
#[derive(Serialize)]
struct VersionMetadata<'a> {
    created_time: &'a str,
    custom_metadata: Option<()>,
    deletion_time: &'a str,
    destroyed: bool,
    version: u64,
}

#[derive(Serialize)]
struct ReadData<'a> {
    data: ValueData<'a>,
    metadata: VersionMetadata<'a>,
}

#[derive(Serialize)]
struct ValueData<'a> {
    value: &'a str,
}

const CREATED_TIME: &str = "2025-01-01T00:00:00.000000000Z";

/// What a KV v2 read of a secret holding `value` answers, in the same shape
/// (and so the same size) as secretd's and Vault's answer.
pub fn read_answer(request_id: &str, value: &str, version: u64) -> Vec<u8> {
    to_json(&Envelope {
        request_id,
        lease_id: "",
        renewable: false,
        lease_duration: 0,
        data: ReadData {
            data: ValueData { value },
            metadata: metadata(version),
        },
        wrap_info: None,
        warnings: None,
        auth: None,
    })
}

/// What a KV v2 write answers: the new version's metadata.
pub fn write_answer(request_id: &str, version: u64) -> Vec<u8> {
    to_json(&Envelope {
        request_id,
        lease_id: "",
        renewable: false,
        lease_duration: 0,
        data: metadata(version),
        wrap_info: None,
        warnings: None,
        auth: None,
    })
}

fn metadata(version: u64) -> VersionMetadata<'static> {
    VersionMetadata {
        created_time: CREATED_TIME,
        custom_metadata: None,
        deletion_time: "",
        destroyed: false,
        version,
    }
}

fn to_json(value: &impl Serialize) -> Vec<u8> {
    // Serialising these plain structs into a Vec cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_deterministic_distinct_and_sized() {
        assert_eq!(value(7, 1024), value(7, 1024));
        assert_ne!(value(7, 1024), value(8, 1024));
        assert_eq!(value(7, 1024).len(), 1024);
        assert!(value(1, 64).bytes().all(|b| b.is_ascii_alphanumeric()));
    }

    #[test]
    fn read_answer_is_a_kv_v2_read() {
        let body = read_answer("id", "v", 3);
        let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(parsed["data"]["data"]["value"], "v");
        assert_eq!(parsed["data"]["metadata"]["version"], 3);
        assert_eq!(parsed["lease_id"], "");
    }

    #[test]
    fn write_body_nests_the_value_under_data() {
        let parsed: serde_json::Value = serde_json::from_slice(&write_body("x")).unwrap();
        assert_eq!(parsed, serde_json::json!({"data": {"value": "x"}}));
    }
}
