use super::*;

fn m(c: &str, v: &str) -> bool {
    let con = Constraints::parse(c).unwrap_or_else(|e| panic!("{c:?}: {e}"));
    let ver = Version::parse(v).unwrap_or_else(|e| panic!("{v:?}: {e}"));
    con.check(&ver)
}

fn table(cases: &[(&str, &str, bool)]) {
    for (c, v, want) in cases {
        assert_eq!(m(c, v), *want, "constraint {c:?} against {v:?}");
    }
}

// ---- versions ----

#[test]
fn new_version_coerces_partial_versions_and_v_prefix() {
    for (s, want) in [
        ("1.2.3", "1.2.3"),
        ("v1.2.3", "1.2.3"),
        ("1.2", "1.2.0"),
        ("v1.2", "1.2.0"),
        ("1", "1.0.0"),
        ("1.2-beta.1", "1.2.0-beta.1"),
        ("1.2.3-rc.1+build.5", "1.2.3-rc.1+build.5"),
        ("1.2.3+meta-data", "1.2.3+meta-data"),
        ("1.2.3-x-y-z.-", "1.2.3-x-y-z.-"),
    ] {
        let v = Version::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(v.to_string(), want, "{s}");
        assert_eq!(v.original, s);
    }
    assert_eq!(Version::parse("v1.2").unwrap(), Version::new(1, 2, 0));
    assert_eq!(Version::parse("1").unwrap(), Version::new(1, 0, 0));
    assert_eq!(Version::parse("v1.2.3-rc.1").unwrap().pre, "rc.1");
}

#[test]
fn new_version_rejects_non_versions() {
    for s in [
        "",
        "v",
        "latest",
        "1.2.3.4",
        "1..2",
        ".1",
        "1.2.",
        "V1.2.3",
        "1.2.3-",
        "1.2.3+",
        "1.2.3-a..b",
        "1.2.3-a_b",
        "1.2.3+a+b",
        "-1.2.3",
        "1.x",
        "a.b.c",
        " 1.2.3",
        "1.2.3 ",
        "99999999999999999999.0.0",
    ] {
        assert!(Version::parse(s).is_err(), "{s:?} should not parse");
    }
    assert_eq!(
        Version::parse("x").unwrap_err().to_string(),
        "Invalid Semantic Version"
    );
}

#[test]
fn numeric_prerelease_identifier_must_not_start_with_zero() {
    assert_eq!(Version::parse("1.2.3-01"), Err(Error::SegmentStartsZero));
    assert!(Version::parse("1.2.3-0").is_ok());
    assert!(
        Version::parse("1.2.3-0a").is_ok(),
        "alphanumeric identifiers may"
    );
}

#[test]
fn strict_new_version_wants_three_parts_without_v_or_leading_zeros() {
    assert_eq!(
        Version::parse_strict("1.2.3").unwrap(),
        Version::new(1, 2, 3)
    );
    let v = Version::parse_strict("1.2.3-beta.1+b.7").unwrap();
    assert_eq!((v.pre.as_str(), v.metadata.as_str()), ("beta.1", "b.7"));
    assert_eq!(Version::parse_strict(""), Err(Error::EmptyString));
    assert_eq!(Version::parse_strict("1.2"), Err(Error::InvalidVersion));
    assert_eq!(
        Version::parse_strict("v1.2.3"),
        Err(Error::InvalidCharacters)
    );
    assert_eq!(
        Version::parse_strict("01.2.3"),
        Err(Error::SegmentStartsZero)
    );
    assert_eq!(
        Version::parse_strict("1.2.03"),
        Err(Error::SegmentStartsZero)
    );
    assert_eq!(
        Version::parse_strict("1.2.3-a_b"),
        Err(Error::InvalidPrerelease)
    );
    assert_eq!(
        Version::parse_strict("1.2.3+a_b"),
        Err(Error::InvalidMetadata)
    );
    // NewVersion is lenient where StrictNewVersion is not
    assert!(Version::parse("01.2.3").is_ok());
}

#[test]
fn sorting_follows_semver_precedence() {
    let sorted = |input: &[&str]| {
        let mut vs: Vec<Version> = input.iter().map(|s| Version::parse(s).unwrap()).collect();
        vs.sort();
        vs.iter().map(|v| v.to_string()).collect::<Vec<_>>()
    };
    assert_eq!(
        sorted(&["1.2.3", "1.0", "1.3", "2", "0.4.2"]),
        ["0.4.2", "1.0.0", "1.2.3", "1.3.0", "2.0.0"]
    );
    // the SemVer 2.0.0 spec's own precedence example, shuffled
    assert_eq!(
        sorted(&[
            "1.0.0",
            "1.0.0-rc.1",
            "1.0.0-beta.11",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-alpha",
            "1.0.0-beta.2",
            "1.0.0-alpha.1",
        ]),
        [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0"
        ]
    );
    // numbers compare as numbers, not text; metadata is ignored
    assert!(Version::parse("1.10.0").unwrap() > Version::parse("1.9.0").unwrap());
    assert!(Version::parse("1.0.0-rc.10").unwrap() > Version::parse("1.0.0-rc.9").unwrap());
    assert!(Version::parse("1.0.0-1").unwrap() < Version::parse("1.0.0-a").unwrap());
    assert_eq!(
        Version::parse("1.0.0+a").unwrap(),
        Version::parse("v1.0.0+b").unwrap()
    );
}

// ---- constraints ----

#[test]
fn comparison_operators() {
    table(&[
        ("=2.0.0", "1.2.3", false),
        ("=2.0.0", "2.0.0", true),
        ("= 2.0", "2.0.1", true),
        ("4.1", "4.1.0", true),
        ("!=4.1.0", "4.1.0", false),
        ("!=4.1.0", "4.1.1", true),
        ("<1.1", "1.1.0", false),
        ("<1.1", "0.1.0", true),
        ("<11", "11.1.0", false),
        ("<=1.1", "1.1.1", true),
        ("<=11", "11.2.3", true),
        ("<=11", "12.2.3", false),
        ("<=1.2.3", "1.2.4", false),
        (">1.1", "1.1.0", false),
        (">1.1", "4.1.0", true),
        (">11", "11.1.0", false),
        (">11.1", "11.1.1", false),
        (">11.1", "11.2.1", true),
        ("> 1.0", "1.0.1", false),
        (">1.0.0", "1.0.1", true),
        (">=1.1", "1.1.0", true),
        (">=1.1", "0.0.9", false),
        ("=>1.2", "1.2.0", true),
        ("=<1.2", "1.2.9", true),
        (">0", "0", false),
        (">0", "1", true),
        (">=0", "0", true),
        ("=0", "1", false),
    ]);
}

#[test]
fn and_groups_by_comma_or_space_or_groups_by_double_bar() {
    table(&[
        (">=1.0.0 <2.0.0", "1.1.0", true),
        (">=1.0.0 <2.0.0", "2.0.0", false),
        (">=1.0.0, <2.0.0", "v1.0.0", true),
        (">= 1.2, < 2.0", "1.5.0", true),
        (">1.1    <3", "4.3.2", false),
        (">=1.1, <2, !=1.2.3", "1.2.3", false),
        (">= 1.1 <2 != 1.2.3 || > 3", "4.1.2", true),
        (">=1.1, <2, !=1.2.3 || >= 3", "3.0.0", true),
        (">=1.1, <2, !=1.2.3 || > 3", "3.0.0", false),
        ("<1.0.0 || >=3", "3.1.0", true),
        ("<1.0.0 || >=3", "2.1.0", false),
        ("<1.0 || >=2.0", "2.1.0", true),
        (">=1.0.0, !=1.1.0", "1.1.0", false),
    ]);
}

#[test]
fn prerelease_matches_only_groups_naming_a_prerelease() {
    table(&[
        // Flux's `>=1.0.0-0` idiom: every pre-release from 1.0.0 on
        (">=1.0.0-0", "1.2.0-rc.1", true),
        (">=1.0.0", "1.2.0-rc.1", false),
        (">=1.0.0", "1.5.0-rc1", false),
        (">=1.0.0", "1.1.0-rc.1", false),
        (">=1.1.0-rc.0", "1.1.0-rc.1", true),
        (">=1.20.0-0", "1.21.0-beta.1", true),
        (">=1.19.0-0", "v1.36.0", true),
        // one pre-release comparator opens the whole AND group...
        (">=1.0.0-0 <2.0.0", "1.2.0-rc.1", true),
        // ...but not the other alternatives
        (">=3.0.0-0 || >=1.0.0", "1.2.0-rc.1", false),
        ("*", "1.2.3-alpha.1", false),
        ("*-0", "1.2.3-alpha.1", true),
        ("^1.2.0", "1.2.1-alpha.1", false),
        ("^1.2.0-alpha.0", "1.2.1-alpha.1", true),
        ("^1.2.0-alpha.2", "1.2.0-alpha.1", false),
        ("~1.2.3-beta.2", "1.2.4-beta.2", true),
        ("~1.2.3-beta.2", "1.3.4-beta.2", false),
        (">0.0.0-0", "0.0.0-alpha", true),
        (">=0-0", "0.0.0-alpha", true),
        ("<0-z", "0.0.0-alpha", true),
        ("!=4.1-alpha", "4.1.0-alpha", false),
        ("!=4.1-alpha", "4.1.0", true),
        ("<=1.1-a", "0.1.0-alpha", true),
        ("<=1.1", "0.1.0-alpha", false),
        // a pre-release sorts before its release
        (">=1.2.3-0", "1.2.3", true),
        ("<1.2.3", "1.2.3-rc.1", false),
        ("<1.2.3-0", "1.2.3-rc.1", false),
        ("<1.2.3-z", "1.2.3-rc.1", true),
    ]);
}

#[test]
fn wildcards_and_partial_versions() {
    table(&[
        ("*", "9.0.0", true),
        ("*", "0.1.0", true),
        ("x", "1.2.3", true),
        ("1.x", "1.5.0", true),
        ("1.x", "2.0.0", false),
        ("1.X", "1.4", true),
        ("2.*", "1", false),
        ("2.*", "2.1.1", true),
        ("2.x.x", "2.31.0", true),
        ("1.2.x", "1.2.7", true),
        ("2.1.*", "2.2.1", false),
        ("2", "2.1.1", true),
        ("2", "3.4.5", false),
        ("2.1", "2.1.1", true),
        ("2.1", "2.2.1", false),
        ("0.x.x", "1.2.3", false),
        ("0.0.x", "1.2.3", false),
        ("0.0.0", "1.2.3", false),
        ("!=4.x", "4.1.0", false),
        ("!=4.x", "5.1.0", true),
        ("!=4.1.x", "4.2.0", true),
        ("!=4.2.x", "4.2.3", false),
        ("<1.x", "0.1.1", true),
        ("<1.x", "1.1.1", false),
        ("<1.1.x", "1.1.500", false),
        ("<1.1.x", "1.0.500", true),
        ("<=1.x", "1.1.0", true),
        ("<=2.x", "3.0.0", false),
        ("<=1.1.x", "1.2.500", false),
        (">1.x", "1.9.0", false),
        (">1.x", "2.0.0", true),
        ("v1.2.x", "1.2.3", true),
    ]);
}

#[test]
fn hyphen_ranges_include_both_ends_and_whole_partial_upper_bounds() {
    table(&[
        ("1.0.0 - 2.0.0", "1.5.0", true),
        ("1.0.0 - 2.0.0", "2.0.0", true),
        ("1.0.0 - 2.0.0", "2.0.1", false),
        ("1.0.0 - 2.0.0", "0.9.9", false),
        ("1.2.0 - 1.4.5", "1.4.5", true),
        ("1.2 - 1.4", "1.4.7", true),
        ("1.2 - 1.4", "1.4.9", true),
        ("1.2 - 1.4", "1.5.0", false),
        ("1.1 - 2", "2.9.0", true),
        ("1.1 - 2", "3.0.0", false),
        ("1.5.0 - 4.5", "3.7.0", true),
        ("1.0.0 - 2.0.0 <=2.0.0", "1.5.0", true),
        ("1.0.0 - 2.0.0, <=2.0.0", "1.5.0", true),
        ("3 - 4 || >= 5.1", "5.2.0", true),
        // no spaces: a pre-release, not a range
        ("1.1-3", "4.3.2", false),
        ("1.1-3", "1.1.0-3", true),
    ]);
}

#[test]
fn tilde_fixes_minor_unless_only_major_given() {
    table(&[
        ("~1.2.3", "1.2.4", true),
        ("~1.2.3", "1.2.2", false),
        ("~1.2.3", "1.3.0", false),
        ("~1.2", "1.2.9", true),
        ("~1.2", "1.3.0", false),
        ("~1", "1.9.4", true),
        ("~1", "2.0.0", false),
        ("~1.x", "1.3.5", true),
        ("~>1.2", "1.2.4", true),
        ("~*", "2.1.1", true),
        ("~0.0.0", "1.2.3", true),
        ("~0.2.3", "0.2.5", true),
        ("~0.2.3", "0.3.0", false),
        ("~0", "0.9.0", true),
        ("~0", "1.0.0", false),
    ]);
}

#[test]
fn caret_fixes_leftmost_nonzero_part_on_0x() {
    table(&[
        ("^1.2.3", "1.9.0", true),
        ("^1.2.3", "2.0.0", false),
        ("^1.2.3", "1.2.1", false),
        ("^1.2", "1.9.0", true),
        ("^1", "1.8.9", true),
        ("^1", "2.8.9", false),
        ("^1.x", "1.1.1", true),
        ("^2.x", "2.31.0", true),
        ("^2.x", "1.1.1", false),
        ("^0.2.3", "0.2.5", true),
        ("^0.2.3", "0.3.0", false),
        ("^0.2.3", "0.2.2", false),
        ("^0.2", "0.2.5", true),
        ("^0.2", "0.5.6", false),
        ("^0.0.3", "0.0.3", true),
        ("^0.0.3", "0.0.4", false),
        ("^0.0", "0.0.3", true),
        ("^0.0", "0.1.4", false),
        ("^0.0", "1.0.4", false),
        ("^0", "0.2.3", true),
        ("^0", "1.1.4", false),
        ("^0.0.0", "1.2.3", false),
        ("^0.2.3-beta.2", "0.2.4-beta.2", true),
        ("^0.2.3-beta.2", "0.3.4-beta.2", false),
    ]);
}

#[test]
fn improper_constraints_are_errors_naming_the_alternative() {
    for c in [
        "",
        "   ",
        "foo",
        ">= bar",
        "BAR >= 1.2.3",
        ">=",
        "12.3.4.1234",
        "12.3.34~ 1.2.3",
        "1.2.3,",
        ",1.2.3",
        "1.2.3,,1.2.4",
        "1.2.3 ||",
        ">1 - 2",
        "1.x-01",
    ] {
        assert!(Constraints::parse(c).is_err(), "{c:?} should not parse");
    }
    assert_eq!(
        Constraints::parse(">=1.0 || foo").unwrap_err(),
        Error::ImproperConstraint("foo".into())
    );
    assert_eq!(
        Constraints::parse("foo").unwrap_err().to_string(),
        "improper constraint: foo"
    );
    assert!(Constraints::parse("12.3.34 ~1.2.3").is_ok());
    assert!(Constraints::parse("v2.3.5-20161202202307-sha.e8fc5e5").is_ok());
}

#[test]
fn compare_parses_the_constraint_first() {
    assert_eq!(compare(">=1.21-0", "v1.36.0"), Ok(true));
    assert_eq!(
        compare("nope", "nope").unwrap_err(),
        Error::ImproperConstraint("nope".into())
    );
    assert_eq!(compare(">1", "nope").unwrap_err(), Error::InvalidVersion);
}

#[test]
fn best_picks_the_highest_match() {
    let vs: Vec<Version> = ["1.0.0", "1.4.2", "v1.10.0", "2.0.0", "1.11.0-rc.1"]
        .iter()
        .map(|s| Version::parse(s).unwrap())
        .collect();
    let c = Constraints::parse("^1").unwrap();
    let (v, i) = c.best(vs.iter().zip(0..)).unwrap();
    assert_eq!((v.original.as_str(), i), ("v1.10.0", 2));
    let c = Constraints::parse(">=1.0.0-0 <2").unwrap();
    assert_eq!(c.best(vs.iter().zip(0..)).unwrap().1, 4);
    assert!(Constraints::parse(">3")
        .unwrap()
        .best(vs.iter().zip(0..))
        .is_none());
    assert_eq!(c.as_str(), ">=1.0.0-0 <2");
}
