//! ImageUpdateAutomation's setter markers: a YAML field whose line comment is
//! `# {"$imagepolicy": "NAMESPACE:NAME"}` gets the policy's latest image
//! (`name:tag`, `name:tag@digest` when a digest is reflected); the suffixes `:tag`,
//! `:name` and `:digest` set only that part.
//!
//! The rewrite is textual: only the marked scalar changes, every other byte of the file
//! (comments, indentation, quoting of other fields, line endings, document markers)
//! stays as it was. A marked plain scalar stays plain unless the new value would read
//! as something other than a string (`1.0`, `true`) or is not safe unquoted; then it is
//! double-quoted. Quoted scalars keep their quote style. Markers that are not valid
//! JSON, name no known policy or sit on something other than a one-line scalar are left
//! alone, as Flux's kyaml setters leave them.

use std::collections::BTreeMap;

use crate::spec::{ImageRef, ObjectKey};

/// The marker key in a setter comment.
pub const SETTER_SHORTHAND: &str = "$imagepolicy";

/// Which part of the image a marker sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SetterPart {
    Image,
    Name,
    Tag,
    Digest,
}

/// One field the rewrite changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetterChange {
    /// 1-based line number.
    pub line: usize,
    /// The marker's reference, e.g. `apps:podinfo:tag`.
    pub setter: String,
    pub policy: ObjectKey,
    pub part: SetterPart,
    pub old: String,
    pub new: String,
}

/// The result of rewriting one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetterOutcome {
    pub text: String,
    pub changes: Vec<SetterChange>,
}

/// Parse a marker reference `ns:name[:tag|:name|:digest]`.
pub fn parse_setter_ref(r: &str) -> Option<(ObjectKey, SetterPart)> {
    let parts: Vec<&str> = r.split(':').collect();
    let (ns, name, part) = match parts.as_slice() {
        [ns, name] => (*ns, *name, SetterPart::Image),
        [ns, name, "tag"] => (*ns, *name, SetterPart::Tag),
        [ns, name, "name"] => (*ns, *name, SetterPart::Name),
        [ns, name, "digest"] => (*ns, *name, SetterPart::Digest),
        _ => return None,
    };
    if ns.is_empty() || name.is_empty() {
        return None;
    }
    Some((
        ObjectKey {
            namespace: ns.to_string(),
            name: name.to_string(),
        },
        part,
    ))
}

/// Byte offset of the comment's `#` in a line, outside quoted scalars.
fn comment_start(line: &str) -> Option<usize> {
    let b = line.as_bytes();
    let mut i = 0;
    let mut quote: Option<u8> = None;
    while i < b.len() {
        let c = b[i];
        match quote {
            Some(b'\'') => {
                if c == b'\'' {
                    if b.get(i + 1) == Some(&b'\'') {
                        i += 1;
                    } else {
                        quote = None;
                    }
                }
            }
            Some(_) => {
                if c == b'\\' {
                    i += 1;
                } else if c == b'"' {
                    quote = None;
                }
            }
            None => {
                let at_token_start =
                    i == 0 || matches!(b[i - 1], b' ' | b'\t' | b':' | b'-' | b'[' | b'{' | b',');
                if (c == b'\'' || c == b'"') && at_token_start {
                    quote = Some(c);
                } else if c == b'#' && (i == 0 || matches!(b[i - 1], b' ' | b'\t')) {
                    return Some(i);
                }
            }
        }
        i += 1;
    }
    None
}

/// The marker's reference if the comment is a setter marker.
fn marker(comment: &str) -> Option<String> {
    let body = comment.trim_start_matches('#').trim();
    if !body.starts_with('{') || !body.contains(SETTER_SHORTHAND) {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    v.get(SETTER_SHORTHAND)?.as_str().map(str::to_string)
}

/// Where the scalar value sits in `content` (the line before its comment).
fn value_span(content: &str) -> Option<(usize, usize)> {
    let trimmed_end = content.trim_end_matches([' ', '\t']).len();
    let b = content.as_bytes();
    let mut i = 0;
    // indentation and sequence entries (`- - `)
    loop {
        while i < trimmed_end && (b[i] == b' ' || b[i] == b'\t') {
            i += 1;
        }
        if i < trimmed_end && b[i] == b'-' && (i + 1 == trimmed_end || b[i + 1] == b' ') {
            i += 1;
            continue;
        }
        break;
    }
    if i >= trimmed_end {
        return None;
    }
    // a mapping key before `: `?
    let mut j = i;
    let mut quote: Option<u8> = None;
    let mut value_from = i;
    if b[j] == b'"' || b[j] == b'\'' {
        quote = Some(b[j]);
        j += 1;
    }
    while j < trimmed_end {
        let c = b[j];
        match quote {
            Some(q) => {
                if q == b'\\' {
                    quote = Some(b'"');
                } else if q == b'"' && c == b'\\' {
                    quote = Some(b'\\');
                } else if c == q {
                    quote = None;
                }
            }
            None => {
                if c == b':' && (j + 1 == trimmed_end || b[j + 1] == b' ' || b[j + 1] == b'\t') {
                    value_from = j + 1;
                    break;
                }
                if j == i && (c == b'"' || c == b'\'') {
                    break;
                }
            }
        }
        j += 1;
    }
    let mut s = value_from;
    while s < trimmed_end && (b[s] == b' ' || b[s] == b'\t') {
        s += 1;
    }
    if s >= trimmed_end {
        return None;
    }
    Some((s, trimmed_end))
}

/// Decode a one-line scalar; `None` for anything that is not a scalar we can rewrite.
fn decode(raw: &str) -> Option<(char, String)> {
    let first = raw.chars().next()?;
    match first {
        '\'' => {
            let inner = raw.strip_prefix('\'')?.strip_suffix('\'')?;
            if inner.replace("''", "").contains('\'') {
                return None;
            }
            Some(('\'', inner.replace("''", "'")))
        }
        '"' => {
            let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
            let v: String = serde_json::from_str(&format!("\"{inner}\"")).ok()?;
            Some(('"', v))
        }
        '|' | '>' | '{' | '[' | '&' | '*' | '!' | '%' | '@' | '`' => None,
        _ => Some((' ', raw.to_string())),
    }
}

fn plain_is_safe(v: &str) -> bool {
    if v.is_empty() || v.trim() != v {
        return false;
    }
    let first = v.as_bytes()[0];
    if b"-?:,[]{}#&*!|>'\"%@`".contains(&first) {
        return false;
    }
    if v.contains(": ") || v.contains(" #") || v.ends_with(':') {
        return false;
    }
    // must still read as a string
    capstan_yaml::resolve_plain_v1_1(v) == capstan_yaml::Tag::Str
}

fn encode(style: char, v: &str) -> String {
    match style {
        '\'' => format!("'{}'", v.replace('\'', "''")),
        ' ' if plain_is_safe(v) => v.to_string(),
        _ => serde_json::to_string(v).unwrap_or_default(),
    }
}

/// Rewrite every setter-marked field whose policy is in `latest`.
pub fn apply_setters(text: &str, latest: &BTreeMap<ObjectKey, ImageRef>) -> SetterOutcome {
    let mut out = String::with_capacity(text.len());
    let mut changes = Vec::new();
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let Some(new_line) = rewrite_line(line, n + 1, latest, &mut changes) else {
            out.push_str(line);
            continue;
        };
        out.push_str(&new_line);
    }
    SetterOutcome { text: out, changes }
}

fn rewrite_line(
    line: &str,
    lineno: usize,
    latest: &BTreeMap<ObjectKey, ImageRef>,
    changes: &mut Vec<SetterChange>,
) -> Option<String> {
    if !line.contains(SETTER_SHORTHAND) {
        return None;
    }
    let c = comment_start(line)?;
    let comment = line[c..].trim_end_matches(['\n', '\r']);
    let setter = marker(comment)?;
    let (policy, part) = parse_setter_ref(&setter)?;
    let image = latest.get(&policy)?;
    let new = match part {
        SetterPart::Image => image.reference(),
        SetterPart::Name => image.name.clone(),
        SetterPart::Tag => image.tag.clone(),
        SetterPart::Digest => image.digest.clone(),
    };
    if new.is_empty() {
        return None;
    }
    let content = &line[..c];
    let (s, e) = value_span(content)?;
    let raw = &content[s..e];
    let (style, old) = decode(raw)?;
    if old == new {
        return None;
    }
    changes.push(SetterChange {
        line: lineno,
        setter,
        policy,
        part,
        old,
        new: new.clone(),
    });
    Some(format!(
        "{}{}{}",
        &line[..s],
        encode(style, &new),
        &line[e..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs() -> BTreeMap<ObjectKey, ImageRef> {
        let mut m = BTreeMap::new();
        m.insert(
            ObjectKey {
                namespace: "apps".into(),
                name: "podinfo".into(),
            },
            ImageRef {
                name: "ghcr.io/org/podinfo".into(),
                tag: "v1.2.2.2022-01-15t161730814Z.abc123".into(),
                digest: String::new(),
            },
        );
        m.insert(
            ObjectKey {
                namespace: "apps".into(),
                name: "num".into(),
            },
            ImageRef {
                name: "r/num".into(),
                tag: "1.0".into(),
                digest: "sha256:0123".into(),
            },
        );
        m
    }

    #[test]
    fn setter_marker_on_image_field_sets_name_and_tag() {
        let input = "spec:\n  containers:\n  - name: c\n    image: ghcr.io/org/podinfo:v1 # {\"$imagepolicy\": \"apps:podinfo\"}\n";
        let out = apply_setters(input, &refs());
        assert_eq!(
            out.text,
            "spec:\n  containers:\n  - name: c\n    image: ghcr.io/org/podinfo:v1.2.2.2022-01-15t161730814Z.abc123 # {\"$imagepolicy\": \"apps:podinfo\"}\n"
        );
        assert_eq!(out.changes.len(), 1);
        assert_eq!(out.changes[0].line, 4);
        assert_eq!(out.changes[0].old, "ghcr.io/org/podinfo:v1");
    }

    #[test]
    fn setter_suffixes_tag_name_digest_in_a_kustomization() {
        let input = "# keep me\r\nimages:\r\n- name: app\r\n  newName: old # {\"$imagepolicy\": \"apps:num:name\"}\r\n  newTag: '0.9' # {\"$imagepolicy\": \"apps:num:tag\"}\r\n  digest: \"sha256:ff\"   #   {\"$imagepolicy\": \"apps:num:digest\"}\r\n";
        let out = apply_setters(input, &refs());
        assert_eq!(
            out.text,
            "# keep me\r\nimages:\r\n- name: app\r\n  newName: r/num # {\"$imagepolicy\": \"apps:num:name\"}\r\n  newTag: '1.0' # {\"$imagepolicy\": \"apps:num:tag\"}\r\n  digest: \"sha256:0123\"   #   {\"$imagepolicy\": \"apps:num:digest\"}\r\n"
        );
        let parts: Vec<SetterPart> = out.changes.iter().map(|c| c.part).collect();
        assert_eq!(
            parts,
            [SetterPart::Name, SetterPart::Tag, SetterPart::Digest]
        );
    }

    #[test]
    fn setter_plain_value_that_would_not_read_as_a_string_is_quoted() {
        let input = "newTag: v0 # {\"$imagepolicy\": \"apps:num:tag\"}\nimage: x # {\"$imagepolicy\": \"apps:num\"}\n";
        let out = apply_setters(input, &refs());
        assert_eq!(
            out.text,
            "newTag: \"1.0\" # {\"$imagepolicy\": \"apps:num:tag\"}\nimage: r/num:1.0@sha256:0123 # {\"$imagepolicy\": \"apps:num\"}\n"
        );
    }

    #[test]
    fn setter_markers_left_alone_when_unknown_malformed_or_unchanged() {
        let input = concat!(
            "a: x # {\"$imagepolicy\": \"other:policy\"}\n",
            "b: x # {\"$imagepolicy\": apps:podinfo}\n",
            "c: x # {\"$imagepolicy\": \"apps/podinfo\"}\n",
            "d: | # {\"$imagepolicy\": \"apps:podinfo\"}\n",
            "  text\n",
            "e: \"a # {\\\"$imagepolicy\\\": \\\"apps:podinfo\\\"}\"\n",
            "f: r/num # {\"$imagepolicy\": \"apps:num:name\"}\n",
            "g: x # {\"$imagepolicy\": \"apps:podinfo:bogus\"}\n",
        );
        let out = apply_setters(input, &refs());
        assert_eq!(out.text, input);
        assert!(out.changes.is_empty());
    }

    #[test]
    fn setter_in_sequence_item_and_quoted_key() {
        let input = "args:\n- \"old\" # {\"$imagepolicy\": \"apps:num:tag\"}\n\"the key\": 'it''s' # {\"$imagepolicy\": \"apps:num:name\"}\n";
        let out = apply_setters(input, &refs());
        assert_eq!(
            out.text,
            "args:\n- \"1.0\" # {\"$imagepolicy\": \"apps:num:tag\"}\n\"the key\": 'r/num' # {\"$imagepolicy\": \"apps:num:name\"}\n"
        );
    }
}
