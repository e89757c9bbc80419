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

fn helm() -> BuildOptions {
    BuildOptions {
        enable_helm: true,
        ..Default::default()
    }
}

/// A chart whose template places its Service in `.Release.Namespace`.
fn with_ns_chart(fs: MemFs, dir: &str) -> MemFs {
    fs.with(
        format!("{dir}/charts/svc/Chart.yaml"),
        "apiVersion: v2\nname: svc\nversion: 0.1.0\n",
    )
    .with(format!("{dir}/charts/svc/values.yaml"), "")
    .with(
        format!("{dir}/charts/svc/templates/svc.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: test-service\n  namespace: {{ .Release.Namespace }}\n  annotations:\n    helm-namespace: {{ .Release.Namespace }}\n",
    )
}

#[test]
fn chart_namespace_survives_the_namespace_transformer() {
    // kustomize >= 5.8: the namespace transformer skips what a chart rendered, so an
    // entry's own namespace wins over the kustomization's.
    let fs = with_ns_chart(MemFs::new(), "/app")
        .with(
            "/app/kustomization.yaml",
            "namespace: transformer-ns\nresources:\n- cm.yaml\nhelmCharts:\n- name: svc\n  releaseName: svc\n  namespace: helm-ns\n",
        )
        .with(
            "/app/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: plain\n",
        );
    let out = build_to_string(&fs, Path::new("/app"), &helm()).unwrap();
    assert_eq!(
        out,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: plain\n  namespace: transformer-ns\n---\napiVersion: v1\nkind: Service\nmetadata:\n  annotations:\n    helm-namespace: helm-ns\n  name: test-service\n  namespace: helm-ns\n"
    );
}

#[test]
fn chart_without_namespace_in_its_template_keeps_none() {
    // What the chart leaves without a namespace stays so (kustomize 5.8.1).
    let fs = repo("namespace: shop\nhelmCharts:\n- name: web\n  releaseName: front\n");
    let out = build_to_string(&fs, Path::new("/app"), &helm()).unwrap();
    assert!(out.contains("ns: shop\n"), "{out}");
    assert!(!out.contains("namespace:"), "{out}");
}

#[test]
fn namespace_propagates_from_including_kustomizations() {
    // overlay (namespace) -> mid (namePrefix) -> base (helmCharts): the chart is
    // rendered into the overlay's namespace; the other transformers still apply.
    let fs = with_ns_chart(MemFs::new(), "/base")
        .with(
            "/base/kustomization.yaml",
            "helmCharts:\n- name: svc\n  releaseName: svc\n",
        )
        .with(
            "/mid/kustomization.yaml",
            "namePrefix: mid-\nresources:\n- ../base\n",
        )
        .with(
            "/overlay/kustomization.yaml",
            "namespace: production\nresources:\n- ../mid\n",
        );
    let out = build_to_string(&fs, Path::new("/overlay"), &helm()).unwrap();
    assert_eq!(
        out,
        "apiVersion: v1\nkind: Service\nmetadata:\n  annotations:\n    helm-namespace: production\n  name: mid-test-service\n  namespace: production\n"
    );
}

#[test]
fn nearest_namespace_wins_for_charts() {
    // The namespace of the nearest kustomization wins over an outer one, and the outer
    // namespace transformer leaves the chart's resources alone.
    let fs = with_ns_chart(MemFs::new(), "/base")
        .with(
            "/base/kustomization.yaml",
            "helmCharts:\n- name: svc\n  releaseName: svc\n",
        )
        .with(
            "/mid/kustomization.yaml",
            "namespace: mid-ns\nresources:\n- ../base\n",
        )
        .with(
            "/overlay/kustomization.yaml",
            "namespace: production\nresources:\n- ../mid\n",
        );
    let out = build_to_string(&fs, Path::new("/overlay"), &helm()).unwrap();
    assert!(out.contains("helm-namespace: mid-ns\n"), "{out}");
    assert!(out.contains("  namespace: mid-ns\n"), "{out}");
    assert!(!out.contains("production"), "{out}");
}

#[test]
fn chart_with_repo_not_on_disk_says_pulling_is_unsupported() {
    let fs = MemFs::new().with(
        "/app/kustomization.yaml",
        "helmCharts:\n- name: minecraft\n  repo: https://user:hunter2@charts.example.com/stable\n  version: 3.1.3\n  releaseName: test\n",
    );
    let err = build_to_string(&fs, Path::new("/app"), &helm())
        .unwrap_err()
        .to_string();
    assert!(err.contains("chart 'minecraft'"), "{err}");
    assert!(err.contains("'repo' field"), "{err}");
    assert!(err.contains("not supported"), "{err}");
    assert!(err.contains("offline"), "{err}");
    assert!(err.contains("/app/charts/minecraft"), "{err}");
    assert!(!err.contains("hunter2"), "credentials leaked: {err}");
}

#[test]
fn chart_without_repo_not_on_disk_uses_kustomize_wording() {
    let fs = MemFs::new().with("/app/kustomization.yaml", "helmCharts:\n- name: nothere\n");
    let err = build_to_string(&fs, Path::new("/app"), &helm())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no repo specified for pull, no chart found at '/app/charts/nothere'"),
        "{err}"
    );
}

#[test]
fn deprecated_helm_chart_inflation_generator_field_is_converted() {
    // kustomize's SplitHelmParameters: chartName/chartHome/valuesLocal/releaseName.
    let fs = with_ns_chart(MemFs::new(), "/app/vendor").with(
        "/app/kustomization.yaml",
        "helmChartInflationGenerator:\n- chartName: svc\n  chartHome: vendor/charts\n  releaseName: old\n",
    );
    let out = build_to_string(&fs, Path::new("/app"), &helm()).unwrap();
    assert!(out.contains("name: test-service\n"), "{out}");
    assert!(out.contains("helm-namespace: default\n"), "{out}");
}

#[test]
fn helm_chart_inflation_generator_config_in_generators() {
    let fs = with_ns_chart(MemFs::new(), "/app")
        .with(
            "/app/kustomization.yaml",
            "namespace: outer\ngenerators:\n- helm.yaml\n",
        )
        .with(
            "/app/helm.yaml",
            "apiVersion: builtin\nkind: HelmChartInflationGenerator\nmetadata:\n  name: svc\nname: svc\nreleaseName: svc\nnamespace: inner\n",
        );
    let out = build_to_string(&fs, Path::new("/app"), &helm()).unwrap();
    assert!(out.contains("helm-namespace: inner\n"), "{out}");
    assert!(out.contains("  namespace: inner\n"), "{out}");
    assert!(!out.contains("outer"), "{out}");
    let err = build_to_string(&fs, Path::new("/app"), &BuildOptions::default()).unwrap_err();
    assert!(
        err.to_string().contains("must specify --enable-helm"),
        "{err}"
    );
}

fn port_with(kustomization: &str, extra: &[(&str, &str)]) -> Result<String, String> {
    let mut fs = repo(kustomization);
    for (p, c) in extra {
        fs = fs.with(p, c);
    }
    build_to_string(&fs, Path::new("/app"), &helm())
        .map(|out| {
            out.lines()
                .find_map(|l| l.trim().strip_prefix("- port: ").map(str::to_string))
                .unwrap_or_default()
        })
        .map_err(|e| e.to_string())
}

#[test]
fn values_merge_modes() {
    let file = [("/app/values-file.yaml", "port: 81\n")];
    let entry =
        "helmCharts:\n- name: web\n  valuesFile: values-file.yaml\n  valuesInline:\n    port: 82\n";
    // override (default): inline wins over the file.
    assert_eq!(port_with(entry, &file).unwrap(), "82");
    // merge: the file wins; without a valuesFile, the chart's own values.yaml does.
    assert_eq!(
        port_with(&format!("{entry}  valuesMerge: merge\n"), &file).unwrap(),
        "81"
    );
    assert_eq!(
        port_with(
            "helmCharts:\n- name: web\n  valuesMerge: merge\n  valuesInline:\n    port: 82\n",
            &[]
        )
        .unwrap(),
        "80"
    );
    // replace: the file is dropped.
    let replace = "helmCharts:\n- name: web\n  valuesFile: values-file.yaml\n  valuesMerge: replace\n  valuesInline:\n    other: 1\n";
    assert_eq!(port_with(replace, &file).unwrap(), "80");
    // additionalValuesFiles come last.
    assert_eq!(
        port_with(
            &format!("{entry}  additionalValuesFiles:\n  - more.yaml\n"),
            &[file[0], ("/app/more.yaml", "port: 83\n")]
        )
        .unwrap(),
        "83"
    );
    let err = port_with(&format!("{entry}  valuesMerge: sideways\n"), &file).unwrap_err();
    assert!(err.contains("valuesMerge must be one of"), "{err}");
}
