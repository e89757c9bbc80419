//! The two template dialects of ApplicationSets (Argo CD's `applicationset/utils`):
//!
//! * fasttemplate (the default): `{{ name }}` is replaced by the string parameter `name`
//!   (flattened keys such as `path.basename`, `values.x`, `metadata.labels.k`); a tag
//!   naming no string parameter is left as written.
//! * Go templates (`goTemplate: true`): Go's `text/template` with Sprig minus `env`,
//!   `expandenv` and `getHostByName`, plus `normalize`, `slugify`, `toYaml`, `fromYaml`,
//!   `fromYamlArray`; `goTemplateOptions` (`missingkey=error|zero|default|invalid`).
//!
//! Every string of the Application template is rendered, and so is every map key.

use std::sync::{Arc, OnceLock};

use capstan_gotemplate::{FuncMap, MissingKey, Options, TemplateSet, Value as GoValue};
use serde_json::{Map, Value};

/// Which dialect and its options.
#[derive(Debug, Clone, Default)]
pub struct Dialect {
    pub go_template: bool,
    pub missing_key: GoMissingKey,
}

/// Go's `missingkey` option as `goTemplateOptions` sets it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum GoMissingKey {
    /// `missingkey=default`/`invalid` (Go's default): `<no value>`.
    #[default]
    Default,
    Zero,
    Error,
}

impl Dialect {
    /// From an ApplicationSet's `spec` (`goTemplate`, `goTemplateOptions`).
    pub fn from_spec(spec: &Value) -> Result<Dialect, String> {
        let go_template = spec
            .get("goTemplate")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let mut missing_key = GoMissingKey::Default;
        if let Some(opts) = spec.get("goTemplateOptions").and_then(Value::as_array) {
            for o in opts {
                let o = o.as_str().unwrap_or("");
                missing_key = match o {
                    "missingkey=error" => GoMissingKey::Error,
                    "missingkey=zero" => GoMissingKey::Zero,
                    "missingkey=default" | "missingkey=invalid" => GoMissingKey::Default,
                    other => {
                        return Err(format!(
                            "unrecognized option: {other} (Go's text/template knows missingkey=default|invalid|zero|error)"
                        ))
                    }
                };
            }
        }
        Ok(Dialect {
            go_template,
            missing_key,
        })
    }
}

/// Render one string with `params` in `dialect`.
pub fn replace(
    tmpl: &str,
    params: &Map<String, Value>,
    dialect: &Dialect,
) -> Result<String, String> {
    if dialect.go_template {
        go_replace(tmpl, params, dialect.missing_key)
    } else {
        fast_replace(tmpl, params)
    }
}

/// Render every string (and map key) of `v`.
pub fn render_value(
    v: &Value,
    params: &Map<String, Value>,
    dialect: &Dialect,
) -> Result<Value, String> {
    Ok(match v {
        Value::String(s) => Value::String(replace(s, params, dialect)?),
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| render_value(x, params, dialect))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, x) in m {
                if x.is_null() {
                    continue;
                }
                out.insert(
                    replace(k, params, dialect)?,
                    render_value(x, params, dialect)?,
                );
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

fn is_templated(s: &str) -> bool {
    // Argo CD's `.*{{.*}}.*`: `.` stops at a newline.
    s.lines().any(|l| match l.find("{{") {
        Some(i) => l[i + 2..].contains("}}"),
        None => false,
    })
}

/// fasttemplate with `{{`/`}}`: a tag naming a string parameter is replaced, any other
/// tag is kept as written.
pub fn fast_replace(tmpl: &str, params: &Map<String, Value>) -> Result<String, String> {
    if !is_templated(tmpl) {
        return Ok(tmpl.to_string());
    }
    let mut out = String::new();
    let mut rest = tmpl;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(j) = after.find("}}") else {
            return Err(format!(
                "invalid template: cannot find end tag=\"}}}}\" in the template={tmpl:?} starting from {after:?}"
            ));
        };
        let tag = &after[..j];
        let key = tag.trim();
        match params.get(key).and_then(Value::as_str) {
            Some(v) if !key.is_empty() => out.push_str(v),
            _ => {
                out.push_str("{{");
                out.push_str(tag);
                out.push_str("}}");
            }
        }
        rest = &after[j + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn funcs() -> Arc<FuncMap> {
    static FUNCS: OnceLock<Arc<FuncMap>> = OnceLock::new();
    FUNCS
        .get_or_init(|| {
            let all = capstan_sprig::funcs(capstan_sprig::HelmOptions::default());
            let mut m = FuncMap::new();
            // Sprig's generic map minus what reveals the environment; Helm's own
            // functions that Argo CD does not have are left out too.
            const DROP: &[&str] = &[
                "env",
                "expandenv",
                "getHostByName",
                "lookup",
                "required",
                "toToml",
                "include",
                "tpl",
            ];
            for name in all.names() {
                if DROP.contains(&name) {
                    continue;
                }
                if let Some(f) = all.get(name) {
                    m.insert(name, f.clone());
                }
            }
            m.add("normalize", |_, args| {
                let s = args.first().map(go_string).unwrap_or_default();
                Ok(GoValue::from(sanitize_name(&s)))
            });
            m.add("slugify", |_, args| slugify_args(args).map(GoValue::from));
            Arc::new(FuncMap::with_builtins(m))
        })
        .clone()
}

fn go_string(v: &GoValue) -> String {
    match v {
        GoValue::String(s) => s.to_string(),
        other => capstan_gotemplate::fmt::sprint(std::slice::from_ref(other)),
    }
}

fn slugify_args(args: &[GoValue]) -> Result<String, String> {
    let mut max = 50usize;
    let mut smart = true;
    let mut name = String::new();
    let n = args.len();
    for (i, a) in args.iter().enumerate() {
        if i + 1 == n {
            name = go_string(a);
        } else if i == 0 {
            max = match a.to_json() {
                Value::Number(x) => x.as_u64().unwrap_or(50) as usize,
                _ => return Err("slugify: the maximum length must be an int".into()),
            };
        } else if i == 1 {
            smart = matches!(a.to_json(), Value::Bool(true));
        }
    }
    Ok(slugify(&name, max, smart))
}

/// Argo CD's `SanitizeName` (the `normalize` function, `nameNormalized` parameters):
/// lower case, every character outside `[-a-z0-9.]` becomes `-`, at most 253
/// characters, no leading or trailing `-` or `.`.
pub fn sanitize_name(name: &str) -> String {
    let lower = name.to_lowercase();
    let mut s: String = lower
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if s.len() > 253 {
        s.truncate(253);
    }
    s.trim_matches(|c| c == '-' || c == '.').to_string()
}

/// Argo CD's `slugify [maxSize [smartTruncate]] name`: the sanitized name made a URL
/// slug (gosimple/slug), cut to `max` characters (at a `-` with smart truncation).
pub fn slugify(name: &str, max: usize, smart: bool) -> String {
    let s = sanitize_name(name);
    let mut slug = String::new();
    for c in s.trim().chars() {
        if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
            slug.push(c);
        } else {
            slug.push('-');
        }
    }
    let mut collapsed = String::new();
    for c in slug.chars() {
        if c == '-' && collapsed.ends_with('-') {
            continue;
        }
        collapsed.push(c);
    }
    let slug = collapsed.trim_matches(|c| c == '-' || c == '_').to_string();
    if max == 0 || slug.len() <= max {
        return slug;
    }
    if smart {
        let b = slug.as_bytes();
        for i in (0..=max).rev() {
            if b[i] == b'-' {
                return slug[..i].to_string();
            }
        }
    }
    slug[..max].to_string()
}

/// Go's `text/template` over `params`.
pub fn go_replace(
    tmpl: &str,
    params: &Map<String, Value>,
    missing: GoMissingKey,
) -> Result<String, String> {
    let mut set = TemplateSet::new_shared(funcs()).with_options(Options {
        missing_key: match missing {
            GoMissingKey::Default => MissingKey::Default,
            GoMissingKey::Zero => MissingKey::Zero,
            GoMissingKey::Error => MissingKey::Error,
        },
        ..Options::default()
    });
    set.add("", tmpl)
        .map_err(|e| format!("failed to parse template {tmpl}: {e}"))?;
    let data = GoValue::from_json(&Value::Object(params.clone()));
    capstan_gotemplate::with_stack(|| set.execute("", &data))
        .map_err(|e| format!("failed to execute go template {tmpl}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn fasttemplate_replaces_string_params_and_keeps_unknown_tags() {
        let params = p(json!({"path.basename": "guestbook", "n": 1}));
        assert_eq!(
            fast_replace("{{path.basename}}-{{ path.basename }}", &params).unwrap(),
            "guestbook-guestbook"
        );
        // unknown tags and non-string params stay as written
        assert_eq!(
            fast_replace("{{nope}}/{{n}}", &params).unwrap(),
            "{{nope}}/{{n}}"
        );
        // an unterminated tag on its own line is not a template
        assert_eq!(fast_replace("{{ x", &params).unwrap(), "{{ x");
    }

    #[test]
    fn go_template_with_sprig_normalize_slugify() {
        let params = p(json!({"path": {"basename": "My_App"}, "n": 3}));
        let got = go_replace(
            "{{ .path.basename | normalize }} {{ upper \"a\" }} {{ slugify 50 true \"Hello World\" }}",
            &params,
            GoMissingKey::Default,
        )
        .unwrap();
        assert_eq!(got, "my-app A hello-world");
        assert_eq!(
            go_replace("{{ .missing }}", &params, GoMissingKey::Default).unwrap(),
            "<no value>"
        );
    }

    #[test]
    fn go_template_missingkey_error() {
        let params = p(json!({"a": "x"}));
        let e = go_replace("{{ .b }}", &params, GoMissingKey::Error).unwrap_err();
        assert!(e.contains("map has no entry for key"), "{e}");
    }

    #[test]
    fn env_functions_are_not_defined() {
        let e = go_replace("{{ env \"HOME\" }}", &Map::new(), GoMissingKey::Default).unwrap_err();
        assert!(e.contains("not defined"), "{e}");
    }

    #[test]
    fn to_yaml_and_from_yaml() {
        let params = p(json!({"m": {"b": 1, "a": "x"}}));
        assert_eq!(
            go_replace("{{ toYaml .m }}", &params, GoMissingKey::Default).unwrap(),
            "a: x\nb: 1"
        );
        assert_eq!(
            go_replace(
                "{{ (fromYaml \"k: v\").k }}",
                &params,
                GoMissingKey::Default
            )
            .unwrap(),
            "v"
        );
    }

    #[test]
    fn sanitize_and_slugify_as_argo_cd() {
        assert_eq!(sanitize_name("-My_Cluster.Prod-"), "my-cluster.prod");
        assert_eq!(slugify("Hello World Foo", 11, true), "hello-world");
        assert_eq!(slugify("Hello World Foo", 8, false), "hello-wo");
    }

    #[test]
    fn render_value_templates_keys_and_values() {
        let params = p(json!({"env": "prod"}));
        let v = render_value(
            &json!({"labels": {"{{env}}-key": "{{env}}"}, "n": 1}),
            &params,
            &Dialect::default(),
        )
        .unwrap();
        assert_eq!(v, json!({"labels": {"prod-key": "prod"}, "n": 1}));
    }

    #[test]
    fn go_template_options_are_checked() {
        let d = Dialect::from_spec(
            &json!({"goTemplate": true, "goTemplateOptions": ["missingkey=error"]}),
        )
        .unwrap();
        assert!(d.go_template);
        assert_eq!(d.missing_key, GoMissingKey::Error);
        assert!(Dialect::from_spec(&json!({"goTemplateOptions": ["bogus"]})).is_err());
    }
}
