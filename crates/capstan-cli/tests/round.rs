//! `capstan apply` runs the agent's round: units go to the cluster their
//! `spec.kubeConfig.secretRef` names, and `spec.suspend` set in the cluster wins.

use std::process::{Command, Output};

use capstan_testbed::TestCluster;
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::ApiResource;
use serde_json::{json, Value};

fn capstan(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args(args)
        .output()
        .expect("run capstan")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn res(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: if group.is_empty() {
            version.into()
        } else {
            format!("{group}/{version}")
        },
        kind: kind.into(),
        plural: plural.into(),
    }
}

fn ks_res() -> ApiResource {
    res(
        "kustomize.toolkit.fluxcd.io",
        "v1",
        "Kustomization",
        "kustomizations",
    )
}

async fn create(api: &Api<DynamicObject>, obj: Value) {
    let obj: DynamicObject = serde_json::from_value(obj).unwrap();
    match api.create(&PostParams::default(), &obj).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.is_already_exists() => {}
        Err(e) => panic!("creating {:?}: {e}", obj.metadata.name),
    }
}

fn ks(name: &str, path: &str, extra: &str) -> String {
    format!("apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: {name}\n  namespace: flux-system\nspec:\n  interval: 1m\n  path: {path}\n  prune: true\n  sourceRef:\n    kind: GitRepository\n    name: flux-system\n{extra}")
}

fn configmap(name: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: default\ndata:\n  a: b\n")
}

async fn has_configmap(client: &kube::Client, name: &str) -> bool {
    Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(client.clone(), "default")
        .get_opt(name)
        .await
        .unwrap()
        .is_some()
}

fn write(root: &std::path::Path, path: &str, content: &str) {
    let p = root.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

/// The management cluster holds a kubeConfig Secret for the workload cluster and the
/// Kustomization CRD with one unit suspended; `capstan apply` of the management cluster's
/// directory applies the remote unit to the workload cluster only, skips the suspended
/// unit (reporting it), and names a missing kubeConfig Secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_sends_kubeconfig_units_to_their_cluster_and_skips_suspended_ones() {
    let (Some(mgmt), Some(work)) = (
        TestCluster::start("round-mgmt"),
        TestCluster::start("round-work"),
    ) else {
        return;
    };
    let (cm, cw) = (mgmt.client().await, work.client().await);
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path();
    write(
        repo,
        "clusters/mgmt/remote.yaml",
        &ks(
            "remote-app",
            "./remote",
            "  kubeConfig:\n    secretRef:\n      name: work-kubeconfig\n",
        ),
    );
    write(
        repo,
        "clusters/mgmt/local.yaml",
        &ks("local-app", "./local", ""),
    );
    write(
        repo,
        "clusters/mgmt/paused.yaml",
        &ks("paused", "./paused", ""),
    );
    write(repo, "remote/cm.yaml", &configmap("remote"));
    write(repo, "local/cm.yaml", &configmap("local"));
    write(repo, "paused/cm.yaml", &configmap("paused"));

    let namespaces: Api<DynamicObject> =
        Api::all_with(cm.clone(), &res("", "v1", "Namespace", "namespaces"));
    create(
        &namespaces,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "flux-system"}}),
    )
    .await;
    let secrets: Api<DynamicObject> = Api::namespaced_with(
        cm.clone(),
        "flux-system",
        &res("", "v1", "Secret", "secrets"),
    );
    create(
        &secrets,
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "work-kubeconfig", "namespace": "flux-system"},
               "stringData": {"value": work.self_contained_kubeconfig()}}),
    )
    .await;
    let crds: Api<DynamicObject> = Api::all_with(
        cm.clone(),
        &res(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
        ),
    );
    create(
        &crds,
        json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "kustomizations.kustomize.toolkit.fluxcd.io"},
            "spec": {
                "group": "kustomize.toolkit.fluxcd.io",
                "scope": "Namespaced",
                "names": {"kind": "Kustomization", "plural": "kustomizations",
                          "singular": "kustomization", "listKind": "KustomizationList"},
                "versions": [{
                    "name": "v1", "served": true, "storage": true,
                    "subresources": {"status": {}},
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}
                }]
            }
        }),
    )
    .await;
    // The unit suspended in the cluster (`capstan suspend ks paused`); retried until the
    // new CRD is served.
    let kss: Api<DynamicObject> = Api::namespaced_with(cm.clone(), "flux-system", &ks_res());
    let paused: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
        "metadata": {"name": "paused", "namespace": "flux-system"},
        "spec": {"interval": "1m", "path": "./paused", "prune": true, "suspend": true,
                 "sourceRef": {"kind": "GitRepository", "name": "flux-system"}}
    }))
    .unwrap();
    let mut tries = 0;
    while let Err(e) = kss.create(&PostParams::default(), &paused).await {
        tries += 1;
        assert!(tries < 600, "the Kustomization CRD is never served: {e}");
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let kc = mgmt.kubeconfig_path().to_str().unwrap().to_string();
    let repo_arg = repo.to_str().unwrap().to_string();
    let apply = |extra: &[&str]| {
        let mut args = vec!["apply", &repo_arg, "--cluster", "mgmt", "--kubeconfig", &kc];
        args.extend_from_slice(extra);
        capstan(&args)
    };
    let out = apply(&[]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(has_configmap(&cw, "remote").await, "{stdout}\n{stderr}");
    assert!(!has_configmap(&cm, "remote").await, "{stdout}\n{stderr}");
    assert!(has_configmap(&cm, "local").await && !has_configmap(&cw, "local").await);
    assert!(!has_configmap(&cm, "paused").await && !has_configmap(&cw, "paused").await);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("Kustomization/flux-system/paused"))
        .unwrap_or_else(|| panic!("no line for the suspended unit:\n{stdout}"));
    assert!(line.contains("suspended"), "{line}");

    // --ignore-suspend runs it.
    let out = apply(&["--ignore-suspend"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(has_configmap(&cm, "paused").await);

    // A kubeConfig Secret that is missing fails that unit, naming the Secret; the others apply.
    write(
        repo,
        "clusters/mgmt/lost.yaml",
        &ks(
            "lost",
            "./local",
            "  kubeConfig:\n    secretRef:\n      name: no-such-kubeconfig\n",
        ),
    );
    let out = apply(&[]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("Kustomization/flux-system/lost"))
        .unwrap_or_else(|| panic!("no line for the unit:\n{stdout}"));
    assert!(
        line.contains("failed") && line.contains("Secret flux-system/no-such-kubeconfig"),
        "{line}"
    );
    assert!(stdout
        .lines()
        .any(|l| l.starts_with("Kustomization/flux-system/remote-app") && l.contains("applied")));
}

/// A source that cannot be fetched blocks only the units that use it (named with the
/// source, its URL without credentials and the cause) and nothing of theirs is pruned:
/// their objects stay in the cluster while the other units apply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_keeps_the_objects_of_units_whose_source_cannot_be_fetched() {
    use capstan_testbed::servers::{git, GitDaemon, Repo};
    let Some(cluster) = TestCluster::start("round-source") else {
        return;
    };
    let client = cluster.client().await;
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path();
    let apps = Repo::new(base, "apps");
    git(&apps.bare, &["symbolic-ref", "HEAD", "refs/heads/main"]);
    apps.write("deploy/cm.yaml", &configmap("from-apps"));
    apps.commit("apps");
    apps.run(&["push", "-q", "origin", "HEAD:main"]);
    let mut daemon = GitDaemon::start(&apps.srv);

    let repo = base.join("fleet");
    write(&repo, "clusters/c/apps.yaml", "apiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata:\n  name: apps\n  namespace: flux-system\nspec:\n  interval: 1m\n  url: https://bot:s3cr3t@git.example.com/apps.git\n  ref:\n    branch: main\n---\napiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: apps\n  namespace: flux-system\nspec:\n  interval: 1m\n  path: ./deploy\n  prune: true\n  sourceRef:\n    kind: GitRepository\n    name: apps\n");
    write(
        &repo,
        "clusters/c/local.yaml",
        &ks("local-app", "./local", ""),
    );
    write(&repo, "local/cm.yaml", &configmap("local"));
    let namespaces: Api<DynamicObject> =
        Api::all_with(client.clone(), &res("", "v1", "Namespace", "namespaces"));
    create(
        &namespaces,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "flux-system"}}),
    )
    .await;

    let kc = cluster.kubeconfig_path().to_str().unwrap().to_string();
    let repo_arg = repo.to_str().unwrap().to_string();
    let cache = base.join("cache").to_str().unwrap().to_string();
    // The mirror keeps the credentials out of what is fetched: the URL shown is the
    // mirrored one; the repository's own URL (with credentials) is never printed.
    let mirror = format!(
        "https://bot:s3cr3t@git.example.com/apps.git={}",
        daemon.url("apps")
    );
    let apply = || {
        capstan(&[
            "apply",
            &repo_arg,
            "--cluster",
            "c",
            "--kubeconfig",
            &kc,
            "--ignore-suspend",
            "--cache-dir",
            &cache,
            "--source-mirror",
            &mirror,
        ])
    };
    let out = tokio::task::block_in_place(apply);
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(has_configmap(&client, "from-apps").await);

    // The Git server goes away, and the local unit changes.
    daemon.stop_group();
    write(&repo, "local/cm.yaml", &configmap("local-2"));
    let out = tokio::task::block_in_place(apply);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("Kustomization/flux-system/apps"))
        .unwrap_or_else(|| panic!("no line for the unit:\n{stdout}\n{stderr}"));
    assert!(
        line.contains("blocked")
            && line.contains("GitRepository flux-system/apps")
            && line.contains(&daemon.url("apps"))
            && !stdout.contains("s3cr3t")
            && !stderr.contains("s3cr3t"),
        "{line}\n{stderr}"
    );
    assert!(
        has_configmap(&client, "from-apps").await,
        "the blocked unit's objects are kept"
    );
    assert!(has_configmap(&client, "local-2").await && !has_configmap(&client, "local").await);
}
