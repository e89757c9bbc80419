//! configMapGenerator / secretGenerator and kustomize's name hash.

use std::path::Path;

use base64::Engine;
use capstan_yaml::{Mapping, Node, Scalar, ScalarStyle, Tag};
use sha2::{Digest, Sha256};

use crate::accumulate::{read_file, Ctx};
use crate::error::{kerr, Result};
use crate::resource::{Behavior, Resource};

/// kustomize's base64 with 70-character lines (each followed by a newline when the
/// encoding is longer than one line).
fn encode_base64(b: &[u8]) -> String {
    let enc = base64::engine::general_purpose::STANDARD.encode(b);
    let lines = enc.len() / 70 + 1;
    if lines <= 1 {
        return enc;
    }
    let mut out = String::with_capacity(enc.len() + lines);
    for chunk in enc.as_bytes().chunks(70) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push('\n');
    }
    out
}

fn remove_quotes(s: &str) -> &str {
    let b = s.as_bytes();
    if b.len() >= 2 && b[0] == b[b.len() - 1] && (b[0] == b'"' || b[0] == b'\'') {
        &s[1..s.len() - 1]
    } else {
        s
    }
}

/// (key, bytes) pairs of a generator's literals, files and env files.
fn collect_pairs(ctx: &Ctx, dir: &Path, g: &Node) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    let name = g.str_at(&["name"]).unwrap_or("");
    let mut push = |k: String, v: Vec<u8>| -> Result<()> {
        if out.iter().any(|(x, _)| *x == k) {
            return Err(kerr!("configmap {name} illegally repeats the key `{k}`"));
        }
        out.push((k, v));
        Ok(())
    };
    let list = |key: &str| -> Vec<String> {
        match g.get(key) {
            Some(Node::Sequence(s)) => s
                .iter()
                .filter_map(|n| n.as_str().map(str::to_string))
                .collect(),
            Some(Node::Scalar(s)) if !s.is_null() => vec![s.value.clone()],
            _ => vec![],
        }
    };
    let mut envs = list("envs");
    envs.extend(list("env"));
    for e in envs {
        let (_, text) = read_file(ctx, dir, &e)?;
        for (i, line) in text.lines().enumerate() {
            let mut line = line;
            if i == 0 {
                line = line.strip_prefix('\u{feff}').unwrap_or(line);
            }
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (k, v) = match line.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (line.to_string(), String::new()),
            };
            if k.contains(' ') || k.is_empty() {
                return Err(kerr!("invalid env key {k:?} in {e}"));
            }
            push(k, v.into_bytes())?;
        }
    }
    for l in list("literals") {
        let Some((k, v)) = l.split_once('=') else {
            return Err(kerr!("invalid literal source {l}, expected key=value"));
        };
        push(k.to_string(), remove_quotes(v).as_bytes().to_vec())?;
    }
    for f in list("files") {
        let (k, p) = match f.split_once('=') {
            Some((k, p)) => {
                if k.is_empty() {
                    return Err(kerr!("key name for file path {p} missing"));
                }
                (k.to_string(), p.to_string())
            }
            None => (f.rsplit('/').next().unwrap_or(&f).to_string(), f.clone()),
        };
        let path = capstan_vfs::join(dir, &p);
        crate::accumulate::check_file(ctx, dir, &path)?;
        let bytes = ctx
            .fs
            .read(&path)
            .map_err(|e| kerr!("{}: {e}", path.display()))?;
        push(k, bytes)?;
    }
    Ok(out)
}

struct Opts {
    labels: Vec<(String, String)>,
    annotations: Vec<(String, String)>,
    no_hash: bool,
    immutable: Option<bool>,
}

fn merged_opts(g: &Node, global: Option<&Node>) -> Opts {
    let mut o = Opts {
        labels: vec![],
        annotations: vec![],
        no_hash: false,
        immutable: None,
    };
    for src in [global, g.get("options")].into_iter().flatten() {
        for (field, dst) in [
            ("labels", &mut o.labels),
            ("annotations", &mut o.annotations),
        ] {
            if let Some(Node::Mapping(m)) = src.get(field) {
                for (k, v) in &m.entries {
                    let v = v.as_str().unwrap_or("").to_string();
                    match dst.iter_mut().find(|(x, _)| x == k) {
                        Some(slot) => slot.1 = v,
                        None => dst.push((k.clone(), v)),
                    }
                }
            }
        }
        if let Some(v) = src.str_at(&["disableNameSuffixHash"]) {
            o.no_hash = v == "true";
        }
        if let Some(v) = src.str_at(&["immutable"]) {
            o.immutable = Some(v == "true");
        }
    }
    o
}

fn meta(g: &Node, o: &Opts) -> Mapping {
    let mut m = Mapping::new();
    m.insert("name", Node::string(g.str_at(&["name"]).unwrap_or("")));
    if let Some(ns) = g.str_at(&["namespace"]) {
        m.insert("namespace", Node::string(ns));
    }
    if !o.labels.is_empty() {
        m.insert(
            "labels",
            Node::Mapping(Mapping {
                entries: o
                    .labels
                    .iter()
                    .map(|(k, v)| (k.clone(), Node::string(v.clone())))
                    .collect(),
            }),
        );
    }
    if !o.annotations.is_empty() {
        m.insert(
            "annotations",
            Node::Mapping(Mapping {
                entries: o
                    .annotations
                    .iter()
                    .map(|(k, v)| (k.clone(), Node::string(v.clone())))
                    .collect(),
            }),
        );
    }
    m
}

fn behavior(g: &Node) -> Result<Behavior> {
    match g.str_at(&["behavior"]).unwrap_or("") {
        "" | "create" => Ok(Behavior::Create),
        "merge" => Ok(Behavior::Merge),
        "replace" => Ok(Behavior::Replace),
        other => Err(kerr!("unknown generator behavior '{other}'")),
    }
}

pub fn config_map(ctx: &Ctx, dir: &Path, g: &Node, global: Option<&Node>) -> Result<Resource> {
    let o = merged_opts(g, global);
    let pairs = collect_pairs(ctx, dir, g)?;
    let mut root = Mapping::new();
    root.insert("apiVersion", Node::string("v1"));
    root.insert("kind", Node::string("ConfigMap"));
    root.insert("metadata", Node::Mapping(meta(g, &o)));
    let mut data = Mapping::new();
    let mut bin = Mapping::new();
    for (k, v) in pairs {
        match String::from_utf8(v) {
            Ok(s) => {
                data.insert(k, Node::string(s));
            }
            Err(e) => {
                bin.insert(k, Node::string(encode_base64(&e.into_bytes())));
            }
        }
    }
    if !data.is_empty() {
        root.insert("data", Node::Mapping(data));
    }
    if !bin.is_empty() {
        root.insert("binaryData", Node::Mapping(bin));
    }
    if let Some(i) = o.immutable {
        root.insert(
            "immutable",
            Node::Scalar(Scalar {
                value: i.to_string(),
                style: ScalarStyle::Any,
                tag: Tag::Bool,
            }),
        );
    }
    let mut r = Resource::new(Node::Mapping(root));
    r.behavior = behavior(g)?;
    r.needs_hash = !o.no_hash;
    r.generated = true;
    Ok(r)
}

pub fn secret(ctx: &Ctx, dir: &Path, g: &Node, global: Option<&Node>) -> Result<Resource> {
    let o = merged_opts(g, global);
    let pairs = collect_pairs(ctx, dir, g)?;
    let mut root = Mapping::new();
    root.insert("apiVersion", Node::string("v1"));
    root.insert("kind", Node::string("Secret"));
    root.insert("metadata", Node::Mapping(meta(g, &o)));
    let mut data = Mapping::new();
    for (k, v) in pairs {
        data.insert(k, Node::string(encode_base64(&v)));
    }
    // kyaml's LoadMapIntoSecretData creates `data` even when there is nothing to put in
    // it (LoadMapIntoConfigMapData creates it per key, so an empty ConfigMap has none).
    root.insert("data", Node::Mapping(data));
    root.insert(
        "type",
        Node::string(g.str_at(&["type"]).unwrap_or("Opaque")),
    );
    if let Some(i) = o.immutable {
        root.insert(
            "immutable",
            Node::Scalar(Scalar {
                value: i.to_string(),
                style: ScalarStyle::Any,
                tag: Tag::Bool,
            }),
        );
    }
    let mut r = Resource::new(Node::Mapping(root));
    r.behavior = behavior(g)?;
    r.needs_hash = !o.no_hash;
    r.generated = true;
    Ok(r)
}

/// A builtin generator plugin configuration (`generators:` entry).
pub fn builtin_generator(ctx: &mut Ctx, dir: &Path, cfg: &Node) -> Result<Vec<Resource>> {
    let kind = cfg.str_at(&["kind"]).unwrap_or("");
    let mut g = cfg.clone();
    if let Some(m) = g.as_mapping_mut() {
        // The generator's own `name`/`namespace` win over the config's metadata.
        if cfg.str_at(&["name"]).is_none_or(str::is_empty) {
            let name = cfg.str_at(&["metadata", "name"]).unwrap_or("").to_string();
            m.insert("name", Node::string(name));
        }
        if cfg.str_at(&["namespace"]).is_none_or(str::is_empty) {
            if let Some(ns) = cfg.str_at(&["metadata", "namespace"]) {
                m.insert("namespace", Node::string(ns));
            }
        }
    }
    match kind {
        "ConfigMapGenerator" => Ok(vec![config_map(ctx, dir, &g, None)?]),
        "SecretGenerator" => Ok(vec![secret(ctx, dir, &g, None)?]),
        "IAMPolicyGenerator" => Ok(vec![iam_policy(cfg)?]),
        "HelmChartInflationGenerator" => crate::helmcharts::generate(ctx, dir, cfg),
        _ => {
            // Not a generator config: plain resources produced by a generator
            // kustomization (a directory) are passed through as generated.
            if cfg.get("apiVersion").is_some()
                && !kind.is_empty()
                && !cfg
                    .str_at(&["apiVersion"])
                    .unwrap_or("")
                    .starts_with("builtin")
            {
                let mut r = Resource::new(cfg.clone());
                r.generated = true;
                return Ok(vec![r]);
            }
            Err(kerr!(
                "unable to load builtin {}",
                Resource::new(cfg.clone()).id().gvk_string()
            ))
        }
    }
}

/// kustomize's IAMPolicyGenerator: a ServiceAccount bound to a cloud identity.
fn iam_policy(cfg: &Node) -> Result<Resource> {
    let cloud = cfg.str_at(&["cloud"]).unwrap_or("");
    if cloud != "gke" {
        return Err(kerr!("cloud {cloud} is not supported"));
    }
    let s = |p: &[&str]| cfg.str_at(p).unwrap_or("").to_string();
    let mut meta = Mapping::new();
    let mut ann = Mapping::new();
    ann.insert(
        "iam.gke.io/gcp-service-account",
        Node::string(format!(
            "{}@{}.iam.gserviceaccount.com",
            s(&["serviceAccount", "name"]),
            s(&["serviceAccount", "projectId"])
        )),
    );
    meta.insert("annotations", Node::Mapping(ann));
    meta.insert("name", Node::string(s(&["kubernetesService", "name"])));
    let ns = s(&["kubernetesService", "namespace"]);
    if !ns.is_empty() {
        meta.insert("namespace", Node::string(ns));
    }
    let mut root = Mapping::new();
    root.insert("apiVersion", Node::string("v1"));
    root.insert("kind", Node::string("ServiceAccount"));
    root.insert("metadata", Node::Mapping(meta));
    let mut r = Resource::new(Node::Mapping(root));
    r.generated = true;
    Ok(r)
}

/// Merge or replace a generated resource into the existing one.
pub fn merge_into(old: &mut Resource, new: Resource) {
    let replace = new.behavior == Behavior::Replace;
    if new.origin.is_some() {
        old.origin = new.origin.clone();
    }
    for field in ["data", "binaryData"] {
        let newv = new.node.get(field).cloned();
        let om = old.node.as_mapping_mut().unwrap();
        if replace {
            om.remove(field);
            if let Some(v) = newv {
                om.insert(field, v);
            }
        } else if let Some(Node::Mapping(nm)) = newv {
            let slot = om.entry_or_insert_with(field, Node::mapping);
            if !matches!(slot, Node::Mapping(_)) {
                *slot = Node::mapping();
            }
            let sm = slot.as_mapping_mut().unwrap();
            for (k, v) in nm.entries {
                sm.insert(k, v);
            }
        }
    }
    for field in ["labels", "annotations"] {
        if let Some(Node::Mapping(nm)) = new.node.get_path(&["metadata", field]).cloned() {
            let md = old.node.ensure_mapping_path(&["metadata"]);
            let slot = md.entry_or_insert_with(field, Node::mapping);
            if !matches!(slot, Node::Mapping(_)) {
                *slot = Node::mapping();
            }
            let sm = slot.as_mapping_mut().unwrap();
            for (k, v) in nm.entries {
                sm.insert(k, v);
            }
        }
    }
    if let Some(i) = new.node.get("immutable").cloned() {
        old.node.as_mapping_mut().unwrap().insert("immutable", i);
    }
    if let Some(t) = new.node.get("type").cloned() {
        if replace {
            old.node.as_mapping_mut().unwrap().insert("type", t);
        }
    }
    if !new.needs_hash {
        old.needs_hash = false;
    }
}

/// Go's `encoding/json` string encoding (HTML-safe).
fn go_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Go's `json.Marshal` of a JSON value with sorted keys.
fn go_json(v: &serde_json::Value, out: &mut String) {
    match v {
        serde_json::Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                go_json_string(k, out);
                out.push(':');
                go_json(&o[k.as_str()], out);
            }
            out.push('}');
        }
        serde_json::Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                go_json(x, out);
            }
            out.push(']');
        }
        serde_json::Value::String(s) => go_json_string(s, out),
        other => out.push_str(&other.to_string()),
    }
}

fn data_map(n: &Node, field: &str) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    if let Some(Node::Mapping(d)) = n.get(field) {
        for (k, v) in &d.entries {
            m.insert(
                k.clone(),
                serde_json::Value::String(
                    v.as_scalar().map(|s| s.value.clone()).unwrap_or_default(),
                ),
            );
        }
    }
    serde_json::Value::Object(m)
}

/// kustomize's content hash of a ConfigMap/Secret (or any object).
pub fn hash(n: &Node) -> String {
    use serde_json::Value;
    let kind = n.str_at(&["kind"]).unwrap_or("");
    let name = n.str_at(&["metadata", "name"]).unwrap_or("").to_string();
    let v = match kind {
        "ConfigMap" | "Secret" => {
            let mut m = serde_json::Map::new();
            m.insert("kind".into(), Value::String(kind.into()));
            let _ = name;
            m.insert("name".into(), Value::String(String::new()));
            // kustomize's hasher reads a missing `data` as the empty string.
            let data = if n.get("data").is_some_and(|d| !d.is_null()) {
                data_map(n, "data")
            } else {
                Value::String(String::new())
            };
            m.insert("data".into(), data);
            if kind == "ConfigMap" {
                if let Value::Object(b) = data_map(n, "binaryData") {
                    if !b.is_empty() {
                        m.insert("binaryData".into(), Value::Object(b));
                    }
                }
            } else {
                m.insert(
                    "type".into(),
                    Value::String(n.str_at(&["type"]).unwrap_or("").to_string()),
                );
                // A Secret's `stringData` counts when it is a map; `immutable` never does
                // (kustomize's hasher: kind, name, type, data, binaryData/stringData).
                if matches!(n.get("stringData"), Some(Node::Mapping(_))) {
                    m.insert("stringData".into(), data_map(n, "stringData"));
                }
            }
            Value::Object(m)
        }
        _ => capstan_yaml::to_json(n),
    };
    let mut s = String::new();
    go_json(&v, &mut s);
    let digest = Sha256::digest(s.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    hex[..10]
        .chars()
        .map(|c| match c {
            '0' => 'g',
            '1' => 'h',
            '3' => 'k',
            'a' => 'm',
            'e' => 't',
            c => c,
        })
        .collect()
}

/// Append the content hash to the names of generated resources that want one.
pub fn add_hashes(resources: &mut [Resource]) -> Result<()> {
    for r in resources.iter_mut() {
        if r.needs_hash {
            let h = hash(&r.node);
            let n = format!("{}-{h}", r.name());
            r.set_name(&n);
            r.needs_hash = false;
        }
    }
    Ok(())
}
