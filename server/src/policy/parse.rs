//! Vault's policy language: HCL (or its JSON form) to [`Policy`].
//!
//! ```hcl
//! path "secret/data/app/*" { capabilities = ["read", "list"] }
//! path "secret/+/teamb"    { capabilities = ["read"] }
//! path "secret/data/admin" { capabilities = ["deny"] }
//! path "sys/old"           { policy = "write" }   # the legacy form
//! ```
//!
//! Anything secretd does not enforce (`allowed_parameters`,
//! `denied_parameters`, `required_parameters`, wrapping TTLs, control
//! groups, identity templates) is refused rather than ignored: ignoring a
//! restriction would grant more than the policy's author meant.

use hcl::{Body, Expression, Structure};
use serde_json::Value;

use super::{Capabilities, PathRule, Policy};

/// Why a policy document was refused; the message is for its author.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to parse policy: {0}")]
pub struct ParseError(pub String);

type Result<T> = std::result::Result<T, ParseError>;

fn fail<T>(message: impl Into<String>) -> Result<T> {
    Err(ParseError(message.into()))
}

/// Parses a policy document in HCL or JSON.
pub fn parse(name: &str, text: &str) -> Result<Policy> {
    let rules = if text.trim_start().starts_with('{') {
        parse_json(text)?
    } else {
        parse_hcl(text)?
    };
    Ok(Policy {
        name: name.to_owned(),
        rules,
    })
}

/// The deepest nesting of `{`, `[` and `(` an HCL policy may have. A
/// policy needs 2 (`path "a" { capabilities = [...] }`); the HCL parser
/// backtracks exponentially on deep, broken nesting (a 443-byte document
/// took 20 s), so deeper text is refused before it is parsed.
const MAX_HCL_NESTING: usize = 10;

/// Refuses text whose brackets nest deeper than [`MAX_HCL_NESTING`],
/// not counting brackets in strings and comments.
fn check_nesting(text: &str) -> Result<()> {
    let mut depth = 0usize;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' | '\n' => break,
                        _ => {}
                    }
                }
            }
            '#' => {
                chars.find(|&c| c == '\n');
            }
            '/' if chars.peek() == Some(&'/') => {
                chars.find(|&c| c == '\n');
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut star = false;
                for c in chars.by_ref() {
                    if star && c == '/' {
                        break;
                    }
                    star = c == '*';
                }
            }
            '{' | '[' | '(' => {
                depth += 1;
                if depth > MAX_HCL_NESTING {
                    return fail(format!(
                        "the policy nests deeper than {MAX_HCL_NESTING} levels"
                    ));
                }
            }
            '}' | ']' | ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

fn parse_hcl(text: &str) -> Result<Vec<PathRule>> {
    check_nesting(text)?;
    let body: Body = hcl::parse(text).map_err(|e| ParseError(e.to_string()))?;
    let mut rules = Vec::new();
    for structure in body.into_inner() {
        match structure {
            // A top-level `name = "..."` is allowed and has no effect.
            Structure::Attribute(attr) if attr.key.as_str() == "name" => {}
            Structure::Attribute(attr) => {
                return fail(format!(
                    "unknown key {:?} at the top level",
                    attr.key.as_str()
                ));
            }
            Structure::Block(block) if block.identifier.as_str() == "path" => {
                let [label] = block.labels.as_slice() else {
                    return fail("a path block needs exactly one label: path \"secret/*\" { ... }");
                };
                let pattern = label.as_str().to_owned();
                let mut capabilities = None;
                for item in block.body.into_inner() {
                    let Structure::Attribute(attr) = item else {
                        return fail(format!("path {pattern:?}: nested blocks are not allowed"));
                    };
                    let key = attr.key.as_str().to_owned();
                    let values = hcl_strings(&pattern, &key, &attr.expr)?;
                    let caps = path_attribute(&pattern, &key, &values)?;
                    capabilities = Some(capabilities.unwrap_or(Capabilities::NONE).union(caps));
                }
                rules.push(path_rule(&pattern, capabilities)?);
            }
            Structure::Block(block) => {
                return fail(format!("unknown block {:?}", block.identifier.as_str()));
            }
        }
    }
    Ok(rules)
}

/// The string values of an attribute: one string or a list of them.
fn hcl_strings(pattern: &str, key: &str, expr: &Expression) -> Result<Vec<String>> {
    match expr {
        Expression::String(s) => Ok(vec![s.clone()]),
        Expression::Array(items) => items
            .iter()
            .map(|item| match item {
                Expression::String(s) => Ok(s.clone()),
                _ => fail(format!("path {pattern:?}: {key} must be a list of strings")),
            })
            .collect(),
        // `capabilities = read` (a variable), `= !["read"]`, `= 5`: refused,
        // never read as granting nothing. (`policy` needs one string, and
        // `path_attribute` says so.)
        _ if key == "capabilities" => {
            fail(format!("path {pattern:?}: {key} must be a list of strings"))
        }
        // Values of keys we refuse anyway (objects, numbers): let the key's
        // own check say why.
        _ => Ok(Vec::new()),
    }
}

fn parse_json(text: &str) -> Result<Vec<PathRule>> {
    let doc: Value = serde_json::from_str(text).map_err(|e| ParseError(e.to_string()))?;
    let Value::Object(top) = doc else {
        return fail("a JSON policy must be an object");
    };
    let mut rules = Vec::new();
    for (key, value) in top {
        match key.as_str() {
            "name" => {}
            "path" => {
                let Value::Object(paths) = value else {
                    return fail("\"path\" must be an object of paths");
                };
                for (pattern, body) in paths {
                    let Value::Object(attrs) = body else {
                        return fail(format!("path {pattern:?} must be an object"));
                    };
                    let mut capabilities = None;
                    for (attr, value) in attrs {
                        let values = match value {
                            Value::String(s) => vec![s],
                            Value::Array(items) => items
                                .into_iter()
                                .map(|v| match v {
                                    Value::String(s) => Ok(s),
                                    _ => fail(format!(
                                        "path {pattern:?}: {attr} must be a list of strings"
                                    )),
                                })
                                .collect::<Result<_>>()?,
                            _ if attr == "capabilities" => {
                                return fail(format!(
                                    "path {pattern:?}: {attr} must be a list of strings"
                                ));
                            }
                            _ => Vec::new(),
                        };
                        let caps = path_attribute(&pattern, &attr, &values)?;
                        capabilities = Some(capabilities.unwrap_or(Capabilities::NONE).union(caps));
                    }
                    rules.push(path_rule(&pattern, capabilities)?);
                }
            }
            other => return fail(format!("unknown key {other:?} at the top level")),
        }
    }
    Ok(rules)
}

/// The capabilities one attribute of a path block grants.
fn path_attribute(pattern: &str, key: &str, values: &[String]) -> Result<Capabilities> {
    match key {
        "capabilities" => values.iter().try_fold(Capabilities::NONE, |acc, name| {
            Capabilities::from_name(name)
                .map(|c| acc.union(c))
                .ok_or_else(|| ParseError(format!("path {pattern:?}: unknown capability {name:?}")))
        }),
        "policy" => match values {
            [legacy] => Capabilities::from_legacy_policy(legacy)
                .ok_or_else(|| ParseError(format!("path {pattern:?}: unknown policy {legacy:?}"))),
            _ => fail(format!("path {pattern:?}: policy must be one string")),
        },
        "allowed_parameters"
        | "denied_parameters"
        | "required_parameters"
        | "min_wrapping_ttl"
        | "max_wrapping_ttl"
        | "control_group"
        | "mfa_methods" => fail(format!(
            "path {pattern:?}: {key} is not supported by secretd; a policy that uses it is refused \
             rather than enforced partly"
        )),
        other => fail(format!("path {pattern:?}: unknown key {other:?}")),
    }
}

/// Checks a path pattern and makes its rule.
fn path_rule(pattern: &str, capabilities: Option<Capabilities>) -> Result<PathRule> {
    // Vault ignores a leading slash.
    let pattern = pattern.strip_prefix('/').unwrap_or(pattern);
    let Some(capabilities) = capabilities else {
        return fail(format!("path {pattern:?} grants no capabilities"));
    };
    let body = pattern.strip_suffix('*').unwrap_or(pattern);
    if body.contains('*') {
        return fail(format!("path {pattern:?}: a * is allowed only at the end"));
    }
    if pattern.contains("{{") {
        return fail(format!(
            "path {pattern:?}: templated policies are not supported by secretd"
        ));
    }
    if pattern.chars().any(char::is_control) {
        return fail(format!("path {pattern:?} contains a control character"));
    }
    Ok(PathRule::new(pattern, capabilities))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn caps(policy: &Policy, pattern: &str) -> Capabilities {
        policy
            .rules
            .iter()
            .find(|r| r.pattern == pattern)
            .map(|r| r.capabilities)
            .unwrap_or(Capabilities::NONE)
    }

    #[test]
    fn parses_capabilities_and_merges_repeated_paths() {
        let p = parse(
            "p",
            r#"
            # comment
            name = "ignored"
            path "secret/data/app/*" { capabilities = ["read", "list"] }
            path "/sys/mounts" { capabilities = ["read"] }
            path "secret/+/teamb" { capabilities = ["read"] }
            "#,
        )
        .unwrap();
        assert_eq!(p.rules.len(), 3);
        assert_eq!(
            caps(&p, "secret/data/app/*"),
            Capabilities::READ.union(Capabilities::LIST)
        );
        assert_eq!(
            caps(&p, "sys/mounts"),
            Capabilities::READ,
            "the leading slash goes"
        );
    }

    #[test]
    fn legacy_policy_keywords_map_to_capabilities() {
        let p = parse(
            "p",
            "path \"a\" { policy = \"write\" }\npath \"b\" { policy = \"deny\" }",
        )
        .unwrap();
        let write = caps(&p, "a");
        for c in [
            Capabilities::CREATE,
            Capabilities::READ,
            Capabilities::UPDATE,
            Capabilities::DELETE,
            Capabilities::LIST,
        ] {
            assert!(write.contains(c));
        }
        assert!(!write.contains(Capabilities::SUDO));
        assert!(caps(&p, "b").contains(Capabilities::DENY));
    }

    #[test]
    fn json_policies_parse_too() {
        let p = parse("p", r#"{"path": {"secret/*": {"capabilities": ["read"]}}}"#).unwrap();
        assert_eq!(caps(&p, "secret/*"), Capabilities::READ);
    }

    #[test]
    fn restrictions_we_do_not_enforce_are_refused() {
        for text in [
            "path \"a\" {\n capabilities = [\"read\"]\n allowed_parameters = { \"x\" = [] }\n}",
            "path \"a\" {\n capabilities = [\"update\"]\n denied_parameters = { \"y\" = [] }\n}",
            "path \"a\" {\n capabilities = [\"read\"]\n min_wrapping_ttl = \"1m\"\n}",
            r#"path "identity/{{identity.entity.id}}" { capabilities = ["read"] }"#,
        ] {
            let err = parse("p", text).unwrap_err();
            assert!(err.0.contains("not supported"), "{text}: {err}");
        }
    }

    #[test]
    fn mistakes_are_named() {
        for (text, needle) in [
            (r#"path "a" { capabilities = ["reed"] }"#, "reed"),
            (r#"path "a" { capabilites = ["read"] }"#, "capabilites"),
            (
                r#"path "a*b" { capabilities = ["read"] }"#,
                "only at the end",
            ),
            (r#"path "a" { }"#, "no capabilities"),
            (r#"paths "a" { capabilities = ["read"] }"#, "paths"),
            (r#"path { capabilities = ["read"] }"#, "one label"),
            (r#"path "a" { capabilities = ["read"]"#, ""),
            (r#"path "a" { policy = "admin" }"#, "admin"),
        ] {
            let err = parse("p", text).unwrap_err();
            assert!(err.0.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn capabilities_that_are_not_strings_are_refused_not_empty() {
        // Found by fuzz/policy_hcl: these parsed as a rule granting nothing.
        for text in [
            r#"path "a" { capabilities = !["read"] }"#,
            r#"path "a" { capabilities = read }"#,
            r#"path "a" { capabilities = 5 }"#,
            r#"path "a" { capabilities = { read = true } }"#,
            r#"{"path": {"a": {"capabilities": 5}}}"#,
            r#"{"path": {"a": {"capabilities": {"read": true}}}}"#,
        ] {
            let err = parse("p", text).unwrap_err();
            assert!(err.0.contains("must be a list of strings"), "{text}: {err}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_before_the_hcl_parser_sees_it() {
        // Found by fuzz/policy_hcl: broken nesting 31 deep took the HCL
        // parser 20 s; each level more about 1.4 times as long.
        let deep = format!("others = {}", "{ \"x\" + atp - ".repeat(40));
        let started = std::time::Instant::now();
        let err = parse("p", &deep).unwrap_err();
        assert!(err.0.contains("nests deeper"), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        // Brackets in strings and comments do not count.
        let ok = format!(
            "# {}\n/* {} */\npath \"a{}\" {{ capabilities = [\"read\"] }}",
            "{".repeat(20),
            "[".repeat(20),
            "(\\\"".repeat(20)
        );
        assert!(parse("p", &ok).is_ok(), "{ok}");
    }

    proptest! {
        #[test]
        fn never_panics_on_any_text(text in "\\PC{0,200}") {
            let _ = parse("p", &text);
        }

        #[test]
        fn never_panics_on_policy_like_text(text in r#"(path|"|\{|\}|\[|\]|=|,|capabilities|policy|read|deny|\*|\+|/|a| |\n){0,60}"#) {
            let _ = parse("p", &text);
        }
    }
}
