//! Access control: may this token do this operation on this path?
//!
//! So far the only policies are the two built-ins: `root`, which may do
//! everything, and `default`, which every token has and which lets it look
//! itself up. HCL policies with path globs and capabilities replace this
//! in the access-control issue; the question `core` asks stays the same.

use crate::auth::token::ROOT_POLICY;
use crate::core::Operation;

/// The access a set of policies grants.
#[derive(Debug, Clone)]
pub struct Acl {
    root: bool,
}

/// Paths the `default` policy opens to every token, with the operations.
const DEFAULT_POLICY: &[(&str, &[Operation])] = &[(
    "auth/token/lookup-self",
    &[Operation::Read, Operation::Write],
)];

impl Acl {
    pub fn new(policies: &[String]) -> Self {
        Acl {
            root: policies.iter().any(|p| p == ROOT_POLICY),
        }
    }

    pub fn allows(&self, path: &str, operation: Operation) -> bool {
        self.root
            || DEFAULT_POLICY
                .iter()
                .any(|(p, ops)| *p == path && ops.contains(&operation))
    }

    /// Root-protected (sudo) paths: only root may use them for now.
    pub fn allows_sudo(&self) -> bool {
        self.root
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_may_do_anything() {
        let acl = Acl::new(&["root".to_owned()]);
        assert!(acl.allows("secret/data/x", Operation::Delete));
        assert!(acl.allows_sudo());
    }

    #[test]
    fn other_tokens_may_only_look_themselves_up() {
        let acl = Acl::new(&["default".to_owned(), "dev".to_owned()]);
        assert!(acl.allows("auth/token/lookup-self", Operation::Read));
        assert!(!acl.allows("secret/data/x", Operation::Read));
        assert!(!acl.allows("sys/mounts", Operation::Read));
        assert!(!acl.allows_sudo());
    }
}
