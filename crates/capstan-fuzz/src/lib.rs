//! Structure-aware mutation fuzzing on stable Rust.
//!
//! cargo-fuzz and libFuzzer need a nightly compiler and sanitizer instrumentation; capstan
//! builds on stable, so this crate carries a small fuzzer of its own (why: no maintained
//! stable-Rust fuzzing crate runs a target in a watched child process and keeps the input
//! that killed it). It is *structure-aware* rather than coverage-guided: inputs are text
//! (YAML, templates, file trees), and the mutations know their shape — lines, indentation,
//! template actions, YAML anchors and aliases, nesting wrappers, interesting numbers,
//! splices between seeds. An input that makes a target answer in a way not seen before (a new
//! error kind or a new output shape, see [`Target::run`]) joins the corpus, so the search
//! drifts toward new behaviour.
//!
//! The targets ([`TARGETS`]): `yaml` (parse, emit, parse again), `template` (Go templates
//! with Sprig and Helm's `include`/`tpl`), `kustomize` (a build over an in-memory tree) and
//! `units` (a cluster's units loaded and rendered the way `capstan build` does, Helm charts
//! included). A crash is a panic, an abort (a stack overflow, an allocation failure under the
//! memory limit) or an input that runs longer than the time limit; the runner in `main.rs`
//! executes targets in a child process and saves such inputs.

use std::path::{Path, PathBuf};

/// A small, fast, seedable generator (xorshift64*); fuzzing needs no cryptographic quality.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
    pub fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// What running one input told: a short signature of the outcome (its kind and shape, not
/// its full text) used to decide whether the input found something new.
pub type Signature = String;

/// A fuzz target.
pub struct Target {
    pub name: &'static str,
    /// Built-in seeds (the corpus starts from these plus any `--seeds` directories).
    pub seeds: fn() -> Vec<String>,
    /// Tokens the mutator inserts.
    pub dict: &'static [&'static str],
    /// Pairs the mutator wraps around a span to nest it.
    pub wrappers: &'static [(&'static str, &'static str)],
    /// How to collect seeds from a directory of real material.
    pub collect: fn(&Path) -> Vec<String>,
    /// Runs one input. Errors are expected outcomes; a panic, abort or hang is a crash.
    pub run: fn(&str) -> Signature,
}

/// Every target, by name.
pub const TARGETS: &[Target] = &[
    Target {
        name: "yaml",
        seeds: seeds::yaml,
        dict: YAML_DICT,
        wrappers: YAML_WRAPPERS,
        collect: collect::yaml_files,
        run: targets::yaml,
    },
    Target {
        name: "template",
        seeds: seeds::template,
        dict: TEMPLATE_DICT,
        wrappers: TEMPLATE_WRAPPERS,
        collect: collect::template_files,
        run: targets::template,
    },
    Target {
        name: "kustomize",
        seeds: seeds::kustomize,
        dict: KUSTOMIZE_DICT,
        wrappers: YAML_WRAPPERS,
        collect: collect::kustomization_trees,
        run: targets::kustomize,
    },
    Target {
        name: "units",
        seeds: seeds::units,
        dict: UNITS_DICT,
        wrappers: YAML_WRAPPERS,
        collect: collect::repository_trees,
        run: targets::units,
    },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

const YAML_DICT: &[&str] = &[
    "- ",
    ": ",
    "---\n",
    "...\n",
    "&a ",
    "*a",
    "<<: *a\n",
    "!!str ",
    "!!binary ",
    "!!map ",
    "? ",
    "|\n",
    "|-\n",
    "|+\n",
    ">\n",
    ">-\n",
    "|2\n",
    "'",
    "\"",
    "\\u00e9",
    "\\x00",
    "{",
    "}",
    "[",
    "]",
    ", ",
    "#",
    "~",
    "null",
    "yes",
    "0x1F",
    "0o17",
    "1e400",
    ".inf",
    "-.nan",
    "2001-12-14",
    "é",
    "日本",
    "\t",
    "\r\n",
    "  ",
    "apiVersion: v1\n",
    "kind: ConfigMap\n",
    "metadata:\n",
    "  name: x\n",
    "%YAML 1.2\n",
    "%TAG ! tag:x:\n",
    "\u{feff}",
];

const YAML_WRAPPERS: &[(&str, &str)] = &[
    ("[", "]"),
    ("{a: ", "}"),
    ("- ", "\n"),
    ("a:\n  ", "\n"),
    ("&x ", ""),
];

const TEMPLATE_DICT: &[&str] = &[
    "{{",
    "}}",
    "{{-",
    "-}}",
    "{{ end }}",
    "{{ else }}",
    "{{ if . }}",
    "{{ range . }}",
    "{{ with . }}",
    "{{ define \"x\" }}",
    "{{ template \"x\" . }}",
    "{{ include \"x\" . }}",
    "{{ tpl . . }}",
    "{{ block \"b\" . }}",
    "{{ break }}",
    "{{ continue }}",
    "$x := ",
    "$x = ",
    "$",
    ".Values",
    ".Values.m",
    ".Values.s",
    ".Values.l",
    ".Values.nil",
    ".Release",
    "| ",
    "(",
    ")",
    " nil ",
    " 0 ",
    " -1 ",
    " 9223372036854775807 ",
    " -9223372036854775808 ",
    " 1e308 ",
    " 65536 ",
    " 99999999999 ",
    "\"é日\"",
    "'x'",
    "`raw`",
    " toYaml ",
    " toJson ",
    " fromYaml ",
    " fromJson ",
    " printf \"%.99d\" ",
    " printf \"%*d\" ",
    " trunc 3 ",
    " repeat 3 ",
    " indent 2 ",
    " nindent 2 ",
    " quote ",
    " default ",
    " dig \"a\" \"b\" ",
    " hasKey ",
    " get ",
    " keys ",
    " pick ",
    " omit ",
    " set ",
    " unset ",
    " dict \"a\" ",
    " list ",
    " append ",
    " until 5 ",
    " untilStep 0 9 2 ",
    " div ",
    " mod ",
    " add ",
    " mul ",
    " sub ",
    " max ",
    " min ",
    " pluck ",
    " index ",
    " slice ",
    " len ",
    " eq ",
    " lt ",
    " and ",
    " or ",
    " not ",
    " regexReplaceAll \"(a*)*\" ",
    " b64enc ",
    " b64dec ",
    " sha256sum ",
    " semverCompare \">1\" ",
    " required \"m\" ",
    " fail \"f\" ",
    " lookup \"v1\" \"Secret\" \"\" \"\" ",
    " randAlphaNum 5 ",
    " genCA \"x\" 3 ",
    " toString ",
    " atoi ",
    " int64 ",
    " float64 ",
    " ternary ",
    " coalesce ",
    " empty ",
    " kindIs \"map\" ",
    " typeOf ",
    " deepCopy ",
    " merge ",
    " mergeOverwrite ",
    " splitList \",\" ",
    " join \",\" ",
    " sortAlpha ",
    " uniq ",
    " compact ",
];

const TEMPLATE_WRAPPERS: &[(&str, &str)] = &[
    ("{{ if . }}", "{{ end }}"),
    ("{{ range $i, $v := .Values.l }}", "{{ end }}"),
    ("{{ with .Values.m }}", "{{ end }}"),
    ("{{ define \"d\" }}", "{{ end }}{{ include \"d\" . }}"),
    ("(", ")"),
    ("{{ (", ") }}"),
];

const KUSTOMIZE_DICT: &[&str] = &[
    "resources:\n- ",
    "components:\n- ",
    "bases:\n- ",
    "patches:\n- ",
    "- path: ",
    "- target:\n    kind: ",
    "  patch: |-\n",
    "replacements:\n- source:\n    kind: ",
    "vars:\n- name: V\n  objref:\n    kind: ",
    "namePrefix: ",
    "nameSuffix: ",
    "namespace: ",
    "commonLabels:\n  a: b\n",
    "labels:\n- pairs:\n    a: b\n",
    "images:\n- name: ",
    "configMapGenerator:\n- name: ",
    "secretGenerator:\n- name: ",
    "  literals:\n  - k=v\n",
    "  files:\n  - ",
    "  envs:\n  - ",
    "generators:\n- ",
    "transformers:\n- ",
    "crds:\n- ",
    "openapi:\n  path: ",
    "helmCharts:\n- name: ",
    "kind: Component\n",
    "kind: Kustomization\n",
    "apiVersion: kustomize.config.k8s.io/v1alpha1\n",
    "=== ",
    "=== kustomization.yaml\n",
    "=== base/kustomization.yaml\n",
    "=== ../",
    "../",
    "./",
    "/etc/passwd",
    "$(V)",
    "$patch: delete\n",
    "$patch: replace\n",
    "- op: replace\n  path: /spec/x\n  value: 1\n",
    "[",
    "]",
    "&a ",
    "*a",
    "<<: *a\n",
    "sortOptions:\n  order: fifo\n",
    "buildMetadata: [originAnnotations]\n",
];

const UNITS_DICT: &[&str] = &[
    "apiVersion: kustomize.toolkit.fluxcd.io/v1\n",
    "kind: Kustomization\n",
    "apiVersion: helm.toolkit.fluxcd.io/v2\n",
    "kind: HelmRelease\n",
    "apiVersion: source.toolkit.fluxcd.io/v1\n",
    "kind: GitRepository\n",
    "  dependsOn:\n  - name: ",
    "  path: ./",
    "  path: ../",
    "  postBuild:\n    substitute:\n      v: x\n",
    "${v}",
    "${v:=d}",
    "${v:-d}",
    "  prune: true\n",
    "  sourceRef:\n    kind: GitRepository\n    name: ",
    "  chart:\n    spec:\n      chart: ./",
    "  values:\n    a: ",
    "  valuesFrom:\n  - kind: ConfigMap\n",
    "  patches:\n  - patch: |\n",
    "  targetNamespace: ",
    "  components:\n  - ",
    "=== ",
    "=== clusters/c/",
    "=== charts/c/templates/",
    "{{ include \"x\" . }}",
    "{{ define \"x\" }}",
    "{{ end }}",
    "&a ",
    "*a",
    "[",
    "]",
];

/// A tree of files as one text, the input format of the `kustomize` and `units` targets:
/// `=== PATH` lines start files, everything up to the next such line is the file.
pub fn encode_tree(files: &[(String, String)]) -> String {
    let mut s = String::new();
    for (path, body) in files {
        s.push_str("=== ");
        s.push_str(path);
        s.push('\n');
        s.push_str(body);
        if !body.ends_with('\n') {
            s.push('\n');
        }
    }
    s
}

/// The files of an encoded tree (see [`encode_tree`]); text before the first `===` line is
/// ignored.
pub fn decode_tree(text: &str) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = Vec::new();
    for line in text.split_inclusive('\n') {
        if let Some(path) = line.strip_prefix("=== ") {
            files.push((
                path.trim_end_matches(['\n', '\r']).to_string(),
                String::new(),
            ));
        } else if let Some((_, body)) = files.last_mut() {
            body.push_str(line);
        }
    }
    files
}

/// Interesting numbers, as text.
const NUMBERS: &[&str] = &[
    "0",
    "-1",
    "1",
    "2147483648",
    "9223372036854775807",
    "-9223372036854775808",
    "65536",
    "1e308",
    "99999999999",
    "18446744073709551616",
    "0.5",
    "-0",
];

/// Inputs longer than this are cut before they run, so mutations cannot grow them without
/// end (budgets inside the engines are what the fuzzing checks, not the input size).
pub const MAX_INPUT: usize = 64 * 1024;

/// One mutation of `input`; `other` is another corpus entry to splice from.
pub fn mutate(rng: &mut Rng, target: &Target, input: &str, other: &str) -> String {
    let mut s = input.to_string();
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        s = mutate_once(rng, target, &s, other);
    }
    if s.len() > MAX_INPUT {
        let mut end = MAX_INPUT;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

fn char_pos(rng: &mut Rng, s: &str) -> usize {
    if s.is_empty() {
        return 0;
    }
    let mut i = rng.below(s.len() + 1);
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn line_starts(s: &str) -> Vec<usize> {
    let mut v = vec![0];
    v.extend(
        s.match_indices('\n')
            .map(|(i, _)| i + 1)
            .filter(|&i| i < s.len()),
    );
    v
}

fn mutate_once(rng: &mut Rng, target: &Target, s: &str, other: &str) -> String {
    let lines: Vec<&str> = s.split_inclusive('\n').collect();
    match rng.below(12) {
        // a dictionary token, at a line start or anywhere
        0 | 1 => {
            let tok = rng.pick(target.dict);
            let at = if rng.chance(2) {
                *rng.pick(&line_starts(s))
            } else {
                char_pos(rng, s)
            };
            format!("{}{}{}", &s[..at], tok, &s[at..])
        }
        // duplicate a line (or a run of lines)
        2 if !lines.is_empty() => {
            let i = rng.below(lines.len());
            let n = 1 + rng.below(4.min(lines.len() - i));
            let run: String = lines[i..i + n].concat();
            let mut out: String = lines[..i + n].concat();
            for _ in 0..1 + rng.below(3) {
                out.push_str(&run);
            }
            out.push_str(&lines[i + n..].concat());
            out
        }
        // delete a line
        3 if !lines.is_empty() => {
            let i = rng.below(lines.len());
            let mut v = lines.clone();
            v.remove(i);
            v.concat()
        }
        // swap two lines
        4 if lines.len() > 1 => {
            let mut v = lines.clone();
            let (a, b) = (rng.below(v.len()), rng.below(v.len()));
            v.swap(a, b);
            v.concat()
        }
        // change a line's indentation
        5 if !lines.is_empty() => {
            let i = rng.below(lines.len());
            let mut v: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
            if rng.chance(2) {
                v[i] = format!("  {}", v[i]);
            } else {
                v[i] = v[i].trim_start_matches(' ').to_string();
            }
            v.concat()
        }
        // wrap a span in a nesting pair, possibly many times
        6 => {
            let (open, close) = *rng.pick(target.wrappers);
            let a = char_pos(rng, s);
            let b = a + char_pos(rng, &s[a..]);
            let depth = if rng.chance(8) {
                200 + rng.below(3000)
            } else {
                1
            };
            format!(
                "{}{}{}{}{}",
                &s[..a],
                open.repeat(depth),
                &s[a..b],
                close.repeat(depth),
                &s[b..]
            )
        }
        // replace a run of digits with an interesting number
        7 => {
            let digits: Vec<(usize, char)> = s
                .char_indices()
                .filter(|(_, c)| c.is_ascii_digit())
                .collect();
            if digits.is_empty() {
                return format!("{s}{}", rng.pick(NUMBERS));
            }
            let start = rng.pick(&digits).0;
            let end = s[start..]
                .find(|c: char| !c.is_ascii_digit())
                .map_or(s.len(), |i| start + i);
            format!("{}{}{}", &s[..start], rng.pick(NUMBERS), &s[end..])
        }
        // splice lines of another input
        8 if !other.is_empty() => {
            let olines: Vec<&str> = other.split_inclusive('\n').collect();
            let i = rng.below(olines.len());
            let n = 1 + rng.below(8.min(olines.len() - i));
            let at = *rng.pick(&line_starts(s));
            format!("{}{}{}", &s[..at], olines[i..i + n].concat(), &s[at..])
        }
        // copy a chunk elsewhere
        9 => {
            let a = char_pos(rng, s);
            let b = a + char_pos(rng, &s[a..]).min(512);
            let mut b = b.min(s.len());
            while !s.is_char_boundary(b) {
                b -= 1;
            }
            let at = char_pos(rng, s);
            format!("{}{}{}", &s[..at], &s[a..b], &s[at..])
        }
        // delete a chunk
        10 => {
            let a = char_pos(rng, s);
            let mut b = (a + 1 + rng.below(64)).min(s.len());
            while !s.is_char_boundary(b) {
                b -= 1;
            }
            format!("{}{}", &s[..a], &s[b..])
        }
        // a raw byte-level change (kept valid UTF-8)
        _ => {
            let at = char_pos(rng, s);
            let c = *rng.pick(&[
                '\0', '\t', '\n', ' ', ':', '-', '"', '\'', '\\', '{', '}', 'é', '\u{2028}',
            ]);
            let mut out = s.to_string();
            if rng.chance(2) && at < s.len() {
                let next = s[at..].chars().next().map_or(0, char::len_utf8);
                out.replace_range(at..at + next, &c.to_string());
            } else {
                out.insert(at, c);
            }
            out
        }
    }
}

/// Runs every built-in seed of `target` once (a quick smoke check of the target itself).
pub fn smoke(target: &Target) -> usize {
    let seeds = (target.seeds)();
    for s in &seeds {
        (target.run)(s);
    }
    seeds.len()
}

/// Files of a directory tree, sorted, skipping hidden entries and symlinks; at most
/// `max_files`.
fn walk(dir: &Path, max_files: usize) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        let mut entries: Vec<_> = rd.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            if e.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                out.push(e.path());
                if out.len() >= max_files {
                    return out;
                }
            }
        }
    }
    out
}

mod collect {
    use super::*;

    const MAX_SEEDS: usize = 4000;
    const MAX_SEED_BYTES: usize = 32 * 1024;

    fn read_small(p: &Path) -> Option<String> {
        let meta = std::fs::metadata(p).ok()?;
        if meta.len() as usize > MAX_SEED_BYTES {
            return None;
        }
        String::from_utf8(std::fs::read(p).ok()?).ok()
    }

    pub fn yaml_files(dir: &Path) -> Vec<String> {
        walk(dir, 200_000)
            .into_iter()
            .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
            .filter_map(|p| read_small(&p))
            .take(MAX_SEEDS)
            .collect()
    }

    pub fn template_files(dir: &Path) -> Vec<String> {
        walk(dir, 200_000)
            .into_iter()
            .filter(|p| {
                p.parent()
                    .and_then(|d| d.file_name())
                    .is_some_and(|n| n == "templates")
                    || p.extension().is_some_and(|e| e == "tpl")
            })
            .filter_map(|p| read_small(&p))
            .take(MAX_SEEDS)
            .collect()
    }

    /// Every directory with a kustomization file, as an encoded tree of the files below it.
    pub fn kustomization_trees(dir: &Path) -> Vec<String> {
        let files = walk(dir, 200_000);
        let mut out = Vec::new();
        for f in &files {
            let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if !matches!(
                name,
                "kustomization.yaml" | "kustomization.yml" | "Kustomization"
            ) {
                continue;
            }
            let root = f.parent().unwrap_or(dir);
            if let Some(tree) = tree_of(root, &files, 16 * 1024) {
                out.push(tree);
            }
            if out.len() >= MAX_SEEDS {
                break;
            }
        }
        out
    }

    /// Every directory with a `clusters` folder, as an encoded tree.
    pub fn repository_trees(dir: &Path) -> Vec<String> {
        let files = walk(dir, 200_000);
        let mut roots: Vec<PathBuf> = files
            .iter()
            .filter_map(|f| {
                let comps: Vec<_> = f.components().collect();
                let i = comps.iter().position(|c| c.as_os_str() == "clusters")?;
                Some(comps[..i].iter().collect())
            })
            .collect();
        roots.sort();
        roots.dedup();
        roots
            .iter()
            .filter_map(|r| tree_of(r, &files, MAX_INPUT))
            .take(MAX_SEEDS)
            .collect()
    }

    fn tree_of(root: &Path, files: &[PathBuf], budget: usize) -> Option<String> {
        let mut tree = Vec::new();
        let mut size = 0;
        for f in files.iter().filter(|f| f.starts_with(root)) {
            let Some(body) = read_small(f) else { continue };
            size += body.len();
            if size > budget {
                break;
            }
            let rel = f.strip_prefix(root).ok()?.to_string_lossy().into_owned();
            tree.push((rel, body));
        }
        (!tree.is_empty()).then(|| encode_tree(&tree))
    }
}

mod targets {
    use super::*;
    use capstan_gotemplate::{TemplateSet, Value};
    use capstan_vfs::MemFs;

    fn kind_of(msg: &str) -> String {
        // an error's shape: its words without numbers and quoted parts, cut short
        let mut out = String::new();
        let mut quoted = false;
        for c in msg.chars().take(80) {
            match c {
                '"' | '`' => quoted = !quoted,
                _ if quoted || c.is_ascii_digit() => {}
                _ => out.push(c),
            }
        }
        out
    }

    pub fn yaml(input: &str) -> Signature {
        match capstan_yaml::parse_documents(input, "fuzz.yaml") {
            Err(e) => format!("err:{}", kind_of(&e.to_string())),
            Ok(docs) => {
                let out = capstan_yaml::emit_documents(&docs);
                match capstan_yaml::parse_documents(&out, "emitted.yaml") {
                    Ok(again) => format!("ok:{}:{}", docs.len(), again.len() == docs.len()),
                    Err(e) => format!("reparse-err:{}", kind_of(&e.to_string())),
                }
            }
        }
    }

    fn template_data() -> Value {
        Value::from_json(&serde_json::json!({
            "Values": {
                "m": {"a": {"b": "c"}, "n": null, "e": {}},
                "s": "héllo wörld 日本語 ünïcode",
                "l": [1, "two", 3.5, null, {"k": "v"}],
                "nil": null,
                "big": 9_223_372_036_854_775_807_i64,
                "neg": -9_223_372_036_854_775_807_i64,
            },
            "Release": {"Name": "r", "Namespace": "ns"},
            "Chart": {"Name": "c", "Version": "1.0.0"},
        }))
    }

    pub fn template(input: &str) -> Signature {
        let mut set = TemplateSet::new_shared(capstan_sprig::shared_funcs());
        if let Err(e) = set.add("t", input) {
            return format!("parse:{}", kind_of(&e.to_string()));
        }
        match set.execute("t", &template_data()) {
            Ok(out) => format!("ok:{}", out.len().min(64) / 8),
            Err(e) => format!("exec:{}", kind_of(&e.to_string())),
        }
    }

    fn memfs(input: &str) -> MemFs {
        let mut fs = MemFs::new();
        for (path, body) in decode_tree(input) {
            let path = path.trim_start_matches('/');
            if !path.is_empty() {
                fs.add(path, body);
            }
        }
        fs
    }

    pub fn kustomize(input: &str) -> Signature {
        let fs = memfs(input);
        let opts = capstan_kustomize::BuildOptions {
            enable_helm: true,
            ..Default::default()
        };
        match capstan_kustomize::build_to_string(&fs, Path::new(""), &opts) {
            Ok(out) => format!("ok:{}", out.matches("\n---\n").count().min(8)),
            Err(e) => format!("err:{}", kind_of(&e.to_string())),
        }
    }

    pub fn units(input: &str) -> Signature {
        let fs = memfs(input);
        let cluster = decode_tree(input)
            .iter()
            .find_map(|(p, _)| {
                let rest = p.strip_prefix("clusters/")?;
                Some(format!("clusters/{}", rest.split('/').next()?))
            })
            .unwrap_or_else(|| "clusters/c".into());
        let opts = capstan_units::LoadOptions::new(cluster);
        let units = capstan_units::load(
            &fs,
            &capstan_engine::NativeRenderer,
            &capstan_units::NoCluster,
            &opts,
        );
        let first_error = units
            .failed()
            .map(|(_, e)| kind_of(&e.to_string()))
            .chain(units.errors.iter().map(|e| kind_of(&e.to_string())))
            .next()
            .unwrap_or_default();
        format!(
            "rendered:{} failed:{} {first_error}",
            units.rendered().count().min(8),
            units.failed().count().min(8)
        )
    }
}

mod seeds {
    use super::encode_tree;

    fn tree(files: &[(&str, &str)]) -> String {
        encode_tree(
            &files
                .iter()
                .map(|(p, b)| (p.to_string(), b.to_string()))
                .collect::<Vec<_>>(),
        )
    }

    pub fn yaml() -> Vec<String> {
        vec![
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: \"1\"\n  b: |\n    line\n    two\n".into(),
            "a: &a\n  b: [1, 2, {c: d}]\nm:\n  <<: *a\n  e: 'q''s'\n---\n- x\n- ? k\n  : v\n- !!str 3\n".into(),
            "s: >-\n  folded\n  text\n\nt: |+\n  keep\n\n".into(),
            "{a: 1, b: [x, y], \"c\": null, d: ~, e: yes, f: 0x1F, g: 1e3, h: \"\\u00e9\\t\"}\n".into(),
            "key: value # comment\nlist:\n- - nested\n  - seq\n- {}\n- []\nblock: |2\n   indented\n".into(),
        ]
    }

    pub fn template() -> Vec<String> {
        vec![
            "{{ .Values.s | upper | trunc 5 | quote }}\n{{- range $k, $v := .Values.m }}\n{{ $k }}: {{ $v | toYaml | nindent 2 }}{{ end }}".into(),
            "{{ define \"n\" }}{{ .Release.Name }}-{{ .Chart.Name | trunc 63 | trimSuffix \"-\" }}{{ end }}{{ include \"n\" . }} {{ tpl \"{{ .Release.Namespace }}\" . }}".into(),
            "{{ if and (hasKey .Values.m \"a\") (not (empty .Values.l)) }}{{ dig \"a\" \"b\" \"z\" .Values.m }}{{ else }}no{{ end }}".into(),
            "{{ $d := dict \"a\" 1 \"b\" (list 1 2 3) }}{{ $_ := set $d \"c\" \"x\" }}{{ toJson $d }} {{ keys $d | sortAlpha | join \",\" }} {{ printf \"%05.2f %q %v\" 3.14159 \"s\" .Values.l }}".into(),
            "{{ with .Values.nil }}x{{ else }}{{ default \"d\" .Values.nil }}{{ end }} {{ div 7 2 }} {{ mod 7 3 }} {{ add1 .Values.big }} {{ sub .Values.neg 1 }} {{ len .Values.s }} {{ substr 0 3 .Values.s }}".into(),
            "{{- range $i, $e := until 3 }}{{ if eq $i 1 }}{{ continue }}{{ end }}{{ $i }}{{ end }} {{ semverCompare \">=1.2.0\" \"1.10.0\" }} {{ regexReplaceAll \"a(x*)b\" \"-ab-axxb-\" \"${1}W\" }} {{ b64enc \"x\" | b64dec }}".into(),
        ]
    }

    pub fn kustomize() -> Vec<String> {
        vec![
            tree(&[
                ("kustomization.yaml", "namePrefix: p-\nnamespace: ns\ncommonLabels:\n  app: a\nresources:\n- base\nimages:\n- name: nginx\n  newTag: \"1.2\"\nconfigMapGenerator:\n- name: cm\n  literals:\n  - k=v\npatches:\n- target:\n    kind: Deployment\n  patch: |-\n    - op: replace\n      path: /spec/replicas\n      value: 3\n"),
                ("base/kustomization.yaml", "resources:\n- d.yaml\n- s.yaml\n"),
                ("base/d.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n  template:\n    spec:\n      containers:\n      - name: c\n        image: nginx\n        envFrom:\n        - configMapRef:\n            name: cm\n"),
                ("base/s.yaml", "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports:\n  - port: 80\n"),
            ]),
            tree(&[
                ("kustomization.yaml", "resources:\n- r.yaml\ncomponents:\n- comp\nreplacements:\n- source:\n    kind: ConfigMap\n    name: c\n    fieldPath: data.v\n  targets:\n  - select:\n      kind: ConfigMap\n    fieldPaths:\n    - metadata.annotations.[x/y]\n    options:\n      create: true\n"),
                ("r.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  v: hello\n"),
                ("comp/kustomization.yaml", "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\npatches:\n- patch: |-\n    apiVersion: v1\n    kind: ConfigMap\n    metadata:\n      name: c\n    data:\n      w: \"2\"\n"),
            ]),
            tree(&[
                ("kustomization.yaml", "resources:\n- sa.yaml\n- rb.yaml\nnamespace: team\nvars:\n- name: SA\n  objref:\n    kind: ServiceAccount\n    name: sa\n    apiVersion: v1\n  fieldref:\n    fieldPath: metadata.name\nsecretGenerator:\n- name: s\n  literals:\n  - p=$(SA)\n"),
                ("sa.yaml", "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: sa\n"),
                ("rb.yaml", "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: rb\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: Role\n  name: r\nsubjects:\n- kind: ServiceAccount\n  name: sa\n"),
            ]),
        ]
    }

    pub fn units() -> Vec<String> {
        vec![
            tree(&[
                ("clusters/c/infra.yaml", "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: infra\n  namespace: flux-system\nspec:\n  interval: 10m\n  path: ./infra\n  prune: true\n  sourceRef:\n    kind: GitRepository\n    name: flux-system\n  postBuild:\n    substitute:\n      env: prod\n"),
                ("clusters/c/apps.yaml", "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: apps\n  namespace: flux-system\nspec:\n  dependsOn:\n  - name: infra\n  interval: 10m\n  path: ./apps\n  sourceRef:\n    kind: GitRepository\n    name: flux-system\n"),
                ("infra/ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${env}\n"),
                ("apps/kustomization.yaml", "resources:\n- hr.yaml\n"),
                ("apps/hr.yaml", "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: web\n  namespace: default\nspec:\n  interval: 5m\n  chart:\n    spec:\n      chart: ./charts/web\n      sourceRef:\n        kind: GitRepository\n        name: flux-system\n        namespace: flux-system\n  values:\n    replicas: 2\n"),
                ("charts/web/Chart.yaml", "apiVersion: v2\nname: web\nversion: 0.1.0\n"),
                ("charts/web/values.yaml", "replicas: 1\nname: web\n"),
                ("charts/web/templates/_h.tpl", "{{ define \"web.name\" }}{{ .Values.name | trunc 63 }}{{ end }}\n"),
                ("charts/web/templates/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ include \"web.name\" . }}\ndata:\n  replicas: {{ .Values.replicas | quote }}\n"),
            ]),
        ]
    }
}
