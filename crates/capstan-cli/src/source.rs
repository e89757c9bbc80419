//! `--source URL --rev REV`: render from a Git repository fetched read-only
//! into the local source cache (capstan-source), instead of a working tree.
//!
//! Credentials come from the environment and are never printed:
//! `CAPSTAN_GIT_TOKEN` (HTTP bearer) or `CAPSTAN_GIT_USERNAME` +
//! `CAPSTAN_GIT_PASSWORD` (HTTP basic).

use std::path::{Path, PathBuf};

use capstan_source::{
    redact_url, Artifact, ErrorKind, GitAuth, GitRepositorySpec, SourceCache, SourceError,
};
use clap::Args;
use serde_json::json;

/// Environment variable holding an HTTP bearer token for `--source`.
pub const ENV_TOKEN: &str = "CAPSTAN_GIT_TOKEN";
/// Environment variable holding the HTTP basic user name for `--source`.
pub const ENV_USERNAME: &str = "CAPSTAN_GIT_USERNAME";
/// Environment variable holding the HTTP basic password for `--source`.
pub const ENV_PASSWORD: &str = "CAPSTAN_GIT_PASSWORD";

#[derive(Args, Clone, Debug, Default)]
pub struct SourceArgs {
    /// Render from this Git repository (URL or local path) instead of a working tree.
    /// Credentials: $CAPSTAN_GIT_TOKEN (bearer) or $CAPSTAN_GIT_USERNAME/$CAPSTAN_GIT_PASSWORD.
    #[arg(long, value_name = "URL|PATH")]
    pub source: Option<String>,
    /// With --source: a branch, tag, commit SHA or full ref name (refs/...);
    /// default (or HEAD): the remote's HEAD branch.
    #[arg(long, requires = "source", conflicts_with = "semver")]
    pub rev: Option<String>,
    /// With --source: the highest tag matching this semver range (e.g. ">=1.0.0 <2.0.0").
    #[arg(long, requires = "source")]
    pub semver: Option<String>,
    /// Where fetched sources are cached (default: $XDG_CACHE_HOME/capstan or ~/.cache/capstan).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Allow sending credentials over plain http:// (trusted networks and tests only).
    #[arg(long)]
    pub allow_insecure_http: bool,
}

/// How `--rev` is tried against the remote, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefTry {
    Branch(String),
    Tag(String),
    Commit(String),
    Name(String),
    Semver(String),
    Head,
}

impl RefTry {
    fn json(&self) -> serde_json::Value {
        match self {
            RefTry::Branch(b) => json!({ "branch": b }),
            RefTry::Tag(t) => json!({ "tag": t }),
            RefTry::Commit(c) => json!({ "commit": c }),
            RefTry::Name(n) => json!({ "name": n }),
            RefTry::Semver(s) => json!({ "semver": s }),
            RefTry::Head => json!({}),
        }
    }
}

/// The references `--rev`/`--semver` stand for, most likely first: a hex
/// string of 7 to 40 digits is tried as a commit, then as a branch and a tag;
/// `refs/...` is a full reference name; anything else is a branch, then a tag.
pub fn ref_candidates(rev: Option<&str>, semver: Option<&str>) -> Vec<RefTry> {
    if let Some(s) = semver {
        return vec![RefTry::Semver(s.to_string())];
    }
    let Some(rev) = rev.map(str::trim).filter(|r| !r.is_empty()) else {
        return vec![RefTry::Head];
    };
    if rev == "HEAD" {
        return vec![RefTry::Head];
    }
    if rev.starts_with("refs/") {
        return vec![RefTry::Name(rev.to_string())];
    }
    let mut v = Vec::new();
    if (7..=40).contains(&rev.len()) && rev.chars().all(|c| c.is_ascii_hexdigit()) {
        v.push(RefTry::Commit(rev.to_string()));
    }
    v.push(RefTry::Branch(rev.to_string()));
    v.push(RefTry::Tag(rev.to_string()));
    v
}

/// `$XDG_CACHE_HOME/capstan`, else `$HOME/.cache/capstan`.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|x| !x.is_empty()) {
        return Some(PathBuf::from(x).join("capstan"));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".cache").join("capstan"))
}

/// A local path is made absolute (the cache is keyed by URL); URLs and
/// scp-like `user@host:path` are kept as written.
fn normalise_url(src: &str) -> String {
    if src.contains("://") {
        return src.to_string();
    }
    let p = Path::new(src);
    if p.exists() {
        if let Ok(abs) = p.canonicalize() {
            return abs.to_string_lossy().into_owned();
        }
    }
    src.to_string()
}

/// The repository's name in messages: the URL's last path segment without `.git`.
fn repo_name(url: &str) -> String {
    let base = url
        .trim_end_matches('/')
        .rsplit(['/', ':'])
        .next()
        .unwrap_or("source");
    let base = base.strip_suffix(".git").unwrap_or(base);
    if base.is_empty() {
        "source".into()
    } else {
        base.to_string()
    }
}

fn auth_from_env() -> Option<GitAuth> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let auth = GitAuth {
        username: var(ENV_USERNAME),
        password: var(ENV_PASSWORD),
        bearer_token: var(ENV_TOKEN),
        ..Default::default()
    };
    if auth == GitAuth::default() {
        None
    } else {
        Some(auth)
    }
}

fn explain(e: SourceError) -> String {
    let hint = match e.kind {
        ErrorKind::AuthFailed | ErrorKind::InvalidAuth => format!(
            "\n  = hint: set ${ENV_TOKEN} (bearer) or ${ENV_USERNAME} and ${ENV_PASSWORD} (basic auth){}",
            if e.kind == ErrorKind::InvalidAuth {
                "; for plain http:// add --allow-insecure-http"
            } else {
                ""
            }
        ),
        ErrorKind::NotFound => {
            "\n  = hint: --rev takes a branch, a tag, a commit SHA or refs/...".into()
        }
        _ => String::new(),
    };
    format!("{e}{hint}")
}

impl SourceArgs {
    /// Fetch the source (when `--source` is given) and return the fetched tree.
    pub async fn fetch(&self) -> Result<Option<Artifact>, String> {
        self.fetch_with(false).await
    }

    /// [`SourceArgs::fetch`]; `offline`: from the cache only (`--offline`).
    pub async fn fetch_with(&self, offline: bool) -> Result<Option<Artifact>, String> {
        let Some(src) = &self.source else {
            return Ok(None);
        };
        let url = normalise_url(src);
        let cache_dir = match &self.cache_dir {
            Some(d) => d.clone(),
            None => default_cache_dir().ok_or(
                "no cache directory: set --cache-dir, $XDG_CACHE_HOME or $HOME".to_string(),
            )?,
        };
        let cache = SourceCache::new(cache_dir)
            .allow_insecure_http_credentials(self.allow_insecure_http)
            .offline(offline);
        let auth = auth_from_env();
        let name = repo_name(&url);
        let candidates = ref_candidates(self.rev.as_deref(), self.semver.as_deref());
        let mut first_err = None;
        for c in &candidates {
            let obj = json!({
                "apiVersion": "source.toolkit.fluxcd.io/v1",
                "kind": "GitRepository",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"url": url, "ref": c.json()},
            });
            let spec = GitRepositorySpec::from_object(&obj).map_err(explain)?;
            match cache.fetch_git(&spec, auth.as_ref()).await {
                Ok(a) => {
                    eprintln!("source {} at {}", redact_url(&url), a.revision);
                    return Ok(Some(a));
                }
                Err(e) if matches!(e.kind, ErrorKind::NotFound | ErrorKind::NotCached) => {
                    first_err.get_or_insert(e);
                }
                Err(e) => return Err(explain(e)),
            }
        }
        let e = first_err.expect("at least one candidate was tried");
        if candidates.len() > 1 && e.kind == ErrorKind::NotFound {
            let rev = self.rev.as_deref().unwrap_or_default();
            return Err(format!(
                "source {name}: no branch, tag or commit named {rev:?} in {}\n  = hint: --rev takes a branch, a tag, a commit SHA or refs/...",
                redact_url(&url)
            ));
        }
        Err(explain(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rev_candidates() {
        assert_eq!(ref_candidates(None, None), vec![RefTry::Head]);
        assert_eq!(ref_candidates(Some("HEAD"), None), vec![RefTry::Head]);
        assert_eq!(
            ref_candidates(Some("main"), None),
            vec![RefTry::Branch("main".into()), RefTry::Tag("main".into())]
        );
        assert_eq!(
            ref_candidates(Some("abcdef1"), None),
            vec![
                RefTry::Commit("abcdef1".into()),
                RefTry::Branch("abcdef1".into()),
                RefTry::Tag("abcdef1".into())
            ]
        );
        assert_eq!(
            ref_candidates(Some("refs/pull/1/head"), None),
            vec![RefTry::Name("refs/pull/1/head".into())]
        );
        assert_eq!(
            ref_candidates(None, Some(">=1.0.0")),
            vec![RefTry::Semver(">=1.0.0".into())]
        );
        // too short to be a commit
        assert_eq!(ref_candidates(Some("beef"), None).len(), 2);
    }

    #[test]
    fn names() {
        assert_eq!(repo_name("https://h/org/fleet.git"), "fleet");
        assert_eq!(repo_name("git@github.com:org/fleet"), "fleet");
        assert_eq!(repo_name("/srv/fleet/"), "fleet");
    }
}
