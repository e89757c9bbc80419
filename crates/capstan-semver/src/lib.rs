//! Semantic versions and version constraints with Masterminds/semver v3 semantics: the one
//! semver of capstan.
//!
//! Helm (`kubeVersion`, dependency ranges, chart versions), Sprig (`semverCompare`, `semver`)
//! and Flux (source-controller's `spec.ref.semver` for Git and OCI, HelmRepository chart
//! versions; image-reflector-controller's semver policy) all use
//! `github.com/Masterminds/semver/v3`, so capstan has one implementation of it, here.
//!
//! Why a crate of its own: it is needed by `capstan-helm`, `capstan-sprig` and
//! `capstan-source` (and image automation), none of which should depend on another just for
//! versions (`capstan-source` pulls gix, tokio and reqwest; `capstan-sprig` pulls crypto).
//! It is pure and depends on nothing beyond std. The `semver` crate is not used because its
//! rules are Cargo's/npm's, not Masterminds': a pre-release there only matches a comparator
//! with the same `major.minor.patch`, so Flux's `>=1.0.0-0` would not match `1.2.0-rc.1`;
//! it also has no `x` wildcards inside `=`/`!=`, no hyphen ranges and no `v` prefix.
//!
//! # Versions
//! - [`Version::parse`] is `NewVersion`: an optional leading `v`, missing minor and patch are
//!   coerced to 0 (`1.2` is `1.2.0`), `-pre` and `+metadata` identifiers of `[0-9A-Za-z-]`;
//!   a numeric pre-release identifier must not start with 0.
//! - [`Version::parse_strict`] is `StrictNewVersion`: exactly `MAJOR.MINOR.PATCH`, no `v`, no
//!   leading zeros.
//! - Ordering ([`Ord`]) is SemVer precedence as Masterminds computes it: metadata is ignored,
//!   a pre-release sorts before its release, identifiers compare numerically when both are
//!   numeric, numeric before alphanumeric, alphanumerics by bytes, and fewer identifiers
//!   first when all shared ones are equal. Equality ([`PartialEq`]) is precedence equality.
//!
//! # Constraints ([`Constraints::parse`] is `NewConstraint`)
//! - `||` separates alternatives; inside one, comparators separated by spaces or commas
//!   must all hold (AND).
//! - Operators: `=` (or none), `!=`, `>`, `>=` (`=>`), `<`, `<=` (`=<`), `~` (`~>`), `^`.
//! - Wildcards `x`, `X`, `*` and missing parts: `1.2.x` / `1.2` with `=` mean `~1.2`;
//!   `>1.2` means above every `1.2.*`; `<=1.2` includes every `1.2.*`; `*` matches any release.
//! - `~1.2.3` is `>=1.2.3 <1.3.0`; `~1` is `>=1.0.0 <2.0.0`.
//! - `^1.2.3` is `>=1.2.3 <2.0.0`; on 0.x the left-most non-zero part is fixed: `^0.2.3` is
//!   `>=0.2.3 <0.3.0`, `^0.0.3` is `=0.0.3`, `^0.0` is `<0.1.0`, `^0` is `<1.0.0`.
//! - Hyphen ranges `1.2 - 1.4.5` (spaces around `-` required) are `>=1.2 <=1.4.5`.
//! - Pre-releases: a version with a pre-release only satisfies an AND group in which at
//!   least one comparator names a pre-release (`>=1.0.0-0` matches `1.2.0-rc.1`; `>=1.0.0`
//!   does not), then compares by precedence.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// Why a version or constraint was rejected. The messages are Masterminds' own (they reach
/// users through Helm and Sprig template errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Not a (loose) semantic version (`ErrInvalidSemVer`).
    InvalidVersion,
    /// An empty string given to [`Version::parse_strict`] (`ErrEmptyString`).
    EmptyString,
    /// A non-digit in a strict version's number (`ErrInvalidCharacters`).
    InvalidCharacters,
    /// A bad pre-release identifier (`ErrInvalidPrerelease`).
    InvalidPrerelease,
    /// A bad build metadata identifier (`ErrInvalidMetadata`).
    InvalidMetadata,
    /// A number with a leading zero where SemVer forbids one (`ErrSegmentStartsZero`).
    SegmentStartsZero,
    /// A constraint (the offending `||` alternative) that does not parse.
    ImproperConstraint(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidVersion => f.write_str("Invalid Semantic Version"),
            Error::EmptyString => f.write_str("Version string empty"),
            Error::InvalidCharacters => f.write_str("Invalid characters in version"),
            Error::InvalidPrerelease => f.write_str("Invalid Prerelease string"),
            Error::InvalidMetadata => f.write_str("Invalid Metadata string"),
            Error::SegmentStartsZero => f.write_str("Version segment starts with 0"),
            Error::ImproperConstraint(c) => write!(f, "improper constraint: {c}"),
        }
    }
}

impl std::error::Error for Error {}

/// A semantic version.
#[derive(Debug, Clone)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    /// The pre-release, without its `-` (empty: a release).
    pub pre: String,
    /// The build metadata, without its `+` (ignored by comparisons).
    pub metadata: String,
    /// The text the version was parsed from.
    pub original: String,
}

fn ident_chars(p: &str) -> bool {
    p.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
}

fn all_digits(p: &str) -> bool {
    !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit())
}

/// `[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*`
fn ident_list(s: &str) -> bool {
    s.split('.').all(|p| !p.is_empty() && ident_chars(p))
}

/// Masterminds' `validatePrerelease` (identifiers already checked by [`ident_list`]).
fn validate_prerelease(pre: &str) -> Result<(), Error> {
    for p in pre.split('.') {
        if p.is_empty() || !ident_chars(p) {
            return Err(Error::InvalidPrerelease);
        }
        if all_digits(p) && p.len() > 1 && p.starts_with('0') {
            return Err(Error::SegmentStartsZero);
        }
    }
    Ok(())
}

fn validate_metadata(meta: &str) -> Result<(), Error> {
    if meta.split('.').all(|p| !p.is_empty() && ident_chars(p)) {
        Ok(())
    } else {
        Err(Error::InvalidMetadata)
    }
}

impl Version {
    /// `major.minor.patch` with no pre-release or metadata.
    pub fn new(major: u64, minor: u64, patch: u64) -> Version {
        Version {
            major,
            minor,
            patch,
            pre: String::new(),
            metadata: String::new(),
            original: format!("{major}.{minor}.{patch}"),
        }
    }

    /// `NewVersion`: an optional leading `v`; a missing minor or patch is 0 (`v1.2` is
    /// `1.2.0`); optional `-pre` and `+metadata`.
    pub fn parse(s: &str) -> Result<Version, Error> {
        let t = s.strip_prefix('v').unwrap_or(s);
        let (rest, metadata) = match t.split_once('+') {
            Some((a, m)) => {
                if !ident_list(m) {
                    return Err(Error::InvalidVersion);
                }
                (a, m)
            }
            None => (t, ""),
        };
        let (core, pre) = match rest.split_once('-') {
            Some((a, p)) => {
                if !ident_list(p) {
                    return Err(Error::InvalidVersion);
                }
                (a, p)
            }
            None => (rest, ""),
        };
        let parts: Vec<&str> = core.split('.').collect();
        if parts.len() > 3 || !parts.iter().all(|p| all_digits(p)) {
            return Err(Error::InvalidVersion);
        }
        let mut nums = [0u64; 3];
        for (n, p) in nums.iter_mut().zip(&parts) {
            *n = p.parse().map_err(|_| Error::InvalidVersion)?;
        }
        if !pre.is_empty() {
            validate_prerelease(pre)?;
        }
        Ok(Version {
            major: nums[0],
            minor: nums[1],
            patch: nums[2],
            pre: pre.to_string(),
            metadata: metadata.to_string(),
            original: s.to_string(),
        })
    }

    /// `StrictNewVersion`: exactly `MAJOR.MINOR.PATCH[-pre][+metadata]`, no `v`, no leading
    /// zeros.
    pub fn parse_strict(s: &str) -> Result<Version, Error> {
        if s.is_empty() {
            return Err(Error::EmptyString);
        }
        let mut parts: Vec<&str> = s.splitn(3, '.').collect();
        if parts.len() != 3 {
            return Err(Error::InvalidVersion);
        }
        let mut metadata = "";
        if let Some((a, m)) = parts[2].split_once('+') {
            validate_metadata(m)?;
            metadata = m;
            parts[2] = a;
        }
        let mut pre = "";
        if let Some((a, p)) = parts[2].split_once('-') {
            validate_prerelease(p)?;
            pre = p;
            parts[2] = a;
        }
        let mut nums = [0u64; 3];
        for (n, p) in nums.iter_mut().zip(&parts) {
            if !all_digits(p) {
                return Err(Error::InvalidCharacters);
            }
            if p.len() > 1 && p.starts_with('0') {
                return Err(Error::SegmentStartsZero);
            }
            *n = p.parse().map_err(|_| Error::InvalidVersion)?;
        }
        Ok(Version {
            major: nums[0],
            minor: nums[1],
            patch: nums[2],
            pre: pre.to_string(),
            metadata: metadata.to_string(),
            original: s.to_string(),
        })
    }
}

/// The canonical form `1.2.3-pre+metadata` (no `v`, missing parts filled in).
impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if !self.pre.is_empty() {
            write!(f, "-{}", self.pre)?;
        }
        if !self.metadata.is_empty() {
            write!(f, "+{}", self.metadata)?;
        }
        Ok(())
    }
}

impl FromStr for Version {
    type Err = Error;
    fn from_str(s: &str) -> Result<Version, Error> {
        Version::parse(s)
    }
}

fn numeric(p: &str) -> Option<u64> {
    if all_digits(p) {
        p.parse().ok()
    } else {
        None
    }
}

/// One pre-release identifier against another (a missing one sorts first).
fn compare_pre_part(s: &str, o: &str) -> Ordering {
    if s == o {
        return Ordering::Equal;
    }
    if s.is_empty() {
        return Ordering::Less;
    }
    if o.is_empty() {
        return Ordering::Greater;
    }
    match (numeric(s), numeric(o)) {
        (Some(a), Some(b)) => a.cmp(&b),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => s.cmp(o),
    }
}

/// Pre-release precedence of two non-empty pre-releases.
fn compare_prerelease(a: &str, b: &str) -> Ordering {
    let (sa, sb): (Vec<&str>, Vec<&str>) = (a.split('.').collect(), b.split('.').collect());
    for i in 0..sa.len().max(sb.len()) {
        let o = compare_pre_part(
            sa.get(i).copied().unwrap_or(""),
            sb.get(i).copied().unwrap_or(""),
        );
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
            .then_with(|| match (self.pre.is_empty(), o.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => compare_prerelease(&self.pre, &o.pre),
            })
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

/// Precedence equality: `v1.2` equals `1.2.0`, metadata is ignored.
impl PartialEq for Version {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}

impl Eq for Version {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// `=` or no operator.
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    Tilde,
    Caret,
}

/// Longest operator first, so `>=` is not read as `>`.
const OPS: [(&str, Op); 11] = [
    ("!=", Op::Ne),
    (">=", Op::Ge),
    ("=>", Op::Ge),
    ("<=", Op::Le),
    ("=<", Op::Le),
    ("~>", Op::Tilde),
    (">", Op::Gt),
    ("<", Op::Lt),
    ("=", Op::Eq),
    ("~", Op::Tilde),
    ("^", Op::Caret),
];

/// One comparator: an operator and a (possibly partial or wildcarded) version.
#[derive(Debug, Clone)]
struct Comparator {
    op: Op,
    con: Version,
    /// Some part was a wildcard or missing.
    dirty: bool,
    /// The minor (and so the patch) was a wildcard or missing.
    minor_dirty: bool,
    /// Only the patch was a wildcard or missing.
    patch_dirty: bool,
}

fn is_x(p: &str) -> bool {
    matches!(p, "x" | "X" | "*")
}

impl Comparator {
    /// Masterminds' `parseConstraint` for one operator and its version text.
    fn new(op: Op, text: &str) -> Option<Comparator> {
        let t = text.strip_prefix('v').unwrap_or(text);
        let (core, tail) = t.split_at(t.find(['-', '+']).unwrap_or(t.len()));
        let parts: Vec<&str> = core.split('.').collect();
        if parts.len() > 3 || !parts.iter().all(|p| is_x(p) || all_digits(p)) {
            return None;
        }
        let (mut dirty, mut minor_dirty, mut patch_dirty) = (true, false, false);
        let ver = if is_x(parts[0]) {
            format!("0.0.0{tail}")
        } else if parts.len() < 2 || is_x(parts[1]) {
            minor_dirty = true;
            format!("{}.0.0{tail}", parts[0])
        } else if parts.len() < 3 || is_x(parts[2]) {
            patch_dirty = true;
            format!("{}.{}.0{tail}", parts[0], parts[1])
        } else {
            dirty = false;
            t.to_string()
        };
        let mut con = Version::parse(&ver).ok()?;
        con.original = text.to_string();
        Some(Comparator {
            op,
            con,
            dirty,
            minor_dirty,
            patch_dirty,
        })
    }

    fn tilde(&self, v: &Version) -> bool {
        let c = &self.con;
        if v < c {
            return false;
        }
        // ~0.0.0 and ~* accept everything
        if c.major == 0 && c.minor == 0 && c.patch == 0 && !self.minor_dirty && !self.patch_dirty {
            return true;
        }
        v.major == c.major && (v.minor == c.minor || self.minor_dirty)
    }

    fn caret(&self, v: &Version) -> bool {
        let c = &self.con;
        if v < c {
            return false;
        }
        if c.major > 0 || self.minor_dirty {
            return v.major == c.major;
        }
        if v.major > 0 {
            return false;
        }
        if c.minor > 0 || self.patch_dirty {
            return v.minor == c.minor;
        }
        if v.minor > 0 {
            return false;
        }
        v.patch == c.patch
    }

    /// `include_pre`: whether the comparator's AND group names a pre-release.
    fn check(&self, v: &Version, include_pre: bool) -> bool {
        if !v.pre.is_empty() && !include_pre {
            return false;
        }
        let c = &self.con;
        match self.op {
            Op::Eq => {
                if self.dirty {
                    self.tilde(v)
                } else {
                    v == c
                }
            }
            Op::Ne => {
                if self.dirty {
                    if c.major != v.major {
                        return true;
                    }
                    if self.minor_dirty {
                        return false;
                    }
                    if c.minor != v.minor {
                        return true;
                    }
                    if self.patch_dirty {
                        // `!=4.1-alpha`: any 4.1.* whose pre-release differs
                        return (!v.pre.is_empty() || !c.pre.is_empty())
                            && compare_prerelease(&v.pre, &c.pre) != Ordering::Equal;
                    }
                }
                v != c
            }
            Op::Gt => {
                if !self.dirty {
                    v > c
                } else if v.major != c.major {
                    v.major > c.major
                } else if self.minor_dirty {
                    // `>11` needs 12 or more
                    false
                } else if self.patch_dirty {
                    // `>11.1` needs 11.2 or more
                    v.minor > c.minor
                } else {
                    v > c
                }
            }
            Op::Lt => v < c,
            Op::Ge => v >= c,
            Op::Le => {
                if !self.dirty {
                    return v <= c;
                }
                if v.major != c.major {
                    return v.major < c.major;
                }
                self.minor_dirty || v.minor <= c.minor
            }
            Op::Tilde => self.tilde(v),
            Op::Caret => self.caret(v),
        }
    }
}

/// One `||` alternative: comparators that must all hold.
#[derive(Debug, Clone)]
struct Group {
    comparators: Vec<Comparator>,
    /// Some comparator names a pre-release: pre-release versions may match the group.
    has_pre: bool,
}

/// A parsed constraint: alternatives (`||`) of comparator groups (AND).
#[derive(Debug, Clone)]
pub struct Constraints {
    text: String,
    groups: Vec<Group>,
}

fn is_version_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'*' | b'-' | b'+')
}

/// Parse one `||` alternative: `item ((\s+ | \s*,\s*) item)*` where an item is
/// `op? \s* version` or a hyphen range `version \s+ - \s+ version`.
fn parse_group(seg: &str) -> Result<Group, Error> {
    let err = || Error::ImproperConstraint(seg.trim().to_string());
    let b = seg.as_bytes();
    let skip_ws = |i: &mut usize| {
        while *i < b.len() && b[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    let version_at = |i: &mut usize| -> &str {
        let start = *i;
        while *i < b.len() && is_version_byte(b[*i]) {
            *i += 1;
        }
        &seg[start..*i]
    };
    let mut comparators = Vec::new();
    let mut i = 0;
    skip_ws(&mut i);
    loop {
        let (op, op_text) = OPS
            .iter()
            .find(|(s, _)| seg[i..].starts_with(s))
            .map(|(s, op)| (*op, *s))
            .unwrap_or((Op::Eq, ""));
        i += op_text.len();
        skip_ws(&mut i);
        let text = version_at(&mut i);
        if text.is_empty() {
            return Err(err());
        }
        let end = i;
        skip_ws(&mut i);
        // hyphen range: `1.2 - 1.4.5` is `>=1.2, <=1.4.5`
        if i > end
            && op_text.is_empty()
            && b.get(i) == Some(&b'-')
            && b.get(i + 1).is_some_and(|c| c.is_ascii_whitespace())
        {
            i += 1;
            skip_ws(&mut i);
            let upper = version_at(&mut i);
            let lo = Comparator::new(Op::Ge, text).ok_or_else(err)?;
            let hi = Comparator::new(Op::Le, upper).ok_or_else(err)?;
            comparators.push(lo);
            comparators.push(hi);
        } else {
            comparators.push(Comparator::new(op, text).ok_or_else(err)?);
            i = end;
        }
        let before = i;
        skip_ws(&mut i);
        if i == b.len() {
            break;
        }
        if b[i] == b',' {
            i += 1;
            skip_ws(&mut i);
        } else if i == before {
            // two comparators glued together (`1.2.3~1.2`)
            return Err(err());
        }
    }
    let has_pre = comparators.iter().any(|c| !c.con.pre.is_empty());
    Ok(Group {
        comparators,
        has_pre,
    })
}

impl Constraints {
    /// `NewConstraint`: e.g. `>=1.0.0 <2.0.0`, `~1.2 || ^3`, `1.2 - 1.4.5`, `2.x`.
    pub fn parse(text: &str) -> Result<Constraints, Error> {
        let groups = text
            .split("||")
            .map(parse_group)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Constraints {
            text: text.to_string(),
            groups,
        })
    }

    /// Whether `v` satisfies some alternative (`Check`).
    pub fn check(&self, v: &Version) -> bool {
        self.groups
            .iter()
            .any(|g| g.comparators.iter().all(|c| c.check(v, g.has_pre)))
    }

    /// The highest of `candidates` that satisfies the constraint (what Flux picks for
    /// `spec.ref.semver`), with its payload.
    pub fn best<'a, T>(
        &self,
        candidates: impl IntoIterator<Item = (&'a Version, T)>,
    ) -> Option<(&'a Version, T)> {
        candidates
            .into_iter()
            .filter(|(v, _)| self.check(v))
            .max_by(|a, b| a.0.cmp(b.0))
    }

    /// The text the constraint was parsed from.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Constraints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Constraints {
    type Err = Error;
    fn from_str(s: &str) -> Result<Constraints, Error> {
        Constraints::parse(s)
    }
}

/// `NewConstraint(constraint).Check(NewVersion(version))`, the constraint parsed first
/// (Sprig's `semverCompare`).
pub fn compare(constraint: &str, version: &str) -> Result<bool, Error> {
    let c = Constraints::parse(constraint)?;
    let v = Version::parse(version)?;
    Ok(c.check(&v))
}

#[cfg(test)]
mod tests;
