//! `capstan diff --base REV --target REV` on a generated Argo CD repository (with a Flux
//! cluster beside it) at two commits: cluster -> Application -> object, generated
//! Applications and app-of-apps children included, Secret plaintext nowhere.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const SECRETS: &[&str] = &["pw-BASE-plaintext", "pw-TARGET-plaintext"];
const REPO: &str = "https://git.example.com/org/fleet.git";

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

fn app(name: &str, path: &str, dest: &str) -> String {
    format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {name}\n  namespace: argocd\nspec:\n  project: default\n  source:\n    repoURL: {REPO}\n    targetRevision: HEAD\n    path: {path}\n  destination:\n    {dest}\n    namespace: web\n  syncPolicy:\n    automated:\n      prune: true\n"
    )
}

fn cluster_secret(name: &str) -> String {
    format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: argocd\n  labels:\n    argocd.argoproj.io/secret-type: cluster\nstringData:\n  name: {name}\n  server: https://{name}.example.com\n")
}

/// The two sides (`target` false: the base commit).
fn repo_files(root: &Path, target: bool) {
    let t = |b: &'static str, a: &'static str| if target { a } else { b };
    // The root Application: app of apps over apps/.
    write(
        root,
        "bootstrap/root.yaml",
        &app("root", "apps", "server: https://kubernetes.default.svc"),
    );
    write(
        root,
        "apps/web.yaml",
        &app("web", "services/web", "name: prod"),
    );
    if target {
        let _ = std::fs::remove_file(root.join("apps/gone.yaml"));
        write(
            root,
            "apps/broken.yaml",
            &app("broken", "services/missing", "name: prod"),
        );
    } else {
        write(
            root,
            "apps/gone.yaml",
            &app("gone", "services/gone", "name: prod"),
        );
    }
    // An ApplicationSet: one Application per element; the target adds `edge`.
    let elements = t(
        "          - cluster: staging\n",
        "          - cluster: staging\n          - cluster: edge\n",
    );
    write(
        root,
        "appsets/web.yaml",
        &format!("apiVersion: argoproj.io/v1alpha1\nkind: ApplicationSet\nmetadata:\n  name: web-set\n  namespace: argocd\nspec:\n  goTemplate: true\n  goTemplateOptions: [\"missingkey=error\"]\n  generators:\n    - list:\n        elements:\n{elements}  template:\n    metadata:\n      name: '{{{{.cluster}}}}-web'\n    spec:\n      project: default\n      source:\n        repoURL: {REPO}\n        path: services/web\n      destination:\n        name: '{{{{.cluster}}}}'\n        namespace: web\n"),
    );
    for c in ["prod", "staging", "edge"] {
        write(
            root,
            &format!("clusters/{c}/cluster.yaml"),
            &cluster_secret(c),
        );
    }
    write(
        root,
        "services/web/kustomization.yaml",
        "resources:\n  - deploy.yaml\n  - secret.yaml\n",
    );
    write(
        root,
        "services/web/deploy.yaml",
        &format!("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      containers:\n        - name: web\n          image: nginx:{}\n", t("1.25", "1.27")),
    );
    write(
        root,
        "services/web/secret.yaml",
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: web\nstringData:\n  password: {}\n",
            t("pw-BASE-plaintext", "pw-TARGET-plaintext")
        ),
    );
    write(
        root,
        "services/gone/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: gone\ndata:\n  a: \"1\"\n",
    );
    // A Flux cluster beside the Argo CD ones.
    write(
        root,
        "clusters/flux-a/apps.yaml",
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: apps\n  namespace: flux-system\nspec:\n  interval: 10m\n  path: ./services/flux\n  prune: true\n  sourceRef:\n    kind: GitRepository\n    name: flux-system\n",
    );
    write(
        root,
        "services/flux/cm.yaml",
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: flux\n  namespace: default\ndata:\n  v: \"{}\"\n",
            t("1", "2")
        ),
    );
}

/// `main` (the base) and `feature` (the target, checked out); `origin` names this
/// repository, so its Applications' sources are read from the revisions.
fn make_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    git(root, &["init", "-q", "-b", "main"]);
    git(root, &["remote", "add", "origin", REPO]);
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

fn cluster<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no cluster {name} in {report:#}"))
}

fn unit<'a>(report: &'a Value, c: &str, id: &str) -> &'a Value {
    cluster(report, c)["units"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == id)
        .unwrap_or_else(|| panic!("no unit {id} in {c}"))
}

fn object<'a>(u: &'a Value, kind: &str, name: &str) -> &'a Value {
    u["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["key"]["kind"] == kind && o["key"]["name"] == name)
        .unwrap_or_else(|| panic!("no object {kind} {name} in {}", u["id"]))
}

fn no_secret(what: &str, text: &str) {
    for s in SECRETS {
        assert!(!text.contains(s), "{what} shows {s}:\n{text}");
    }
}

#[test]
fn argo_cd_and_flux_clusters_applications_and_objects_in_every_format() {
    if !have_git() {
        eprintln!("skipped: git is not installed");
        return;
    }
    let dir = make_repo();
    let root = dir.path();
    let out = run(
        root,
        &[
            "diff",
            "--base",
            "main",
            "--target",
            "feature",
            "-o",
            "json",
            "--objects",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    no_secret("json", &stdout);
    no_secret("stderr", &stderr);
    // A newly failing Application: exit 2.
    assert_eq!(out.status.code(), Some(2), "{stderr}\n{stdout}");
    let r: Value = serde_json::from_str(&stdout).unwrap();

    // prod: a declared Application (also the root's child: one unit) changed.
    let web = unit(&r, "prod", "Application/argocd/web");
    assert_eq!(web["change"], "changed");
    assert_eq!(web["source"], "apps/web.yaml");
    let deploy = object(web, "Deployment", "web");
    assert_eq!(deploy["change"], "changed");
    assert!(deploy["notes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["type"] == "image" && n["from"] == "nginx:1.25" && n["to"] == "nginx:1.27"));
    assert_eq!(deploy["target"]["metadata"]["namespace"], "web");
    assert_eq!(object(web, "Secret", "web")["change"], "changed");
    assert_eq!(web["target"]["manifest"]["kind"], "Application");
    // A removed Application: its objects are pruned (automated.prune).
    let gone = unit(&r, "prod", "Application/argocd/gone");
    assert_eq!(gone["change"], "removed");
    let cm = object(gone, "ConfigMap", "gone");
    assert_eq!(
        (cm["change"].as_str(), cm["pruned"].as_bool()),
        (Some("removed"), Some(true))
    );
    // A new Application that fails: reported, nothing else affected.
    let broken = unit(&r, "prod", "Application/argocd/broken");
    assert_eq!(broken["change"], "failed");
    assert!(broken["notes"][0]["error"]
        .as_str()
        .unwrap()
        .contains("apps/broken.yaml"));

    // Generated Applications: staging changed, edge added (a new cluster).
    let staging = unit(&r, "staging", "Application/argocd/staging-web");
    assert_eq!(staging["change"], "changed");
    assert_eq!(staging["source"], "appsets/web.yaml");
    assert_eq!(cluster(&r, "edge")["change"], "added");
    assert_eq!(
        unit(&r, "edge", "Application/argocd/edge-web")["change"],
        "added"
    );

    // The root renders apps/: its Application objects changed.
    let root_app = unit(&r, "in-cluster", "Application/argocd/root");
    assert_eq!(object(root_app, "Application", "gone")["change"], "removed");
    assert_eq!(object(root_app, "Application", "broken")["change"], "added");

    // The Flux cluster beside them.
    let flux = unit(&r, "flux-a", "Kustomization/flux-system/apps");
    assert_eq!(object(flux, "ConfigMap", "flux")["change"], "changed");
    // clusters/prod holds only a cluster Secret: no Flux cluster of that name.
    assert!(cluster(&r, "prod")["units"]
        .as_array()
        .unwrap()
        .iter()
        .all(|u| u["kind"] == "Application"));

    // Markdown and text: the same units, no Secret value.
    let md = run(
        root,
        &[
            "diff", "--base", "main", "--target", "feature", "-o", "markdown",
        ],
    );
    let md = String::from_utf8_lossy(&md.stdout).into_owned();
    no_secret("markdown", &md);
    for s in [
        "<details>",
        "Application/argocd/edge-web",
        "nginx:1.27",
        "flux-a",
    ] {
        assert!(md.contains(s), "markdown lacks {s}:\n{md}");
    }
    let text = run(root, &["diff", "--base", "main", "--target", "feature"]);
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    no_secret("text", &text);
    assert!(text.contains("Application/argocd/staging-web"), "{text}");
}

#[test]
fn cluster_and_layout_selection() {
    if !have_git() {
        eprintln!("skipped: git is not installed");
        return;
    }
    let dir = make_repo();
    let root = dir.path();
    let names = |args: &[&str]| -> Vec<String> {
        let mut a = vec![
            "diff", "--base", "main", "--target", "feature", "-o", "json",
        ];
        a.extend_from_slice(args);
        let out = run(root, &a);
        let r: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        r["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&["--cluster", "staging"]), vec!["staging"]);
    // Flux only: every clusters/* directory is a Flux cluster, no Application is read.
    let out = run(
        root,
        &[
            "diff", "--base", "main", "--target", "feature", "-o", "json", "--layout", "flux",
        ],
    );
    let flux: Value = serde_json::from_slice(&out.stdout).unwrap();
    let clusters = flux["clusters"].as_array().unwrap();
    assert_eq!(clusters.len(), 4);
    assert!(clusters
        .iter()
        .flat_map(|c| c["units"].as_array().unwrap())
        .all(|u| u["kind"] != "Application"));
    let argo = names(&["--layout", "argocd"]);
    assert_eq!(argo, vec!["edge", "in-cluster", "prod", "staging"]);
    // Without this repository's URL (no origin, no --this-repo), sources are other
    // repositories: every Application fails, clearly, and nothing is pruned.
    git(root, &["remote", "remove", "origin"]);
    let out = run(
        root,
        &[
            "diff", "--base", "main", "--target", "feature", "--layout", "argocd", "-o", "json",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("--this-repo"), "{text}");
}
