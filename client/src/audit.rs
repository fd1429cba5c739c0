//! The hash chain of secretd's audit files, shared by the server that
//! writes them and `secretctl audit verify`, which checks them offline.
//!
//! Every line is one JSON object whose first two members are
//! `"seq":N,"prev_hash":"sha256:<hex>"`: a sequence number counting lines
//! of the device from 1, and the SHA-256 of the exact bytes of the line
//! before it (without its newline). The first line of a chain has
//! `"prev_hash":""`. Removing, editing or reordering a line breaks the
//! link of the line after it.
//!
//! What the chain cannot show from the file alone: lines cut off the end
//! (nothing follows them), and a file rewritten from the edit onwards by
//! someone who recomputes every hash after it. Ship the log off the host
//! (a `stdout` device into a log collector) to guard against those.

use std::fmt;

use sha2::{Digest, Sha256};

const HASH_PREFIX: &str = "sha256:";

/// The SHA-256 of a line's bytes, as it appears in `prev_hash`.
pub fn line_hash(line: &[u8]) -> String {
    let digest = Sha256::digest(line);
    let mut out = String::with_capacity(HASH_PREFIX.len() + 64);
    out.push_str(HASH_PREFIX);
    for byte in digest {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// The writer's end: where the chain is, and how to extend it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChainHead {
    /// The `seq` of the last line written; 0 before the first.
    pub seq: u64,
    /// The hash of the last line written; empty before the first.
    pub hash: String,
}

impl ChainHead {
    /// Carries on the chain of an existing file from its last line.
    pub fn after(last_line: &[u8]) -> Result<ChainHead, ChainProblem> {
        let link = Link::parse(last_line)?;
        Ok(ChainHead {
            seq: link.seq,
            hash: line_hash(last_line),
        })
    }

    /// The next line: `body` (one serialised JSON object, `{...}`) with
    /// the chain members put first. Returns the line without a newline.
    pub fn link(&mut self, body: &[u8]) -> Vec<u8> {
        // `members` is everything after the opening brace, closing brace
        // included; anything but an object is a caller's bug, logged as {}.
        let members: &[u8] = body.strip_prefix(b"{").unwrap_or(b"}");
        let comma = if members.starts_with(b"}") { "" } else { "," };
        let seq = self.seq + 1;
        let head = format!("{{\"seq\":{seq},\"prev_hash\":\"{}\"{comma}", self.hash);
        let mut line = Vec::with_capacity(head.len() + members.len());
        line.extend_from_slice(head.as_bytes());
        line.extend_from_slice(members);
        self.seq = seq;
        self.hash = line_hash(&line);
        line
    }
}

/// The chain members of one line.
#[derive(serde::Deserialize)]
struct Link {
    seq: u64,
    prev_hash: String,
}

impl Link {
    fn parse(line: &[u8]) -> Result<Link, ChainProblem> {
        serde_json::from_slice(line).map_err(|_| ChainProblem::NotALink)
    }
}

/// Why a line does not continue the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainProblem {
    /// Not a JSON object with `seq` and `prev_hash` (edited, or torn by a
    /// crash mid-write).
    NotALink,
    /// `prev_hash` is not the hash of the line before: that line was
    /// edited, or lines were removed or reordered.
    Broken { expected_seq: u64, seq: u64 },
    /// The hash matches but the number does not: a forged line.
    BadSequence { expected_seq: u64, seq: u64 },
}

impl fmt::Display for ChainProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChainProblem::NotALink => {
                f.write_str("not an audit line with seq and prev_hash (edited or torn)")
            }
            ChainProblem::Broken { expected_seq, seq } => write!(
                f,
                "prev_hash does not match the line before (expected seq {expected_seq}, \
                 found seq {seq}): a line before this one was edited, removed or moved"
            ),
            ChainProblem::BadSequence { expected_seq, seq } => write!(
                f,
                "seq {seq} where {expected_seq} was expected, with a matching prev_hash"
            ),
        }
    }
}

/// Checks lines one after another, possibly across rotated files.
#[derive(Debug, Default)]
pub struct Verifier {
    head: Option<ChainHead>,
    lines: u64,
    first_seq: Option<u64>,
    starts_chain: bool,
}

/// What a successful verification saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    /// Lines checked.
    pub lines: u64,
    /// `seq` of the first line, if there was one.
    pub first_seq: Option<u64>,
    /// Whether the first line starts a chain (`prev_hash` empty). If not,
    /// the file continues an earlier one (log rotation): give the earlier
    /// files first to check the link between them.
    pub starts_chain: bool,
    /// The last line's `seq` and hash, to compare with a copy kept
    /// elsewhere: the chain cannot show lines cut off the end.
    pub head: Option<ChainHead>,
}

impl Verifier {
    pub fn new() -> Self {
        Verifier::default()
    }

    /// Checks the next line (without its newline).
    pub fn feed(&mut self, line: &[u8]) -> Result<(), ChainProblem> {
        let link = Link::parse(line)?;
        match &self.head {
            None => {
                self.first_seq = Some(link.seq);
                self.starts_chain = link.prev_hash.is_empty();
                if self.starts_chain && link.seq != 1 {
                    return Err(ChainProblem::BadSequence {
                        expected_seq: 1,
                        seq: link.seq,
                    });
                }
            }
            Some(head) => {
                let expected_seq = head.seq + 1;
                if link.prev_hash != head.hash {
                    return Err(ChainProblem::Broken {
                        expected_seq,
                        seq: link.seq,
                    });
                }
                if link.seq != expected_seq {
                    return Err(ChainProblem::BadSequence {
                        expected_seq,
                        seq: link.seq,
                    });
                }
            }
        }
        self.head = Some(ChainHead {
            seq: link.seq,
            hash: line_hash(line),
        });
        self.lines += 1;
        Ok(())
    }

    pub fn report(&self) -> ChainReport {
        ChainReport {
            lines: self.lines,
            first_seq: self.first_seq,
            starts_chain: self.starts_chain,
            head: self.head.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn chain(bodies: &[&str]) -> Vec<Vec<u8>> {
        let mut head = ChainHead::default();
        bodies.iter().map(|b| head.link(b.as_bytes())).collect()
    }

    fn verify(lines: &[Vec<u8>]) -> Result<ChainReport, (usize, ChainProblem)> {
        let mut verifier = Verifier::new();
        for (i, line) in lines.iter().enumerate() {
            verifier.feed(line).map_err(|p| (i, p))?;
        }
        Ok(verifier.report())
    }

    #[test]
    fn links_are_valid_json_with_the_chain_first() {
        let lines = chain(&[r#"{"type":"request","n":1}"#, "{}", r#"{"a":"b"}"#]);
        let first: serde_json::Value = serde_json::from_slice(&lines[0]).unwrap();
        assert_eq!(first["seq"], 1);
        assert_eq!(first["prev_hash"], "");
        assert_eq!(first["type"], "request");
        assert!(lines[0].starts_with(br#"{"seq":1,"prev_hash":"","#));
        assert_eq!(
            lines[1],
            format!(r#"{{"seq":2,"prev_hash":"{}"}}"#, line_hash(&lines[0])).into_bytes()
        );
        let third: serde_json::Value = serde_json::from_slice(&lines[2]).unwrap();
        assert_eq!(third["a"], "b");
        let report = verify(&lines).unwrap();
        assert_eq!(report.lines, 3);
        assert!(report.starts_chain);
        assert_eq!(report.head.unwrap().hash, line_hash(&lines[2]));
    }

    #[test]
    fn removed_edited_and_swapped_lines_are_found() {
        let lines = chain(&[r#"{"n":1}"#, r#"{"n":2}"#, r#"{"n":3}"#, r#"{"n":4}"#]);

        let mut removed = lines.clone();
        removed.remove(1);
        assert!(matches!(
            verify(&removed),
            Err((1, ChainProblem::Broken { .. }))
        ));

        let mut edited = lines.clone();
        edited[1] = String::from_utf8(edited[1].clone())
            .unwrap()
            .replace("\"n\":2", "\"n\":9")
            .into_bytes();
        assert!(matches!(
            verify(&edited),
            Err((2, ChainProblem::Broken { .. }))
        ));

        let mut swapped = lines.clone();
        swapped.swap(1, 2);
        assert!(verify(&swapped).is_err());

        let mut first_removed = lines.clone();
        first_removed.remove(0);
        let report = verify(&first_removed).unwrap();
        assert!(!report.starts_chain, "a tail reads as a rotated file");
        assert_eq!(report.first_seq, Some(2));

        assert_eq!(
            verify(&[b"{\"seq\":1,\"prev_hash\":\"\",\"n\"".to_vec()]),
            Err((0, ChainProblem::NotALink))
        );
    }

    #[test]
    fn a_restarted_writer_carries_the_chain_on() {
        let lines = chain(&[r#"{"n":1}"#, r#"{"n":2}"#]);
        let mut head = ChainHead::after(&lines[1]).unwrap();
        let mut all = lines.clone();
        all.push(head.link(br#"{"n":3}"#));
        assert_eq!(verify(&all).unwrap().lines, 3);
        assert_eq!(ChainHead::after(b"torn{"), Err(ChainProblem::NotALink));
    }

    proptest! {
        #[test]
        fn verifying_never_panics(lines in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..80), 0..8)) {
            let _ = verify(&lines);
        }

        #[test]
        fn any_chain_of_objects_verifies(values in proptest::collection::vec(any::<i64>(), 1..20)) {
            let bodies: Vec<String> = values.iter().map(|v| format!("{{\"v\":{v}}}")).collect();
            let refs: Vec<&str> = bodies.iter().map(String::as_str).collect();
            prop_assert_eq!(verify(&chain(&refs)).unwrap().lines, values.len() as u64);
        }
    }
}
