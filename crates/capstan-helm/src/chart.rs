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

/// Helm's `MaxDecompressedChartSize`: what a chart may decompress to in all (100 MiB).
pub const MAX_DECOMPRESSED_CHART_SIZE: u64 = 100 * 1024 * 1024;

/// Helm's `MaxDecompressedFileSize` (5 MiB): the per-file limit Helm 3.17.3 to 4.1
/// enforced on archive entries. Helm 4.2 no longer enforces it (helm/helm#31748: only
/// the aggregate size counts), so [`LoadLimits::default`] does not either; set
/// [`LoadLimits::max_file_size`] to this value for the older behaviour.
pub const MAX_DECOMPRESSED_FILE_SIZE: u64 = 5 * 1024 * 1024;

/// How deep subcharts (`charts/x/charts/y/...`, directories or archives) may nest. Helm
/// has no such limit; real charts nest a few levels, and an archive nesting archives
/// thousands deep would otherwise recurse without bound.
pub const MAX_SUBCHART_DEPTH: usize = 64;

/// Bounds on what loading a chart may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadLimits {
    /// Total bytes of every file of the chart and its subcharts (archive entries as
    /// decompressed, directory files as read). Helm: [`MAX_DECOMPRESSED_CHART_SIZE`].
    pub max_chart_size: u64,
    /// Bytes of one archive entry ([`MAX_DECOMPRESSED_FILE_SIZE`] in Helm 3.17.3-4.1; by
    /// default the same as `max_chart_size`, as Helm 4.2).
    pub max_file_size: u64,
    /// [`MAX_SUBCHART_DEPTH`].
    pub max_subchart_depth: usize,
}

impl Default for LoadLimits {
    fn default() -> Self {
        LoadLimits {
            max_chart_size: MAX_DECOMPRESSED_CHART_SIZE,
            max_file_size: MAX_DECOMPRESSED_CHART_SIZE,
            max_subchart_depth: MAX_SUBCHART_DEPTH,
        }
    }
}

/// What is left of the limits while one chart (and its subcharts) loads: one budget for
/// all of it, so that archives nested in archives cannot multiply it.
struct Budget {
    limits: LoadLimits,
    remaining: u64,
    depth: usize,
}

impl Budget {
    fn new(limits: LoadLimits) -> Self {
        Budget {
            limits,
            remaining: limits.max_chart_size,
            depth: 0,
        }
    }
}

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

fn strip_bom(mut data: Vec<u8>) -> Vec<u8> {
    if data.starts_with(UTF8_BOM) {
        data.drain(..UTF8_BOM.len());
    }
    data
}

/// Loads a chart from a directory or a `.tgz` file.
pub fn load(fs: &dyn FileSystem, path: &Path) -> Result<Chart, HelmError> {
    load_with(fs, path, &LoadLimits::default())
}

/// [`load`] with other limits.
pub fn load_with(
    fs: &dyn FileSystem,
    path: &Path,
    limits: &LoadLimits,
) -> Result<Chart, HelmError> {
    let mut budget = Budget::new(*limits);
    if fs.is_dir(path) {
        load_dir_budget(fs, path, &mut budget)
    } else if fs.is_file(path) {
        let data = fs.read(path).map_err(|e| HelmError::Load(e.to_string()))?;
        load_archive_budget(&data, &path.display().to_string(), &mut budget)
    } else {
        Err(HelmError::Load(format!(
            "path {:?} not found",
            path.display().to_string()
        )))
    }
}

/// Loads a chart directory, honouring `.helmignore`.
pub fn load_dir(fs: &dyn FileSystem, root: &Path) -> Result<Chart, HelmError> {
    load_dir_budget(fs, root, &mut Budget::new(LoadLimits::default()))
}

fn load_dir_budget(
    fs: &dyn FileSystem,
    root: &Path,
    budget: &mut Budget,
) -> Result<Chart, HelmError> {
    let ignore = match fs.read_to_string(&root.join(".helmignore")) {
        Ok(t) => Rules::parse(&t),
        Err(_) => Rules::parse(""),
    };
    let mut files = Vec::new();
    walk(fs, root, "", &ignore, &mut files, budget)?;
    load_files_budget(files, budget)
}

fn walk(
    fs: &dyn FileSystem,
    root: &Path,
    rel: &str,
    ignore: &Rules,
    out: &mut Vec<ChartFile>,
    budget: &mut Budget,
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
            capstan_gotemplate::with_stack(|| walk(fs, root, &r, ignore, out, budget))?;
        } else {
            if ignore.ignore(&r, false) {
                continue;
            }
            let data = fs
                .read(&p)
                .map_err(|e| HelmError::Load(format!("{}: {e}", p.display())))?;
            // Helm's `ReadFileWithBudget` (LoadDir)
            let size = data.len() as u64;
            if size > budget.remaining {
                return Err(HelmError::Load(format!(
                    "{}: chart exceeds maximum decompressed size of {} bytes (at {r})",
                    root.display(),
                    budget.limits.max_chart_size
                )));
            }
            budget.remaining -= size;
            out.push(ChartFile {
                name: r,
                data: strip_bom(data),
            });
        }
    }
    Ok(())
}

/// Loads a gzipped tar of a chart (the first path component is the chart directory), as
/// Helm's `LoadArchiveFiles`: entry names are checked (absolute paths, `..`, drive
/// letters, a Chart.yaml outside the chart directory), and what the entries decompress
/// to is bounded by [`LoadLimits`] (read incrementally: a bomb fails as soon as it
/// passes the limit, having decompressed no more than the limit).
pub fn load_archive(data: &[u8]) -> Result<Chart, HelmError> {
    load_archive_with(data, "chart archive", &LoadLimits::default())
}

/// [`load_archive`] with other limits; `name` (the archive's path) is named in errors.
pub fn load_archive_with(data: &[u8], name: &str, limits: &LoadLimits) -> Result<Chart, HelmError> {
    load_archive_budget(data, name, &mut Budget::new(*limits))
}

fn load_archive_budget(data: &[u8], name: &str, budget: &mut Budget) -> Result<Chart, HelmError> {
    let files = archive_files(data, budget).map_err(|e| HelmError::Load(format!("{name}: {e}")))?;
    load_files_budget(files, budget)
}

/// Go's `path.Clean` for `/`-separated names.
fn clean_path(p: &str) -> String {
    let rooted = p.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            x => out.push(x),
        }
    }
    let body = out.join("/");
    match (rooted, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".into(),
        (false, false) => body,
    }
}

fn archive_files(data: &[u8], budget: &mut Budget) -> Result<Vec<ChartFile>, String> {
    let max_total = budget.limits.max_chart_size;
    let too_large = || format!("decompressed chart is larger than the maximum size {max_total}");
    let gz = flate2::read::MultiGzDecoder::new(data);
    let mut ar = tar::Archive::new(gz);
    let mut files: Vec<ChartFile> = Vec::new();
    // a later entry with the same name replaces an earlier one (in its place): one
    // lookup per entry, so loading is linear in the number of entries
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let entries = ar
        .entries()
        .map_err(|e| format!("failed to read chart archive: {e}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("failed to read chart archive: {e}"))?;
        let et = entry.header().entry_type();
        if et.is_dir() || et.is_pax_global_extensions() || et.is_pax_local_extensions() {
            continue;
        }
        if et.is_gnu_longname() || et.is_gnu_longlink() {
            continue;
        }
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        // an archive made on Windows may use `\`
        let delim = if raw.contains('\\') { '\\' } else { '/' };
        let parts: Vec<&str> = raw.split(delim).collect();
        let n = parts[1..].join("/");
        if n.starts_with('/') {
            return Err("chart illegally contains absolute paths".into());
        }
        let n = clean_path(&n);
        if n == "." {
            return Err(format!(
                "chart illegally contains content outside the base directory: {raw:?}"
            ));
        }
        if n.starts_with("..") {
            return Err("chart illegally references parent directory".into());
        }
        let b = n.as_bytes();
        if b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && b[2] == b'/' {
            return Err("chart contains illegally named files".into());
        }
        if parts[0] == "Chart.yaml" {
            return Err("chart yaml not in base directory".into());
        }
        let size = entry.header().size().unwrap_or(0);
        if size > budget.remaining {
            return Err(too_large());
        }
        if size > budget.limits.max_file_size {
            return Err(format!(
                "decompressed chart file {raw:?} is larger than the maximum file size {}",
                budget.limits.max_file_size
            ));
        }
        // links and other special entries have no data: Helm keeps them as empty files
        let mut buf = Vec::with_capacity(size.min(1 << 20) as usize);
        let cap = budget.remaining.min(budget.limits.max_file_size);
        (&mut entry)
            .take(cap.saturating_add(1))
            .read_to_end(&mut buf)
            .map_err(|e| format!("failed to read chart archive: {raw}: {e}"))?;
        let got = buf.len() as u64;
        if got > budget.remaining || got < size {
            return Err(too_large());
        }
        if got > budget.limits.max_file_size {
            return Err(format!(
                "decompressed chart file {raw:?} is larger than the maximum file size {}",
                budget.limits.max_file_size
            ));
        }
        budget.remaining -= got;
        let file = ChartFile {
            name: n.clone(),
            data: strip_bom(buf),
        };
        match index.get(&n) {
            Some(&i) => files[i] = file,
            None => {
                index.insert(n, files.len());
                files.push(file);
            }
        }
    }
    if files.is_empty() {
        return Err("no files in chart archive".into());
    }
    Ok(files)
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
    load_files_budget(files, &mut Budget::new(LoadLimits::default()))
}

fn load_files_budget(files: Vec<ChartFile>, budget: &mut Budget) -> Result<Chart, HelmError> {
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
    if !subcharts.is_empty() && budget.depth >= budget.limits.max_subchart_depth {
        return Err(HelmError::Load(format!(
            "chart {}: subcharts nested deeper than {} levels",
            c.metadata.name, budget.limits.max_subchart_depth
        )));
    }
    budget.depth += 1;
    let r = load_subcharts(&mut c, subcharts, budget);
    budget.depth -= 1;
    r?;
    Ok(c)
}

fn load_subcharts(
    c: &mut Chart,
    subcharts: BTreeMap<String, Vec<ChartFile>>,
    budget: &mut Budget,
) -> Result<(), HelmError> {
    for (n, files) in subcharts {
        let sc = if n.ends_with(".tgz") {
            let Some(f) = files.into_iter().find(|f| f.name == n) else {
                continue;
            };
            archive_files(&f.data, budget)
                .map_err(HelmError::Load)
                .and_then(|files| load_files_budget(files, budget))
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
            load_files_budget(buff, budget)
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
    Ok(())
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
    if crate::semver::Version::parse(&md.version).is_err() {
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
