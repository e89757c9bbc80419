//! `capstan.io/image-policy` on a Kustomization, in memory: the named ImagePolicy and its
//! ImageRepository are found among the objects other units render (the unit waits for
//! them), the resolver's image becomes a kustomize `images` entry of the generated
//! kustomization, and a policy found nowhere fails only its unit, naming the policy.

use std::path::Path;
use std::sync::Arc;

use capstan_graph::UnitId;
use capstan_image::ImageRef;
use capstan_units::{
    load, ErrorKind, ImageResolver, LoadOptions, NoCluster, Renderer, SharedImageResolver,
    UnitOutcome,
};
use capstan_vfs::{FileSystem, MemFs};
use serde_json::{json, Value};

/// Resources of the kustomization, plus a ConfigMap `images` holding its `images` field.
struct Echo;

impl Renderer for Echo {
    fn build(&self, fs: &dyn FileSystem, dir: &Path) -> Result<Vec<Value>, String> {
        let text = fs
            .read_to_string(&dir.join("kustomization.yaml"))
            .map_err(|e| e.to_string())?;
        let k = capstan_yaml::to_json(
            &capstan_yaml::parse_documents(&text, "k").map_err(|e| e.to_string())?[0],
        );
        let mut out = Vec::new();
        for r in k["resources"].as_array().into_iter().flatten() {
            let t = fs
                .read_to_string(&capstan_vfs::join(dir, r.as_str().unwrap()))
                .map_err(|e| e.to_string())?;
            for d in capstan_yaml::parse_documents(&t, "r").map_err(|e| e.to_string())? {
                out.push(capstan_yaml::to_json(&d));
            }
        }
        if let Some(images) = k.get("images") {
            out.push(json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "images", "namespace": "apps"},
                "data": {"images": images.to_string()}}));
        }
        Ok(out)
    }
}

/// Elects `1.2.3` of the repository's `spec.image`; checks it was given the right pair.
struct Fixed;

impl ImageResolver for Fixed {
    fn latest(&self, policy: &Value, repository: &Value) -> Result<ImageRef, String> {
        assert_eq!(policy["kind"], "ImagePolicy");
        assert_eq!(
            policy["spec"]["imageRepositoryRef"]["name"],
            repository["metadata"]["name"]
        );
        Ok(ImageRef {
            name: repository["spec"]["image"].as_str().unwrap().into(),
            tag: "1.2.3".into(),
            digest: String::new(),
        })
    }
}

fn ks(name: &str, path: &str, policies: &str) -> String {
    format!(
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: {name}\n  namespace: flux-system\n  annotations:\n    capstan.io/image-policy: {policies}\nspec:\n  interval: 10m\n  path: {path}\n  prune: true\n  images:\n  - name: reg.local/team/app\n    newTag: pinned\n  - name: reg.local/team/sidecar\n    newTag: '7'\n  sourceRef:\n    kind: GitRepository\n    name: flux-system\n"
    )
}

#[test]
fn image_policy_annotation_overrides_images_and_fails_only_its_unit() {
    // `apps` is declared (and queued) before `zimages`, which renders the policy: the
    // unit waits for it.
    let fs = MemFs::new()
        .with("/clusters/c/a-apps.yaml", ks("apps", "./apps", "apps/app"))
        .with("/clusters/c/b-broken.yaml", ks("broken", "./apps", "missing"))
        .with(
            "/clusters/c/c-images.yaml",
            "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: zimages\n  namespace: flux-system\nspec:\n  interval: 10m\n  path: ./images\n  prune: true\n  sourceRef:\n    kind: GitRepository\n    name: flux-system\n",
        )
        .with("/clusters/c/kustomization.yaml", "resources:\n- a-apps.yaml\n- b-broken.yaml\n- c-images.yaml\n")
        .with("/apps/kustomization.yaml", "resources:\n- deploy.yaml\n")
        .with("/apps/deploy.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\n  namespace: apps\n")
        .with("/images/kustomization.yaml", "resources:\n- images.yaml\n")
        .with(
            "/images/images.yaml",
            "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata:\n  name: app\n  namespace: apps\nspec:\n  imageRepositoryRef:\n    name: app\n  policy:\n    semver:\n      range: '>=1.0.0'\n---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata:\n  name: app\n  namespace: apps\nspec:\n  image: reg.local/team/app\n",
        );
    let mut opts = LoadOptions::new("clusters/c");
    opts.image_resolver = Some(SharedImageResolver(Arc::new(Fixed)));
    let out = load(&fs, &Echo, &NoCluster, &opts);
    assert!(out.errors.is_empty(), "{:?}", out.errors);

    let apps = match out
        .get(&UnitId::new("Kustomization", "flux-system", "apps"))
        .unwrap()
    {
        UnitOutcome::Rendered(r) => r,
        UnitOutcome::Failed { error, .. } => panic!("{error}"),
    };
    let images: Value = serde_json::from_str(
        apps.objects
            .iter()
            .find(|o| o["metadata"]["name"] == "images")
            .unwrap()["data"]["images"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    // the policy's entry replaces the static one for the same image; others stay
    assert_eq!(
        images,
        json!([
            {"name": "reg.local/team/app", "newTag": "1.2.3"},
            {"name": "reg.local/team/sidecar", "newTag": "7"},
        ])
    );
    assert_eq!(apps.images.len(), 1);
    assert_eq!(
        apps.images[0].to_string(),
        "ImagePolicy apps/app -> reg.local/team/app:1.2.3"
    );
    // the unit's own spec is unchanged (nothing written back)
    assert_eq!(apps.unit.spec.images[0]["newTag"], "pinned");

    // a name without namespace is looked up in the Kustomization's namespace: not found
    match out
        .get(&UnitId::new("Kustomization", "flux-system", "broken"))
        .unwrap()
    {
        UnitOutcome::Failed { error, .. } => {
            assert_eq!(error.kind, ErrorKind::Lookup);
            let m = error.to_string();
            assert!(m.contains("ImagePolicy flux-system/missing"), "{m}");
            assert!(m.contains("capstan.io/image-policy"), "{m}");
        }
        UnitOutcome::Rendered(_) => panic!("broken rendered"),
    }
}

#[test]
fn image_policy_annotation_is_ignored_without_a_resolver_and_errors_name_the_policy() {
    let fs = MemFs::new()
        .with("/clusters/c/a.yaml", ks("apps", "./apps", "apps/app"))
        .with("/clusters/c/kustomization.yaml", "resources:\n- a.yaml\n")
        .with("/apps/kustomization.yaml", "resources:\n- deploy.yaml\n")
        .with(
            "/apps/deploy.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\n  namespace: apps\n",
        );
    let out = load(&fs, &Echo, &NoCluster, &LoadOptions::new("clusters/c"));
    assert_eq!(out.failed().count(), 0);

    // a bad annotation value fails the unit with the annotation as the field
    let fs = fs.with("/clusters/c/a.yaml", ks("apps", "./apps", "Apps/App"));
    let mut opts = LoadOptions::new("clusters/c");
    opts.image_resolver = Some(SharedImageResolver(Arc::new(Fixed)));
    let out = load(&fs, &Echo, &NoCluster, &opts);
    let (_, e) = out.failed().next().expect("apps fails");
    assert!(
        e.to_string()
            .contains("metadata.annotations[capstan.io/image-policy]"),
        "{e}"
    );
}
