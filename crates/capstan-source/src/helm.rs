//! HelmRepository (HTTP index) and chart download.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::Deserialize;

use crate::constraint::{parse_version, Constraint, Version};
use crate::error::{ErrorKind, SourceError};
use crate::git::{object_id, url_key};
use crate::store::{self, Artifact};

/// Credentials for HTTP registries/repositories, from a Secret's `data`:
/// `username`+`password` (basic) or `bearerToken`; for OCI also
/// `.dockerconfigjson` (`kubernetes.io/dockerconfigjson` Secrets).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct HttpAuth {
    pub username: Option<String>,
    pub password: Option<String>,
    pub bearer_token: Option<String>,
    /// Raw `.dockerconfigjson`.
    pub docker_config_json: Option<Vec<u8>>,
}

impl fmt::Debug for HttpAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |b: bool| if b { "<redacted>" } else { "<unset>" };
        f.debug_struct("HttpAuth")
            .field("username", &self.username)
            .field("password", &set(self.password.is_some()))
            .field("bearer_token", &set(self.bearer_token.is_some()))
            .field(
                "docker_config_json",
                &set(self.docker_config_json.is_some()),
            )
            .finish()
    }
}

impl HttpAuth {
    /// Build from a Secret's decoded `data`.
    pub fn from_secret_data(data: &BTreeMap<String, Vec<u8>>) -> Result<HttpAuth, SourceError> {
        let text = |k: &str| -> Result<Option<String>, SourceError> {
            data.get(k)
                .map(|v| {
                    String::from_utf8(v.clone()).map_err(|_| {
                        SourceError::new(
                            ErrorKind::InvalidAuth,
                            "",
                            "",
                            format!("secret key {k:?} is not valid UTF-8"),
                            "store the value as plain text in the Secret",
                        )
                    })
                })
                .transpose()
        };
        Ok(HttpAuth {
            username: text("username")?,
            password: text("password")?,
            bearer_token: text("bearerToken")?,
            docker_config_json: data.get(".dockerconfigjson").cloned(),
        })
    }

    pub(crate) fn secrets(&self) -> Vec<String> {
        [&self.password, &self.bearer_token]
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }

    pub(crate) fn apply(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        if let Some(t) = &self.bearer_token {
            req.bearer_auth(t)
        } else if let Some(u) = &self.username {
            req.basic_auth(u, self.password.as_deref())
        } else {
            req
        }
    }
}

/// The parts of a HelmRepository this layer needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HelmRepositorySpec {
    pub namespace: String,
    pub name: String,
    pub url: String,
    pub interval: Option<String>,
    pub secret_ref: Option<String>,
    /// `spec.type`: `default` (HTTP index) or `oci`.
    pub repo_type: String,
    /// `spec.passCredentials`: send credentials to chart URLs on other hosts.
    pub pass_credentials: bool,
}

/// Kept for API stability: a fetched chart is an [`Artifact`] whose
/// `revision` is the chart version and `path` the `.tgz`.
pub type HelmChart = Artifact;

impl HelmRepositorySpec {
    /// Parse a HelmRepository object.
    pub fn from_object(obj: &serde_json::Value) -> Result<Self, SourceError> {
        let id = object_id(obj, "HelmRepository");
        let spec = obj.get("spec");
        let s = |k: &str| {
            spec.and_then(|s| s.get(k))
                .and_then(|v| v.as_str())
                .map(String::from)
        };
        let url = s("url").filter(|u| !u.is_empty()).ok_or_else(|| {
            SourceError::new(
                ErrorKind::InvalidSpec,
                &id,
                "",
                "spec.url is required",
                "see https://fluxcd.io/flux/components/source/helmrepositories/",
            )
        })?;
        let meta = |k: &str| {
            obj.get("metadata")
                .and_then(|m| m.get(k))
                .and_then(|v| v.as_str())
        };
        Ok(HelmRepositorySpec {
            namespace: meta("namespace").unwrap_or("default").into(),
            name: meta("name").unwrap_or("").into(),
            url,
            interval: s("interval"),
            secret_ref: spec
                .and_then(|s| s.pointer("/secretRef/name"))
                .and_then(|v| v.as_str())
                .map(String::from),
            repo_type: s("type").unwrap_or_else(|| "default".into()),
            pass_credentials: spec
                .and_then(|s| s.get("passCredentials"))
                .and_then(|v| v.as_bool())
                .unwrap_or(false),
        })
    }

    /// `HelmRepository namespace/name`.
    pub fn id(&self) -> String {
        format!("HelmRepository {}/{}", self.namespace, self.name)
    }
}

#[derive(Deserialize)]
struct Index {
    #[serde(default)]
    entries: BTreeMap<String, Vec<IndexEntry>>,
}

/// Parse a repository's `index.yaml` (YAML through capstan-yaml, then serde).
fn parse_index(body: &[u8]) -> Result<Index, String> {
    let text = std::str::from_utf8(body).map_err(|_| "not UTF-8 text".to_string())?;
    let docs = capstan_yaml::parse_documents(text, "index.yaml").map_err(|e| e.to_string())?;
    let doc = docs
        .iter()
        .find(|d| !d.is_null())
        .ok_or_else(|| "empty document".to_string())?;
    serde_json::from_value(capstan_yaml::to_json(doc)).map_err(|e| e.to_string())
}

/// A version as text, also when the YAML wrote it as a plain number (`version: 1.0`).
fn version_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => Ok(s),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "version must be a string, found {other}"
        ))),
    }
}

#[derive(Deserialize)]
struct IndexEntry {
    #[serde(deserialize_with = "version_text")]
    version: String,
    #[serde(default)]
    urls: Vec<String>,
    #[serde(default)]
    digest: Option<String>,
}

pub(crate) fn http_error(id: &str, url: &str, what: &str, e: &reqwest::Error) -> SourceError {
    let cause = format!("{what}: {e}");
    if e.is_connect() || e.is_timeout() {
        SourceError::new(
            ErrorKind::Unreachable,
            id,
            url,
            cause,
            "check spec.url and that the server is up and reachable from here",
        )
    } else {
        SourceError::new(
            ErrorKind::Other,
            id,
            url,
            cause,
            "retry later if it is transient",
        )
    }
}

pub(crate) fn status_error(
    id: &str,
    url: &str,
    what: &str,
    status: reqwest::StatusCode,
) -> SourceError {
    let cause = format!("{what}: HTTP {status}");
    match status.as_u16() {
        401 | 403 => SourceError::new(
            ErrorKind::AuthFailed,
            id,
            url,
            cause,
            "check the username/password or bearerToken in the secretRef Secret",
        ),
        404 => SourceError::new(ErrorKind::NotFound, id, url, cause, "check the URL"),
        _ => SourceError::new(
            ErrorKind::Other,
            id,
            url,
            cause,
            "retry later if it is transient",
        ),
    }
}

pub(crate) fn client() -> Result<reqwest::Client, SourceError> {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .connect_timeout(std::time::Duration::from_secs(15))
        .build()
        .map_err(|e| {
            SourceError::new(
                ErrorKind::Other,
                "",
                "",
                format!("building HTTP client: {e}"),
                "",
            )
        })
}

async fn get(
    client: &reqwest::Client,
    id: &str,
    url: &str,
    what: &str,
    auth: Option<&HttpAuth>,
) -> Result<Vec<u8>, SourceError> {
    let mut req = client.get(url);
    if let Some(a) = auth {
        req = a.apply(req);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| http_error(id, url, what, &e))?;
    if !resp.status().is_success() {
        return Err(status_error(id, url, what, resp.status()));
    }
    let body = resp
        .bytes()
        .await
        .map_err(|e| http_error(id, url, what, &e))?;
    Ok(body.to_vec())
}

/// Pick a version: exact match first, then the highest matching the
/// constraint; empty or `*` means the latest stable version.
fn pick<'a>(entries: &'a [IndexEntry], version: &str) -> Result<&'a IndexEntry, String> {
    let version = version.trim();
    if !version.is_empty() && version != "*" {
        if let Some(e) = entries.iter().find(|e| e.version == version) {
            return Ok(e);
        }
    }
    let c = Constraint::parse(if version.is_empty() { "*" } else { version })
        .map_err(|e| e.to_string())?;
    let parsed: Vec<(Version, &IndexEntry)> = entries
        .iter()
        .filter_map(|e| parse_version(&e.version).map(|v| (v, e)))
        .collect();
    c.best(parsed.iter().map(|(v, e)| (v, *e)))
        .map(|(_, e)| e)
        .ok_or_else(|| format!("no chart version matches {version:?}"))
}

pub(crate) async fn fetch_chart(
    root: &Path,
    repo: &HelmRepositorySpec,
    chart: &str,
    version: &str,
    auth: Option<&HttpAuth>,
) -> Result<Artifact, SourceError> {
    let id = repo.id();
    let secrets = auth.map(HttpAuth::secrets).unwrap_or_default();
    fetch_chart_inner(root, repo, chart, version, auth, &id)
        .await
        .map_err(|e| e.scrub(&secrets))
}

async fn fetch_chart_inner(
    root: &Path,
    repo: &HelmRepositorySpec,
    chart: &str,
    version: &str,
    auth: Option<&HttpAuth>,
    id: &str,
) -> Result<Artifact, SourceError> {
    if repo.repo_type == "oci" {
        return Err(SourceError::new(
            ErrorKind::InvalidSpec,
            id,
            &repo.url,
            "OCI Helm repositories are not supported by fetch_helm_chart",
            "use fetch_oci for OCI artifacts",
        ));
    }
    let base = format!("{}/", repo.url.trim_end_matches('/'));
    let base_url = reqwest::Url::parse(&base).map_err(|e| {
        SourceError::new(
            ErrorKind::InvalidSpec,
            id,
            &repo.url,
            format!("invalid URL: {e}"),
            "use an http(s) URL",
        )
    })?;
    let index_url = base_url.join("index.yaml").map_err(|e| {
        SourceError::new(
            ErrorKind::InvalidSpec,
            id,
            &repo.url,
            format!("invalid URL: {e}"),
            "",
        )
    })?;
    let client = client()?;
    let body = get(
        &client,
        id,
        index_url.as_str(),
        "downloading index.yaml",
        auth,
    )
    .await?;
    let index = parse_index(&body).map_err(|e| {
        SourceError::new(
            ErrorKind::Other,
            id,
            index_url.as_str(),
            format!("parsing index.yaml: {e}"),
            "is spec.url a Helm repository?",
        )
    })?;
    let entries = index.entries.get(chart).ok_or_else(|| {
        SourceError::new(
            ErrorKind::NotFound,
            id,
            &repo.url,
            format!("chart {chart:?} not in index.yaml"),
            "check the chart name",
        )
    })?;
    let entry = pick(entries, version).map_err(|e| {
        SourceError::new(
            ErrorKind::NotFound,
            id,
            &repo.url,
            format!("chart {chart:?}: {e}"),
            "check the version constraint against the published versions",
        )
    })?;
    let chart_url = entry.urls.first().ok_or_else(|| {
        SourceError::new(
            ErrorKind::Other,
            id,
            &repo.url,
            format!("chart {chart:?} {} has no URL", entry.version),
            "",
        )
    })?;
    let chart_url = base_url.join(chart_url).map_err(|e| {
        SourceError::new(
            ErrorKind::Other,
            id,
            &repo.url,
            format!("invalid chart URL {chart_url:?}: {e}"),
            "",
        )
    })?;

    let dir = root.join("helm").join(url_key(&repo.url));
    let io_err = |e: std::io::Error| {
        SourceError::new(
            ErrorKind::Io,
            id,
            &repo.url,
            format!("cache: {e}"),
            "check the cache directory",
        )
    };
    std::fs::create_dir_all(&dir).map_err(io_err)?;
    let want = entry
        .digest
        .as_deref()
        .map(|d| d.trim_start_matches("sha256:").to_ascii_lowercase());
    let safe_name: String = format!("{chart}-{}", entry.version)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.+".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if let Some(hexd) = &want {
        let dest = dir.join(format!("{safe_name}-{}.tgz", &hexd[..hexd.len().min(16)]));
        if let Some(d) = store::existing(&dest) {
            return Ok(Artifact {
                revision: entry.version.clone(),
                path: dest,
                digest: d,
            });
        }
    }
    let same_host =
        chart_url.host_str() == base_url.host_str() && chart_url.port() == base_url.port();
    let chart_auth = if same_host || repo.pass_credentials {
        auth
    } else {
        None
    };
    let data = get(
        &client,
        id,
        chart_url.as_str(),
        "downloading chart",
        chart_auth,
    )
    .await?;
    let digest = store::sha256_digest(&data);
    if let Some(hexd) = &want {
        if digest != format!("sha256:{hexd}") {
            return Err(SourceError::new(
                ErrorKind::Other,
                id,
                chart_url.as_str(),
                format!("chart digest mismatch: index says sha256:{hexd}, got {digest}"),
                "the repository is inconsistent or the download was tampered with",
            ));
        }
    }
    let hexd = digest.trim_start_matches("sha256:");
    let dest = dir.join(format!("{safe_name}-{}.tgz", &hexd[..16]));
    if store::existing(&dest).is_none() {
        let tmp = store::TempDir::new(root).map_err(io_err)?;
        let f = tmp.path().join("chart.tgz");
        std::fs::write(&f, &data).map_err(io_err)?;
        store::publish(&f, &dest, &digest).map_err(io_err)?;
    }
    Ok(Artifact {
        revision: entry.version.clone(),
        path: dest,
        digest,
    })
}

#[cfg(test)]
mod index_tests {
    use super::*;

    #[test]
    fn parses_an_index() {
        let idx = parse_index(
            b"apiVersion: v1\nentries:\n  web:\n  - name: web\n    version: 1.2.3\n    digest: abc\n    urls:\n    - web-1.2.3.tgz\n  old:\n  - version: 1.0\n    urls: []\ngenerated: 2024-01-01T00:00:00Z\n",
        )
        .unwrap();
        assert_eq!(idx.entries["web"][0].version, "1.2.3");
        assert_eq!(idx.entries["web"][0].urls, ["web-1.2.3.tgz"]);
        assert_eq!(idx.entries["web"][0].digest.as_deref(), Some("abc"));
        assert_eq!(idx.entries["old"][0].version, "1.0");
        assert!(parse_index(b"entries: [").is_err());
    }
}
