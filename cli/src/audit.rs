//! Audit commands: enable, disable, list, and verify (offline).
//!
//! `audit verify` checks the hash chain of secretd's audit files (see
//! `secretd_client::audit`) line by line across the files in the order
//! given. A broken chain exits 2, like a remote "no": the log says
//! something was removed, edited or moved. A file it cannot read exits 1.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use secretd_client::audit::{ChainProblem, ChainReport, Verifier};
use secretd_client::wire::{AuditDevice, AuditDeviceInput};
use serde_json::{Value, json};

use crate::args;
use crate::cli::{AuditCommand, AuditEnableArgs, Global};
use crate::output::{Block, Report};
use crate::{Ctx, Doing, EXIT_OK, EXIT_REMOTE, Failure};

/// `audit ...` (all but `verify`, which [`verify`] runs without a server).
pub async fn run(ctx: &Ctx, command: AuditCommand) -> Result<u8, Failure> {
    let sys = ctx.client.sys();
    match command {
        AuditCommand::Enable(a) => {
            let (path, input) = enable_input(&a)?;
            sys.enable_audit_device(&path, &input)
                .await
                .doing(format_args!(
                    "enabling the {} audit device at {path}/",
                    a.device_type
                ))?;
            ctx.success(&format!(
                "Success! Enabled the {} audit device at: {path}/",
                a.device_type
            ));
        }
        AuditCommand::Disable(a) => {
            let path = a.path.trim_matches('/');
            sys.disable_audit_device(path)
                .await
                .doing(format_args!("disabling the audit device at {path}/"))?;
            ctx.success(&format!(
                "Success! Disabled the audit device (if it existed) at: {path}/"
            ));
        }
        AuditCommand::List(a) => {
            let devices = sys.audit_devices().await.doing("listing audit devices")?;
            if devices.is_empty() {
                eprintln!("No audit devices are enabled.");
                return Ok(EXIT_REMOTE);
            }
            ctx.print(&devices_report(&devices, a.detailed))?;
        }
        AuditCommand::Verify(a) => return verify(&ctx.global, &a.files),
    }
    Ok(EXIT_OK)
}

/// The path and request of `audit enable`: the path defaults to the type.
fn enable_input(a: &AuditEnableArgs) -> Result<(String, AuditDeviceInput), Failure> {
    let path = a
        .path
        .as_deref()
        .unwrap_or(&a.device_type)
        .trim_matches('/')
        .to_owned();
    if path.is_empty() {
        return Err(Failure::local("--path is empty"));
    }
    let options = args::plain_pairs(&a.options, "option").map_err(Failure::local)?;
    Ok((
        path,
        AuditDeviceInput {
            device_type: a.device_type.clone(),
            description: a.description.clone().unwrap_or_default(),
            options,
            local: false,
        },
    ))
}

/// `audit list`: Path, Type, Description (and Options with --detailed).
pub fn devices_report(devices: &BTreeMap<String, AuditDevice>, detailed: bool) -> Report {
    let mut header = vec!["Path".to_owned(), "Type".into(), "Description".into()];
    if detailed {
        header.push("Options".into());
    }
    let rows = devices
        .iter()
        .map(|(path, d)| {
            let mut row = vec![
                path.clone(),
                d.device_type.clone(),
                if d.description.is_empty() {
                    "n/a".into()
                } else {
                    d.description.clone()
                },
            ];
            if detailed {
                let options: Vec<String> =
                    d.options.iter().map(|(k, v)| format!("{k}={v}")).collect();
                row.push(options.join(" "));
            }
            row
        })
        .collect();
    Report {
        json: serde_json::to_value(devices).unwrap_or(Value::Null),
        blocks: vec![Block::Grid(header, rows)],
    }
}

/// Where the chain broke: a file, a line number (from 1) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    pub file: PathBuf,
    pub line: u64,
    pub problem: String,
}

/// Why `audit verify` stopped.
#[derive(Debug)]
pub enum VerifyError {
    /// A file could not be opened or read.
    Unreadable(PathBuf, std::io::Error),
    /// The chain is broken.
    Broken(Break),
}

/// `audit verify FILE...`: exit 0 and a report if the chain holds; the
/// first break on stderr as `FILE:LINE: problem` and exit 2 if not; exit
/// 1 if a file cannot be read.
pub fn verify(global: &Global, files: &[PathBuf]) -> Result<u8, Failure> {
    match verify_files(files) {
        Ok(report) => {
            global.print(&chain_report(files, &report))?;
            Ok(EXIT_OK)
        }
        Err(VerifyError::Broken(b)) => {
            eprintln!("{}:{}: {}", b.file.display(), b.line, b.problem);
            Ok(EXIT_REMOTE)
        }
        Err(VerifyError::Unreadable(file, err)) => Err(Failure::local(format!(
            "cannot read {}: {err}",
            file.display()
        ))),
    }
}

/// Checks the chain across `files`, in order.
pub fn verify_files(files: &[PathBuf]) -> Result<ChainReport, VerifyError> {
    let mut verifier = Verifier::new();
    for file in files {
        let opened =
            std::fs::File::open(file).map_err(|e| VerifyError::Unreadable(file.clone(), e))?;
        verify_lines(&mut verifier, file, BufReader::new(opened))?;
    }
    Ok(verifier.report())
}

/// Feeds one file's lines to `verifier`. Empty lines at the end of the
/// file are fine; one in the middle is a break. A last line without its
/// newline is checked like any other, and if it is not an audit line it
/// is reported as torn (the writer stopped mid-line).
pub fn verify_lines(
    verifier: &mut Verifier,
    file: &Path,
    mut reader: impl BufRead,
) -> Result<(), VerifyError> {
    let unreadable = |e| VerifyError::Unreadable(file.to_owned(), e);
    let broken = |line: u64, problem: String| {
        VerifyError::Broken(Break {
            file: file.to_owned(),
            line,
            problem,
        })
    };
    let mut number = 0u64;
    let mut first_empty: Option<u64> = None;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let read = reader.read_until(b'\n', &mut buf).map_err(unreadable)?;
        if read == 0 {
            return Ok(());
        }
        number += 1;
        let complete = buf.last() == Some(&b'\n');
        let line = if complete {
            &buf[..buf.len() - 1]
        } else {
            &buf[..]
        };
        if line.is_empty() {
            first_empty.get_or_insert(number);
            continue;
        }
        if let Some(empty) = first_empty {
            return Err(broken(
                empty,
                "an empty line in the middle of the file (lines cannot be blank)".into(),
            ));
        }
        if let Err(problem) = verifier.feed(line) {
            let message = match problem {
                ChainProblem::NotALink if !complete => "the last line is torn: it has no \
                     newline and is not a whole audit line (the writer stopped mid-line)"
                    .to_owned(),
                other => other.to_string(),
            };
            return Err(broken(number, message));
        }
    }
}

/// What a successful `audit verify` saw.
pub fn chain_report(files: &[PathBuf], report: &ChainReport) -> Report {
    let (last_seq, last_hash) = match &report.head {
        Some(head) => (json!(head.seq), json!(head.hash)),
        None => (Value::Null, Value::Null),
    };
    let starts = if report.lines == 0 {
        "n/a (no lines)".to_owned()
    } else if report.starts_chain {
        "true".to_owned()
    } else {
        format!(
            "false: continues an earlier file from seq {} (give that file first to check the link)",
            report.first_seq.unwrap_or_default()
        )
    };
    let json = json!({
        "files": files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>(),
        "lines": report.lines,
        "starts_chain": report.starts_chain,
        "first_seq": report.first_seq,
        "last_seq": last_seq,
        "last_hash": last_hash,
    });
    Report {
        json,
        blocks: vec![
            Block::Table(vec![
                ("files".into(), json!(files.len())),
                ("lines".into(), json!(report.lines)),
                ("starts_chain".into(), json!(starts)),
                ("last_seq".into(), last_seq),
                ("last_hash".into(), last_hash),
            ]),
            Block::Line(
                "The chain holds. It cannot show lines cut off the end: compare last_seq and \
                 last_hash with a copy kept elsewhere."
                    .into(),
            ),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::Format;
    use secretd_client::audit::ChainHead;

    fn chain(n: usize) -> Vec<Vec<u8>> {
        let mut head = ChainHead::default();
        (0..n)
            .map(|i| head.link(format!("{{\"type\":\"request\",\"n\":{i}}}").as_bytes()))
            .collect()
    }

    fn file_of(lines: &[Vec<u8>], end: &[u8]) -> Vec<u8> {
        let mut out = lines.join(&b'\n');
        out.extend_from_slice(end);
        out
    }

    fn check(files: &[Vec<u8>]) -> Result<ChainReport, Break> {
        let mut verifier = Verifier::new();
        for (i, content) in files.iter().enumerate() {
            let name = PathBuf::from(format!("audit-{i}.log"));
            match verify_lines(&mut verifier, &name, &content[..]) {
                Ok(()) => {}
                Err(VerifyError::Broken(b)) => return Err(b),
                Err(VerifyError::Unreadable(..)) => panic!("in-memory reads do not fail"),
            }
        }
        Ok(verifier.report())
    }

    #[test]
    fn a_whole_chain_verifies_across_rotated_files() {
        let lines = chain(5);
        let report = check(&[file_of(&lines[..2], b"\n"), file_of(&lines[2..], b"\n")]).unwrap();
        assert_eq!(report.lines, 5);
        assert!(report.starts_chain);
        assert_eq!(report.head.unwrap().seq, 5);
        // No trailing newline, or trailing empty lines: fine.
        assert_eq!(check(&[file_of(&lines, b"")]).unwrap().lines, 5);
        assert_eq!(check(&[file_of(&lines, b"\n\n\n")]).unwrap().lines, 5);
        assert_eq!(check(&[Vec::new()]).unwrap().lines, 0);
    }

    #[test]
    fn breaks_are_reported_with_file_and_line() {
        let lines = chain(4);
        let mut removed = lines.clone();
        removed.remove(1);
        let b = check(&[file_of(&removed, b"\n")]).unwrap_err();
        assert_eq!((b.file.to_str().unwrap(), b.line), ("audit-0.log", 2));
        assert!(b.problem.contains("prev_hash"), "{}", b.problem);

        // The second file lost its first line: the break is in that file.
        let b = check(&[file_of(&lines[..2], b"\n"), file_of(&lines[3..], b"\n")]).unwrap_err();
        assert_eq!((b.file.to_str().unwrap(), b.line), ("audit-1.log", 1));

        let mut blank = lines.clone();
        blank.insert(2, Vec::new());
        let b = check(&[file_of(&blank, b"\n")]).unwrap_err();
        assert_eq!(b.line, 3);
        assert!(b.problem.contains("empty line"), "{}", b.problem);
    }

    #[test]
    fn a_torn_last_line_is_named_as_such() {
        let lines = chain(3);
        let mut torn = file_of(&lines[..2], b"\n");
        torn.extend_from_slice(&lines[2][..10]);
        let b = check(&[torn]).unwrap_err();
        assert_eq!(b.line, 3);
        assert!(b.problem.contains("torn"), "{}", b.problem);
        // A whole line in the middle that is not JSON is "edited or torn".
        let mut edited = lines.clone();
        edited[1] = b"garbage".to_vec();
        let b = check(&[file_of(&edited, b"\n")]).unwrap_err();
        assert_eq!(b.line, 2);
        assert!(!b.problem.contains("no newline"), "{}", b.problem);
    }

    #[test]
    fn the_report_says_whether_the_chain_starts_here() {
        let lines = chain(3);
        let whole = check(&[file_of(&lines, b"\n")]).unwrap();
        let files = [PathBuf::from("a.log")];
        let text = chain_report(&files, &whole)
            .render(Format::Table, None)
            .unwrap();
        assert!(text.contains("starts_chain    true"), "{text}");
        assert!(text.contains("last_seq        3"), "{text}");
        let tail = check(&[file_of(&lines[1..], b"\n")]).unwrap();
        let text = chain_report(&files, &tail)
            .render(Format::Table, None)
            .unwrap();
        assert!(
            text.contains("continues an earlier file from seq 2"),
            "{text}"
        );
        let json: Value = serde_json::from_str(
            &chain_report(&files, &whole)
                .render(Format::Json, None)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(json["lines"], 3);
        assert_eq!(json["last_hash"], whole.head.unwrap().hash);
    }

    #[test]
    fn an_unreadable_file_is_local() {
        let err = verify_files(&[PathBuf::from("/nonexistent/audit.log")]).unwrap_err();
        assert!(matches!(err, VerifyError::Unreadable(..)));
    }

    #[test]
    fn enable_path_defaults_to_the_type_and_options_are_pairs() {
        let args = |path: Option<&str>, options: &[&str]| AuditEnableArgs {
            device_type: "file".into(),
            options: options.iter().map(|s| (*s).to_owned()).collect(),
            path: path.map(str::to_owned),
            description: None,
        };
        let (path, input) = enable_input(&args(
            None,
            &[
                "file_path=/var/log/secretd/audit.log",
                "mode=0600",
                "log_raw=true",
            ],
        ))
        .unwrap();
        assert_eq!(path, "file");
        assert_eq!(
            serde_json::to_value(&input).unwrap(),
            json!({"type": "file", "options": {"file_path": "/var/log/secretd/audit.log",
                   "mode": "0600", "log_raw": "true"}})
        );
        let (path, _) = enable_input(&args(Some("/main/"), &[])).unwrap();
        assert_eq!(path, "main");
        assert!(enable_input(&args(None, &["file_path"])).is_err());
    }

    #[test]
    fn list_shows_options_only_when_detailed() {
        let devices = BTreeMap::from([(
            "file/".to_owned(),
            AuditDevice {
                device_type: "file".into(),
                options: [("file_path".to_owned(), "/var/log/a.log".to_owned())].into(),
                path: "file/".into(),
                ..AuditDevice::default()
            },
        )]);
        assert_eq!(
            devices_report(&devices, false)
                .render(Format::Table, None)
                .unwrap(),
            "Path     Type    Description\n----     ----    -----------\nfile/    file    n/a\n"
        );
        let detailed = devices_report(&devices, true)
            .render(Format::Table, None)
            .unwrap();
        assert!(detailed.contains("file_path=/var/log/a.log"), "{detailed}");
    }
}
