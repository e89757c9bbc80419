//! The Argo CD reader and the fleet reader, in memory.

use super::*;
use crate::compare::{compare, Change, CompareOptions};
use crate::memo::MemoRenderer;
use crate::render::{render_revisions, Revision};
use capstan_argocd::RepoPattern;
use capstan_vfs::MemFs;

const REPO: &str = "https://git.example.com/org/fleet.git";

fn opts() -> Options {
    Options {
        this_repo: vec![RepoPattern::Url("org/fleet".into())],
        ..Options::default()
    }
}

fn app(name: &str, path: &str, dest: &str, extra: &str) -> String {
    format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {name}\n  namespace: argocd\n{extra}spec:\n  project: default\n  source:\n    repoURL: {REPO}\n    path: {path}\n  destination:\n    {dest}\n    namespace: web\n  syncPolicy:\n    automated:\n      prune: true\n"
    )
}

fn cm(name: &str, v: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  k: \"{v}\"\n")
}

/// An Argo CD repository: a root Application (app of apps) over `apps/`, whose child
/// deploys `services/web` to the cluster `prod` (a cluster Secret in the tree); an
/// ApplicationSet (list generator) deploying `services/web` to `staging`.
fn argo_repo(web_value: &str, with_extra: bool) -> MemFs {
    let mut fs = MemFs::new()
        .with(
            "/bootstrap/root.yaml",
            app(
                "root",
                "apps",
                "server: https://kubernetes.default.svc",
                "",
            ),
        )
        .with(
            "/apps/web.yaml",
            app(
                "web",
                "services/web",
                "name: prod",
                "  annotations:\n    capstan.io/depends-on: Application/argocd/infra\n",
            ),
        )
        .with(
            "/appsets/web.yaml",
            format!("apiVersion: argoproj.io/v1alpha1\nkind: ApplicationSet\nmetadata:\n  name: web-set\n  namespace: argocd\nspec:\n  generators:\n    - list:\n        elements:\n          - cluster: staging\n            url: https://staging.example.com\n  template:\n    metadata:\n      name: '{{{{cluster}}}}-web'\n    spec:\n      project: default\n      source:\n        repoURL: {REPO}\n        path: services/web\n      destination:\n        server: '{{{{url}}}}'\n        namespace: web\n"),
        )
        .with(
            "/clusters/prod/secret.yaml",
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: prod\n  namespace: argocd\n  labels:\n    argocd.argoproj.io/secret-type: cluster\nstringData:\n  name: prod\n  server: https://prod.example.com\n",
        )
        .with(
            "/clusters/staging/secret.yaml",
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: staging\n  namespace: argocd\n  labels:\n    argocd.argoproj.io/secret-type: cluster\nstringData:\n  name: staging\n  server: https://staging.example.com\n",
        )
        .with(
            "/services/web/kustomization.yaml",
            "resources:\n  - cm.yaml\n",
        )
        .with("/services/web/cm.yaml", cm("web", web_value));
    if with_extra {
        fs = fs
            .with(
                "/apps/extra.yaml",
                app("extra", "services/extra", "name: prod", ""),
            )
            .with("/services/extra/cm.yaml", cm("extra", "1"));
    }
    fs
}

fn reader() -> FleetReader {
    FleetReader {
        layout: Layout::Auto,
        flux: FluxReader::default(),
        argo: ArgoReader::new(opts()),
    }
}

fn snapshots(
    reader: &FleetReader,
    base: &MemFs,
    target: &MemFs,
    memo: &MemoRenderer<capstan_engine::NativeRenderer>,
) -> (crate::RevisionSnapshot, crate::RevisionSnapshot) {
    let revs = [
        Revision {
            label: "base".into(),
            fs: base,
        },
        Revision {
            label: "target".into(),
            fs: target,
        },
    ];
    let mut s = render_revisions(reader, &revs, memo, 2).unwrap();
    let t = s.pop().unwrap();
    (s.pop().unwrap(), t)
}

#[test]
fn applications_are_units_of_their_destination_cluster_generated_ones_included() {
    let fs = argo_repo("1", false);
    let r = reader();
    let list = r.clusters(&fs).unwrap();
    let names: Vec<&str> = list.iter().map(|c| c.name.as_str()).collect();
    // clusters/prod and clusters/staging hold cluster Secrets, not Flux objects.
    assert_eq!(names, vec!["in-cluster", "prod", "staging"]);
    assert!(list.iter().all(|c| c.argocd && !c.flux));
    let memo = MemoRenderer::new(capstan_engine::NativeRenderer);
    let prod = r.render(&fs, &list[1], &memo);
    let ids: Vec<&str> = prod.units.iter().map(|u| u.id.as_str()).collect();
    // Declared in apps/web.yaml and rendered by root (app of apps): one unit.
    assert_eq!(ids, vec!["Application/argocd/web"]);
    let web = &prod.units[0];
    assert_eq!(web.source, "apps/web.yaml");
    assert!(web.prune);
    assert_eq!(
        web.objects[0].pointer("/metadata/namespace"),
        Some(&serde_json::json!("web"))
    );
    assert!(web.depends_on.contains(&(
        "Application/argocd/root".into(),
        "app of apps (the parent creates it)".into()
    )));
    assert!(web
        .depends_on
        .iter()
        .any(|(on, why)| on == "Application/argocd/infra" && why == "capstan.io/depends-on"));
    let staging = r.render(&fs, &list[2], &memo);
    assert_eq!(staging.units[0].id, "Application/argocd/staging-web");
    assert_eq!(staging.units[0].source, "appsets/web.yaml");
    assert!(staging.units[0].manifest.is_some());
    r.finish();
}

#[test]
fn diff_of_two_revisions_reports_cluster_application_object_and_reuses_renders() {
    let base = argo_repo("1", false);
    let target = argo_repo("2", true);
    let memo = Arc::new(MemoRenderer::new(capstan_engine::NativeRenderer));
    let mut r = reader();
    r.argo.reuse = Some(memo.clone() as Arc<dyn Reuse>);
    let (b, t) = snapshots(&r, &base, &target, &memo);
    let rep = compare(&b, &t, &CompareOptions::default());
    let prod = rep.clusters.iter().find(|c| c.name == "prod").unwrap();
    let change = |id: &str| prod.units.iter().find(|u| u.id == id).unwrap().change;
    assert_eq!(change("Application/argocd/web"), Change::Changed);
    assert_eq!(change("Application/argocd/extra"), Change::Added);
    let staging = rep.clusters.iter().find(|c| c.name == "staging").unwrap();
    assert_eq!(staging.units[0].change, Change::Changed);
    // The root renders apps/ (a new Application in it): changed too.
    let root = rep
        .clusters
        .iter()
        .find(|c| c.name == "in-cluster")
        .unwrap();
    assert_eq!(root.units[0].change, Change::Changed);
    // Second revision: every Application whose files did not change is reused.
    let stats = memo.stats();
    assert!(stats.hits >= 1, "{stats:?}");
}

#[test]
fn identical_revisions_render_each_application_once() {
    let base = argo_repo("1", false);
    let target = argo_repo("1", false);
    let memo = Arc::new(MemoRenderer::new(capstan_engine::NativeRenderer));
    let mut r = reader();
    r.argo.reuse = Some(memo.clone() as Arc<dyn Reuse>);
    let (b, t) = snapshots(&r, &base, &target, &memo);
    let rep = compare(&b, &t, &CompareOptions::default());
    assert_eq!(rep.exit_code(), 0);
    let s = memo.stats();
    // web (declared, and again as root's child: reused), staging-web and root at the
    // base; all four reused at the target.
    assert_eq!(s.misses, 3, "{s:?}");
    assert_eq!(s.hits, 5, "{s:?}");
}

#[test]
fn a_failing_application_is_its_own_and_an_unknown_cluster_keeps_its_server() {
    let fs = MemFs::new()
        .with(
            "/apps/broken.yaml",
            app(
                "broken",
                "services/missing",
                "server: https://other.example.com",
                "",
            ),
        )
        .with(
            "/apps/ok.yaml",
            app("ok", "services/ok", "server: https://other.example.com", ""),
        )
        .with("/services/ok/cm.yaml", cm("ok", "1"));
    let r = reader();
    let list = r.clusters(&fs).unwrap();
    assert_eq!(list[0].name, "https://other.example.com");
    let memo = MemoRenderer::new(capstan_engine::NativeRenderer);
    let snap = r.render(&fs, &list[0], &memo);
    let broken = snap
        .units
        .iter()
        .find(|u| u.id.ends_with("/broken"))
        .unwrap();
    let err = broken.error.as_deref().unwrap();
    assert!(
        err.contains("apps/broken.yaml") && err.contains("path"),
        "{err}"
    );
    let ok = snap.units.iter().find(|u| u.id.ends_with("/ok")).unwrap();
    assert_eq!(ok.objects.len(), 1);
}

#[test]
fn a_failing_applicationset_is_reported_in_the_repository_cluster() {
    let fs = MemFs::new().with(
        "/appsets/bad.yaml",
        "apiVersion: argoproj.io/v1alpha1\nkind: ApplicationSet\nmetadata:\n  name: bad\nspec:\n  generators:\n    - pullRequest: {}\n  template:\n    metadata:\n      name: x\n    spec: {}\n",
    );
    let r = reader();
    let list = r.clusters(&fs).unwrap();
    assert_eq!(list[0].name, REPOSITORY_CLUSTER);
    let memo = MemoRenderer::new(capstan_engine::NativeRenderer);
    let snap = r.render(&fs, &list[0], &memo);
    assert!(
        snap.errors[0].contains("appsets/bad.yaml"),
        "{:?}",
        snap.errors
    );
}

#[test]
fn duplicate_application_names_are_told_apart_by_their_source() {
    let fs = MemFs::new()
        .with(
            "/a/app.yaml",
            app("same", "services/a", "name: in-cluster", ""),
        )
        .with(
            "/b/app.yaml",
            app("same", "services/b", "name: in-cluster", ""),
        )
        .with("/services/a/cm.yaml", cm("a", "1"))
        .with("/services/b/cm.yaml", cm("b", "1"));
    let r = reader();
    let list = r.clusters(&fs).unwrap();
    let memo = MemoRenderer::new(capstan_engine::NativeRenderer);
    let snap = r.render(&fs, &list[0], &memo);
    let ids: Vec<&str> = snap.units.iter().map(|u| u.id.as_str()).collect();
    assert_eq!(
        ids,
        vec![
            "Application/argocd/same (a/app.yaml)",
            "Application/argocd/same (b/app.yaml)"
        ]
    );
}

#[test]
fn mixed_repository_reads_flux_clusters_and_applications_one_cluster_per_name() {
    let ks = "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: web\n  namespace: flux-system\nspec:\n  interval: 10m\n  path: ./services/flux\n  prune: true\n  sourceRef:\n    kind: GitRepository\n    name: flux-system\n";
    let fs = argo_repo("1", false)
        .with("/clusters/prod/web.yaml", ks)
        .with("/clusters/edge/web.yaml", ks)
        .with("/services/flux/cm.yaml", cm("flux", "1"));
    let r = reader();
    let list = r.clusters(&fs).unwrap();
    let by = |n: &str| list.iter().find(|c| c.name == n).unwrap().clone();
    assert!(by("prod").flux && by("prod").argocd);
    assert_eq!(by("prod").path, "clusters/prod");
    assert!(by("edge").flux && !by("edge").argocd);
    // clusters/staging holds only a cluster Secret: not a Flux cluster.
    assert!(!by("staging").flux && by("staging").argocd);
    let memo = MemoRenderer::new(capstan_engine::NativeRenderer);
    let prod = r.render(&fs, &by("prod"), &memo);
    let kinds: Vec<&str> = prod.units.iter().map(|u| u.kind.as_str()).collect();
    assert!(
        kinds.contains(&"Kustomization") && kinds.contains(&"Application"),
        "{kinds:?}"
    );
    // Flux only: the Applications are not read.
    let flux = FleetReader {
        layout: Layout::Flux,
        ..reader()
    };
    assert!(flux.clusters(&fs).unwrap().iter().all(|c| !c.argocd));
}

#[test]
fn argo_only_layout_without_applications_is_a_clear_error() {
    let fs = MemFs::new().with("/x.yaml", cm("a", "1"));
    let r = FleetReader {
        layout: Layout::ArgoCd,
        ..reader()
    };
    let e = r.clusters(&fs).unwrap_err();
    assert!(e.contains("no Argo CD Application"), "{e}");
}

#[test]
fn renders_with_sources_outside_the_repository_are_never_reused() {
    let o = opts();
    let local = serde_json::json!({"spec": {"source": {"repoURL": REPO, "path": "a"}}});
    let chart = serde_json::json!({"spec": {"source": {"repoURL": REPO, "chart": "c"}}});
    let other = serde_json::json!({"spec": {"sources": [{"repoURL": REPO, "path": "a"}, {"repoURL": "https://x/y", "path": "b"}]}});
    assert!(reuse_key(&local, &o).is_some());
    assert!(reuse_key(&chart, &o).is_none());
    assert!(reuse_key(&other, &o).is_none());
    // The revision is part of the key only where the Application substitutes it.
    let mut o2 = o.clone();
    o2.revision = "abc".into();
    assert_eq!(reuse_key(&local, &o), reuse_key(&local, &o2));
    let uses = serde_json::json!({"spec": {"source": {"repoURL": REPO, "path": "a", "kustomize": {"commonAnnotations": {"r": "$ARGOCD_APP_REVISION"}}}}});
    assert_ne!(reuse_key(&uses, &o), reuse_key(&uses, &o2));
}
