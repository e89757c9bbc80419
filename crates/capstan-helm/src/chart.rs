//! Charts: the model and the loader (directory through a [`FileSystem`], or `.tgz`).

use crate::error::HelmError;
use crate::ignore::Rules;
use crate::value::{Map, Val};
use crate::yaml::{self, Numbers};
use capstan_vfs::FileSystem;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// A file of a chart, named relative to the chart root.
#[derive(Debug, Clone)]
pub struct ChartFile {
    pub name: String,
    pub data: Vec<u8>,
}

/// A dependency entry of Chart.yaml.
#[derive(Debug, Clone, Default)]
pub struct Dependency {
    pub name: String,
    pub version: String,
    pub repository: String,
    pub condition: String,
    pub tags: Vec<String>,
    pub enabled: bool,
    pub import_values: Vec<Val>,
    pub alias: String,
}

/// Chart.yaml.
#[derive(Debug, Clone, Default)]
pub struct Metadata {
    pub name: String,
    pub home: String,
    pub sources: Vec<String>,
    pub version: String,
    pub description: String,
    pub keywords: Vec<String>,
    pub maintainers: Vec<Map>,
    pub icon: String,
    pub api_version: String,
    pub condition: String,
    pub tags: String,
    pub app_version: String,
    pub deprecated: bool,
    pub annotations: BTreeMap<String, String>,
    pub kube_version: String,
    pub dependencies: Vec<Dependency>,
    pub chart_type: String,
}

/// A loaded chart.
#[derive(Debug, Clone, Default)]
pub struct Chart {
    pub metadata: Metadata,
    /// values.yaml (the defaults).
    pub values: Map,
    /// values.schema.json, if any.
    pub schema: Option<Vec<u8>>,
    /// Files under templates/.
    pub templates: Vec<ChartFile>,
    /// Every other file (what `.Files` sees), including crds/.
    pub files: Vec<ChartFile>,
    /// Subcharts found in charts/.
    pub dependencies: Vec<Chart>,
}

impl Chart {
    pub fn name(&self) -> &str {
        &self.metadata.name
    }
    pub fn is_library(&self) -> bool {
        self.metadata.chart_type.eq_ignore_ascii_case("library")
    }
    /// CRD files (crds/*.yaml|yml|json) of this chart and its subcharts, with their full names.
    pub fn crd_objects(&self, full_path: &str) -> Vec<(String, &ChartFile)> {
        let mut out = Vec::new();
        for f in &self.files {
            if f.name.starts_with("crds/")
                && (f.name.ends_with(".yaml")
                    || f.name.ends_with(".yml")
                    || f.name.ends_with(".json"))
            {
                out.push((format!("{}/{}", full_path, f.name), f));
            }
        }
        for d in &self.dependencies {
            out.extend(d.crd_objects(&format!("{}/charts/{}", full_path, d.name())));
        }
        out
    }
}

/// Loads a chart from a directory or a `.tgz` file.
pub fn load(fs: &dyn FileSystem, path: &Path) -> Result<Chart, HelmError> {
    if fs.is_dir(path) {
        load_dir(fs, path)
    } else if fs.is_file(path) {
        let data = fs.read(path).map_err(|e| HelmError::Load(e.to_string()))?;
        load_archive(&data)
    } else {
        Err(HelmError::Load(format!(
            "path {:?} not found",
            path.display().to_string()
        )))
    }
}

/// Loads a chart directory, honouring `.helmignore`.
pub fn load_dir(fs: &dyn FileSystem, root: &Path) -> Result<Chart, HelmError> {
    let ignore = match fs.read_to_string(&root.join(".helmignore")) {
        Ok(t) => Rules::parse(&t),
        Err(_) => Rules::parse(""),
    };
    let mut files = Vec::new();
    walk(fs, root, "", &ignore, &mut files)?;
    load_files(files)
}

fn walk(
    fs: &dyn FileSystem,
    root: &Path,
    rel: &str,
    ignore: &Rules,
    out: &mut Vec<ChartFile>,
) -> Result<(), HelmError> {
    let dir = if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    };
    let entries = fs
        .read_dir(&dir)
        .map_err(|e| HelmError::Load(format!("{}: {e}", dir.display())))?;
    for name in entries {
        let r = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        let p = root.join(&r);
        if fs.is_dir(&p) {
            if ignore.ignore(&r, true) {
                continue;
            }
            walk(fs, root, &r, ignore, out)?;
        } else {
            if ignore.ignore(&r, false) {
                continue;
            }
            let data = fs
                .read(&p)
                .map_err(|e| HelmError::Load(format!("{}: {e}", p.display())))?;
            out.push(ChartFile { name: r, data });
        }
    }
    Ok(())
}

/// Loads a gzipped tar of a chart (the first path component is the chart directory).
pub fn load_archive(data: &[u8]) -> Result<Chart, HelmError> {
    let gz = flate2::read::GzDecoder::new(data);
    let mut ar = tar::Archive::new(gz);
    let mut files: Vec<ChartFile> = Vec::new();
    let entries = ar
        .entries()
        .map_err(|e| HelmError::Load(format!("failed to read chart archive: {e}")))?;
    for entry in entries {
        let mut entry =
            entry.map_err(|e| HelmError::Load(format!("failed to read chart archive: {e}")))?;
        let et = entry.header().entry_type();
        if !(et.is_file()) {
            continue;
        }
        let name = entry
            .path()
            .map_err(|e| HelmError::Load(e.to_string()))?
            .to_string_lossy()
            .replace('\\', "/");
        let parts: Vec<&str> = name.split('/').collect();
        if parts.len() < 2 || parts[0] == "pax_global_header" {
            continue;
        }
        let n = parts[1..].join("/");
        if n.is_empty() {
            continue;
        }
        let mut buf = Vec::new();
        entry
            .read_to_end(&mut buf)
            .map_err(|e| HelmError::Load(e.to_string()))?;
        // a later entry with the same name replaces an earlier one
        files.retain(|f| f.name != n);
        files.push(ChartFile { name: n, data: buf });
    }
    if files.is_empty() {
        return Err(HelmError::Load("no files in chart archive".into()));
    }
    load_files(files)
}

fn sval(v: Option<&Val>) -> String {
    match v {
        Some(Val::Str(s)) => s.clone(),
        Some(Val::Null) | None => String::new(),
        Some(other) => other.go_fmt(),
    }
}

fn slist(v: Option<&Val>) -> Vec<String> {
    match v {
        Some(Val::List(l)) => l.iter().map(|x| sval(Some(x))).collect(),
        _ => Vec::new(),
    }
}

fn sbool(v: Option<&Val>) -> bool {
    matches!(v, Some(Val::Str(s)) if matches!(s.as_str(), "true" | "True" | "TRUE" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" | "y" | "Y"))
}

fn parse_dependencies(v: Option<&Val>) -> Vec<Dependency> {
    let Some(Val::List(l)) = v else {
        return Vec::new();
    };
    l.iter()
        .filter_map(|d| d.as_map())
        .map(|d| Dependency {
            name: sval(d.get("name")),
            version: sval(d.get("version")),
            repository: sval(d.get("repository")),
            condition: sval(d.get("condition")),
            tags: slist(d.get("tags")),
            enabled: sbool(d.get("enabled")),
            import_values: match d.get("import-values") {
                Some(Val::List(l)) => l.clone(),
                _ => Vec::new(),
            },
            alias: sval(d.get("alias")),
        })
        .collect()
}

/// Parses Chart.yaml.
pub fn parse_metadata(text: &str) -> Result<Metadata, HelmError> {
    let v = yaml::parse(text, Numbers::Text)
        .map_err(|e| HelmError::Load(format!("cannot load Chart.yaml: {e}")))?;
    let m = match v {
        Val::Map(m) => m,
        Val::Null => Map::new(),
        _ => return Err(HelmError::Load("cannot load Chart.yaml: not a map".into())),
    };
    Ok(Metadata {
        name: sval(m.get("name")),
        home: sval(m.get("home")),
        sources: slist(m.get("sources")),
        version: sval(m.get("version")),
        description: sval(m.get("description")),
        keywords: slist(m.get("keywords")),
        maintainers: match m.get("maintainers") {
            Some(Val::List(l)) => l.iter().filter_map(|x| x.as_map().cloned()).collect(),
            _ => Vec::new(),
        },
        icon: sval(m.get("icon")),
        api_version: sval(m.get("apiVersion")),
        condition: sval(m.get("condition")),
        tags: sval(m.get("tags")),
        app_version: sval(m.get("appVersion")),
        deprecated: sbool(m.get("deprecated")),
        annotations: match m.get("annotations") {
            Some(Val::Map(a)) => a.iter().map(|(k, v)| (k.clone(), sval(Some(v)))).collect(),
            _ => BTreeMap::new(),
        },
        kube_version: sval(m.get("kubeVersion")),
        dependencies: parse_dependencies(m.get("dependencies")),
        chart_type: sval(m.get("type")),
    })
}

/// Helm's `loader.LoadFiles`.
pub fn load_files(files: Vec<ChartFile>) -> Result<Chart, HelmError> {
    let mut c = Chart::default();
    let mut have_meta = false;
    let mut requirements: Option<Vec<Dependency>> = None;
    let mut subcharts: BTreeMap<String, Vec<ChartFile>> = BTreeMap::new();
    for f in files {
        let name = f.name.clone();
        if name == "Chart.yaml" {
            let text = String::from_utf8_lossy(&f.data);
            c.metadata = parse_metadata(&text)?;
            if c.metadata.api_version.is_empty() {
                c.metadata.api_version = "v1".into();
            }
            have_meta = true;
        } else if name == "Chart.lock" || name == "requirements.lock" {
        } else if name == "values.yaml" {
            let text = String::from_utf8_lossy(&f.data);
            c.values = yaml::parse_values(&text).map_err(|e| {
                HelmError::Load(format!(
                    "cannot load values.yaml: cannot unmarshal yaml document: {e}"
                ))
            })?;
        } else if name == "values.schema.json" {
            c.schema = Some(f.data);
        } else if name == "requirements.yaml" {
            let text = String::from_utf8_lossy(&f.data);
            let v = yaml::parse(&text, Numbers::Text)
                .map_err(|e| HelmError::Load(format!("cannot load requirements.yaml: {e}")))?;
            requirements = Some(parse_dependencies(
                v.as_map().and_then(|m| m.get("dependencies")),
            ));
            c.files.push(f);
        } else if name.starts_with("templates/") {
            c.templates.push(f);
        } else if let Some(cname) = name.strip_prefix("charts/") {
            if name.ends_with(".prov") {
                c.files.push(f);
                continue;
            }
            if cname.starts_with(['.', '_']) {
                continue;
            }
            let sc = cname.split('/').next().unwrap_or(cname).to_string();
            subcharts.entry(sc).or_default().push(ChartFile {
                name: cname.to_string(),
                data: f.data,
            });
        } else {
            c.files.push(f);
        }
    }
    if !have_meta {
        return Err(HelmError::Load("Chart.yaml file is missing".into()));
    }
    if c.metadata.api_version == "v1" {
        if let Some(r) = requirements {
            c.metadata.dependencies = r;
        }
    }
    validate_metadata(&c.metadata)?;
    for (n, files) in subcharts {
        let sc = if n.ends_with(".tgz") {
            let Some(f) = files.into_iter().find(|f| f.name == n) else {
                continue;
            };
            load_archive(&f.data)
        } else {
            let buff: Vec<ChartFile> = files
                .into_iter()
                .filter_map(|f| {
                    f.name.split_once('/').map(|(_, rest)| ChartFile {
                        name: rest.to_string(),
                        data: f.data,
                    })
                })
                .collect();
            load_files(buff)
        };
        let sc = sc.map_err(|e| {
            HelmError::Load(format!(
                "error unpacking subchart {n} in {}: {}",
                c.metadata.name,
                e.inner()
            ))
        })?;
        c.dependencies.push(sc);
    }
    Ok(c)
}

fn validate_metadata(md: &Metadata) -> Result<(), HelmError> {
    let err = |m: String| Err(HelmError::Load(format!("validation: {m}")));
    if md.api_version.is_empty() {
        return err("chart.metadata.apiVersion is required".into());
    }
    if md.name.is_empty() {
        return err("chart.metadata.name is required".into());
    }
    if md.name.contains('/') || md.name.contains('\\') || md.name == "." || md.name == ".." {
        return err(format!("chart.metadata.name {:?} is invalid", md.name));
    }
    if md.version.is_empty() {
        return err("chart.metadata.version is required".into());
    }
    if crate::semver::Version::parse(&md.version).is_none() {
        return err(format!(
            "chart.metadata.version {:?} is invalid",
            md.version
        ));
    }
    if !(md.chart_type.is_empty() || md.chart_type == "application" || md.chart_type == "library") {
        return err("chart.metadata.type must be application or library".into());
    }
    let mut seen = std::collections::HashSet::new();
    for d in &md.dependencies {
        let key = if d.alias.is_empty() {
            &d.name
        } else {
            &d.alias
        };
        if !seen.insert(key.clone()) {
            return err(format!(
                "more than one dependency with name or alias {key:?}"
            ));
        }
    }
    Ok(())
}
