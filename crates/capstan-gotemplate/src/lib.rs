//! Go's `text/template`, faithful to Go's semantics, as Helm uses it.
//!
//! * [`Value`]: Go's dynamic values (`nil`, `bool`, `int`, `int64`, `float64`, `string`,
//!   `[]interface{}`, `map[string]interface{}` with reference semantics, and objects with
//!   fields and methods for `.Chart`, `.Capabilities`, `.Files`...). `range` and `len`
//!   see through an object of kind `map` or `slice` (a named Go map or slice type such as
//!   Helm's `.Files.Glob` result or `.Capabilities.APIVersions`) to its
//!   [`Object::to_data`].
//! * [`TemplateSet`]: many named templates (files) parsed into one set whose `define`s are
//!   shared (like Helm's engine, which parses every template of a chart and its subcharts
//!   into one `template.Template`), executed by name over a parsed AST.
//! * [`FuncMap`]: the function map, which callers extend (see the `capstan-sprig` crate for
//!   Sprig and Helm's functions). Go's builtins (`and`, `or`, `not`, `eq`..., `printf`,
//!   `index`, `len`...) are always present, and so are Helm's `include` and `tpl`, which need
//!   the executor (see [`Ctx`]); a caller may override any of them.
//! * [`fmt`]: Go's `fmt.Sprintf`/`Sprint`/`Sprintln` over [`Value`]s.
//!
//! Errors print like Go's: `template: NAME:LINE:COL: executing "NAME" at <.Values.x>: ...`.
//!
//! ```
//! use capstan_gotemplate::{FuncMap, TemplateSet, Value};
//! let mut set = TemplateSet::new(FuncMap::new());
//! set.add("t", r#"{{ define "x" }}[{{ . }}]{{ end }}{{ range $k, $v := . }}{{ $k }}={{ include "x" $v }} {{ end }}"#).unwrap();
//! let data = Value::from_json(&serde_json::json!({"b": 2, "a": 1000000}));
//! assert_eq!(set.execute("t", &data).unwrap(), "a=[1e+06] b=[2] ");
//! ```

mod builtins;
mod exec;
pub mod fmt;
mod lex;
pub mod limits;
mod parse;
pub mod value;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub use limits::{with_stack, MAX_EXEC_DEPTH};
pub use value::{Map, MapRef, Method, Object, StructObject, Value};

/// A template function: receives the call context and the evaluated arguments, returns a
/// value or an error message (the engine wraps it as `error calling NAME: MESSAGE`).
pub type Func = Arc<dyn Fn(&mut Ctx<'_>, &[Value]) -> Result<Value, String> + Send + Sync>;

const ARG_TYPE_MARK: &str = "\u{0}capstan-arg-type\u{0}";

/// The error a [`Func`] returns when its argument `index` is not of the Go type `go_type`
/// (`int`, `string`, `[]interface {}`, `sprig.certificate`...): the engine then reports it
/// as Go's `text/template` does, at the argument and without `error calling NAME:`
/// (`expected integer; found "a"` for constants, `wrong type for value; expected int; got
/// float64` for values, `invalid value; expected int` for nil).
pub fn arg_type_error(index: usize, go_type: &str) -> String {
    format!("{ARG_TYPE_MARK}{index}\u{0}{go_type}")
}

pub(crate) fn parse_arg_type_error(msg: &str) -> Option<(usize, &str)> {
    let rest = msg.strip_prefix(ARG_TYPE_MARK)?;
    let (i, ty) = rest.split_once('\u{0}')?;
    Some((i.parse().ok()?, ty))
}

/// Named template functions. Names are checked at parse time (`function "x" not defined`),
/// as Go does, so build the map before parsing.
#[derive(Clone, Default)]
pub struct FuncMap {
    funcs: HashMap<String, Func>,
}

impl FuncMap {
    /// An empty map (Go's builtins and `include`/`tpl` are added by [`TemplateSet::new`]).
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds or replaces a function.
    pub fn insert(&mut self, name: impl Into<String>, f: Func) {
        self.funcs.insert(name.into(), f);
    }
    /// Adds or replaces a function given as a closure.
    pub fn add(
        &mut self,
        name: impl Into<String>,
        f: impl Fn(&mut Ctx<'_>, &[Value]) -> Result<Value, String> + Send + Sync + 'static,
    ) {
        self.funcs.insert(name.into(), Arc::new(f));
    }
    /// Go's builtins and Helm's `include`/`tpl`, overridden by the functions of `funcs`:
    /// the map [`TemplateSet::new`] builds, for [`TemplateSet::new_shared`].
    pub fn with_builtins(funcs: FuncMap) -> FuncMap {
        let mut all = builtins::builtins();
        all.extend(funcs);
        all
    }
    /// Adds every function of `other` (replacing same-named ones).
    pub fn extend(&mut self, other: FuncMap) {
        self.funcs.extend(other.funcs);
    }
    /// The function `name`.
    pub fn get(&self, name: &str) -> Option<&Func> {
        self.funcs.get(name)
    }
    /// True when `name` is defined.
    pub fn contains(&self, name: &str) -> bool {
        self.funcs.contains_key(name)
    }
    /// All names (unsorted).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.funcs.keys().map(|s| s.as_str())
    }
}

/// What a missing map key yields (Go's `missingkey` option).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissingKey {
    /// Go's default (`missingkey=default`/`invalid`): prints `<no value>`, and field access
    /// on it yields nothing without error.
    Default,
    /// `missingkey=zero`: the map's zero value (nil for `interface{}`), printed
    /// `<no value>`; further field access fails (`nil pointer evaluating interface {}.x`).
    /// Helm's default for rendering.
    #[default]
    Zero,
    /// `missingkey=error`: `map has no entry for key "x"` (Helm's `--strict`).
    Error,
}

/// Kind of [`Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A parse error: `template: NAME:LINE: MESSAGE`.
    Parse,
    /// An execution error: `template: NAME:LINE:COL: executing "TPL" at <CTX>: MESSAGE`.
    Exec,
    /// A message without location, printed as is (e.g. `template: no template "x"
    /// associated with template "gotpl"`).
    Other,
}

/// A template error, formatted like Go's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// Parse, execution or other.
    pub kind: ErrorKind,
    /// The parse name (file) where the failing node is.
    pub template: String,
    /// 1-based line.
    pub line: usize,
    /// 0-based byte column in the line (as Go prints it), execution errors only.
    pub col: usize,
    /// The template being executed (the `define` name or the file name).
    pub executing: String,
    /// The node being evaluated, as Go prints it (cut to 20 characters + `...`).
    pub context: String,
    /// The message.
    pub message: String,
}

impl Error {
    /// An error without location.
    pub fn other(message: impl Into<String>) -> Error {
        Error {
            kind: ErrorKind::Other,
            template: String::new(),
            line: 0,
            col: 0,
            executing: String::new(),
            context: String::new(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            ErrorKind::Parse => write!(
                f,
                "template: {}:{}: {}",
                self.template, self.line, self.message
            ),
            ErrorKind::Exec => write!(
                f,
                "template: {}:{}:{}: executing \"{}\" at <{}>: {}",
                self.template, self.line, self.col, self.executing, self.context, self.message
            ),
            ErrorKind::Other => write!(f, "{}", self.message),
        }
    }
}

impl std::error::Error for Error {}

/// Options of a [`TemplateSet`].
#[derive(Debug, Clone)]
pub struct Options {
    /// `missingkey` (Helm: `Zero`, or `Error` with `--strict`).
    pub missing_key: MissingKey,
    /// The root template's name, used by `include` and `tpl` in messages (Helm: `gotpl`).
    pub root_name: String,
    /// Maximum nesting of `include` of the same name (Helm: 1000).
    pub max_include_depth: usize,
    /// Replace `<no value>` by the empty string in `tpl`'s output (Helm does).
    pub tpl_strip_no_value: bool,
    /// Maximum nesting of `{{template}}` calls (Go's `maxExecDepth`,
    /// [`limits::MAX_EXEC_DEPTH`]): deeper is the error `exceeded maximum template depth
    /// (N)`. The same bound applies to the total nesting of template executions of one
    /// render ([`ExecState::nesting`]: `template`, `include` and `tpl` together).
    pub max_exec_depth: usize,
    /// Maximum size in bytes of one template's output ([`limits::MAX_OUTPUT_BYTES`]).
    pub max_output_bytes: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            missing_key: MissingKey::Zero,
            root_name: "gotpl".into(),
            max_include_depth: 1000,
            tpl_strip_no_value: true,
            max_exec_depth: limits::MAX_EXEC_DEPTH,
            max_output_bytes: limits::MAX_OUTPUT_BYTES,
        }
    }
}

/// A set of parsed templates sharing their `define`s and a function map.
pub struct TemplateSet {
    pub(crate) funcs: Arc<FuncMap>,
    pub(crate) templates: HashMap<String, Arc<parse::Template>>,
    pub(crate) options: Options,
    /// Parsed `tpl` sources (parse once, execute many).
    pub(crate) tpl_cache: Mutex<HashMap<String, Arc<parse::Parsed>>>,
}

impl TemplateSet {
    /// A new empty set with Go's builtins, Helm's `include` and `tpl`, and `funcs`
    /// (which may override them).
    pub fn new(funcs: FuncMap) -> Self {
        let mut all = builtins::builtins();
        all.extend(funcs);
        TemplateSet {
            funcs: Arc::new(all),
            templates: HashMap::new(),
            options: Options::default(),
            tpl_cache: Mutex::new(HashMap::new()),
        }
    }

    /// A new empty set over a prepared, shared function map (no copy of the map per set).
    /// `funcs` must already hold Go's builtins and `include`/`tpl`: build it once with
    /// [`FuncMap::with_builtins`] and share it (e.g. from a `static OnceLock`).
    pub fn new_shared(funcs: Arc<FuncMap>) -> Self {
        TemplateSet {
            funcs,
            templates: HashMap::new(),
            options: Options::default(),
            tpl_cache: Mutex::new(HashMap::new()),
        }
    }

    /// Sets the options.
    pub fn with_options(mut self, options: Options) -> Self {
        self.options = options;
        self
    }

    /// The options.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Mutable options.
    pub fn options_mut(&mut self) -> &mut Options {
        &mut self.options
    }

    /// The function map.
    pub fn funcs(&self) -> &FuncMap {
        &self.funcs
    }

    /// Parses `src` as the template `name` (e.g. `mychart/templates/deployment.yaml`) and
    /// adds it and its `define`/`block` templates to the set. As in Go, a later definition
    /// of a name replaces an earlier one, except that an empty body (only whitespace and
    /// comments) never replaces a non-empty one. Add files in Helm's order.
    pub fn add(&mut self, name: &str, src: &str) -> Result<(), Error> {
        let parsed = parse::parse(name, src, &self.funcs)?;
        for t in parsed.templates {
            self.associate(t);
        }
        Ok(())
    }

    fn associate(&mut self, t: Arc<parse::Template>) {
        if let Some(old) = self.templates.get(&t.name) {
            if t.is_empty() && !old.is_empty() {
                return;
            }
        }
        self.templates.insert(t.name.clone(), t);
    }

    /// True when a template `name` is defined.
    pub fn contains(&self, name: &str) -> bool {
        self.templates.contains_key(name)
    }

    /// The names of all templates (files and defines), sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.templates.keys().cloned().collect();
        v.sort();
        v
    }

    /// Executes the template `name` with `data` as dot (and `$`), returning its output.
    /// `<no value>` is left in the output (Helm replaces it by "" afterwards).
    pub fn execute(&self, name: &str, data: &Value) -> Result<String, Error> {
        let mut st = ExecState::default();
        self.execute_with(name, data, &mut st)
    }

    /// Like [`TemplateSet::execute`], sharing `state` (include depth counters) across
    /// calls, as Helm shares them across the templates of one render.
    pub fn execute_with(
        &self,
        name: &str,
        data: &Value,
        state: &mut ExecState,
    ) -> Result<String, Error> {
        let t = self.templates.get(name).ok_or_else(|| {
            Error::other(format!(
                "template: no template {:?} associated with template {:?}",
                name, self.options.root_name
            ))
        })?;
        let mut out = String::new();
        exec::execute(self, None, t, data, &mut out, state)?;
        Ok(out)
    }

    /// Parses and executes `src` as Helm's `tpl` does: inside this set (its defines are
    /// visible; defines in `src` are not added to the set), named like the root template.
    pub fn execute_tpl(
        &self,
        src: &str,
        data: &Value,
        state: &mut ExecState,
    ) -> Result<String, Error> {
        exec::tpl(self, None, src, data, state)
    }
}

/// Mutable state shared across executions of one render (Helm's `includedNames`).
#[derive(Default)]
pub struct ExecState {
    pub(crate) include_depth: HashMap<String, usize>,
    pub(crate) nesting: usize,
}

impl ExecState {
    /// How many template executions are nested right now: each `{{template}}`, `include`
    /// and `tpl` adds one while it runs. Bounded by [`Options::max_exec_depth`].
    pub fn nesting(&self) -> usize {
        self.nesting
    }
    /// How many `include`s of `name` are running right now (Helm's `includedNames`).
    pub fn include_depth(&self, name: &str) -> usize {
        self.include_depth.get(name).copied().unwrap_or(0)
    }
}

/// The context a [`Func`] is called with: access to the executing set, for `include`,
/// `tpl` and friends.
pub struct Ctx<'a> {
    pub(crate) set: &'a TemplateSet,
    pub(crate) overlay: Option<&'a HashMap<String, Arc<parse::Template>>>,
    pub(crate) state: &'a mut ExecState,
    pub(crate) template: &'a str,
    /// Bit `i`: argument `i` is nil read from a field (see [`Ctx::nil_is_interface`]).
    pub(crate) nil_fields: u64,
}

impl Ctx<'_> {
    /// The set being executed.
    pub fn set(&self) -> &TemplateSet {
        self.set
    }
    /// The name of the template being executed.
    pub fn template_name(&self) -> &str {
        self.template
    }
    /// True when argument `i` is nil read from a field (`.Values.x`, `$v.x`,
    /// `(lookup ...).data`): in Go a valid `interface{}` holding nil, which a parameter of
    /// type map or slice refuses (`wrong type for value; expected map[string]interface {};
    /// got interface {}`: return [`arg_type_error`]). A nil from a variable (`$x`) or a
    /// parenthesised pipeline is Go's invalid value, which such a parameter receives as
    /// its nil zero value (a nil map reads as empty).
    pub fn nil_is_interface(&self, i: usize) -> bool {
        i < 64 && self.nil_fields & (1 << i) != 0
    }
    /// Whether argument `i` received as nil converts to Go's nil map / slice: see
    /// [`Ctx::nil_is_interface`].
    pub fn nil_converts(&self, a: &[Value], i: usize) -> bool {
        matches!(a.get(i), Some(Value::Nil)) && !self.nil_is_interface(i)
    }
    /// Helm's `include`: executes the template `name` with `data` and returns its output
    /// (with the recursion limit of [`Options::max_include_depth`]).
    pub fn include(&mut self, name: &str, data: &Value) -> Result<String, Error> {
        exec::include(self.set, self.overlay, name, data, self.state)
    }
    /// Helm's `tpl`: parses `src` and executes it with `data` (see
    /// [`TemplateSet::execute_tpl`]).
    pub fn tpl(&mut self, src: &str, data: &Value) -> Result<String, Error> {
        exec::tpl(self.set, self.overlay, src, data, self.state)
    }
}
