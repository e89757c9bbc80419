//! `--ignore-field PATH`: fields left out of the comparison.
//!
//! A path is dot-separated, matched against the object's own keys, so keys holding dots
//! need no quoting: `metadata.labels.helm.sh/chart` matches the label `helm.sh/chart`
//! (at each level the longest key that fits the rest of the path wins). A segment may
//! hold `*` (any characters: `checksum/*`); a leading `**.` matches at any depth; list
//! items are crossed transparently (`spec.containers.image` reaches every container's
//! image).

use serde_json::Value;

/// The default noise filters: chart-version labels and checksum annotations, on objects
/// and on the pod templates inside them. `--no-default-ignores` turns them off.
pub const DEFAULT_IGNORES: &[&str] = &[
    "**.metadata.labels.helm.sh/chart",
    "**.metadata.labels.chart",
    "**.metadata.annotations.checksum/*",
];

/// A parsed `--ignore-field` path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath {
    anywhere: bool,
    path: String,
}

impl FieldPath {
    pub fn parse(text: &str) -> Result<FieldPath, String> {
        let t = text.trim();
        let (anywhere, path) = match t.strip_prefix("**.") {
            Some(rest) => (true, rest),
            None => (false, t.strip_prefix('.').unwrap_or(t)),
        };
        if path.is_empty() || path.starts_with('.') || path.ends_with('.') {
            return Err(format!(
                "--ignore-field {text:?}: expected a dot-separated field path such as metadata.labels.helm.sh/chart"
            ));
        }
        Ok(FieldPath {
            anywhere,
            path: path.to_string(),
        })
    }

    /// Removes every field this path names from `v`.
    pub fn remove(&self, v: &mut Value) {
        if self.anywhere {
            remove_anywhere(v, &self.path);
        } else {
            remove_at(v, &self.path);
        }
    }
}

/// The default filters, parsed.
pub fn defaults() -> Vec<FieldPath> {
    DEFAULT_IGNORES
        .iter()
        .map(|p| FieldPath::parse(p).expect("default ignore paths parse"))
        .collect()
}

/// Removes the ignored fields from a copy of `obj`, dropping maps they leave empty.
pub fn strip(obj: &Value, ignores: &[FieldPath]) -> Value {
    let mut v = obj.clone();
    for i in ignores {
        i.remove(&mut v);
    }
    v
}

fn remove_anywhere(v: &mut Value, path: &str) {
    remove_at(v, path);
    match v {
        Value::Object(m) => m.values_mut().for_each(|x| remove_anywhere(x, path)),
        Value::Array(a) => a.iter_mut().for_each(|x| remove_anywhere(x, path)),
        _ => {}
    }
}

/// Does `key` match `pattern` (`*` is any run of characters)?
fn glob(pattern: &str, key: &str) -> bool {
    let Some((head, rest)) = pattern.split_once('*') else {
        return pattern == key;
    };
    let Some(mut k) = key.strip_prefix(head) else {
        return false;
    };
    let parts: Vec<&str> = rest.split('*').collect();
    for (i, p) in parts.iter().enumerate() {
        if i == parts.len() - 1 {
            return k.len() >= p.len() && k.ends_with(p);
        }
        match k.find(p) {
            Some(at) => k = &k[at + p.len()..],
            None => return false,
        }
    }
    true
}

fn remove_at(v: &mut Value, path: &str) {
    match v {
        Value::Array(a) => a.iter_mut().for_each(|x| remove_at(x, path)),
        Value::Object(m) => {
            // Whole rest of the path as one key (glob): remove.
            let whole: Vec<String> = m.keys().filter(|k| glob(path, k)).cloned().collect();
            for k in &whole {
                m.shift_remove(k);
            }
            // A key that is a dot-separated prefix of the path: descend.
            let mut cuts: Vec<(String, String)> = Vec::new();
            for (i, c) in path.char_indices() {
                if c == '.' {
                    let (head, rest) = (&path[..i], &path[i + 1..]);
                    for k in m.keys().filter(|k| glob(head, k)) {
                        cuts.push((k.clone(), rest.to_string()));
                    }
                }
            }
            for (k, rest) in cuts {
                let mut now_empty = false;
                if let Some(child) = m.get_mut(&k) {
                    remove_at(child, &rest);
                    now_empty = matches!(child, Value::Object(c) if c.is_empty());
                }
                if now_empty {
                    m.shift_remove(&k);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_keys_with_dots_match_without_quoting() {
        let p = FieldPath::parse("metadata.labels.helm.sh/chart").unwrap();
        let mut o = json!({"metadata": {"labels": {"helm.sh/chart": "x-1.0", "app": "a"}}});
        p.remove(&mut o);
        assert_eq!(o, json!({"metadata": {"labels": {"app": "a"}}}));
    }

    #[test]
    fn checksum_annotations_glob_at_any_depth() {
        let mut o = json!({
            "metadata": {"annotations": {"checksum/config": "1"}},
            "spec": {"template": {"metadata": {"annotations": {"checksum/secret": "2", "keep": "k"}}}}
        });
        for p in defaults() {
            p.remove(&mut o);
        }
        assert_eq!(
            o,
            json!({"spec": {"template": {"metadata": {"annotations": {"keep": "k"}}}}})
        );
    }

    #[test]
    fn list_items_are_crossed() {
        let p = FieldPath::parse("spec.containers.image").unwrap();
        let mut o = json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}});
        p.remove(&mut o);
        assert_eq!(
            o,
            json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}})
        );
    }

    #[test]
    fn bad_paths_are_errors() {
        assert!(FieldPath::parse("").is_err());
        assert!(FieldPath::parse("a.").is_err());
        assert!(glob("checksum/*", "checksum/x"));
        assert!(!glob("checksum/*", "other"));
        assert!(glob("a*b*c", "aXbYc"));
    }
}
