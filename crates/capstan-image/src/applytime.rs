//! Apply-time image resolution (no write access to Git): a Flux Kustomization annotated
//!
//! ```yaml
//! metadata:
//!   annotations:
//!     capstan.io/image-policy: apps/podinfo, redis   # NAMESPACE/NAME or NAME, comma- or space-separated
//! ```
//!
//! renders with each named ImagePolicy's `status.latestRef` as a kustomize `images`
//! override (`name` = the ImageRepository's `spec.image`, `newTag` = the elected tag,
//! `digest` when one is reflected), merged after the Kustomization's own
//! `spec.images` (a policy wins over a static entry for the same image). A name
//! without a namespace is looked up in the Kustomization's namespace. Nothing is
//! committed; the chosen tags are reported with the unit.

use serde_json::{json, Value};

use crate::error::{ImageError, ImageErrorKind};
use crate::spec::{ImageRef, ObjectKey};

/// The annotation naming the ImagePolicies a Kustomization follows at apply time.
pub const IMAGE_POLICY_ANNOTATION: &str = "capstan.io/image-policy";

/// Parses the annotation's value: `NAMESPACE/NAME` or `NAME` entries separated by commas
/// or white space; duplicates are dropped, order is kept.
pub fn parse_image_policy_annotation(
    value: &str,
    default_namespace: &str,
) -> Result<Vec<ObjectKey>, ImageError> {
    let mut out: Vec<ObjectKey> = Vec::new();
    for entry in value
        .split([',', ' ', '\t', '\n'])
        .filter(|e| !e.is_empty())
    {
        let (ns, name) = match entry.split_once('/') {
            Some((ns, name)) => (ns, name),
            None => (default_namespace, entry),
        };
        let dns_label = |s: &str| {
            !s.is_empty()
                && s.len() <= 253
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        };
        if !dns_label(ns) || !dns_label(name) || name.contains('/') {
            return Err(ImageError::new(
                ImageErrorKind::InvalidSpec,
                format!("{entry:?} is not an ImagePolicy reference"),
            )
            .field(format!("metadata.annotations[{IMAGE_POLICY_ANNOTATION}]"))
            .hint("NAMESPACE/NAME or NAME of ImagePolicies, separated by commas"));
        }
        let key = ObjectKey {
            namespace: ns.to_string(),
            name: name.to_string(),
        };
        if !out.contains(&key) {
            out.push(key);
        }
    }
    Ok(out)
}

/// A kustomize `images` entry for an elected image.
pub fn kustomize_image_override(latest: &ImageRef) -> Value {
    let mut v = json!({"name": latest.name, "newTag": latest.tag});
    if !latest.digest.is_empty() {
        v["digest"] = json!(latest.digest);
    }
    v
}

/// `spec.images` with the overrides merged in (an entry with the same `name` is
/// replaced in place, others are appended).
pub fn merge_image_overrides(images: &[Value], latest: &[ImageRef]) -> Vec<Value> {
    let mut out = images.to_vec();
    for l in latest {
        let o = kustomize_image_override(l);
        match out.iter_mut().find(|i| i.get("name") == o.get("name")) {
            Some(existing) => *existing = o,
            None => out.push(o),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_policy_annotation_lists_policies_with_default_namespace() {
        let keys =
            parse_image_policy_annotation("apps/podinfo, redis  apps/podinfo", "web").unwrap();
        let s: Vec<String> = keys.iter().map(ToString::to_string).collect();
        assert_eq!(s, ["apps/podinfo", "web/redis"]);
        let e = parse_image_policy_annotation("apps/Pod", "web").unwrap_err();
        assert!(e.to_string().contains("capstan.io/image-policy"), "{e}");
        assert!(parse_image_policy_annotation("a/b/c", "web").is_err());
        assert!(parse_image_policy_annotation("", "web").unwrap().is_empty());
    }

    #[test]
    fn image_policy_overrides_replace_static_images_entries_by_name() {
        let images = vec![
            json!({"name": "r/app", "newTag": "old"}),
            json!({"name": "r/other", "newName": "x"}),
        ];
        let latest = [
            ImageRef {
                name: "r/app".into(),
                tag: "v2".into(),
                digest: "sha256:aa".into(),
            },
            ImageRef {
                name: "r/new".into(),
                tag: "1".into(),
                digest: String::new(),
            },
        ];
        let merged = merge_image_overrides(&images, &latest);
        assert_eq!(
            merged,
            vec![
                json!({"name": "r/app", "newTag": "v2", "digest": "sha256:aa"}),
                json!({"name": "r/other", "newName": "x"}),
                json!({"name": "r/new", "newTag": "1"}),
            ]
        );
    }
}
