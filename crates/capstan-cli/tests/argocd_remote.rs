//! `--fetch-remote` of Argo CD Applications against loopback servers: a second Git
//! repository behind `git daemon` (tags, HEAD, a `$ref` value file) and a static Helm
//! repository (`chart` + `targetRevision`, semver ranges as Argo CD resolves them),
//! through capstan's source cache; `capstan build --apps` and `capstan diff`.

use std::path::Path;
use std::process::{Command, Output};

use capstan_testbed::servers::{registry_available, start_registry, static_files, GitDaemon, Repo};
use serde_json::Value;

const THIS: &str = "https://git.example.com/org/fleet.git";

fn have(cmd: &str) -> bool {
    Command::new(cmd)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn write(root: &Path, path: &str, text: &str) {
    let p = root.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// Publish `demo` at these versions into a Helm repository directory (index.yaml and
/// one .tgz per version, packed by tar).
fn helm_repo(www: &Path, versions: &[&str]) {
    let mut index = String::from("apiVersion: v1\nentries:\n  demo:\n");
    for v in versions {
        let stage = www.join(format!(".stage-{v}"));
        write(
            &stage,
            "demo/Chart.yaml",
            &format!("apiVersion: v2\nname: demo\nversion: {v}\n"),
        );
        write(&stage, "demo/values.yaml", "greeting: hello\n");
        write(
            &stage,
            "demo/templates/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-demo\n  labels:\n    helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}\ndata:\n  version: {{ .Chart.Version | quote }}\n  greeting: {{ .Values.greeting | quote }}\n",
        );
        let tgz = www.join(format!("demo-{v}.tgz"));
        let st = Command::new("tar")
            .arg("czf")
            .arg(&tgz)
            .arg("-C")
            .arg(&stage)
            .arg("demo")
            .status()
            .unwrap();
        assert!(st.success());
        std::fs::remove_dir_all(&stage).unwrap();
        index.push_str(&format!(
            "  - name: demo\n    version: {v}\n    urls:\n    - demo-{v}.tgz\n"
        ));
    }
    std::fs::write(www.join("index.yaml"), index).unwrap();
}

fn app(name: &str, source: &str) -> String {
    format!("apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {name}\n  namespace: argocd\nspec:\n  project: default\n  destination:\n    server: https://kubernetes.default.svc\n    namespace: demo\n{source}")
}

fn git_source(url: &str, rev: &str) -> String {
    format!("  source:\n    repoURL: {url}\n    targetRevision: {rev}\n    path: manifests\n")
}

fn chart_source(url: &str, rev: &str) -> String {
    format!("  source:\n    repoURL: {url}\n    chart: demo\n    targetRevision: '{rev}'\n")
}

async fn capstan(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_capstan"))
            .args(&args)
            .env("NO_COLOR", "1")
            .output()
            .expect("capstan runs")
    })
    .await
    .unwrap()
}

fn by_app<'a>(list: &'a [Value], name: &str) -> &'a Value {
    list.iter()
        .find(|a| a["app"] == name)
        .unwrap_or_else(|| panic!("no Application {name}"))
}

fn cm_data<'a>(a: &'a Value, key: &str) -> &'a str {
    a["objects"]
        .as_array()
        .unwrap_or_else(|| panic!("{} did not render: {}", a["app"], a["error"]))
        .iter()
        .find(|o| o["kind"] == "ConfigMap")
        .and_then(|o| o["data"][key].as_str())
        .unwrap_or_else(|| panic!("{}: no ConfigMap data {key}", a["app"]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_remote_reads_git_daemon_repositories_and_helm_repository_charts() {
    if !have("git") || !have("tar") {
        eprintln!("skipped: git or tar is not installed");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // Another Git repository: tag v1, then main moves on.
    let other = Repo::new(tmp.path(), "other");
    other.write(
        "manifests/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: other\ndata:\n  rev: v1\n",
    );
    other.write("values/prod.yaml", "greeting: from-the-values-repository\n");
    other.commit("v1");
    other.run(&["tag", "v1"]);
    other.write(
        "manifests/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: other\ndata:\n  rev: main\n",
    );
    other.commit("main");
    other.run(&["push", "-q", "origin", "HEAD:refs/heads/main", "--tags"]);
    let daemon = GitDaemon::start(&other.srv);
    let git_url = daemon.url("other");

    // A Helm repository with stable versions and a prerelease.
    let www = tmp.path().join("www");
    std::fs::create_dir_all(&www).unwrap();
    helm_repo(&www, &["1.0.0", "1.2.0", "1.3.0-rc.1", "2.0.0"]);
    let server = static_files(www.clone(), None).await;
    let helm_url = format!("http://{}/", server.addr);

    let repo = tmp.path().join("fleet");
    write(
        &repo,
        "apps/git-tag.yaml",
        &app("git-tag", &git_source(&git_url, "v1")),
    );
    write(
        &repo,
        "apps/git-head.yaml",
        &app("git-head", &git_source(&git_url, "HEAD")),
    );
    // Argo CD's tracking strategies: an exact version, `1.*` and a range (minor
    // releases, prereleases excluded), `*` (the latest stable).
    for (name, rev) in [
        ("chart-exact", "1.0.0"),
        ("chart-minor", "1.*"),
        ("chart-range", ">=1.0.0 <2.0.0"),
        ("chart-latest", "*"),
    ] {
        write(
            &repo,
            &format!("apps/{name}.yaml"),
            &app(name, &chart_source(&helm_url, rev)),
        );
    }
    // Multi-source: the chart with a value file from the other repository ($values).
    write(
        &repo,
        "apps/multi.yaml",
        &app(
            "multi",
            &format!("  sources:\n    - repoURL: {helm_url}\n      chart: demo\n      targetRevision: 2.0.0\n      helm:\n        valueFiles:\n          - $values/values/prod.yaml\n    - repoURL: {git_url}\n      targetRevision: v1\n      ref: values\n"),
        ),
    );
    let cache = tmp.path().join("cache");
    let build = |extra: &[&str]| {
        let mut a: Vec<String> = vec![
            "build".into(),
            repo.display().to_string(),
            "--apps".into(),
            "-o".into(),
            "json".into(),
            "--keep-going".into(),
            "--this-repo".into(),
            THIS.into(),
            "--cache-dir".into(),
            cache.display().to_string(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let out = capstan(build(&["--fetch-remote"])).await;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    let list: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cm_data(by_app(&list, "git-tag"), "rev"), "v1");
    assert_eq!(cm_data(by_app(&list, "git-head"), "rev"), "main");
    assert_eq!(cm_data(by_app(&list, "chart-exact"), "version"), "1.0.0");
    assert_eq!(cm_data(by_app(&list, "chart-minor"), "version"), "1.2.0");
    assert_eq!(cm_data(by_app(&list, "chart-range"), "version"), "1.2.0");
    assert_eq!(cm_data(by_app(&list, "chart-latest"), "version"), "2.0.0");
    let multi = by_app(&list, "multi");
    assert_eq!(cm_data(multi, "version"), "2.0.0");
    assert_eq!(cm_data(multi, "greeting"), "from-the-values-repository");
    // Release name = the Application's name; namespace = the destination's.
    let cm = &multi["objects"][0];
    assert_eq!(cm["metadata"]["name"], "multi-demo");
    assert_eq!(cm["metadata"]["namespace"], "demo");
    // Offline (no --fetch-remote): each such Application fails, clearly, on its own.
    let off = capstan(build(&[])).await;
    assert_eq!(off.status.code(), Some(2));
    let off_list: Vec<Value> = serde_json::from_slice(&off.stdout).unwrap();
    let e = by_app(&off_list, "git-tag")["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        e.contains("apps/git-tag.yaml") && e.contains("repoURL"),
        "{e}"
    );
    let e = by_app(&off_list, "chart-exact")["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(e.contains("not fetched offline"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_with_fetch_remote_tells_the_chart_version_change() {
    if !have("tar") {
        eprintln!("skipped: tar is not installed");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let www = tmp.path().join("www");
    std::fs::create_dir_all(&www).unwrap();
    helm_repo(&www, &["1.0.0", "1.2.0", "2.0.0"]);
    let server = static_files(www.clone(), None).await;
    let helm_url = format!("http://{}/", server.addr);
    let (base, target) = (tmp.path().join("base"), tmp.path().join("target"));
    write(
        &base,
        "apps/demo.yaml",
        &app("demo", &chart_source(&helm_url, "1.*")),
    );
    write(
        &target,
        "apps/demo.yaml",
        &app("demo", &chart_source(&helm_url, "2.*")),
    );
    let out = capstan(vec![
        "diff".into(),
        "--base-dir".into(),
        base.display().to_string(),
        "--target-dir".into(),
        target.display().to_string(),
        "-o".into(),
        "json".into(),
        "--no-cache".into(),
        "--fetch-remote".into(),
        "--source-cache-dir".into(),
        tmp.path().join("cache").display().to_string(),
        "--this-repo".into(),
        THIS.into(),
    ])
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let unit = &r["clusters"][0]["units"][0];
    assert_eq!(unit["id"], "Application/argocd/demo");
    assert!(
        unit["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["type"] == "chartVersion"
                && n["chart"] == "demo"
                && n["from"] == "1.*"
                && n["to"] == "2.*"),
        "{unit:#}"
    );
    let cm = &unit["objects"][0];
    assert_eq!(cm["change"], "changed");
    let diff = cm["diff"].as_str().unwrap();
    assert!(
        diff.lines()
            .any(|l| l.starts_with("+  version: ") && l.contains("2.0.0")),
        "{cm:#}"
    );
}

async fn push_chart(port: u16, tgz: Vec<u8>, version: &str) {
    use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
    let client = oci_client::Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    });
    let reference = oci_client::Reference::with_tag(
        format!("127.0.0.1:{port}"),
        "charts/demo".into(),
        version.into(),
    );
    let layer = ImageLayer::new(
        tgz,
        "application/vnd.cncf.helm.chart.content.v1.tar+gzip".into(),
        None,
    );
    let config = Config::new(
        format!(r#"{{"apiVersion":"v2","name":"demo","version":"{version}"}}"#).into_bytes(),
        "application/vnd.cncf.helm.config.v1+json".into(),
        None,
    );
    client
        .push(
            &reference,
            &[layer],
            config,
            &oci_client::secrets::RegistryAuth::Anonymous,
            None,
        )
        .await
        .expect("push");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oci_helm_charts_with_and_without_scheme() {
    if !have("tar") || !registry_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let reg = start_registry(tmp.path(), None);
    let www = tmp.path().join("www");
    std::fs::create_dir_all(&www).unwrap();
    helm_repo(&www, &["1.0.0", "1.2.0", "2.0.0"]);
    for v in ["1.0.0", "1.2.0", "2.0.0"] {
        let tgz = std::fs::read(www.join(format!("demo-{v}.tgz"))).unwrap();
        push_chart(reg.port, tgz, v).await;
    }
    let repo = tmp.path().join("fleet");
    // Argo CD's form: repoURL without a scheme; and oci://.
    let plain = format!("127.0.0.1:{}/charts", reg.port);
    let scheme = format!("oci://127.0.0.1:{}/charts", reg.port);
    write(
        &repo,
        "apps/oci-plain.yaml",
        &app("oci-plain", &chart_source(&plain, "1.*")),
    );
    write(
        &repo,
        "apps/oci-exact.yaml",
        &app("oci-exact", &chart_source(&scheme, "1.0.0")),
    );
    write(
        &repo,
        "apps/oci-latest.yaml",
        &app("oci-latest", &chart_source(&scheme, "*")),
    );
    let out = capstan(vec![
        "build".into(),
        repo.display().to_string(),
        "--apps".into(),
        "-o".into(),
        "json".into(),
        "--keep-going".into(),
        "--this-repo".into(),
        THIS.into(),
        "--cache-dir".into(),
        tmp.path().join("cache").display().to_string(),
        "--fetch-remote".into(),
    ])
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    let list: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cm_data(by_app(&list, "oci-plain"), "version"), "1.2.0");
    assert_eq!(cm_data(by_app(&list, "oci-exact"), "version"), "1.0.0");
    assert_eq!(cm_data(by_app(&list, "oci-latest"), "version"), "2.0.0");
}
