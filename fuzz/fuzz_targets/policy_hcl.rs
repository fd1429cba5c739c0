//! Policies: `policy::parse::parse` on any text (HCL, or JSON when it
//! starts with `{`), the ACL built from what it accepts, and the CLI's
//! `policy fmt` (`cli/src/policy_fmt.rs`, compiled in by path).
//!
//! Asserts: nothing panics; an accepted policy written back as a JSON
//! policy parses to the same rules; an exact rule's capabilities are what
//! the ACL answers on that path; `policy fmt` keeps the meaning (the server
//! parses its output to the same rules, or refuses both) and is idempotent.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use secretd::policy::parse::parse;
use secretd::policy::{Acl, Capabilities, PathRule, Policy};

#[path = "../../cli/src/policy_fmt.rs"]
mod policy_fmt;

/// Rules with the same pattern merged, as the ACL merges them.
fn merged(rules: &[PathRule]) -> BTreeMap<&str, Capabilities> {
    let mut map = BTreeMap::new();
    for rule in rules {
        let caps: &mut Capabilities = map.entry(rule.pattern.as_str()).or_default();
        *caps = caps.union(rule.capabilities);
    }
    map
}

/// The policy as a JSON policy document. The parser drops one leading
/// `/` of a pattern, so each pattern gets one.
fn to_json(policy: &Policy) -> String {
    let paths: serde_json::Map<String, serde_json::Value> = merged(&policy.rules)
        .into_iter()
        .map(|(pattern, caps)| {
            // `names` says "deny" for nothing, as `sys/capabilities` does.
            let names = if caps.is_empty() {
                vec![]
            } else {
                caps.names()
            };
            (
                format!("/{pattern}"),
                serde_json::json!({ "capabilities": names }),
            )
        })
        .collect();
    serde_json::json!({ "path": paths }).to_string()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = parse("fuzz", text);
    if let Ok(policy) = &parsed {
        let json = to_json(policy);
        let again = parse("fuzz", &json)
            .unwrap_or_else(|e| panic!("the JSON form {json:?} of an accepted policy fails: {e}"));
        let effective = |rules| -> BTreeMap<&str, Capabilities> {
            merged(rules)
                .into_iter()
                .map(|(p, c)| (p, c.effective()))
                .collect()
        };
        assert_eq!(
            effective(&policy.rules),
            effective(&again.rules),
            "JSON form {json:?}"
        );

        let acl = Acl::new([policy]);
        for (pattern, caps) in merged(&policy.rules) {
            let exact = PathRule::new(pattern, caps).is_exact();
            let got = acl.capabilities(pattern, false);
            if exact && !pattern.starts_with('/') {
                assert_eq!(got, caps.effective(), "exact rule {pattern:?}");
            }
            let _ = acl.capabilities(&format!("{pattern}/"), true);
            let _ = acl.has_access_under(pattern);
        }
    }

    // `policy fmt` parses with the same HCL parser, without the server's
    // nesting limit: a file that deep would only slow the user's own CLI.
    let too_deep = matches!(&parsed, Err(e) if e.0.contains("nests deeper"));
    if too_deep {
        return;
    }
    if let Ok(formatted) = policy_fmt::format_policy(text) {
        match (&parsed, parse("fuzz", &formatted)) {
            (Ok(before), Ok(after)) => assert_eq!(
                before.rules, after.rules,
                "policy fmt changed the meaning: {formatted:?}"
            ),
            (Err(_), Err(_)) => {}
            (before, after) => panic!(
                "policy fmt changed whether the server accepts the policy: \
                 {before:?} became {after:?} for {formatted:?}"
            ),
        }
        let twice = policy_fmt::format_policy(&formatted);
        assert_eq!(
            twice.as_ref(),
            Ok(&formatted),
            "policy fmt is not idempotent"
        );
    }
});
