//! values.schema.json validation (Helm: santhosh-tekuri/jsonschema; here the
//! `jsonschema` crate, messages worded like Helm's).

use crate::chart::Chart;
use crate::value::{Map, Val};

/// Validates `values` against one schema; `Err` holds Helm-style lines
/// (`- at '/path': message`).
pub fn validate_single(values: &Map, schema: &[u8]) -> Result<(), String> {
    let mut schema_json: serde_json::Value =
        serde_json::from_slice(schema).map_err(|e| format!("{e}"))?;
    // Helm's validator falls back to its default draft for an unknown `$schema`.
    if let Some(obj) = schema_json.as_object_mut() {
        let known = obj
            .get("$schema")
            .and_then(|s| s.as_str())
            .is_some_and(|s| {
                ["draft-04", "draft-06", "draft-07", "2019-09", "2020-12"]
                    .iter()
                    .any(|d| s.contains(d))
            });
        if !known {
            obj.remove("$schema");
        }
    }
    let validator = jsonschema::validator_for(&schema_json).map_err(|e| format!("{e}"))?;
    let instance = Val::Map(values.clone()).to_json();
    let mut lines = Vec::new();
    for err in validator.iter_errors(&instance) {
        let loc = err.instance_path.to_string();
        lines.push(format!("- at '{}': {}", loc, helm_message(&err)));
    }
    if lines.is_empty() {
        Ok(())
    } else {
        Ok(()).and(Err(lines.join("\n") + "\n"))
    }
}

fn helm_message(err: &jsonschema::ValidationError<'_>) -> String {
    use jsonschema::error::ValidationErrorKind as K;
    match &err.kind {
        K::Required { property } => format!("missing property {}", quote(property)),
        K::Type { kind } => {
            let want = match kind {
                jsonschema::error::TypeKind::Single(t) => format!("{t:?}").to_lowercase(),
                jsonschema::error::TypeKind::Multiple(ts) => {
                    let v: Vec<String> =
                        ts.iter().map(|t| format!("{t:?}").to_lowercase()).collect();
                    v.join(", ")
                }
            };
            format!("got {}, want {}", json_type(&err.instance), want)
        }
        K::Enum { options } => format!("value must be one of {}", enum_list(options)),
        K::AdditionalProperties { unexpected } => {
            format!(
                "additional properties {} not allowed",
                unexpected
                    .iter()
                    .map(|s| format!("'{s}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
        _ => err.to_string(),
    }
}

fn quote(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => format!("'{s}'"),
        other => other.to_string(),
    }
}

fn enum_list(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Array(a) => a.iter().map(quote).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

fn json_type(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(n) => {
            if n.is_i64() || n.is_u64() {
                "integer"
            } else {
                "number"
            }
        }
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

/// `ValidateAgainstSchema`: the chart's schema and its subcharts', recursively.
pub fn validate(chart: &Chart, values: &Map) -> Result<(), String> {
    let mut sb = String::new();
    if let Some(schema) = &chart.schema {
        if let Err(e) = validate_single(values, schema) {
            sb.push_str(&format!("{}:\n", chart.name()));
            sb.push_str(&e);
        }
    }
    for sub in &chart.dependencies {
        match values.get(sub.name()) {
            None | Some(Val::Null) => continue,
            Some(Val::Map(m)) => {
                if let Err(e) = validate(sub, m) {
                    sb.push_str(&e);
                }
            }
            Some(other) => {
                sb.push_str(&format!(
                    "{}:\ninvalid type for values: expected object (map), got {}\n",
                    sub.name(),
                    type_name(other)
                ));
            }
        }
    }
    if sb.is_empty() {
        Ok(())
    } else {
        Err(sb)
    }
}

fn type_name(v: &Val) -> &'static str {
    match v {
        Val::Bool(_) => "bool",
        Val::Int(_) => "int64",
        Val::Float(_) => "float64",
        Val::Str(_) => "string",
        Val::List(_) => "[]interface {}",
        _ => "<nil>",
    }
}
