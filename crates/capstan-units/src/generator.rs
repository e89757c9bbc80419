//! Flux's kustomization generator, in memory.
//!
//! kustomize-controller writes a `kustomization.yaml` into the checkout before it
//! builds: a generated one listing every manifest when the directory has none, and in
//! every case with the Kustomization's `targetNamespace`, `namePrefix`, `nameSuffix`,
//! `patches`, `images` and `components` merged in. capstan does the same in an
//! [`OverlayFs`] so the repository is never written to.

use std::path::Path;

use capstan_vfs::{FileSystem, OverlayFs};
use serde_json::{json, Map, Value};

use crate::error::UnitError;
use crate::spec::KustomizationSpec;
use crate::Partial;

/// The file names kustomize recognises, in its order of preference.
pub const KUSTOMIZATION_FILES: &[&str] =
    &["kustomization.yaml", "kustomization.yml", "Kustomization"];

fn find_kustomization_file(fs: &dyn FileSystem, dir: &Path) -> Option<String> {
    KUSTOMIZATION_FILES
        .iter()
        .find(|f| fs.is_file(&dir.join(f)))
        .map(|f| f.to_string())
}

/// A view of `fs` in which `dir` holds the kustomization Flux would build.
pub fn flux_kustomization<'a>(
    fs: &'a dyn FileSystem,
    dir: &Path,
    spec: &KustomizationSpec,
) -> Result<OverlayFs<&'a dyn FileSystem>, Partial> {
    let (file, mut kus) = match find_kustomization_file(fs, dir) {
        Some(name) => {
            let path = dir.join(&name);
            let text = fs.read_to_string(&path).map_err(|e| {
                Partial(UnitError::new(
                    None,
                    format!("reading {}: {e}", path.display()),
                ))
            })?;
            if !needs_changes(spec) {
                // Nothing to merge: build the directory as it is.
                return Ok(OverlayFs::new(fs));
            }
            // A kustomization file: read as kustomize reads it (a repeated key wins).
            let docs = capstan_yaml::parse_documents_last_key_wins(&text, &path.to_string_lossy())
                .map_err(|e| Partial(UnitError::new(None, e.to_string())))?;
            let kus = match docs.first().map(capstan_yaml::to_json) {
                Some(Value::Object(m)) => m,
                Some(Value::Null) | None => Map::new(),
                Some(_) => {
                    return Err(Partial(UnitError::new(
                        None,
                        format!("{}: a kustomization must be a mapping", path.display()),
                    )))
                }
            };
            (name, kus)
        }
        None => {
            let mut resources = Vec::new();
            scan(fs, dir, dir, &mut resources)?;
            let mut kus = Map::new();
            kus.insert(
                "apiVersion".into(),
                json!("kustomize.config.k8s.io/v1beta1"),
            );
            kus.insert("kind".into(), json!("Kustomization"));
            kus.insert(
                "resources".into(),
                Value::Array(resources.into_iter().map(Value::String).collect()),
            );
            ("kustomization.yaml".to_string(), kus)
        }
    };
    if let Some(ns) = &spec.target_namespace {
        kus.insert("namespace".into(), json!(ns));
    }
    if let Some(p) = &spec.name_prefix {
        kus.insert("namePrefix".into(), json!(p));
    }
    if let Some(p) = &spec.name_suffix {
        kus.insert("nameSuffix".into(), json!(p));
    }
    append(&mut kus, "patches", spec.patches.iter().cloned());
    append(
        &mut kus,
        "patchesStrategicMerge",
        spec.patches_strategic_merge
            .iter()
            .map(|p| Value::String(serde_json::to_string(p).unwrap_or_default())),
    );
    append(
        &mut kus,
        "patchesJson6902",
        spec.patches_json6902.iter().map(|p| {
            let mut p = p.clone();
            if let Some(ops) = p.get("patch").filter(|v| !v.is_string()).cloned() {
                p["patch"] = Value::String(serde_json::to_string(&ops).unwrap_or_default());
            }
            p
        }),
    );
    if !spec.images.is_empty() {
        let images = kus
            .entry("images")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Some(list) = images.as_array_mut() {
            for img in &spec.images {
                let name = img.get("name");
                match list.iter_mut().find(|i| i.get("name") == name) {
                    Some(existing) => *existing = img.clone(),
                    None => list.push(img.clone()),
                }
            }
        }
    }
    append(
        &mut kus,
        "components",
        spec.components.iter().map(|c| Value::String(c.clone())),
    );
    let mut overlay = OverlayFs::new(fs);
    // JSON is YAML: the engine reads it as any other kustomization file.
    overlay.put(
        dir.join(file),
        serde_json::to_string_pretty(&Value::Object(kus)).unwrap_or_default(),
    );
    Ok(overlay)
}

fn needs_changes(spec: &KustomizationSpec) -> bool {
    spec.target_namespace.is_some()
        || spec.name_prefix.is_some()
        || spec.name_suffix.is_some()
        || !spec.patches.is_empty()
        || !spec.patches_strategic_merge.is_empty()
        || !spec.patches_json6902.is_empty()
        || !spec.images.is_empty()
        || !spec.components.is_empty()
}

fn append(kus: &mut Map<String, Value>, key: &str, items: impl Iterator<Item = Value>) {
    let items: Vec<Value> = items.collect();
    if items.is_empty() {
        return;
    }
    let list = kus.entry(key).or_insert_with(|| Value::Array(Vec::new()));
    if !list.is_array() {
        *list = Value::Array(Vec::new());
    }
    list.as_array_mut().unwrap().extend(items);
}

/// Flux's scan: every `.yaml`/`.yml` file below `dir` (which must parse as YAML), and
/// every sub-directory holding a kustomization file (not descended into).
fn scan(
    fs: &dyn FileSystem,
    base: &Path,
    dir: &Path,
    out: &mut Vec<String>,
) -> Result<(), Partial> {
    let entries = fs.read_dir(dir).map_err(|e| {
        Partial(UnitError::new(
            None,
            format!("reading {}: {e}", dir.display()),
        ))
    })?;
    for e in entries {
        let p = dir.join(&e);
        let rel = || format!("./{}", p.strip_prefix(base).unwrap_or(&p).to_string_lossy());
        if fs.is_dir(&p) {
            if find_kustomization_file(fs, &p).is_some() {
                out.push(rel());
            } else {
                scan(fs, base, &p, out)?;
            }
            continue;
        }
        if !(e.ends_with(".yaml") || e.ends_with(".yml")) {
            continue;
        }
        let text = fs.read_to_string(&p).map_err(|err| {
            Partial(UnitError::new(
                None,
                format!("reading {}: {err}", p.display()),
            ))
        })?;
        let docs = capstan_yaml::parse_documents(&text, &p.to_string_lossy()).map_err(|err| {
            Partial(UnitError::new(
                None,
                format!(
                    "failed to decode Kubernetes YAML from {}: {err}",
                    p.display()
                ),
            ))
        })?;
        if docs.iter().all(|d| d.is_null()) {
            continue;
        }
        out.push(rel());
    }
    Ok(())
}
