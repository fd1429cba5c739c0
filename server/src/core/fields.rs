//! Reading request parameters the way Vault's framework does.
//!
//! Vault is lenient about types: a number may come as `5` or `"5"`, a bool
//! as `true` or `"true"`, a duration as seconds or `"1h"`, a list as an
//! array or a comma-separated string. Each getter names the field in its
//! error, and every field that was never asked for becomes Vault's
//! "Endpoint ignored these unrecognized parameters" warning.

use std::collections::{BTreeMap, BTreeSet};

use secretd_client::duration::parse_duration;
use serde_json::{Map, Value};

use super::Error;

pub struct Fields<'a> {
    data: &'a Map<String, Value>,
    seen: BTreeSet<&'static str>,
}

type Result<T> = std::result::Result<T, Error>;

/// The largest integer a request may carry: storage keeps signed 64-bit
/// numbers, and nothing real comes near this.
const MAX_INTEGER: u64 = i64::MAX as u64;

/// The most entries a list parameter may have.
pub const MAX_LIST_LEN: usize = 1000;

fn bounded(n: u64, name: &str) -> Result<u64> {
    if n > MAX_INTEGER {
        Err(Error::invalid(format!("{name} is too large")))
    } else {
        Ok(n)
    }
}

impl<'a> Fields<'a> {
    pub fn new(data: &'a Map<String, Value>) -> Self {
        Fields {
            data,
            seen: BTreeSet::new(),
        }
    }

    fn get(&mut self, name: &'static str) -> Option<&'a Value> {
        self.seen.insert(name);
        match self.data.get(name) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    /// The raw value, for fields with a shape of their own.
    pub fn raw(&mut self, name: &'static str) -> Option<&'a Value> {
        self.get(name)
    }

    pub fn u64(&mut self, name: &'static str) -> Result<Option<u64>> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        let parsed = match v {
            Value::Number(n) => n.as_u64(),
            Value::String(s) if s.is_empty() => return Ok(None),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        };
        let n = parsed
            .ok_or_else(|| Error::invalid(format!("{name} must be a non-negative integer")))?;
        bounded(n, name).map(Some)
    }

    pub fn u32(&mut self, name: &'static str) -> Result<Option<u32>> {
        match self.u64(name)? {
            None => Ok(None),
            Some(n) => u32::try_from(n)
                .map(Some)
                .map_err(|_| Error::invalid(format!("{name} is too large"))),
        }
    }

    pub fn bool(&mut self, name: &'static str) -> Result<Option<bool>> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        match v {
            Value::Bool(b) => Ok(Some(*b)),
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "" => Ok(None),
                "true" | "1" | "t" => Ok(Some(true)),
                "false" | "0" | "f" => Ok(Some(false)),
                _ => Err(Error::invalid(format!("{name} must be a boolean"))),
            },
            Value::Number(n) if n.as_u64() == Some(1) => Ok(Some(true)),
            Value::Number(n) if n.as_u64() == Some(0) => Ok(Some(false)),
            _ => Err(Error::invalid(format!("{name} must be a boolean"))),
        }
    }

    /// A duration in whole seconds.
    pub fn duration(&mut self, name: &'static str) -> Result<Option<u64>> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        match v {
            Value::Number(n) => match n.as_u64() {
                Some(secs) if secs <= secretd_client::duration::MAX_SECONDS => Ok(Some(secs)),
                Some(_) => Err(Error::invalid(format!("{name} is longer than 100 years"))),
                None => Err(Error::invalid(format!("{name} must not be negative"))),
            },
            Value::String(s) if s.is_empty() => Ok(None),
            Value::String(s) => parse_duration(s)
                .map(Some)
                .map_err(|e| Error::invalid(format!("{name}: {e}"))),
            _ => Err(Error::invalid(format!("{name} must be a duration"))),
        }
    }

    pub fn string(&mut self, name: &'static str) -> Result<Option<String>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(_) => Err(Error::invalid(format!("{name} must be a string"))),
        }
    }

    /// A list of strings from an array or a comma-separated string.
    pub fn string_list(&mut self, name: &'static str) -> Result<Option<Vec<String>>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(
                s.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
            )),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s.clone()),
                    Value::Number(n) => Ok(n.to_string()),
                    _ => Err(Error::invalid(format!("{name} must be a list of strings"))),
                })
                .collect::<Result<_>>()
                .map(Some),
            Some(_) => Err(Error::invalid(format!("{name} must be a list of strings"))),
        }
    }

    /// A list of version numbers from an array or a comma-separated string:
    /// sorted, without repeats, at most [`MAX_LIST_LEN`] of them.
    pub fn u64_list(&mut self, name: &'static str) -> Result<Option<Vec<u64>>> {
        let Some(mut list) = self.raw_u64_list(name)? else {
            return Ok(None);
        };
        list.sort_unstable();
        list.dedup();
        if list.len() > MAX_LIST_LEN {
            return Err(Error::invalid(format!(
                "{name} has {} entries; the limit is {MAX_LIST_LEN}",
                list.len()
            )));
        }
        list.iter()
            .try_for_each(|&n| bounded(n, name).map(|_| ()))?;
        Ok(Some(list))
    }

    fn raw_u64_list(&mut self, name: &'static str) -> Result<Option<Vec<u64>>> {
        let bad = || Error::invalid(format!("{name} must be a list of non-negative integers"));
        match self.get(name) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Value::Number(n) => n.as_u64().ok_or_else(bad),
                    Value::String(s) => s.trim().parse().map_err(|_| bad()),
                    _ => Err(bad()),
                })
                .collect::<Result<_>>()
                .map(Some),
            Some(Value::String(s)) => s
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| s.parse().map_err(|_| bad()))
                .collect::<Result<_>>()
                .map(Some),
            Some(Value::Number(n)) => n.as_u64().map(|v| Some(vec![v])).ok_or_else(bad),
            Some(_) => Err(bad()),
        }
    }

    /// A map of strings to strings.
    pub fn string_map(&mut self, name: &'static str) -> Result<Option<BTreeMap<String, String>>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    _ => Err(Error::invalid(format!(
                        "{name} must map strings to strings; {k:?} is not a string"
                    ))),
                })
                .collect::<Result<_>>()
                .map(Some),
            Some(_) => Err(Error::invalid(format!("{name} must be an object"))),
        }
    }

    /// A JSON object.
    pub fn object(&mut self, name: &'static str) -> Result<Option<&'a Map<String, Value>>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(map)),
            Some(_) => Err(Error::invalid(format!("{name} must be an object"))),
        }
    }

    /// Vault's warning for parameters no getter asked for, if any.
    pub fn unrecognized_warning(&self) -> Option<String> {
        let unknown = self.unrecognized();
        (!unknown.is_empty()).then(|| {
            format!(
                "Endpoint ignored these unrecognized parameters: [{}]",
                unknown.join(" ")
            )
        })
    }

    /// Refuses parameters no getter asked for (400): for configuration
    /// where a misspelt security setting must not be silently ignored.
    pub fn refuse_unrecognized(&self) -> Result<()> {
        let unknown = self.unrecognized();
        if unknown.is_empty() {
            return Ok(());
        }
        Err(Error::invalid(format!(
            "unknown parameters: [{}]",
            unknown.join(" ")
        )))
    }

    fn unrecognized(&self) -> Vec<&str> {
        self.data
            .keys()
            .map(String::as_str)
            .filter(|k| !self.seen.contains(k))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn numbers_and_bools_are_lenient() {
        let data = map(json!({"a": 5, "b": "7", "c": "true", "d": false, "e": ""}));
        let mut f = Fields::new(&data);
        assert_eq!(f.u64("a").unwrap(), Some(5));
        assert_eq!(f.u64("b").unwrap(), Some(7));
        assert_eq!(f.bool("c").unwrap(), Some(true));
        assert_eq!(f.bool("d").unwrap(), Some(false));
        assert_eq!(f.u64("e").unwrap(), None);
        assert_eq!(f.u64("missing").unwrap(), None);
    }

    #[test]
    fn bad_types_name_the_field() {
        let data = map(json!({"max_versions": -1, "cas": "x", "flag": "maybe"}));
        let mut f = Fields::new(&data);
        assert!(
            f.u64("max_versions")
                .unwrap_err()
                .to_string()
                .contains("max_versions")
        );
        assert!(f.u64("cas").unwrap_err().to_string().contains("cas"));
        assert!(f.bool("flag").unwrap_err().to_string().contains("flag"));
    }

    #[test]
    fn numbers_beyond_storage_range_are_refused() {
        let data = map(
            json!({"a": u64::MAX, "b": "9223372036854775808", "d": 9_000_000_000_000u64, "v": [1, u64::MAX]}),
        );
        let mut f = Fields::new(&data);
        assert!(f.u64("a").unwrap_err().to_string().contains("too large"));
        assert!(f.u64("b").is_err());
        assert!(f.duration("d").is_err());
        assert!(f.u64_list("v").is_err());
    }

    #[test]
    fn version_lists_are_deduplicated_and_bounded() {
        let data = map(json!({"v": [3, 1, 3, 2, 1], "many": "1,".repeat(5000) + "2"}));
        let mut f = Fields::new(&data);
        assert_eq!(f.u64_list("v").unwrap(), Some(vec![1, 2, 3]));
        assert_eq!(
            f.u64_list("many").unwrap(),
            Some(vec![1, 2]),
            "repeats do not count"
        );
        let long = (0..=MAX_LIST_LEN as u64)
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let data = map(json!({ "v": long }));
        assert!(
            Fields::new(&data)
                .u64_list("v")
                .unwrap_err()
                .to_string()
                .contains("limit")
        );
    }

    #[test]
    fn durations_take_seconds_or_go_strings() {
        let data = map(json!({"a": 30, "b": "1h30m", "c": "soon"}));
        let mut f = Fields::new(&data);
        assert_eq!(f.duration("a").unwrap(), Some(30));
        assert_eq!(f.duration("b").unwrap(), Some(5400));
        assert!(f.duration("c").is_err());
    }

    #[test]
    fn lists_take_arrays_or_csv() {
        let data = map(json!({"a": [1, "2"], "b": "3, 4", "c": ["x", "y"], "d": "x,y"}));
        let mut f = Fields::new(&data);
        assert_eq!(f.u64_list("a").unwrap(), Some(vec![1, 2]));
        assert_eq!(f.u64_list("b").unwrap(), Some(vec![3, 4]));
        assert_eq!(
            f.string_list("c").unwrap(),
            Some(vec!["x".into(), "y".into()])
        );
        assert_eq!(
            f.string_list("d").unwrap(),
            Some(vec!["x".into(), "y".into()])
        );
    }

    #[test]
    fn unrecognized_parameters_are_reported() {
        let data = map(json!({"data": {}, "foo": 1, "bar": 2}));
        let mut f = Fields::new(&data);
        let _ = f.object("data");
        assert_eq!(
            f.unrecognized_warning().as_deref(),
            Some("Endpoint ignored these unrecognized parameters: [bar foo]")
        );
    }
}
