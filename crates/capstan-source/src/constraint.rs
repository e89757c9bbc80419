//! Semver constraints with Masterminds/semver (v3) syntax, as Flux uses them.
//!
//! Supported: `||` alternatives; comparators separated by spaces or commas
//! (AND); `=`, `!=`, `>`, `>=`, `<`, `<=`, `~`, `^`; wildcards `x`, `X`, `*`
//! and partial versions (`1.2`); hyphen ranges (`1.2 - 1.4.5`); a leading `v`.
//! Pre-releases match only if a comparator of the same group names one.
//! Evaluation is delegated to the `semver` crate after translation.

use semver::{Version, VersionReq};

/// A parsed constraint.
#[derive(Debug, Clone)]
pub struct Constraint {
    text: String,
    groups: Vec<Group>,
}

#[derive(Debug, Clone)]
struct Group {
    req: VersionReq,
    not_equal: Vec<Version>,
}

/// Parse a version as Masterminds does for tags: optional leading `v`,
/// missing minor/patch default to 0 (`v1.2` → `1.2.0`).
pub fn parse_version(s: &str) -> Option<Version> {
    let s = s.trim();
    let s = s.strip_prefix('v').unwrap_or(s);
    if let Ok(v) = Version::parse(s) {
        return Some(v);
    }
    // fill in missing components before any pre-release/build suffix
    let split = s.find(['-', '+']).unwrap_or(s.len());
    let (core, rest) = s.split_at(split);
    let parts: Vec<&str> = core.split('.').collect();
    if parts.is_empty() || parts.len() > 3 || parts.iter().any(|p| p.parse::<u64>().is_err()) {
        return None;
    }
    let mut full = parts.join(".");
    for _ in parts.len()..3 {
        full.push_str(".0");
    }
    Version::parse(&(full + rest)).ok()
}

fn is_wild(p: &str) -> bool {
    matches!(p, "x" | "X" | "*")
}

/// Translate one Masterminds comparator into `semver` comparator syntax.
fn translate(op: &str, ver: &str) -> Result<Vec<String>, String> {
    let ver = ver.strip_prefix('v').unwrap_or(ver);
    let split = ver.find(['-', '+']).unwrap_or(ver.len());
    let (core, rest) = ver.split_at(split);
    let mut parts: Vec<&str> = core.split('.').collect();
    if parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
        return Err(format!("invalid version {ver:?}"));
    }
    // truncate at the first wildcard: 1.x.x == 1
    if let Some(i) = parts.iter().position(|p| is_wild(p)) {
        if !rest.is_empty() {
            return Err(format!("invalid version {ver:?}"));
        }
        parts.truncate(i);
    }
    if parts.iter().any(|p| p.parse::<u64>().is_err()) {
        return Err(format!("invalid version {ver:?}"));
    }
    let v = format!("{}{rest}", parts.join("."));
    if parts.is_empty() {
        return Ok(match op {
            "" | "=" | ">=" | "<=" | "~" | "^" => vec!["*".into()],
            ">" | "<" => vec!["<0.0.0-0".into()], // matches nothing
            _ => return Err(format!("invalid operator {op:?}")),
        });
    }
    Ok(match op {
        "" | "=" => vec![format!("={v}")],
        // Masterminds compares against the zero-padded version (`>1.0` matches 1.0.1)
        ">" | ">=" | "<" | "<=" => {
            let mut full = parts.join(".");
            for _ in parts.len()..3 {
                full.push_str(".0");
            }
            vec![format!("{op}{full}{rest}")]
        }
        "~" | "^" => vec![format!("{op}{v}")],
        _ => return Err(format!("invalid operator {op:?}")),
    })
}

impl Constraint {
    /// Parse a constraint such as `>=1.0.0 <2.0.0` or `~1.2 || ^3`.
    pub fn parse(text: &str) -> Result<Constraint, String> {
        let mut groups = Vec::new();
        for alt in text.split("||") {
            let mut comparators: Vec<String> = Vec::new();
            let mut not_equal = Vec::new();
            // tokens: split on commas and whitespace, then glue operators to versions
            let raw: Vec<&str> = alt
                .split([',', ' ', '\t'])
                .filter(|t| !t.is_empty())
                .collect();
            let mut tokens: Vec<String> = Vec::new();
            let mut i = 0;
            while i < raw.len() {
                let t = raw[i];
                if t.chars().all(|c| "=!<>~^".contains(c)) && i + 1 < raw.len() {
                    tokens.push(format!("{t}{}", raw[i + 1]));
                    i += 2;
                } else if i + 2 < raw.len() && raw[i + 1] == "-" {
                    tokens.push(format!(">={t}"));
                    // upper bound of a hyphen range is inclusive of the partial version
                    let upper = raw[i + 2];
                    let n = upper.trim_start_matches('v').split('.').count();
                    if n < 3 || upper.contains(['x', 'X', '*']) {
                        tokens.push(format!("={upper}"));
                    } else {
                        tokens.push(format!("<={upper}"));
                    }
                    i += 3;
                } else {
                    tokens.push(t.to_string());
                    i += 1;
                }
            }
            for t in tokens {
                let op_len = t.find(|c: char| !"=!<>~^".contains(c)).unwrap_or(t.len());
                let (op, ver) = t.split_at(op_len);
                if ver.is_empty() {
                    return Err(format!("invalid constraint {text:?}"));
                }
                if op == "!=" {
                    not_equal.push(parse_version(ver).ok_or(format!("invalid version {ver:?}"))?);
                    continue;
                }
                comparators.extend(translate(op, ver).map_err(|e| format!("{e} in {text:?}"))?);
            }
            if comparators.is_empty() {
                comparators.push("*".into());
            }
            let joined = comparators.join(", ");
            let req = VersionReq::parse(&joined)
                .map_err(|e| format!("invalid constraint {text:?}: {e}"))?;
            groups.push(Group { req, not_equal });
        }
        Ok(Constraint {
            text: text.to_string(),
            groups,
        })
    }

    /// Whether `v` satisfies the constraint.
    pub fn matches(&self, v: &Version) -> bool {
        self.groups
            .iter()
            .any(|g| g.req.matches(v) && !g.not_equal.contains(v))
    }

    /// Pick the highest version among `candidates` (name, version) that matches.
    pub fn best<'a, T>(
        &self,
        candidates: impl IntoIterator<Item = (&'a Version, T)>,
    ) -> Option<(&'a Version, T)> {
        candidates
            .into_iter()
            .filter(|(v, _)| self.matches(v))
            .max_by(|a, b| a.0.cmp(b.0))
    }

    /// The original text.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(c: &str, v: &str) -> bool {
        Constraint::parse(c)
            .unwrap()
            .matches(&parse_version(v).unwrap())
    }

    #[test]
    fn ranges() {
        assert!(m(">=1.0.0 <2.0.0", "1.1.0"));
        assert!(!m(">=1.0.0 <2.0.0", "2.0.0"));
        assert!(m(">=1.0.0, <2.0.0", "v1.0.0"));
        assert!(m("~1.2", "1.2.9"));
        assert!(!m("~1.2", "1.3.0"));
        assert!(m("^1.2", "1.9.0"));
        assert!(!m("^1.2", "2.0.0"));
        assert!(m("1.x", "1.5.0"));
        assert!(m("*", "9.0.0"));
        assert!(m("1.2 - 1.4", "1.4.7"));
        assert!(!m("1.2 - 1.4", "1.5.0"));
        assert!(m("1.2.0 - 1.4.5", "1.4.5"));
        assert!(m("<1.0.0 || >=3", "3.1.0"));
        assert!(!m("<1.0.0 || >=3", "2.1.0"));
        assert!(!m(">=1.0.0, !=1.1.0", "1.1.0"));
        assert!(m("> 1.0", "1.0.1"));
        assert!(!m(">=1.0.0", "1.1.0-rc.1"));
        assert!(m(">=1.1.0-rc.0", "1.1.0-rc.1"));
        assert!(Constraint::parse("foo").is_err());
    }

    #[test]
    fn versions() {
        assert_eq!(parse_version("v1.2").unwrap(), Version::new(1, 2, 0));
        assert_eq!(parse_version("1").unwrap(), Version::new(1, 0, 0));
        assert!(parse_version("latest").is_none());
        assert!(parse_version("v1.2.3-rc.1").unwrap().pre.as_str() == "rc.1");
    }
}
