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
    validate_fields(&node)
        .and_then(|_| validate_types(&node))
        .map_err(|e| kerr!("{}: invalid Kustomization: {e}", file.display()))?;
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

/// The Go type of a kustomization field, for the typed part of kustomize's strict
/// decoding (sigs.k8s.io/yaml reads YAML 1.1, then encoding/json decodes with
/// `DisallowUnknownFields`). The structs carry kustomize 5.8.1's fields (a superset of
/// 5.5's).
enum GoType {
    Str,
    Bool,
    Int64,
    /// `map[string]string`
    MapStr,
    /// `map[string]bool`
    MapBool,
    /// `[]string`
    ListStr,
    /// A struct: its Go name and fields (JSON name, type). Unknown fields are errors.
    Struct(&'static str, &'static [(&'static str, GoType)]),
    /// A slice of the struct.
    List(&'static GoType),
}

use GoType::*;

static FIELD_SPEC: GoType = Struct(
    "FieldSpec",
    &[
        ("group", Str),
        ("version", Str),
        ("kind", Str),
        ("path", Str),
        ("create", Bool),
    ],
);
static LABEL: GoType = Struct(
    "Label",
    &[
        ("pairs", MapStr),
        ("includeSelectors", Bool),
        ("includeTemplates", Bool),
        ("includeVolumeClaimTemplates", Bool),
        ("fields", List(&FIELD_SPEC)),
    ],
);
static IMAGE: GoType = Struct(
    "Image",
    &[
        ("name", Str),
        ("newName", Str),
        ("tagSuffix", Str),
        ("newTag", Str),
        ("digest", Str),
    ],
);
static REPLICA: GoType = Struct("Replica", &[("name", Str), ("count", Int64)]);
static CONFIG_MAP_ARGS: GoType = Struct(
    "ConfigMapArgs",
    &[
        ("namespace", Str),
        ("name", Str),
        ("behavior", Str),
        ("literals", ListStr),
        ("files", ListStr),
        ("envs", ListStr),
        ("env", Str),
        ("options", GENERATOR_OPTIONS_REF),
    ],
);
static SECRET_ARGS: GoType = Struct(
    "SecretArgs",
    &[
        ("namespace", Str),
        ("name", Str),
        ("behavior", Str),
        ("literals", ListStr),
        ("files", ListStr),
        ("envs", ListStr),
        ("env", Str),
        ("options", GENERATOR_OPTIONS_REF),
        ("type", Str),
    ],
);
/// `GeneratorOptions` (a constant: fields hold their types by value).
const GENERATOR_OPTIONS_REF: GoType = Struct(
    "GeneratorOptions",
    &[
        ("labels", MapStr),
        ("annotations", MapStr),
        ("disableNameSuffixHash", Bool),
        ("immutable", Bool),
    ],
);
static PATCH: GoType = Struct(
    "Patch",
    &[
        ("path", Str),
        ("patch", Str),
        ("target", SELECTOR_REF),
        ("options", MapBool),
    ],
);
const SELECTOR_REF: GoType = Struct(
    "Selector",
    &[
        ("group", Str),
        ("version", Str),
        ("kind", Str),
        ("name", Str),
        ("namespace", Str),
        ("annotationSelector", Str),
        ("labelSelector", Str),
    ],
);

/// The typed top-level fields checked (the others are checked by `validate_fields` or
/// read leniently).
fn typed_fields() -> [(&'static str, &'static GoType); 13] {
    [
        ("namePrefix", &Str),
        ("nameSuffix", &Str),
        ("namespace", &Str),
        ("commonLabels", &MapStr),
        ("commonAnnotations", &MapStr),
        ("labels", &LABEL_LIST),
        ("images", &IMAGE_LIST),
        ("replicas", &REPLICA_LIST),
        ("configMapGenerator", &CONFIG_MAP_LIST),
        ("secretGenerator", &SECRET_LIST),
        ("generatorOptions", &GENERATOR_OPTIONS_REF),
        ("patches", &PATCH_LIST),
        ("patchesJson6902", &PATCH_LIST),
    ]
}

static LABEL_LIST: GoType = List(&LABEL);
static IMAGE_LIST: GoType = List(&IMAGE);
static REPLICA_LIST: GoType = List(&REPLICA);
static CONFIG_MAP_LIST: GoType = List(&CONFIG_MAP_ARGS);
static SECRET_LIST: GoType = List(&SECRET_ARGS);
static PATCH_LIST: GoType = List(&PATCH);

/// JSON's name of a node's type after sigs.k8s.io/yaml's YAML 1.1 reading: plain `yes`,
/// `no`, `on`, `off`, `y`, `n` are booleans there; numbers as JSON numbers.
fn json_type_v1_1(n: &Node) -> &'static str {
    match n {
        Node::Mapping(_) => "object",
        Node::Sequence(_) => "array",
        Node::Scalar(s) => {
            let tag = if matches!(s.style, capstan_yaml::ScalarStyle::Plain) {
                capstan_yaml::resolve_plain_v1_1(&s.value)
            } else {
                s.tag.clone()
            };
            match tag {
                capstan_yaml::Tag::Null => "null",
                capstan_yaml::Tag::Bool => "bool",
                capstan_yaml::Tag::Int | capstan_yaml::Tag::Float => "number",
                _ => "string",
            }
        }
    }
}

fn go_name(t: &GoType) -> String {
    match t {
        Str => "string".into(),
        Bool => "bool".into(),
        Int64 => "int64".into(),
        MapStr => "map[string]string".into(),
        MapBool => "map[string]bool".into(),
        ListStr => "[]string".into(),
        Struct(name, _) => format!("types.{name}"),
        List(inner) => format!("[]{}", go_name(inner)),
    }
}

fn type_error(found: &str, n: &Node, strukt: &str, path: &str, t: &str) -> String {
    let found = if found == "number" {
        format!("number {}", n.as_str().unwrap_or(""))
    } else {
        found.to_string()
    };
    let found = if found.starts_with("number") && t != "int64" {
        "number".to_string()
    } else {
        found
    };
    format!("json: cannot unmarshal {found} into Go struct field {strukt}.{path} of type {t}")
}

/// Check `n` against `t` as encoding/json decodes it into the field at `path` of the
/// struct `strukt`.
fn check_typed(n: &Node, t: &GoType, strukt: &str, path: &str) -> std::result::Result<(), String> {
    let found = json_type_v1_1(n);
    if found == "null" {
        return Ok(());
    }
    let scalar = |want: &str| -> std::result::Result<(), String> {
        if found != want {
            return Err(type_error(found, n, strukt, path, &go_name(t)));
        }
        Ok(())
    };
    match t {
        Str => scalar("string"),
        Bool => scalar("bool"),
        Int64 => {
            let integral = n
                .as_str()
                .is_some_and(|v| capstan_yaml::resolve_plain(v) == capstan_yaml::Tag::Int);
            if found != "number" || !integral {
                return Err(type_error(found, n, strukt, path, "int64"));
            }
            Ok(())
        }
        MapStr | MapBool => {
            let Node::Mapping(m) = n else {
                return Err(type_error(found, n, strukt, path, &go_name(t)));
            };
            let want = if matches!(t, MapStr) {
                "string"
            } else {
                "bool"
            };
            for (_, v) in sorted(m) {
                let f = json_type_v1_1(v);
                if f != want && f != "null" {
                    return Err(type_error(f, v, strukt, path, want));
                }
            }
            Ok(())
        }
        ListStr => {
            let Node::Sequence(items) = n else {
                return Err(type_error(found, n, strukt, path, "[]string"));
            };
            for v in items {
                let f = json_type_v1_1(v);
                if f != "string" && f != "null" {
                    return Err(type_error(f, v, strukt, path, "string"));
                }
            }
            Ok(())
        }
        List(inner) => {
            let Node::Sequence(items) = n else {
                return Err(type_error(found, n, strukt, path, &go_name(t)));
            };
            for v in items {
                check_typed(v, inner, strukt, path)?;
            }
            Ok(())
        }
        Struct(name, fields) => {
            let Node::Mapping(m) = n else {
                return Err(type_error(found, n, strukt, path, &go_name(t)));
            };
            for (k, v) in sorted(m) {
                let Some((fname, ft)) = fields
                    .iter()
                    .find(|(f, _)| *f == k)
                    .or_else(|| fields.iter().find(|(f, _)| f.eq_ignore_ascii_case(k)))
                else {
                    return Err(format!("json: unknown field \"{k}\""));
                };
                check_typed(v, ft, name, &format!("{path}.{fname}"))?;
            }
            Ok(())
        }
    }
}

/// A mapping's entries in the order encoding/json sees them (sigs.k8s.io/yaml writes
/// a map's keys sorted).
fn sorted(m: &capstan_yaml::Mapping) -> Vec<(&str, &Node)> {
    let mut v: Vec<(&str, &Node)> = m.entries.iter().map(|(k, v)| (k.as_str(), v)).collect();
    v.sort_by(|a, b| a.0.cmp(b.0));
    v
}

/// The typed fields of the kustomization (see [`GoType`]).
fn validate_types(node: &Node) -> std::result::Result<(), String> {
    let Node::Mapping(m) = node else {
        return Ok(());
    };
    let fields = typed_fields();
    for (k, v) in sorted(m) {
        if let Some((name, t)) = fields.iter().find(|(f, _)| f.eq_ignore_ascii_case(k)) {
            check_typed(v, t, "Kustomization", name)?;
        }
    }
    Ok(())
}
