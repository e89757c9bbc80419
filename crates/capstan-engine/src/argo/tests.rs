//! Argo CD Applications as units: waves, hooks, depends-on, implicit edges, sync options.

use super::*;
use capstan_argocd::RepoPattern;
use capstan_vfs::MemFs;

const REPO: &str = "https://git.example.com/org/fleet.git";

fn root(path: &str) -> ArgoRoot {
    ArgoRoot {
        path: Some(path.into()),
        app: None,
        options: Options {
            this_repo: vec![RepoPattern::Url("org/fleet".into())],
            ..Options::default()
        },
        flux_path: None,
    }
}

fn app(name: &str, path: &str, ns: &str, extra_meta: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {name}\n  namespace: argocd\n{extra_meta}spec:\n  project: default\n  source:\n    repoURL: {REPO}\n    targetRevision: main\n    path: {path}\n  destination:\n    name: in-cluster\n    namespace: {ns}\n{extra_spec}"
    )
}

const CRD: &str = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.com\nspec:\n  group: example.com\n  scope: Namespaced\n  names:\n    kind: Widget\n    plural: widgets\n  versions:\n  - name: v1\n    served: true\n    storage: true\n";

fn fs() -> MemFs {
    MemFs::new()
        .with("/apps/crds.yaml", app("widget-crds", "svc/crds", "default", "", ""))
        .with(
            "/apps/widgets.yaml",
            app(
                "widgets",
                "svc/widgets",
                "widgets",
                "  finalizers:\n  - resources-finalizer.argocd.argoproj.io\n",
                "  syncPolicy:\n    automated:\n      prune: true\n    syncOptions:\n    - CreateNamespace=true\n    managedNamespaceMetadata:\n      labels:\n        team: w\n",
            ),
        )
        .with(
            "/apps/web.yaml",
            app(
                "web",
                "svc/web",
                "web",
                "  annotations:\n    argocd.argoproj.io/sync-wave: \"1\"\n    capstan.io/depends-on: widgets\n",
                "  ignoreDifferences:\n  - group: apps\n    kind: Deployment\n    jsonPointers:\n    - /spec/replicas\n  syncPolicy:\n    syncOptions:\n    - RespectIgnoreDifferences=true\n",
            ),
        )
        .with("/svc/crds/crd.yaml", CRD)
        .with(
            "/svc/widgets/w.yaml",
            "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: keep\n  annotations:\n    argocd.argoproj.io/sync-options: Prune=false\n",
        )
        .with(
            "/svc/web/all.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: config\n  annotations:\n    argocd.argoproj.io/sync-wave: \"-1\"\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 2\n---\napiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\n  annotations:\n    argocd.argoproj.io/hook: PreSync\n---\napiVersion: batch/v1\nkind: Job\nmetadata:\n  name: smoke\n  annotations:\n    argocd.argoproj.io/hook: PostSync\n    argocd.argoproj.io/hook-delete-policy: HookSucceeded\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cleanup\n  annotations:\n    argocd.argoproj.io/hook: SyncFail\n",
        )
}

fn render(fs: &MemFs, root: &ArgoRoot) -> crate::ClusterRender {
    render_argo_cluster(
        fs,
        &crate::NativeRenderer,
        &capstan_units::NoCluster,
        None,
        root,
        true,
    )
}

fn id(kind: &str, name: &str) -> UnitId {
    UnitId::new(kind, "argocd", name)
}

fn rendered<'a>(r: &'a crate::ClusterRender, u: &UnitId) -> &'a RenderedUnit {
    match r.units.get(u) {
        Some(UnitOutcome::Rendered(x)) => x,
        other => panic!("{u}: {other:?}"),
    }
}

fn names(objs: &[Value]) -> Vec<String> {
    objs.iter()
        .map(|o| {
            format!(
                "{}/{}",
                o["kind"].as_str().unwrap(),
                o["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect()
}

/// Resource sync waves split an Application into chained units, the last one the
/// Application itself; PreSync hooks run before the first wave, PostSync after the last;
/// SyncFail hooks are reported, not run.
#[test]
fn resource_waves_are_chained_units_with_hooks() {
    let r = render(&fs(), &root("apps"));
    let plan = r.plan.as_ref().unwrap();
    let wave = id(APPLICATION_WAVE, "web.wave-1");
    let web = id(APPLICATION, "web");
    let first = rendered(&r, &wave);
    assert_eq!(names(&first.objects), ["ConfigMap/config"]);
    assert_eq!(names(&first.hooks), ["Job/migrate"]);
    assert_eq!(
        first.hooks[0].pointer("/metadata/annotations/helm.sh~1hook"),
        Some(&json!("pre-install,pre-upgrade"))
    );
    let last = rendered(&r, &web);
    assert_eq!(names(&last.objects), ["Deployment/web"]);
    assert_eq!(names(&last.hooks), ["Job/smoke"]);
    assert_eq!(
        last.hooks[0].pointer("/metadata/annotations/helm.sh~1hook-delete-policy"),
        Some(&json!("hook-succeeded"))
    );
    assert!(plan.dependencies(&web).iter().any(|e| e.on == wave));
    let pos = |u: &UnitId| plan.order.iter().position(|x| x == u).unwrap();
    assert!(pos(&wave) < pos(&web));
    assert!(last.unit.spec.wait && first.unit.spec.wait);
    assert!(
        r.units.warnings.iter().any(|w| w.contains("SyncFail")),
        "{:?}",
        r.units.warnings
    );
}

/// capstan.io/depends-on and the sibling wave order become edges on the Application's
/// first unit; the CRD in one Application and its custom resources in another get
/// capstan's implicit CRD edge.
#[test]
fn depends_on_child_waves_and_crd_edges() {
    let r = render(&fs(), &root("apps"));
    let plan = r.plan.as_ref().unwrap();
    let wave = id(APPLICATION_WAVE, "web.wave-1");
    let deps: Vec<String> = plan
        .dependencies(&wave)
        .iter()
        .map(|e| e.on.to_string())
        .collect();
    // depends-on: widgets; wave 1 > wave 0 of widget-crds and widgets.
    assert!(
        deps.contains(&"Application/argocd/widgets".to_string()),
        "{deps:?}"
    );
    assert!(
        deps.contains(&"Application/argocd/widget-crds".to_string()),
        "{deps:?}"
    );
    let widgets = id(APPLICATION, "widgets");
    let reasons: Vec<String> = plan
        .dependencies(&widgets)
        .iter()
        .map(|e| format!("{} {}", e.on, e.reason))
        .collect();
    assert!(
        reasons.contains(&"Application/argocd/widget-crds defines Widget.example.com".to_string()),
        "{reasons:?}"
    );
}

/// Sync options: automated.prune is the unit's prune (manual sync: none); CreateNamespace
/// with managedNamespaceMetadata adds the Namespace, never pruned; Prune=false resources
/// are never pruned; RespectIgnoreDifferences leaves ignored fields out of the apply;
/// the resources finalizer decides deletion on removal.
#[test]
fn sync_options_shape_the_units() {
    let r = render(&fs(), &root("apps"));
    let widgets = rendered(&r, &id(APPLICATION, "widgets"));
    assert!(widgets.unit.spec.prune);
    assert!(deletes_on_removal(&widgets.unit));
    let ns = &widgets.objects[0];
    assert_eq!(ns["kind"], "Namespace");
    assert_eq!(ns["metadata"]["name"], "widgets");
    assert_eq!(ns["metadata"]["labels"]["team"], "w");
    assert_eq!(
        ns["metadata"]["annotations"]["capstan.io/prune"],
        "disabled"
    );
    let keep = widgets
        .objects
        .iter()
        .find(|o| o["metadata"]["name"] == "keep")
        .unwrap();
    assert_eq!(
        keep["metadata"]["annotations"]["capstan.io/prune"],
        "disabled"
    );
    let web = rendered(&r, &id(APPLICATION, "web"));
    assert!(!web.unit.spec.prune, "manual sync does not prune");
    assert!(!deletes_on_removal(&web.unit), "no resources finalizer");
    assert_eq!(web.objects[0].pointer("/spec/replicas"), None);
    assert_eq!(destination(&web.unit), None);
}

/// ignoreDifferences is honoured by diff even without RespectIgnoreDifferences.
#[test]
fn diff_leaves_ignored_fields_out() {
    let fs = fs().with(
        "/apps/web.yaml",
        app(
            "web",
            "svc/web",
            "web",
            "",
            "  ignoreDifferences:\n  - group: apps\n    kind: Deployment\n    jsonPointers:\n    - /spec/replicas\n",
        ),
    );
    let r = render(&fs, &root("apps"));
    let web = rendered(&r, &id(APPLICATION, "web"));
    assert_eq!(web.objects[0].pointer("/spec/replicas"), Some(&json!(2)));
    assert_eq!(diff_objects(web)[0].pointer("/spec/replicas"), None);
}

/// An Application that fails to render is a failed unit (nothing of it is applied or
/// pruned) and blocks only what waits for it; the others still render.
#[test]
fn a_failing_application_fails_alone() {
    let fs = fs().with(
        "/apps/broken.yaml",
        app("broken", "svc/missing", "x", "", ""),
    );
    let r = render(&fs, &root("apps"));
    match r.units.get(&id(APPLICATION, "broken")) {
        Some(UnitOutcome::Failed { error, .. }) => {
            assert_eq!(
                error.location.file,
                Some(PathBuf::from("/apps/broken.yaml"))
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(r.blocked.contains_key(&id(APPLICATION, "broken")));
    assert!(!r.blocked.contains_key(&id(APPLICATION, "widgets")));
    rendered(&r, &id(APPLICATION, "widgets"));
}

/// A depends-on naming a unit that does not exist blocks that Application (isolating
/// plan), naming the missing unit.
#[test]
fn depends_on_a_missing_unit_blocks() {
    let fs = fs().with(
        "/apps/crds.yaml",
        app(
            "widget-crds",
            "svc/crds",
            "default",
            "  annotations:\n    capstan.io/depends-on: Kustomization/flux-system/infra\n",
            "",
        ),
    );
    let r = render(&fs, &root("apps"));
    let why = &r.blocked[&id(APPLICATION, "widget-crds")];
    assert!(why.contains("Kustomization/flux-system/infra"), "{why}");
}

/// --app chooses one root Application; --path one directory; a name that is not declared
/// is an error with a hint.
#[test]
fn roots_by_app_or_path() {
    let mut one = root("apps");
    one.path = None;
    one.app = Some("widgets".into());
    let r = render(&fs(), &one);
    let ids: Vec<String> = r.units.units.iter().map(|u| u.id().to_string()).collect();
    assert_eq!(ids, ["Application/argocd/widgets"]);
    one.app = Some("widget".into());
    let r = render(&fs(), &one);
    let e = r.units.errors[0].to_string();
    assert!(
        e.contains("no Application or ApplicationSet named \"widget\"")
            && e.contains("did you mean"),
        "{e}"
    );
    let r = render(&fs(), &root("nowhere"));
    assert!(r.units.errors[0].to_string().contains("nowhere"));
}

/// App of apps: child Applications are units (consumed by their parent, not applied as
/// its objects) and the parent's children are ordered by their sync waves.
#[test]
fn app_of_apps_children_are_units() {
    let fs = fs().with("/root/root.yaml", app("root", "apps", "argocd", "", ""));
    let r = render(&fs, &root("root"));
    let parent = rendered(&r, &id(APPLICATION, "root"));
    assert!(parent.objects.is_empty(), "{:?}", names(&parent.objects));
    assert_eq!(parent.consumed.len(), 3);
    let web = r.units.get(&id(APPLICATION, "web")).unwrap();
    assert_eq!(web.unit().parent, Some(id(APPLICATION, "root")));
    let plan = r.plan.as_ref().unwrap();
    let deps: Vec<String> = plan
        .dependencies(&id(APPLICATION_WAVE, "web.wave-1"))
        .iter()
        .map(|e| e.on.to_string())
        .collect();
    assert!(
        deps.contains(&"Application/argocd/widget-crds".to_string()),
        "{deps:?}"
    );
}

/// Destinations other than the cluster Argo CD runs in name the cluster Secret to use.
#[test]
fn remote_destinations() {
    let fs = fs().with(
        "/apps/remote.yaml",
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: remote\n  namespace: argocd\nspec:\n  source:\n    repoURL: https://git.example.com/org/fleet.git\n    path: svc/crds\n  destination:\n    server: https://10.0.0.1:6443\n",
    );
    let r = render(&fs, &root("apps"));
    let u = r.units.get(&id(APPLICATION, "remote")).unwrap().unit();
    assert_eq!(
        destination(u),
        Some(ArgoDestination {
            namespace: "argocd".into(),
            server: "https://10.0.0.1:6443".into(),
            name: String::new()
        })
    );
}

/// Argo CD cluster Secrets: server, bearer token, CA and client certificate as a
/// kubeconfig; credential plugins refused by name; values never in errors.
#[test]
fn cluster_secret_as_kubeconfig() {
    let kc: Value = serde_json::from_str(
        &kubeconfig_of_cluster_secret(
            "https://10.0.0.1:6443",
            r#"{"bearerToken":"tok","tlsClientConfig":{"caData":"Q0E=","certData":"Q0Q=","keyData":"S0Q=","serverName":"k8s"}}"#,
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        kc.pointer("/clusters/0/cluster/server"),
        Some(&json!("https://10.0.0.1:6443"))
    );
    assert_eq!(
        kc.pointer("/clusters/0/cluster/certificate-authority-data"),
        Some(&json!("Q0E="))
    );
    assert_eq!(
        kc.pointer("/clusters/0/cluster/tls-server-name"),
        Some(&json!("k8s"))
    );
    assert_eq!(kc.pointer("/users/0/user/token"), Some(&json!("tok")));
    assert_eq!(
        kc.pointer("/users/0/user/client-key-data"),
        Some(&json!("S0Q="))
    );
    let e = kubeconfig_of_cluster_secret("https://x", r#"{"execProviderConfig":{"command":"x"}}"#)
        .unwrap_err();
    assert!(e.contains("execProviderConfig"), "{e}");
    let e = kubeconfig_of_cluster_secret("https://x", "{secret-token").unwrap_err();
    assert!(!e.contains("secret-token"), "{e}");
}

/// The Application object written to the cluster keeps its units and its finalizers (as
/// an annotation); an Application removed from the repository is rebuilt from it: its
/// units (every wave), its destination, and whether its objects are deleted.
#[test]
fn removed_applications_from_their_written_object() {
    let r = render(&fs(), &root("apps"));
    let web = rendered(&r, &id(APPLICATION, "web"));
    let written = application_object(&web.unit);
    assert_eq!(
        written["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "capstan"
    );
    let units = removed_units(&written);
    let ids: Vec<String> = units.iter().map(|u| u.id.to_string()).collect();
    assert_eq!(
        ids,
        [
            "ApplicationWave/argocd/web.wave-1",
            "Application/argocd/web"
        ]
    );
    assert!(!deletes_on_removal(&units[1]), "no resources finalizer");
    let widgets = rendered(&r, &id(APPLICATION, "widgets"));
    let written = application_object(&widgets.unit);
    assert_eq!(written.pointer("/metadata/finalizers"), None);
    assert_eq!(
        written["metadata"]["annotations"][FINALIZERS_ANNOTATION],
        "resources-finalizer.argocd.argoproj.io"
    );
    let units = removed_units(&written);
    assert_eq!(units.len(), 1);
    assert!(deletes_on_removal(&units[0]));
    assert_eq!(destination(&units[0]), None);
}
