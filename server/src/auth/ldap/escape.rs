//! Putting untrusted text into LDAP filters and DNs, and reading group
//! names back out of DNs.
//!
//! Every value a caller controls (the username, and the DNs the directory
//! hands back) is escaped before it is placed in a filter (RFC 4515) or a
//! DN (RFC 4514), so no input can change the structure of what we send:
//! `*)(uid=*` is looked up as those eight characters, never as a wildcard.
//! Vault's filters are Go templates with `{{.Username}}`-style
//! placeholders; [`render`] fills them in, and refuses any other template
//! syntax so a typo is caught when the config is written.

/// Escapes a value for use inside a search filter (RFC 4515 §3): `*`, `(`,
/// `)`, `\`, NUL and every byte outside ASCII become `\xx`.
pub fn filter_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        if matches!(b, b'*' | b'(' | b')' | b'\\' | 0) || !b.is_ascii() || b.is_ascii_control() {
            push_hex(&mut out, b);
        } else {
            out.push(char::from(b));
        }
    }
    out
}

/// Escapes a value for use as an attribute value in a DN (RFC 4514 §2.4):
/// the special characters get a backslash, a leading space or `#` and a
/// trailing space are escaped, and control characters become `\xx`.
pub fn dn_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' | '=' => {
                out.push('\\');
                out.push(c);
            }
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            '#' if i == 0 => out.push_str("\\#"),
            c if c.is_control() => {
                let mut buf = [0u8; 4];
                for &b in c.encode_utf8(&mut buf).as_bytes() {
                    push_hex(&mut out, b);
                }
            }
            c => out.push(c),
        }
    }
    out
}

fn push_hex(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('\\');
    out.push(char::from(HEX[usize::from(b >> 4)]));
    out.push(char::from(HEX[usize::from(b & 0xf)]));
}

/// Fills in a Vault filter template (`({{.UserAttr}}={{.Username}})`).
/// The values must already be escaped for a filter. Only `{{.Name}}` (with
/// optional spaces inside the braces) for the names given is allowed.
pub fn render(template: &str, values: &[(&str, &str)]) -> Result<String, String> {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| format!("unclosed {{{{ in template {template:?}"))?;
        let name = after[..end].trim();
        let value = name
            .strip_prefix('.')
            .and_then(|n| values.iter().find(|(k, _)| *k == n))
            .map(|(_, v)| *v)
            .ok_or_else(|| {
                let known: Vec<String> = values
                    .iter()
                    .map(|(k, _)| format!("{{{{.{k}}}}}"))
                    .collect();
                format!(
                    "unknown placeholder {{{{{name}}}}} in template {template:?}; use {}",
                    known.join(" or ")
                )
            })?;
        out.push_str(value);
        rest = &after[end + 2..];
    }
    if rest.contains("}}") {
        return Err(format!("unopened }}}} in template {template:?}"));
    }
    out.push_str(rest);
    Ok(out)
}

/// One attribute-value pair of a parsed DN, the value unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ava {
    pub attr: String,
    pub value: String,
}

/// Parses a DN into its RDNs (each a list of attribute-value pairs), or
/// `None` when it is not a DN (a plain group name, say).
pub fn parse_dn(dn: &str) -> Option<Vec<Vec<Ava>>> {
    if dn.trim_matches(' ').is_empty() {
        return None;
    }
    let mut rdns = Vec::new();
    for rdn in split_unescaped(dn, &[',', ';']) {
        let mut avas = Vec::new();
        for ava in split_unescaped(rdn, &['+']) {
            let eq = ava.find('=')?;
            // Only ASCII spaces around a type or value are insignificant
            // (RFC 4514); a no-break space is part of the value.
            let attr = ava[..eq].trim_matches(' ');
            if attr.is_empty()
                || !attr
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            {
                return None;
            }
            let value = unescape_dn_value(ava[eq + 1..].trim_start_matches(' '))?;
            avas.push(Ava {
                attr: attr.to_owned(),
                value,
            });
        }
        rdns.push(avas);
    }
    Some(rdns)
}

/// Splits at the separators that are not escaped with a backslash.
fn split_unescaped<'a>(s: &'a str, separators: &[char]) -> Vec<&'a str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if separators.contains(&c) {
            parts.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&s[start..]);
    parts
}

/// Undoes RFC 4514 escaping (`\,` and `\2c`); `None` if malformed. A
/// trailing unescaped space is dropped, as in a DN it is insignificant.
fn unescape_dn_value(value: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(value.len());
    let raw = value.as_bytes();
    let mut i = 0;
    let mut end_significant = 0;
    while i < raw.len() {
        if raw[i] == b'\\' {
            let next = *raw.get(i + 1)?;
            if next.is_ascii_hexdigit() {
                let hi = hex_digit(next)?;
                let lo = hex_digit(*raw.get(i + 2)?)?;
                bytes.push(hi << 4 | lo);
                i += 3;
            } else {
                bytes.push(next);
                i += 2;
            }
            end_significant = bytes.len();
        } else {
            bytes.push(raw[i]);
            if raw[i] != b' ' {
                end_significant = bytes.len();
            }
            i += 1;
        }
    }
    bytes.truncate(end_significant);
    String::from_utf8(bytes).ok()
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The group name Vault takes from a group DN or attribute value: the
/// value of the first `cn` in it, or the text itself when it is not a DN
/// or has no `cn`. With `legacy_upper_case_only` (Vault's
/// `use_pre111_group_cn_behavior`) only an upper-case `CN` counts.
pub fn first_cn(value: &str, legacy_upper_case_only: bool) -> String {
    let matches = |attr: &str| {
        if legacy_upper_case_only {
            attr == "CN"
        } else {
            attr.eq_ignore_ascii_case("cn")
        }
    };
    parse_dn(value)
        .and_then(|rdns| {
            rdns.into_iter()
                .flatten()
                .find(|ava| matches(&ava.attr))
                .map(|ava| ava.value)
        })
        .unwrap_or_else(|| value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ldap3::asn1::{OctetString, Sequence, Tag};
    use proptest::prelude::*;

    #[test]
    fn filter_specials_and_non_ascii_are_hex_escaped() {
        assert_eq!(filter_value("alice"), "alice");
        assert_eq!(filter_value("*"), "\\2a");
        assert_eq!(filter_value(")(uid=*)"), "\\29\\28uid=\\2a\\29");
        assert_eq!(filter_value("a\\b\0"), "a\\5cb\\00");
        assert_eq!(filter_value("zoë"), "zo\\c3\\ab");
    }

    #[test]
    fn dn_specials_are_escaped() {
        assert_eq!(dn_value("alice"), "alice");
        assert_eq!(dn_value("a,b+c=d"), "a\\,b\\+c\\=d");
        assert_eq!(dn_value(" #x "), "\\ #x\\ ");
        assert_eq!(dn_value("#x"), "\\#x");
        assert_eq!(dn_value("a\0b"), "a\\00b");
        assert_eq!(dn_value("zoë"), "zoë");
    }

    #[test]
    fn templates_take_only_known_placeholders() {
        let values = [("UserAttr", "uid"), ("Username", "al\\2a")];
        assert_eq!(
            render("({{.UserAttr}}={{ .Username }})", &values).unwrap(),
            "(uid=al\\2a)"
        );
        assert!(
            render("({{.Nope}}=x)", &values)
                .unwrap_err()
                .contains("unknown")
        );
        assert!(render("({{.UserAttr}=x)", &values).is_err());
        assert!(render("(uid={{.Username}})}}", &values).is_err());
        assert!(render("{{if .Username}}x{{end}}", &values).is_err());
    }

    #[test]
    fn group_names_are_the_first_cn() {
        assert_eq!(
            first_cn("cn=devs,ou=groups,dc=example,dc=org", false),
            "devs"
        );
        assert_eq!(
            first_cn("CN=Domain Admins,CN=Users,DC=corp", false),
            "Domain Admins"
        );
        assert_eq!(first_cn("ou=x,cn=inner,dc=y", false), "inner");
        assert_eq!(first_cn("cn=a\\,b,dc=y", false), "a,b");
        assert_eq!(first_cn("cn=caf\\c3\\a9,dc=y", false), "café");
        assert_eq!(first_cn("devs", false), "devs");
        assert_eq!(first_cn("uid=alice,dc=y", false), "uid=alice,dc=y");
        assert_eq!(first_cn("cn=devs,dc=y", true), "cn=devs,dc=y");
        assert_eq!(first_cn("CN=devs,dc=y", true), "devs");
    }

    /// The equality match `(attr=value)` inside a parsed filter.
    fn equality(tag: &Tag) -> Option<(Vec<u8>, Vec<u8>)> {
        match tag {
            Tag::Sequence(Sequence { id: 3, inner, .. }) => match inner.as_slice() {
                [
                    Tag::OctetString(OctetString { inner: attr, .. }),
                    Tag::OctetString(OctetString { inner: value, .. }),
                ] => Some((attr.clone(), value.clone())),
                _ => None,
            },
            _ => None,
        }
    }

    proptest! {
        /// Whatever the username, the rendered filter parses to the same
        /// shape (an AND of two equality matches) with the username as the
        /// exact value of the second: no wildcard, no extra clause.
        #[test]
        fn escaping_never_changes_a_filters_structure(name in "\\PC*|[*()\\\\\0a-z=|&!]{0,12}") {
            let filter = format!("(&(objectClass=person)(uid={}))", filter_value(&name));
            let parsed = ldap3::parse_filter(&filter).expect("an escaped filter parses");
            let Tag::Sequence(Sequence { id: 0, inner, .. }) = parsed else {
                panic!("not an AND: {filter}");
            };
            prop_assert_eq!(inner.len(), 2);
            let (attr, value) = equality(&inner[1]).expect("an equality match");
            prop_assert_eq!(attr, b"uid".to_vec());
            prop_assert_eq!(value, name.as_bytes().to_vec());
        }

        /// Whatever the username, the DN built from it has exactly the
        /// RDNs of the template, and its first value is the username.
        #[test]
        fn escaping_never_changes_a_dns_rdn_count(name in "\\PC+|[ #,+;<>=\\\\\"\0a-z]{1,12}") {
            let dn = format!("uid={},ou=people,dc=example,dc=org", dn_value(&name));
            let rdns = parse_dn(&dn).expect("an escaped DN parses");
            prop_assert_eq!(rdns.len(), 4);
            prop_assert_eq!(rdns[0].len(), 1);
            prop_assert_eq!(&rdns[0][0].attr, "uid");
            prop_assert_eq!(&rdns[0][0].value, &name);
        }
    }
}
