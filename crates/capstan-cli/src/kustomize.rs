//! `capstan kustomize build`: kustomize's `build`, natively, with kustomize's flags.

use std::io::Write;
use std::path::{Path, PathBuf};

use capstan_kustomize::{BuildOptions, LoadRestrictor, Reorder};
use clap::Subcommand;

#[derive(Subcommand)]
pub enum KustomizeCommand {
    /// Build a kustomization directory, as `kustomize build DIR` does.
    Build {
        /// The kustomization directory.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Output order: `legacy` (kustomize's kind order) or `none` (load order).
        #[arg(long, value_parser = ["legacy", "none"])]
        reorder: Option<String>,
        /// `LoadRestrictionsRootOnly` (default) or `LoadRestrictionsNone`.
        #[arg(long = "load-restrictor", value_parser = ["LoadRestrictionsRootOnly", "LoadRestrictionsNone"], default_value = "LoadRestrictionsRootOnly")]
        load_restrictor: String,
        /// Allow helmCharts (rendered natively, no helm binary).
        #[arg(long = "enable-helm")]
        enable_helm: bool,
        /// Allow external plugins: KRM functions in generators/transformers/validators.
        #[arg(long = "enable-alpha-plugins")]
        enable_alpha_plugins: bool,
        /// Run exec KRM functions (local executables; with --enable-alpha-plugins). Do not
        /// use for untrusted configurations.
        #[arg(long = "enable-exec")]
        enable_exec: bool,
        /// Add the app.kubernetes.io/managed-by label.
        #[arg(long = "enable-managedby-label")]
        enable_managedby_label: bool,
        /// Write the output to this file instead of stdout.
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
    },
}

pub fn run(cmd: KustomizeCommand) -> Result<u8, String> {
    match cmd {
        KustomizeCommand::Build {
            dir,
            reorder,
            load_restrictor,
            enable_helm,
            enable_alpha_plugins,
            enable_exec,
            enable_managedby_label,
            output,
        } => {
            let opts = BuildOptions {
                reorder: match reorder.as_deref() {
                    Some("none") => Reorder::None,
                    Some(_) => Reorder::Legacy,
                    None => Reorder::Unspecified,
                },
                load_restrictor: if load_restrictor == "LoadRestrictionsNone" {
                    LoadRestrictor::None
                } else {
                    LoadRestrictor::RootOnly
                },
                enable_helm,
                enable_alpha_plugins,
                enable_exec,
                add_managed_by_label: enable_managedby_label,
            };
            // The file system is rooted at `/` so that LoadRestrictionsNone can reach
            // files outside the kustomization; the engine enforces the restrictor.
            let abs = std::fs::canonicalize(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let fs = capstan_vfs::DiskFs::new("/").map_err(|e| e.to_string())?;
            let runner = ProcessRunner {
                root: PathBuf::from("/"),
                timeout: FUNCTION_TIMEOUT,
            };
            let text = capstan_kustomize::build_to_string_with_runner(
                &fs,
                Path::new(&abs),
                &opts,
                &runner,
            )
            .map_err(|e| e.to_string())?;
            match output {
                Some(p) => std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))?,
                None => std::io::stdout()
                    .write_all(text.as_bytes())
                    .map_err(|e| e.to_string())?,
            }
            Ok(0)
        }
    }
}

/// Runs exec KRM functions as local processes (the kustomize engine's only process I/O).
pub struct ProcessRunner {
    /// The host directory the build's file system is rooted at.
    pub root: PathBuf,
    /// How long one function may run (and keep its output open) before it is killed.
    pub timeout: std::time::Duration,
}

/// The time limit of one exec function (kustomize has none; a hung function must not
/// hang the build forever).
pub const FUNCTION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// Output kept from a function: stdout up to this size (a larger output is an error),
/// stderr's last part.
const MAX_STDOUT: u64 = 256 << 20;
const MAX_STDERR: u64 = 64 << 10;

impl capstan_kustomize::FunctionRunner for ProcessRunner {
    fn run(
        &self,
        call: &capstan_kustomize::ExecCall<'_>,
    ) -> Result<capstan_kustomize::ExecOutput, String> {
        use std::io::Read;
        use std::process::{Command, Stdio};
        let dir = self
            .root
            .join(call.dir.strip_prefix("/").unwrap_or(call.dir));
        // As Go's exec.Cmd with Dir set: a path with a separator is relative to the
        // working directory, a bare name is looked up in PATH.
        let program = if call.path.contains('/') {
            dir.join(call.path)
        } else {
            PathBuf::from(call.path)
        };
        let mut cmd = Command::new(&program);
        cmd.args(call.args)
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for e in call.envs {
            if let Some((k, v)) = e.split_once('=') {
                cmd.env(k, v);
            }
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("fork/exec {}: {e}", call.path))?;
        let mut stdin = child.stdin.take().expect("piped stdin");
        let input = call.stdin.to_vec();
        // Write stdin while stdout/stderr are drained, so neither side blocks; a
        // function that exits without reading its input is not an error.
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let stderr = child.stderr.take().expect("piped stderr");
        let err_reader = std::thread::spawn(move || {
            // Keep the last MAX_STDERR bytes.
            let mut stderr = stderr;
            let mut buf = Vec::new();
            let mut chunk = [0u8; 8192];
            loop {
                match stderr.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        buf.extend_from_slice(&chunk[..n]);
                        if buf.len() as u64 > MAX_STDERR {
                            let cut = buf.len() - MAX_STDERR as usize;
                            buf.drain(..cut);
                        }
                    }
                }
            }
            buf
        });
        let out = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // Reading stops past the limit; closing the pipe ends a runaway writer.
            let mut stdout = Vec::new();
            let read = out.take(MAX_STDOUT + 1).read_to_end(&mut stdout);
            let _ = tx.send(read.map(|_| stdout));
        });
        let deadline = std::time::Instant::now() + self.timeout;
        let status = loop {
            match child.try_wait().map_err(|e| e.to_string())? {
                Some(status) => break status,
                None if std::time::Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "{} did not finish within {}s",
                        call.path,
                        self.timeout.as_secs()
                    ));
                }
                None => std::thread::sleep(std::time::Duration::from_millis(5)),
            }
        };
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let stdout = match rx.recv_timeout(left) {
            Ok(Ok(stdout)) => stdout,
            Ok(Err(e)) => return Err(format!("reading the output of {}: {e}", call.path)),
            Err(_) => {
                return Err(format!(
                    "the output of {} was not closed within {}s",
                    call.path,
                    self.timeout.as_secs()
                ))
            }
        };
        let _ = writer.join();
        let stderr = err_reader.join().unwrap_or_default();
        if stdout.len() as u64 > MAX_STDOUT {
            return Err(format!(
                "the output of {} exceeds {} MiB",
                call.path,
                MAX_STDOUT >> 20
            ));
        }
        Ok(capstan_kustomize::ExecOutput {
            success: status.success(),
            status: go_status(&status),
            stdout,
            stderr,
        })
    }
}

/// An exit status as Go's `ExitError` prints it.
fn go_status(s: &std::process::ExitStatus) -> String {
    if let Some(c) = s.code() {
        return format!("exit status {c}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = s.signal() {
            return format!("signal: {sig}");
        }
    }
    s.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use capstan_kustomize::{ExecCall, FunctionRunner};
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    fn call<'a>(path: &'a str, args: &'a [String], dir: &'a Path, stdin: &'a [u8]) -> ExecCall<'a> {
        ExecCall {
            path,
            args,
            envs: &[],
            dir,
            stdin,
        }
    }

    fn runner(timeout: Duration) -> ProcessRunner {
        ProcessRunner {
            root: PathBuf::from("/"),
            timeout,
        }
    }

    #[test]
    fn bare_name_is_looked_up_in_path_and_gets_stdin_and_args() {
        let tmp = tempfile::tempdir().unwrap();
        let args = vec!["-c".to_string(), "cat; echo \"$PWD\"".to_string()];
        let out = runner(FUNCTION_TIMEOUT)
            .run(&call("sh", &args, tmp.path(), b"items: []\n"))
            .unwrap();
        assert!(out.success);
        let real = std::fs::canonicalize(tmp.path()).unwrap();
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            format!("items: []\n{}\n", real.display())
        );
    }

    #[test]
    fn relative_path_is_resolved_in_the_working_dir_and_status_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("fn.sh");
        std::fs::write(&f, "#!/bin/sh\necho oops >&2\nexit 2\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).unwrap();
        let out = runner(FUNCTION_TIMEOUT)
            .run(&call("./fn.sh", &[], tmp.path(), b""))
            .unwrap();
        assert!(!out.success);
        assert_eq!(out.status, "exit status 2");
        assert_eq!(out.stderr, b"oops\n");
    }

    #[test]
    fn a_hung_function_is_killed_at_the_timeout() {
        let tmp = tempfile::tempdir().unwrap();
        let args = vec!["-c".to_string(), "exec sleep 30".to_string()];
        let e = runner(Duration::from_millis(100))
            .run(&call("sh", &args, tmp.path(), b""))
            .unwrap_err();
        assert!(e.contains("did not finish within"), "{e}");
    }
}
