//! Which API paths are acceptable at all.
//!
//! Checked once, before routing, so no backend ever sees a path with `..`,
//! an empty segment, a control character, or more bytes than the limit.

use super::Error;

/// The longest API path accepted, in bytes.
pub const MAX_PATH_LEN: usize = 1024;

/// Checks an API path (without `/v1/`). A single trailing `/` is allowed
/// (it marks a directory in a LIST).
pub fn validate(path: &str) -> Result<(), Error> {
    if path.is_empty() {
        return Err(Error::UnsupportedPath);
    }
    if path.len() > MAX_PATH_LEN {
        return Err(Error::invalid(format!(
            "path is {} bytes long; the limit is {MAX_PATH_LEN}",
            path.len()
        )));
    }
    if let Some(c) = path.chars().find(|c| c.is_control()) {
        return Err(Error::invalid(format!(
            "path contains the control character U+{:04X}",
            c as u32
        )));
    }
    let body = path.strip_suffix('/').unwrap_or(path);
    for segment in body.split('/') {
        match segment {
            "" => {
                return Err(Error::invalid(
                    "path contains an empty segment (\"//\" or a leading \"/\")",
                ));
            }
            "." | ".." => {
                return Err(Error::invalid(format!(
                    "path contains a {segment:?} segment"
                )));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_ordinary_paths() {
        for ok in [
            "secret/data/app/db",
            "sys/mounts",
            "secret/metadata/",
            "a/b c/ü",
        ] {
            assert!(validate(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_traversal_empty_segments_and_controls() {
        for bad in [
            "",
            "secret/data/../x",
            "secret/data/./x",
            "..",
            "secret//data",
            "/secret",
            "secret/data/x//",
            "secret/\u{0}",
            "secret/a\nb",
            "secret/\u{7f}",
        ] {
            assert!(validate(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn refuses_overlong_paths() {
        assert!(validate(&"a".repeat(MAX_PATH_LEN)).is_ok());
        assert!(validate(&"a".repeat(MAX_PATH_LEN + 1)).is_err());
    }

    proptest! {
        #[test]
        fn never_panics_and_accepted_paths_are_clean(p in "\\PC{0,64}|[a-z./]{0,16}") {
            if validate(&p).is_ok() {
                prop_assert!(!p.split('/').any(|s| s == ".."));
                prop_assert!(!p.trim_end_matches('/').contains("//"));
                prop_assert!(!p.chars().any(char::is_control));
            }
        }
    }
}
