//! GitRepository (source.toolkit.fluxcd.io/v1): spec parsing, credentials,
//! fetch with gitoxide into a per-URL bare mirror, and materialisation of a
//! commit's tree into the cache.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use gix::bstr::ByteSlice;

use crate::constraint::{parse_version, Constraint, Version};
use crate::error::{redact_url, ErrorKind, SourceError};
use crate::sourceignore::{IgnoreRules, IGNORE_FILE};
use crate::store::{self, Artifact, TreeDigest};

/// `spec.ref` of a GitRepository. Precedence (as in Flux):
/// `commit` > `name` > `semver` > `tag` > `branch`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitRef {
    pub branch: Option<String>,
    pub tag: Option<String>,
    pub semver: Option<String>,
    /// A full reference name, e.g. `refs/heads/main`, `refs/pull/1/head`.
    pub name: Option<String>,
    /// A commit SHA; with `branch` the branch is fetched and the commit checked out.
    pub commit: Option<String>,
}

/// The parts of a GitRepository this layer needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitRepositorySpec {
    pub namespace: String,
    pub name: String,
    pub url: String,
    pub reference: GitRef,
    /// `spec.interval` as written (e.g. `1m0s`).
    pub interval: Option<String>,
    /// `spec.secretRef.name`.
    pub secret_ref: Option<String>,
    /// `spec.ignore`: `.sourceignore`-format patterns.
    pub ignore: Option<String>,
    /// `spec.timeout` as written (Flux's default is `60s`).
    pub timeout: Option<String>,
}

fn str_at<'a>(v: &'a serde_json::Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

pub(crate) fn object_id(obj: &serde_json::Value, kind: &str) -> String {
    let ns = str_at(obj, &["metadata", "namespace"]).unwrap_or("default");
    let name = str_at(obj, &["metadata", "name"]).unwrap_or("");
    format!("{kind} {ns}/{name}")
}

impl GitRepositorySpec {
    /// Parse a GitRepository object (JSON form of the manifest).
    pub fn from_object(obj: &serde_json::Value) -> Result<Self, SourceError> {
        let id = object_id(obj, "GitRepository");
        let invalid = |cause: String| {
            SourceError::new(
                ErrorKind::InvalidSpec,
                &id,
                "",
                cause,
                "see https://fluxcd.io/flux/components/source/gitrepositories/",
            )
        };
        if let Some(kind) = str_at(obj, &["kind"]) {
            if kind != "GitRepository" {
                return Err(invalid(format!("expected kind GitRepository, got {kind}")));
            }
        }
        if let Some(api) = str_at(obj, &["apiVersion"]) {
            if !api.starts_with("source.toolkit.fluxcd.io/") {
                return Err(invalid(format!("unexpected apiVersion {api}")));
            }
        }
        let url = str_at(obj, &["spec", "url"])
            .filter(|u| !u.is_empty())
            .ok_or_else(|| invalid("spec.url is required".into()))?;
        let r = |k: &str| {
            str_at(obj, &["spec", "ref", k])
                .filter(|s| !s.is_empty())
                .map(String::from)
        };
        let reference = GitRef {
            branch: r("branch"),
            tag: r("tag"),
            semver: r("semver"),
            name: r("name"),
            commit: r("commit"),
        };
        if let Some(c) = &reference.semver {
            Constraint::parse(c).map_err(|e| invalid(format!("spec.ref.semver: {e}")))?;
        }
        for key in ["interval", "timeout"] {
            if let Some(d) = str_at(obj, &["spec", key]) {
                if crate::duration::parse_go_duration(d).is_none() {
                    return Err(invalid(format!(
                        "spec.{key} {d:?} is not a duration like 1m30s"
                    )));
                }
            }
        }
        if let Some(c) = &reference.commit {
            if c.len() < 4 || !c.chars().all(|ch| ch.is_ascii_hexdigit()) {
                return Err(invalid(format!("spec.ref.commit {c:?} is not a hex SHA")));
            }
        }
        Ok(GitRepositorySpec {
            namespace: str_at(obj, &["metadata", "namespace"])
                .unwrap_or("default")
                .into(),
            name: str_at(obj, &["metadata", "name"]).unwrap_or("").into(),
            url: url.to_string(),
            reference,
            interval: str_at(obj, &["spec", "interval"]).map(String::from),
            secret_ref: str_at(obj, &["spec", "secretRef", "name"]).map(String::from),
            ignore: str_at(obj, &["spec", "ignore"]).map(String::from),
            timeout: str_at(obj, &["spec", "timeout"]).map(String::from),
        })
    }

    /// `spec.interval` parsed (Go duration syntax); `None` if absent or invalid.
    pub fn interval_duration(&self) -> Option<std::time::Duration> {
        self.interval
            .as_deref()
            .and_then(crate::duration::parse_go_duration)
    }

    /// `spec.timeout` parsed, defaulting to Flux's 60 seconds.
    pub fn timeout_duration(&self) -> std::time::Duration {
        self.timeout
            .as_deref()
            .and_then(crate::duration::parse_go_duration)
            .filter(|d| !d.is_zero())
            .unwrap_or(std::time::Duration::from_secs(60))
    }

    /// `GitRepository namespace/name`, used in errors.
    pub fn id(&self) -> String {
        format!("GitRepository {}/{}", self.namespace, self.name)
    }
}

/// Credentials for a Git remote, from a Secret's `data` as Flux documents
/// them: `username`+`password` (HTTP basic), `bearerToken` (HTTP bearer),
/// `identity`+`known_hosts` (SSH; `password` is then the key's passphrase).
/// `Debug` never prints values.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct GitAuth {
    pub username: Option<String>,
    pub password: Option<String>,
    pub bearer_token: Option<String>,
    pub identity: Option<Vec<u8>>,
    pub known_hosts: Option<Vec<u8>>,
}

impl fmt::Debug for GitAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |b: bool| if b { "<redacted>" } else { "<unset>" };
        f.debug_struct("GitAuth")
            .field("username", &self.username)
            .field("password", &set(self.password.is_some()))
            .field("bearer_token", &set(self.bearer_token.is_some()))
            .field("identity", &set(self.identity.is_some()))
            .field("known_hosts", &set(self.known_hosts.is_some()))
            .finish()
    }
}

impl GitAuth {
    /// Build from a Secret's decoded `data`. Unknown keys are ignored.
    pub fn from_secret_data(data: &BTreeMap<String, Vec<u8>>) -> Result<GitAuth, SourceError> {
        let text = |k: &str| -> Result<Option<String>, SourceError> {
            match data.get(k) {
                None => Ok(None),
                Some(v) => String::from_utf8(v.clone()).map(Some).map_err(|_| {
                    SourceError::new(
                        ErrorKind::InvalidAuth,
                        "",
                        "",
                        format!("secret key {k:?} is not valid UTF-8"),
                        "store the value as plain text in the Secret",
                    )
                }),
            }
        };
        Ok(GitAuth {
            username: text("username")?,
            password: text("password")?,
            bearer_token: text("bearerToken")?,
            identity: data.get("identity").cloned(),
            known_hosts: data.get("known_hosts").cloned(),
        })
    }

    fn secrets(&self) -> Vec<String> {
        let mut v: Vec<String> = [&self.password, &self.bearer_token]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        if let Some(id) = &self.identity {
            v.extend(String::from_utf8_lossy(id).lines().map(str::to_string));
        }
        v
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Http,
    Ssh,
    Other,
}

fn scheme_of(url: &str) -> Scheme {
    let l = url.to_ascii_lowercase();
    if l.starts_with("http://") || l.starts_with("https://") {
        Scheme::Http
    } else if l.starts_with("ssh://") || (!l.contains("://") && l.contains('@') && l.contains(':'))
    {
        Scheme::Ssh
    } else {
        Scheme::Other
    }
}

/// Hash of the (credential-free) URL, naming the mirror and artifact folder.
pub(crate) fn url_key(url: &str) -> String {
    store::short_hash(redact_url(url).trim_end_matches('/').as_bytes())
}

struct Fetched {
    commit: gix::ObjectId,
    revision: String,
}

/// Blocking implementation of [`crate::SourceCache::fetch_git`].
pub(crate) fn fetch_git_blocking(
    root: &Path,
    spec: &GitRepositorySpec,
    auth: Option<&GitAuth>,
    insecure_http: bool,
) -> Result<Artifact, SourceError> {
    let id = spec.id();
    let url = spec.url.as_str();
    let secrets = auth.map(GitAuth::secrets).unwrap_or_default();
    let io_err = |what: &str, e: std::io::Error| {
        SourceError::new(
            ErrorKind::Io,
            &id,
            url,
            format!("{what}: {e}"),
            "check the cache directory",
        )
    };
    let base = root.join("git").join(url_key(url));
    std::fs::create_dir_all(&base).map_err(|e| io_err("creating cache folder", e))?;
    let scratch = store::TempDir::new(root).map_err(|e| io_err("creating temp folder", e))?;

    let fetched = fetch_and_resolve(
        &base.join("mirror.git"),
        &scratch,
        spec,
        auth,
        insecure_http,
    )
    .map_err(|e| e.scrub(&secrets))?;

    // artifact folder: <commit> for default ignore rules, <commit>-<hash> otherwise
    let mut dir_name = fetched.commit.to_string();
    if let Some(ign) = &spec.ignore {
        dir_name.push('-');
        dir_name.push_str(&store::short_hash(ign.as_bytes()));
    }
    let dest = base.join(&dir_name);
    if let Some(digest) = store::existing(&dest) {
        tracing::debug!(source = %id, revision = %fetched.revision, "artifact reused");
        return Ok(Artifact {
            revision: fetched.revision,
            path: dest,
            digest,
        });
    }
    let repo =
        open_repo(&base.join("mirror.git"), Vec::new()).map_err(|e| classify(&id, url, e))?;
    let out = scratch.path().join("tree");
    let digest = materialize(&repo, fetched.commit, spec.ignore.as_deref(), &out).map_err(|e| {
        SourceError::new(
            ErrorKind::Other,
            &id,
            url,
            e,
            "the repository content could not be written",
        )
    })?;
    store::publish(&out, &dest, &digest).map_err(|e| io_err("publishing artifact", e))?;
    tracing::info!(source = %id, revision = %fetched.revision, "artifact stored");
    Ok(Artifact {
        revision: fetched.revision,
        path: dest,
        digest,
    })
}

fn open_repo(path: &Path, overrides: Vec<String>) -> Result<gix::Repository, String> {
    if !path.join("HEAD").exists() {
        let _ = std::fs::remove_dir_all(path);
        gix::init_bare(path).map_err(|e| format!("initialising mirror: {}", chain(&e)))?;
    }
    let opts = gix::open::Options::isolated().config_overrides(overrides);
    gix::open_opts(path, opts).map_err(|e| format!("opening mirror: {}", chain(&e)))
}

/// Single-line cause chain of an error.
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let s = err.to_string();
        if !s.is_empty() && parts.last() != Some(&s) {
            parts.push(s);
        }
        cur = err.source();
    }
    parts.join(": ")
}

fn classify(id: &str, url: &str, cause: String) -> SourceError {
    let l = cause.to_ascii_lowercase();
    let (kind, hint) = if l.contains("authentication")
        || l.contains("401")
        || l.contains("403")
        || l.contains("permission denied")
        || l.contains("credentials")
        || l.contains("host key verification failed")
    {
        (
            ErrorKind::AuthFailed,
            "check the username/password, bearerToken or identity/known_hosts in the secretRef Secret",
        )
    } else if l.contains("connection refused")
        || l.contains("could not connect")
        || l.contains("failed to connect")
        || l.contains("connect")
        || l.contains("dns")
        || l.contains("resolve")
        || l.contains("timed out")
        || l.contains("unreachable")
    {
        (
            ErrorKind::Unreachable,
            "check spec.url and that the server is up and reachable from here",
        )
    } else if l.contains("not found")
        || l.contains("404")
        || l.contains("does not appear to be a git repository")
    {
        (
            ErrorKind::NotFound,
            "check spec.url names an existing repository",
        )
    } else {
        (
            ErrorKind::Other,
            "see the cause; retry later if it is transient",
        )
    };
    SourceError::new(kind, id, url, cause, hint)
}

fn fetch_and_resolve(
    mirror: &Path,
    scratch: &store::TempDir,
    spec: &GitRepositorySpec,
    auth: Option<&GitAuth>,
    insecure_http: bool,
) -> Result<Fetched, SourceError> {
    let id = spec.id();
    let url = spec.url.as_str();
    let scheme = scheme_of(url);
    let timeout = spec.timeout_duration();
    let mut overrides = vec![
        "protocol.version=2".to_string(),
        format!("gitoxide.http.connectTimeout={}", timeout.as_millis()),
        // abort transfers slower than 1 byte/s over the whole timeout
        "http.lowSpeedLimit=1".to_string(),
        format!("http.lowSpeedTime={}", timeout.as_secs().max(1)),
    ];
    let mut basic: Option<(String, String)> = None;
    if let Some(a) = auth {
        match scheme {
            Scheme::Http => {
                let has_creds =
                    a.bearer_token.is_some() || a.username.is_some() || a.password.is_some();
                if has_creds && url.to_ascii_lowercase().starts_with("http://") && !insecure_http {
                    return Err(SourceError::new(
                        ErrorKind::InvalidAuth,
                        &id,
                        url,
                        "refusing to send credentials over plain http",
                        "use an https URL (or allow insecure HTTP credentials in the cache settings)",
                    ));
                }
                if let Some(tok) = &a.bearer_token {
                    overrides.push(format!("http.extraHeader=Authorization: Bearer {tok}"));
                } else if let (Some(u), Some(p)) = (&a.username, &a.password) {
                    basic = Some((u.clone(), p.clone()));
                } else if a.username.is_some() || a.password.is_some() {
                    return Err(SourceError::new(
                        ErrorKind::InvalidAuth,
                        &id,
                        url,
                        "the Secret has only one of 'username' and 'password'",
                        "set both keys, or 'bearerToken'",
                    ));
                }
            }
            Scheme::Ssh => {
                let (Some(identity), Some(kh)) = (&a.identity, &a.known_hosts) else {
                    return Err(SourceError::new(
                        ErrorKind::InvalidAuth,
                        &id,
                        url,
                        "an ssh URL needs 'identity' and 'known_hosts' in the Secret",
                        "add the private key as 'identity' and the host keys as 'known_hosts'",
                    ));
                };
                let key = scratch.path().join("identity");
                let hosts = scratch.path().join("known_hosts");
                store::write_private(&key, identity).map_err(|e| {
                    SourceError::new(
                        ErrorKind::Io,
                        &id,
                        url,
                        format!("writing identity: {e}"),
                        "",
                    )
                })?;
                store::write_private(&hosts, kh).map_err(|e| {
                    SourceError::new(
                        ErrorKind::Io,
                        &id,
                        url,
                        format!("writing known_hosts: {e}"),
                        "",
                    )
                })?;
                let wrapper = ssh_wrapper(
                    scratch.path(),
                    Some((&key, &hosts)),
                    a.password.as_deref(),
                    timeout,
                )
                .map_err(|e| {
                    SourceError::new(
                        ErrorKind::Io,
                        &id,
                        url,
                        format!("writing ssh wrapper: {e}"),
                        "",
                    )
                })?;
                overrides.push(format!("core.sshCommand={}", wrapper.display()));
            }
            Scheme::Other => {}
        }
    } else if scheme == Scheme::Ssh {
        // No secret: still refuse unknown hosts and never prompt.
        let wrapper = ssh_wrapper(scratch.path(), None, None, timeout).map_err(|e| {
            SourceError::new(
                ErrorKind::Io,
                &id,
                url,
                format!("writing ssh wrapper: {e}"),
                "",
            )
        })?;
        overrides.push(format!("core.sshCommand={}", wrapper.display()));
    }

    let repo = open_repo(mirror, overrides).map_err(|e| classify(&id, url, e))?;
    // ssh's own diagnostics (host key, publickey) are captured by the wrapper
    let ssh_stderr = scratch.path().join("ssh.stderr");
    let fail = |cause: String| {
        let mut cause = cause;
        if let Ok(t) = std::fs::read_to_string(&ssh_stderr) {
            let lines: Vec<&str> = t.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
            if !lines.is_empty() {
                let tail = &lines[lines.len().saturating_sub(3)..];
                cause = format!("{cause}; ssh: {}", tail.join("; "));
            }
        }
        classify(&id, url, cause)
    };
    let mut refspecs = vec![
        "+refs/heads/*:refs/remotes/origin/*".to_string(),
        "+refs/tags/*:refs/tags/*".to_string(),
        "+HEAD:refs/remotes/origin/HEAD".to_string(),
    ];
    let r = &spec.reference;
    if r.commit.is_none() {
        if let Some(name) = &r.name {
            if !name.starts_with("refs/heads/")
                && !name.starts_with("refs/tags/")
                && name.starts_with("refs/")
            {
                refspecs.push(format!("+{name}:refs/capstan/{}", &name[5..]));
            }
        }
    }
    let remote = repo
        .remote_at(url)
        .map_err(|e| fail(chain(&e)))?
        .with_fetch_tags(gix::remote::fetch::Tags::None)
        .with_refspecs(
            refspecs.iter().map(String::as_str),
            gix::remote::Direction::Fetch,
        )
        .map_err(|e| fail(chain(&e)))?;
    let conn = remote
        .connect(gix::remote::Direction::Fetch)
        .map_err(|e| fail(chain(&e)))?;
    let conn = conn.with_credentials(move |action| match action {
        gix::credentials::helper::Action::Get(ctx) => match &basic {
            Some((u, p)) => Ok(Some(gix::credentials::protocol::Outcome {
                identity: gix::sec::identity::Account {
                    username: u.clone(),
                    password: p.clone(),
                    oauth_refresh_token: None,
                },
                next: ctx.into(),
            })),
            None => Err(gix::error::message(
                "authentication required but the source has no credentials (no secretRef)",
            )
            .into()),
        },
        _ => Ok(None),
    });
    let interrupt = AtomicBool::new(false);
    let outcome = conn
        .prepare_fetch(gix::progress::Discard, Default::default())
        .map_err(|e| fail(chain(&e)))?
        .receive(gix::progress::Discard, &interrupt)
        .map_err(|e| fail(chain(&e)))?;

    // name → advertised object id
    let mut advertised: BTreeMap<String, gix::ObjectId> = BTreeMap::new();
    let mut head_target: Option<String> = None;
    for rr in &outcome.ref_map.remote_refs {
        let (name, target, peeled) = rr.unpack();
        let name = name.to_str_lossy().into_owned();
        if let gix::protocol::handshake::Ref::Symbolic { target: t, .. } = rr {
            if name == "HEAD" {
                head_target = Some(t.to_str_lossy().into_owned());
            }
        }
        if let Some(oid) = peeled.or(target) {
            advertised.insert(name, oid.to_owned());
        }
    }
    let not_found = |what: String| {
        SourceError::new(
            ErrorKind::NotFound,
            &id,
            url,
            what,
            "check spec.ref against the branches and tags of the repository",
        )
    };
    let peel = |oid: gix::ObjectId| -> Result<gix::ObjectId, SourceError> {
        let obj = repo
            .find_object(oid)
            .map_err(|e| not_found(format!("object {oid} not in fetched data: {}", chain(&e))))?;
        let c = obj
            .peel_to_kind(gix::object::Kind::Commit)
            .map_err(|e| not_found(format!("{oid} does not point to a commit: {}", chain(&e))))?;
        Ok(c.id)
    };
    let lookup = |full: &str, shown: &str| -> Result<gix::ObjectId, SourceError> {
        let oid = advertised
            .get(full)
            .copied()
            .ok_or_else(|| not_found(format!("{shown} not found in the remote")))?;
        peel(oid)
    };

    if let Some(commit) = &r.commit {
        let oid = resolve_commit(&repo, commit, &advertised).ok_or_else(|| {
            not_found(format!(
                "commit {commit} not found in the branches and tags of the remote"
            ))
        })?;
        let commit = peel(oid)?;
        if let Some(branch) = &r.branch {
            lookup(
                &format!("refs/heads/{branch}"),
                &format!("branch {branch:?}"),
            )?;
            return Ok(Fetched {
                commit,
                revision: format!("{branch}@sha1:{commit}"),
            });
        }
        return Ok(Fetched {
            commit,
            revision: format!("sha1:{commit}"),
        });
    }
    if let Some(name) = &r.name {
        let oid = lookup(name, &format!("reference {name:?}"))?;
        return Ok(Fetched {
            commit: oid,
            revision: format!("{name}@sha1:{oid}"),
        });
    }
    if let Some(range) = &r.semver {
        let c = Constraint::parse(range).map_err(|e| {
            SourceError::new(
                ErrorKind::InvalidSpec,
                &id,
                url,
                e.to_string(),
                "use a Masterminds semver constraint",
            )
        })?;
        let tags: Vec<(Version, &str)> = advertised
            .keys()
            .filter_map(|n| n.strip_prefix("refs/tags/"))
            .filter_map(|t| parse_version(t).map(|v| (v, t)))
            .collect();
        let best = c
            .best(tags.iter().map(|(v, t)| (v, *t)))
            .ok_or_else(|| not_found(format!("no tag matches semver constraint {range:?}")))?;
        let tag = best.1.to_string();
        let oid = lookup(&format!("refs/tags/{tag}"), &format!("tag {tag:?}"))?;
        return Ok(Fetched {
            commit: oid,
            revision: format!("{tag}@sha1:{oid}"),
        });
    }
    if let Some(tag) = &r.tag {
        let oid = lookup(&format!("refs/tags/{tag}"), &format!("tag {tag:?}"))?;
        return Ok(Fetched {
            commit: oid,
            revision: format!("{tag}@sha1:{oid}"),
        });
    }
    let branch = match &r.branch {
        Some(b) => b.clone(),
        None => head_target
            .as_deref()
            .and_then(|t| t.strip_prefix("refs/heads/"))
            .map(String::from)
            .unwrap_or_else(|| "master".to_string()),
    };
    let oid = lookup(
        &format!("refs/heads/{branch}"),
        &format!("branch {branch:?}"),
    )?;
    Ok(Fetched {
        commit: oid,
        revision: format!("{branch}@sha1:{oid}"),
    })
}

/// A full SHA must exist in the fetched objects; an abbreviated one must be
/// the prefix of an advertised ref's commit (ancestors need the full SHA).
fn resolve_commit(
    repo: &gix::Repository,
    hex: &str,
    advertised: &BTreeMap<String, gix::ObjectId>,
) -> Option<gix::ObjectId> {
    if let Ok(oid) = gix::ObjectId::from_hex(hex.as_bytes()) {
        return repo.find_object(oid).ok().map(|o| o.id);
    }
    let hex = hex.to_ascii_lowercase();
    advertised
        .values()
        .find(|o| o.to_string().starts_with(&hex))
        .copied()
}

fn sh_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', "'\\''"))
}

/// Write `<scratch>/ssh`, a wrapper around the system `ssh` that never
/// prompts, refuses unknown host keys, uses the Secret's identity and
/// known_hosts, and appends its diagnostics to `<scratch>/ssh.stderr`.
/// (Named `ssh` so gitoxide passes ports the OpenSSH way.)
fn ssh_wrapper(
    scratch: &Path,
    key_hosts: Option<(&Path, &Path)>,
    passphrase: Option<&str>,
    timeout: std::time::Duration,
) -> std::io::Result<PathBuf> {
    // With a passphrase, ssh may ask for it, through SSH_ASKPASS only (a script
    // reading a private scratch file); it never asks for server passwords.
    let mut env = String::new();
    let batch = match passphrase {
        Some(p) => {
            let pass_file = scratch.join("passphrase");
            store::write_private(&pass_file, p.as_bytes())?;
            let askpass = scratch.join("askpass");
            std::fs::write(
                &askpass,
                format!("#!/bin/sh\ncat {}\n", sh_quote(&pass_file)),
            )?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o700))?;
            }
            env = format!(
                "SSH_ASKPASS={} SSH_ASKPASS_REQUIRE=force DISPLAY=none ",
                sh_quote(&askpass)
            );
            "-o BatchMode=no -o PreferredAuthentications=publickey -o NumberOfPasswordPrompts=1"
        }
        None => "-o BatchMode=yes",
    };
    let mut opts = format!(
        "{batch} -o StrictHostKeyChecking=yes -o ConnectTimeout={}",
        timeout.as_secs().max(1)
    );
    if let Some((key, hosts)) = key_hosts {
        opts.push_str(&format!(
            " -i {} -o IdentitiesOnly=yes -o UserKnownHostsFile={} -o GlobalKnownHostsFile=/dev/null",
            sh_quote(key),
            sh_quote(hosts)
        ));
    }
    let path = scratch.join("ssh");
    let script = format!(
        "#!/bin/sh\n{env}exec ssh {opts} \"$@\" 2>>{}\n",
        sh_quote(&scratch.join("ssh.stderr"))
    );
    std::fs::write(&path, script)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(path)
}

/// Write the tree of `commit` into `out`, applying ignore rules; return its digest.
fn materialize(
    repo: &gix::Repository,
    commit: gix::ObjectId,
    user_ignore: Option<&str>,
    out: &Path,
) -> Result<String, String> {
    let tree = repo
        .find_commit(commit)
        .map_err(|e| format!("reading commit {commit}: {}", chain(&e)))?
        .tree_id()
        .map_err(|e| format!("reading tree of {commit}: {}", chain(&e)))?
        .detach();
    // pass 1: .sourceignore files anywhere in the tree
    let mut rules = IgnoreRules::default();
    collect_sourceignore(repo, tree, "", &mut rules)?;
    if let Some(text) = user_ignore {
        rules.add("", text);
    }
    let rules = rules.finish();
    std::fs::create_dir_all(out).map_err(|e| e.to_string())?;
    let mut digest = TreeDigest::default();
    write_tree(repo, tree, "", out, &rules, &mut digest)?;
    Ok(digest.finish())
}

fn entries(
    repo: &gix::Repository,
    tree: gix::ObjectId,
) -> Result<Vec<(String, gix::object::tree::EntryMode, gix::ObjectId)>, String> {
    let t = repo
        .find_tree(tree)
        .map_err(|e| format!("reading tree {tree}: {}", chain(&e)))?;
    let decoded = t
        .decode()
        .map_err(|e| format!("decoding tree {tree}: {}", chain(&e)))?;
    let mut v = Vec::new();
    for e in &decoded.entries {
        let name = e
            .filename
            .to_str()
            .map_err(|_| format!("non-UTF-8 file name in tree {tree}"))?;
        if name.is_empty()
            || name == "."
            || name == ".."
            || name.contains('/')
            || name.contains('\0')
        {
            return Err(format!("unsafe file name {name:?} in tree {tree}"));
        }
        v.push((name.to_string(), e.mode, e.oid.to_owned()));
    }
    Ok(v)
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}/{name}")
    }
}

fn collect_sourceignore(
    repo: &gix::Repository,
    tree: gix::ObjectId,
    prefix: &str,
    rules: &mut IgnoreRules,
) -> Result<(), String> {
    for (name, mode, oid) in entries(repo, tree)? {
        if mode.is_tree() {
            if name != ".git" {
                collect_sourceignore(repo, oid, &join(prefix, &name), rules)?;
            }
        } else if name == IGNORE_FILE && mode.is_blob() {
            let blob = repo
                .find_blob(oid)
                .map_err(|e| format!("reading {name}: {}", chain(&e)))?;
            rules.add(prefix, &String::from_utf8_lossy(&blob.data));
        }
    }
    Ok(())
}

fn write_tree(
    repo: &gix::Repository,
    tree: gix::ObjectId,
    prefix: &str,
    out: &Path,
    rules: &IgnoreRules,
    digest: &mut TreeDigest,
) -> Result<(), String> {
    for (name, mode, oid) in entries(repo, tree)? {
        let rel = join(prefix, &name);
        let dest: PathBuf = out.join(&rel);
        if mode.is_tree() {
            if rules.is_ignored(&rel, true) {
                continue;
            }
            std::fs::create_dir_all(&dest).map_err(|e| format!("{rel}: {e}"))?;
            write_tree(repo, oid, &rel, out, rules, digest)?;
        } else if mode.is_commit() {
            // submodule: not fetched (Flux's recurseSubmodules is not supported)
            continue;
        } else {
            if rules.is_ignored(&rel, false) {
                continue;
            }
            let blob = repo
                .find_blob(oid)
                .map_err(|e| format!("reading {rel}: {}", chain(&e)))?;
            if mode.is_link() {
                let target = String::from_utf8_lossy(&blob.data).into_owned();
                // Kept even when it points outside the artifact: the artifact is read
                // through a confined file system (`capstan_vfs::DiskFs`), which refuses
                // such a link when it is read, naming the link and its target, exactly as
                // for a working tree (instead of a "no such file" for a dropped link).
                store::symlink(&target, &dest)
                    .map_err(|e| format!("symlink {rel} -> {target:?}: {e}"))?;
                digest.link(&rel, &target);
            } else {
                let exec = mode.is_executable();
                store::write_file(&dest, &blob.data, exec).map_err(|e| format!("{rel}: {e}"))?;
                digest.file(&rel, exec, &blob.data);
            }
        }
    }
    Ok(())
}
