//! Parsing what the user typed beyond clap: `MOUNT/PATH` arguments and
//! `key=value` pairs (`k=v`, `k=@file`, `k=-`).
//!
//! Parsing is split from reading files and stdin, so both halves are
//! tested without touching either.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// A KV path split into its mount and the path inside it:
/// `secret/app/db` → mount `secret`, path `app/db`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretPath {
    /// The mount, without slashes (mounts with slashes are not supported).
    pub mount: String,
    /// The path inside the mount, without leading or trailing slashes;
    /// empty only for a directory argument naming the mount's root.
    pub path: String,
}

impl fmt::Display for SecretPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.mount, self.path)
    }
}

impl SecretPath {
    /// The API path of this secret under `kind` (`data`, `metadata`, ...),
    /// as shown to users: `secret/data/app/db`.
    pub fn api_path(&self, kind: &str) -> String {
        format!("{}/{kind}/{}", self.mount, self.path)
    }
}

/// Splits `MOUNT/PATH` for a command on one secret: the path must name a
/// key inside the mount.
pub fn secret_path(input: &str) -> Result<SecretPath, String> {
    let split = split(input)?;
    if split.path.is_empty() {
        return Err(format!(
            "{input:?} names only a mount: give MOUNT/PATH, e.g. {}/app/db",
            split.mount
        ));
    }
    if input.trim().ends_with('/') {
        return Err(format!(
            "{input:?} ends with '/', which names a directory: give the secret's path without it"
        ));
    }
    Ok(split)
}

/// Splits `MOUNT[/DIR]` for `list`: the mount's root is allowed.
pub fn dir_path(input: &str) -> Result<SecretPath, String> {
    split(input)
}

fn split(input: &str) -> Result<SecretPath, String> {
    let trimmed = input.trim().trim_start_matches('/');
    let (mount, rest) = trimmed.split_once('/').unwrap_or((trimmed, ""));
    if mount.is_empty() {
        return Err(format!(
            "{input:?} is not a KV path: give MOUNT/PATH, e.g. secret/app/db"
        ));
    }
    Ok(SecretPath {
        mount: mount.to_owned(),
        path: rest.trim_matches('/').to_owned(),
    })
}

/// Where a value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Typed on the command line.
    Literal(String),
    /// `@path`: the content of a file.
    File(PathBuf),
    /// `-`: all of standard input.
    Stdin,
}

/// One `key=value` argument, parsed but not yet read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    /// The key.
    pub key: String,
    /// Where its value comes from.
    pub source: Source,
}

/// Parses `key=value` arguments: `k=v` (a literal, possibly empty),
/// `k=@file` (the file's content) and `k=-` (standard input, at most once).
pub fn parse_pairs(args: &[String]) -> Result<Vec<Pair>, String> {
    if args.is_empty() {
        return Err("give at least one key=value pair (k=v, k=@file or k=-)".into());
    }
    let mut pairs = Vec::with_capacity(args.len());
    let mut stdin_key: Option<&str> = None;
    for arg in args {
        let Some((key, value)) = arg.split_once('=') else {
            return Err(format!(
                "{arg:?} is not a key=value pair (use k=v, k=@file or k=-)"
            ));
        };
        if key.is_empty() {
            return Err(format!("{arg:?} has an empty key"));
        }
        let source = match value {
            "-" => {
                if let Some(first) = stdin_key {
                    return Err(format!(
                        "only one value can come from stdin ('-'), but both {first:?} and {key:?} ask for it"
                    ));
                }
                stdin_key = Some(key);
                Source::Stdin
            }
            v if v.starts_with('@') => {
                let path = &v[1..];
                if path.is_empty() {
                    return Err(format!("{arg:?}: '@' must be followed by a file name"));
                }
                Source::File(PathBuf::from(path))
            }
            v => Source::Literal(v.to_owned()),
        };
        pairs.push(Pair {
            key: key.to_owned(),
            source,
        });
    }
    Ok(pairs)
}

/// Reads the values of `pairs` into a JSON object of strings. Files and
/// stdin are read as UTF-8, as they are (a trailing newline is kept, as
/// Vault does). A key given twice takes the last value.
pub fn read_pairs(
    pairs: Vec<Pair>,
    read_file: impl Fn(&Path) -> io::Result<String>,
    read_stdin: impl FnOnce() -> io::Result<String>,
) -> Result<Map<String, Value>, String> {
    let mut data = Map::new();
    let mut read_stdin = Some(read_stdin);
    for pair in pairs {
        let value = match pair.source {
            Source::Literal(v) => v,
            Source::File(path) => read_file(&path)
                .map_err(|e| format!("cannot read {} for {:?}: {e}", path.display(), pair.key))?,
            Source::Stdin => {
                let read = read_stdin
                    .take()
                    .ok_or_else(|| "only one value can come from stdin".to_owned())?;
                read().map_err(|e| format!("cannot read stdin for {:?}: {e}", pair.key))?
            }
        };
        data.insert(pair.key, Value::String(value));
    }
    Ok(data)
}

/// Parses repeated `--custom-metadata k=v` flags.
pub fn custom_metadata(args: &[String]) -> Result<BTreeMap<String, String>, String> {
    args.iter()
        .map(|arg| match arg.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
            _ => Err(format!("--custom-metadata {arg:?} is not a key=value pair")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn splits_mount_and_path() {
        let p = secret_path("secret/app/db").unwrap();
        assert_eq!((p.mount.as_str(), p.path.as_str()), ("secret", "app/db"));
        assert_eq!(p.to_string(), "secret/app/db");
        assert_eq!(p.api_path("data"), "secret/data/app/db");
        let p = secret_path("/secret/x").unwrap();
        assert_eq!((p.mount.as_str(), p.path.as_str()), ("secret", "x"));
    }

    #[test]
    fn a_secret_path_needs_more_than_a_mount() {
        for bad in [
            "secret",
            "secret/",
            "/secret",
            "",
            "/",
            "//x",
            "secret/app/",
        ] {
            assert!(secret_path(bad).is_err(), "{bad:?}");
        }
        let msg = secret_path("secret").unwrap_err();
        assert!(msg.contains("MOUNT/PATH"), "{msg}");
    }

    #[test]
    fn a_dir_may_be_the_mount_root() {
        let p = dir_path("secret/").unwrap();
        assert_eq!((p.mount.as_str(), p.path.as_str()), ("secret", ""));
        let p = dir_path("secret").unwrap();
        assert_eq!(p.path, "");
        let p = dir_path("secret/app/").unwrap();
        assert_eq!(p.path, "app");
        assert!(dir_path("/").is_err());
    }

    #[test]
    fn parses_literal_file_and_stdin_values() {
        let pairs = parse_pairs(&strings(&["a=1", "b=@/tmp/f", "c=-", "d=", "e=x=y"])).unwrap();
        assert_eq!(
            pairs.iter().map(|p| p.source.clone()).collect::<Vec<_>>(),
            vec![
                Source::Literal("1".into()),
                Source::File("/tmp/f".into()),
                Source::Stdin,
                Source::Literal(String::new()),
                Source::Literal("x=y".into()),
            ]
        );
        assert_eq!(pairs[4].key, "e");
    }

    #[test]
    fn refuses_bad_pairs() {
        assert!(parse_pairs(&[]).is_err());
        assert!(parse_pairs(&strings(&["novalue"])).is_err());
        assert!(parse_pairs(&strings(&["=v"])).is_err());
        assert!(parse_pairs(&strings(&["a=@"])).is_err());
        let two_stdin = parse_pairs(&strings(&["a=-", "b=-"])).unwrap_err();
        assert!(two_stdin.contains("only one"), "{two_stdin}");
    }

    #[test]
    fn reads_values_from_files_and_stdin() {
        let pairs = parse_pairs(&strings(&["a=1", "b=@cert.pem", "c=-", "a=2"])).unwrap();
        let data = read_pairs(
            pairs,
            |p| {
                assert_eq!(p, Path::new("cert.pem"));
                Ok("PEM\n".into())
            },
            || Ok("from stdin".into()),
        )
        .unwrap();
        assert_eq!(data["a"], "2");
        assert_eq!(data["b"], "PEM\n");
        assert_eq!(data["c"], "from stdin");
    }

    #[test]
    fn an_unreadable_file_names_the_file_and_key() {
        let pairs = parse_pairs(&strings(&["tls=@missing.pem"])).unwrap();
        let err = read_pairs(
            pairs,
            |_| Err(io::Error::new(io::ErrorKind::NotFound, "not found")),
            || unreachable!(),
        )
        .unwrap_err();
        assert!(
            err.contains("missing.pem") && err.contains("\"tls\""),
            "{err}"
        );
    }

    #[test]
    fn parses_custom_metadata() {
        let m = custom_metadata(&strings(&["owner=me", "team="])).unwrap();
        assert_eq!(m["owner"], "me");
        assert_eq!(m["team"], "");
        assert!(custom_metadata(&strings(&["noeq"])).is_err());
        assert!(custom_metadata(&strings(&["=v"])).is_err());
    }
}
