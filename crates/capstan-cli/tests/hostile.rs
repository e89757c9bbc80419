//! Hostile inputs, end to end through the `capstan` binary: every one ends with exit 2 and a
//! message naming the file and the limit (or the link), or with Go's/kustomize's result —
//! never exit 101 (a panic), never a signal (a stack overflow aborts), never more than
//! 1 GiB of memory (the child runs under RLIMIT_DATA = 1 GiB), and each fixture's time is
//! printed (a hang guard kills a run after a minute; the time itself is no assertion).

use std::io::Write;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Run {
    code: Option<i32>,
    signal: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run(dir: &Path, args: &[&str]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_capstan"));
    cmd.args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Git credentials the process would leak if it read its own environment.
        .env("CAPSTAN_GIT_TOKEN", "hostile-test-token-must-not-leak");
    // SAFETY: setrlimit is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            let gib: u64 = 1 << 30;
            let lim = libc::rlimit {
                rlim_cur: gib,
                rlim_max: gib,
            };
            libc::setrlimit(libc::RLIMIT_DATA, &lim);
            Ok(())
        });
    }
    let started = Instant::now();
    let mut child = cmd.spawn().expect("run capstan");
    let (mut so, mut se) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut so, &mut v).ok();
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut se, &mut v).ok();
        v
    });
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("capstan {args:?} still runs after a minute");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    eprintln!(
        "capstan {} -> {:?} in {:.2} s",
        args.join(" "),
        status.code(),
        started.elapsed().as_secs_f64()
    );
    Run {
        code: status.code(),
        signal: status.signal(),
        stdout: String::from_utf8_lossy(&out_t.join().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&err_t.join().unwrap()).into_owned(),
    }
}

fn write(root: &Path, files: &[(&str, &[u8])]) {
    for (path, body) in files {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::File::create(&p).unwrap().write_all(body).unwrap();
    }
}

/// Exit 2 with a message containing every one of `needles` (case-insensitive).
fn fails_with(r: &Run, what: &str, needles: &[&str]) {
    assert_eq!(r.signal, None, "{what}: killed by a signal\n{}", r.stderr);
    assert_eq!(r.code, Some(2), "{what}: exit {:?}\n{}", r.code, r.stderr);
    let lower = r.stderr.to_lowercase();
    for n in needles {
        assert!(
            lower.contains(&n.to_lowercase()),
            "{what}: the message does not name {n:?}:\n{}",
            r.stderr
        );
    }
    assert!(!r.stderr.contains("panicked"), "{what}: {}", r.stderr);
    assert!(!r.stdout.contains("hostile-test-token"), "{what}: leaked");
    assert!(!r.stderr.contains("hostile-test-token"), "{what}: leaked");
}

fn chart(root: &Path, name: &str, templates: &[(&str, &str)], values: &str) {
    write(
        root,
        &[
            (
                &format!("{name}/Chart.yaml"),
                format!("apiVersion: v2\nname: {name}\nversion: 0.1.0\n").as_bytes(),
            ),
            (&format!("{name}/values.yaml"), values.as_bytes()),
        ],
    );
    for (file, body) in templates {
        write(
            root,
            &[(&format!("{name}/templates/{file}"), body.as_bytes())],
        );
    }
}

fn helm(root: &Path, name: &str) -> Run {
    run(root, &["helm", "template", "r", name])
}

#[test]
fn endless_template_recursion_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        (
            "include",
            r#"{{ define "loop" }}{{ include "loop" . }}{{ end }}{{ include "loop" . }}"#,
        ),
        (
            "template",
            r#"{{ define "loop" }}{{ template "loop" . }}{{ end }}{{ template "loop" . }}"#,
        ),
        (
            "tpl",
            r#"{{ define "t" }}{{ tpl "{{ include \"t\" . }}" . }}{{ end }}{{ include "t" . }}"#,
        ),
        (
            "cycle3",
            r#"{{ define "a" }}{{ include "b" . }}{{ end }}{{ define "b" }}{{ include "c" . }}{{ end }}{{ define "c" }}{{ include "a" . }}{{ end }}{{ include "a" . }}"#,
        ),
    ];
    for (name, tpl) in cases {
        chart(tmp.path(), name, &[("cm.yaml", tpl)], "");
        let r = helm(tmp.path(), name);
        fails_with(&r, name, &["cm.yaml"]);
    }
}

#[test]
fn deep_nesting_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let n = 5000;
    let cases = [
        (
            "ifs",
            format!("{}x{}", "{{ if true }}".repeat(n), "{{ end }}".repeat(n)),
        ),
        (
            "ranges",
            format!(
                "{}x{}",
                "{{ range list 1 }}".repeat(n),
                "{{ end }}".repeat(n)
            ),
        ),
        (
            "parens",
            format!("{{{{ {}1{} }}}}", "(".repeat(n), ")".repeat(n)),
        ),
    ];
    for (name, tpl) in &cases {
        chart(tmp.path(), name, &[("cm.yaml", tpl)], "");
        let r = helm(tmp.path(), name);
        fails_with(&r, name, &["cm.yaml"]);
    }
}

#[test]
fn hostile_function_arguments_never_panic() {
    let tmp = tempfile::tempdir().unwrap();
    // Each either renders what Go renders or fails with a message; never a panic.
    let cases = [
        (
            "divmin",
            "{{ div -9223372036854775808 -1 }} {{ mod -9223372036854775808 -1 }}",
        ),
        ("printfprec", r#"{{ printf "%.65536f" 1.0 | len }}"#),
        ("printfhuge", r#"{{ printf "%.99999999999d" 1 | len }}"#),
        ("repeat", r#"{{ repeat 9223372036854775807 "x" | len }}"#),
        (
            "genca",
            r#"{{ (genCA "x" 9223372036854775807).Cert | len }}"#,
        ),
        ("pluck", "{{ pluck }}"),
        (
            "selfjson",
            r#"{{ $d := dict }}{{ $_ := set $d "self" $d }}{{ toJson $d }}"#,
        ),
        (
            "selfyaml",
            r#"{{ $d := dict }}{{ $_ := set $d "self" $d }}{{ toYaml $d }}"#,
        ),
    ];
    for (name, tpl) in cases {
        chart(tmp.path(), name, &[("cm.yaml", tpl)], "");
        let r = helm(tmp.path(), name);
        assert_eq!(r.signal, None, "{name}: signal\n{}", r.stderr);
        assert!(
            matches!(r.code, Some(0 | 2)),
            "{name}: exit {:?}\n{}",
            r.code,
            r.stderr
        );
        assert!(!r.stderr.contains("panicked"), "{name}: {}", r.stderr);
    }
}

#[test]
fn trunc_at_a_multibyte_character_renders() {
    let tmp = tempfile::tempdir().unwrap();
    chart(
        tmp.path(),
        "trunc",
        &[(
            "cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Values.name | trunc 2 | len }}\n",
        )],
        "name: \"aé\"\n",
    );
    let r = helm(tmp.path(), "trunc");
    assert_eq!(r.code, Some(0), "{}", r.stderr);
}

#[test]
fn billion_laughs_values_fail_fast() {
    let tmp = tempfile::tempdir().unwrap();
    let mut y = String::from("a0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
    for i in 1..10 {
        let p = i - 1;
        y.push_str(&format!(
            "a{i}: &a{i} [*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p}]\n"
        ));
    }
    chart(
        tmp.path(),
        "laughs",
        &[("cm.yaml", "{{ .Values | toJson | len }}")],
        &y,
    );
    let r = helm(tmp.path(), "laughs");
    fails_with(&r, "laughs", &["values.yaml"]);
}

#[test]
fn kustomize_cycles_and_bad_kustomizations_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        &[
            ("self/kustomization.yaml", b"components:\n- .\n"),
            ("cyc/kustomization.yaml", b"components:\n- ../c1\n"),
            (
                "c1/kustomization.yaml",
                b"apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\ncomponents:\n- ../c2\n",
            ),
            (
                "c2/kustomization.yaml",
                b"apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\ncomponents:\n- ../c1\n",
            ),
            ("unknown/kustomization.yaml", b"resourcez:\n- a.yaml\n"),
            ("mapres/kustomization.yaml", b"resources:\n- {a: b}\n"),
            ("empty/kustomization.yaml", b""),
            ("noname/kustomization.yaml", b"resources:\n- cm.yaml\n"),
            ("noname/cm.yaml", b"apiVersion: v1\nkind: ConfigMap\ndata:\n  a: b\n"),
            ("dupkey/kustomization.yaml", b"resources:\n- cm.yaml\n"),
            (
                "dupkey/cm.yaml",
                b"apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: a\napiVersion: v1\nkind: ConfigMap\n",
            ),
        ],
    );
    for (dir, needles) in [
        ("self", &["cycle detected"][..]),
        ("cyc", &["cycle detected", "c1"][..]),
        ("unknown", &["resourcez"][..]),
        ("mapres", &["kustomization"][..]),
        ("empty", &["kustomization"][..]),
        ("noname", &["name"][..]),
        ("dupkey", &["cm.yaml", "apiVersion"][..]),
    ] {
        let r = run(tmp.path(), &["kustomize", "build", dir]);
        fails_with(&r, dir, needles);
    }
}

#[test]
fn links_out_of_the_repository_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    write(
        &repo,
        &[
            (
                "clusters/c/app.yaml",
                b"apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: app\n  namespace: flux-system\nspec:\n  interval: 1m\n  path: ./app\n  prune: true\n  sourceRef:\n    kind: GitRepository\n    name: flux-system\n",
            ),
            (
                "app/kustomization.yaml",
                b"configMapGenerator:\n- name: env\n  files:\n  - environ\n",
            ),
        ],
    );
    std::os::unix::fs::symlink("/proc/self/environ", repo.join("app/environ")).unwrap();
    let r = run(&repo, &["build", ".", "--cluster", "c"]);
    fails_with(&r, "environ link", &["environ"]);
    assert!(r.stdout.is_empty(), "a failed cluster printed output");
}

/// A gzip bomb: a small .tgz whose one entry expands far beyond Helm's chart size limit
/// (made with the system's tar and gzip from a sparse file).
#[test]
fn chart_archive_bombs_fail_fast() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        &[(
            "bomb/Chart.yaml",
            b"apiVersion: v2\nname: bomb\nversion: 0.1.0\n",
        )],
    );
    std::fs::create_dir_all(tmp.path().join("bomb/templates")).unwrap();
    let big = std::fs::File::create(tmp.path().join("bomb/templates/big.yaml")).unwrap();
    big.set_len(300 << 20).unwrap();
    let status = Command::new("tar")
        .args(["-czf", "bomb-0.1.0.tgz", "bomb"])
        .current_dir(tmp.path())
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::remove_dir_all(tmp.path().join("bomb")).unwrap();
    let size = std::fs::metadata(tmp.path().join("bomb-0.1.0.tgz"))
        .unwrap()
        .len();
    assert!(size < 1 << 20, "the bomb is {size} bytes");
    let r = run(tmp.path(), &["helm", "template", "r", "bomb-0.1.0.tgz"]);
    fails_with(&r, "bomb", &["bomb"]);
}
