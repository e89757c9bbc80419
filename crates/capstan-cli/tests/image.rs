//! `scripts/image` builds the agent's container image with buildah (no Docker daemon):
//! entrypoint `capstan agent`, non-root user, and the binary runs from the image's root
//! file system with only what the image holds. Skipped (with a message) where buildah is
//! not installed.

use std::path::Path;
use std::process::Command;

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn scripts_image_builds_a_non_root_image_whose_entrypoint_is_capstan_agent() {
    if !have("buildah") {
        eprintln!(
            "skipping: buildah is not installed (apt-get install buildah); scripts/image needs it"
        );
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let tag = format!("localhost/capstan-image-test:{}", std::process::id());
    let out = Command::new(root.join("scripts/image"))
        .args(["--binary", env!("CARGO_BIN_EXE_capstan"), "--tag", &tag])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "scripts/image failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("image {tag} id ")) && stdout.contains(" size "),
        "{stdout}"
    );
    eprintln!("{stdout}");
    let user = run(
        "buildah",
        &["inspect", "--format", "{{.OCIv1.Config.User}}", &tag],
    );
    assert_eq!(user, "65532:65532");
    let entrypoint = run(
        "buildah",
        &["inspect", "--format", "{{.OCIv1.Config.Entrypoint}}", &tag],
    );
    assert_eq!(entrypoint, "[/usr/local/bin/capstan agent]");
    // The binary runs from the image's file system alone, as the non-root user (chroot
    // needs root; containers cannot be started in every sandbox).
    let is_root = run("id", &["-u"]) == "0";
    if is_root && have("chroot") {
        let container = run("buildah", &["from", &tag]);
        let mount = run("buildah", &["mount", &container]);
        let version = Command::new("chroot")
            .args([
                "--userspec=65532:65532",
                &mount,
                "/usr/local/bin/capstan",
                "--version",
            ])
            .output()
            .unwrap();
        let _ = Command::new("buildah")
            .args(["umount", &container])
            .output();
        let _ = Command::new("buildah").args(["rm", &container]).output();
        assert!(
            version.status.success(),
            "the image's capstan does not run: {}",
            String::from_utf8_lossy(&version.stderr)
        );
        assert!(String::from_utf8_lossy(&version.stdout).starts_with("capstan "));
    } else {
        eprintln!("not root: the image's binary was not run");
    }
    let _ = Command::new("buildah").args(["rmi", &tag]).output();
}
