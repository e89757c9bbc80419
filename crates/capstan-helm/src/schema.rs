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
    let mut lines: Vec<String> = Vec::new();
    // santhosh-tekuri/jsonschema reports all missing required properties of an object at once
    let mut missing: Vec<(String, Vec<String>)> = Vec::new();
    for err in validator.iter_errors(&instance) {
        let loc = err.instance_path.to_string();
        if let jsonschema::error::ValidationErrorKind::Required { property } = &err.kind {
            let name = quote(property);
            match missing.iter_mut().find(|(l, _)| *l == loc) {
                Some((_, v)) => v.push(name),
                None => {
                    lines.push(format!("\u{0}required:{loc}"));
                    missing.push((loc, vec![name]));
                }
            }
            continue;
        }
        lines.push(format!("- at '{}': {}", loc, helm_message(&err)));
    }
    for line in lines.iter_mut() {
        if let Some(loc) = line.strip_prefix("\u{0}required:") {
            let names = &missing.iter().find(|(l, _)| l == loc).expect("recorded").1;
            let msg = if names.len() == 1 {
                format!("missing property {}", names[0])
            } else {
                format!("missing properties {}", names.join(", "))
            };
            *line = format!("- at '{loc}': {msg}");
        }
    }
    if lines.is_empty() {
        Ok(())
    } else {
        Ok(()).and(Err(lines.join("\n") + "\n"))
    }
}

fn helm_message(err: &jsonschema::ValidationError<'_>) -> String {
    use jsonschema::error::ValidationErrorKind as K;
    let inst = &err.instance;
    match &err.kind {
        K::Required { property } => format!("missing property {}", quote(property)),
        K::Type { kind } => {
            let want = match kind {
                jsonschema::error::TypeKind::Single(t) => format!("{t:?}").to_lowercase(),
                jsonschema::error::TypeKind::Multiple(ts) => {
                    let v: Vec<String> =
                        ts.iter().map(|t| format!("{t:?}").to_lowercase()).collect();
                    v.join(" or ")
                }
            };
            format!("got {}, want {}", json_type(inst), want)
        }
        K::Enum { options } => format!("value must be one of {}", enum_list(options)),
        K::Constant { expected_value } => format!("value must be {}", quote(expected_value)),
        K::AdditionalProperties { unexpected } => format!(
            "additional properties {} not allowed",
            unexpected
                .iter()
                .map(|s| format!("'{s}'"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        K::Pattern { pattern } => format!("{} does not match pattern '{}'", quote(inst), pattern),
        K::MinLength { limit } => format!("minLength: got {}, want {limit}", str_len(inst)),
        K::MaxLength { limit } => format!("maxLength: got {}, want {limit}", str_len(inst)),
        K::MinItems { limit } => format!(
            "minItems: got {}, want {limit}",
            inst.as_array().map_or(0, |a| a.len())
        ),
        K::MaxItems { limit } => format!(
            "maxItems: got {}, want {limit}",
            inst.as_array().map_or(0, |a| a.len())
        ),
        K::MinProperties { limit } => {
            format!(
                "minProperties: got {}, want {limit}",
                inst.as_object().map_or(0, |a| a.len())
            )
        }
        K::MaxProperties { limit } => {
            format!(
                "maxProperties: got {}, want {limit}",
                inst.as_object().map_or(0, |a| a.len())
            )
        }
        K::Minimum { limit } => format!("minimum: got {inst}, want {limit}"),
        K::Maximum { limit } => format!("maximum: got {inst}, want {limit}"),
        K::ExclusiveMinimum { limit } => format!("exclusiveMinimum: got {inst}, want {limit}"),
        K::ExclusiveMaximum { limit } => format!("exclusiveMaximum: got {inst}, want {limit}"),
        K::MultipleOf { multiple_of } => format!("multipleOf: got {inst}, want {multiple_of}"),
        K::UniqueItems => {
            let a = inst.as_array().cloned().unwrap_or_default();
            let mut pair = (0, 0);
            'outer: for i in 0..a.len() {
                for j in i + 1..a.len() {
                    if a[i] == a[j] {
                        pair = (i, j);
                        break 'outer;
                    }
                }
            }
            format!("items at {} and {} are equal", pair.0, pair.1)
        }
        K::OneOfNotValid { .. } => "'oneOf' failed, none matched".into(),
        K::OneOfMultipleValid { .. } => "'oneOf' failed, more than one matched".into(),
        K::AnyOf { .. } => "'anyOf' failed".into(),
        K::Not { .. } => "'not' failed".into(),
        K::FalseSchema => "false schema".into(),
        _ => err.to_string(),
    }
}

fn str_len(v: &serde_json::Value) -> usize {
    v.as_str().map_or(0, |s| s.chars().count())
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
                if let Err(e) = capstan_gotemplate::with_stack(|| validate(sub, m)) {
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
