//! Access control: Vault's ACL policies and the decisions made with them.
//!
//! A policy is a list of path rules, each a pattern and the capabilities it
//! grants ([`parse`]). A token's policies merge into one [`Acl`], which
//! answers "which capabilities does this token have on this path?" by
//! Vault's rules: an exact path wins; otherwise the matching glob of
//! highest priority (see [`PathRule::outranks`]); the same pattern in
//! several policies unions its capabilities; `deny` overrides everything.

mod acl;
pub mod parse;

pub use self::acl::Acl;
pub use self::parse::ParseError;

/// The policy every token may do everything with.
pub const ROOT_POLICY: &str = "root";
/// The policy every token gets unless created without it.
pub const DEFAULT_POLICY: &str = "default";

/// The built-in `default` policy as installed at init; operators may
/// change it (but not delete it).
pub const DEFAULT_POLICY_TEXT: &str = r#"# Allow tokens to look up their own properties
path "auth/token/lookup-self" {
    capabilities = ["read"]
}

# Allow tokens to renew themselves
path "auth/token/renew-self" {
    capabilities = ["update"]
}

# Allow tokens to revoke themselves
path "auth/token/revoke-self" {
    capabilities = ["update"]
}

# Allow a token to look up its own capabilities on a path
path "sys/capabilities-self" {
    capabilities = ["update"]
}

# Allow a token to renew a lease via lease_id in the request body
path "sys/leases/renew" {
    capabilities = ["update"]
}

# Allow looking up lease properties. This requires knowing the lease ID ahead
# of time and does not divulge any sensitive information.
path "sys/leases/lookup" {
    capabilities = ["update"]
}
"#;

/// A set of capabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Capabilities(u16);

impl Capabilities {
    pub const NONE: Capabilities = Capabilities(0);
    pub const DENY: Capabilities = Capabilities(1);
    pub const CREATE: Capabilities = Capabilities(1 << 1);
    pub const READ: Capabilities = Capabilities(1 << 2);
    pub const UPDATE: Capabilities = Capabilities(1 << 3);
    pub const DELETE: Capabilities = Capabilities(1 << 4);
    pub const LIST: Capabilities = Capabilities(1 << 5);
    pub const SUDO: Capabilities = Capabilities(1 << 6);
    pub const PATCH: Capabilities = Capabilities(1 << 7);
    /// Everything but deny: what the root policy grants everywhere.
    pub const ALL: Capabilities = Capabilities(0b1111_1110);

    const NAMES: [(&'static str, Capabilities); 8] = [
        ("create", Capabilities::CREATE),
        ("delete", Capabilities::DELETE),
        ("deny", Capabilities::DENY),
        ("list", Capabilities::LIST),
        ("patch", Capabilities::PATCH),
        ("read", Capabilities::READ),
        ("sudo", Capabilities::SUDO),
        ("update", Capabilities::UPDATE),
    ];

    pub fn from_name(name: &str) -> Option<Capabilities> {
        let name = name.trim().to_ascii_lowercase();
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, c)| *c)
    }

    /// The pre-capabilities `policy = "..."` form.
    pub fn from_legacy_policy(policy: &str) -> Option<Capabilities> {
        let read = Capabilities::READ.union(Capabilities::LIST);
        let write = read
            .union(Capabilities::CREATE)
            .union(Capabilities::UPDATE)
            .union(Capabilities::DELETE);
        match policy.trim().to_ascii_lowercase().as_str() {
            "deny" => Some(Capabilities::DENY),
            "read" => Some(read),
            "write" => Some(write),
            "sudo" => Some(write.union(Capabilities::SUDO)),
            _ => None,
        }
    }

    pub fn union(self, other: Capabilities) -> Capabilities {
        Capabilities(self.0 | other.0)
    }

    pub fn contains(self, other: Capabilities) -> bool {
        self.0 & other.0 == other.0 && other.0 != 0
    }

    /// Deny overrides everything else.
    pub fn effective(self) -> Capabilities {
        if self.0 & Capabilities::DENY.0 != 0 {
            Capabilities::DENY
        } else {
            self
        }
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The names, sorted, as `sys/capabilities` answers them.
    pub fn names(self) -> Vec<&'static str> {
        let effective = self.effective();
        if effective.is_empty() {
            return vec!["deny"];
        }
        Self::NAMES
            .iter()
            .filter(|(_, c)| effective.contains(*c))
            .map(|(n, _)| *n)
            .collect()
    }
}

/// One `path "..." { ... }` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathRule {
    pub pattern: String,
    pub capabilities: Capabilities,
}

impl PathRule {
    pub fn new(pattern: &str, capabilities: Capabilities) -> Self {
        PathRule {
            pattern: pattern.to_owned(),
            capabilities,
        }
    }

    /// A rule with neither `*` nor `+` applies to its exact path only.
    pub fn is_exact(&self) -> bool {
        !self.is_prefix() && !self.pattern.split('/').any(|s| s == "+")
    }

    fn is_prefix(&self) -> bool {
        self.pattern.ends_with('*')
    }

    fn body(&self) -> &str {
        self.pattern.strip_suffix('*').unwrap_or(&self.pattern)
    }

    fn plus_count(&self) -> usize {
        self.body().split('/').filter(|s| *s == "+").count()
    }

    /// Where the first `+` or `*` is; the length when there is none.
    fn first_wildcard(&self) -> usize {
        let plus = self
            .pattern
            .split('/')
            .scan(0usize, |offset, segment| {
                let at = *offset;
                *offset += segment.len() + 1;
                Some((at, segment))
            })
            .find(|(_, s)| *s == "+")
            .map(|(at, _)| at);
        let star = self.is_prefix().then(|| self.pattern.len() - 1);
        plus.into_iter()
            .chain(star)
            .min()
            .unwrap_or(self.pattern.len())
    }

    /// Whether this rule applies to `path`.
    pub fn matches(&self, path: &str) -> bool {
        let body = self.body();
        if !body.split('/').any(|s| s == "+") {
            return if self.is_prefix() {
                path.starts_with(body)
            } else {
                path == body
            };
        }
        let pattern: Vec<&str> = body.split('/').collect();
        let segments: Vec<&str> = path.split('/').collect();
        let Some((last, init)) = pattern.split_last() else {
            return false;
        };
        let fits = |p: &str, s: &str| p == "+" || p == s;
        if self.is_prefix() {
            segments.len() >= pattern.len()
                && init.iter().zip(&segments).all(|(p, s)| fits(p, s))
                && (*last == "+" || segments[init.len()].starts_with(last))
        } else {
            segments.len() == pattern.len()
                && pattern.iter().zip(&segments).all(|(p, s)| fits(p, s))
        }
    }

    /// Vault's priority between two globs matching the same path. This rule
    /// outranks `other` when, in order: its first wildcard comes later; it
    /// does not end in `*` and the other does; it has fewer `+`; it is
    /// longer; it is lexically greater.
    pub fn outranks(&self, other: &PathRule) -> bool {
        self.priority_key() > other.priority_key()
    }

    fn priority_key(&self) -> (usize, bool, std::cmp::Reverse<usize>, usize, &str) {
        (
            self.first_wildcard(),
            !self.is_prefix(),
            std::cmp::Reverse(self.plus_count()),
            self.pattern.len(),
            &self.pattern,
        )
    }
}

/// A named, parsed policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub name: String,
    pub rules: Vec<PathRule>,
}

/// Lower-cases and checks a policy name.
pub fn normalize_name(name: &str) -> Result<String, String> {
    let name = name.trim().to_lowercase();
    if name.is_empty() {
        return Err("policy name is missing".to_owned());
    }
    if name.len() > 128
        || name
            .chars()
            .any(|c| c.is_control() || c == '/' || c.is_whitespace())
    {
        return Err(format!("invalid policy name {name:?}"));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_names_round_trip_and_sort() {
        let caps = Capabilities::READ
            .union(Capabilities::UPDATE)
            .union(Capabilities::LIST);
        assert_eq!(caps.names(), vec!["list", "read", "update"]);
        assert_eq!(Capabilities::NONE.names(), vec!["deny"]);
        assert_eq!(caps.union(Capabilities::DENY).names(), vec!["deny"]);
        assert_eq!(Capabilities::from_name(" Read "), Some(Capabilities::READ));
        assert_eq!(Capabilities::from_name("root"), None);
    }

    #[test]
    fn default_policy_parses() {
        let p = parse::parse(DEFAULT_POLICY, DEFAULT_POLICY_TEXT).unwrap();
        assert!(
            p.rules
                .iter()
                .any(|r| r.pattern == "auth/token/lookup-self")
        );
    }

    #[test]
    fn names_are_normalised_and_checked() {
        assert_eq!(normalize_name(" Dev-Team ").unwrap(), "dev-team");
        assert!(normalize_name("").is_err());
        assert!(normalize_name("a/b").is_err());
        assert!(normalize_name("a b").is_err());
    }
}
