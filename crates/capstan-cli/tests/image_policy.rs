//! `capstan image select` and `capstan image set-images`, through the binary: a table
//! of ImagePolicies (every policy kind, filterTags, seed 004's build tags) over tag
//! lists, and the setter rewrite of a directory.

use std::path::Path;
use std::process::{Command, Output};

fn capstan(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const TAGS: &str = "\
1.0.0
v1.2.3
1.10.0
2.0.0-rc.1
1.9
latest
main-3f2a9c1-1700000000
main-b00b135-1700000123
dev-0000000-1800000000
v1.2.2.2022-01-15t161730811Z.aaaaaaa
v1.2.2.2022-01-15t161730814Z.3f2a9c1
v1.2.2.2022-01-15t161730813Z.bbbbbbb
v1.2.1.2022-01-16t000000000Z.ccccccc
v1.3.0.2022-01-17t000000000Z.ddddddd
";

fn policy(spec: &str) -> String {
    format!(
        "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata:\n  name: app\n  namespace: apps\nspec:\n  imageRepositoryRef:\n    name: app\n{spec}"
    )
}

fn select(dir: &Path, spec: &str, tags: &str) -> Output {
    let p = dir.join("policy.yaml");
    let t = dir.join("tags.txt");
    std::fs::write(&p, policy(spec)).unwrap();
    std::fs::write(&t, tags).unwrap();
    capstan(&[
        "image",
        "select",
        "--policy",
        p.to_str().unwrap(),
        "--tags",
        t.to_str().unwrap(),
    ])
}

#[test]
fn image_select_table_every_policy_kind_and_filter_tags() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str, &str)] = &[
        (
            "semver range",
            "  policy:\n    semver:\n      range: '>=1.0.0 <2.0.0'\n",
            "1.10.0",
        ),
        (
            "semver tilde keeps v prefix",
            "  policy:\n    semver:\n      range: '~1.2'\n",
            "v1.2.3",
        ),
        (
            "semver pre-release opt-in",
            "  policy:\n    semver:\n      range: '>=2.0.0-0'\n",
            "2.0.0-rc.1",
        ),
        (
            "semver with filterTags extract",
            "  filterTags:\n    pattern: '^v(?P<v>1\\.2\\.\\d+)$'\n    extract: '$v'\n  policy:\n    semver:\n      range: '1.x'\n",
            "v1.2.3",
        ),
        (
            "alphabetical asc",
            "  policy:\n    alphabetical:\n      order: asc\n",
            "v1.3.0.2022-01-17t000000000Z.ddddddd",
        ),
        (
            "alphabetical desc",
            "  policy:\n    alphabetical:\n      order: desc\n",
            "1.0.0",
        ),
        (
            "alphabetical default order is asc",
            "  policy:\n    alphabetical: {}\n",
            "v1.3.0.2022-01-17t000000000Z.ddddddd",
        ),
        (
            "numerical asc over extracted timestamps",
            "  filterTags:\n    pattern: '^main-[a-f0-9]+-(?P<ts>[0-9]+)$'\n    extract: '$ts'\n  policy:\n    numerical:\n      order: asc\n",
            "main-b00b135-1700000123",
        ),
        (
            "numerical desc over extracted timestamps",
            "  filterTags:\n    pattern: '^main-[a-f0-9]+-(?P<ts>[0-9]+)$'\n    extract: '${ts}'\n  policy:\n    numerical:\n      order: desc\n",
            "main-3f2a9c1-1700000000",
        ),
        (
            "filterTags without extract orders whole tags",
            "  filterTags:\n    pattern: '^main-'\n  policy:\n    alphabetical:\n      order: asc\n",
            "main-b00b135-1700000123",
        ),
        (
            "seed 004: newest build of the 1.2 line, to the millisecond",
            "  filterTags:\n    pattern: '^v1\\.2\\.\\d+\\.(?P<ts>\\d{4}-\\d{2}-\\d{2}t\\d{9}Z)\\.[0-9a-f]+$'\n    extract: '$ts'\n  policy:\n    alphabetical:\n      order: asc\n",
            "v1.2.1.2022-01-16t000000000Z.ccccccc",
        ),
        (
            "seed 004: newest build of 1.2.2 (tags 1 and 3 ms apart)",
            "  filterTags:\n    pattern: '^v1\\.2\\.2\\.(?P<ts>\\d{4}-\\d{2}-\\d{2}t\\d{9}Z)\\.[0-9a-f]+$'\n    extract: '$ts'\n  policy:\n    alphabetical:\n      order: asc\n",
            "v1.2.2.2022-01-15t161730814Z.3f2a9c1",
        ),
    ];
    for (what, spec, want) in cases {
        let out = select(dir.path(), spec, TAGS);
        assert!(
            out.status.success(),
            "{what}: exit {:?}: {}",
            out.status.code(),
            text(&out.stderr)
        );
        assert_eq!(text(&out.stdout), format!("{want}\n"), "{what}");
    }
}

#[test]
fn image_select_numerical_timestamp_with_milliseconds_loses_precision() {
    // The seed 004 timestamps as 17-digit numbers: ...811 and ...813 are the same
    // float64, so the later tag in the list wins even though it is older.
    let dir = tempfile::tempdir().unwrap();
    let spec = "  filterTags:\n    pattern: '^v1\\.2\\.2\\.(?P<d>\\d{4})-(?P<m>\\d{2})-(?P<day>\\d{2})t(?P<t>\\d{9})Z\\.[0-9a-f]+$'\n    extract: '${d}${m}${day}${t}'\n  policy:\n    numerical:\n      order: asc\n";
    let tags = "v1.2.2.2022-01-15t161730813Z.bbbbbbb\nv1.2.2.2022-01-15t161730811Z.aaaaaaa\n";
    let out = select(dir.path(), spec, tags);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "v1.2.2.2022-01-15t161730811Z.aaaaaaa\n");
}

#[test]
fn image_select_errors_are_clear_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "numerical over non-numbers",
            "  policy:\n    numerical: {}\n",
            TAGS,
            "failed to parse invalid numeric value '1.0.0'",
        ),
        (
            "no tag in range",
            "  policy:\n    semver:\n      range: '>=5'\n",
            TAGS,
            "unable to determine latest version",
        ),
        (
            "bad range",
            "  policy:\n    semver:\n      range: 'banana'\n",
            TAGS,
            "spec.policy.semver.range",
        ),
        (
            "bad pattern",
            "  filterTags:\n    pattern: '('\n  policy:\n    alphabetical: {}\n",
            TAGS,
            "spec.filterTags.pattern",
        ),
        (
            "nothing matches the filter",
            "  filterTags:\n    pattern: '^nope'\n  policy:\n    alphabetical: {}\n",
            TAGS,
            "no tag matches spec.filterTags.pattern",
        ),
        ("no policy kind", "  policy: {}\n", TAGS, "spec.policy"),
        (
            "no tags",
            "  policy:\n    alphabetical: {}\n",
            "\n\n",
            "no tags",
        ),
    ];
    for (what, spec, tags, want) in cases {
        let out = select(dir.path(), spec, tags);
        assert_eq!(out.status.code(), Some(2), "{what}: {}", text(&out.stdout));
        let err = text(&out.stderr);
        assert!(err.contains(want), "{what}: {err}");
        assert!(err.contains("policy.yaml"), "{what}: names the file: {err}");
    }
}

#[test]
fn image_set_images_rewrites_only_marked_fields() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("apps");
    std::fs::create_dir_all(&app).unwrap();
    let deploy = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app # a comment\nspec:\n  template:\n    spec:\n      containers:\n      - name: app\n        image: registry.local/app:v1.2.2.2022-01-14t000000000Z.aaaaaaa # {\"$imagepolicy\": \"apps:app\"}\n      - name: side\n        image:   \"registry.local/side:1\"\n";
    let kust = "resources: [deploy.yaml]\nimages:\n- name: app\n  newTag: old # {\"$imagepolicy\": \"apps:app:tag\"}\n";
    std::fs::write(app.join("deploy.yaml"), deploy).unwrap();
    std::fs::write(app.join("kustomization.yaml"), kust).unwrap();
    std::fs::write(
        app.join("notes.txt"),
        "x: y # {\"$imagepolicy\": \"apps:app\"}\n",
    )
    .unwrap();
    let out = capstan(&[
        "image",
        "set-images",
        dir.path().to_str().unwrap(),
        "--latest",
        "apps/app=registry.local/app:v1.2.2.2022-01-15t161730814Z.3f2a9c1",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("deploy.yaml:10: registry.local/app:v1.2.2.2022-01-14t000000000Z.aaaaaaa -> registry.local/app:v1.2.2.2022-01-15t161730814Z.3f2a9c1 (apps:app)"), "{stdout}");
    assert_eq!(
        std::fs::read_to_string(app.join("deploy.yaml")).unwrap(),
        deploy.replace(
            "app:v1.2.2.2022-01-14t000000000Z.aaaaaaa",
            "app:v1.2.2.2022-01-15t161730814Z.3f2a9c1"
        )
    );
    assert_eq!(
        std::fs::read_to_string(app.join("kustomization.yaml")).unwrap(),
        kust.replace(
            "newTag: old",
            "newTag: v1.2.2.2022-01-15t161730814Z.3f2a9c1"
        )
    );
    assert_eq!(
        std::fs::read_to_string(app.join("notes.txt")).unwrap(),
        "x: y # {\"$imagepolicy\": \"apps:app\"}\n"
    );
    let bad = capstan(&[
        "image",
        "set-images",
        dir.path().to_str().unwrap(),
        "--latest",
        "nope",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad.stderr).contains("NAMESPACE/NAME=IMAGE:TAG"));
}
