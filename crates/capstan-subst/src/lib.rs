//! Post-build variable substitution, as Flux's kustomize-controller does it.
//!
//! Flux runs `drone/envsubst` over each rendered object (as YAML text) when a
//! Kustomization has `spec.postBuild.substitute` or `substituteFrom`. This crate is a
//! pure re-implementation of the subset Flux documents:
//!
//! * `${VAR}` — the value of VAR;
//! * `${VAR:=default}`, `${VAR:-default}` — the default when VAR is unset or empty;
//!   `${VAR=default}`, `${VAR-default}` — the default when VAR is unset;
//! * `${VAR^}`, `${VAR^^}`, `${VAR,}`, `${VAR,,}` — case changes; `${#VAR}` — length;
//! * `$${VAR}` — an escape: the text `${VAR}` is kept literally;
//! * a plain `$VAR` (no braces) is left alone, so shell snippets inside ConfigMaps
//!   survive.
//!
//! Unlike Flux's default, an unset variable with no default is an error (Flux's
//! `--feature-gates=StrictPostBuildSubstitutions=true`): a missing value must never
//! silently become an empty string in a cluster. Callers that want Flux's lenient
//! behaviour pass [`Mode::Lenient`].

use std::collections::BTreeMap;

/// How to treat a variable that has no value and no default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Error (the default).
    #[default]
    Strict,
    /// Substitute the empty string, as Flux does by default.
    Lenient,
}

/// A substitution failure, with the 1-based line and column in the input text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubstError {
    #[error("line {line}, column {column}: variable `{name}` has no value and no default")]
    Unset {
        name: String,
        line: usize,
        column: usize,
    },
    #[error("line {line}, column {column}: unterminated `${{` (missing `}}`)")]
    Unterminated { line: usize, column: usize },
    #[error("line {line}, column {column}: bad substitution `{text}`")]
    Bad {
        text: String,
        line: usize,
        column: usize,
    },
    #[error("variable name `{0}` is invalid: it must match ^[_[:alpha:]][_[:alpha:][:digit:]]*$")]
    InvalidName(String),
}

/// Is `name` a valid variable name (`^[_[:alpha:]][_[:alpha:][:digit:]]*$`)?
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c == '_' || c.is_ascii_alphabetic() => {}
        _ => return false,
    }
    chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// Check every variable name, as Flux does before substituting.
pub fn validate_names<'a>(names: impl IntoIterator<Item = &'a String>) -> Result<(), SubstError> {
    for n in names {
        if !valid_name(n) {
            return Err(SubstError::InvalidName(n.clone()));
        }
    }
    Ok(())
}

/// Does the text contain anything substitution would touch?
pub fn has_references(text: &str) -> bool {
    text.contains("${")
}

/// Substitute variables in `text`. Returns the new text, or the first error.
pub fn substitute(
    text: &str,
    vars: &BTreeMap<String, String>,
    mode: Mode,
) -> Result<String, SubstError> {
    if !has_references(text) {
        return Ok(text.to_string());
    }
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut last = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && i + 2 < bytes.len() + 1 {
            // Escape: $${...} -> ${...}
            if bytes.get(i + 1) == Some(&b'$') && bytes.get(i + 2) == Some(&b'{') {
                out.push_str(&text[last..i]);
                out.push('$');
                i += 2; // continue at '{', copied literally below
                last = i;
                // copy through the closing brace literally
                if let Some(end) = text[i..].find('}') {
                    out.push_str(&text[i..i + end + 1]);
                    i += end + 1;
                    last = i;
                }
                continue;
            }
            if bytes.get(i + 1) == Some(&b'{') {
                out.push_str(&text[last..i]);
                let start = i;
                let close = match find_close(text, i + 2) {
                    Some(c) => c,
                    None => {
                        let (line, column) = position(text, start);
                        return Err(SubstError::Unterminated { line, column });
                    }
                };
                let expr = &text[i + 2..close];
                let value = eval(expr, vars, mode).map_err(|e| {
                    let (line, column) = position(text, start);
                    match e {
                        EvalError::Unset(name) => SubstError::Unset { name, line, column },
                        EvalError::Bad => SubstError::Bad {
                            text: text[start..=close].to_string(),
                            line,
                            column,
                        },
                    }
                })?;
                out.push_str(&value);
                i = close + 1;
                last = i;
                continue;
            }
        }
        i += 1;
    }
    out.push_str(&text[last..]);
    Ok(out)
}

/// Find the `}` closing a `${` whose body starts at `from`, allowing nested `${...}`
/// inside defaults.
fn find_close(text: &str, from: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = from;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 2;
                continue;
            }
            b'}' => {
                if depth == 0 {
                    return Some(i);
                }
                depth -= 1;
            }
            b'\n' => return None,
            _ => {}
        }
        i += 1;
    }
    None
}

fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map(|p| offset - p).unwrap_or(offset + 1);
    (line, column)
}

enum EvalError {
    Unset(String),
    Bad,
}

fn eval(expr: &str, vars: &BTreeMap<String, String>, mode: Mode) -> Result<String, EvalError> {
    if let Some(name) = expr.strip_prefix('#') {
        if !valid_name(name) {
            return Err(EvalError::Bad);
        }
        return Ok(lookup(name, vars, mode)?.chars().count().to_string());
    }
    let name_len = expr
        .find(|c: char| !(c == '_' || c.is_ascii_alphanumeric()))
        .unwrap_or(expr.len());
    let name = &expr[..name_len];
    if !valid_name(name) {
        return Err(EvalError::Bad);
    }
    let rest = &expr[name_len..];
    let value = vars.get(name);
    let default_of = |d: &str| -> Result<String, EvalError> {
        // Defaults may themselves contain ${...} references.
        substitute(d, vars, mode).map_err(|e| match e {
            SubstError::Unset { name, .. } => EvalError::Unset(name),
            _ => EvalError::Bad,
        })
    };
    match rest {
        "" => lookup(name, vars, mode),
        "^" => Ok(upper_first(&lookup(name, vars, mode)?)),
        "^^" => Ok(lookup(name, vars, mode)?.to_uppercase()),
        "," => Ok(lower_first(&lookup(name, vars, mode)?)),
        ",," => Ok(lookup(name, vars, mode)?.to_lowercase()),
        _ => {
            if let Some(d) = rest.strip_prefix(":=").or_else(|| rest.strip_prefix(":-")) {
                match value {
                    Some(v) if !v.is_empty() => Ok(v.clone()),
                    _ => default_of(d),
                }
            } else if let Some(d) = rest.strip_prefix('=').or_else(|| rest.strip_prefix('-')) {
                match value {
                    Some(v) => Ok(v.clone()),
                    None => default_of(d),
                }
            } else {
                Err(EvalError::Bad)
            }
        }
    }
}

fn lookup(name: &str, vars: &BTreeMap<String, String>, mode: Mode) -> Result<String, EvalError> {
    match vars.get(name) {
        Some(v) => Ok(v.clone()),
        None if mode == Mode::Lenient => Ok(String::new()),
        None => Err(EvalError::Unset(name.to_string())),
    }
}

fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn plain_and_defaults() {
        let v = vars(&[("cluster", "staging"), ("empty", "")]);
        assert_eq!(
            substitute("name: app-${cluster}", &v, Mode::Strict).unwrap(),
            "name: app-staging"
        );
        assert_eq!(
            substitute("r: ${replicas:=2}", &v, Mode::Strict).unwrap(),
            "r: 2"
        );
        assert_eq!(
            substitute("r: ${empty:=x}", &v, Mode::Strict).unwrap(),
            "r: x"
        );
        assert_eq!(
            substitute("r: ${empty=x}", &v, Mode::Strict).unwrap(),
            "r: "
        );
        assert_eq!(
            substitute("r: ${missing-y}", &v, Mode::Strict).unwrap(),
            "r: y"
        );
        assert_eq!(
            substitute("r: ${missing:=${cluster}}", &v, Mode::Strict).unwrap(),
            "r: staging"
        );
    }

    #[test]
    fn escapes_and_plain_dollars() {
        let v = vars(&[("a", "1")]);
        assert_eq!(
            substitute("x: $${a} $a $HOME", &v, Mode::Strict).unwrap(),
            "x: ${a} $a $HOME"
        );
        assert_eq!(
            substitute("cost: $5", &v, Mode::Strict).unwrap(),
            "cost: $5"
        );
    }

    #[test]
    fn case_and_length() {
        let v = vars(&[("env", "prod")]);
        assert_eq!(
            substitute("${env^^} ${env^} ${#env}", &v, Mode::Strict).unwrap(),
            "PROD Prod 4"
        );
    }

    #[test]
    fn strict_reports_position() {
        let v = vars(&[]);
        let err = substitute("a: 1\nb: ${nope}\n", &v, Mode::Strict).unwrap_err();
        assert_eq!(
            err,
            SubstError::Unset {
                name: "nope".into(),
                line: 2,
                column: 4
            }
        );
        assert_eq!(substitute("b: ${nope}", &v, Mode::Lenient).unwrap(), "b: ");
    }

    #[test]
    fn malformed() {
        let v = vars(&[]);
        assert!(matches!(
            substitute("b: ${nope", &v, Mode::Strict),
            Err(SubstError::Unterminated { .. })
        ));
        assert!(matches!(
            substitute("b: ${1x}", &v, Mode::Strict),
            Err(SubstError::Bad { .. })
        ));
    }

    #[test]
    fn names() {
        assert!(valid_name("_a1"));
        assert!(!valid_name("1a"));
        assert!(!valid_name("a-b"));
        assert!(validate_names(&["ok".to_string(), "no-t".to_string()]).is_err());
    }
}
