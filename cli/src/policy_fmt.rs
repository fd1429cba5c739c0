//! `policy fmt`: an ACL policy checked and printed in one canonical HCL
//! layout, with its comments kept.
//!
//! The document is parsed with `hcl-edit` (through `hcl-rs`), which keeps
//! comments, and must be a policy: `path "PATTERN" { ... }` blocks whose
//! attributes are `capabilities` (known names) or the legacy `policy`,
//! plus an optional top-level `name`. The layout: two-space indents, `=`
//! aligned within a block, arrays on one line, one blank line between
//! top-level blocks. Comments stay where they were: above a line, at the
//! end of a line, or between array items (the array is then written one
//! item per line). A comment where the layout has no place for it (inside
//! `path "x" {` or before an `=`) is refused rather than dropped.

use std::fmt::Write as _;

use hcl::edit::expr::{Array, Expression};
use hcl::edit::structure::{Attribute, Block, BlockLabel, Body, Structure};
use hcl::edit::{Decor, Decorate, Span};

const INDENT: &str = "  ";

/// The capability names a policy may grant.
const CAPABILITIES: &[&str] = &[
    "create", "read", "update", "patch", "delete", "list", "sudo", "deny",
];

/// The values of the legacy `policy = "..."` attribute.
const LEGACY_POLICIES: &[&str] = &["deny", "read", "write", "sudo"];

/// Vault policy keys secretd refuses (it does not enforce them).
const UNSUPPORTED_KEYS: &[&str] = &[
    "allowed_parameters",
    "denied_parameters",
    "required_parameters",
    "min_wrapping_ttl",
    "max_wrapping_ttl",
    "control_group",
    "mfa_methods",
];

/// Checks that `text` is an HCL ACL policy and returns it formatted.
pub fn format_policy(text: &str) -> Result<String, String> {
    if text.trim_start().starts_with('{') {
        return Err("this is a JSON policy; fmt formats HCL policies only".into());
    }
    let body = hcl::edit::parser::parse_body(text).map_err(|e| format!("not valid HCL: {e}"))?;
    let mut printer = Printer {
        source: text,
        out: String::new(),
    };
    printer.top_level(&body)?;
    Ok(printer.out)
}

/// A piece of the whitespace and comments around a syntax element.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Trivia {
    /// A comment, as written; `same_line` if no line break comes before it
    /// (it ends the line of whatever precedes it).
    Comment { text: String, same_line: bool },
    /// One or more empty lines.
    Blank,
}

/// Splits whitespace-and-comments text (what the parser keeps in a decor)
/// into comments and blank lines.
fn trivia(raw: &str) -> Vec<Trivia> {
    let mut out = Vec::new();
    let mut newlines = 0;
    let mut rest = raw;
    while let Some(c) = rest.chars().next() {
        let comment_len = if c == '#' || rest.starts_with("//") {
            rest.find('\n').unwrap_or(rest.len())
        } else if let Some(inside) = rest.strip_prefix("/*") {
            // The end is searched after the opening: `/*/ x */` is one comment.
            inside.find("*/").map_or(rest.len(), |end| end + 4)
        } else {
            if c == '\n' {
                newlines += 1;
                if newlines == 2 && !out.is_empty() {
                    out.push(Trivia::Blank);
                }
            }
            rest = &rest[c.len_utf8()..];
            continue;
        };
        let same_line = newlines == 0 && out.is_empty();
        out.push(Trivia::Comment {
            text: rest[..comment_len].trim_end().to_owned(),
            same_line,
        });
        newlines = 0;
        rest = &rest[comment_len..];
    }
    // Blank lines only count between comments.
    while out.last() == Some(&Trivia::Blank) {
        out.pop();
    }
    out
}

fn has_comment(raw: Option<&hcl::edit::RawString>) -> bool {
    raw.is_some_and(|r| {
        trivia(r)
            .iter()
            .any(|t| matches!(t, Trivia::Comment { .. }))
    })
}

fn prefix(decor: &Decor) -> Vec<Trivia> {
    decor.prefix().map(|r| trivia(r)).unwrap_or_default()
}

fn suffix(decor: &Decor) -> Vec<Trivia> {
    decor.suffix().map(|r| trivia(r)).unwrap_or_default()
}

struct Printer<'a> {
    source: &'a str,
    out: String,
}

impl Printer<'_> {
    /// `line N: ` for an element the parser placed.
    fn at(&self, element: &impl Span) -> String {
        match element.span() {
            Some(span) => {
                let line = self.source[..span.start.min(self.source.len())]
                    .matches('\n')
                    .count()
                    + 1;
                format!("line {line}: ")
            }
            None => String::new(),
        }
    }

    fn top_level(&mut self, body: &Body) -> Result<(), String> {
        for (i, structure) in body.iter().enumerate() {
            if i > 0 {
                self.out.push('\n');
            }
            self.own_line_comments(&prefix(structure.decor()), "", i == 0);
            match structure {
                Structure::Attribute(attr) if attr.key.as_str() == "name" => {
                    let value = single_string(&attr.value)
                        .ok_or_else(|| format!("{}name must be a string", self.at(attr)))?;
                    self.check_no_comment_inside_attribute(attr)?;
                    let _ = write!(self.out, "name = {}", quoted(value));
                }
                Structure::Attribute(attr) => {
                    return Err(format!(
                        "{}unknown key {:?} at the top level (a policy is path blocks)",
                        self.at(attr),
                        attr.key.as_str()
                    ));
                }
                Structure::Block(block) => self.path_block(block)?,
            }
            self.end_of_line(&suffix(structure.decor()));
            self.out.push('\n');
        }
        let trailing = suffix(body.decor());
        if !trailing.is_empty() {
            self.out.push('\n');
            self.own_line_comments(&trailing, "", true);
        }
        Ok(())
    }

    fn path_block(&mut self, block: &Block) -> Result<(), String> {
        let at = self.at(block);
        if block.ident.as_str() != "path" {
            return Err(format!(
                "{at}unknown block {:?} (a policy is path blocks)",
                block.ident.as_str()
            ));
        }
        let [BlockLabel::String(label)] = block.labels.as_slice() else {
            return Err(format!(
                "{at}a path block needs exactly one quoted label: path \"secret/*\" {{ ... }}"
            ));
        };
        let pattern = label.as_str();
        if has_comment(block.ident.decor().suffix())
            || has_comment(label.decor().prefix())
            || has_comment(label.decor().suffix())
        {
            return Err(format!(
                "{at}path {pattern:?}: a comment inside `path \"...\" {{` has no place in the \
                 layout; move it to its own line above"
            ));
        }
        let _ = write!(self.out, "path {} {{", quoted(pattern));
        // A comment after `{` on the same line stays there.
        let opening = prefix(block.body.decor());
        self.end_of_line(&same_line_only(&opening));
        self.out.push('\n');
        let inner: Vec<Trivia> = opening
            .into_iter()
            .filter(|t| {
                !matches!(
                    t,
                    Trivia::Comment {
                        same_line: true,
                        ..
                    }
                )
            })
            .collect();
        self.own_line_comments(&inner, INDENT, true);

        let width = block
            .body
            .iter()
            .filter_map(|s| s.as_attribute())
            .map(|a| a.key.as_str().len())
            .max()
            .unwrap_or(0);
        if block.body.is_empty() {
            return Err(format!("{at}path {pattern:?} grants no capabilities"));
        }
        for (i, structure) in block.body.iter().enumerate() {
            let Structure::Attribute(attr) = structure else {
                return Err(format!(
                    "{}path {pattern:?}: nested blocks are not allowed",
                    self.at(structure)
                ));
            };
            self.own_line_comments(&prefix(attr.decor()), INDENT, i == 0);
            self.check_no_comment_inside_attribute(attr)?;
            let key = attr.key.as_str();
            let strings = self.check_path_attribute(pattern, attr)?;
            let _ = write!(self.out, "{INDENT}{key:<width$} = ");
            match &attr.value {
                Expression::Array(array) => self.array(array, INDENT)?,
                _ => self.out.push_str(&quoted(&strings[0])),
            }
            self.end_of_line(&suffix(attr.decor()));
            self.out.push('\n');
        }
        let closing = suffix(block.body.decor());
        let closing: Vec<Trivia> = closing.into_iter().map(own_line).collect();
        self.own_line_comments(&closing, INDENT, false);
        self.out.push('}');
        Ok(())
    }

    /// The string values of a path block's attribute, checked.
    fn check_path_attribute(&self, pattern: &str, attr: &Attribute) -> Result<Vec<String>, String> {
        let at = self.at(attr);
        let key = attr.key.as_str();
        let strings = || {
            strings(&attr.value)
                .ok_or_else(|| format!("{at}path {pattern:?}: {key} must be a list of strings"))
        };
        match key {
            "capabilities" => {
                let values = strings()?;
                for value in &values {
                    let name = value.trim().to_ascii_lowercase();
                    if !CAPABILITIES.contains(&name.as_str()) {
                        return Err(format!(
                            "{at}path {pattern:?}: unknown capability {value:?} (known: {})",
                            CAPABILITIES.join(", ")
                        ));
                    }
                }
                Ok(values)
            }
            "policy" => match single_string(&attr.value) {
                Some(v) if LEGACY_POLICIES.contains(&v.trim().to_ascii_lowercase().as_str()) => {
                    Ok(vec![v.to_owned()])
                }
                _ => Err(format!(
                    "{at}path {pattern:?}: policy must be one of {}",
                    LEGACY_POLICIES.join(", ")
                )),
            },
            k if UNSUPPORTED_KEYS.contains(&k) => Err(format!(
                "{at}path {pattern:?}: {k} is not supported by secretd (a policy that uses it \
                 is refused rather than enforced partly)"
            )),
            other => Err(format!("{at}path {pattern:?}: unknown key {other:?}")),
        }
    }

    fn check_no_comment_inside_attribute(&self, attr: &Attribute) -> Result<(), String> {
        let value = attr.value.decor();
        if has_comment(attr.key.decor().suffix())
            || has_comment(value.prefix())
            || has_comment(value.suffix())
        {
            return Err(format!(
                "{}a comment around the `=` of {} has no place in the layout; move it to its \
                 own line above",
                self.at(attr),
                attr.key.as_str()
            ));
        }
        Ok(())
    }

    /// `["a", "b"]`, or one item per line when comments sit among them.
    fn array(&mut self, array: &Array, indent: &str) -> Result<(), String> {
        let items: Vec<&Expression> = array.iter().collect();
        let trailing = trivia(array.trailing());
        let commented = !trailing.is_empty()
            || items
                .iter()
                .any(|item| !prefix(item.decor()).is_empty() || !suffix(item.decor()).is_empty());
        let quoted_items: Vec<String> = items
            .iter()
            .map(|item| single_string(item).map(quoted))
            .collect::<Option<_>>()
            .ok_or("array items must be strings")?;
        if !commented {
            let _ = write!(self.out, "[{}]", quoted_items.join(", "));
            return Ok(());
        }
        let inner = format!("{indent}{INDENT}");
        self.out.push('[');
        for (i, item) in items.iter().enumerate() {
            let before = prefix(item.decor());
            // A same-line comment before this item ends the previous line.
            self.end_of_line(&same_line_only(&before));
            self.out.push('\n');
            let own: Vec<Trivia> = before
                .into_iter()
                .filter(|t| {
                    !matches!(
                        t,
                        Trivia::Comment {
                            same_line: true,
                            ..
                        }
                    )
                })
                .collect();
            self.own_line_comments(&own, &inner, i == 0);
            let _ = write!(self.out, "{inner}{},", quoted_items[i]);
            self.end_of_line(
                &suffix(item.decor())
                    .into_iter()
                    .map(same_line)
                    .collect::<Vec<_>>(),
            );
        }
        self.end_of_line(&same_line_only(&trailing));
        self.out.push('\n');
        let own: Vec<Trivia> = trailing
            .into_iter()
            .filter(|t| {
                !matches!(
                    t,
                    Trivia::Comment {
                        same_line: true,
                        ..
                    }
                )
            })
            .collect();
        self.own_line_comments(&own, &inner, false);
        let _ = write!(self.out, "{indent}]");
        Ok(())
    }

    /// Comments on lines of their own, each followed by a newline; blank
    /// lines between them kept (one at most). Leading blank lines are
    /// dropped at the start of a body.
    fn own_line_comments(&mut self, pieces: &[Trivia], indent: &str, first_in_body: bool) {
        let mut started = false;
        for piece in pieces {
            match piece {
                Trivia::Blank if started || !first_in_body => {
                    if !self.out.ends_with("\n\n") && !self.out.is_empty() {
                        self.out.push('\n');
                    }
                }
                Trivia::Blank => {}
                Trivia::Comment { text, .. } => {
                    // Only the first line is indented: the lines of a
                    // block comment are kept as written, or every run
                    // would indent them further.
                    let _ = write!(self.out, "{indent}");
                    for line in text.lines() {
                        let _ = writeln!(self.out, "{}", line.trim_end());
                    }
                    started = true;
                }
            }
        }
    }

    /// Comments that end the current line: ` # ...` after it.
    fn end_of_line(&mut self, pieces: &[Trivia]) {
        for piece in pieces {
            if let Trivia::Comment { text, .. } = piece {
                let _ = write!(self.out, " {text}");
            }
        }
    }
}

fn same_line_only(pieces: &[Trivia]) -> Vec<Trivia> {
    pieces
        .iter()
        .filter(|t| {
            matches!(
                t,
                Trivia::Comment {
                    same_line: true,
                    ..
                }
            )
        })
        .cloned()
        .collect()
}

fn same_line(piece: Trivia) -> Trivia {
    match piece {
        Trivia::Comment { text, .. } => Trivia::Comment {
            text,
            same_line: true,
        },
        blank => blank,
    }
}

fn own_line(piece: Trivia) -> Trivia {
    match piece {
        Trivia::Comment { text, .. } => Trivia::Comment {
            text,
            same_line: false,
        },
        blank => blank,
    }
}

/// The value of a plain string expression.
fn single_string(expr: &Expression) -> Option<&str> {
    match expr {
        Expression::String(s) => Some(s.as_str()),
        _ => None,
    }
}

/// One string, or an array of strings.
fn strings(expr: &Expression) -> Option<Vec<String>> {
    match expr {
        Expression::String(s) => Some(vec![s.as_str().to_owned()]),
        Expression::Array(items) => items
            .iter()
            .map(|item| single_string(item).map(str::to_owned))
            .collect(),
        _ => None,
    }
}

/// A string as a quoted HCL literal: `\\`, `"` and control characters
/// escaped as hcl-edit escapes them, and every `${` and `%{` as `$${` and
/// `%%{`. Not hcl-edit's encoder: after the first marker it reads the
/// rest two characters at a time and misses a `${` that starts on the
/// second of a pair, which then reads back one `$` short (found by
/// fuzz/policy_hcl).
fn quoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    let mut chars = value.chars().peekable();
    while let Some(ch) = chars.next() {
        match ch {
            '$' | '%' if chars.peek() == Some(&'{') => {
                out.push(ch);
                out.push(ch);
            }
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c <= '\u{1f}' || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSY: &str = "# Team A\n\n# reads app secrets\npath   \"secret/data/app/*\"   {\ncapabilities=[\"read\",\"list\"]   # read only\n}\npath \"sys/mounts\" { capabilities = [\"read\"] }\n\n\n\npath \"auth/token/*\" {   // tokens\n    capabilities = [\n      # all of them\n      \"create\", # make\n      \"read\",\n      /* and */ \"update\"\n    ]\n    # done\n}\n# the end\n";

    const CANONICAL: &str = "# Team A

# reads app secrets
path \"secret/data/app/*\" {
  capabilities = [\"read\", \"list\"] # read only
}

path \"sys/mounts\" {
  capabilities = [\"read\"]
}

path \"auth/token/*\" { // tokens
  capabilities = [
    # all of them
    \"create\", # make
    \"read\",
    /* and */
    \"update\",
  ]
  # done
}

# the end
";

    /// The comments of `text`, as the parser sees them.
    fn comments(text: &str) -> Vec<String> {
        let mut found = Vec::new();
        let mut collect = |raw: Option<&hcl::edit::RawString>| {
            for t in raw.map(|r| trivia(r)).unwrap_or_default() {
                if let Trivia::Comment { text, .. } = t {
                    found.push(text);
                }
            }
        };
        let body = hcl::edit::parser::parse_body(text).unwrap();
        for structure in body.iter() {
            collect(structure.decor().prefix());
            collect(structure.decor().suffix());
            if let Structure::Block(block) = structure {
                collect(block.body.decor().prefix());
                for attr in block.body.iter() {
                    collect(attr.decor().prefix());
                    collect(attr.decor().suffix());
                    if let Some(Expression::Array(array)) = attr.as_attribute().map(|a| &a.value) {
                        for item in array.iter() {
                            collect(item.decor().prefix());
                            collect(item.decor().suffix());
                        }
                        collect(Some(array.trailing()));
                    }
                }
                collect(block.body.decor().suffix());
            }
        }
        collect(body.decor().suffix());
        found.sort();
        found
    }

    #[test]
    fn formats_a_messy_policy_canonically_and_keeps_comments() {
        let formatted = format_policy(MESSY).unwrap();
        assert_eq!(formatted, CANONICAL);
        assert_eq!(comments(&formatted), comments(MESSY));
        assert_eq!(comments(MESSY).len(), 9);
    }

    #[test]
    fn formatting_is_idempotent_and_keeps_the_meaning() {
        let samples = [
            MESSY,
            CANONICAL,
            "path \"a\" {\n  capabilities = [\"read\"]\n  policy = \"write\"\n}\n",
            "name = \"x\"\npath \"a\" { policy = \"deny\" }",
            "path \"we\\\"ird\\\\x\" { capabilities = \"read\" }\n",
            "",
            "# only a comment\n",
        ];
        for sample in samples {
            let once = format_policy(sample).unwrap();
            assert_eq!(format_policy(&once).unwrap(), once, "{sample:?}");
            let before: hcl::Body = hcl::parse(sample).unwrap();
            let after: hcl::Body = hcl::parse(&once).unwrap();
            assert_eq!(before, after, "{sample:?} → {once:?}");
        }
    }

    #[test]
    fn aligns_equals_and_keeps_odd_labels_escaped() {
        let formatted =
            format_policy("path \"a\\\"b\" {\ncapabilities = [\"read\"]\npolicy = \"read\"\n}")
                .unwrap();
        assert_eq!(
            formatted,
            "path \"a\\\"b\" {\n  capabilities = [\"read\"]\n  policy       = \"read\"\n}\n"
        );
    }

    #[test]
    fn every_string_reads_back_from_its_quoted_form() {
        // Every string of up to 5 of these characters, as a block label.
        let alphabet = ['$', '%', '{', 'a', '\\', '"', '\n', '\u{1}'];
        let mut strings = vec![String::new()];
        for _ in 0..5 {
            let longer: Vec<String> = strings
                .iter()
                .filter(|s| s.chars().count() == strings.last().unwrap().chars().count())
                .flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}")))
                .collect();
            strings.extend(longer);
        }
        for value in &strings {
            let text = format!("path {} {{}}", quoted(value));
            let body = hcl::edit::parser::parse_body(&text)
                .unwrap_or_else(|e| panic!("{value:?} as {text:?}: {e}"));
            let block = body.get_blocks("path").next().unwrap();
            assert_eq!(block.labels[0].as_str(), value, "{text:?}");
        }
        // What hcl-edit's own encoder got wrong: the second marker here.
        let label = "a${  $$$$$${";
        assert_eq!(quoted(label), "\"a$${  $$$$$$${\"");
        let formatted = format_policy(&format!(
            "path {} {{ capabilities = [\"read\"] }}",
            quoted(label)
        ))
        .unwrap();
        assert!(formatted.starts_with(&format!("path {} {{", quoted(label))));
    }

    #[test]
    fn refuses_what_is_not_a_policy() {
        let cases = [
            ("{\"path\": {}}", "JSON"),
            ("path \"a\" {", "not valid HCL"),
            (
                "path \"a\" { capabilities = [\"reed\"] }",
                "unknown capability \"reed\"",
            ),
            ("path \"a\" { capabilities = [1] }", "list of strings"),
            ("path \"a\" { color = \"red\" }", "unknown key \"color\""),
            (
                "path \"a\" { allowed_parameters = {} }",
                "not supported by secretd",
            ),
            ("path \"a\" { policy = \"all\" }", "policy must be one of"),
            ("path \"a\" {\n}", "grants no capabilities"),
            ("path \"a\" {\n  x {\n  }\n}", "nested blocks"),
            ("path \"a\" { capabilities = \"${x}\" }", "list of strings"),
            ("path { capabilities = [] }", "exactly one quoted label"),
            (
                "path \"a\" \"b\" { capabilities = [] }",
                "exactly one quoted label",
            ),
            ("rule \"a\" { capabilities = [] }", "unknown block \"rule\""),
            ("x = 1", "unknown key \"x\" at the top level"),
            ("\n\npath \"a\" /* c */ { capabilities = [] }", "line 3: "),
            ("path \"a\" { capabilities /* c */ = [] }", "around the `=`"),
        ];
        for (text, expected) in cases {
            let err = format_policy(text).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }

    #[test]
    fn splits_trivia_into_comments_and_blank_lines() {
        assert_eq!(
            trivia(" # end of line\n\n\n  // own\n/* multi\n line */\n\n"),
            vec![
                Trivia::Comment {
                    text: "# end of line".into(),
                    same_line: true
                },
                Trivia::Blank,
                Trivia::Comment {
                    text: "// own".into(),
                    same_line: false
                },
                Trivia::Comment {
                    text: "/* multi\n line */".into(),
                    same_line: false
                },
            ]
        );
        assert!(trivia("  \n ").is_empty());
    }

    #[test]
    fn a_block_comment_starting_with_a_slash_is_kept_whole() {
        // Found by fuzz/policy_hcl: `/*/` was taken for a whole comment,
        // and the output was no longer HCL.
        let text = "# cp\n\n/*/tla_i*/\npath \"a\" { capabilities = [\"read\"] }\n";
        let formatted = format_policy(text).unwrap();
        assert!(formatted.contains("/*/tla_i*/"), "{formatted}");
        assert_eq!(format_policy(&formatted).unwrap(), formatted);
        assert_eq!(
            trivia("/*/ x */"),
            vec![Trivia::Comment {
                text: "/*/ x */".into(),
                same_line: true
            }]
        );
    }

    #[test]
    fn a_multi_line_block_comment_keeps_its_lines_as_written() {
        // Found by fuzz/policy_hcl: every line of the comment was indented,
        // so each run of `policy fmt` indented its inner lines further.
        let text = "path \"a\" {\n   \n/*\n\n/*/ capabilities = [\"read\"]\n}\n";
        let formatted = format_policy(text).unwrap();
        assert_eq!(
            formatted,
            "path \"a\" {\n  /*\n\n/*/\n  capabilities = [\"read\"]\n}\n"
        );
        assert_eq!(format_policy(&formatted).unwrap(), formatted);
        let nested = "path \"a\" {\n    /* one\n       two  \n    */\n    capabilities = []\n}\n";
        let formatted = format_policy(nested).unwrap();
        assert_eq!(
            formatted,
            "path \"a\" {\n  /* one\n       two\n    */\n  capabilities = []\n}\n"
        );
        assert_eq!(format_policy(&formatted).unwrap(), formatted);
    }
}
