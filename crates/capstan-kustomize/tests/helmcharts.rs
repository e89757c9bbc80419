//! `helmCharts`, inflated natively with capstan-helm.

use std::path::Path;

use capstan_kustomize::{build_to_string, BuildOptions};
use capstan_vfs::MemFs;

fn repo(kustomization: &str) -> MemFs {
    MemFs::new()
        .with("/app/kustomization.yaml", kustomization)
        .with("/app/charts/web/Chart.yaml", "apiVersion: v2\nname: web\nversion: 0.1.0\n")
        .with("/app/charts/web/values.yaml", "port: 80\n")
        .with(
            "/app/charts/web/templates/svc.yaml",
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: {{ .Release.Name }}\n  annotations:\n    ns: {{ .Release.Namespace }}\nspec:\n  ports:\n  - port: {{ .Values.port }}\n",
        )
}

#[test]
fn needs_enable_helm() {
    let fs = repo("helmCharts:\n- name: web\n");
    let err = build_to_string(&fs, Path::new("/app"), &BuildOptions::default()).unwrap_err();
    assert!(
        err.to_string().contains("must specify --enable-helm"),
        "{err}"
    );
}

#[test]
fn inflates_with_values_and_namespace() {
    let fs = repo("namespace: shop\nhelmCharts:\n- name: web\n  releaseName: front\n  valuesInline:\n    port: 8080\n");
    let opts = BuildOptions {
        enable_helm: true,
        ..Default::default()
    };
    let out = build_to_string(&fs, Path::new("/app"), &opts).unwrap();
    assert!(out.contains("name: front\n"), "{out}");
    assert!(
        out.contains("ns: shop\n"),
        "the kustomization's namespace reaches .Release.Namespace: {out}"
    );
    assert!(out.contains("port: 8080\n"), "{out}");
}
