//! Go's dynamic values, as Helm templates see them.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// The entries of a Go `map[string]interface{}`. Go's text/template and fmt both range
/// over and print maps in sorted key order, so a `BTreeMap` is the natural representation.
pub type Map = BTreeMap<String, Value>;

/// A shared, mutable map: Go maps are reference types, so `set $d "k" v` (Sprig) is seen
/// through every reference to the same map (Helm charts rely on it, e.g. `$_ := set .Values
/// ...`). Cloning a `MapRef` clones the reference, not the entries.
#[derive(Clone, Default)]
pub struct MapRef(Arc<RwLock<Map>>);

// Dropping the last reference to a deeply nested map recurses: give each level the
// stack it needs.
impl Drop for MapRef {
    fn drop(&mut self) {
        if let Some(lock) = Arc::get_mut(&mut self.0) {
            let m = lock.get_mut().unwrap_or_else(|e| e.into_inner());
            if !m.is_empty() {
                let m = std::mem::take(m);
                crate::limits::with_stack(move || drop(m));
            }
        }
    }
}

impl MapRef {
    /// A new map holding `m`.
    pub fn new(m: Map) -> MapRef {
        MapRef(Arc::new(RwLock::new(m)))
    }
    /// Read access. Do not call template functions while holding the guard.
    pub fn read(&self) -> RwLockReadGuard<'_, Map> {
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }
    /// Write access (in-place mutation, visible through every clone of this reference).
    pub fn write(&self) -> RwLockWriteGuard<'_, Map> {
        self.0.write().unwrap_or_else(|e| e.into_inner())
    }
    /// The value at `key` (a cheap clone).
    pub fn get(&self, key: &str) -> Option<Value> {
        self.read().get(key).cloned()
    }
    /// Inserts in place.
    pub fn insert(&self, key: impl Into<String>, v: Value) {
        self.write().insert(key.into(), v);
    }
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.read().len()
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }
    /// A shallow copy of the entries (values are shared references).
    pub fn snapshot(&self) -> Map {
        self.read().clone()
    }
    /// True when both references point to the same map.
    pub fn ptr_eq(&self, other: &MapRef) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
    /// The map's identity (for cycle detection).
    pub fn as_ptr(&self) -> *const () {
        Arc::as_ptr(&self.0) as *const ()
    }
}

impl fmt::Debug for MapRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.read().iter()).finish()
    }
}

/// A Go value with fields and methods (a struct or pointer to struct such as Helm's
/// `.Chart` (`*chart.Metadata`), `.Capabilities`, `.Files`). Implement it in the caller,
/// or build one with [`StructObject`].
pub trait Object: Send + Sync {
    /// Go's type name as `%T`/`typeOf` prints it, e.g. `*chart.Metadata`.
    fn type_name(&self) -> String;
    /// Go's kind as Sprig's `kindOf` prints it, e.g. `ptr`, `struct`, `map`, `slice`.
    fn kind(&self) -> &'static str {
        "ptr"
    }
    /// The field `name` (exported Go field), or `None` when the type has no such field
    /// (the template then fails with `can't evaluate field NAME in type TYPE`).
    fn field(&self, name: &str) -> Option<Value>;
    /// Calls the method `name` with `args`; `None` when there is no such method.
    fn call_method(&self, _name: &str, _args: &[Value]) -> Option<Result<Value, String>> {
        None
    }
    /// True when `name` is a method (so `.X` without args calls it).
    fn has_method(&self, _name: &str) -> bool {
        false
    }
    /// The value as data (what `toJson`/`toYaml` see: a map of the JSON field names).
    /// For a [`Object::kind`] of `map` or `slice`, also what `range` and `len` iterate
    /// over (Go ranges over the underlying map or slice of a named type): a
    /// [`Value::Map`] or [`Value::List`].
    fn to_data(&self) -> Value {
        Value::Nil
    }
    /// How `fmt` prints it with `%v` (`{a b}`, `&{a b}`, or a `String()` method's result).
    fn go_string(&self) -> String {
        format!("{{{}}}", self.type_name())
    }
    /// How the template prints it directly (`{{ .X }}`, `{{ $x }}`), when that differs
    /// from [`Object::go_string`]: Go's text/template uses a `String()` method with a
    /// pointer receiver on an addressable value (a field reached through a pointer), which
    /// `fmt` (and so `print`, `printf`, `quote`...) does not see on the copy a function
    /// receives.
    fn template_string(&self) -> Option<String> {
        None
    }
    /// The JSON object's fields in Go's struct order (what `toJson` prints), when the
    /// data view is a struct rather than a map (whose keys Go sorts).
    fn json_fields(&self) -> Option<Vec<(String, Value)>> {
        None
    }
    /// The concrete value, for implementations that need to recognize their own objects
    /// among function arguments (e.g. Sprig's date functions and `time.Time`).
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        None
    }
    /// For a Go `[]byte` (Helm's `.Files.GetBytes`): its bytes. Go's `fmt` prints a byte
    /// slice as numbers with `%v` (`[104 105]`, its [`Object::go_string`]) and as text
    /// with `%s`/`%q`/`%x`; Sprig's string conversions (`toString`, `quote`...) take the
    /// text, and `encoding/json` (`toJson`, `toYaml`) writes it as a base64 string.
    fn bytes(&self) -> Option<&[u8]> {
        None
    }
}

/// A method of a [`StructObject`].
pub type Method = Arc<dyn Fn(&[Value]) -> Result<Value, String> + Send + Sync>;

/// A generic [`Object`]: named fields in declaration order plus methods.
#[derive(Clone, Default)]
pub struct StructObject {
    /// `%T` name, e.g. `*chart.Metadata`.
    pub type_name: String,
    /// Fields in declaration order (Go prints structs in that order).
    pub fields: Vec<(String, Value)>,
    /// Methods by name.
    pub methods: BTreeMap<String, Method>,
    /// What `toJson`/`toYaml` see (defaults to `Nil`).
    pub data: Option<Value>,
    /// When set, `%v` prints this (a `String()` method), e.g. KubeVersion's `v1.36.0`.
    pub stringer: Option<String>,
    /// A `String()` method with a pointer receiver: printed only by the template itself
    /// (see [`Object::template_string`]), e.g. Helm's KubeVersion `v1.36.0`.
    pub ptr_stringer: Option<String>,
    /// The JSON fields in struct order (see [`Object::json_fields`]).
    pub json_fields: Option<Vec<(String, Value)>>,
    /// Go's kind (defaults to `ptr`); `map` or `slice` for a named map or slice type
    /// with methods (e.g. Helm's `common.VersionSet`), which `range` and `len` then see
    /// through [`StructObject::data`].
    pub kind: Option<&'static str>,
}

impl StructObject {
    /// A new object of type `type_name` with no fields.
    pub fn new(type_name: impl Into<String>) -> Self {
        StructObject {
            type_name: type_name.into(),
            ..Default::default()
        }
    }
    /// Adds a field.
    pub fn with_field(mut self, name: impl Into<String>, v: Value) -> Self {
        self.fields.push((name.into(), v));
        self
    }
    /// Adds a method.
    pub fn with_method(
        mut self,
        name: impl Into<String>,
        f: impl Fn(&[Value]) -> Result<Value, String> + Send + Sync + 'static,
    ) -> Self {
        self.methods.insert(name.into(), Arc::new(f));
        self
    }
    /// Sets the data view used by toJson/toYaml.
    pub fn with_data(mut self, v: Value) -> Self {
        self.data = Some(v);
        self
    }
    /// Sets the result of a `String()` method with a pointer receiver (see
    /// [`Object::template_string`]).
    pub fn with_ptr_stringer(mut self, s: impl Into<String>) -> Self {
        self.ptr_stringer = Some(s.into());
        self
    }
    /// Sets the JSON view as a struct: `toJson` prints the fields in this order, and
    /// [`Object::to_data`] is the map of them.
    pub fn with_json_fields(mut self, fields: Vec<(String, Value)>) -> Self {
        self.data = Some(Value::map(fields.iter().cloned().collect()));
        self.json_fields = Some(fields);
        self
    }
    /// Sets Go's kind (`map`, `slice`...; default `ptr`).
    pub fn with_kind(mut self, kind: &'static str) -> Self {
        self.kind = Some(kind);
        self
    }
    /// Sets the `String()` result.
    pub fn with_stringer(mut self, s: impl Into<String>) -> Self {
        self.stringer = Some(s.into());
        self
    }
    /// Wraps into a [`Value`].
    pub fn into_value(self) -> Value {
        Value::Object(Arc::new(self))
    }
}

impl Object for StructObject {
    fn type_name(&self) -> String {
        self.type_name.clone()
    }
    fn kind(&self) -> &'static str {
        self.kind.unwrap_or("ptr")
    }
    fn field(&self, name: &str) -> Option<Value> {
        // unexported fields (lower case) only show in `%v`
        if !name.starts_with(|c: char| c.is_uppercase()) {
            return None;
        }
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }
    fn template_string(&self) -> Option<String> {
        self.ptr_stringer.clone()
    }
    fn json_fields(&self) -> Option<Vec<(String, Value)>> {
        self.json_fields.clone()
    }
    fn call_method(&self, name: &str, args: &[Value]) -> Option<Result<Value, String>> {
        self.methods.get(name).map(|m| m(args))
    }
    fn has_method(&self, name: &str) -> bool {
        self.methods.contains_key(name)
    }
    fn to_data(&self) -> Value {
        self.data.clone().unwrap_or(Value::Nil)
    }
    fn go_string(&self) -> String {
        if let Some(s) = &self.stringer {
            return s.clone();
        }
        let mut out = String::new();
        if self.type_name.starts_with('*') {
            out.push('&');
        }
        out.push('{');
        for (i, (_, v)) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(&v.to_go_string_nested());
        }
        out.push('}');
        out
    }
}

/// A Go value as Helm templates see it. Cheap to clone (strings, lists, maps and objects
/// are reference-counted).
#[derive(Clone, Default)]
pub enum Value {
    /// Go's untyped `nil` (a nil `interface{}`); also what a missing map key yields.
    #[default]
    Nil,
    /// `bool`
    Bool(bool),
    /// Go `int` (64-bit): template integer constants, `len`, Sprig's `int`, `atoi`.
    Int(i64),
    /// Go `int64`: Sprig's `int64`, `add`, `sub`..., Helm's `--set` integers.
    Int64(i64),
    /// `float64`: every number decoded from JSON or values YAML (Helm decodes values via
    /// JSON, so `replicas: 3` is float64 3, and 1000000 prints as `1e+06`).
    Float(f64),
    /// `string`
    String(Arc<str>),
    /// `[]interface{}` (also stands in for `[]string` and other slices).
    List(Arc<Vec<Value>>),
    /// `map[string]interface{}` (reference semantics, see [`MapRef`]).
    Map(MapRef),
    /// A struct or pointer with fields and methods.
    Object(Arc<dyn Object>),
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Nil => write!(f, "Nil"),
            Value::Bool(b) => write!(f, "Bool({b})"),
            Value::Int(i) => write!(f, "Int({i})"),
            Value::Int64(i) => write!(f, "Int64({i})"),
            Value::Float(x) => write!(f, "Float({x})"),
            Value::String(s) => write!(f, "String({s:?})"),
            Value::List(l) => f.debug_list().entries(l.iter()).finish(),
            Value::Map(m) => m.fmt(f),
            Value::Object(o) => write!(f, "Object({})", o.type_name()),
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(Arc::from(s))
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(Arc::from(s))
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}
impl From<f64> for Value {
    fn from(f: f64) -> Self {
        Value::Float(f)
    }
}
impl From<Vec<Value>> for Value {
    fn from(l: Vec<Value>) -> Self {
        Value::List(Arc::new(l))
    }
}
impl From<Map> for Value {
    fn from(m: Map) -> Self {
        Value::Map(MapRef::new(m))
    }
}

impl Value {
    /// A string value.
    pub fn str(s: &str) -> Value {
        Value::String(Arc::from(s))
    }
    /// A new map value.
    pub fn map(m: Map) -> Value {
        Value::Map(MapRef::new(m))
    }
    /// A new list value.
    pub fn list(l: Vec<Value>) -> Value {
        Value::List(Arc::new(l))
    }
    /// An empty map.
    pub fn empty_map() -> Value {
        Value::Map(MapRef::default())
    }

    /// Converts from JSON the way Go's `encoding/json` decodes into `interface{}` (and so
    /// the way Helm loads values files, `fromJson` and `fromYaml`): **every number becomes
    /// `float64`**. Use [`Value::from_json_typed`] to keep integers as `int64`.
    pub fn from_json(j: &serde_json::Value) -> Value {
        Self::from_json_impl(j, false)
    }

    /// Like [`Value::from_json`] but integers that fit become `int64` (Helm's `--set`).
    pub fn from_json_typed(j: &serde_json::Value) -> Value {
        Self::from_json_impl(j, true)
    }

    fn from_json_impl(j: &serde_json::Value, ints: bool) -> Value {
        match j {
            serde_json::Value::Null => Value::Nil,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => {
                if ints {
                    if let Some(i) = n.as_i64() {
                        return Value::Int64(i);
                    }
                }
                Value::Float(n.as_f64().unwrap_or(0.0))
            }
            serde_json::Value::String(s) => Value::str(s),
            serde_json::Value::Array(a) => {
                Value::list(a.iter().map(|v| Self::from_json_impl(v, ints)).collect())
            }
            serde_json::Value::Object(o) => Value::map(
                o.iter()
                    .map(|(k, v)| (k.clone(), Self::from_json_impl(v, ints)))
                    .collect(),
            ),
        }
    }

    /// Converts to JSON data. Integral floats become JSON integers when they fit in i64
    /// (as Go's encoding/json prints them); objects use [`Object::to_data`].
    /// Below [`crate::limits::MAX_VALUE_DEPTH`] levels (a map that contains itself) lists
    /// and maps become `null`.
    pub fn to_json(&self) -> serde_json::Value {
        self.to_json_at(0)
    }

    fn to_json_at(&self, depth: usize) -> serde_json::Value {
        if depth > crate::limits::MAX_VALUE_DEPTH {
            return serde_json::Value::Null;
        }
        crate::limits::with_stack(|| self.to_json_inner(depth))
    }

    fn to_json_inner(&self, depth: usize) -> serde_json::Value {
        match self {
            Value::Nil => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(i) | Value::Int64(i) => serde_json::Value::from(*i),
            Value::Float(f) => {
                if f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 {
                    serde_json::Value::from(*f as i64)
                } else {
                    serde_json::Number::from_f64(*f)
                        .map(serde_json::Value::Number)
                        .unwrap_or(serde_json::Value::Null)
                }
            }
            Value::String(s) => serde_json::Value::String(s.to_string()),
            Value::List(l) => {
                serde_json::Value::Array(l.iter().map(|v| v.to_json_at(depth + 1)).collect())
            }
            Value::Map(m) => serde_json::Value::Object(
                m.read()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json_at(depth + 1)))
                    .collect(),
            ),
            Value::Object(o) => o.to_data().to_json_at(depth + 1),
        }
    }

    /// Go's truthiness (text/template `if`): false, 0, nil, and empty strings, lists and
    /// maps are false; objects are true.
    pub fn is_true(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) | Value::Int64(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::String(s) => !s.is_empty(),
            Value::List(l) => !l.is_empty(),
            Value::Map(m) => !m.is_empty(),
            // a named map or slice type (Helm's `.Files`) is true when not empty
            Value::Object(o) => !matches!(o.kind(), "map" | "slice") || o.to_data().is_true(),
        }
    }

    /// True for `Nil`.
    pub fn is_nil(&self) -> bool {
        matches!(self, Value::Nil)
    }

    /// The string, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The map reference, if this is a map.
    pub fn as_map(&self) -> Option<&MapRef> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The list, if this is a list.
    pub fn as_list(&self) -> Option<&Arc<Vec<Value>>> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }

    /// Go's `%T` type name: `<nil>`, `bool`, `int`, `int64`, `float64`, `string`,
    /// `[]interface {}`, `map[string]interface {}`, or the object's type.
    pub fn type_name(&self) -> String {
        match self {
            Value::Nil => "<nil>".into(),
            Value::Bool(_) => "bool".into(),
            Value::Int(_) => "int".into(),
            Value::Int64(_) => "int64".into(),
            Value::Float(_) => "float64".into(),
            Value::String(_) => "string".into(),
            Value::List(_) => "[]interface {}".into(),
            Value::Map(_) => "map[string]interface {}".into(),
            Value::Object(o) => o.type_name(),
        }
    }

    /// Go's `reflect.Kind` name (Sprig's `kindOf`): `invalid` for nil, `slice`, `map`...
    pub fn kind_name(&self) -> &'static str {
        match self {
            Value::Nil => "invalid",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Int64(_) => "int64",
            Value::Float(_) => "float64",
            Value::String(_) => "string",
            Value::List(_) => "slice",
            Value::Map(_) => "map",
            Value::Object(o) => o.kind(),
        }
    }

    /// What `{{ . }}`/`print` writes (`fmt.Sprint`): strings raw, maps `map[a:1 b:2]`,
    /// lists `[a b]`, nil `<nil>`, floats `%v` (`1e+06`).
    pub fn to_go_string(&self) -> String {
        let mut s = String::new();
        crate::fmt::write_value(&mut s, self);
        s
    }

    pub(crate) fn to_go_string_nested(&self) -> String {
        self.to_go_string()
    }

    /// Deep copy: maps and lists are copied recursively (Sprig's `deepCopy`). Below
    /// [`crate::limits::MAX_VALUE_DEPTH`] levels (a map that contains itself) the
    /// references are shared instead; [`Value::try_deep_copy`] reports that as an error.
    pub fn deep_copy(&self) -> Value {
        self.deep_copy_at(0, false).unwrap_or_else(|_| self.clone())
    }

    /// [`Value::deep_copy`], failing on values nested deeper than
    /// [`crate::limits::MAX_VALUE_DEPTH`] (Go's `copystructure` recurses forever on a map
    /// that contains itself).
    pub fn try_deep_copy(&self) -> Result<Value, crate::fmt::Limit> {
        self.deep_copy_at(0, true)
    }

    fn deep_copy_at(&self, depth: usize, strict: bool) -> Result<Value, crate::fmt::Limit> {
        if depth > crate::limits::MAX_VALUE_DEPTH && matches!(self, Value::List(_) | Value::Map(_))
        {
            return if strict {
                Err(crate::fmt::Limit::Depth)
            } else {
                Ok(self.clone())
            };
        }
        crate::limits::with_stack(|| {
            Ok(match self {
                Value::List(l) => Value::list(
                    l.iter()
                        .map(|v| v.deep_copy_at(depth + 1, strict))
                        .collect::<Result<_, _>>()?,
                ),
                Value::Map(m) => Value::map(
                    m.read()
                        .iter()
                        .map(|(k, v)| Ok((k.clone(), v.deep_copy_at(depth + 1, strict)?)))
                        .collect::<Result<_, _>>()?,
                ),
                v => v.clone(),
            })
        })
    }

    /// The entries `range` and `len` see: for an object of kind `map` or `slice`, its
    /// [`Object::to_data`] when that is a map or list; `None` otherwise.
    pub fn object_collection(&self) -> Option<Value> {
        match self {
            Value::Object(o) if matches!(o.kind(), "map" | "slice") => match o.to_data() {
                v @ (Value::Map(_) | Value::List(_)) => Some(v),
                _ => None,
            },
            _ => None,
        }
    }

    /// Structural equality (Sprig's `deepEqual`, `has`, `uniq`: reflect.DeepEqual).
    /// Numbers of different Go types are different.
    /// Values nested deeper than [`crate::limits::MAX_VALUE_DEPTH`] compare unequal.
    pub fn deep_equal(&self, other: &Value) -> bool {
        self.deep_equal_at(other, 0)
    }

    fn deep_equal_at(&self, other: &Value, depth: usize) -> bool {
        if depth > crate::limits::MAX_VALUE_DEPTH {
            return false;
        }
        crate::limits::with_stack(|| self.deep_equal_inner(other, depth))
    }

    fn deep_equal_inner(&self, other: &Value, depth: usize) -> bool {
        match (self, other) {
            (Value::Nil, Value::Nil) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Int64(a), Value::Int64(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a == b,
            (Value::String(a), Value::String(b)) => a == b,
            (Value::List(a), Value::List(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .zip(b.iter())
                        .all(|(x, y)| x.deep_equal_at(y, depth + 1))
            }
            (Value::Map(a), Value::Map(b)) => {
                if a.ptr_eq(b) {
                    return true;
                }
                let (a, b) = (a.snapshot(), b.snapshot());
                a.len() == b.len()
                    && a.iter()
                        .zip(b.iter())
                        .all(|((ka, va), (kb, vb))| ka == kb && va.deep_equal_at(vb, depth + 1))
            }
            (Value::Object(a), Value::Object(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}
