//! Fixture charts rendered and compared with goldens made by Helm v4.2.3's SDK (the
//! conformance oracle): `tests/golden/<name>.yaml` (exact output, `.mask` lines may
//! differ after their key) or `<name>.errkey` (every line must be in the error).

use capstan_helm::{template, TemplateOptions};
use capstan_vfs::DiskFs;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests")
}

fn opts() -> TemplateOptions {
    TemplateOptions {
        kube_version: Some("v1.36.0".into()),
        ..TemplateOptions::default()
    }
}

fn check(name: &str, chart: &str, o: TemplateOptions) {
    let fs = DiskFs::new(root()).unwrap();
    let golden = root().join("golden");
    let result = template(&fs, &Path::new("/charts").join(chart), &o);
    let errkey = golden.join(format!("{name}.errkey"));
    if errkey.exists() {
        let err = match result {
            Ok(r) => panic!("{name}: expected an error, got output:\n{}", r.output),
            Err(e) => e.to_string(),
        };
        for line in std::fs::read_to_string(&errkey).unwrap().lines() {
            if line.trim().is_empty() {
                continue;
            }
            assert!(err.contains(line), "{name}: error lacks {line:?}:\n{err}");
        }
        return;
    }
    let got = match result {
        Ok(r) => r.output,
        Err(e) => panic!("{name}: {e}"),
    };
    let want = std::fs::read_to_string(golden.join(format!("{name}.yaml"))).unwrap();
    let mask: Vec<usize> = std::fs::read_to_string(golden.join(format!("{name}.mask")))
        .map(|m| {
            m.split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let (gl, wl): (Vec<&str>, Vec<&str>) = (
        got.trim_end().lines().collect(),
        want.trim_end().lines().collect(),
    );
    for (i, w) in wl.iter().enumerate() {
        let g = gl.get(i).copied().unwrap_or("<missing>");
        if mask.contains(&(i + 1)) {
            let key = w.find(": ").map(|p| &w[..p + 2]).unwrap_or("");
            assert!(
                g.starts_with(key),
                "{name}: line {}: got {g:?}, want {w:?} (masked)",
                i + 1
            );
        } else {
            assert_eq!(g, *w, "{name}: line {}", i + 1);
        }
    }
    assert_eq!(gl.len(), wl.len(), "{name}: line count");
}

#[test]
fn features() {
    check("features", "features", opts());
}

#[test]
fn features_with_options() {
    let o = TemplateOptions {
        kube_version: Some("v1.29.3".into()),
        include_crds: true,
        skip_tests: true,
        api_versions: vec!["example.com/v1".into()],
        set: vec!["replicas=5,first.enabled=false,tags.extra=false,global.region=us".into()],
        set_string: vec!["first.value=007".into()],
        ..TemplateOptions::default()
    };
    check("features-opts", "features", o);
}

#[test]
fn errors() {
    for c in [
        "err-fail",
        "err-include-args",
        "err-kubeversion",
        "err-missing-dep",
        "err-parse",
        "err-required",
        "err-schema",
        "err-yaml",
    ] {
        check(c, c, opts());
    }
}

#[test]
fn render_release_objects() {
    let fs = DiskFs::new(root()).unwrap();
    let chart = capstan_helm::load(&fs, Path::new("/charts/features")).unwrap();
    let caps = capstan_helm::engine::Capabilities::default();
    let ms = capstan_helm::render_release(&chart, &capstan_helm::Map::new(), "rel", "ns1", &caps)
        .unwrap();
    assert_eq!(ms[0].object["kind"], "CustomResourceDefinition");
    assert_eq!(ms[1].object["kind"], "Namespace");
    let deploy = ms
        .iter()
        .find(|m| m.object["kind"] == "Deployment")
        .unwrap();
    assert_eq!(deploy.object["spec"]["replicas"], 3);
    let hooks: Vec<_> = ms
        .iter()
        .filter_map(|m| {
            m.hook
                .as_ref()
                .map(|h| (m.object["metadata"]["name"].as_str().unwrap(), h))
        })
        .collect();
    assert_eq!(hooks.len(), 3);
    let pre = hooks.iter().find(|(n, _)| *n == "pre").unwrap().1;
    assert_eq!(pre.phases, vec!["pre-install", "pre-upgrade"]);
    assert_eq!(pre.weight, 5);
    assert_eq!(pre.delete_policies, vec!["before-hook-creation"]);
}

#[test]
fn edges() {
    let o = TemplateOptions {
        values_yaml: vec![std::fs::read_to_string(root().join("values/edges-user.yaml")).unwrap()],
        set: vec!["global.midOn=true,nested.new=null".into()],
        ..opts()
    };
    check("edges", "edges", o);
}

#[test]
fn legacy_v1_with_tgz_subchart() {
    check("legacy-v1", "legacy-v1", opts());
    check("packed-tgz", "legacy-v1/charts/packed-2.0.0.tgz", opts());
}

#[test]
fn ranges_over_files_and_api_versions() {
    check("ranges", "ranges", opts());
}

#[test]
fn helm_create_scaffold() {
    check("scaffold", "scaffold", opts());
}

#[test]
fn renders_from_memory() {
    let mut fs = capstan_vfs::MemFs::new();
    fs.add("/c/Chart.yaml", "apiVersion: v2\nname: mem\nversion: 0.1.0\n")
        .add("/c/values.yaml", "n: 2\n")
        .add("/c/templates/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\ndata:\n  n: {{ .Values.n | quote }}\n");
    let o = TemplateOptions {
        release_name: "r".into(),
        set: vec!["n=3".into()],
        ..opts()
    };
    let r = template(&fs, Path::new("/c"), &o).unwrap();
    assert_eq!(r.output, "---\n# Source: mem/templates/cm.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: r\ndata:\n  n: \"3\"\n");
}

#[test]
fn library_root_renders_nothing() {
    check("library-root", "library-root", opts());
}

#[test]
fn capabilities_print_and_json_as_go() {
    // KubeVersion: String() through the template, Go struct formatting through functions,
    // toJson in struct field order
    check("capabilities", "capabilities", opts());
}
