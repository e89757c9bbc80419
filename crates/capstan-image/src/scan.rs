//! ImageRepository scanning, the pure half: `exclusionList`, the canonical image name,
//! `status.lastScanResult` as Flux writes it. Listing tags is I/O and sits behind
//! [`TagLister`] (the registry client lives in `capstan-source`).

use regex::Regex;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::error::{ImageError, ImageErrorKind};
use crate::spec::ImageRepository;

/// How many tags `status.lastScanResult.latestTags` keeps (Flux: 10).
pub const LATEST_TAGS_COUNT: usize = 10;

/// Lists the tags of an image repository (the distribution API's
/// `/v2/<name>/tags/list`, every page).
pub trait TagLister {
    fn list_tags(&self, repository: &ImageRepository) -> Result<Vec<String>, String>;
}

/// Flux's `filterOutTags`: drops every tag matching one of the patterns; a pattern that
/// does not compile fails the scan.
pub fn exclude_tags(tags: Vec<String>, patterns: &[String]) -> Result<Vec<String>, ImageError> {
    let res = patterns
        .iter()
        .map(|p| {
            regex::RegexBuilder::new(p)
                .size_limit(1 << 20)
                .build()
                .map_err(|e| {
                    ImageError::new(
                        ImageErrorKind::InvalidSpec,
                        format!("failed to compile regex {p}: {e}"),
                    )
                    .field("spec.exclusionList")
                })
        })
        .collect::<Result<Vec<Regex>, _>>()?;
    Ok(tags
        .into_iter()
        .filter(|t| !res.iter().any(|r| r.is_match(t)))
        .collect())
}

/// go-containerregistry's `Repository.String()` (what Flux writes as
/// `status.canonicalImageName`): Docker Hub names get `index.docker.io/` and
/// `library/`; names whose first part looks like a host keep it.
pub fn canonical_image_name(image: &str) -> String {
    let (first, rest) = match image.split_once('/') {
        Some((f, r)) => (f, Some(r)),
        None => (image, None),
    };
    let is_host = |s: &str| s.contains('.') || s.contains(':') || s == "localhost";
    match rest {
        Some(r) if is_host(first) => {
            let host = if first == "docker.io" {
                "index.docker.io"
            } else {
                first
            };
            if host == "index.docker.io" && !r.contains('/') {
                format!("{host}/library/{r}")
            } else {
                format!("{host}/{r}")
            }
        }
        Some(_) => format!("index.docker.io/{image}"),
        None => format!("index.docker.io/library/{image}"),
    }
}

/// `status.lastScanResult`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanResult {
    /// SHA-256 of the JSON list of the kept tags (changes whenever the set does).
    pub revision: String,
    pub tag_count: usize,
    /// RFC 3339, given by the caller (the engine stays clock-free).
    pub scan_time: String,
    /// The 10 latest tags, in reverse lexical order, as Flux's `sortTagsAndGetLatestTags`.
    pub latest_tags: Vec<String>,
}

impl ScanResult {
    /// Builds the result from the tags kept after `exclusionList`.
    pub fn new(kept: &[String], scan_time: &str) -> ScanResult {
        let mut sorted = kept.to_vec();
        sorted.sort_by(|a, b| b.cmp(a));
        sorted.truncate(LATEST_TAGS_COUNT);
        let mut h = Sha256::new();
        h.update(serde_json::to_vec(kept).unwrap_or_default());
        ScanResult {
            revision: format!("sha256:{:x}", h.finalize()),
            tag_count: kept.len(),
            scan_time: scan_time.to_string(),
            latest_tags: sorted,
        }
    }

    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "revision": self.revision,
            "tagCount": self.tag_count,
            "scanTime": self.scan_time,
        });
        if !self.latest_tags.is_empty() {
            v["latestTags"] = json!(self.latest_tags);
        }
        v
    }

    /// Flux's Ready message after a scan.
    pub fn ready_message(&self) -> String {
        format!("successful scan: found {} tags", self.tag_count)
    }
}

/// The ImageRepository status fields a scan writes (`canonicalImageName`,
/// `observedExclusionList`, `lastScanResult`).
pub fn repository_status(repo: &ImageRepository, result: &ScanResult) -> Value {
    json!({
        "canonicalImageName": canonical_image_name(&repo.image),
        "observedExclusionList": repo.exclusion_list,
        "lastScanResult": result.to_json(),
    })
}

/// Scan: list, exclude, summarise. Returns the kept tags and the result.
pub fn scan(
    repo: &ImageRepository,
    lister: &dyn TagLister,
    scan_time: &str,
) -> Result<(Vec<String>, ScanResult), ImageError> {
    let tags = lister.list_tags(repo).map_err(|e| {
        ImageError::new(
            ImageErrorKind::Scan,
            format!("scan of {} failed: {e}", repo.image),
        )
        .context(format!("ImageRepository {}", repo.key))
    })?;
    let kept = exclude_tags(tags, &repo.exclusion_list)
        .map_err(|e| e.or_context(format!("ImageRepository {}", repo.key)))?;
    let result = ScanResult::new(&kept, scan_time);
    Ok((kept, result))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusion_list_drops_signature_tags_by_default_pattern() {
        let tags = vec![
            "v1".to_string(),
            "sha256-abc.sig".into(),
            "v2".into(),
            "x.att".into(),
        ];
        let kept = exclude_tags(tags.clone(), &[crate::spec::DEFAULT_EXCLUSION.into()]).unwrap();
        assert_eq!(kept, ["v1", "v2", "x.att"]);
        let kept = exclude_tags(tags.clone(), &["^.*\\.sig$".into(), "\\.att$".into()]).unwrap();
        assert_eq!(kept, ["v1", "v2"]);
        assert_eq!(exclude_tags(tags.clone(), &[]).unwrap().len(), 4);
        let e = exclude_tags(tags, &["(".into()]).unwrap_err();
        assert_eq!(e.field, "spec.exclusionList");
    }

    #[test]
    fn last_scan_result_counts_tags_and_keeps_ten_latest_reverse_sorted() {
        let tags: Vec<String> = (0..12).map(|i| format!("t{i:02}")).collect();
        let r = ScanResult::new(&tags, "2026-01-01T00:00:00Z");
        assert_eq!(r.tag_count, 12);
        assert_eq!(r.latest_tags.len(), 10);
        assert_eq!(r.latest_tags[0], "t11");
        assert_eq!(r.latest_tags[9], "t02");
        let j = r.to_json();
        assert_eq!(j["tagCount"], 12);
        assert!(j["revision"].as_str().unwrap().starts_with("sha256:"));
        assert_eq!(ScanResult::new(&[], "x").to_json().get("latestTags"), None);
    }

    #[test]
    fn canonical_image_name_as_go_containerregistry() {
        assert_eq!(
            canonical_image_name("nginx"),
            "index.docker.io/library/nginx"
        );
        assert_eq!(canonical_image_name("org/app"), "index.docker.io/org/app");
        assert_eq!(
            canonical_image_name("docker.io/nginx"),
            "index.docker.io/library/nginx"
        );
        assert_eq!(
            canonical_image_name("localhost:5000/a/b"),
            "localhost:5000/a/b"
        );
        assert_eq!(canonical_image_name("ghcr.io/o/a"), "ghcr.io/o/a");
    }
}
