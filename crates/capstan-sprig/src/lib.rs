//! The Sprig function library and Helm's template functions, for `capstan-gotemplate`.
//!
//! [`funcs`] returns what Helm's engine installs: Sprig's `TxtFuncMap` minus `env` and
//! `expandenv`, plus Helm's own `toYaml`, `toYamlPretty`, `fromYaml`, `fromYamlArray`,
//! `toJson`, `fromJson`, `fromJsonArray`, `toToml`, `required`, `lookup` (through the hook in
//! [`HelmOptions`]; an empty map when offline)... `include` and `tpl` are implemented by
//! the engine itself (`capstan_gotemplate::Ctx`).
//!
//! Keys and certificates (`genPrivateKey`, `genCA`, `genSignedCert`...) are real (AWS-LC keys,
//! X.509 DER assembled like Go's `crypto/x509`, so PEM sizes match Helm's), as are
//! `htpasswd` (bcrypt), `derivePassword` (scrypt + HMAC), `encryptAES`/`decryptAES`. Dates
//! are Go `time.Time` values with layouts, zones (chrono-tz) and durations as Go prints them.
//!
//! For many renders, build the map once: [`shared_funcs`] with
//! [`capstan_gotemplate::TemplateSet::new_shared`].
//!
//! `tests/charts/` holds fixture charts with goldens rendered by Helm v4.2.3 (see
//! `tests/golden/README.md`); `tests/charts.rs` renders them with this crate alone.
//!
//! `toYaml` must print byte for byte what Helm prints (sigs.k8s.io/yaml: a JSON round trip
//! then go-yaml v2's emitter). No Rust YAML crate emits go-yaml's format, so the emitter in
//! [`yaml`] is written here.

pub mod conv;
mod crypto;
mod dates;
mod der;
mod funcs;
mod rsagen;
pub mod semver;
mod url;
pub mod yaml;

use std::sync::Arc;

use capstan_gotemplate::{FuncMap, Value};

pub use conv::strval;
pub use yaml::{to_yaml, to_yaml_pretty};

/// Helm's `lookup apiVersion kind namespace name` hook: returns the object (a map), or a
/// map with `items` for a list, or an empty map when not found / offline.
pub type LookupFn = Arc<dyn Fn(&str, &str, &str, &str) -> Result<Value, String> + Send + Sync>;

/// Options for [`funcs`].
#[derive(Clone, Default)]
pub struct HelmOptions {
    /// The `lookup` hook; `None` returns an empty map (what `helm template` does).
    pub lookup: Option<LookupFn>,
}

/// Sprig plus Helm's functions (everything but `include`/`tpl`, which the engine provides).
pub fn funcs(opts: HelmOptions) -> FuncMap {
    funcs::all(opts)
}

/// Go's builtins plus Sprig and Helm's functions with default options (`lookup` offline),
/// built once per process and shared: pass it to
/// [`capstan_gotemplate::TemplateSet::new_shared`] to create sets without copying the map.
pub fn shared_funcs() -> Arc<FuncMap> {
    static FUNCS: std::sync::OnceLock<Arc<FuncMap>> = std::sync::OnceLock::new();
    FUNCS
        .get_or_init(|| Arc::new(FuncMap::with_builtins(funcs(HelmOptions::default()))))
        .clone()
}

/// Go's `encoding/json.Marshal` of a value (Helm's `toJson`).
pub fn to_json(v: &Value) -> Result<String, String> {
    let mut s = String::new();
    conv::to_json(v, &mut s)?;
    Ok(s)
}

/// Parses YAML the way Helm's `fromYaml`/values loading do (sigs.k8s.io/yaml: YAML to JSON,
/// so every number is a float64). Multi-document input: the first document.
pub fn from_yaml(src: &str) -> Result<Value, String> {
    // sigs.k8s.io/yaml is not strict: a repeated key replaces the earlier value.
    let docs = capstan_yaml::parse_documents_last_key_wins(src, "fromYaml").map_err(|e| {
        // sigs.k8s.io/yaml's wording: "error converting YAML to JSON: yaml: line N: MSG"
        let m = e.to_string();
        let m = m.strip_prefix("fromYaml: ").unwrap_or(&m).to_string();
        let m = m.replace("while parsing a node, ", "");
        let m = match (m.find("line "), m.find(", column ")) {
            (Some(l), Some(c)) if l < c => {
                let end = m[c..].find(':').map_or(m.len(), |i| c + i);
                format!("{}{}", &m[..c], &m[end..])
            }
            _ => m,
        };
        format!("error converting YAML to JSON: {m}")
    })?;
    match docs.first() {
        Some(d) => Ok(Value::from_json(&capstan_yaml::to_json(&yaml11(d)))),
        None => Ok(Value::Nil),
    }
}

/// go-yaml v2 reads YAML 1.1: plain `yes`/`no`/`on`/`off`/`y`/`n` are booleans (also as
/// keys, which JSON then spells `"true"`/`"false"`).
fn yaml11(n: &capstan_yaml::Node) -> capstan_yaml::Node {
    use capstan_yaml::{Mapping, Node, ScalarStyle, Tag};
    fn old_bool(s: &str) -> Option<bool> {
        match s {
            "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => Some(true),
            "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => Some(false),
            _ => None,
        }
    }
    match n {
        Node::Scalar(s) => {
            let mut s = s.clone();
            if matches!(s.style, ScalarStyle::Plain | ScalarStyle::Any)
                && s.tag == Tag::Str
                && old_bool(&s.value).is_some()
            {
                s.tag = Tag::Bool;
            }
            Node::Scalar(s)
        }
        Node::Sequence(items) => Node::Sequence(items.iter().map(yaml11).collect()),
        Node::Mapping(m) => {
            let mut out = Mapping::new();
            for (k, v) in &m.entries {
                let k = match old_bool(k) {
                    Some(b) => b.to_string(),
                    None => k.clone(),
                };
                out.entries.retain(|(ek, _)| *ek != k);
                out.entries.push((k, yaml11(v)));
            }
            Node::Mapping(out)
        }
    }
}

pub(crate) fn funcs_rand_byte() -> u8 {
    funcs::rand_byte()
}
