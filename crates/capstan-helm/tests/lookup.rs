//! `lookup` and Capabilities injected by the caller (the apply path against a live cluster).

use std::path::Path;
use std::sync::Arc;

use capstan_gotemplate::Value;
use capstan_helm::engine::Capabilities;
use capstan_helm::{load, render_release_with, ReleaseOptions};
use capstan_vfs::MemFs;

fn chart() -> MemFs {
    MemFs::new()
        .with("/c/Chart.yaml", "apiVersion: v2\nname: c\nversion: 0.1.0\n")
        .with(
            "/c/templates/cm.yaml",
            r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: cm
data:
  {{- $s := lookup "v1" "Secret" .Release.Namespace "existing" }}
  found: {{ if $s }}{{ $s.metadata.name | quote }}{{ else }}"no"{{ end }}
  kube: {{ .Capabilities.KubeVersion.Version | quote }}
  hasFoo: {{ .Capabilities.APIVersions.Has "foo.example.com/v1" | quote }}
  install: {{ .Release.IsInstall | quote }}
"#,
        )
}

#[test]
fn lookup_and_capabilities_come_from_the_caller() {
    let fs = chart();
    let c = load(&fs, Path::new("/c")).unwrap();
    let mut caps = Capabilities::default()
        .with_kube_version("v1.20.15")
        .unwrap();
    caps.api_versions.push("foo.example.com/v1".into());
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let ro = ReleaseOptions {
        name: "r".into(),
        namespace: "apps".into(),
        capabilities: caps,
        lookup: Some(Arc::new(
            move |api: &str, kind: &str, ns: &str, name: &str| {
                seen2
                    .lock()
                    .unwrap()
                    .push(format!("{api} {kind} {ns} {name}"));
                Ok(Value::from_json(
                    &serde_json::json!({"metadata": {"name": name}}),
                ))
            },
        )),
        is_upgrade: true,
    };
    let out = render_release_with(&c, &Default::default(), &ro).unwrap();
    let data = &out[0].object["data"];
    assert_eq!(data["found"], "existing");
    assert_eq!(data["kube"], "v1.20.15");
    assert_eq!(data["hasFoo"], "true");
    assert_eq!(data["install"], "false");
    assert_eq!(*seen.lock().unwrap(), vec!["v1 Secret apps existing"]);

    // Offline: lookup finds nothing.
    let out = capstan_helm::render_release(
        &c,
        &Default::default(),
        "r",
        "apps",
        &Capabilities::default(),
    )
    .unwrap();
    assert_eq!(out[0].object["data"]["found"], "no");
    assert_eq!(out[0].object["data"]["install"], "true");
}
