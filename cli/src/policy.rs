//! ACL policy commands: write, read, list, delete, and fmt (offline).

use std::io::Read;
use std::path::Path;

use secretd_client::wire::AclPolicy;
use serde_json::json;

use crate::cli::PolicyCommand;
use crate::output::{Block, Report};
use crate::policy_fmt::format_policy;
use crate::{Ctx, Doing, EXIT_OK, EXIT_REMOTE, Failure};

/// `policy ...` (all but `fmt`, which [`fmt`] runs without a server).
pub async fn run(ctx: &Ctx, command: PolicyCommand) -> Result<u8, Failure> {
    let sys = ctx.client.sys();
    match command {
        PolicyCommand::Write(a) => {
            let text = read_source(&a.file)?;
            sys.write_policy(&a.name, &text)
                .await
                .doing(format_args!("writing policy {}", a.name))?;
            ctx.success(&format!("Success! Uploaded policy: {}", a.name));
        }
        PolicyCommand::Read(a) => {
            let policy = sys
                .read_policy(&a.name)
                .await
                .doing(format_args!("reading policy {}", a.name))?;
            ctx.print(&policy_report(&policy))?;
        }
        PolicyCommand::List => {
            let names = sys.policies().await.doing("listing policies")?;
            if names.is_empty() {
                eprintln!("No policies found.");
                return Ok(EXIT_REMOTE);
            }
            ctx.print(&names_report(names))?;
        }
        PolicyCommand::Delete(a) => {
            sys.delete_policy(&a.name)
                .await
                .doing(format_args!("deleting policy {}", a.name))?;
            ctx.success(&format!("Success! Deleted policy: {}", a.name));
        }
        PolicyCommand::Fmt(a) => return fmt(&a.file),
    }
    Ok(EXIT_OK)
}

/// `policy fmt FILE`: rewrites the file in place (only if it changes);
/// `-` formats stdin to stdout. Any problem is local (exit 1).
pub fn fmt(file: &str) -> Result<u8, Failure> {
    let text = read_source(file)?;
    let formatted = format_policy(&text).map_err(|e| Failure::local(format!("{file}: {e}")))?;
    if file == "-" {
        print!("{formatted}");
        return Ok(EXIT_OK);
    }
    if formatted != text {
        write_in_place(Path::new(file), &formatted)
            .map_err(|e| Failure::local(format!("cannot write {file}: {e}")))?;
    }
    println!("Success! Formatted policy: {file}");
    Ok(EXIT_OK)
}

/// Replaces `path`'s content through a temporary file in the same
/// directory, so a crash leaves the old or the new policy, never half.
/// The file keeps its permissions; a symbolic link is followed, not
/// replaced.
fn write_in_place(path: &Path, content: &str) -> std::io::Result<()> {
    let path = std::fs::canonicalize(path)?;
    let path = path.as_path();
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let permissions = std::fs::metadata(path)?.permissions();
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut temp, content.as_bytes())?;
    temp.as_file().sync_all()?;
    temp.as_file().set_permissions(permissions)?;
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// A file's content, or all of stdin for `-`.
fn read_source(file: &str) -> Result<String, Failure> {
    if file == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Failure::local(format!("cannot read the policy from stdin: {e}")))?;
        return Ok(text);
    }
    std::fs::read_to_string(file).map_err(|e| Failure::local(format!("cannot read {file}: {e}")))
}

/// `policy read`: the document as written (the table format prints it
/// raw, as `vault policy read` does).
pub fn policy_report(policy: &AclPolicy) -> Report {
    let text = policy.policy.trim_end_matches('\n');
    Report {
        json: serde_json::to_value(policy).unwrap_or_default(),
        blocks: text.lines().map(|l| Block::Line(l.to_owned())).collect(),
    }
}

/// `policy list`: one name a line.
pub fn names_report(names: Vec<String>) -> Report {
    Report {
        json: json!(names),
        blocks: names.into_iter().map(Block::Line).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::Format;

    #[test]
    fn read_prints_the_document_raw_and_json_has_the_fields() {
        let policy = AclPolicy {
            name: "reader".into(),
            policy: "path \"a\" {\n  capabilities = [\"read\"]\n}\n".into(),
            version: Some(1),
        };
        let report = policy_report(&policy);
        assert_eq!(
            report.render(Format::Table, None).unwrap(),
            "path \"a\" {\n  capabilities = [\"read\"]\n}\n"
        );
        let json: serde_json::Value =
            serde_json::from_str(&report.render(Format::Json, None).unwrap()).unwrap();
        assert_eq!(json["name"], "reader");
        assert_eq!(
            report.render(Format::Table, Some("policy")).unwrap(),
            format!("{}\n", policy.policy)
        );
    }

    #[test]
    fn list_prints_one_name_a_line() {
        let report = names_report(vec!["default".into(), "reader".into()]);
        assert_eq!(
            report.render(Format::Table, None).unwrap(),
            "default\nreader\n"
        );
    }

    #[test]
    fn fmt_rewrites_the_file_in_place_keeping_its_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.hcl");
        std::fs::write(&file, "path \"a\" {capabilities=[\"read\"]}").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(fmt(file.to_str().unwrap()).unwrap(), EXIT_OK);
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "path \"a\" {\n  capabilities = [\"read\"]\n}\n"
        );
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o640);

        std::fs::write(&file, "path \"a\" { capabilities = [\"reed\"] }").unwrap();
        let err = fmt(file.to_str().unwrap()).unwrap_err();
        assert_eq!(err.code, crate::EXIT_LOCAL);
        assert!(
            err.message.contains("unknown capability"),
            "{}",
            err.message
        );
        assert!(
            std::fs::read_to_string(&file).unwrap().contains("reed"),
            "a refused file is left as it was"
        );
        let missing = fmt(dir.path().join("nope.hcl").to_str().unwrap()).unwrap_err();
        assert_eq!(missing.code, crate::EXIT_LOCAL);

        // Through a symbolic link: the target changes, the link stays.
        let link = dir.path().join("link.hcl");
        std::fs::write(&file, "path \"b\" {capabilities=[\"list\"]}").unwrap();
        std::os::unix::fs::symlink(&file, &link).unwrap();
        fmt(link.to_str().unwrap()).unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert!(
            std::fs::read_to_string(&file)
                .unwrap()
                .contains("capabilities = [\"list\"]")
        );
    }
}
