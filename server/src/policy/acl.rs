//! The merged policies of one token, and what they allow.

use std::collections::HashMap;

use super::{Capabilities, PathRule, Policy, ROOT_POLICY};

/// The capabilities a set of policies grants, path by path.
#[derive(Debug, Clone, Default)]
pub struct Acl {
    root: bool,
    exact: HashMap<String, Capabilities>,
    /// Rules with `*` or `+`, highest priority first.
    globs: Vec<PathRule>,
}

impl Acl {
    /// Merges policies: the same pattern in several policies unions its
    /// capabilities (a `deny` among them wins when the path is checked).
    pub fn new<'a>(policies: impl IntoIterator<Item = &'a Policy>) -> Acl {
        let mut merged: HashMap<String, Capabilities> = HashMap::new();
        let mut root = false;
        for policy in policies {
            root |= policy.name == ROOT_POLICY;
            for rule in &policy.rules {
                let entry = merged.entry(rule.pattern.clone()).or_default();
                *entry = entry.union(rule.capabilities);
            }
        }
        let mut exact = HashMap::new();
        let mut globs = Vec::new();
        for (pattern, capabilities) in merged {
            let rule = PathRule::new(&pattern, capabilities);
            if rule.is_exact() {
                exact.insert(pattern, capabilities);
            } else {
                globs.push(rule);
            }
        }
        globs.sort_by(|a, b| b.priority_key().cmp(&a.priority_key()));
        Acl { root, exact, globs }
    }

    /// The ACL of the root policy: everything, everywhere.
    pub fn root() -> Acl {
        Acl {
            root: true,
            ..Acl::default()
        }
    }

    pub fn is_root(&self) -> bool {
        self.root
    }

    /// The capabilities on `path`. For a LIST, Vault also tries the path
    /// without its trailing slash: first among exact rules, then globs.
    pub fn capabilities(&self, path: &str, list: bool) -> Capabilities {
        if self.root {
            return Capabilities::ALL;
        }
        let trimmed = list.then(|| path.strip_suffix('/')).flatten();
        let exact = self
            .exact
            .get(path)
            .or_else(|| trimmed.and_then(|t| self.exact.get(t)));
        if let Some(caps) = exact {
            return caps.effective();
        }
        let glob = self
            .best_glob(path)
            .or_else(|| trimmed.and_then(|t| self.best_glob(t)));
        glob.map_or(Capabilities::NONE, Capabilities::effective)
    }

    fn best_glob(&self, path: &str) -> Option<Capabilities> {
        self.globs
            .iter()
            .find(|rule| rule.matches(path))
            .map(|rule| rule.capabilities)
    }

    /// Whether any rule grants something on some path under `prefix` (a
    /// mount), which is what `sys/internal/ui/mounts` asks.
    pub fn has_access_under(&self, prefix: &str) -> bool {
        if self.root {
            return true;
        }
        let grants = |caps: Capabilities| {
            let caps = caps.effective();
            !caps.is_empty() && caps != Capabilities::DENY
        };
        self.exact
            .iter()
            .any(|(path, caps)| path.starts_with(prefix) && grants(*caps))
            || self
                .globs
                .iter()
                .any(|rule| grants(rule.capabilities) && rule_reaches(rule, prefix))
    }
}

/// Whether a glob can match some path that starts with `prefix`.
fn rule_reaches(rule: &PathRule, prefix: &str) -> bool {
    let body = rule.body();
    let (pattern, path): (Vec<&str>, Vec<&str>) = (
        body.split('/').collect(),
        prefix.trim_end_matches('/').split('/').collect(),
    );
    pattern.iter().zip(&path).enumerate().all(|(i, (p, s))| {
        *p == "+" || p == s || (i + 1 == pattern.len() && rule.is_prefix() && s.starts_with(p))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::parse::parse;

    fn acl(texts: &[&str]) -> Acl {
        let policies: Vec<Policy> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| parse(&format!("p{i}"), t).unwrap())
            .collect();
        Acl::new(&policies)
    }

    fn rule(pattern: &str, caps: &str) -> String {
        format!("path \"{pattern}\" {{ capabilities = [{caps}] }}\n")
    }

    fn names(acl: &Acl, path: &str) -> Vec<&'static str> {
        acl.capabilities(path, false).names()
    }

    /// One priority case: the rules (pattern, capabilities), the path
    /// asked about, and the capabilities that must apply.
    type Case = (
        &'static [(&'static str, &'static str)],
        &'static str,
        &'static [&'static str],
    );

    /// Every rule's capabilities are distinct so the winner is visible.
    #[test]
    fn priority_rules_pick_the_right_pattern() {
        let cases: &[Case] = &[
            // An exact path beats every glob, even a deny.
            (
                &[("secret/data/x", "\"read\""), ("secret/data/*", "\"deny\"")],
                "secret/data/x",
                &["read"],
            ),
            // 1. The first wildcard coming later wins.
            (
                &[("secret/*", "\"read\""), ("secret/data/*", "\"list\"")],
                "secret/data/x",
                &["list"],
            ),
            (
                &[("+/data/x", "\"read\""), ("secret/+/x", "\"list\"")],
                "secret/data/x",
                &["list"],
            ),
            (
                &[("secret/data/x*", "\"read\""), ("secret/+/x", "\"list\"")],
                "secret/data/x",
                &["read"],
            ),
            // 2. At the same position, not ending in * beats ending in *.
            (
                &[("secret/*", "\"read\""), ("secret/+/x", "\"list\"")],
                "secret/a/x",
                &["list"],
            ),
            (
                &[("a/+/b/*", "\"read\""), ("a/+/+/c", "\"list\"")],
                "a/1/b/c",
                &["list"],
            ),
            // 3. Then fewer + wins.
            (
                &[("a/+/c", "\"read\""), ("a/+/+", "\"list\"")],
                "a/b/c",
                &["read"],
            ),
            (
                &[("a/+/+/*", "\"read\""), ("a/+/c/*", "\"list\"")],
                "a/b/c/d",
                &["list"],
            ),
            // 4. Then the longer pattern wins.
            (
                &[("a/+/bc*", "\"read\""), ("a/+/b*", "\"list\"")],
                "a/x/bcd",
                &["read"],
            ),
            // Globs: * is a prefix match within a segment too; + is exactly one segment.
            (
                &[("secret/foo*", "\"read\"")],
                "secret/foobar/baz",
                &["read"],
            ),
            (&[("secret/+/x", "\"read\"")], "secret/a/b/x", &["deny"]),
            (&[("secret/+/x", "\"read\"")], "secret/x", &["deny"]),
            (&[("secret/+", "\"read\"")], "secret/a", &["read"]),
            (&[("+", "\"read\"")], "anything", &["read"]),
            (&[("*", "\"read\"")], "any/path/at/all", &["read"]),
            // Nothing matches: nothing is allowed.
            (&[("secret/data/*", "\"read\"")], "sys/mounts", &["deny"]),
            (
                &[("secret/data/app", "\"read\"")],
                "secret/data/app2",
                &["deny"],
            ),
        ];
        for (rules, path, want) in cases {
            let text: String = rules.iter().map(|(p, c)| rule(p, c)).collect();
            let got = names(&acl(&[&text]), path);
            assert_eq!(&got, want, "rules {rules:?} on {path}");
        }
    }

    #[test]
    fn the_same_pattern_in_several_policies_unions_and_deny_wins() {
        let a = rule("secret/data/*", "\"read\"");
        let b = rule("secret/data/*", "\"update\", \"sudo\"");
        assert_eq!(
            names(&acl(&[&a, &b]), "secret/data/x"),
            vec!["read", "sudo", "update"]
        );
        let c = rule("secret/data/*", "\"deny\"");
        assert_eq!(names(&acl(&[&a, &b, &c]), "secret/data/x"), vec!["deny"]);
        // A less specific grant elsewhere does not reopen a denied path.
        let d = rule("secret/*", "\"read\"");
        let e = rule("secret/data/admin", "\"deny\"");
        assert_eq!(names(&acl(&[&d, &e]), "secret/data/admin"), vec!["deny"]);
        assert_eq!(names(&acl(&[&d, &e]), "secret/data/other"), vec!["read"]);
    }

    #[test]
    fn list_also_tries_the_path_without_its_slash() {
        let a = acl(&[&rule("secret/metadata/app", "\"list\"")]);
        assert_eq!(
            a.capabilities("secret/metadata/app/", true).names(),
            vec!["list"]
        );
        assert_eq!(
            a.capabilities("secret/metadata/app/", false).names(),
            vec!["deny"]
        );
        let b = acl(&[&rule("secret/metadata/app/", "\"list\"")]);
        assert_eq!(
            b.capabilities("secret/metadata/app/", true).names(),
            vec!["list"]
        );
        let c = acl(&[&rule("secret/+/app", "\"list\"")]);
        assert_eq!(
            c.capabilities("secret/metadata/app/", true).names(),
            vec!["list"]
        );
    }

    #[test]
    fn root_may_do_everything() {
        let root = parse("root", "").unwrap();
        let a = Acl::new([&root]);
        assert!(a.is_root());
        assert!(
            a.capabilities("anything/at/all", false)
                .contains(Capabilities::SUDO)
        );
        assert!(Acl::root().has_access_under("secret/"));
    }

    #[test]
    fn access_under_a_mount_is_any_grant_below_it() {
        let a = acl(&[&rule("secret/data/app/*", "\"read\"")]);
        assert!(a.has_access_under("secret/"));
        assert!(!a.has_access_under("other/"));
        let b = acl(&[&rule("+/data/*", "\"read\"")]);
        assert!(b.has_access_under("kv/"));
        let c = acl(&[&rule("secret/*", "\"deny\"")]);
        assert!(!c.has_access_under("secret/"));
        let d = acl(&[&rule("sec*", "\"read\"")]);
        assert!(d.has_access_under("secret/"));
    }
}
