//! `spec.filterTags`: a Go (RE2) regular expression and an `extract` template expanded
//! as Go's `Regexp.ExpandString` does (`$name`, `${name}`, `$1`, `$$`).
//!
//! The regular expression is compiled with Rust's `regex` crate, which implements RE2's
//! syntax and leftmost-first semantics. Its Perl classes (`\d`, `\w`, `\s`, `\b`) are
//! Unicode-aware where Go's are ASCII, which cannot differ on OCI tags (ASCII by the
//! distribution grammar `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`).

use regex::Regex;

use crate::error::{ImageError, ImageErrorKind};

/// Compiled-size limit for a pattern (hostile input stays bounded).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A compiled `filterTags`.
#[derive(Debug, Clone)]
pub struct TagFilter {
    regex: Regex,
    extract: String,
}

/// One tag that passed the filter: the value the policy orders, and the tag it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filtered {
    pub value: String,
    pub original: String,
}

impl TagFilter {
    /// Flux's `NewRegexFilter(pattern, extract)`.
    pub fn new(pattern: &str, extract: &str) -> Result<TagFilter, ImageError> {
        let regex = regex::RegexBuilder::new(pattern)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|e| {
                ImageError::new(
                    ImageErrorKind::InvalidPolicy,
                    format!("invalid regular expression pattern '{pattern}': {e}"),
                )
                .field("spec.filterTags.pattern")
            })?;
        Ok(TagFilter {
            regex,
            extract: extract.to_string(),
        })
    }

    /// Flux's `RegexFilter.Apply` + `Items`: every matching tag, its extracted value
    /// (the tag itself when `extract` is empty). Two tags extracting the same value keep
    /// the later one, as Flux's map does; values come in first-seen order (Flux's map
    /// order is random, so ties between equal values are not decided by Flux either).
    pub fn apply<S: AsRef<str>>(&self, tags: &[S]) -> Vec<Filtered> {
        let mut out: Vec<Filtered> = Vec::new();
        let mut index = std::collections::HashMap::new();
        let mut locs = self.regex.capture_locations();
        for tag in tags {
            let tag = tag.as_ref();
            if self.regex.captures_read(&mut locs, tag).is_none() {
                continue;
            }
            let value = if self.extract.is_empty() {
                tag.to_string()
            } else {
                expand(&self.regex, &self.extract, tag, &locs)
            };
            match index.get(&value) {
                Some(&i) => {
                    let f: &mut Filtered = &mut out[i];
                    f.original = tag.to_string();
                }
                None => {
                    index.insert(value.clone(), out.len());
                    out.push(Filtered {
                        value,
                        original: tag.to_string(),
                    });
                }
            }
        }
        out
    }
}

/// Go's `regexp.extract`: a name after `$` (letters, digits, `_`), optionally in braces;
/// `num` is its group number when it is all digits without a leading zero.
fn extract_name(s: &str) -> Option<(&str, Option<usize>, &str)> {
    let (brace, body) = match s.strip_prefix('{') {
        Some(b) => (true, b),
        None => (false, s),
    };
    let end = body
        .char_indices()
        .find(|&(_, c)| !(c.is_alphabetic() || c.is_numeric() || c == '_'))
        .map(|(i, _)| i)
        .unwrap_or(body.len());
    if end == 0 {
        return None;
    }
    let name = &body[..end];
    let mut rest = &body[end..];
    if brace {
        rest = rest.strip_prefix('}')?;
    }
    let mut num: Option<usize> = Some(0);
    for b in name.bytes() {
        match num {
            Some(n) if b.is_ascii_digit() && n < 100_000_000 => {
                num = Some(n * 10 + usize::from(b - b'0'))
            }
            _ => {
                num = None;
                break;
            }
        }
    }
    if name.len() > 1 && name.starts_with('0') {
        num = None;
    }
    Some((name, num, rest))
}

/// Go's `Regexp.ExpandString(nil, template, src, match)`.
pub fn expand(re: &Regex, template: &str, src: &str, locs: &regex::CaptureLocations) -> String {
    let mut out = String::new();
    let mut t = template;
    while let Some(pos) = t.find('$') {
        out.push_str(&t[..pos]);
        t = &t[pos + 1..];
        if let Some(r) = t.strip_prefix('$') {
            out.push('$');
            t = r;
            continue;
        }
        let Some((name, num, rest)) = extract_name(t) else {
            // Malformed: the `$` is kept as text.
            out.push('$');
            continue;
        };
        t = rest;
        let group = match num {
            Some(n) => Some(n),
            None => re.capture_names().position(|n| n == Some(name)),
        };
        if let Some((s, e)) = group.and_then(|g| locs.get(g)) {
            out.push_str(&src[s..e]);
        }
    }
    out.push_str(t);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(pattern: &str, template: &str, src: &str) -> String {
        let re = Regex::new(pattern).unwrap();
        let mut locs = re.capture_locations();
        re.captures_read(&mut locs, src).unwrap();
        expand(&re, template, src, &locs)
    }

    #[test]
    fn filter_tags_extract_expands_as_go_regexp_expand() {
        let p = r"^(?P<major>\d+)\.(?P<minor>\d+)-(?P<ts>\d+)$";
        assert_eq!(ex(p, "$ts", "1.2-345"), "345");
        assert_eq!(ex(p, "${major}x", "1.2-345"), "1x");
        // `$majorx` names a group `majorx`, which does not exist: empty.
        assert_eq!(ex(p, "$majorx", "1.2-345"), "");
        assert_eq!(ex(p, "$1.$2", "1.2-345"), "1.2");
        assert_eq!(ex(p, "$$1", "1.2-345"), "$1");
        assert_eq!(ex(p, "$9", "1.2-345"), "");
        assert_eq!(ex(p, "${01}", "1.2-345"), "");
        assert_eq!(ex(p, "a$", "1.2-345"), "a$");
        assert_eq!(ex(p, "${ts", "1.2-345"), "${ts");
        assert_eq!(ex(p, "$-", "1.2-345"), "$-");
        assert_eq!(ex(p, "$0", "1.2-345"), "1.2-345");
        // Go 1.22's `(?<name>)` works too.
        assert_eq!(ex(r"^v(?<v>.*)$", "$v", "v9"), "9");
    }

    #[test]
    fn filter_tags_pattern_keeps_matching_tags_and_maps_back_to_the_original() {
        let f = TagFilter::new(r"^main-[a-f0-9]+-(?P<ts>\d+)$", "$ts").unwrap();
        let got = f.apply(&["main-abc-10", "dev-abc-11", "main-def-12", "main-fff-10"]);
        assert_eq!(
            got,
            vec![
                // the later tag extracting the same value wins, as Flux's map does
                Filtered {
                    value: "10".into(),
                    original: "main-fff-10".into()
                },
                Filtered {
                    value: "12".into(),
                    original: "main-def-12".into()
                },
            ]
        );
        let f = TagFilter::new("^v1", "").unwrap();
        assert_eq!(f.apply(&["v1.0", "v2.0"])[0].value, "v1.0");
    }

    #[test]
    fn filter_tags_bad_pattern_is_an_invalid_policy() {
        let e = TagFilter::new("(", "").unwrap_err();
        assert_eq!(e.kind, ImageErrorKind::InvalidPolicy);
        assert_eq!(e.field, "spec.filterTags.pattern");
    }
}
