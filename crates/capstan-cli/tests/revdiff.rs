//! `capstan diff --base REV --target REV`: two commits of a generated Flux repository,
//! every category of the report where it belongs, markdown parts under the limit,
//! Secret plaintext nowhere; the CI recipes of examples/ci run as written.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// Plaintext that must never be printed: Secret values at both revisions.
const SECRETS: &[&str] = &[
    "s3cr3t-BASE-plaintext",
    "s3cr3t-TARGET-plaintext",
    "b64-PLAINTEXT-value",
    // base64 of the line above, as it sits in `data`
    "YjY0LVBMQUlOVEVYVC12YWx1ZQ==",
    "rotated-PLAINTEXT-value",
    "cm90YXRlZC1QTEFJTlRFWFQtdmFsdWU=",
];

fn capstan() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_capstan"))
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn have_git() -> bool {
    Command::new("git")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn write(root: &Path, path: &str, text: &str) {
    let p = root.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn ks(name: &str, path: &str, depends: &[&str]) -> String {
    let mut s = format!(
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: {name}\n  namespace: flux-system\nspec:\n  interval: 10m\n  path: {path}\n  prune: true\n  sourceRef:\n    kind: GitRepository\n    name: flux-system\n"
    );
    if !depends.is_empty() {
        s.push_str("  dependsOn:\n");
        for d in depends {
            s.push_str(&format!("    - name: {d}\n"));
        }
    }
    s
}

fn crd(versions: &[&str]) -> String {
    let mut s = String::from("apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.com\nspec:\n  group: example.com\n  scope: Namespaced\n  names:\n    kind: Widget\n    plural: widgets\n    singular: widget\n    listKind: WidgetList\n  versions:\n");
    for (i, v) in versions.iter().enumerate() {
        let storage = i == versions.len() - 1;
        s.push_str(&format!("    - name: {v}\n      served: true\n      storage: {storage}\n      schema:\n        openAPIV3Schema:\n          type: object\n"));
    }
    s
}

/// The two sides of the generated repository (`target` false: the base commit).
fn repo_files(root: &Path, target: bool) {
    let t = |b: &'static str, a: &'static str| if target { a } else { b };
    write(
        root,
        "clusters/prod/infra.yaml",
        &ks("infra", "./infrastructure", &[]),
    );
    write(
        root,
        "clusters/prod/apps.yaml",
        &ks("apps", "./apps/prod", &["infra"]),
    );
    write(
        root,
        "clusters/prod/fragile.yaml",
        &ks("fragile", "./fragile", &[]),
    );
    write(
        root,
        "clusters/prod/legacy.yaml",
        &ks(t("legacy", "legacy-v2"), "./legacy", &[]),
    );
    write(root, "clusters/prod/demo.yaml", "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: demo\n  namespace: flux-system\nspec:\n  interval: 10m\n  targetNamespace: default\n  chart:\n    spec:\n      chart: ./charts/demo\n      sourceRef:\n        kind: GitRepository\n        name: flux-system\n  values:\n    greeting: hello\n");
    if target {
        write(
            root,
            "clusters/prod/extras.yaml",
            &ks("extras", "./extras", &[]),
        );
        write(
            root,
            "clusters/dev/infra.yaml",
            &ks("infra", "./infrastructure", &[]),
        );
    } else {
        write(
            root,
            "clusters/prod/tools.yaml",
            &ks("tools", "./tools", &[]),
        );
    }
    write(
        root,
        "clusters/staging/infra.yaml",
        &ks("infra", "./infrastructure", &[]),
    );
    write(
        root,
        "clusters/staging/apps.yaml",
        &ks(
            "apps",
            "./apps/staging",
            if target { &["infra"] } else { &[] },
        ),
    );
    write(
        root,
        "infrastructure/kustomization.yaml",
        "resources:\n  - crd.yaml\n",
    );
    write(
        root,
        "infrastructure/crd.yaml",
        &crd(if target { &["v1", "v2"] } else { &["v1"] }),
    );
    let mut base = String::from("resources:\n  - web.yaml\n  - api.yaml\n  - svc.yaml\n  - job.yaml\n  - pvc.yaml\n  - secret.yaml\n");
    base.push_str(if target {
        "  - new-config.yaml\n"
    } else {
        "  - old-config.yaml\n"
    });
    write(root, "apps/base/kustomization.yaml", &base);
    write(root, "apps/base/web.yaml", &format!("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: default\nspec:\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      containers:\n        - name: web\n          image: nginx:{}\n", t("1.25", "1.26")));
    write(root, "apps/base/api.yaml", &format!("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\n  namespace: default\nspec:\n  selector:\n    matchLabels:\n      app: {0}\n  template:\n    metadata:\n      labels:\n        app: {0}\n    spec:\n      containers:\n        - name: api\n          image: example/api:2\n", t("api", "api-v2")));
    write(root, "apps/base/svc.yaml", &format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: svc\n  namespace: default\nspec:\n  clusterIP: {}\n  ports:\n    - port: 80\n", t("10.0.0.10", "10.0.0.11")));
    write(root, "apps/base/job.yaml", &format!("apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\n  namespace: default\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n        - name: migrate\n          image: example/migrate:{}\n", t("1", "2")));
    write(root, "apps/base/pvc.yaml", &format!("apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: data\n  namespace: default\nspec:\n  storageClassName: {}\n  accessModes: [ReadWriteOnce]\n  resources:\n    requests:\n      storage: 1Gi\n", t("standard", "fast")));
    write(root, "apps/base/secret.yaml", &format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: default\nstringData:\n  password: {}\ndata:\n  token: {}\n", t("s3cr3t-BASE-plaintext", "s3cr3t-TARGET-plaintext"), t("YjY0LVBMQUlOVEVYVC12YWx1ZQ==", "cm90YXRlZC1QTEFJTlRFWFQtdmFsdWU=")));
    write(root, "apps/base/old-config.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: old-config\n  namespace: default\ndata:\n  a: b\n");
    write(root, "apps/base/new-config.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: new-config\n  namespace: default\ndata:\n  a: b\n");
    if target {
        let _ = std::fs::remove_file(root.join("apps/base/old-config.yaml"));
        let _ = std::fs::remove_dir_all(root.join("tools"));
        let _ = std::fs::remove_file(root.join("clusters/prod/tools.yaml"));
    }
    write(
        root,
        "apps/prod/kustomization.yaml",
        "resources:\n  - ../base\n",
    );
    write(
        root,
        "apps/staging/kustomization.yaml",
        "resources:\n  - ../base\n",
    );
    write(root, "legacy/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: legacy\n  namespace: default\ndata:\n  k: v\n");
    write(
        root,
        "extras/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extras\n  namespace: default\n",
    );
    if !target {
        write(
            root,
            "tools/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: tools\n  namespace: default\n",
        );
    }
    write(
        root,
        "fragile/kustomization.yaml",
        if target {
            "resources:\n  - cm.yaml\n  - missing.yaml\n"
        } else {
            "resources:\n  - cm.yaml\n"
        },
    );
    write(
        root,
        "fragile/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: fragile\n  namespace: default\n",
    );
    write(
        root,
        "charts/demo/Chart.yaml",
        &format!(
            "apiVersion: v2\nname: demo\nversion: {}\n",
            t("1.0.0", "1.1.0")
        ),
    );
    write(root, "charts/demo/templates/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: demo\n  labels:\n    helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}\ndata:\n  greeting: {{ .Values.greeting }}\n");
}

/// A repository with `main` (the base) and `feature` (the target, checked out).
fn make_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    git(root, &["init", "-q", "-b", "main"]);
    repo_files(root, false);
    git(root, &["add", "-A"]);
    git(root, &["commit", "-q", "-m", "base"]);
    git(root, &["checkout", "-q", "-b", "feature"]);
    repo_files(root, true);
    git(root, &["add", "-A"]);
    git(root, &["commit", "-q", "-m", "target"]);
    dir
}

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(capstan())
        .args(args)
        .current_dir(dir)
        .env("XDG_CACHE_HOME", dir.join(".cache-home"))
        .env("NO_COLOR", "1")
        .output()
        .expect("capstan runs")
}

fn assert_no_secret(what: &str, text: &str) {
    for s in SECRETS {
        assert!(
            !text.contains(s),
            "{what} shows the Secret value {s}:\n{text}"
        );
    }
}

fn unit<'a>(report: &'a Value, cluster: &str, id: &str) -> &'a Value {
    report["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == cluster)
        .unwrap_or_else(|| panic!("no cluster {cluster}"))["units"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == id)
        .unwrap_or_else(|| panic!("no unit {id} in {cluster}"))
}

fn object<'a>(u: &'a Value, kind: &str, name: &str) -> &'a Value {
    u["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["key"]["kind"] == kind && o["key"]["name"] == name)
        .unwrap_or_else(|| panic!("no object {kind} {name} in {}", u["id"]))
}

fn has_note(v: &Value, ty: &str, pred: impl Fn(&Value) -> bool) -> bool {
    v["notes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["type"] == ty && pred(n))
}

#[test]
fn every_category_in_json_and_markdown_and_no_secret_anywhere() {
    if !have_git() {
        eprintln!("skipped: git is not installed");
        return;
    }
    let dir = make_repo();
    let root = dir.path();
    let out = run(
        root,
        &[
            "diff", "--base", "main", "--target", "feature", "-o", "json", ".",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(2),
        "a unit fails at the target: {stderr}\n{stdout}"
    );
    assert_no_secret("json", &stdout);
    assert_no_secret("stderr", &stderr);
    let r: Value = serde_json::from_str(&stdout).unwrap();

    let change = |c: &str| {
        r["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == c)
            .unwrap()["change"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(change("dev"), "added");
    assert_eq!(change("prod"), "failed");
    assert_eq!(change("staging"), "changed");

    let apps = unit(&r, "prod", "Kustomization/flux-system/apps");
    assert_eq!(apps["change"], "changed");
    let web = object(apps, "Deployment", "web");
    assert!(
        has_note(web, "image", |n| n["container"] == "web"
            && n["from"] == "nginx:1.25"
            && n["to"] == "nginx:1.26"),
        "{web}"
    );
    let api = object(apps, "Deployment", "api");
    assert!(
        has_note(api, "replace", |n| n["field"] == "spec.selector"),
        "{api}"
    );
    let svc = object(apps, "Service", "svc");
    assert!(
        has_note(svc, "replace", |n| n["field"] == "spec.clusterIP"),
        "{svc}"
    );
    let job = object(apps, "Job", "migrate");
    assert!(
        has_note(job, "replace", |n| n["field"] == "spec.template"),
        "{job}"
    );
    let pvc = object(apps, "PersistentVolumeClaim", "data");
    assert!(has_note(pvc, "replace", |n| n["field"] == "spec"), "{pvc}");
    assert!(
        web["diff"]
            .as_str()
            .unwrap()
            .contains("+      - image: nginx:1.26"),
        "{}",
        web["diff"]
    );
    let secret = object(apps, "Secret", "db");
    assert_eq!(secret["change"], "changed");
    let sd = secret["diff"].as_str().unwrap();
    assert!(
        sd.contains("password") && sd.contains("token") && sd.contains("***"),
        "{sd}"
    );
    let old = object(apps, "ConfigMap", "old-config");
    assert_eq!(old["change"], "removed");
    assert_eq!(old["pruned"], true);
    assert_eq!(object(apps, "ConfigMap", "new-config")["change"], "added");
    assert!(has_note(apps, "prune", |n| n["objects"] == 1 && n["pruned"] == true));

    let infra = unit(&r, "prod", "Kustomization/flux-system/infra");
    let c = object(infra, "CustomResourceDefinition", "widgets.example.com");
    assert!(
        has_note(c, "crd", |n| n["change"]
            .as_str()
            .unwrap()
            .contains("v2 (storage)")),
        "{c}"
    );

    let renamed = unit(&r, "prod", "Kustomization/flux-system/legacy-v2");
    assert_eq!(renamed["change"], "renamed");
    assert!(has_note(renamed, "renamed", |n| n["from"]
        == "Kustomization/flux-system/legacy"));

    let fragile = unit(&r, "prod", "Kustomization/flux-system/fragile");
    assert_eq!(fragile["change"], "failed");
    assert!(
        has_note(fragile, "newlyFails", |n| n["error"]
            .as_str()
            .unwrap()
            .contains("missing.yaml")),
        "{fragile}"
    );
    assert!(fragile["objects"].as_array().unwrap().is_empty());

    let demo = unit(&r, "prod", "HelmRelease/flux-system/demo");
    assert!(
        has_note(demo, "chartVersion", |n| n["from"] == "demo-1.0.0"
            && n["to"] == "demo-1.1.0"),
        "{demo}"
    );
    // The chart label is a default ignore: the ConfigMap itself did not change.
    assert!(demo["objects"].as_array().unwrap().is_empty(), "{demo}");

    assert_eq!(
        unit(&r, "prod", "Kustomization/flux-system/extras")["change"],
        "added"
    );
    let tools = unit(&r, "prod", "Kustomization/flux-system/tools");
    assert_eq!(tools["change"], "removed");
    assert_eq!(object(tools, "ConfigMap", "tools")["pruned"], true);

    let st = unit(&r, "staging", "Kustomization/flux-system/apps");
    assert!(
        has_note(st, "dependencyAdded", |n| n["on"]
            == "Kustomization/flux-system/infra"),
        "{st}"
    );

    // Markdown: the same categories, split under the limit, every object present.
    let md_dir = root.join("md-out");
    let out = run(
        root,
        &[
            "diff",
            "--base",
            "main",
            "--target",
            "feature",
            "-o",
            "markdown",
            "--max-comment-bytes",
            "3000",
            "--output-dir",
            md_dir.to_str().unwrap(),
            ".",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let mut parts: Vec<PathBuf> = std::fs::read_dir(&md_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    parts.sort_by_key(|p| {
        p.file_name()
            .unwrap()
            .to_string_lossy()
            .trim_start_matches("part-")
            .trim_end_matches(".md")
            .parse::<usize>()
            .unwrap()
    });
    assert!(
        parts.len() > 1,
        "3000 bytes cannot hold this diff in one part"
    );
    let mut all = String::new();
    for p in &parts {
        let text = std::fs::read_to_string(p).unwrap();
        assert!(
            text.len() <= 3000,
            "{} is {} bytes",
            p.display(),
            text.len()
        );
        assert_no_secret("markdown", &text);
        all.push_str(&text);
    }
    for c in r["clusters"].as_array().unwrap() {
        for u in c["units"].as_array().unwrap() {
            for o in u["objects"].as_array().unwrap() {
                let k = &o["key"];
                let kind = k["kind"].as_str().unwrap();
                let name = k["name"].as_str().unwrap();
                assert!(
                    all.contains(kind) && all.contains(name),
                    "{kind} {name} missing from the markdown"
                );
            }
        }
    }
    for needle in [
        "| `prod` | failed |",
        "image of container web: nginx:1.25 -&gt; nginx:1.26",
        "spec.selector changed, which is immutable: will be replaced",
        "spec.clusterIP changed",
        "CRD Widget.example.com: versions v1 (storage) -&gt; v1, v2 (storage)",
        "renamed from Kustomization/flux-system/legacy",
        "nothing will be pruned",
        "chart ./charts/demo: demo-1.0.0 -&gt; demo-1.1.0",
        "now waits for Kustomization/flux-system/infra",
        "(deleted by prune)",
        "**added** `ConfigMap default/new-config`",
    ] {
        assert!(all.contains(needle), "markdown lacks {needle:?}:\n{all}");
    }

    // Text, on the default base (merge-base with main) and the working tree.
    let out = run(root, &["diff", "--base"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("merge-base with main") && text.contains("working tree"),
        "{text}"
    );
    assert!(text.contains("image of container web"), "{text}");
    assert_no_secret("text", &text);
}

#[test]
fn exit_codes_clusters_and_bad_revisions() {
    if !have_git() {
        eprintln!("skipped: git is not installed");
        return;
    }
    let dir = make_repo();
    let root = dir.path();
    // No change between a revision and itself.
    let out = run(
        root,
        &["diff", "--base", "main", "--target", "main", "-o", "json"],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Changes, no failure, in the selected cluster only; --changed-only.
    let out = run(
        root,
        &[
            "diff",
            "--base",
            "main",
            "--target",
            "feature",
            "--cluster",
            "staging",
            "--changed-only",
            "-o",
            "json",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["clusters"].as_array().unwrap().len(), 1);
    assert!(r["clusters"][0]["units"]
        .as_array()
        .unwrap()
        .iter()
        .all(|u| u["change"] != "unchanged"));
    // Directories instead of revisions.
    let base = tempfile::tempdir().unwrap();
    repo_files(base.path(), false);
    let out = run(
        root,
        &[
            "diff",
            "--base-dir",
            base.path().to_str().unwrap(),
            "--target-dir",
            base.path().to_str().unwrap(),
            "--path",
            "clusters/staging",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A revision that does not exist.
    let out = run(root, &["diff", "--base", "no-such-branch"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no-such-branch") && err.contains("does not exist"),
        "{err}"
    );
    // A directory without clusters/.
    let empty = tempfile::tempdir().unwrap();
    let out = run(
        root,
        &[
            "diff",
            "--base-dir",
            empty.path().to_str().unwrap(),
            "--target-dir",
            empty.path().to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no clusters/ directory"));
    // Help documents the exit codes.
    let out = run(root, &["diff", "--base", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("Exit codes: 0 no change, 1 changes, 2 failures"));
}

#[test]
fn warm_cache_reuses_every_render() {
    if !have_git() {
        eprintln!("skipped: git is not installed");
        return;
    }
    let dir = make_repo();
    let root = dir.path();
    let first = run(
        root,
        &[
            "diff", "--base", "main", "--target", "feature", "-o", "json", "--stats",
        ],
    );
    let second = run(
        root,
        &[
            "diff", "--base", "main", "--target", "feature", "-o", "json", "--stats",
        ],
    );
    assert_eq!(first.stdout, second.stdout);
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains(", rendered 0;"), "{err}");
}

/// The `run:` script of a GitHub Actions step, or a GitLab job's `script:` lines.
fn script(file: &str, pick: impl Fn(&serde_json::Value) -> Option<String>) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/ci")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let doc = capstan_yaml::to_json(&capstan_yaml::parse_documents(&text, file).unwrap()[0]);
    pick(&doc).unwrap_or_else(|| panic!("{file}: no capstan-diff script"))
}

/// A bin directory with `capstan` and a fake `gh`/`curl` that record their calls.
fn ci_bin(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    if !bin.join("capstan").exists() {
        std::os::unix::fs::symlink(capstan(), bin.join("capstan")).unwrap();
    }
    let recorder = r#"#!/bin/sh
log="$CI_FAKE_LOG"
n=$(printf %03d "$(ls "$CI_FAKE_DIR" | wc -l)")
echo "$(basename "$0") $*" >> "$log"
for a in "$@"; do
  case "$a" in
    body=@*) cp "${a#body=@}" "$CI_FAKE_DIR/body-$n.md" ;;
    body@*) cp "${a#body@}" "$CI_FAKE_DIR/body-$n.md" ;;
  esac
done
case "$*" in
  *--jq*) cat "$CI_FAKE_EXISTING" 2>/dev/null ;;
esac
exit 0
"#;
    for name in ["gh", "curl"] {
        let p = bin.join(name);
        std::fs::write(&p, recorder).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    bin
}

fn run_ci(root: &Path, script: &str, env: &[(&str, &str)]) -> (Output, Vec<String>, String) {
    let fake = root.join(".fake");
    std::fs::create_dir_all(fake.join("bodies")).unwrap();
    let bin = ci_bin(&fake);
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new("bash");
    cmd.arg("-eo")
        .arg("pipefail")
        .arg("-c")
        .arg(script)
        .current_dir(root);
    cmd.env("PATH", path)
        .env("CI_FAKE_LOG", fake.join("log"))
        .env("CI_FAKE_DIR", fake.join("bodies"))
        .env("CI_FAKE_EXISTING", fake.join("existing"))
        .env("XDG_CACHE_HOME", fake.join("cache"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let mut bodies: Vec<PathBuf> = std::fs::read_dir(fake.join("bodies"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    bodies.sort();
    let bodies = bodies
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    let log = std::fs::read_to_string(fake.join("log")).unwrap_or_default();
    (out, bodies, log)
}

fn ci_repo() -> tempfile::TempDir {
    let dir = make_repo();
    let root = dir.path();
    // The target must render: CI fails on render failures; keep this one green.
    std::fs::write(
        root.join("fragile/kustomization.yaml"),
        "resources:\n  - cm.yaml\n",
    )
    .unwrap();
    git(root, &["commit", "-q", "-am", "fix fragile"]);
    // `origin` is the repository itself: `git fetch origin main` works offline.
    let me = root.to_str().unwrap().to_string();
    git(root, &["remote", "add", "origin", &me]);
    dir
}

#[test]
fn github_actions_recipe_posts_every_part() {
    if !have_git() {
        eprintln!("skipped: git is not installed");
        return;
    }
    let dir = ci_repo();
    let root = dir.path();
    let doc_steps = |doc: &serde_json::Value, id: &str| -> Option<String> {
        doc["jobs"]["capstan-diff"]["steps"]
            .as_array()?
            .iter()
            .find(|s| s["id"].as_str() == Some(id))?["run"]
            .as_str()
            .map(str::to_string)
    };
    let diff = script("github-actions.yml", |d| doc_steps(d, "diff"));
    let post = script("github-actions.yml", |d| doc_steps(d, "post"));
    let output = root.join(".github-output");
    // An earlier run posted part 9: it is deleted.
    std::fs::create_dir_all(root.join(".fake")).unwrap();
    std::fs::write(root.join(".fake/existing"), "555\t9\n").unwrap();
    let env = [
        ("BASE_REF", "main"),
        ("GITHUB_OUTPUT", output.to_str().unwrap()),
        ("GH_TOKEN", "t"),
        ("PR", "7"),
        ("REPO", "o/r"),
        ("MAX_COMMENT_BYTES", "3000"),
    ];
    let (out, _, _) = run_ci(root, &diff, &env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::read_to_string(&output)
        .unwrap()
        .contains("exit-code=1"));
    let (out, bodies, log) = run_ci(root, &post, &env);
    assert!(
        out.status.success(),
        "{}\n{log}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(bodies.len() > 1, "{log}");
    for (i, b) in bodies.iter().enumerate() {
        assert!(b.len() < 65_536);
        assert!(
            b.starts_with(&format!("<!-- capstan-diff part {} -->", i + 1)),
            "{b}"
        );
        assert_no_secret("comment", b);
    }
    assert!(log.contains("repos/o/r/issues/7/comments"), "{log}");
    assert!(
        log.contains("-X DELETE repos/o/r/issues/comments/555"),
        "{log}"
    );
}

#[test]
fn gitlab_recipe_posts_every_part() {
    if !have_git() {
        eprintln!("skipped: git is not installed");
        return;
    }
    let dir = ci_repo();
    let root = dir.path();
    let lines = script("gitlab-ci.yml", |d| {
        let s = d["capstan-diff"]["script"].as_array()?;
        Some(
            s.iter()
                .filter_map(|l| l.as_str())
                .collect::<Vec<_>>()
                .join("\n"),
        )
    });
    let env = [
        ("CI_MERGE_REQUEST_TARGET_BRANCH_NAME", "main"),
        ("CI_API_V4_URL", "https://gitlab.example.com/api/v4"),
        ("CI_PROJECT_ID", "42"),
        ("CI_MERGE_REQUEST_IID", "3"),
        ("CAPSTAN_GITLAB_TOKEN", "t"),
        ("MAX_COMMENT_BYTES", "3000"),
    ];
    let (out, bodies, log) = run_ci(root, &lines, &env);
    assert!(
        out.status.success(),
        "{}\n{log}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(bodies.len() > 1, "{log}");
    for b in &bodies {
        assert!(b.len() < 1_000_000);
        assert_no_secret("note", b);
    }
    assert!(log.contains("projects/42/merge_requests/3/notes"), "{log}");
}
