//! Masterminds/semver v3: versions and constraints (`semverCompare`).

use std::cmp::Ordering;

/// A parsed semantic version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    pub pre: String,
    pub metadata: String,
    pub original: String,
}

impl Version {
    /// Masterminds' `NewVersion` (lenient: `v` prefix, missing minor/patch).
    pub fn parse(s: &str) -> Result<Version, String> {
        let err = || "Invalid Semantic Version".to_string();
        let orig = s.to_string();
        let t = s.strip_prefix('v').unwrap_or(s);
        let (rest, meta) = match t.split_once('+') {
            Some((a, b)) => (a, b.to_string()),
            None => (t, String::new()),
        };
        let (core, pre) = match rest.split_once('-') {
            Some((a, b)) => (a, b.to_string()),
            None => (rest, String::new()),
        };
        let parts: Vec<&str> = core.split('.').collect();
        if parts.is_empty() || parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
            return Err(err());
        }
        let mut nums = [0u64; 3];
        for (i, p) in parts.iter().enumerate() {
            if !p.chars().all(|c| c.is_ascii_digit()) {
                return Err(err());
            }
            nums[i] = p.parse().map_err(|_| err())?;
        }
        if !pre.is_empty()
            && !pre
                .split('.')
                .all(|x| !x.is_empty() && x.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        {
            return Err(err());
        }
        Ok(Version {
            major: nums[0],
            minor: nums[1],
            patch: nums[2],
            pre,
            metadata: meta,
            original: orig,
        })
    }

    /// The canonical string `1.2.3-pre+meta`.
    pub fn to_canonical(&self) -> String {
        let mut s = format!("{}.{}.{}", self.major, self.minor, self.patch);
        if !self.pre.is_empty() {
            s.push('-');
            s.push_str(&self.pre);
        }
        if !self.metadata.is_empty() {
            s.push('+');
            s.push_str(&self.metadata);
        }
        s
    }
}

fn cmp_pre(a: &str, b: &str) -> Ordering {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Greater,
        (false, true) => return Ordering::Less,
        _ => {}
    }
    let ap: Vec<&str> = a.split('.').collect();
    let bp: Vec<&str> = b.split('.').collect();
    for i in 0..ap.len().max(bp.len()) {
        let (Some(x), Some(y)) = (ap.get(i), bp.get(i)) else {
            return ap.len().cmp(&bp.len());
        };
        let o = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(p), Ok(q)) => p.cmp(&q),
            (Ok(_), Err(_)) => Ordering::Less,
            (Err(_), Ok(_)) => Ordering::Greater,
            _ => x.cmp(y),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

impl Ord for Version {
    fn cmp(&self, o: &Self) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(o.major, o.minor, o.patch))
            .then_with(|| cmp_pre(&self.pre, &o.pre))
    }
}
impl PartialOrd for Version {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

#[derive(Debug, Clone)]
struct Bound {
    op: String,
    v: Version,
    /// Which parts were wildcards/missing: 0 = major missing, 1 = minor, 2 = patch, 3 = none.
    dirty: usize,
}

fn parse_bound(s: &str) -> Result<Bound, String> {
    let s = s.trim();
    let ops = ["!=", ">=", "=>", "<=", "=<", "~>", ">", "<", "=", "~", "^"];
    let mut op = "";
    let mut rest = s;
    for o in ops {
        if let Some(r) = s.strip_prefix(o) {
            op = o;
            rest = r.trim();
            break;
        }
    }
    let op = match op {
        "=>" => ">=",
        "=<" => "<=",
        "~>" => "~",
        o => o,
    };
    let t = rest.strip_prefix('v').unwrap_or(rest);
    let (core, tail) = match t.find(['-', '+']) {
        Some(i) => (&t[..i], &t[i..]),
        None => (t, ""),
    };
    let parts: Vec<&str> = core.split('.').collect();
    let mut nums = Vec::new();
    let mut dirty = 3;
    for (i, p) in parts.iter().enumerate() {
        if *p == "x" || *p == "X" || *p == "*" {
            dirty = dirty.min(i);
            break;
        }
        nums.push(p.to_string());
    }
    if parts.len() < 3 && dirty == 3 {
        dirty = parts.len();
    }
    while nums.len() < 3 {
        nums.push("0".into());
    }
    let vs = format!("{}.{}.{}{}", nums[0], nums[1], nums[2], tail);
    let v = Version::parse(&vs).map_err(|_| format!("improper constraint: {s}"))?;
    Ok(Bound {
        op: op.to_string(),
        v,
        dirty,
    })
}

fn bump(v: &Version, part: usize) -> Version {
    let mut n = v.clone();
    n.pre.clear();
    match part {
        0 => {
            n.major += 1;
            n.minor = 0;
            n.patch = 0;
        }
        1 => {
            n.minor += 1;
            n.patch = 0;
        }
        _ => n.patch += 1,
    }
    n
}

fn check(b: &Bound, v: &Version) -> bool {
    // A version with a prerelease only matches constraints whose version has one
    // (Masterminds v3 semantics).
    if !v.pre.is_empty() && b.v.pre.is_empty() {
        return false;
    }
    let c = &b.v;
    match b.op.as_str() {
        "" | "=" => {
            if b.dirty == 0 {
                return true;
            }
            if b.dirty < 3 {
                return v >= c && *v < bump(c, b.dirty - 1);
            }
            v == c
        }
        "!=" => {
            if b.dirty == 0 {
                return false;
            }
            if b.dirty < 3 {
                return !(v >= c && *v < bump(c, b.dirty - 1));
            }
            v != c
        }
        ">" => {
            if b.dirty == 0 {
                return false;
            }
            if b.dirty < 3 {
                return *v >= bump(c, b.dirty - 1);
            }
            v > c
        }
        ">=" => v >= c,
        "<" => v < c,
        "<=" => {
            if b.dirty == 0 {
                return true;
            }
            if b.dirty < 3 {
                return *v < bump(c, b.dirty - 1);
            }
            v <= c
        }
        "~" => {
            if b.dirty == 0 {
                return true;
            }
            if v < c {
                return false;
            }
            // ~1 -> <2.0.0 ; ~1.2 / ~1.2.3 -> <1.3.0
            let upper = if b.dirty == 1 { bump(c, 0) } else { bump(c, 1) };
            *v < upper
        }
        "^" => {
            if b.dirty == 0 {
                return true;
            }
            if v < c {
                return false;
            }
            let upper = if c.major > 0 || b.dirty == 1 {
                bump(c, 0)
            } else if c.minor > 0 || b.dirty == 2 {
                bump(c, 1)
            } else {
                bump(c, 2)
            };
            *v < upper
        }
        _ => false,
    }
}

/// Masterminds `NewConstraint(c).Check(NewVersion(v))`.
pub fn semver_compare(constraint: &str, version: &str) -> Result<bool, String> {
    let v = Version::parse(version).map_err(|_| "Invalid Semantic Version".to_string())?;
    for alt in constraint.split("||") {
        let alt = alt.trim();
        // hyphen ranges "1.2 - 1.4.5"
        let mut bounds = Vec::new();
        let toks: Vec<&str> = alt
            .split([',', ' '])
            .filter(|t| !t.trim().is_empty())
            .collect();
        let mut i = 0;
        let mut pending_op: Option<&str> = None;
        while i < toks.len() {
            let t = toks[i];
            if i + 2 < toks.len() && toks[i + 1] == "-" {
                let lo = parse_bound(&format!(">={t}"))?;
                let hi_b = parse_bound(toks[i + 2])?;
                let hi = if hi_b.dirty < 3 {
                    Bound {
                        op: "<".into(),
                        v: bump(&hi_b.v, hi_b.dirty.max(1) - 1),
                        dirty: 3,
                    }
                } else {
                    Bound {
                        op: "<=".into(),
                        v: hi_b.v,
                        dirty: 3,
                    }
                };
                bounds.push(lo);
                bounds.push(hi);
                i += 3;
                continue;
            }
            // an operator separated from its version by a space: ">= 1.2"
            if t.chars().all(|c| "<>=!~^".contains(c)) {
                pending_op = Some(t);
                i += 1;
                continue;
            }
            let s = match pending_op.take() {
                Some(op) => format!("{op}{t}"),
                None => t.to_string(),
            };
            bounds.push(parse_bound(&s)?);
            i += 1;
        }
        if bounds.is_empty() {
            return Err(format!("improper constraint: {constraint}"));
        }
        if bounds.iter().all(|b| check(b, &v)) {
            return Ok(true);
        }
    }
    Ok(false)
}
