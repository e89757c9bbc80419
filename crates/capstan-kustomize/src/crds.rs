//! The `crds:` field (kustomize's `LoadConfigFromCRDs`): files of OpenAPI definitions
//! (`{typeName: {Schema: {properties: ...}}}`, as Kubernetes' `gen-openapi` writes them)
//! whose `x-kubernetes-*` extensions teach the transformers about a custom kind:
//!
//! - `x-kubernetes-annotation`: the field takes `commonAnnotations`;
//! - `x-kubernetes-label-selector`: the field takes `commonLabels`;
//! - `x-kubernetes-identity`: the field takes `namePrefix`;
//! - `x-kubernetes-object-ref-api-version` with `x-kubernetes-object-ref-kind` (and
//!   `x-kubernetes-object-ref-name-key`, default `name`): the field names an object of
//!   that kind (a name reference).
//!
//! A type is a root when it has `kind`, `apiVersion` and `metadata` properties; its kind
//! is the last dot-separated part of its name. `$ref`s of properties are followed into the
//! named types (a type already on the path is not entered again, so a self-referencing
//! schema ends). A file that is not such a map is an error, as in kustomize.

use capstan_yaml::{Mapping, Node};

use crate::error::{kerr, Result};
use crate::fieldspec::{FieldSpec, NameRef, TransformerConfig};

const X_ANNOTATION: &str = "x-kubernetes-annotation";
const X_LABEL_SELECTOR: &str = "x-kubernetes-label-selector";
const X_IDENTITY: &str = "x-kubernetes-identity";
const X_VERSION: &str = "x-kubernetes-object-ref-api-version";
const X_KIND: &str = "x-kubernetes-object-ref-kind";
const X_NAME_KEY: &str = "x-kubernetes-object-ref-name-key";

/// Go's `encoding/json` name of a YAML node's type, for its unmarshal errors.
fn json_kind(n: &Node) -> &'static str {
    match n {
        Node::Mapping(_) => "object",
        Node::Sequence(_) => "array",
        Node::Scalar(s) if s.is_null() => "null",
        Node::Scalar(_) => match capstan_yaml::to_json(n) {
            serde_json::Value::Bool(_) => "bool",
            serde_json::Value::Number(_) => "number",
            _ => "string",
        },
    }
}

/// A mapping, or `None` for null; anything else is Go's unmarshal error.
fn as_map<'a>(n: &'a Node, go_type: &str) -> std::result::Result<Option<&'a Mapping>, String> {
    match n {
        Node::Mapping(m) => Ok(Some(m)),
        Node::Scalar(s) if s.is_null() => Ok(None),
        other => Err(format!(
            "json: cannot unmarshal {} into Go value of type {go_type}",
            json_kind(other)
        )),
    }
}

/// A field of a Go struct, matched case-insensitively as encoding/json matches.
fn field<'a>(m: &'a Mapping, name: &str) -> Option<&'a Node> {
    m.entries
        .iter()
        .find(|(k, _)| k == name)
        .or_else(|| m.entries.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)))
        .map(|(_, v)| v)
}

/// A string-valued vendor extension (go-openapi's `Extensions.GetString`: keys compare
/// case-insensitively, a value that is not a string does not count), or `$ref`.
fn extension<'a>(schema: &'a Mapping, key: &str) -> Option<&'a str> {
    schema
        .entries
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .and_then(|(_, v)| match v {
            Node::Scalar(s) if s.tag == capstan_yaml::Tag::Str => Some(s.value.as_str()),
            _ => None,
        })
}

/// One type of the file: its name and its `properties` (name, schema).
struct ApiType<'a> {
    name: &'a str,
    /// Each property with its schema (`None`: given as null).
    properties: Vec<(&'a str, Option<&'a Mapping>)>,
}

fn parse_types(doc: &Node) -> std::result::Result<Vec<ApiType<'_>>, String> {
    let Some(top) = as_map(doc, "map[string]accumulator.OpenAPIDefinition")? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (name, def) in &top.entries {
        let mut properties = Vec::new();
        let schema = match as_map(def, "accumulator.OpenAPIDefinition")? {
            Some(d) => field(d, "Schema"),
            None => None,
        };
        if let Some(schema) = schema {
            let schema = as_map(schema, "spec.Schema")?;
            if let Some(props) = schema.and_then(|s| field(s, "properties")) {
                let props = as_map(props, "map[string]spec.Schema").map_err(|e| {
                    format!("json: cannot unmarshal Go value of type spec.Schema: {e}")
                })?;
                for (p, ps) in props.map(|m| m.entries.iter()).into_iter().flatten() {
                    properties.push((p.as_str(), as_map(ps, "spec.Schema")?));
                }
            }
        }
        out.push(ApiType {
            name: name.as_str(),
            properties,
        });
    }
    Ok(out)
}

/// The transformer configuration one `crds:` file declares. `path` names the file in
/// errors.
pub fn config_from_crds(text: &str, path: &str) -> Result<TransformerConfig> {
    let fail = |e: String| kerr!("unable to parse open API definition from '{path}': {e}");
    if text.trim().is_empty() {
        return Err(fail("the file is empty".into()));
    }
    let doc = capstan_yaml::parse_documents(text, path)
        .map_err(|e| fail(e.to_string()))?
        .into_iter()
        .next()
        .unwrap_or_else(Node::null);
    let types = parse_types(&doc).map_err(fail)?;
    let mut config = TransformerConfig::default();
    for t in &types {
        let is_k8s_type = ["kind", "apiVersion", "metadata"]
            .iter()
            .all(|p| t.properties.iter().any(|(n, _)| n == p));
        if !is_k8s_type {
            continue;
        }
        let kind = t.name.rsplit('.').next().unwrap_or(t.name);
        let mut one = TransformerConfig::default();
        let mut visiting = vec![t.name];
        load_type(&mut one, kind, &types, t, &mut Vec::new(), &mut visiting);
        config.merge(&one);
    }
    Ok(config)
}

fn load_type<'a>(
    config: &mut TransformerConfig,
    kind: &str,
    types: &'a [ApiType<'a>],
    t: &ApiType<'a>,
    path: &mut Vec<String>,
    visiting: &mut Vec<&'a str>,
) {
    let spec = |path: &[String]| FieldSpec {
        group: String::new(),
        version: String::new(),
        kind: kind.to_string(),
        path: path.to_vec(),
        create: false,
    };
    for (prop, schema) in &t.properties {
        let Some(schema) = schema else {
            continue;
        };
        path.push(prop.to_string());
        if extension(schema, X_ANNOTATION).is_some() {
            config.common_annotations.push(spec(path));
        }
        if extension(schema, X_LABEL_SELECTOR).is_some() {
            config.common_labels.push(spec(path));
        }
        if extension(schema, X_IDENTITY).is_some() {
            config.name_prefix.push(spec(path));
        }
        if let (Some(version), Some(ref_kind)) =
            (extension(schema, X_VERSION), extension(schema, X_KIND))
        {
            let name_key = extension(schema, X_NAME_KEY).unwrap_or("name");
            let mut p = path.clone();
            p.push(name_key.to_string());
            let nr = NameRef {
                kind: ref_kind.to_string(),
                group: String::new(),
                version: version.to_string(),
                field_specs: vec![spec(&p)],
            };
            let mut c = TransformerConfig::default();
            c.name_reference.push(nr);
            config.merge(&c);
        }
        if let Some(target) = extension(schema, "$ref") {
            if let Some(next) = types.iter().find(|x| x.name == target) {
                if !visiting.contains(&next.name) {
                    visiting.push(next.name);
                    load_type(config, kind, types, next, path, visiting);
                    visiting.pop();
                }
            }
        }
        path.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_referencing_schema_ends() {
        let text = r#"{"a.b.V1.K": {"Schema": {"properties": {"kind": {}, "apiVersion": {}, "metadata": {},
            "spec": {"$ref": "a.b.V1.Spec"}}}},
          "a.b.V1.Spec": {"Schema": {"properties": {"next": {"$ref": "a.b.V1.Spec"},
            "ref": {"x-kubernetes-object-ref-api-version": "v1", "x-kubernetes-object-ref-kind": "Secret"}}}}}"#;
        let c = config_from_crds(text, "crd.json").unwrap();
        assert_eq!(c.name_reference.len(), 1);
        assert_eq!(
            c.name_reference[0].field_specs[0].path,
            ["spec", "ref", "name"]
        );
        assert_eq!(c.name_reference[0].field_specs[0].kind, "K");
    }

    #[test]
    fn a_custom_resource_definition_object_is_not_an_openapi_definition_file() {
        let err = config_from_crds(
            "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n",
            "crd.yaml",
        )
        .unwrap_err();
        assert!(
            err.message
                .contains("unable to parse open API definition from 'crd.yaml'")
                && err.message.contains(
                    "cannot unmarshal string into Go value of type accumulator.OpenAPIDefinition"
                ),
            "{err}"
        );
    }
}
