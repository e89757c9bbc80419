//! Which artifact a (source URL, reference) resolved to when it was last fetched, so that
//! an offline fetch ([`crate::SourceCache::offline`]) finds it in the cache without the
//! network.
//!
//! One small JSON record per (kind, URL, reference) under `<cache>/refs/<kind>/`, written
//! atomically (temp file + rename) after every successful fetch. The artifact itself
//! stays where the fetch put it (content-addressed); a record whose artifact is gone
//! (removed by [`crate::SourceCache::retain`]) is a miss.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::redact_url;
use crate::store::{self, Artifact};

#[derive(Serialize, Deserialize)]
struct Record {
    /// The reference's key (URL without credentials and the reference's fields).
    key: String,
    revision: String,
    /// Relative to the cache root, so a cache directory can move.
    path: String,
    digest: String,
}

/// The key of a fetch: kind, URL (credentials removed, no trailing `/`) and the fields
/// that select the artifact. Never holds a secret.
pub(crate) fn key(kind: &str, url: &str, fields: &[(&str, Option<&str>)]) -> String {
    let mut k = format!("{kind}\0{}", redact_url(url).trim_end_matches('/'));
    for (name, value) in fields {
        if let Some(v) = value {
            k.push('\0');
            k.push_str(name);
            k.push('=');
            k.push_str(v);
        }
    }
    k
}

fn file(root: &Path, kind: &str, key: &str) -> PathBuf {
    root.join("refs")
        .join(kind)
        .join(format!("{}.json", store::short_hash(key.as_bytes())))
}

/// Remember that `key` resolved to `artifact` (best effort: a cache that cannot record
/// only loses offline reads).
pub(crate) fn record(root: &Path, kind: &str, key: &str, artifact: &Artifact) {
    let Ok(rel) = artifact.path.strip_prefix(root) else {
        return;
    };
    let rec = Record {
        key: key.to_string(),
        revision: artifact.revision.clone(),
        path: rel.to_string_lossy().into_owned(),
        digest: artifact.digest.clone(),
    };
    let dest = file(root, kind, key);
    let Some(dir) = dest.parent() else {
        return;
    };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let Ok(data) = serde_json::to_vec(&rec) else {
        return;
    };
    let tmp = dir.join(format!(
        ".{}-{}.tmp",
        std::process::id(),
        store::short_hash(&data)
    ));
    if std::fs::write(&tmp, &data).is_ok() && std::fs::rename(&tmp, &dest).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

/// The artifact `key` last resolved to, when it is still in the cache.
pub(crate) fn lookup(root: &Path, kind: &str, key: &str) -> Option<Artifact> {
    let data = std::fs::read(file(root, kind, key)).ok()?;
    let rec: Record = serde_json::from_slice(&data).ok()?;
    // A hash collision, or a record of another key: never hand out the wrong artifact.
    if rec.key != key {
        return None;
    }
    let rel = Path::new(&rec.path);
    if rel.is_absolute()
        || rel
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return None;
    }
    let path = root.join(rel);
    let digest = store::existing(&path)?;
    (digest == rec.digest).then_some(Artifact {
        revision: rec.revision,
        path,
        digest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A recorded fetch is found again by the same URL and reference only; the URL's
    /// credentials are not part of the key (nor written); a record whose artifact left the
    /// cache is a miss.
    #[test]
    fn recorded_resolutions_are_found_by_url_and_reference() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let dest = root.join("helm/abc/podinfo-6.5.0-0123456789abcdef.tgz");
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        let src = root.join("chart.tgz");
        std::fs::write(&src, b"tgz").unwrap();
        store::publish(&src, &dest, "sha256:x").unwrap();
        let a = Artifact {
            revision: "6.5.0".into(),
            path: dest.clone(),
            digest: "sha256:x".into(),
        };
        let k = key(
            "helm",
            "https://u:secret@charts.example.com/",
            &[("chart", Some("podinfo")), ("version", Some(">=6"))],
        );
        assert!(!k.contains("secret"));
        record(root, "helm", &k, &a);
        let same = key(
            "helm",
            "https://charts.example.com",
            &[("chart", Some("podinfo")), ("version", Some(">=6"))],
        );
        assert_eq!(lookup(root, "helm", &same), Some(a));
        let other = key(
            "helm",
            "https://charts.example.com",
            &[("chart", Some("podinfo")), ("version", Some("6.4.0"))],
        );
        assert_eq!(lookup(root, "helm", &other), None);
        let written = std::fs::read_dir(root.join("refs/helm"))
            .unwrap()
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .collect::<String>();
        assert!(!written.contains("secret"), "{written}");
        std::fs::remove_file(&dest).unwrap();
        assert_eq!(lookup(root, "helm", &same), None);
    }
}
