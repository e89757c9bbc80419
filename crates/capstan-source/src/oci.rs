//! OCIRepository: Flux artifacts in OCI registries.

use std::path::Path;

use crate::constraint::{parse_version, Constraint, Version};
use crate::error::{ErrorKind, SourceError};
use crate::git::{object_id, url_key};
use crate::helm::HttpAuth;
use crate::sourceignore::IgnoreRules;
use crate::store::{self, Artifact};

/// `spec.ref` of an OCIRepository. Precedence: `digest` > `semver` > `tag`;
/// none means tag `latest`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OciRef {
    pub tag: Option<String>,
    pub semver: Option<String>,
    pub digest: Option<String>,
}

/// The parts of an OCIRepository this layer needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OciRepositorySpec {
    pub namespace: String,
    pub name: String,
    /// `oci://host[:port]/repository`.
    pub url: String,
    pub reference: OciRef,
    pub interval: Option<String>,
    pub secret_ref: Option<String>,
    /// `spec.insecure`: plain HTTP.
    pub insecure: bool,
    pub ignore: Option<String>,
}

impl OciRepositorySpec {
    /// Parse an OCIRepository object.
    pub fn from_object(obj: &serde_json::Value) -> Result<Self, SourceError> {
        let id = object_id(obj, "OCIRepository");
        let spec = obj.get("spec");
        let s = |p: &str| {
            spec.and_then(|s| s.pointer(p))
                .and_then(|v| v.as_str())
                .filter(|v| !v.is_empty())
                .map(String::from)
        };
        let url = s("/url").ok_or_else(|| {
            SourceError::new(
                ErrorKind::InvalidSpec,
                &id,
                "",
                "spec.url is required",
                "see https://fluxcd.io/flux/components/source/ocirepositories/",
            )
        })?;
        if !url.starts_with("oci://") {
            return Err(SourceError::new(
                ErrorKind::InvalidSpec,
                &id,
                &url,
                "spec.url must start with oci://",
                "",
            ));
        }
        let meta = |k: &str| {
            obj.get("metadata")
                .and_then(|m| m.get(k))
                .and_then(|v| v.as_str())
        };
        Ok(OciRepositorySpec {
            namespace: meta("namespace").unwrap_or("default").into(),
            name: meta("name").unwrap_or("").into(),
            url,
            reference: OciRef {
                tag: s("/ref/tag"),
                semver: s("/ref/semver"),
                digest: s("/ref/digest"),
            },
            interval: s("/interval"),
            secret_ref: s("/secretRef/name"),
            insecure: spec
                .and_then(|s| s.get("insecure"))
                .and_then(|v| v.as_bool())
                .unwrap_or(false),
            ignore: s("/ignore"),
        })
    }

    /// `OCIRepository namespace/name`.
    pub fn id(&self) -> String {
        format!("OCIRepository {}/{}", self.namespace, self.name)
    }
}

/// Flux's artifact layer media type.
pub const FLUX_CONTENT_MEDIA_TYPE: &str = "application/vnd.cncf.flux.content.v1.tar+gzip";

fn registry_auth(registry: &str, auth: Option<&HttpAuth>) -> oci_client::secrets::RegistryAuth {
    use oci_client::secrets::RegistryAuth;
    let Some(a) = auth else {
        return RegistryAuth::Anonymous;
    };
    if let Some(t) = &a.bearer_token {
        return RegistryAuth::Bearer(t.clone());
    }
    if let (Some(u), Some(p)) = (&a.username, &a.password) {
        return RegistryAuth::Basic(u.clone(), p.clone());
    }
    if let Some(cfg) = &a.docker_config_json {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(cfg) {
            if let Some(auths) = v.get("auths").and_then(|a| a.as_object()) {
                for (host, entry) in auths {
                    let h = host
                        .trim_start_matches("https://")
                        .trim_start_matches("http://");
                    let h = h.split('/').next().unwrap_or(h);
                    if h != registry {
                        continue;
                    }
                    let u = entry.get("username").and_then(|v| v.as_str());
                    let p = entry.get("password").and_then(|v| v.as_str());
                    if let (Some(u), Some(p)) = (u, p) {
                        return RegistryAuth::Basic(u.into(), p.into());
                    }
                    if let Some(decoded) = entry
                        .get("auth")
                        .and_then(|v| v.as_str())
                        .and_then(b64_decode)
                    {
                        if let Some((u, p)) = String::from_utf8_lossy(&decoded).split_once(':') {
                            return RegistryAuth::Basic(u.into(), p.into());
                        }
                    }
                }
            }
        }
    }
    RegistryAuth::Anonymous
}

fn b64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            b'\n' | b'\r' | b' ' => continue,
            _ => return None,
        } as u32;
        buf = buf << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    Some(out)
}

fn oci_error(
    id: &str,
    url: &str,
    what: &str,
    e: &oci_client::errors::OciDistributionError,
) -> SourceError {
    use oci_client::errors::OciDistributionError as E;
    let cause = format!("{what}: {}", crate::git::chain(e));
    let l = cause.to_ascii_lowercase();
    // a connection failure anywhere in the chain means unreachable
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut connect = false;
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<reqwest::Error>() {
            connect |= r.is_connect() || r.is_timeout();
        }
        cur = err.source();
    }
    if connect {
        return SourceError::new(
            ErrorKind::Unreachable,
            id,
            url,
            cause,
            "check spec.url and that the registry is reachable; set spec.insecure for plain HTTP",
        );
    }
    let (kind, hint) = match e {
        E::AuthenticationFailure(_) | E::UnauthorizedError { .. } => (
            ErrorKind::AuthFailed,
            "check the credentials in the secretRef Secret",
        ),
        E::ImageManifestNotFoundError(_) => (ErrorKind::NotFound, "check spec.url and spec.ref"),
        _ if l.contains("401") || l.contains("unauthorized") || l.contains("denied") => (
            ErrorKind::AuthFailed,
            "check the credentials in the secretRef Secret",
        ),
        _ if l.contains("connect") || l.contains("dns") || l.contains("timed out") => (
            ErrorKind::Unreachable,
            "check spec.url and that the registry is reachable; set spec.insecure for plain HTTP",
        ),
        _ if l.contains("not found") || l.contains("404") || l.contains("unknown") => {
            (ErrorKind::NotFound, "check spec.url and spec.ref")
        }
        _ => (ErrorKind::Other, "retry later if it is transient"),
    };
    SourceError::new(kind, id, url, cause, hint)
}

pub(crate) async fn fetch(
    root: &Path,
    spec: &OciRepositorySpec,
    auth: Option<&HttpAuth>,
) -> Result<Artifact, SourceError> {
    let secrets = auth.map(HttpAuth::secrets).unwrap_or_default();
    fetch_inner(root, spec, auth)
        .await
        .map_err(|e| e.scrub(&secrets))
}

async fn fetch_inner(
    root: &Path,
    spec: &OciRepositorySpec,
    auth: Option<&HttpAuth>,
) -> Result<Artifact, SourceError> {
    use oci_client::{
        client::ClientConfig, client::ClientProtocol, manifest::OciManifest, Client, Reference,
    };
    let id = spec.id();
    let url = spec.url.as_str();
    let invalid = |c: String| {
        SourceError::new(
            ErrorKind::InvalidSpec,
            &id,
            url,
            c,
            "spec.url is oci://<registry>/<repository>",
        )
    };
    let repo_path = url.trim_start_matches("oci://").trim_end_matches('/');
    let (registry, repository) = repo_path
        .split_once('/')
        .ok_or_else(|| invalid("missing repository path".into()))?;
    let config = ClientConfig {
        protocol: if spec.insecure {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        },
        ..Default::default()
    };
    let client = Client::new(config);
    let rauth = registry_auth(registry, auth);
    let r = &spec.reference;

    let (reference, tag) = if let Some(d) = &r.digest {
        (
            Reference::with_digest(registry.into(), repository.into(), d.clone()),
            None,
        )
    } else if let Some(range) = &r.semver {
        let c = Constraint::parse(range).map_err(|e| invalid(e.to_string()))?;
        let image = Reference::with_tag(registry.into(), repository.into(), "latest".into());
        let tags = client
            .list_tags(&image, &rauth, None, None)
            .await
            .map_err(|e| oci_error(&id, url, "listing tags", &e))?;
        let parsed: Vec<(Version, String)> = tags
            .tags
            .iter()
            .filter_map(|t| parse_version(t).map(|v| (v, t.clone())))
            .collect();
        let (_, tag) = c
            .best(parsed.iter().map(|(v, t)| (v, t.clone())))
            .ok_or_else(|| {
                SourceError::new(
                    ErrorKind::NotFound,
                    &id,
                    url,
                    format!("no tag matches semver constraint {range:?}"),
                    "check spec.ref.semver against the pushed tags",
                )
            })?;
        (
            Reference::with_tag(registry.into(), repository.into(), tag.clone()),
            Some(tag),
        )
    } else {
        let tag = r.tag.clone().unwrap_or_else(|| "latest".into());
        (
            Reference::with_tag(registry.into(), repository.into(), tag.clone()),
            Some(tag),
        )
    };

    let (manifest, digest) = client
        .pull_manifest(&reference, &rauth)
        .await
        .map_err(|e| oci_error(&id, url, &format!("pulling manifest {reference}"), &e))?;
    let OciManifest::Image(manifest) = manifest else {
        return Err(SourceError::new(
            ErrorKind::Other,
            &id,
            url,
            "the reference is an image index, not a Flux artifact",
            "push the artifact with `flux push artifact`",
        ));
    };
    let revision = match &tag {
        Some(t) => format!("{t}@{digest}"),
        None => digest.clone(),
    };

    let hexd = digest
        .split_once(':')
        .map(|(_, h)| h)
        .unwrap_or(&digest)
        .to_string();
    let mut dir_name = hexd.clone();
    if let Some(ign) = &spec.ignore {
        dir_name.push('-');
        dir_name.push_str(&store::short_hash(ign.as_bytes()));
    }
    let dest = root.join("oci").join(url_key(url)).join(dir_name);
    if let Some(d) = store::existing(&dest) {
        return Ok(Artifact {
            revision,
            path: dest,
            digest: d,
        });
    }

    let layer = manifest
        .layers
        .iter()
        .find(|l| l.media_type == FLUX_CONTENT_MEDIA_TYPE)
        .or_else(|| {
            if manifest.layers.len() == 1 && manifest.layers[0].media_type.ends_with("tar+gzip") {
                manifest.layers.first()
            } else {
                None
            }
        })
        .ok_or_else(|| {
            SourceError::new(
                ErrorKind::NotFound,
                &id,
                url,
                format!("no layer of media type {FLUX_CONTENT_MEDIA_TYPE}"),
                "is this a Flux artifact (`flux push artifact`)?",
            )
        })?;
    let mut blob: Vec<u8> = Vec::new();
    client
        .pull_blob(&reference, layer, &mut blob)
        .await
        .map_err(|e| oci_error(&id, url, "pulling layer", &e))?;
    let layer_digest = store::sha256_digest(&blob);
    if layer.digest.starts_with("sha256:") && layer.digest != layer_digest {
        return Err(SourceError::new(
            ErrorKind::Other,
            &id,
            url,
            format!("layer digest mismatch: {} != {layer_digest}", layer.digest),
            "retry; the registry returned corrupt data",
        ));
    }
    let io_err = |e: std::io::Error| {
        SourceError::new(
            ErrorKind::Io,
            &id,
            url,
            format!("cache: {e}"),
            "check the cache directory",
        )
    };
    std::fs::create_dir_all(dest.parent().unwrap_or(root)).map_err(io_err)?;
    let tmp = store::TempDir::new(root).map_err(io_err)?;
    let out = tmp.path().join("tree");
    let mut rules = IgnoreRules::default();
    if let Some(ign) = &spec.ignore {
        rules.add("", ign);
    }
    let rules = rules.finish();
    extract_tgz(&blob, &out, &rules).map_err(|e| {
        SourceError::new(
            ErrorKind::Other,
            &id,
            url,
            format!("extracting layer: {e}"),
            "the artifact is not a valid tar+gzip",
        )
    })?;
    store::publish(&out, &dest, &layer_digest).map_err(io_err)?;
    Ok(Artifact {
        revision,
        path: dest,
        digest: layer_digest,
    })
}

/// Extract a tar+gzip into `out`, refusing entries that escape it.
///
/// Symlinks are created last, after every file and directory is written, so that no entry
/// is ever written through a link (a link `a -> /etc` followed by a file `a/x` would
/// otherwise write outside `out`). Links are kept whatever their target: the artifact is
/// read through a confined file system (`capstan_vfs::DiskFs`), which refuses a link that
/// leads outside it when it is read, naming the link and its target.
pub(crate) fn extract_tgz(data: &[u8], out: &Path, rules: &IgnoreRules) -> Result<(), String> {
    std::fs::create_dir_all(out).map_err(|e| e.to_string())?;
    let mut links: Vec<(String, String)> = Vec::new();
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(data));
    for entry in ar.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| e.to_string())?;
        let path = entry.path().map_err(|e| e.to_string())?.into_owned();
        let mut parts = Vec::new();
        for c in path.components() {
            match c {
                std::path::Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
                std::path::Component::CurDir => {}
                _ => return Err(format!("unsafe path {}", path.display())),
            }
        }
        if parts.is_empty() {
            continue;
        }
        let rel = parts.join("/");
        let kind = entry.header().entry_type();
        let is_dir = kind.is_dir();
        // skip if the path or any parent directory is ignored
        let mut ignored = false;
        for i in 1..=parts.len() {
            let p = parts[..i].join("/");
            if rules.is_ignored(&p, i < parts.len() || is_dir) {
                ignored = true;
                break;
            }
        }
        if ignored {
            continue;
        }
        let dest = out.join(&rel);
        if is_dir {
            std::fs::create_dir_all(&dest).map_err(|e| e.to_string())?;
        } else if kind.is_file() {
            let mut buf = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut buf).map_err(|e| e.to_string())?;
            let exec = entry
                .header()
                .mode()
                .map(|m| m & 0o111 != 0)
                .unwrap_or(false);
            store::write_file(&dest, &buf, exec).map_err(|e| e.to_string())?;
        } else if kind.is_symlink() {
            let target = entry
                .link_name()
                .map_err(|e| e.to_string())?
                .map(|t| t.to_string_lossy().into_owned())
                .unwrap_or_default();
            links.push((rel, target));
        }
    }
    for (rel, target) in links {
        // a link beneath another link would be created wherever that one points
        let mut dir = out.to_path_buf();
        let parts: Vec<&str> = rel.split('/').collect();
        for part in &parts[..parts.len() - 1] {
            dir.push(part);
            match std::fs::symlink_metadata(&dir) {
                Ok(md) if md.file_type().is_symlink() => {
                    return Err(format!(
                        "unsafe path {rel}: a symlink beneath the symlink {}",
                        dir.strip_prefix(out).unwrap_or(&dir).display()
                    ))
                }
                Ok(_) => {}
                Err(_) => std::fs::create_dir(&dir).map_err(|e| format!("{rel}: {e}"))?,
            }
        }
        store::symlink(&target, &out.join(&rel))
            .map_err(|e| format!("symlink {rel} -> {target:?}: {e}"))?;
    }
    Ok(())
}

/// Tags per page when listing an image repository's tags.
pub const TAG_PAGE_SIZE: usize = 1000;
/// At most this many pages (a registry that never stops paging is an error).
const MAX_TAG_PAGES: usize = 10_000;

fn split_image(image: &str) -> Option<(&str, &str)> {
    let image = image.trim_start_matches("oci://").trim_end_matches('/');
    let (registry, repository) = image.split_once('/')?;
    if registry.is_empty() || repository.is_empty() {
        return None;
    }
    Some((registry, repository))
}

fn image_client(insecure: bool) -> oci_client::Client {
    use oci_client::client::{ClientConfig, ClientProtocol};
    oci_client::Client::new(ClientConfig {
        protocol: if insecure {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        },
        ..Default::default()
    })
}

/// Every tag of an image repository (`registry/repository`, as an ImageRepository's
/// `spec.image` with an explicit registry), through the distribution API's
/// `/v2/<name>/tags/list`, page after page (`n`/`last`), with the credentials
/// (basic, bearer token, or a `.dockerconfigjson` entry for the registry; the
/// registry's token service is followed). `id` names the object in errors.
pub async fn list_image_tags(
    id: &str,
    image: &str,
    insecure: bool,
    auth: Option<&HttpAuth>,
    page_size: usize,
) -> Result<Vec<String>, SourceError> {
    let secrets = auth.map(HttpAuth::secrets).unwrap_or_default();
    list_image_tags_inner(id, image, insecure, auth, page_size.max(1))
        .await
        .map_err(|e| e.scrub(&secrets))
}

async fn list_image_tags_inner(
    id: &str,
    image: &str,
    insecure: bool,
    auth: Option<&HttpAuth>,
    page_size: usize,
) -> Result<Vec<String>, SourceError> {
    let (registry, repository) = split_image(image).ok_or_else(|| {
        SourceError::new(
            ErrorKind::InvalidSpec,
            id,
            image,
            "spec.image has no registry host",
            "write spec.image as <registry>/<repository>",
        )
    })?;
    let client = image_client(insecure);
    let rauth = registry_auth(registry, auth);
    let reference =
        oci_client::Reference::with_tag(registry.into(), repository.into(), "latest".into());
    let mut tags: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut last: Option<String> = None;
    for _ in 0..MAX_TAG_PAGES {
        let page = client
            .list_tags(&reference, &rauth, Some(page_size), last.as_deref())
            .await
            .map_err(|e| oci_error(id, image, "listing tags", &e))?;
        let n = page.tags.len();
        // A registry that ignores `n`/`last` answers the whole list again: only tags
        // not seen before count, and a page without any ends the listing.
        let mut fresh = 0;
        for t in page.tags {
            if seen.insert(t.clone()) {
                last = Some(t.clone());
                tags.push(t);
                fresh += 1;
            }
        }
        if n < page_size || fresh == 0 {
            return Ok(tags);
        }
    }
    Err(SourceError::new(
        ErrorKind::Other,
        id,
        image,
        format!("the registry kept paging after {MAX_TAG_PAGES} pages of tags"),
        "",
    ))
}

/// The digest of `image:tag` (a manifest HEAD, as Flux's digest reflection does).
pub async fn image_tag_digest(
    id: &str,
    image: &str,
    tag: &str,
    insecure: bool,
    auth: Option<&HttpAuth>,
) -> Result<String, SourceError> {
    let secrets = auth.map(HttpAuth::secrets).unwrap_or_default();
    let (registry, repository) = split_image(image).ok_or_else(|| {
        SourceError::new(
            ErrorKind::InvalidSpec,
            id,
            image,
            "spec.image has no registry host",
            "write spec.image as <registry>/<repository>",
        )
    })?;
    let client = image_client(insecure);
    let rauth = registry_auth(registry, auth);
    let reference = oci_client::Reference::with_tag(registry.into(), repository.into(), tag.into());
    client
        .fetch_manifest_digest(&reference, &rauth)
        .await
        .map_err(|e| {
            oci_error(id, image, &format!("fetching the digest of {tag}"), &e).scrub(&secrets)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar+gzip of (path, Some(contents) for a file | None for a symlink to `target`).
    fn tgz(entries: &[(&str, Option<&str>, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        for (path, body, target) in entries {
            let mut h = tar::Header::new_gnu();
            match body {
                Some(body) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(body.len() as u64);
                    h.set_mode(0o644);
                    b.append_data(&mut h, path, body.as_bytes()).unwrap();
                }
                None => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_size(0);
                    h.set_mode(0o777);
                    b.append_link(&mut h, path, target).unwrap();
                }
            }
        }
        b.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn links_are_kept_and_created_after_every_file() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("tree");
        let escape = tmp.path().join("escape");
        std::fs::create_dir_all(&escape).unwrap();
        let data = tgz(&[
            ("a/app.yaml", Some("kind: ConfigMap\n"), ""),
            ("a/inside.yaml", None, "app.yaml"),
            ("a/outside", None, escape.to_str().unwrap()),
            // written before the links exist: lands in a real directory `a/outside/`
            ("a/outside/x.yaml", Some("x\n"), ""),
        ]);
        // the link `a/outside` then collides with the directory: an error, and nothing
        // was written to `escape`
        let e = extract_tgz(&data, &out, &IgnoreRules::default()).unwrap_err();
        assert!(e.contains("symlink a/outside"), "{e}");
        assert_eq!(std::fs::read_dir(&escape).unwrap().count(), 0);

        let out = tmp.path().join("tree2");
        let data = tgz(&[
            ("a/app.yaml", Some("kind: ConfigMap\n"), ""),
            ("a/inside.yaml", None, "app.yaml"),
            ("a/environ", None, "/proc/self/environ"),
        ]);
        extract_tgz(&data, &out, &IgnoreRules::default()).unwrap();
        assert_eq!(
            std::fs::read_link(out.join("a/environ")).unwrap(),
            Path::new("/proc/self/environ")
        );
        assert_eq!(
            std::fs::read_to_string(out.join("a/inside.yaml")).unwrap(),
            "kind: ConfigMap\n"
        );
    }

    #[test]
    fn a_link_beneath_another_link_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("tree");
        let escape = tmp.path().join("escape");
        std::fs::create_dir_all(&escape).unwrap();
        let data = tgz(&[
            ("a", None, escape.to_str().unwrap()),
            ("a/b", None, "/etc/passwd"),
        ]);
        let e = extract_tgz(&data, &out, &IgnoreRules::default()).unwrap_err();
        assert!(e.contains("beneath the symlink a"), "{e}");
        assert_eq!(std::fs::read_dir(&escape).unwrap().count(), 0);
    }
}
