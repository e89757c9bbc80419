//! Rendering: every template of the chart and its subcharts parsed into one set with
//! Helm's names, executed with `.Values/.Release/.Chart/.Capabilities/.Template/.Files`
//! exactly as Helm's engine builds them.

use crate::chart::Chart;
use crate::error::HelmError;
use crate::value::{Map as VMap, Val};
use capstan_gotemplate::{
    with_stack, ExecState, Map, MapRef, Object, Options, StructObject, TemplateSet, Value,
};
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

/// The cluster Helm renders for.
#[derive(Debug, Clone)]
pub struct Capabilities {
    /// e.g. `v1.36.0`.
    pub kube_version: String,
    /// API versions (`group/version` and `group/version/Kind`).
    pub api_versions: Vec<String>,
}

/// The API versions Helm v4.2 reports without a cluster (client-go v0.36's scheme).
pub const DEFAULT_API_VERSIONS: &[&str] = &[
    "v1",
    "admissionregistration.k8s.io/v1",
    "admissionregistration.k8s.io/v1alpha1",
    "admissionregistration.k8s.io/v1beta1",
    "internal.apiserver.k8s.io/v1alpha1",
    "apps/v1",
    "apps/v1beta1",
    "apps/v1beta2",
    "authentication.k8s.io/v1",
    "authentication.k8s.io/v1alpha1",
    "authentication.k8s.io/v1beta1",
    "authorization.k8s.io/v1",
    "authorization.k8s.io/v1beta1",
    "autoscaling/v1",
    "autoscaling/v2",
    "batch/v1",
    "batch/v1beta1",
    "certificates.k8s.io/v1",
    "certificates.k8s.io/v1beta1",
    "certificates.k8s.io/v1alpha1",
    "coordination.k8s.io/v1alpha2",
    "coordination.k8s.io/v1beta1",
    "coordination.k8s.io/v1",
    "discovery.k8s.io/v1",
    "discovery.k8s.io/v1beta1",
    "events.k8s.io/v1",
    "events.k8s.io/v1beta1",
    "extensions/v1beta1",
    "flowcontrol.apiserver.k8s.io/v1",
    "flowcontrol.apiserver.k8s.io/v1beta1",
    "flowcontrol.apiserver.k8s.io/v1beta2",
    "flowcontrol.apiserver.k8s.io/v1beta3",
    "networking.k8s.io/v1",
    "networking.k8s.io/v1beta1",
    "node.k8s.io/v1",
    "node.k8s.io/v1alpha1",
    "node.k8s.io/v1beta1",
    "policy/v1",
    "policy/v1beta1",
    "rbac.authorization.k8s.io/v1",
    "rbac.authorization.k8s.io/v1beta1",
    "rbac.authorization.k8s.io/v1alpha1",
    "resource.k8s.io/v1",
    "resource.k8s.io/v1beta2",
    "resource.k8s.io/v1beta1",
    "resource.k8s.io/v1alpha3",
    "scheduling.k8s.io/v1alpha2",
    "scheduling.k8s.io/v1beta1",
    "scheduling.k8s.io/v1",
    "storage.k8s.io/v1beta1",
    "storage.k8s.io/v1",
    "storage.k8s.io/v1alpha1",
    "storagemigration.k8s.io/v1beta1",
    "apiextensions.k8s.io/v1beta1",
    "apiextensions.k8s.io/v1",
];

/// The Kubernetes version Helm v4.2.3 reports without a cluster.
pub const DEFAULT_KUBE_VERSION: &str = "v1.36.0";

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities {
            kube_version: DEFAULT_KUBE_VERSION.into(),
            api_versions: DEFAULT_API_VERSIONS.iter().map(|s| s.to_string()).collect(),
        }
    }
}

impl Capabilities {
    /// `--kube-version V` as Helm parses it (`v` added, Major/Minor from the numbers).
    pub fn with_kube_version(mut self, v: &str) -> Result<Self, HelmError> {
        let v = v.trim();
        let body = v.strip_prefix('v').unwrap_or(v);
        let mut parts = body.split(['.', '-', '+']);
        let ok = parts
            .next()
            .is_some_and(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
            && parts
                .next()
                .is_some_and(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
        if !ok {
            return Err(HelmError::Chart(format!(
                "invalid kube version {v:?}: could not parse {v:?} as version"
            )));
        }
        self.kube_version = format!("v{body}");
        Ok(self)
    }

    /// The version without suffixes (`v1.33.4-gke.1` → `v1.33.4`), what constraints see.
    pub fn normalized_kube_version(&self) -> String {
        let body = self.kube_version.trim_start_matches('v');
        let core: String = body
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        let nums: Vec<&str> = core.split('.').filter(|s| !s.is_empty()).collect();
        format!(
            "v{}",
            nums.iter()
                .map(|n| n.trim_start_matches('0').to_string())
                .map(|n| if n.is_empty() { "0".to_string() } else { n })
                .collect::<Vec<_>>()
                .join(".")
        )
    }

    fn major_minor(&self) -> (String, String) {
        let n = self.normalized_kube_version();
        let mut it = n.trim_start_matches('v').split('.');
        let maj = it.next().unwrap_or("0").trim_start_matches('0');
        let min = it.next().unwrap_or("0").trim_start_matches('0');
        (
            if maj.is_empty() {
                "0".into()
            } else {
                maj.into()
            },
            if min.is_empty() {
                "0".into()
            } else {
                min.into()
            },
        )
    }

    fn to_value(&self) -> Value {
        let (major, minor) = self.major_minor();
        let norm = self.normalized_kube_version();
        let kv_ver = self.kube_version.clone();
        let norm2 = norm.clone();
        // Helm's `common.KubeVersion {Version, normalizedVersion, Major, Minor}` with
        // `func (*KubeVersion) String()`: `{{ .Capabilities.KubeVersion }}` prints
        // `v1.36.0`, a function receiving it (`quote`, `print`) `{v1.36.0 v1.36.0 1 36}`
        let kube = StructObject::new("common.KubeVersion")
            .with_kind("struct")
            .with_field("Version", Value::str(&self.kube_version))
            .with_field("normalizedVersion", Value::str(&norm))
            .with_field("Major", Value::str(&major))
            .with_field("Minor", Value::str(&minor))
            .with_method("String", move |_| Ok(Value::str(&norm2)))
            .with_method("GitVersion", move |_| Ok(Value::str(&kv_ver)))
            .with_json_fields(vec![
                ("Version".into(), Value::str(&self.kube_version)),
                ("Major".into(), Value::str(&major)),
                ("Minor".into(), Value::str(&minor)),
            ])
            .with_ptr_stringer(norm)
            .into_value();
        let apis = self.api_versions.clone();
        let apis_list = Value::list(apis.iter().map(|s| Value::str(s)).collect());
        let api_obj = StructObject::new("common.VersionSet")
            .with_method("Has", move |args| {
                let want = args.first().and_then(|a| a.as_str()).unwrap_or("");
                Ok(Value::Bool(apis.iter().any(|a| a == want)))
            })
            .with_kind("slice")
            .with_data(apis_list)
            .with_stringer(format!("[{}]", self.api_versions.join(" ")))
            .into_value();
        let helm = StructObject::new("version.BuildInfo")
            .with_kind("struct")
            .with_field("Version", Value::str("v4.2"))
            .with_field("GitCommit", Value::str(""))
            .with_field("GitTreeState", Value::str(""))
            .with_field("GoVersion", Value::str("go1.26.6"))
            .with_field("KubeClientVersion", Value::str("v1.36"))
            // json:"version,omitempty", git_commit, git_tree_state (empty), go_version...
            .with_json_fields(vec![
                ("version".into(), Value::str("v4.2")),
                ("go_version".into(), Value::str("go1.26.6")),
                ("kube_client_version".into(), Value::str("v1.36")),
            ])
            .into_value();
        StructObject::new("*common.Capabilities")
            .with_field("KubeVersion", kube)
            .with_field("APIVersions", api_obj)
            .with_field("HelmVersion", helm)
            .into_value()
    }
}

/// Release information (`.Release`).
#[derive(Debug, Clone)]
pub struct ReleaseInfo {
    pub name: String,
    pub namespace: String,
    pub revision: i64,
    pub is_install: bool,
    pub is_upgrade: bool,
}

impl ReleaseInfo {
    fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("Name".into(), Value::str(&self.name));
        m.insert("Namespace".into(), Value::str(&self.namespace));
        m.insert("IsUpgrade".into(), Value::Bool(self.is_upgrade));
        m.insert("IsInstall".into(), Value::Bool(self.is_install));
        m.insert("Revision".into(), Value::Int(self.revision));
        m.insert("Service".into(), Value::str("Helm"));
        Value::map(m)
    }
}

/// Converts a [`Val`] into a template [`Value`].
pub fn to_value(v: &Val) -> Value {
    match v {
        Val::Null => Value::Nil,
        Val::Bool(b) => Value::Bool(*b),
        Val::Int(i) => Value::Int64(*i),
        Val::Float(f) => Value::Float(*f),
        Val::Str(s) => Value::str(s),
        Val::List(l) => Value::list(l.iter().map(|e| with_stack(|| to_value(e))).collect()),
        Val::Map(m) => Value::map(
            m.iter()
                .map(|(k, v)| (k.clone(), with_stack(|| to_value(v))))
                .collect(),
        ),
    }
}

fn strs(v: &[String]) -> Value {
    Value::list(v.iter().map(|s| Value::str(s)).collect())
}

fn chart_value(c: &Chart, is_root: bool) -> Value {
    let md = &c.metadata;
    let mut m = Map::new();
    m.insert("APIVersion".into(), Value::str(&md.api_version));
    m.insert(
        "Annotations".into(),
        if md.annotations.is_empty() {
            Value::Nil
        } else {
            Value::map(
                md.annotations
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::str(v)))
                    .collect(),
            )
        },
    );
    m.insert("AppVersion".into(), Value::str(&md.app_version));
    m.insert("Condition".into(), Value::str(&md.condition));
    let deps: Vec<Value> = md
        .dependencies
        .iter()
        .map(|d| {
            let mut dm = Map::new();
            dm.insert("Name".into(), Value::str(&d.name));
            dm.insert("Version".into(), Value::str(&d.version));
            dm.insert("Repository".into(), Value::str(&d.repository));
            dm.insert("Condition".into(), Value::str(&d.condition));
            dm.insert("Tags".into(), strs(&d.tags));
            dm.insert("Enabled".into(), Value::Bool(d.enabled));
            dm.insert(
                "ImportValues".into(),
                Value::list(d.import_values.iter().map(to_value).collect()),
            );
            dm.insert("Alias".into(), Value::str(&d.alias));
            Value::map(dm)
        })
        .collect();
    m.insert("Dependencies".into(), Value::list(deps));
    m.insert("Deprecated".into(), Value::Bool(md.deprecated));
    m.insert("Description".into(), Value::str(&md.description));
    m.insert("Home".into(), Value::str(&md.home));
    m.insert("Icon".into(), Value::str(&md.icon));
    m.insert("IsRoot".into(), Value::Bool(is_root));
    m.insert("Keywords".into(), strs(&md.keywords));
    m.insert("KubeVersion".into(), Value::str(&md.kube_version));
    let maint: Vec<Value> = md
        .maintainers
        .iter()
        .map(|mm| {
            let mut o = Map::new();
            o.insert(
                "Name".into(),
                Value::str(mm.get("name").and_then(Val::as_str).unwrap_or("")),
            );
            o.insert(
                "Email".into(),
                Value::str(mm.get("email").and_then(Val::as_str).unwrap_or("")),
            );
            o.insert(
                "URL".into(),
                Value::str(mm.get("url").and_then(Val::as_str).unwrap_or("")),
            );
            Value::map(o)
        })
        .collect();
    m.insert("Maintainers".into(), Value::list(maint));
    m.insert("Name".into(), Value::str(&md.name));
    m.insert("Sources".into(), strs(&md.sources));
    m.insert("Tags".into(), Value::str(&md.tags));
    m.insert("Type".into(), Value::str(&md.chart_type));
    m.insert("Version".into(), Value::str(&md.version));
    Value::map(m)
}

/// Helm's `.Files` (`engine.files`).
pub struct Files {
    files: BTreeMap<String, Vec<u8>>,
    /// The map view (`range`, `len`, `if`, `toYaml`), built once.
    data: OnceLock<Value>,
}

impl Files {
    fn new_value(files: BTreeMap<String, Vec<u8>>) -> Value {
        Value::Object(Arc::new(Files {
            files,
            data: OnceLock::new(),
        }))
    }
    fn as_map(&self, f: impl Fn(&[u8]) -> String) -> Value {
        let mut m = Map::new();
        for (k, v) in &self.files {
            let base = k.rsplit('/').next().unwrap_or(k);
            m.insert(base.to_string(), Value::str(&f(v)));
        }
        Value::map(m)
    }
}

/// A Go `[]byte` (`.Files.GetBytes`): printed as numbers (`[104 105]`), a string to
/// `toString`/`quote`/`printf "%s"`, base64 to `toJson`/`toYaml`, bytes to `len`, `index`
/// and `range`.
struct Bytes(Vec<u8>);

impl Object for Bytes {
    fn type_name(&self) -> String {
        "[]uint8".into()
    }
    fn kind(&self) -> &'static str {
        "slice"
    }
    fn field(&self, _name: &str) -> Option<Value> {
        None
    }
    fn to_data(&self) -> Value {
        Value::list(self.0.iter().map(|&b| Value::Int(b as i64)).collect())
    }
    fn go_string(&self) -> String {
        let mut s = String::with_capacity(self.0.len() * 4 + 2);
        s.push('[');
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                s.push(' ');
            }
            s.push_str(&b.to_string());
        }
        s.push(']');
        s
    }
    fn bytes(&self) -> Option<&[u8]> {
        Some(&self.0)
    }
}

fn arg_str(args: &[Value], i: usize) -> String {
    args.get(i)
        .map(|v| {
            v.as_str()
                .map(|s| s.to_string())
                .unwrap_or_else(|| v.to_go_string())
        })
        .unwrap_or_default()
}

impl Object for Files {
    fn type_name(&self) -> String {
        "engine.files".into()
    }
    fn kind(&self) -> &'static str {
        "map"
    }
    fn field(&self, _name: &str) -> Option<Value> {
        None
    }
    fn has_method(&self, name: &str) -> bool {
        matches!(
            name,
            "Get" | "GetBytes" | "Glob" | "AsConfig" | "AsSecrets" | "Lines"
        )
    }
    fn call_method(&self, name: &str, args: &[Value]) -> Option<Result<Value, String>> {
        Some(match name {
            "Get" => {
                let n = arg_str(args, 0);
                Ok(Value::str(
                    &self
                        .files
                        .get(&n)
                        .map(|b| String::from_utf8_lossy(b).into_owned())
                        .unwrap_or_default(),
                ))
            }
            // Helm: `[]byte` (an empty one for a missing file)
            "GetBytes" => {
                let n = arg_str(args, 0);
                let data = self.files.get(&n).cloned().unwrap_or_default();
                Ok(Value::Object(Arc::new(Bytes(data))))
            }
            "Glob" => {
                let pat = arg_str(args, 0);
                let re = glob_regex(&pat);
                let files = self
                    .files
                    .iter()
                    .filter(|(k, _)| re.as_ref().is_some_and(|r| r.is_match(k)))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                Ok(Files::new_value(files))
            }
            // `toYAML(map[string]string)`: an empty map (an empty `Glob`) prints `{}`
            "AsConfig" => Ok(Value::str(&yaml_string_map(
                &self.as_map(|b| String::from_utf8_lossy(b).into_owned()),
            ))),
            "AsSecrets" => Ok(Value::str(&yaml_string_map(&self.as_map(base64)))),
            "Lines" => {
                let n = arg_str(args, 0);
                match self.files.get(&n) {
                    // Helm: `f[path] == nil` (absent, or an empty file read from an
                    // archive) gives an empty list
                    None => Ok(Value::list(Vec::new())),
                    Some(b) if b.is_empty() => Ok(Value::list(Vec::new())),
                    Some(b) => {
                        let mut s = String::from_utf8_lossy(b).into_owned();
                        if s.ends_with('\n') {
                            s.pop();
                        }
                        Ok(Value::list(s.split('\n').map(Value::str).collect()))
                    }
                }
            }
            _ => return None,
        })
    }
    fn to_data(&self) -> Value {
        self.data
            .get_or_init(|| {
                Value::map(
                    self.files
                        .iter()
                        .map(|(k, v)| (k.clone(), Value::str(&String::from_utf8_lossy(v))))
                        .collect(),
                )
            })
            .clone()
    }
    fn go_string(&self) -> String {
        let mut s = String::from("map[");
        for (i, (k, v)) in self.files.iter().enumerate() {
            if i > 0 {
                s.push(' ');
            }
            s.push_str(k);
            s.push_str(":[");
            s.push_str(
                &v.iter()
                    .map(|b| b.to_string())
                    .collect::<Vec<_>>()
                    .join(" "),
            );
            s.push(']');
        }
        s.push(']');
        s
    }
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = ((b[0] as u32) << 16) | ((b[1] as u32) << 8) | b[2] as u32;
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

/// gobwas/glob with `/` as separator: `*` within a segment, `**` across, `?`, `[..]`, `{a,b}`.
fn glob_regex(pat: &str) -> Option<regex::Regex> {
    let mut re = String::from("^");
    let chars: Vec<char> = pat.chars().collect();
    let mut i = 0;
    let mut in_alt = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '*' => {
                if i + 1 < chars.len() && chars[i + 1] == '*' {
                    re.push_str(".*");
                    i += 1;
                } else {
                    re.push_str("[^/]*");
                }
            }
            '?' => re.push_str("[^/]"),
            '[' => {
                let mut j = i + 1;
                let mut cls = String::from("[");
                if j < chars.len() && chars[j] == '!' {
                    cls.push('^');
                    j += 1;
                }
                while j < chars.len() && chars[j] != ']' {
                    if chars[j] == '\\' {
                        cls.push('\\');
                    }
                    cls.push(chars[j]);
                    j += 1;
                }
                cls.push(']');
                re.push_str(&cls);
                i = j;
            }
            '{' => {
                re.push_str("(?:");
                in_alt += 1;
            }
            '}' if in_alt > 0 => {
                re.push(')');
                in_alt -= 1;
            }
            ',' if in_alt > 0 => re.push('|'),
            '\\' if i + 1 < chars.len() => {
                i += 1;
                re.push_str(&regex::escape(&chars[i].to_string()));
            }
            c => re.push_str(&regex::escape(&c.to_string())),
        }
        i += 1;
    }
    re.push('$');
    regex::Regex::new(&re).ok()
}

/// A `map[string]string` as sigs.k8s.io/yaml prints it (for AsConfig/AsSecrets), without
/// the final newline (Helm's `toYAML`): `{}` when empty.
fn yaml_string_map(v: &Value) -> String {
    let Some(m) = v.as_map() else {
        return String::new();
    };
    if m.is_empty() {
        return "{}".into();
    }
    let mut out = String::new();
    for (k, v) in m.read().iter() {
        let s = v.as_str().unwrap_or("");
        out.push_str(&yaml_key(k));
        out.push(':');
        out.push_str(&yaml_scalar_value(s, 0));
        out.push('\n');
    }
    while out.ends_with('\n') {
        out.pop();
    }
    out
}

fn needs_quote(s: &str) -> bool {
    if s.is_empty() {
        return true;
    }
    let v = crate::yaml::resolve_scalar(
        s,
        saphyr_parser::ScalarStyle::Plain,
        None,
        crate::yaml::Numbers::Native,
    );
    if !matches!(v, Val::Str(_)) {
        return true;
    }
    let first = s.chars().next().unwrap();
    if "-?:,[]{}#&*!|>'\"%@`".contains(first) || first == ' ' {
        // "- x" etc; a lone "-" or "-x" is plain in go-yaml only when safe; quote conservatively
        if first != '-' || s.len() <= 1 || s.starts_with("- ") || s.starts_with("---") {
            return true;
        }
    }
    s.ends_with(' ')
        || s.contains(": ")
        || s.contains(" #")
        || s.ends_with(':')
        || s.contains('\t')
        || s.chars().any(|c| c.is_control())
}

fn yaml_key(k: &str) -> String {
    if needs_quote(k) {
        format!("\"{}\"", k.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        k.to_string()
    }
}

fn yaml_scalar_value(s: &str, indent: usize) -> String {
    if s.contains('\n') && !s.contains('\r') && !s.starts_with(' ') {
        let chomp = if s.ends_with("\n\n") {
            "+"
        } else if s.ends_with('\n') {
            ""
        } else {
            "-"
        };
        let pad = " ".repeat(indent + 2);
        let mut out = format!(" |{chomp}\n");
        let body = s.strip_suffix('\n').unwrap_or(s);
        for line in body.split('\n') {
            if line.is_empty() {
                out.push('\n');
            } else {
                out.push_str(&pad);
                out.push_str(line);
                out.push('\n');
            }
        }
        out.pop();
        out
    } else if needs_quote(s) {
        if s.contains('\'') || s.chars().any(|c| c.is_control()) {
            format!(" {}", serde_json::to_string(s).unwrap_or_default())
        } else {
            format!(" '{s}'")
        }
    } else {
        format!(" {s}")
    }
}

struct Renderable {
    src: String,
    data: MapRef,
    base_path: String,
}

fn is_template_valid(c: &Chart, name: &str) -> bool {
    if c.is_library() {
        name.rsplit('/').next().is_some_and(|b| b.starts_with('_'))
    } else {
        true
    }
}

fn rec_all_tpls(
    c: &Chart,
    full_path: &str,
    is_root: bool,
    parent: &MapRef,
    templates: &mut BTreeMap<String, Renderable>,
) -> MapRef {
    let next = MapRef::new(Map::new());
    let subcharts = MapRef::new(Map::new());
    let files: BTreeMap<String, Vec<u8>> = c
        .files
        .iter()
        .map(|f| (f.name.clone(), f.data.clone()))
        .collect();
    {
        let p = parent.read();
        let mut n = next.write();
        n.insert("Chart".into(), chart_value(c, is_root));
        n.insert("Files".into(), Files::new_value(files));
        n.insert(
            "Release".into(),
            p.get("Release").cloned().unwrap_or(Value::Nil),
        );
        n.insert(
            "Capabilities".into(),
            p.get("Capabilities").cloned().unwrap_or(Value::Nil),
        );
        let values = if is_root {
            p.get("Values").cloned().unwrap_or_else(Value::empty_map)
        } else {
            match p
                .get("Values")
                .and_then(|v| v.as_map().and_then(|m| m.get(c.name())))
            {
                Some(v @ Value::Map(_)) => v,
                _ => Value::empty_map(),
            }
        };
        n.insert("Values".into(), values);
        n.insert("Subcharts".into(), Value::Map(subcharts.clone()));
    }
    for child in &c.dependencies {
        let child_path = format!("{}/charts/{}", full_path, child.name());
        let sub = with_stack(|| rec_all_tpls(child, &child_path, false, &next, templates));
        subcharts.insert(child.name().to_string(), Value::Map(sub));
    }
    for t in &c.templates {
        if !is_template_valid(c, &t.name) {
            continue;
        }
        templates.insert(
            format!("{}/{}", full_path, t.name),
            Renderable {
                src: crate::utf8_string(&t.data),
                data: next.clone(),
                base_path: format!("{full_path}/templates"),
            },
        );
    }
    next
}

/// Helm's `sortTemplates`: deepest paths first, then reverse lexical.
fn sort_templates(names: &mut [String]) {
    names.sort_by(|a, b| {
        let (ca, cb) = (a.matches('/').count(), b.matches('/').count());
        cb.cmp(&ca).then_with(|| b.cmp(a))
    });
}

/// One level of Helm v4's error trace, then the nested levels; `None` when Helm would
/// print Go's plain error instead (a function error that is not a template error, such
/// as `index out of range` or a failing `tpl`).
fn trace(location: &str, executing: &str, context: &str, msg: &str) -> Option<String> {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        regex::Regex::new(
            r#"(?s)^template: (.+?): executing "((?:[^"\\]|\\.)*)" at <(.*?)>: (.*)$"#,
        )
        .unwrap()
    });
    let mut out = format!("{location}\n  executing {executing:?} at <{context}>:\n    ");
    match msg
        .strip_prefix("error calling ")
        .and_then(|r| r.split_once(": "))
    {
        Some((f, tail)) => {
            out.push_str(&format!("error calling {f}:\n"));
            if let Some(c) = re.captures(tail) {
                let name = c[2].replace("\\\"", "\"");
                out.push_str(&with_stack(|| trace(&c[1], &name, &c[3], &c[4]))?);
            } else if tail.starts_with("template: no template ") {
                out.push_str(tail);
            } else {
                return None;
            }
        }
        None => out.push_str(msg),
    }
    Some(out)
}

/// Formats a template error the way Helm v4 prints it.
pub fn format_error(e: &capstan_gotemplate::Error) -> String {
    use capstan_gotemplate::ErrorKind;
    let msg = &e.message;
    if let (Some(s), Some(t)) = (msg.find("HELM_ERR_START"), msg.rfind("HELM_ERR_END")) {
        if s + 14 <= t {
            return format!(
                "execution error at ({}:{}:{}): {}",
                e.template,
                e.line,
                e.col,
                &msg[s + 14..t]
            );
        }
    }
    if e.kind == ErrorKind::Exec {
        for f in ["required", "fail"] {
            if let Some(rest) = msg.strip_prefix(&format!("error calling {f}: ")) {
                return format!(
                    "execution error at ({}:{}:{}): {}",
                    e.template, e.line, e.col, rest
                );
            }
        }
    }
    match e.kind {
        ErrorKind::Parse => format!("parse error at ({}:{}): {}", e.template, e.line, msg),
        ErrorKind::Exec => trace(
            &format!("{}:{}:{}", e.template, e.line, e.col),
            &e.executing,
            &e.context,
            msg,
        )
        .unwrap_or_else(|| e.to_string()),
        ErrorKind::Other => msg.clone(),
    }
}

/// Renders every template; returns file name → output (partials and library templates
/// excluded; NOTES.txt included, the caller drops it).
pub fn render(
    chart: &Chart,
    values: &VMap,
    release: &ReleaseInfo,
    caps: &Capabilities,
) -> Result<BTreeMap<String, String>, HelmError> {
    render_with(chart, values, release, caps, None)
}

/// The function map with a live `lookup` (Helm's install/upgrade against a cluster).
pub fn funcs_with_lookup(lookup: capstan_sprig::LookupFn) -> Arc<capstan_gotemplate::FuncMap> {
    Arc::new(crate::recursion::bounded(
        &capstan_gotemplate::FuncMap::with_builtins(capstan_sprig::funcs(
            capstan_sprig::HelmOptions {
                lookup: Some(lookup),
            },
        )),
    ))
}

/// The offline function map (`helm template` has no `lookup`), with `include`/`tpl`
/// bounded ([`crate::recursion`]); built once per process.
fn offline_funcs() -> Arc<capstan_gotemplate::FuncMap> {
    static FUNCS: OnceLock<Arc<capstan_gotemplate::FuncMap>> = OnceLock::new();
    FUNCS
        .get_or_init(|| Arc::new(crate::recursion::bounded(&capstan_sprig::shared_funcs())))
        .clone()
}

/// [`render`] with another function map (e.g. [`funcs_with_lookup`]); `None` is the
/// shared offline map. A map given here should come from [`funcs_with_lookup`] (or
/// [`crate::recursion::bounded`]) so that `include`/`tpl` nesting is bounded.
///
/// The templates run on the calling thread, growing its stack in segments where they
/// nest deep ([`crate::recursion::on_render_thread`]), whatever thread calls this.
pub fn render_with(
    chart: &Chart,
    values: &VMap,
    release: &ReleaseInfo,
    caps: &Capabilities,
    funcs: Option<Arc<capstan_gotemplate::FuncMap>>,
) -> Result<BTreeMap<String, String>, HelmError> {
    crate::recursion::on_render_thread(&format!("rendering chart {}", chart.name()), || {
        render_on_this_thread(chart, values, release, caps, funcs)
    })
}

fn render_on_this_thread(
    chart: &Chart,
    values: &VMap,
    release: &ReleaseInfo,
    caps: &Capabilities,
    funcs: Option<Arc<capstan_gotemplate::FuncMap>>,
) -> Result<BTreeMap<String, String>, HelmError> {
    crate::recursion::reset();
    let top = MapRef::new(Map::new());
    top.insert("Values", to_value(&Val::Map(values.clone())));
    top.insert("Release", release.to_value());
    top.insert("Capabilities", caps.to_value());
    let mut templates = BTreeMap::new();
    rec_all_tpls(chart, chart.name(), true, &top, &mut templates);

    // the offline function map is built once per process (`helm template` has no `lookup`)
    let funcs = funcs.unwrap_or_else(offline_funcs);
    let mut set = TemplateSet::new_shared(funcs).with_options(Options::default());
    let mut keys: Vec<String> = templates.keys().cloned().collect();
    sort_templates(&mut keys);
    for k in &keys {
        set.add(k, &templates[k].src)
            .map_err(|e| HelmError::Render(format_error(&e)))?;
    }
    let mut state = ExecState::default();
    let mut out = BTreeMap::new();
    for k in &keys {
        if k.rsplit('/').next().is_some_and(|b| b.starts_with('_')) {
            continue;
        }
        let r = &templates[k];
        let mut tm = Map::new();
        tm.insert("Name".into(), Value::str(k));
        tm.insert("BasePath".into(), Value::str(&r.base_path));
        r.data.insert("Template", Value::map(tm));
        let s = set
            .execute_with(k, &Value::Map(r.data.clone()), &mut state)
            .map_err(|e| HelmError::Render(format_error(&e)))?;
        out.insert(k.clone(), s.replace("<no value>", ""));
    }
    Ok(out)
}
