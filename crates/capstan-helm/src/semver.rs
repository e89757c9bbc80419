//! Masterminds/semver v3 versions and constraints (what Helm uses for `kubeVersion`
//! and dependency version ranges).

use std::cmp::Ordering;

/// A semantic version (parsed loosely, as `semver.NewVersion`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    pub pre: String,
    pub build: String,
}

fn valid_ident_list(s: &str) -> bool {
    !s.is_empty()
        && s.split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
}

impl Version {
    /// `semver.NewVersion`: `v` prefix, missing minor/patch allowed.
    pub fn parse(s: &str) -> Option<Version> {
        let s = s.strip_prefix('v').unwrap_or(s);
        let (rest, build) = match s.split_once('+') {
            Some((a, b)) => {
                if !valid_ident_list(b) {
                    return None;
                }
                (a, b.to_string())
            }
            None => (s, String::new()),
        };
        let (core, pre) = match rest.split_once('-') {
            Some((a, b)) => {
                if !valid_ident_list(b) {
                    return None;
                }
                (a, b.to_string())
            }
            None => (rest, String::new()),
        };
        let parts: Vec<&str> = core.split('.').collect();
        if parts.is_empty() || parts.len() > 3 {
            return None;
        }
        let mut nums = [0u64; 3];
        for (i, p) in parts.iter().enumerate() {
            if p.is_empty() || !p.chars().all(|c| c.is_ascii_digit()) {
                return None;
            }
            nums[i] = p.parse().ok()?;
        }
        Some(Version {
            major: nums[0],
            minor: nums[1],
            patch: nums[2],
            pre,
            build,
        })
    }

    pub fn compare(&self, o: &Version) -> Ordering {
        self.major
            .cmp(&o.major)
            .then(self.minor.cmp(&o.minor))
            .then(self.patch.cmp(&o.patch))
            .then_with(|| compare_pre(&self.pre, &o.pre))
    }
}

fn compare_pre(a: &str, b: &str) -> Ordering {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Greater,
        (false, true) => return Ordering::Less,
        _ => {}
    }
    let ap: Vec<&str> = a.split('.').collect();
    let bp: Vec<&str> = b.split('.').collect();
    for i in 0..ap.len().max(bp.len()) {
        let (x, y) = match (ap.get(i), bp.get(i)) {
            (None, _) => return Ordering::Less,
            (_, None) => return Ordering::Greater,
            (Some(x), Some(y)) => (*x, *y),
        };
        let xn = x
            .parse::<u64>()
            .ok()
            .filter(|_| x.chars().all(|c| c.is_ascii_digit()));
        let yn = y
            .parse::<u64>()
            .ok()
            .filter(|_| y.chars().all(|c| c.is_ascii_digit()));
        let o = match (xn, yn) {
            (Some(p), Some(q)) => p.cmp(&q),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => x.cmp(y),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

#[derive(Debug, Clone)]
struct Constraint {
    op: String,
    con: Version,
    dirty: bool,
    minor_dirty: bool,
    patch_dirty: bool,
}

/// A set of constraints: OR of AND groups.
#[derive(Debug, Clone)]
pub struct Constraints {
    groups: Vec<Vec<Constraint>>,
}

fn is_x(s: &str) -> bool {
    matches!(s, "x" | "X" | "*")
}

fn parse_one(c: &str) -> Option<Constraint> {
    let c = c.trim();
    let ops = ["!=", ">=", "=>", "<=", "=<", "~>", ">", "<", "=", "~", "^"];
    let mut op = "";
    for o in ops {
        if c.starts_with(o) {
            op = o;
            break;
        }
    }
    let rest = c[op.len()..].trim();
    let op = match op {
        "=>" => ">=",
        "=<" => "<=",
        "~>" => "~",
        o => o,
    }
    .to_string();
    if rest.is_empty() {
        return Some(Constraint {
            op,
            con: Version::parse("0.0.0")?,
            dirty: true,
            minor_dirty: false,
            patch_dirty: false,
        });
    }
    let body = rest.strip_prefix('v').unwrap_or(rest);
    // split off prerelease/build from the core
    let core_end = body.find(['-', '+']).unwrap_or(body.len());
    let (core, tail) = body.split_at(core_end);
    let parts: Vec<&str> = core.split('.').collect();
    if parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    let (mut dirty, mut minor_dirty, mut patch_dirty) = (false, false, false);
    let ver;
    if is_x(parts[0]) {
        ver = format!("0.0.0{tail}");
        dirty = true;
    } else if parts.len() < 2 || is_x(parts[1]) {
        ver = format!("{}.0.0{tail}", parts[0]);
        dirty = true;
        minor_dirty = true;
    } else if parts.len() < 3 || is_x(parts[2]) {
        ver = format!("{}.{}.0{tail}", parts[0], parts[1]);
        dirty = true;
        patch_dirty = true;
    } else {
        ver = body.to_string();
    }
    let con = Version::parse(&ver)?;
    Some(Constraint {
        op,
        con,
        dirty,
        minor_dirty,
        patch_dirty,
    })
}

impl Constraints {
    /// `semver.NewConstraint`.
    pub fn parse(s: &str) -> Option<Constraints> {
        let mut groups = Vec::new();
        for or in s.split("||") {
            let mut group = Vec::new();
            // normalise "op version" into "opversion", then split on commas/spaces
            let mut norm = String::new();
            let or = hyphen_range(or.trim());
            let mut chars = or.chars().peekable();
            while let Some(ch) = chars.next() {
                norm.push(ch);
                if "<>=!~^".contains(ch) {
                    while chars.peek() == Some(&' ') {
                        chars.next();
                    }
                }
            }
            for part in norm.split([',', ' ']) {
                let part = part.trim();
                if part.is_empty() {
                    continue;
                }
                group.push(parse_one(part)?);
            }
            if group.is_empty() {
                group.push(parse_one("")?);
            }
            groups.push(group);
        }
        Some(Constraints { groups })
    }

    pub fn check(&self, v: &Version) -> bool {
        self.groups
            .iter()
            .any(|g| g.iter().all(|c| check_one(c, v)))
    }
}

/// `1.2 - 1.4.5` → `>= 1.2, <= 1.4.5`.
fn hyphen_range(s: &str) -> String {
    let words: Vec<&str> = s.split_whitespace().collect();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < words.len() {
        if i + 2 < words.len() && words[i + 1] == "-" {
            out.push(format!(">={},", words[i]));
            out.push(format!("<={}", words[i + 2]));
            i += 3;
        } else {
            out.push(words[i].to_string());
            i += 1;
        }
    }
    out.join(" ")
}

fn check_one(c: &Constraint, v: &Version) -> bool {
    if !v.pre.is_empty() && c.con.pre.is_empty() {
        return false;
    }
    let cmp = v.compare(&c.con);
    let tilde = || {
        if cmp == Ordering::Less {
            return false;
        }
        if c.con.major == 0
            && c.con.minor == 0
            && c.con.patch == 0
            && !c.minor_dirty
            && !c.patch_dirty
        {
            return true;
        }
        if v.major != c.con.major {
            return false;
        }
        if v.minor != c.con.minor && !c.minor_dirty {
            return false;
        }
        true
    };
    match c.op.as_str() {
        "" | "=" => {
            if c.dirty {
                tilde()
            } else {
                cmp == Ordering::Equal
            }
        }
        "!=" => {
            if c.dirty {
                !tilde()
            } else {
                cmp != Ordering::Equal
            }
        }
        ">" => {
            if !c.dirty {
                return cmp == Ordering::Greater;
            }
            if v.major > c.con.major {
                true
            } else if v.major < c.con.major || c.minor_dirty {
                false
            } else if c.patch_dirty {
                v.minor > c.con.minor
            } else {
                cmp == Ordering::Greater
            }
        }
        "<" => cmp == Ordering::Less,
        ">=" => cmp != Ordering::Less,
        "<=" => {
            if !c.dirty {
                return cmp != Ordering::Greater;
            }
            if v.major > c.con.major {
                false
            } else if v.major < c.con.major || c.minor_dirty {
                true
            } else if c.patch_dirty {
                v.minor <= c.con.minor
            } else {
                cmp != Ordering::Greater
            }
        }
        "~" => tilde(),
        "^" => {
            if cmp == Ordering::Less {
                return false;
            }
            if c.con.major > 0 || c.minor_dirty {
                return v.major == c.con.major;
            }
            if c.con.minor > 0 || c.patch_dirty {
                return v.major == 0 && v.minor == c.con.minor;
            }
            v.major == 0 && v.minor == 0 && v.patch == c.con.patch
        }
        _ => false,
    }
}

/// Helm's `IsCompatibleRange(constraint, version)`.
pub fn is_compatible_range(constraint: &str, version: &str) -> bool {
    let Some(v) = Version::parse(version) else {
        return false;
    };
    let Some(c) = Constraints::parse(constraint) else {
        return false;
    };
    c.check(&v)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn ranges() {
        assert!(is_compatible_range(">=1.19.0-0", "v1.36.0"));
        assert!(is_compatible_range(">= 1.22.0-0", "1.36.0"));
        assert!(!is_compatible_range("<1.20", "v1.36.0"));
        assert!(is_compatible_range("~1.2", "1.2.9"));
        assert!(is_compatible_range("^2.x", "2.31.0"));
        assert!(is_compatible_range("2.x.x", "2.31.0"));
        assert!(is_compatible_range("*", "0.1.0"));
        assert!(is_compatible_range("", "0.1.0"));
        assert!(is_compatible_range(">=1.0.0, <2.0.0", "1.5.0"));
        assert!(is_compatible_range("1.0.0 - 2.0.0", "1.5.0"));
        assert!(!is_compatible_range(">=1.0.0", "1.5.0-rc1"));
    }
}
