//! Flux image automation, natively (pure: no I/O; registry listing and digest lookups
//! sit behind the [`TagLister`] and [`DigestLookup`] traits).
//!
//! - [`ImagePolicy`] / [`Policy`]: the tag an `ImagePolicy` elects, as
//!   fluxcd/image-reflector-controller does: `semver` (Masterminds/semver v3 ranges,
//!   through `capstan_sprig::semver`, the project's Masterminds implementation; tags
//!   must be strict semver with an optional `v`), `alphabetical` (`asc` elects the last
//!   tag in byte order, `desc` the first), `numerical` (Go's `strconv.ParseFloat`:
//!   every tag must be a number, equal values let the later tag win) and
//!   `filterTags.pattern`/`extract` (RE2 syntax, Go's `Regexp.Expand`).
//! - [`PolicyStatus`]: `status.latestRef`/`observedPreviousRef` with
//!   `digestReflectionPolicy` (`Never`, `IfNotPresent`, `Always`).
//! - [`scan`]: `exclusionList` (default `^.*\.sig$`) and `status.lastScanResult`.
//! - [`apply_setters`]: ImageUpdateAutomation's `# {"$imagepolicy": "ns:name"}` markers
//!   (`:tag`, `:name`, `:digest`), rewriting only the marked scalars.
//!
//! # Worked example: seed 004's build tags
//!
//! The team tags every build `v<stable version>.<UTC timestamp with milliseconds>.<git
//! sha>`, e.g. `v1.2.2.2022-01-15t161730814Z.3f2a9c1` (and environment tags such as
//! `user-roles:production`, which no policy below matches). These are not semantic
//! versions (four dot-separated parts before any `-`), so `semver` ignores them all.
//!
//! The newest build of the `1.2` release line is elected by extracting the timestamp
//! and ordering it **alphabetically, ascending**:
//!
//! ```yaml
//! spec:
//!   filterTags:
//!     pattern: '^v1\.2\.\d+\.(?P<ts>\d{4}-\d{2}-\d{2}t\d{9}Z)\.[0-9a-f]+$'
//!     extract: '$ts'
//!   policy:
//!     alphabetical:
//!       order: asc
//! ```
//!
//! The timestamp is fixed-width (`YYYY-MM-DDtHHMMSSmmmZ`, zero-padded), so byte order
//! is time order, to the millisecond, for any number of builds; the commit sha plays no
//! part. (Pin one version with `^v1\.2\.2\.`; follow every line with `^v\d+\...`, but
//! then a rebuilt old release line counts as newest: builds are ordered by time.)
//!
//! A plain `numerical` policy over the timestamp needs the digits alone, e.g. with
//! `(?P<d>\d{4})-(?P<m>\d{2})-(?P<day>\d{2})t(?P<t>\d{9})Z` and extract
//! `${d}${m}${day}${t}` giving `20220115161730814`: 17 digits. Flux parses it with
//! `strconv.ParseFloat(s, 64)`; a float64 holds integers exactly only up to 2^53
//! (about 9.007e15, 16 digits), and around 2.02e16 adjacent float64 values are 4 apart.
//! `20220115161730811`, `…812` and `…813` all become `20220115161730812.0`: builds
//! a few milliseconds apart compare equal, and the elected tag is the later one *in the
//! list's order* (Flux's loop keeps the last equal value; Flux's filter map order is
//! random), not the newer build. Seconds-only timestamps (14 digits) would fit, but lose
//! the milliseconds the tag standard carries. `alphabetical` has no such limit.

mod applytime;
mod error;
mod filter;
mod gofloat;
mod policy;
mod scan;
mod setters;
mod spec;

pub use applytime::{
    kustomize_image_override, merge_image_overrides, parse_image_policy_annotation,
    IMAGE_POLICY_ANNOTATION,
};
pub use error::{ImageError, ImageErrorKind};
pub use filter::{Filtered, TagFilter};
pub use gofloat::{parse_go_float, FloatError};
pub use policy::{strict_version, Order, Policer, Policy, PolicyChoice};
pub use scan::{
    canonical_image_name, exclude_tags, repository_status, scan, ScanResult, TagLister,
    LATEST_TAGS_COUNT,
};
pub use setters::{
    apply_setters, parse_setter_ref, SetterChange, SetterOutcome, SetterPart, SETTER_SHORTHAND,
};
pub use spec::{
    DigestLookup, ImagePolicy, ImageRef, ImageRepository, ObjectKey, PolicyStatus,
    ReflectionPolicy, API_GROUP, DEFAULT_EXCLUSION,
};

/// Parses every document of `text` and returns the ImagePolicies (other kinds are
/// skipped); `source` names the file in errors.
pub fn image_policies(text: &str, source: &str) -> Result<Vec<ImagePolicy>, ImageError> {
    let docs = capstan_yaml::parse_documents(text, source)
        .map_err(|e| ImageError::new(ImageErrorKind::InvalidSpec, e.to_string()).context(source))?;
    docs.iter()
        .filter(|d| d.str_at(&["kind"]) == Some("ImagePolicy"))
        .map(|d| ImagePolicy::from_node(d, source))
        .collect()
}

#[cfg(test)]
mod seed004 {
    use super::*;

    const BUILDS: &[&str] = &[
        "v1.2.2.2022-01-15t161730811Z.aaaaaaa",
        "v1.2.2.2022-01-15t161730814Z.3f2a9c1", // newest, 3 ms after the one above
        "v1.2.2.2022-01-15t161730813Z.bbbbbbb",
        "v1.2.1.2022-01-14t090000000Z.ccccccc",
        "v1.3.0.2022-01-10t120000000Z.ddddddd",
        "user-roles",
        "production",
        "1.2.2",
    ];

    fn policy(choice: PolicyChoice, pattern: &str, extract: &str) -> Policy {
        Policy::new(&choice, Some((pattern, extract))).unwrap()
    }

    #[test]
    fn seed004_alphabetical_timestamp_elects_the_newest_build_to_the_millisecond() {
        let p = policy(
            PolicyChoice::Alphabetical { order: Order::Asc },
            r"^v1\.2\.\d+\.(?P<ts>\d{4}-\d{2}-\d{2}t\d{9}Z)\.[0-9a-f]+$",
            "$ts",
        );
        assert_eq!(
            p.select(BUILDS).unwrap(),
            "v1.2.2.2022-01-15t161730814Z.3f2a9c1"
        );
        // in any order of the list
        let mut rev = BUILDS.to_vec();
        rev.reverse();
        assert_eq!(
            p.select(&rev).unwrap(),
            "v1.2.2.2022-01-15t161730814Z.3f2a9c1"
        );
    }

    #[test]
    fn seed004_numerical_timestamp_loses_milliseconds_to_float64() {
        let p = policy(
            PolicyChoice::Numerical { order: Order::Asc },
            r"^v1\.2\.\d+\.(?P<d>\d{4})-(?P<m>\d{2})-(?P<day>\d{2})t(?P<t>\d{9})Z\.[0-9a-f]+$",
            "${d}${m}${day}${t}",
        );
        // ...811, ...813 and ...814 are 2022011516173081{1,3,4}: 811 and 813 collapse to
        // the same float64, so with 814 missing the later of the two in list order wins.
        let two = [
            "v1.2.2.2022-01-15t161730813Z.bbbbbbb",
            "v1.2.2.2022-01-15t161730811Z.aaaaaaa",
        ];
        assert_eq!(
            p.select(&two).unwrap(),
            "v1.2.2.2022-01-15t161730811Z.aaaaaaa"
        );
        let alpha = policy(
            PolicyChoice::Alphabetical { order: Order::Asc },
            r"^v1\.2\.\d+\.(?P<ts>\d{4}-\d{2}-\d{2}t\d{9}Z)\.[0-9a-f]+$",
            "$ts",
        );
        assert_eq!(
            alpha.select(&two).unwrap(),
            "v1.2.2.2022-01-15t161730813Z.bbbbbbb"
        );
    }

    #[test]
    fn seed004_semver_ignores_build_tags_and_environment_tags() {
        let p = Policy::new(
            &PolicyChoice::SemVer {
                range: ">=1.0.0".into(),
            },
            None,
        )
        .unwrap();
        assert_eq!(p.select(BUILDS).unwrap(), "1.2.2");
    }

    #[test]
    fn image_policies_reads_every_policy_of_a_file() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {name: a, namespace: n}\nspec:\n  imageRepositoryRef: {name: r}\n  policy: {alphabetical: {order: desc}}\n";
        let ps = image_policies(text, "f.yaml").unwrap();
        assert_eq!(ps.len(), 1);
        assert_eq!(
            ps[0].choice,
            PolicyChoice::Alphabetical { order: Order::Desc }
        );
        let e = image_policies("a: [", "bad.yaml").unwrap_err();
        assert!(e.to_string().starts_with("bad.yaml"), "{e}");
    }
}
