//! KV version 2 commands: put, get, patch, list, delete, undelete,
//! destroy, metadata.

use secretd_client::KvSecret;
use secretd_client::duration::parse_duration;
use secretd_client::wire::{KvMetadata, KvMetadataWrite, KvVersionMetadata};
use serde_json::{Map, Value, json};

use crate::args::{self, SecretPath};
use crate::cli::{
    DeleteArgs, GetArgs, ListArgs, MetadataCommand, MetadataPutArgs, VersionsArgs, WriteArgs,
};
use crate::output::{Block, Report};
use crate::{Ctx, Doing, EXIT_OK, EXIT_REMOTE, Failure};

/// `put PATH k=v...`
pub async fn put(ctx: &Ctx, a: WriteArgs) -> Result<u8, Failure> {
    let path = secret_path(&a.path)?;
    let data = read_data(&a.pairs)?;
    let kv = ctx.client.kv2(&path.mount);
    let written = match a.cas {
        Some(cas) => kv.put_cas(&path.path, &data, cas).await,
        None => kv.put(&path.path, &data).await,
    }
    .doing(format_args!("writing {path}"))?;
    ctx.print(&written_report(&path, &written))?;
    Ok(EXIT_OK)
}

/// `patch PATH k=v...`
pub async fn patch(ctx: &Ctx, a: WriteArgs) -> Result<u8, Failure> {
    let path = secret_path(&a.path)?;
    let data = read_data(&a.pairs)?;
    let kv = ctx.client.kv2(&path.mount);
    let result = match a.cas {
        Some(cas) => kv.patch_cas(&path.path, &data, cas).await,
        None => kv.patch(&path.path, &data).await,
    };
    let written = match result {
        Err(err) if err.is_not_found() && err.errors().is_empty() => {
            return Err(Failure {
                code: EXIT_REMOTE,
                message: format!(
                    "no live secret at {path} to patch (server answered 404): create it with put, or undelete its latest version"
                ),
            });
        }
        other => other.doing(format_args!("patching {path}"))?,
    };
    ctx.print(&written_report(&path, &written))?;
    Ok(EXIT_OK)
}

/// `get PATH [--version N]`: exit 2 for a deleted or destroyed version.
pub async fn get(ctx: &Ctx, a: GetArgs) -> Result<u8, Failure> {
    let path = secret_path(&a.path)?;
    let kv = ctx.client.kv2(&path.mount);
    let result = match a.version {
        Some(v) => kv.get_version(&path.path, v).await,
        None => kv.get(&path.path).await,
    };
    let secret = match result {
        Err(err) if err.is_not_found() && err.errors().is_empty() => {
            let which = a
                .version
                .map(|v| format!("version {v} of "))
                .unwrap_or_default();
            return Err(Failure {
                code: EXIT_REMOTE,
                message: format!("no value found at {which}{path} (server answered 404)"),
            });
        }
        other => other.doing(format_args!("reading {path}"))?,
    };
    let report = secret_report(&path, &secret);
    if secret.data.is_some() {
        ctx.print(&report)?;
        return Ok(EXIT_OK);
    }
    // Deleted or destroyed: show what there is, then say so.
    if let Ok(text) = report.render(ctx.global.format, ctx.global.field.as_deref()) {
        print!("{text}");
    }
    let version = secret.metadata.version;
    if secret.is_destroyed() {
        eprintln!("Version {version} of {path} is destroyed: its data is gone for good.");
    } else {
        eprintln!(
            "Version {version} of {path} is deleted (at {}). Restore it with: secretctl undelete {path} --versions {version}",
            secret.metadata.deletion_time
        );
    }
    Ok(EXIT_REMOTE)
}

/// `list DIR`: exit 2 with a message when there are no keys.
pub async fn list(ctx: &Ctx, a: ListArgs) -> Result<u8, Failure> {
    let dir = args::dir_path(&a.path).map_err(Failure::local)?;
    let keys = ctx
        .client
        .kv2(&dir.mount)
        .list(&dir.path)
        .await
        .doing(format_args!("listing {}", a.path))?;
    if keys.is_empty() {
        let api = if dir.path.is_empty() {
            format!("{}/metadata/", dir.mount)
        } else {
            format!("{}/", dir.api_path("metadata"))
        };
        eprintln!("No value found at {api}");
        return Ok(EXIT_REMOTE);
    }
    ctx.print(&list_report(keys))?;
    Ok(EXIT_OK)
}

/// `delete PATH [--versions ...]`
pub async fn delete(ctx: &Ctx, a: DeleteArgs) -> Result<u8, Failure> {
    if !a.pairs.is_empty() {
        return Err(Failure::local(format!(
            "key=value pairs are for API paths (sys/..., auth/..., or --raw); {} is a KV \
             secret, whose versions are given with --versions",
            a.path
        )));
    }
    let path = secret_path(&a.path)?;
    let kv = ctx.client.kv2(&path.mount);
    if a.versions.is_empty() {
        kv.delete(&path.path)
            .await
            .doing(format_args!("deleting {path}"))?;
        ctx.success(&format!(
            "Success! Deleted the latest version of {path} (if it existed)."
        ));
    } else {
        kv.delete_versions(&path.path, &a.versions)
            .await
            .doing(format_args!("deleting versions of {path}"))?;
        ctx.success(&format!(
            "Success! Deleted version(s) {} of {path} (if they existed).",
            list_versions(&a.versions)
        ));
    }
    Ok(EXIT_OK)
}

/// `undelete PATH --versions ...`
pub async fn undelete(ctx: &Ctx, a: VersionsArgs) -> Result<u8, Failure> {
    let path = secret_path(&a.path)?;
    ctx.client
        .kv2(&path.mount)
        .undelete(&path.path, &a.versions)
        .await
        .doing(format_args!("undeleting versions of {path}"))?;
    ctx.success(&format!(
        "Success! Undeleted version(s) {} of {path}.",
        list_versions(&a.versions)
    ));
    Ok(EXIT_OK)
}

/// `destroy PATH --versions ...`
pub async fn destroy(ctx: &Ctx, a: VersionsArgs) -> Result<u8, Failure> {
    let path = secret_path(&a.path)?;
    ctx.client
        .kv2(&path.mount)
        .destroy(&path.path, &a.versions)
        .await
        .doing(format_args!("destroying versions of {path}"))?;
    ctx.success(&format!(
        "Success! Destroyed version(s) {} of {path}.",
        list_versions(&a.versions)
    ));
    Ok(EXIT_OK)
}

/// `metadata get|put|delete PATH`
pub async fn metadata(ctx: &Ctx, command: MetadataCommand) -> Result<u8, Failure> {
    match command {
        MetadataCommand::Get(a) => {
            let path = secret_path(&a.path)?;
            let meta = ctx
                .client
                .kv2(&path.mount)
                .metadata(&path.path)
                .await
                .doing(format_args!("reading the metadata of {path}"))?;
            ctx.print(&metadata_report(&path, &meta))?;
        }
        MetadataCommand::Put(a) => {
            let path = secret_path(&a.path)?;
            let write = metadata_write(&a)?;
            ctx.client
                .kv2(&path.mount)
                .put_metadata(&path.path, &write)
                .await
                .doing(format_args!("writing the metadata of {path}"))?;
            ctx.success(&format!("Success! Wrote the metadata of {path}."));
        }
        MetadataCommand::Delete(a) => {
            let path = secret_path(&a.path)?;
            ctx.client
                .kv2(&path.mount)
                .delete_metadata(&path.path)
                .await
                .doing(format_args!("deleting {path}"))?;
            ctx.success(&format!(
                "Success! Deleted {path}: all versions and metadata (if it existed)."
            ));
        }
    }
    Ok(EXIT_OK)
}

fn secret_path(input: &str) -> Result<SecretPath, Failure> {
    args::secret_path(input).map_err(Failure::local)
}

/// The `k=v` arguments read into a JSON object (files and stdin read; a
/// key given twice takes the last value).
fn read_data(pairs: &[String]) -> Result<Map<String, Value>, Failure> {
    let values = args::read_values_from_io(pairs).map_err(Failure::local)?;
    Ok(values
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect())
}

fn metadata_write(a: &MetadataPutArgs) -> Result<KvMetadataWrite, Failure> {
    if let Some(d) = &a.delete_version_after {
        parse_duration(d).map_err(|e| Failure::local(format!("--delete-version-after: {e}")))?;
    }
    let custom = args::custom_metadata(&a.custom_metadata).map_err(Failure::local)?;
    let write = KvMetadataWrite {
        max_versions: a.max_versions,
        cas_required: a.cas_required,
        delete_version_after: a.delete_version_after.clone(),
        custom_metadata: (!custom.is_empty()).then_some(custom),
    };
    let nothing = write.max_versions.is_none()
        && write.cas_required.is_none()
        && write.delete_version_after.is_none()
        && write.custom_metadata.is_none();
    if nothing {
        return Err(Failure::local(
            "nothing to change: give --max-versions, --cas-required, \
             --delete-version-after or --custom-metadata",
        ));
    }
    Ok(write)
}

fn list_versions(versions: &[u64]) -> String {
    versions
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A serialisable value's fields as table rows (sorted by key).
fn rows(value: &impl serde::Serialize) -> Vec<(String, Value)> {
    match serde_json::to_value(value) {
        Ok(Value::Object(map)) => map.into_iter().collect(),
        _ => Vec::new(),
    }
}

fn path_blocks(title: &str, api_path: String) -> Vec<Block> {
    vec![
        Block::Heading(title.into()),
        Block::Line(api_path),
        Block::Line(String::new()),
    ]
}

/// After put and patch: the path and the new version's metadata.
pub fn written_report(path: &SecretPath, meta: &KvVersionMetadata) -> Report {
    let mut blocks = path_blocks("Secret Path", path.api_path("data"));
    blocks.push(Block::Heading("Metadata".into()));
    blocks.push(Block::Table(rows(meta)));
    Report {
        json: serde_json::to_value(meta).unwrap_or(Value::Null),
        blocks,
    }
}

/// `get`: path, metadata, and data when the version is live.
pub fn secret_report(path: &SecretPath, secret: &KvSecret) -> Report {
    let mut blocks = path_blocks("Secret Path", path.api_path("data"));
    blocks.push(Block::Heading("Metadata".into()));
    blocks.push(Block::Table(rows(&secret.metadata)));
    if let Some(data) = &secret.data {
        blocks.push(Block::Heading("Data".into()));
        blocks.push(Block::Table(
            data.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        ));
    }
    Report {
        json: json!({"data": secret.data, "metadata": secret.metadata}),
        blocks,
    }
}

/// `list`: one `Keys` column.
pub fn list_report(keys: Vec<String>) -> Report {
    Report {
        json: json!(keys),
        blocks: vec![Block::Grid(
            vec!["Keys".into()],
            keys.into_iter().map(|k| vec![k]).collect(),
        )],
    }
}

/// `metadata get`: settings, then one section per version (newest last).
pub fn metadata_report(path: &SecretPath, meta: &KvMetadata) -> Report {
    let mut blocks = path_blocks("Metadata Path", path.api_path("metadata"));
    let settings: Vec<(String, Value)> = rows(meta)
        .into_iter()
        .filter(|(k, _)| k != "versions")
        .collect();
    blocks.push(Block::Heading("Metadata".into()));
    blocks.push(Block::Table(settings));
    let mut versions: Vec<(u64, &_)> = meta
        .versions
        .iter()
        .filter_map(|(n, info)| n.parse().ok().map(|n: u64| (n, info)))
        .collect();
    versions.sort_by_key(|(n, _)| *n);
    for (n, info) in versions {
        blocks.push(Block::Heading(format!("Version {n}")));
        blocks.push(Block::Table(rows(info)));
    }
    Report {
        json: serde_json::to_value(meta).unwrap_or(Value::Null),
        blocks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::Format;
    use secretd_client::wire::KvVersionInfo;

    fn path() -> SecretPath {
        args::secret_path("secret/app/db").unwrap()
    }

    fn meta(version: u64, deletion_time: &str) -> KvVersionMetadata {
        KvVersionMetadata {
            created_time: "2026-01-01T00:00:00Z".into(),
            custom_metadata: None,
            deletion_time: deletion_time.into(),
            destroyed: false,
            version,
        }
    }

    #[test]
    fn secret_table_has_metadata_then_data() {
        let mut data = Map::new();
        data.insert("password".into(), json!("x"));
        let secret = KvSecret {
            data: Some(data),
            metadata: meta(2, ""),
        };
        let text = secret_report(&path(), &secret)
            .render(Format::Table, None)
            .unwrap();
        let expected = "\
== Secret Path ==
secret/data/app/db

============== Metadata ==============
Key                Value
---                -----
created_time       2026-01-01T00:00:00Z
custom_metadata    <nil>
deletion_time      n/a
destroyed          false
version            2

===== Data =====
Key         Value
---         -----
password    x
";
        assert_eq!(text, expected);
        let json = secret_report(&path(), &secret)
            .render(Format::Json, None)
            .unwrap();
        let back: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back["data"]["password"], "x");
        assert_eq!(back["metadata"]["version"], 2);
    }

    #[test]
    fn a_deleted_secret_has_no_data_section() {
        let secret = KvSecret {
            data: None,
            metadata: meta(3, "2026-01-02T00:00:00Z"),
        };
        let report = secret_report(&path(), &secret);
        let text = report.render(Format::Table, None).unwrap();
        assert!(!text.contains("Data"), "{text}");
        assert_eq!(
            report.render(Format::Table, Some("deletion_time")).unwrap(),
            "2026-01-02T00:00:00Z\n"
        );
        assert!(report.json["data"].is_null());
    }

    #[test]
    fn metadata_lists_versions_in_number_order() {
        let mut m = KvMetadata {
            current_version: 10,
            ..KvMetadata::default()
        };
        for n in [10, 2, 1] {
            m.versions.insert(n.to_string(), KvVersionInfo::default());
        }
        let text = metadata_report(&path(), &m)
            .render(Format::Table, None)
            .unwrap();
        let one = text.find("Version 1 ").unwrap();
        let two = text.find("Version 2 ").unwrap();
        let ten = text.find("Version 10 ").unwrap();
        assert!(one < two && two < ten, "{text}");
        assert!(
            text.starts_with("=== Metadata Path ===\nsecret/metadata/app/db\n"),
            "{text}"
        );
        assert!(!text.contains("\nversions "), "{text}");
    }

    #[test]
    fn list_prints_a_keys_column() {
        let r = list_report(vec!["a".into(), "b/".into()]);
        assert_eq!(
            r.render(Format::Table, None).unwrap(),
            "Keys\n----\na\nb/\n"
        );
        assert_eq!(serde_json::to_string(&r.json).unwrap(), r#"["a","b/"]"#);
    }

    #[test]
    fn metadata_put_needs_something_and_a_valid_duration() {
        let mut a = MetadataPutArgs {
            path: "secret/x".into(),
            max_versions: None,
            cas_required: None,
            delete_version_after: None,
            custom_metadata: Vec::new(),
        };
        assert!(metadata_write(&a).is_err());
        a.delete_version_after = Some("1 fortnight".into());
        assert!(metadata_write(&a).is_err());
        a.delete_version_after = Some("720h".into());
        a.custom_metadata = vec!["owner=me".into()];
        let w = metadata_write(&a).unwrap();
        assert_eq!(w.delete_version_after.as_deref(), Some("720h"));
        assert_eq!(w.custom_metadata.unwrap()["owner"], "me");
    }
}
