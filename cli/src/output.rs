//! What a command prints: one [`Report`] rendered as a table (like the
//! `vault` CLI), as JSON, or as one raw field (`--field`).

use std::fmt::Write as _;

use clap::ValueEnum;
use serde_json::Value;

/// The output format (`--format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Format {
    /// Human-readable tables.
    #[default]
    Table,
    /// The server's JSON (pretty-printed).
    Json,
}

/// One piece of table output.
#[derive(Debug, Clone)]
pub enum Block {
    /// A section heading: `====== Data ======`.
    Heading(String),
    /// A `Key / Value` table.
    Table(Vec<(String, Value)>),
    /// A table with its own column names.
    Grid(Vec<String>, Vec<Vec<String>>),
    /// A line of text (empty for a blank line).
    Line(String),
}

/// A command's result: the JSON printed by `--format json`, and the blocks
/// of the table format.
#[derive(Debug, Clone)]
pub struct Report {
    /// What `--format json` prints.
    pub json: Value,
    /// What the table format prints.
    pub blocks: Vec<Block>,
}

impl Report {
    /// A report whose table format is one `Key / Value` table of the JSON
    /// object's fields (sorted by key).
    pub fn key_values(json: Value) -> Report {
        let rows = match &json {
            Value::Object(map) => map.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            _ => Vec::new(),
        };
        Report {
            json,
            blocks: vec![Block::Table(rows)],
        }
    }

    /// The text to print, ending with one newline.
    ///
    /// With `field`, only that field's value: a string raw, anything else as
    /// compact JSON. The field is looked up in the tables from last to first
    /// (so a secret's data wins over its metadata), then among the JSON's
    /// top-level keys. A missing field is an error.
    pub fn render(&self, format: Format, field: Option<&str>) -> Result<String, String> {
        if let Some(name) = field {
            let value = self
                .find_field(name)
                .ok_or_else(|| format!("field {name:?} is not present in the output"))?;
            return Ok(format!("{}\n", raw(value)));
        }
        Ok(match format {
            Format::Json => format!(
                "{}\n",
                serde_json::to_string_pretty(&self.json).unwrap_or_default()
            ),
            Format::Table => render_blocks(&self.blocks),
        })
    }

    fn find_field(&self, name: &str) -> Option<&Value> {
        let in_tables = self.blocks.iter().rev().find_map(|block| match block {
            Block::Table(rows) => rows.iter().find(|(k, _)| k == name).map(|(_, v)| v),
            _ => None,
        });
        in_tables.or_else(|| self.json.get(name))
    }
}

/// A value as a raw string: strings unquoted, the rest as compact JSON.
pub fn raw(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A value in a table cell: `<nil>` for null, `n/a` for an empty string,
/// nested values as compact JSON.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => "<nil>".into(),
        Value::String(s) if s.is_empty() => "n/a".into(),
        other => raw(other),
    }
}

fn render_blocks(blocks: &[Block]) -> String {
    let mut out = String::new();
    for (i, block) in blocks.iter().enumerate() {
        match block {
            Block::Heading(title) => {
                let width = blocks.get(i + 1).map_or(0, block_width);
                let _ = writeln!(out, "{}", heading(title, width));
            }
            Block::Table(rows) => {
                let cells: Vec<Vec<String>> =
                    rows.iter().map(|(k, v)| vec![k.clone(), cell(v)]).collect();
                out.push_str(&grid(&["Key".into(), "Value".into()], &cells));
            }
            Block::Grid(header, rows) => out.push_str(&grid(header, rows)),
            Block::Line(text) => {
                let _ = writeln!(out, "{text}");
            }
        }
        // A blank line after each table that another block follows.
        let is_table = matches!(block, Block::Table(_) | Block::Grid(..));
        if is_table && i + 1 < blocks.len() {
            out.push('\n');
        }
    }
    out
}

/// `==== Title ====`, about as wide as the block below it (as the `vault`
/// CLI pads its headings), with at least two `=` on each side.
fn heading(title: &str, width: usize) -> String {
    let side = (width.saturating_sub(title.chars().count() + 2) / 2).max(2);
    let equals = "=".repeat(side);
    format!("{equals} {title} {equals}")
}

fn block_width(block: &Block) -> usize {
    match block {
        Block::Table(rows) => {
            let cells: Vec<Vec<String>> =
                rows.iter().map(|(k, v)| vec![k.clone(), cell(v)]).collect();
            widest_line(&grid(&["Key".into(), "Value".into()], &cells))
        }
        Block::Grid(header, rows) => widest_line(&grid(header, rows)),
        Block::Line(text) => text.chars().count(),
        Block::Heading(_) => 0,
    }
}

fn widest_line(text: &str) -> usize {
    text.lines().map(|l| l.chars().count()).max().unwrap_or(0)
}

/// Columns separated by four spaces, with a `---` rule under the header.
fn grid(header: &[String], rows: &[Vec<String>]) -> String {
    let rule: Vec<String> = header
        .iter()
        .map(|h| "-".repeat(h.chars().count()))
        .collect();
    let all: Vec<&[String]> = [header, &rule]
        .into_iter()
        .chain(rows.iter().map(Vec::as_slice))
        .collect();
    let columns = header.len();
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            all.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in all {
        let mut line = String::new();
        for (c, text) in row.iter().enumerate() {
            if c + 1 == columns {
                line.push_str(text);
            } else {
                let _ = write!(line, "{text:<width$}    ", width = widths[c]);
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn secret_report() -> Report {
        Report {
            json: json!({"data": {"password": "x"}, "metadata": {"version": 1}}),
            blocks: vec![
                Block::Heading("Metadata".into()),
                Block::Table(vec![
                    ("deletion_time".into(), json!("")),
                    ("custom_metadata".into(), Value::Null),
                    ("version".into(), json!(1)),
                ]),
                Block::Heading("Data".into()),
                Block::Table(vec![
                    ("password".into(), json!("x")),
                    ("nested".into(), json!({"a": [1, 2]})),
                    ("version".into(), json!("data-wins")),
                ]),
            ],
        }
    }

    #[test]
    fn renders_tables_like_vault() {
        let text = secret_report().render(Format::Table, None).unwrap();
        let expected = "\
======= Metadata =======
Key                Value
---                -----
deletion_time      n/a
custom_metadata    <nil>
version            1

======== Data ========
Key         Value
---         -----
password    x
nested      {\"a\":[1,2]}
version     data-wins
";
        assert_eq!(text, expected);
    }

    #[test]
    fn renders_json_pretty() {
        let text = secret_report().render(Format::Json, None).unwrap();
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back["data"]["password"], "x");
        assert!(text.ends_with("}\n"));
    }

    #[test]
    fn field_prints_the_raw_value_and_data_wins() {
        let r = secret_report();
        assert_eq!(r.render(Format::Table, Some("password")).unwrap(), "x\n");
        assert_eq!(r.render(Format::Json, Some("password")).unwrap(), "x\n");
        assert_eq!(
            r.render(Format::Table, Some("version")).unwrap(),
            "data-wins\n"
        );
        assert_eq!(
            r.render(Format::Table, Some("nested")).unwrap(),
            "{\"a\":[1,2]}\n"
        );
        assert_eq!(
            r.render(Format::Table, Some("metadata")).unwrap(),
            "{\"version\":1}\n"
        );
        assert!(r.render(Format::Table, Some("nope")).is_err());
    }

    #[test]
    fn grids_and_lines() {
        let r = Report {
            json: Value::Null,
            blocks: vec![
                Block::Grid(
                    vec!["Path".into(), "Type".into()],
                    vec![vec!["secret/".into(), "kv".into()]],
                ),
                Block::Line("done".into()),
            ],
        };
        assert_eq!(
            r.render(Format::Table, None).unwrap(),
            "Path       Type\n----       ----\nsecret/    kv\n\ndone\n"
        );
    }

    #[test]
    fn key_values_sorts_fields() {
        let r = Report::key_values(json!({"b": 2, "a": true}));
        assert_eq!(
            r.render(Format::Table, None).unwrap(),
            "Key    Value\n---    -----\na      true\nb      2\n"
        );
    }
}
