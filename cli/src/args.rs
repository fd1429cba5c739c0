//! Parsing what the user typed beyond clap: `MOUNT/PATH` arguments,
//! `key=value` pairs (`k=v`, `k=@file`, `k=-`), and the `vault` CLI's
//! one-dash long flags (`-policy=x`).
//!
//! Parsing is split from reading files and stdin, so both halves are
//! tested without touching either.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
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

/// Reads the values of `pairs`, in order. Files and stdin are read as
/// UTF-8, as they are (a trailing newline is kept, as Vault does).
pub fn read_values(
    pairs: Vec<Pair>,
    read_file: impl Fn(&Path) -> io::Result<String>,
    read_stdin: impl FnOnce() -> io::Result<String>,
) -> Result<Vec<(String, String)>, String> {
    let mut values = Vec::with_capacity(pairs.len());
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
        values.push((pair.key, value));
    }
    Ok(values)
}

/// Values as a JSON object the way `vault write` builds it: a key given
/// more than once becomes a list of its values (`policies=a policies=b`).
pub fn collect_repeated(values: Vec<(String, String)>) -> Map<String, Value> {
    let mut data = Map::new();
    for (key, value) in values {
        match data.get_mut(&key) {
            None => {
                data.insert(key, Value::String(value));
            }
            Some(Value::Array(list)) => list.push(Value::String(value)),
            Some(first) => {
                let first = first.take();
                data.insert(key, Value::Array(vec![first, Value::String(value)]));
            }
        }
    }
    data
}

/// [`read_values`] from the real files and standard input.
pub fn read_values_from_io(args: &[String]) -> Result<Vec<(String, String)>, String> {
    read_values(
        parse_pairs(args)?,
        |p| std::fs::read_to_string(p),
        || {
            let mut text = String::new();
            io::Read::read_to_string(&mut io::stdin(), &mut text)?;
            Ok(text)
        },
    )
}

/// Parses plain `key=value` arguments (no files, no stdin), e.g. audit
/// device options or `--metadata`; `what` names them in errors.
pub fn plain_pairs(args: &[String], what: &str) -> Result<BTreeMap<String, String>, String> {
    args.iter()
        .map(|arg| match arg.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
            _ => Err(format!("{what} {arg:?} is not a key=value pair")),
        })
        .collect()
}

/// Rewrites the `vault` CLI's one-dash long flags (`-policy=reader`,
/// `-ttl 1h`) into clap's two-dash form, so scripts written for `vault`
/// work. Only names that are long flags of the command being run (or of
/// the commands above it) are rewritten; everything after `--` is left
/// alone, and so is anything else that starts with one dash (`-`, `-h`,
/// a value such as `-5`).
pub fn vault_style_flags(command: &clap::Command, args: Vec<OsString>) -> Vec<OsString> {
    let mut current = command;
    let mut longs = long_flags(current);
    let mut out = Vec::with_capacity(args.len());
    let mut args = args.into_iter();
    if let Some(program) = args.next() {
        out.push(program);
    }
    for arg in args.by_ref() {
        let Some(text) = arg.to_str() else {
            out.push(arg);
            continue;
        };
        if text == "--" {
            out.push(arg);
            break;
        }
        if let Some(sub) = current.find_subcommand(text) {
            current = sub;
            longs.extend(long_flags(current));
            out.push(arg);
            continue;
        }
        let rewritten = text
            .strip_prefix('-')
            .filter(|rest| !rest.starts_with('-'))
            .filter(|rest| {
                let name = rest.split('=').next().unwrap_or("");
                name.len() > 1 && longs.contains(name)
            })
            .map(|rest| OsString::from(format!("--{rest}")));
        out.push(rewritten.unwrap_or(arg));
    }
    out.extend(args);
    out
}

fn long_flags(command: &clap::Command) -> BTreeSet<String> {
    command
        .get_arguments()
        .flat_map(|arg| arg.get_long_and_visible_aliases().unwrap_or_default())
        .map(str::to_owned)
        .collect()
}

/// Parses repeated `--custom-metadata k=v` flags.
pub fn custom_metadata(args: &[String]) -> Result<BTreeMap<String, String>, String> {
    plain_pairs(args, "--custom-metadata")
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
        let values = read_values(
            pairs,
            |p| {
                assert_eq!(p, Path::new("cert.pem"));
                Ok("PEM\n".into())
            },
            || Ok("from stdin".into()),
        )
        .unwrap();
        let expected = [("a", "1"), ("b", "PEM\n"), ("c", "from stdin"), ("a", "2")];
        assert_eq!(
            values,
            expected.map(|(k, v)| (k.to_owned(), v.to_owned())).to_vec()
        );
    }

    #[test]
    fn an_unreadable_file_names_the_file_and_key() {
        let pairs = parse_pairs(&strings(&["tls=@missing.pem"])).unwrap();
        let err = read_values(
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
    fn repeated_keys_become_lists_as_vault_write_does() {
        let values = [
            ("policies", "a"),
            ("ttl", "1h"),
            ("policies", "b"),
            ("policies", "c"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .to_vec();
        let data = collect_repeated(values);
        assert_eq!(
            Value::Object(data),
            serde_json::json!({"policies": ["a", "b", "c"], "ttl": "1h"})
        );
    }

    #[test]
    fn plain_pairs_name_what_they_are() {
        let m = plain_pairs(
            &strings(&["file_path=/var/log/a.log", "mode=0600"]),
            "option",
        )
        .unwrap();
        assert_eq!(m["mode"], "0600");
        let err = plain_pairs(&strings(&["nope"]), "option").unwrap_err();
        assert!(err.starts_with("option \"nope\""), "{err}");
    }

    fn rewrite(args: &[&str]) -> Vec<String> {
        let command = clap::Command::new("prog")
            .arg(clap::Arg::new("format").long("format").global(true))
            .subcommand(
                clap::Command::new("token").subcommand(
                    clap::Command::new("create")
                        .arg(clap::Arg::new("policy").long("policy"))
                        .arg(clap::Arg::new("ttl").long("ttl"))
                        .arg(clap::Arg::new("rest").num_args(0..)),
                ),
            );
        let args = std::iter::once("prog")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect();
        vault_style_flags(&command, args)
            .into_iter()
            .skip(1)
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn one_dash_long_flags_become_two_dash_ones() {
        assert_eq!(
            rewrite(&[
                "token",
                "create",
                "-policy",
                "reader",
                "-ttl=1h",
                "-format=json"
            ]),
            [
                "token",
                "create",
                "--policy",
                "reader",
                "--ttl=1h",
                "--format=json"
            ]
        );
        assert_eq!(
            rewrite(&["-format", "json", "token", "create", "--policy=x"]),
            ["--format", "json", "token", "create", "--policy=x"]
        );
    }

    #[test]
    fn other_dashed_words_are_left_alone() {
        // Unknown names, flags of other commands, single letters, stdin,
        // negative numbers, and everything after --.
        assert_eq!(
            rewrite(&[
                "-policy", "token", "create", "-x", "-h", "-", "-5", "-unknown", "--", "-ttl"
            ]),
            [
                "-policy", "token", "create", "-x", "-h", "-", "-5", "-unknown", "--", "-ttl"
            ]
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
