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
use crate::scan::TagLister;
use crate::spec::{DigestLookup, ImagePolicy, ImageRef, ImageRepository, ObjectKey, PolicyStatus};

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

/// Resolves one ImagePolicy at apply time: its ImageRepository scanned through `lister`
/// (`exclusionList` applied), the policy's tag elected, the digest looked up per
/// `digestReflectionPolicy` (no earlier status: `IfNotPresent` looks it up). Errors keep
/// their kind and name the policy (and the repository for scan failures).
pub fn resolve_latest(
    policy: &ImagePolicy,
    repository: &ImageRepository,
    lister: &dyn TagLister,
    digests: &dyn DigestLookup,
) -> Result<ImageRef, ImageError> {
    let ctx = format!("ImagePolicy {}", policy.key);
    if policy.repository != repository.key {
        return Err(ImageError::new(
            ImageErrorKind::InvalidSpec,
            format!(
                "refers to ImageRepository {}, not {}",
                policy.repository, repository.key
            ),
        )
        .context(ctx)
        .field("spec.imageRepositoryRef"));
    }
    let compiled = policy.compile()?;
    let (tags, _) = crate::scan::scan(repository, lister, "").map_err(|e| ImageError {
        context: format!("{ctx}: {}", e.context),
        ..e
    })?;
    if tags.is_empty() {
        return Err(ImageError::new(
            ImageErrorKind::NoTags,
            format!("ImageRepository {} has no tags", repository.key),
        )
        .context(ctx));
    }
    let tag = compiled.select(&tags).map_err(|e| e.or_context(&ctx))?;
    let mut status = PolicyStatus::default();
    status
        .update(&repository.image, &tag, policy.digest_reflection, digests)
        .map_err(|e| e.or_context(&ctx))?;
    Ok(status.latest_ref.unwrap_or_default())
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

    struct Tags(Vec<&'static str>);
    impl TagLister for Tags {
        fn list_tags(&self, _: &ImageRepository) -> Result<Vec<String>, String> {
            if self.0.is_empty() {
                return Err("connection refused".into());
            }
            Ok(self.0.iter().map(|s| s.to_string()).collect())
        }
    }
    struct Digests;
    impl DigestLookup for Digests {
        fn digest(&self, image: &str, tag: &str) -> Result<String, String> {
            Ok(format!("sha256:{image}-{tag}"))
        }
    }

    fn objects(policy_spec: &str) -> (ImagePolicy, ImageRepository) {
        let p = format!("apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {{name: app, namespace: apps}}\nspec:\n  imageRepositoryRef: {{name: app}}\n{policy_spec}");
        let r = "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {name: app, namespace: apps}\nspec: {image: reg.local/team/app}\n";
        let p = &capstan_yaml::parse_documents(&p, "p.yaml").unwrap()[0];
        let r = &capstan_yaml::parse_documents(r, "r.yaml").unwrap()[0];
        (
            ImagePolicy::from_node(p, "p.yaml").unwrap(),
            ImageRepository::from_node(r, "r.yaml").unwrap(),
        )
    }

    #[test]
    fn resolve_latest_scans_excludes_signatures_and_elects_the_policy_tag() {
        let (p, r) = objects("  policy: {semver: {range: '>=1.0.0'}}\n");
        let tags = Tags(vec!["1.0.0", "1.2.0", "9.9.9.sig", "latest"]);
        let got = resolve_latest(&p, &r, &tags, &Digests).unwrap();
        assert_eq!(got.reference(), "reg.local/team/app:1.2.0");
        // digestReflectionPolicy IfNotPresent looks the digest up
        let (p, r) = objects(
            "  policy: {alphabetical: {order: asc}}\n  digestReflectionPolicy: IfNotPresent\n",
        );
        let got = resolve_latest(&p, &r, &tags, &Digests).unwrap();
        assert_eq!(got.tag, "latest");
        assert_eq!(got.digest, "sha256:reg.local/team/app-latest");
    }

    #[test]
    fn resolve_latest_errors_name_the_policy_and_keep_their_kind() {
        let (p, r) = objects("  policy: {semver: {range: '>=2.0.0'}}\n");
        let e = resolve_latest(&p, &r, &Tags(vec!["1.0.0"]), &Digests).unwrap_err();
        assert_eq!(e.kind, ImageErrorKind::NoMatchingVersion);
        assert!(e.to_string().contains("ImagePolicy apps/app"), "{e}");
        let e = resolve_latest(&p, &r, &Tags(vec![]), &Digests).unwrap_err();
        assert_eq!(e.kind, ImageErrorKind::Scan);
        assert!(e.to_string().starts_with("ImagePolicy apps/app: "), "{e}");
        let e = resolve_latest(&p, &r, &Tags(vec!["x.sig"]), &Digests).unwrap_err();
        assert_eq!(e.kind, ImageErrorKind::NoTags);
        let mut other = r.clone();
        other.key.name = "other".into();
        let e = resolve_latest(&p, &other, &Tags(vec!["1.0.0"]), &Digests).unwrap_err();
        assert_eq!(e.field, "spec.imageRepositoryRef");
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
