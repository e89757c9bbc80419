//! The three ordering policies of Flux's image-reflector-controller, as its
//! `internal/policy` package implements them, and the selection that puts them
//! together with `filterTags` (`applyPolicy`).

use std::cmp::Ordering;

use capstan_sprig::semver::{semver_compare, Version};

use crate::error::{ImageError, ImageErrorKind};
use crate::filter::TagFilter;
use crate::gofloat::{parse_go_float, FloatError};

/// `asc` or `desc` (Flux upper-cases what it is given; the CRD allows `asc`/`desc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Asc,
    Desc,
}

impl Order {
    /// Flux's `NewAlphabetical`/`NewNumerical` order argument: empty is `ASC`.
    pub fn parse(s: &str, field: &str) -> Result<Order, ImageError> {
        match s.to_ascii_uppercase().as_str() {
            "" | "ASC" => Ok(Order::Asc),
            "DESC" => Ok(Order::Desc),
            _ => Err(ImageError::new(
                ImageErrorKind::InvalidPolicy,
                format!("invalid order argument provided: '{s}', must be one of: ASC, DESC"),
            )
            .field(field)),
        }
    }
}

/// `spec.policy`: which ordering picks the latest tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyChoice {
    /// `semver.range`: a Masterminds/semver v3 constraint.
    SemVer {
        range: String,
    },
    Alphabetical {
        order: Order,
    },
    Numerical {
        order: Order,
    },
}

impl PolicyChoice {
    pub fn kind(&self) -> &'static str {
        match self {
            PolicyChoice::SemVer { .. } => "semver",
            PolicyChoice::Alphabetical { .. } => "alphabetical",
            PolicyChoice::Numerical { .. } => "numerical",
        }
    }
}

/// A tag that is a semantic version for Flux (`fluxcd/pkg/version.ParseVersion`):
/// Masterminds' `StrictNewVersion` (three numeric parts without leading zeros, valid
/// pre-release and build identifiers) after an optional leading `v`.
pub fn strict_version(tag: &str) -> Option<Version> {
    let s = tag.strip_prefix('v').unwrap_or(tag);
    let (rest, build) = match s.split_once('+') {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((a, b)) => (a, Some(b)),
        None => (rest, None),
    };
    let num_ok = |p: &str| {
        !p.is_empty()
            && p.bytes().all(|b| b.is_ascii_digit())
            && !(p.len() > 1 && p.starts_with('0'))
            && p.parse::<u64>().is_ok()
    };
    let parts: Vec<&str> = core.split('.').collect();
    if parts.len() != 3 || !parts.iter().all(|p| num_ok(p)) {
        return None;
    }
    let ident_ok =
        |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if let Some(pre) = pre {
        for id in pre.split('.') {
            if !ident_ok(id) {
                return None;
            }
            // numeric identifiers must not have leading zeros
            if id.bytes().all(|b| b.is_ascii_digit()) && id.len() > 1 && id.starts_with('0') {
                return None;
            }
        }
    }
    if let Some(build) = build {
        if !build.split('.').all(ident_ok) {
            return None;
        }
    }
    Version::parse(tag).ok()
}

/// A compiled ordering policy (Flux's `Policer`).
#[derive(Debug, Clone)]
pub enum Policer {
    SemVer { range: String },
    Alphabetical(Order),
    Numerical(Order),
}

impl Policer {
    /// Flux's `PolicerFromSpec`: a bad range or order is an invalid policy.
    pub fn new(choice: &PolicyChoice) -> Result<Policer, ImageError> {
        Ok(match choice {
            PolicyChoice::SemVer { range } => {
                // Parse once up front, so a bad range fails the policy, not each tag.
                semver_compare(range, "0.0.0").map_err(|e| {
                    ImageError::new(
                        ImageErrorKind::InvalidPolicy,
                        format!("invalid semver range '{range}': {e}"),
                    )
                    .field("spec.policy.semver.range")
                    .hint("Masterminds/semver v3 constraints, e.g. '>=1.0.0 <2.0.0', '~1.2', '^1', '1.x'")
                })?;
                Policer::SemVer {
                    range: range.clone(),
                }
            }
            PolicyChoice::Alphabetical { order } => Policer::Alphabetical(*order),
            PolicyChoice::Numerical { order } => Policer::Numerical(*order),
        })
    }

    /// Flux's `Latest(versions)`.
    pub fn latest<S: AsRef<str>>(&self, versions: &[S]) -> Result<String, ImageError> {
        if versions.is_empty() {
            return Err(ImageError::new(
                ImageErrorKind::EmptyVersionList,
                "version list argument cannot be empty",
            ));
        }
        match self {
            Policer::SemVer { range } => {
                let mut best: Option<(Version, &str)> = None;
                for tag in versions {
                    let tag = tag.as_ref();
                    let Some(v) = strict_version(tag) else {
                        continue;
                    };
                    if !semver_compare(range, tag).unwrap_or(false) {
                        continue;
                    }
                    // GreaterThan: the first of equal versions (build metadata) stays.
                    if best
                        .as_ref()
                        .is_none_or(|(b, _)| v.cmp(b) == Ordering::Greater)
                    {
                        best = Some((v, tag));
                    }
                }
                best.map(|(_, t)| t.to_string()).ok_or_else(|| {
                    ImageError::new(
                        ImageErrorKind::NoMatchingVersion,
                        "unable to determine latest version from provided list",
                    )
                    .hint(format!("no tag is a semantic version within '{range}'"))
                })
            }
            Policer::Alphabetical(order) => {
                let it = versions.iter().map(|s| s.as_ref());
                let pick = match order {
                    Order::Asc => it.max(),
                    Order::Desc => it.min(),
                };
                Ok(pick.unwrap_or_default().to_string())
            }
            Policer::Numerical(order) => {
                let mut latest = "";
                let mut pv = 0f64;
                for (i, tag) in versions.iter().enumerate() {
                    let tag = tag.as_ref();
                    let cv = parse_go_float(tag).map_err(|e| {
                        ImageError::new(
                            ImageErrorKind::InvalidNumber,
                            format!("failed to parse invalid numeric value '{tag}'"),
                        )
                        .hint(match e {
                            FloatError::Syntax => "a numerical policy needs every tag (or every extracted value) to be a number: use filterTags to select and extract one",
                            FloatError::Range => "the number is out of float64's range",
                        })
                    })?;
                    // Flux: a later equal value replaces the earlier one.
                    let skip = i > 0
                        && match order {
                            Order::Asc => cv < pv,
                            Order::Desc => cv > pv,
                        };
                    if !skip {
                        latest = tag;
                        pv = cv;
                    }
                }
                Ok(latest.to_string())
            }
        }
    }
}

/// A policy ready to pick tags: the ordering and the optional `filterTags`.
#[derive(Debug, Clone)]
pub struct Policy {
    pub policer: Policer,
    pub filter: Option<TagFilter>,
}

impl Policy {
    pub fn new(choice: &PolicyChoice, filter: Option<(&str, &str)>) -> Result<Policy, ImageError> {
        let policer = Policer::new(choice)?;
        let filter = match filter {
            Some((pattern, extract)) => Some(TagFilter::new(pattern, extract)?),
            None => None,
        };
        Ok(Policy { policer, filter })
    }

    /// Flux's `applyPolicy`: no tags at all is `NoTags`; with `filterTags` the policy
    /// orders the extracted values and the tag they came from is returned.
    pub fn select<S: AsRef<str>>(&self, tags: &[S]) -> Result<String, ImageError> {
        if tags.is_empty() {
            return Err(ImageError::new(
                ImageErrorKind::NoTags,
                "no tags in database",
            ));
        }
        match &self.filter {
            None => self.policer.latest(tags),
            Some(f) => {
                let filtered = f.apply(tags);
                let values: Vec<&str> = filtered.iter().map(|x| x.value.as_str()).collect();
                let latest = self.policer.latest(&values).map_err(|e| {
                    if e.kind == ImageErrorKind::EmptyVersionList {
                        e.hint("no tag matches spec.filterTags.pattern")
                    } else {
                        e
                    }
                })?;
                Ok(filtered
                    .into_iter()
                    .find(|x| x.value == latest)
                    .map(|x| x.original)
                    .unwrap_or_default())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pick(
        choice: PolicyChoice,
        filter: Option<(&str, &str)>,
        tags: &[&str],
    ) -> Result<String, ImageErrorKind> {
        Policy::new(&choice, filter)
            .map_err(|e| e.kind)?
            .select(tags)
            .map_err(|e| e.kind)
    }

    fn semver(r: &str) -> PolicyChoice {
        PolicyChoice::SemVer { range: r.into() }
    }

    #[test]
    fn semver_policy_picks_the_highest_version_in_range() {
        let tags = [
            "1.0.0",
            "v1.2.3",
            "1.10.0",
            "2.0.0",
            "1.11.0-rc.1",
            "latest",
            "1.9",
        ];
        let cases: &[(&str, &str)] = &[
            (">=1.0.0", "2.0.0"),
            ("<2.0.0", "1.10.0"),
            ("~1.2", "v1.2.3"),
            ("^1", "1.10.0"),
            ("1.x", "1.10.0"),
            ("*", "2.0.0"),
            // pre-releases only where a comparator names one (Masterminds v3)
            (">=1.11.0-0", "2.0.0"),
            (">=1.11.0-0 <2.0.0-0", "1.11.0-rc.1"),
            ("1.0.0 - 1.5.0", "v1.2.3"),
            ("<1.0.0 || >=1.10.0 <2", "1.10.0"),
        ];
        for (range, want) in cases {
            assert_eq!(
                pick(semver(range), None, &tags).as_deref(),
                Ok(*want),
                "{range}"
            );
        }
        assert_eq!(
            pick(semver(">=3"), None, &tags),
            Err(ImageErrorKind::NoMatchingVersion)
        );
        assert_eq!(
            pick(semver("not a range"), None, &tags),
            Err(ImageErrorKind::InvalidPolicy)
        );
    }

    #[test]
    fn semver_policy_tags_must_be_strict_semver_with_optional_v() {
        // `1.9` (two parts) and `01.2.3` (leading zero) are not versions for Flux.
        assert!(strict_version("1.9").is_none());
        assert!(strict_version("01.2.3").is_none());
        assert!(strict_version("1.2.3-01").is_none());
        assert!(strict_version("1.2.3-rc.1+build.5").is_some());
        assert!(strict_version("v1.2.3").is_some());
        assert!(strict_version("vv1.2.3").is_none());
        assert_eq!(
            pick(semver("*"), None, &["1.9", "1.2.3"]).as_deref(),
            Ok("1.2.3")
        );
        // equal versions differing in build metadata: the first stays
        assert_eq!(
            pick(semver("*"), None, &["1.0.0+a", "1.0.0+b"]).as_deref(),
            Ok("1.0.0+a")
        );
    }

    #[test]
    fn alphabetical_policy_asc_picks_last_desc_picks_first() {
        let tags = ["b", "a", "c", "C"];
        let asc = PolicyChoice::Alphabetical { order: Order::Asc };
        let desc = PolicyChoice::Alphabetical { order: Order::Desc };
        assert_eq!(pick(asc, None, &tags).as_deref(), Ok("c"));
        assert_eq!(pick(desc, None, &tags).as_deref(), Ok("C"));
        assert_eq!(Order::parse("", "f").unwrap(), Order::Asc);
        assert_eq!(Order::parse("desc", "f").unwrap(), Order::Desc);
        assert_eq!(
            Order::parse("up", "f").unwrap_err().kind,
            ImageErrorKind::InvalidPolicy
        );
    }

    #[test]
    fn numerical_policy_orders_by_float64_and_fails_on_non_numbers() {
        let asc = PolicyChoice::Numerical { order: Order::Asc };
        let desc = PolicyChoice::Numerical { order: Order::Desc };
        let tags = ["10", "9", "1e1", "-1", "0x10p0", "2.5"];
        assert_eq!(pick(asc.clone(), None, &tags).as_deref(), Ok("0x10p0"));
        assert_eq!(pick(desc.clone(), None, &tags).as_deref(), Ok("-1"));
        // equal values: the later one wins (Flux's loop)
        assert_eq!(
            pick(asc.clone(), None, &["10", "1e1"]).as_deref(),
            Ok("1e1")
        );
        assert_eq!(
            pick(asc.clone(), None, &["1", "latest"]),
            Err(ImageErrorKind::InvalidNumber)
        );
        assert_eq!(pick(asc, None, &[] as &[&str]), Err(ImageErrorKind::NoTags));
    }

    #[test]
    fn filter_tags_with_no_match_is_an_empty_version_list() {
        let asc = PolicyChoice::Alphabetical { order: Order::Asc };
        assert_eq!(
            pick(asc, Some(("^nope", "")), &["a"]),
            Err(ImageErrorKind::EmptyVersionList)
        );
    }
}
