//! A short, deterministic fuzzing run of every target (fixed seed and number of inputs, so
//! the suite stays quick and repeatable; long runs are `capstan-fuzz TARGET --seconds N`),
//! and every saved crash of `regressions/` replayed: none may panic, abort or hang.

use std::path::Path;
use std::process::Command;

const EXE: &str = env!("CARGO_BIN_EXE_capstan-fuzz");

fn run_short(target: &str, iterations: u32) {
    let crashes = tempfile::tempdir().unwrap();
    let out = Command::new(EXE)
        .args([
            target,
            "--iterations",
            &iterations.to_string(),
            "--seed",
            "7",
        ])
        .arg("--crashes")
        .arg(crashes.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "{target}: the fuzzer found crashes:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("crashes 0"), "{stdout}");
}

#[test]
fn yaml_short_run() {
    run_short("yaml", 2000);
}

#[test]
fn template_short_run() {
    run_short("template", 2000);
}

#[test]
fn kustomize_short_run() {
    run_short("kustomize", 1500);
}

#[test]
fn units_short_run() {
    run_short("units", 1500);
}

#[test]
fn saved_crashes_stay_fixed() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions");
    for target in ["yaml", "template", "kustomize", "units"] {
        let mut files: Vec<_> = std::fs::read_dir(dir.join(target))
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        files.retain(|p| p.is_file());
        if files.is_empty() {
            continue;
        }
        files.sort();
        let out = Command::new(EXE)
            .args([target, "--replay"])
            .args(&files)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{target}: a saved crash is back:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn trees_round_trip() {
    let files = vec![
        (
            "a/kustomization.yaml".to_string(),
            "resources: []\n".to_string(),
        ),
        ("b.yaml".to_string(), "x: 1".to_string()),
    ];
    let decoded = capstan_fuzz::decode_tree(&capstan_fuzz::encode_tree(&files));
    assert_eq!(decoded[0], files[0]);
    assert_eq!(decoded[1].1, "x: 1\n");
}

#[test]
fn mutations_keep_inputs_bounded_and_valid_utf8() {
    let t = capstan_fuzz::target("template").unwrap();
    let mut rng = capstan_fuzz::Rng::new(3);
    let mut s = "{{ .Values.s }}".to_string();
    for _ in 0..2000 {
        s = capstan_fuzz::mutate(&mut rng, t, &s, "{{ if . }}x{{ end }}");
        assert!(s.len() <= capstan_fuzz::MAX_INPUT);
    }
}
