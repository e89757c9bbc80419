//! Apply-time image policies (`capstan.io/image-policy` on a Kustomization): each named
//! ImagePolicy and its ImageRepository are found among the objects the repository renders,
//! else (on the last chance) in the cluster; an [`ImageResolver`] supplied by the caller
//! (registry I/O) elects the tag; the result is merged into the unit's `spec.images` as
//! kustomize `images` overrides before Flux's kustomization generator runs. Nothing is
//! written to the repository.

use std::collections::HashMap;
use std::sync::Arc;

use capstan_image::{ImageRef, ObjectKey, IMAGE_POLICY_ANNOTATION};
use serde_json::Value;

use crate::error::{ErrorKind, UnitError};
use crate::{ClusterLookup, Unit};

/// Elects the latest image of an ImagePolicy (the registry I/O lives with the caller).
pub trait ImageResolver: Send + Sync {
    /// `policy` is the ImagePolicy object, `repository` its ImageRepository (as rendered
    /// by the repository or read from the cluster). The error names what failed; the
    /// loader adds the unit and the policy.
    fn latest(&self, policy: &Value, repository: &Value) -> Result<ImageRef, String>;
}

/// A shared [`ImageResolver`] for [`crate::LoadOptions::image_resolver`].
#[derive(Clone)]
pub struct SharedImageResolver(pub Arc<dyn ImageResolver>);

impl std::fmt::Debug for SharedImageResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ImageResolver")
    }
}

/// An image a unit renders with because of an ImagePolicy (`capstan.io/image-policy`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedImage {
    /// The ImagePolicy, `namespace/name`.
    pub policy: String,
    /// The image, its tag and (when reflected) digest.
    pub latest: ImageRef,
}

impl std::fmt::Display for ResolvedImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ImagePolicy {} -> {}",
            self.policy,
            self.latest.reference()
        )
    }
}

/// Objects of the image API rendered so far, by (kind, namespace, name).
pub(crate) type ImageObjects = HashMap<(String, String, String), Value>;

/// Is this an `image.toolkit.fluxcd.io` ImagePolicy or ImageRepository?
pub(crate) fn is_image_object(obj: &Value) -> bool {
    let api = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    capstan_graph::group_of(api) == capstan_image::API_GROUP
        && (kind == "ImagePolicy" || kind == "ImageRepository")
}

const FIELD: &str = "metadata.annotations[capstan.io/image-policy]";

/// The images of a unit's `capstan.io/image-policy` annotation. `Ok(None)`: a policy or
/// repository is not rendered yet and other units may still render it (defer). Without
/// a resolver or without the annotation: no images.
pub(crate) fn resolve(
    unit: &Unit,
    resolver: Option<&SharedImageResolver>,
    repo: &ImageObjects,
    cluster: &dyn ClusterLookup,
    last_chance: bool,
) -> Result<Option<Vec<ResolvedImage>>, UnitError> {
    let Some(value) = unit
        .object
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(IMAGE_POLICY_ANNOTATION))
    else {
        return Ok(Some(Vec::new()));
    };
    let Some(resolver) = resolver else {
        return Ok(Some(Vec::new()));
    };
    let err = |msg: String| {
        UnitError::new(Some(unit.id.clone()), msg)
            .field(FIELD)
            .kind(ErrorKind::Lookup)
    };
    let value = value
        .as_str()
        .ok_or_else(|| err("the annotation must be a string".into()))?;
    let keys =
        capstan_image::parse_image_policy_annotation(value, &unit.id.namespace).map_err(|e| {
            let u = err(e.message.clone());
            match e.hint {
                Some(h) => u.hint(h),
                None => u,
            }
        })?;
    let find = |kind: &str, key: &ObjectKey| -> Result<Option<Value>, UnitError> {
        let k = (kind.to_string(), key.namespace.clone(), key.name.clone());
        if let Some(o) = repo.get(&k) {
            return Ok(Some(o.clone()));
        }
        if !last_chance {
            return Ok(None);
        }
        match cluster.get(kind, &key.namespace, &key.name) {
            Ok(Some(o)) => Ok(Some(o)),
            Ok(None) => Err(err(format!(
                "{kind} {key} was found neither in the repository nor in the cluster"
            ))
            .hint("declare it in the repository, or check the annotation's names")),
            Err(e) => Err(err(format!("looking up {kind} {key}: {e}"))),
        }
    };
    let mut out = Vec::new();
    for key in keys {
        let Some(policy) = find("ImagePolicy", &key)? else {
            return Ok(None);
        };
        let repo_name = policy
            .pointer("/spec/imageRepositoryRef/name")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                err(format!(
                    "ImagePolicy {key}: spec.imageRepositoryRef.name is required"
                ))
            })?;
        let repo_ns = policy
            .pointer("/spec/imageRepositoryRef/namespace")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or(&key.namespace);
        let repo_key = ObjectKey {
            namespace: repo_ns.to_string(),
            name: repo_name.to_string(),
        };
        let Some(repository) = find("ImageRepository", &repo_key).map_err(|mut e| {
            e.message = format!("ImagePolicy {key}: {}", e.message);
            e
        })?
        else {
            return Ok(None);
        };
        let latest = resolver
            .0
            .latest(&policy, &repository)
            .map_err(|e| err(format!("ImagePolicy {key}: {e}")))?;
        out.push(ResolvedImage {
            policy: key.to_string(),
            latest,
        });
    }
    Ok(Some(out))
}

/// `spec.images` of the unit with the resolved images merged in (a policy wins over a
/// static entry for the same image name).
pub(crate) fn with_images(unit: &Unit, images: &[ResolvedImage]) -> Unit {
    let mut u = unit.clone();
    let latest: Vec<ImageRef> = images.iter().map(|i| i.latest.clone()).collect();
    u.spec.images = capstan_image::merge_image_overrides(&unit.spec.images, &latest);
    u
}
