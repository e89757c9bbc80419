//! Compare with `kubectl kustomize` on a few generated trees (skipped without kubectl).

use std::path::Path;
use std::process::Command;

use capstan_kustomize::{build_to_string, BuildOptions, Reorder};

fn kubectl() -> bool {
    Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[test]
fn matches_kubectl_kustomize() {
    if !kubectl() {
        eprintln!("kubectl not found: skipped");
        return;
    }
    let dir = std::env::temp_dir().join(format!("capstan-kdiff-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for i in 0..3 {
        let base = dir.join(format!("t{i}/base"));
        let over = dir.join(format!("t{i}/overlay"));
        std::fs::create_dir_all(&base).unwrap();
        std::fs::create_dir_all(&over).unwrap();
        std::fs::write(
            base.join("deploy.yaml"),
            format!("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app{i}\nspec:\n  replicas: 1\n  template:\n    spec:\n      containers:\n      - name: c\n        image: nginx:1.{i}\n        args: [\"--port\", \"80{i}\", \"yes\", \"\"]\n        envFrom:\n        - configMapRef:\n            name: env\n"),
        )
        .unwrap();
        std::fs::write(base.join("svc.yaml"), format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: svc{i}\nspec:\n  ports:\n  - port: 80\n")).unwrap();
        std::fs::write(base.join("kustomization.yaml"), "resources:\n- deploy.yaml\n- svc.yaml\nconfigMapGenerator:\n- name: env\n  literals:\n  - K=v\n  - LONG=a very long value that goes on and on and on well past the eighty column folding width\n").unwrap();
        std::fs::write(
            over.join("kustomization.yaml"),
            format!("resources:\n- ../base\nnamespace: ns{i}\nnamePrefix: o{i}-\ncommonLabels:\n  tier: t{i}\ncommonAnnotations:\n  note: \"true\"\nimages:\n- name: nginx\n  newName: registry/nginx\n  newTag: v{i}\nreplicas:\n- name: app{i}\n  count: {}\nconfigMapGenerator:\n- name: env\n  behavior: merge\n  literals:\n  - EXTRA=x\n", i + 2),
        )
        .unwrap();
        let want = Command::new("kubectl")
            .arg("kustomize")
            .arg(&over)
            .output()
            .unwrap();
        assert!(
            want.status.success(),
            "{}",
            String::from_utf8_lossy(&want.stderr)
        );
        let fs = capstan_vfs::DiskFs::new("/").unwrap();
        let got = build_to_string(
            &fs,
            Path::new(&over),
            &BuildOptions {
                reorder: Reorder::Legacy,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(got, String::from_utf8(want.stdout).unwrap(), "tree {i}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
