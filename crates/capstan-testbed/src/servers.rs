//! Loopback servers for tests: real git repositories, `git daemon`, `git http-backend`
//! behind a small hyper server (with basic/bearer auth), a static HTTP file server
//! (Helm repositories) and Debian's `docker-registry` (OCI). Everything a fixture
//! starts is stopped when the fixture is dropped.

use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use tokio::io::AsyncWriteExt;

pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
            "-c",
            "tag.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A bare repository under `<tmp>/srv/<name>.git` plus a working clone.
pub struct Repo {
    pub srv: PathBuf,
    pub bare: PathBuf,
    pub work: PathBuf,
}

impl Repo {
    pub fn new(tmp: &Path, name: &str) -> Repo {
        let srv = tmp.join("srv");
        std::fs::create_dir_all(&srv).unwrap();
        let bare = srv.join(format!("{name}.git"));
        std::fs::create_dir_all(&bare).unwrap();
        git(&bare, &["init", "--bare", "-q"]);
        let work = tmp.join(format!("work-{name}"));
        std::fs::create_dir_all(&work).unwrap();
        git(&work, &["init", "-q"]);
        git(&work, &["remote", "add", "origin", bare.to_str().unwrap()]);
        Repo { srv, bare, work }
    }

    pub fn write(&self, path: &str, content: &str) {
        let p = self.work.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    /// Stage everything, commit, return the commit id.
    pub fn commit(&self, msg: &str) -> String {
        git(&self.work, &["add", "-A"]);
        git(&self.work, &["commit", "-q", "--allow-empty", "-m", msg]);
        git(&self.work, &["rev-parse", "HEAD"])
    }

    pub fn run(&self, args: &[&str]) -> String {
        git(&self.work, args)
    }
}

pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn wait_port(port: u16) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "server on port {port} did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `git daemon` serving `base` on a free loopback port; killed on drop.
pub struct GitDaemon {
    child: Child,
    pub port: u16,
}

impl GitDaemon {
    pub fn start(base: &Path) -> GitDaemon {
        let port = free_port();
        let child = Command::new("git")
            .args([
                "daemon",
                "--export-all",
                "--reuseaddr",
                "--listen=127.0.0.1",
                &format!("--port={port}"),
                &format!("--base-path={}", base.display()),
                base.to_str().unwrap(),
            ])
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("git daemon starts");
        wait_port(port);
        GitDaemon { child, port }
    }

    pub fn url(&self, name: &str) -> String {
        format!("git://127.0.0.1:{}/{name}.git", self.port)
    }

    /// Stops the daemon and every transfer it is serving at once (SIGKILL to its process
    /// group), as a Git server that goes away mid-fetch.
    pub fn stop_group(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        self.stop_group();
    }
}

/// A hyper server on a free loopback port, aborted on drop.
pub struct HttpServer {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Handler = Arc<dyn Fn(Request<Bytes>) -> futures_like::BoxFut + Send + Sync>;

pub mod futures_like {
    use super::*;
    pub type BoxFut =
        std::pin::Pin<Box<dyn std::future::Future<Output = Response<Full<Bytes>>> + Send>>;
}

pub async fn serve(handler: Handler) -> HttpServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                break;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let handler = handler.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let bytes = body
                            .collect()
                            .await
                            .map(|c| c.to_bytes())
                            .unwrap_or_default();
                        Ok::<_, Infallible>(handler(Request::from_parts(parts, bytes)).await)
                    }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, svc)
                    .await;
            });
        }
    });
    HttpServer { addr, task }
}

fn respond(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r
}

/// Access rule of a path prefix of the git HTTP server.
#[derive(Clone)]
pub enum Access {
    Public,
    Basic(&'static str, &'static str),
    Bearer(&'static str),
}

/// `git http-backend` (CGI) for repositories under `root`, reachable as
/// `/<prefix>/<name>.git` with each prefix's access rule.
pub async fn git_http(root: PathBuf, prefixes: Vec<(&'static str, Access)>) -> HttpServer {
    let prefixes = Arc::new(prefixes);
    let root = Arc::new(root);
    serve(Arc::new(move |req: Request<Bytes>| {
        let prefixes = prefixes.clone();
        let root = root.clone();
        Box::pin(async move {
            let path = req.uri().path().to_string();
            let Some((prefix, access)) = prefixes
                .iter()
                .find(|(p, _)| path.starts_with(&format!("/{p}/")))
            else {
                return respond(StatusCode::NOT_FOUND, "no such prefix");
            };
            let authz = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let ok = match access {
                Access::Public => true,
                Access::Basic(u, p) => {
                    authz == format!("Basic {}", b64(format!("{u}:{p}").as_bytes()))
                }
                Access::Bearer(t) => authz == format!("Bearer {t}"),
            };
            if !ok {
                let mut r = respond(StatusCode::UNAUTHORIZED, "auth required");
                r.headers_mut()
                    .insert("www-authenticate", "Basic realm=\"git\"".parse().unwrap());
                return r;
            }
            let path_info = &path[prefix.len() + 1..];
            let header = |n: &str| {
                req.headers()
                    .get(n)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string()
            };
            let mut cmd = tokio::process::Command::new("git");
            cmd.arg("http-backend")
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("GIT_PROJECT_ROOT", root.as_path())
                .env("GIT_HTTP_EXPORT_ALL", "1")
                .env("REQUEST_METHOD", req.method().as_str())
                .env("PATH_INFO", path_info)
                .env("QUERY_STRING", req.uri().query().unwrap_or(""))
                .env("CONTENT_TYPE", header("content-type"))
                .env("CONTENT_LENGTH", req.body().len().to_string())
                .env("HTTP_CONTENT_ENCODING", header("content-encoding"))
                .env("GIT_PROTOCOL", header("git-protocol"))
                .env("REMOTE_ADDR", "127.0.0.1")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null());
            let mut child = cmd.spawn().expect("git http-backend");
            let mut stdin = child.stdin.take().unwrap();
            let body = req.body().clone();
            let writer = tokio::spawn(async move {
                let _ = stdin.write_all(&body).await;
            });
            let out = child.wait_with_output().await.expect("cgi output");
            let _ = writer.await;
            let data = out.stdout;
            let split = data
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map(|i| (i, 4))
                .or_else(|| data.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
            let Some((i, n)) = split else {
                return respond(StatusCode::INTERNAL_SERVER_ERROR, "bad cgi output");
            };
            let head = String::from_utf8_lossy(&data[..i]).to_string();
            let mut resp = respond(StatusCode::OK, Bytes::copy_from_slice(&data[i + n..]));
            for line in head.lines() {
                let Some((k, v)) = line.split_once(':') else {
                    continue;
                };
                let v = v.trim();
                if k.eq_ignore_ascii_case("status") {
                    let code: u16 = v
                        .split_whitespace()
                        .next()
                        .unwrap_or("200")
                        .parse()
                        .unwrap_or(200);
                    *resp.status_mut() = StatusCode::from_u16(code).unwrap();
                } else if let (Ok(k), Ok(v)) = (
                    hyper::header::HeaderName::from_bytes(k.trim().as_bytes()),
                    hyper::header::HeaderValue::from_str(v),
                ) {
                    resp.headers_mut().insert(k, v);
                }
            }
            resp
        })
    }))
    .await
}

/// Serve files from `root` (GET only), optional basic auth.
pub async fn static_files(root: PathBuf, auth: Option<(&'static str, &'static str)>) -> HttpServer {
    let root = Arc::new(root);
    serve(Arc::new(move |req: Request<Bytes>| {
        let root = root.clone();
        Box::pin(async move {
            if let Some((u, p)) = auth {
                let authz = req
                    .headers()
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if authz != format!("Basic {}", b64(format!("{u}:{p}").as_bytes())) {
                    return respond(StatusCode::UNAUTHORIZED, "auth required");
                }
            }
            let rel = req.uri().path().trim_start_matches('/');
            if rel.contains("..") {
                return respond(StatusCode::BAD_REQUEST, "bad path");
            }
            match std::fs::read(root.join(rel)) {
                Ok(d) => respond(StatusCode::OK, d),
                Err(_) => respond(StatusCode::NOT_FOUND, "not found"),
            }
        })
    }))
    .await
}

pub fn b64(data: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in data.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= c.len() {
                s.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

pub fn spec_json(name: &str, url: &str, r: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "GitRepository",
        "metadata": {"name": name, "namespace": "flux-system"},
        "spec": {"url": url, "interval": "1m", "ref": r}
    })
}

pub const REGISTRY: &str = "/usr/bin/docker-registry";

/// Debian's `docker-registry` on a free loopback port; killed on drop.
pub struct Registry {
    child: Child,
    pub port: u16,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Is the registry binary installed? Panics when it is not and CAPSTAN_REQUIRE_CLUSTER=1.
pub fn registry_available() -> bool {
    if Path::new(REGISTRY).exists() {
        return true;
    }
    if std::env::var("CAPSTAN_REQUIRE_CLUSTER").as_deref() == Ok("1") {
        panic!("{REGISTRY} is missing (apt-get install -y docker-registry) and CAPSTAN_REQUIRE_CLUSTER=1");
    }
    eprintln!("SKIP: {REGISTRY} not installed (apt-get install -y docker-registry)");
    false
}

/// Start a registry storing under `dir`, with optional htpasswd basic auth.
pub fn start_registry(dir: &Path, htpasswd: Option<(&str, &str)>) -> Registry {
    let port = free_port();
    let mut cfg = format!(
        "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
        dir.join("data").display()
    );
    if let Some((u, p)) = htpasswd {
        let hash = bcrypt::hash(p, 4).unwrap();
        std::fs::write(dir.join("htpasswd"), format!("{u}:{hash}\n")).unwrap();
        cfg.push_str(&format!(
            "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
            dir.join("htpasswd").display()
        ));
    }
    std::fs::write(dir.join("config.yml"), cfg).unwrap();
    let child = Command::new(REGISTRY)
        .arg("serve")
        .arg(dir.join("config.yml"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker-registry starts");
    wait_port(port);
    Registry { child, port }
}
