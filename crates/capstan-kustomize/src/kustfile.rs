//! Finding and reading kustomization files.

use std::path::{Path, PathBuf};

use capstan_vfs::FileSystem;
use capstan_yaml::Node;

use crate::error::{kerr, Result};

pub const FILE_NAMES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// A parsed kustomization (or component) and where it lives.
#[derive(Debug, Clone)]
pub struct Kustomization {
    pub dir: PathBuf,
    pub file: PathBuf,
    pub node: Node,
}

impl Kustomization {
    pub fn kind(&self) -> &str {
        self.node.str_at(&["kind"]).unwrap_or("Kustomization")
    }
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.node.get(key).filter(|n| !n.is_null())
    }
    pub fn str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(|n| n.as_str())
    }
    /// A list of strings (`resources`, `components`, ...).
    pub fn strings(&self, key: &str) -> Result<Vec<String>> {
        match self.get(key) {
            None => Ok(vec![]),
            Some(Node::Sequence(s)) => Ok(s
                .iter()
                .filter_map(|n| n.as_str().map(str::to_string))
                .collect()),
            Some(_) => Err(kerr!(
                "{}: field '{key}' must be a list of strings",
                self.file.display()
            )),
        }
    }
    pub fn seq(&self, key: &str) -> &[Node] {
        match self.get(key) {
            Some(Node::Sequence(s)) => s,
            _ => &[],
        }
    }
}

/// Load the kustomization in `dir`.
pub fn load(fs: &dyn FileSystem, dir: &Path) -> Result<Kustomization> {
    let found: Vec<PathBuf> = FILE_NAMES
        .iter()
        .map(|n| dir.join(n))
        .filter(|p| fs.is_file(p))
        .collect();
    if found.len() > 1 {
        return Err(kerr!(
            "Found multiple kustomization files under: {}",
            dir.display()
        ));
    }
    let Some(file) = found.into_iter().next() else {
        return Err(kerr!(
            "unable to find one of 'kustomization.yaml', 'kustomization.yml' or 'Kustomization' in directory '{}'",
            dir.display()
        ));
    };
    let text = fs
        .read_to_string(&file)
        .map_err(|e| kerr!("{}: {e}", file.display()))?;
    // kustomize reads its kustomization file with sigs.k8s.io/yaml (go-yaml v2, not
    // strict): a repeated key replaces the earlier value.
    let docs = capstan_yaml::parse_documents_last_key_wins(&text, &file.display().to_string())?;
    let name = file
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let Some(mut node) = docs.into_iter().find(|d| !d.is_null()) else {
        return Err(kerr!("{name} is empty"));
    };
    if !matches!(node, Node::Mapping(_)) {
        return Err(kerr!("{}: kustomization must be a mapping", file.display()));
    }
    validate_fields(&node).map_err(|e| kerr!("{}: invalid Kustomization: {e}", file.display()))?;
    fix_legacy(&mut node);
    enforce_fields(&node).map_err(|errs| {
        kerr!(
            "Failed to read kustomization file under {}:\n{}",
            dir.display(),
            errs.join("\n")
        )
    })?;
    Ok(Kustomization {
        dir: dir.to_path_buf(),
        file,
        node,
    })
}

const FIELDS: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "openapi",
    "namePrefix",
    "nameSuffix",
    "namespace",
    "commonLabels",
    "labels",
    "commonAnnotations",
    "patchesStrategicMerge",
    "patchesJson6902",
    "patches",
    "images",
    "imageTags",
    "replacements",
    "replicas",
    "vars",
    "sortOptions",
    "resources",
    "components",
    "crds",
    "bases",
    "configMapGenerator",
    "secretGenerator",
    "helmGlobals",
    "helmCharts",
    "helmChartInflationGenerator",
    "generatorOptions",
    "configurations",
    "generators",
    "transformers",
    "validators",
    "buildMetadata",
];

/// Fields of type `[]string` in kustomize's `Kustomization`.
const STRING_LISTS: &[&str] = &[
    "resources",
    "components",
    "crds",
    "bases",
    "configurations",
    "patchesStrategicMerge",
    "generators",
    "transformers",
    "validators",
    "buildMetadata",
];

/// JSON's name of a YAML node's type, as Go's `encoding/json` reports it.
fn json_type(n: &Node) -> &'static str {
    match n {
        Node::Mapping(_) => "object",
        Node::Sequence(_) => "array",
        Node::Scalar(s) if s.is_null() => "null",
        Node::Scalar(_) => match capstan_yaml::to_json(n) {
            serde_json::Value::Bool(_) => "bool",
            serde_json::Value::Number(_) => "number",
            _ => "string",
        },
    }
}

/// kustomize decodes the file with `DisallowUnknownFields` (field names matched
/// case-insensitively, as encoding/json does): an unknown top-level field and a list of
/// strings holding anything but strings are errors, worded as Go's decoder words them.
fn validate_fields(node: &Node) -> std::result::Result<(), String> {
    let Node::Mapping(m) = node else {
        return Ok(());
    };
    for (k, v) in &m.entries {
        let Some(field) = FIELDS.iter().find(|f| f.eq_ignore_ascii_case(k)) else {
            return Err(format!("json: unknown field \"{k}\""));
        };
        if !STRING_LISTS.contains(field) {
            continue;
        }
        let elem = match *field {
            "patchesStrategicMerge" => "types.PatchStrategicMerge",
            _ => "string",
        };
        match v {
            Node::Sequence(items) => {
                if let Some(bad) = items
                    .iter()
                    .map(json_type)
                    .find(|t| !matches!(*t, "string" | "null"))
                {
                    return Err(format!(
                        "json: cannot unmarshal {bad} into Go struct field Kustomization.{field} of type {elem}"
                    ));
                }
            }
            Node::Scalar(s) if s.is_null() => {}
            other => {
                return Err(format!(
                    "json: cannot unmarshal {} into Go struct field Kustomization.{field} of type []{elem}",
                    json_type(other)
                ))
            }
        }
    }
    Ok(())
}

/// kustomize's `EnforceFields`: `kind` is Kustomization (the default) or Component, and
/// a given `apiVersion` is `kustomize.config.k8s.io/v1beta1` for a Kustomization and
/// `kustomize.config.k8s.io/v1alpha1` for a Component.
fn enforce_fields(node: &Node) -> std::result::Result<(), Vec<String>> {
    let kind = node
        .str_at(&["kind"])
        .filter(|k| !k.is_empty())
        .unwrap_or("Kustomization");
    let mut errs = Vec::new();
    if kind != "Kustomization" && kind != "Component" {
        errs.push("kind should be Kustomization or Component".to_string());
    }
    let required = if kind == "Component" {
        "kustomize.config.k8s.io/v1alpha1"
    } else {
        "kustomize.config.k8s.io/v1beta1"
    };
    if let Some(v) = node.str_at(&["apiVersion"]).filter(|v| !v.is_empty()) {
        if v != required {
            errs.push(format!("apiVersion for {kind} should be {required}"));
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs)
    }
}

/// kustomize's `FixKustomization`: move deprecated fields to their successors.
fn fix_legacy(node: &mut Node) {
    let m = node.as_mapping_mut().unwrap();
    // sigs.k8s.io/yaml goes through encoding/json, which matches field names
    // case-insensitively.
    for (k, _) in m.entries.iter_mut() {
        if let Some(f) = FIELDS.iter().find(|f| f.eq_ignore_ascii_case(k)) {
            if *k != *f {
                *k = f.to_string();
            }
        }
    }
    if let Some(Node::Sequence(bases)) = m.remove("bases") {
        let res = m.entry_or_insert_with("resources", || Node::Sequence(vec![]));
        if res.is_null() {
            *res = Node::Sequence(vec![]);
        }
        if let Some(s) = res.as_sequence_mut() {
            s.extend(bases);
        }
    }
    if let Some(tags) = m.remove("imageTags") {
        if let Some(t) = tags.as_sequence() {
            let images = m.entry_or_insert_with("images", || Node::Sequence(vec![]));
            if let Some(s) = images.as_sequence_mut() {
                s.extend(t.iter().cloned());
            }
        }
    }
}
