//! `capstan build --source URL --rev REV`: render from real Git servers on loopback.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use capstan_testbed::servers::{git, git_http, Access, GitDaemon, Repo};

fn fleet() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/fleet")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn capstan(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_capstan"));
    cmd.args(args)
        .env_remove("CAPSTAN_GIT_TOKEN")
        .env_remove("CAPSTAN_GIT_USERNAME")
        .env_remove("CAPSTAN_GIT_PASSWORD");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run capstan")
}

/// The example fleet committed twice: v1 (tag `v1`, branch `release`) says
/// `scrape_interval: 15s`, main's head says `scrape_interval: 45s`.
fn fleet_repo(tmp: &Path) -> (Repo, String, String) {
    let repo = Repo::new(tmp, "fleet");
    let status = Command::new("cp")
        .arg("-r")
        .arg(format!("{}/.", fleet().display()))
        .arg(&repo.work)
        .status()
        .unwrap();
    assert!(status.success());
    let c1 = repo.commit("v1");
    repo.run(&["tag", "v1"]);
    repo.run(&["branch", "release"]);
    let vars = repo
        .work
        .join("infrastructure/controllers/metrics-agent.yaml");
    let body = std::fs::read_to_string(&vars).unwrap();
    assert!(body.contains("15s"), "fixture changed: {body}");
    std::fs::write(&vars, body.replace("15s", "45s")).unwrap();
    let c2 = repo.commit("v2");
    repo.run(&["push", "-q", "origin", "main", "release", "--tags"]);
    git(&repo.bare, &["symbolic-ref", "HEAD", "refs/heads/main"]);
    (repo, c1, c2)
}

#[test]
fn build_from_git_daemon_at_two_revisions() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, c1, c2) = fleet_repo(tmp.path());
    let daemon = GitDaemon::start(&repo.srv);
    let url = daemon.url("fleet");
    let cache = tmp.path().join("cache");
    let cache = cache.to_str().unwrap();

    let build = |extra: &[&str]| {
        let mut args = vec![
            "build",
            "--source",
            &url,
            "-c",
            "staging",
            "--cache-dir",
            cache,
        ];
        args.extend_from_slice(extra);
        capstan(&args, &[])
    };

    // default: the remote's HEAD branch
    let head = build(&[]);
    assert!(head.status.success(), "{}", text(&head.stderr));
    assert!(
        text(&head.stderr).contains(&format!("main@sha1:{c2}")),
        "{}",
        text(&head.stderr)
    );
    assert!(text(&head.stdout).contains("scrape_interval: 45s"));
    assert!(text(&head.stdout).contains("# Unit: Kustomization/flux-system/apps\n"));

    // a tag
    let tag = build(&["--rev", "v1"]);
    assert!(tag.status.success(), "{}", text(&tag.stderr));
    assert!(
        text(&tag.stderr).contains(&format!("v1@sha1:{c1}")),
        "{}",
        text(&tag.stderr)
    );
    assert!(text(&tag.stdout).contains("scrape_interval: 15s"));
    assert!(!text(&tag.stdout).contains("scrape_interval: 45s"));

    // a branch
    let branch = build(&["--rev", "release"]);
    assert!(branch.status.success(), "{}", text(&branch.stderr));
    assert!(text(&branch.stderr).contains(&format!("release@sha1:{c1}")));

    // an abbreviated commit (the head of main)
    let commit = build(&["--rev", &c2[..10]]);
    assert!(commit.status.success(), "{}", text(&commit.stderr));
    assert!(text(&commit.stderr).contains(&format!("sha1:{c2}")));
    assert!(text(&commit.stdout).contains("scrape_interval: 45s"));

    // same output as the working tree at that revision
    let local = capstan(
        &["build", repo.work.to_str().unwrap(), "-c", "staging"],
        &[],
    );
    assert_eq!(text(&local.stdout), text(&head.stdout));

    // unknown revision: a clear error
    let missing = build(&["--rev", "nope"]);
    assert_eq!(missing.status.code(), Some(2));
    let err = text(&missing.stderr);
    assert!(
        err.contains("no branch, tag or commit named \"nope\""),
        "{err}"
    );
    assert!(err.contains("hint:"), "{err}");
}

#[test]
fn build_from_local_path_with_semver() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, c1, _) = fleet_repo(tmp.path());
    let cache = tmp.path().join("cache");
    let out = capstan(
        &[
            "build",
            "--source",
            repo.bare.to_str().unwrap(),
            "--semver",
            ">=2.0.0",
            "-c",
            "staging",
            "--cache-dir",
            cache.to_str().unwrap(),
        ],
        &[],
    );
    // only "v1" (1.0.0 to Masterminds semver): no tag matches
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    repo.run(&["tag", "v2.0.0", &c1]);
    repo.run(&["push", "-q", "origin", "--tags"]);
    let out = capstan(
        &[
            "build",
            "--source",
            repo.bare.to_str().unwrap(),
            "--semver",
            ">=2.0.0",
            "-c",
            "staging",
            "--cache-dir",
            cache.to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains(&format!("v2.0.0@sha1:{c1}")));
    assert!(text(&out.stdout).contains("scrape_interval: 15s"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_from_http_with_credentials_from_env() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, _, c2) = fleet_repo(tmp.path());
    let server = git_http(
        repo.srv.clone(),
        vec![
            ("basic", Access::Basic("alice", "s3cret-pw")),
            ("bearer", Access::Bearer("t0ken-value")),
        ],
    )
    .await;
    let cache = tmp.path().join("cache");
    let cache = cache.to_str().unwrap().to_string();
    let basic_url = format!("http://{}/basic/fleet.git", server.addr);
    let bearer_url = format!("http://{}/bearer/fleet.git", server.addr);

    let run = move |url: String, env: Vec<(&'static str, &'static str)>, insecure: bool| {
        let cache = cache.clone();
        tokio::task::spawn_blocking(move || {
            let mut args = vec![
                "build".to_string(),
                "--source".into(),
                url,
                "-c".into(),
                "staging".into(),
                "--cache-dir".into(),
                cache,
            ];
            if insecure {
                args.push("--allow-insecure-http".into());
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            capstan(&args, &env)
        })
    };

    // no credentials
    let out = run(basic_url.clone(), vec![], true).await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("CAPSTAN_GIT_USERNAME"),
        "{}",
        text(&out.stderr)
    );

    // credentials over http without --allow-insecure-http: refused
    let env = vec![
        ("CAPSTAN_GIT_USERNAME", "alice"),
        ("CAPSTAN_GIT_PASSWORD", "s3cret-pw"),
    ];
    let out = run(basic_url.clone(), env.clone(), false).await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--allow-insecure-http"),
        "{}",
        text(&out.stderr)
    );

    // wrong password: fails, the password is never printed
    let bad = vec![
        ("CAPSTAN_GIT_USERNAME", "alice"),
        ("CAPSTAN_GIT_PASSWORD", "wrong-pw"),
    ];
    let out = run(basic_url.clone(), bad, true).await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!text(&out.stderr).contains("wrong-pw"));

    let out = run(basic_url.clone(), env, true).await.unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains(&format!("main@sha1:{c2}")));
    assert!(!text(&out.stderr).contains("s3cret-pw"));

    let out = run(bearer_url, vec![("CAPSTAN_GIT_TOKEN", "t0ken-value")], true)
        .await
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("scrape_interval: 45s"));
    assert!(!text(&out.stderr).contains("t0ken-value"));
}

#[test]
fn apply_and_diff_from_a_source_revision() {
    let Some(cluster) = capstan_testbed::TestCluster::shared() else {
        return;
    };
    let kc = cluster.kubeconfig_path().to_str().unwrap().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let (repo, c1, c2) = fleet_repo(tmp.path());
    let daemon = GitDaemon::start(&repo.srv);
    let url = daemon.url("fleet");
    let cache = tmp.path().join("cache");
    let cache = cache.to_str().unwrap();
    let live = |cmd: &str, rev: &str| {
        capstan(
            &[
                cmd,
                "--source",
                &url,
                "--rev",
                rev,
                "-c",
                "local",
                "--cache-dir",
                cache,
                "--kubeconfig",
                &kc,
            ],
            &[],
        )
    };
    let out = live("apply", "v1");
    assert!(
        out.status.success(),
        "stdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(text(&out.stderr).contains(&format!("v1@sha1:{c1}")));
    let out = live("diff", "v1");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    // main changed the metrics agent's scrape interval: drift
    let out = live("diff", "main");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains(&format!("main@sha1:{c2}")));
    let d = text(&out.stdout);
    assert!(d.contains("45s") && d.contains("15s"), "{d}");
}

/// A symlink committed to the repository that leads outside it fails `--source` builds
/// exactly as it fails working-tree builds: exit code 2 and an error naming the link and
/// its target (not "no such file" for a link dropped at checkout), nothing from outside.
#[test]
fn source_and_working_tree_refuse_a_link_out_of_the_repository_alike() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, _, _) = fleet_repo(tmp.path());
    let outside = tmp.path().join("outside.yaml");
    std::fs::write(
        &outside,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: stolen\ndata:\n  key: outside-secret-9d1\n",
    )
    .unwrap();
    let kust = repo.work.join("apps/base/redis/kustomization.yaml");
    let body = std::fs::read_to_string(&kust).unwrap();
    assert!(body.contains("resources:\n"), "fixture changed: {body}");
    std::fs::write(
        &kust,
        body.replace("resources:\n", "resources:\n  - stolen.yaml\n"),
    )
    .unwrap();
    std::os::unix::fs::symlink(&outside, repo.work.join("apps/base/redis/stolen.yaml")).unwrap();
    std::os::unix::fs::symlink(
        "/proc/self/environ",
        repo.work.join("apps/base/redis/environ"),
    )
    .unwrap();
    repo.commit("a link out of the repository");
    repo.run(&["push", "-q", "origin", "main"]);
    let cache = tmp.path().join("cache");
    let from_source = capstan(
        &[
            "build",
            "--source",
            repo.bare.to_str().unwrap(),
            "-c",
            "staging",
            "--cache-dir",
            cache.to_str().unwrap(),
        ],
        &[],
    );
    let from_tree = capstan(
        &["build", repo.work.to_str().unwrap(), "-c", "staging"],
        &[],
    );
    let target = outside.to_str().unwrap();
    for out in [&from_source, &from_tree] {
        let (o, e) = (text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(2), "stdout:\n{o}\nstderr:\n{e}");
        assert!(
            e.contains(&format!(
                "symlink /apps/base/redis/stolen.yaml -> {target} leads outside the root"
            )),
            "{e}"
        );
        assert!(!e.contains("no such file"), "{e}");
        assert!(!o.contains("outside-secret-9d1") && !e.contains("outside-secret-9d1"));
        assert!(!e.contains("panicked"), "{e}");
    }
}
