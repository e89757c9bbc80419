//! The node tree.

/// How a scalar was (or should be) written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ScalarStyle {
    /// No preference: the emitter picks plain, quoted or literal as go-yaml's encoder does.
    #[default]
    Any,
    Plain,
    SingleQuoted,
    DoubleQuoted,
    /// `|`
    Literal,
    /// `>`
    Folded,
}

/// The resolved tag of a scalar (go-yaml v3 resolution for plain scalars; quoted and
/// block scalars are strings unless explicitly tagged).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum Tag {
    Null,
    Bool,
    Int,
    Float,
    #[default]
    Str,
    /// Any other tag, as written (`!!binary`, `!Ref`, `tag:example.com,2000:x`).
    Custom(String),
}

impl Tag {
    /// The short form (`!!str`, ...) or the custom tag.
    pub fn as_str(&self) -> &str {
        match self {
            Tag::Null => "!!null",
            Tag::Bool => "!!bool",
            Tag::Int => "!!int",
            Tag::Float => "!!float",
            Tag::Str => "!!str",
            Tag::Custom(s) => s,
        }
    }
    /// Parse a short or long tag.
    pub fn parse(s: &str) -> Tag {
        let short = s
            .strip_prefix("tag:yaml.org,2002:")
            .map(|x| format!("!!{x}"));
        match short.as_deref().unwrap_or(s) {
            "!!null" => Tag::Null,
            "!!bool" => Tag::Bool,
            "!!int" => Tag::Int,
            "!!float" => Tag::Float,
            "!!str" => Tag::Str,
            other => Tag::Custom(other.to_string()),
        }
    }
}

/// A scalar: its text, style and tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Scalar {
    pub value: String,
    pub style: ScalarStyle,
    pub tag: Tag,
}

impl Scalar {
    /// A string scalar with no style preference.
    pub fn string(s: impl Into<String>) -> Scalar {
        Scalar {
            value: s.into(),
            style: ScalarStyle::Any,
            tag: Tag::Str,
        }
    }
    /// A plain scalar whose tag is resolved the way go-yaml v3 resolves plain text.
    pub fn plain(s: impl Into<String>) -> Scalar {
        let value = s.into();
        let tag = crate::resolve::resolve_plain(&value);
        Scalar {
            value,
            style: ScalarStyle::Plain,
            tag,
        }
    }
    pub fn null() -> Scalar {
        Scalar {
            value: "null".into(),
            style: ScalarStyle::Any,
            tag: Tag::Null,
        }
    }
    pub fn is_null(&self) -> bool {
        self.tag == Tag::Null
    }
}

/// A mapping with insertion order. Keys are strings (non-string keys are kept as their
/// text).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Mapping {
    pub entries: Vec<(String, Node)>,
}

impl Mapping {
    pub fn new() -> Mapping {
        Mapping {
            entries: Vec::new(),
        }
    }
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        self.entries
            .iter_mut()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }
    pub fn contains_key(&self, key: &str) -> bool {
        self.entries.iter().any(|(k, _)| k == key)
    }
    /// Set `key` to `value`: replaced in place if present, appended otherwise. Returns the
    /// previous value.
    pub fn insert(&mut self, key: impl Into<String>, value: Node) -> Option<Node> {
        let key = key.into();
        if let Some(slot) = self.get_mut(&key) {
            return Some(std::mem::replace(slot, value));
        }
        self.entries.push((key, value));
        None
    }
    /// Remove `key`, keeping the order of the others.
    pub fn remove(&mut self, key: &str) -> Option<Node> {
        let i = self.entries.iter().position(|(k, _)| k == key)?;
        Some(self.entries.remove(i).1)
    }
    /// The value at `key`, inserted with `default()` (appended) if absent.
    pub fn entry_or_insert_with(&mut self, key: &str, default: impl FnOnce() -> Node) -> &mut Node {
        let i = match self.entries.iter().position(|(k, _)| k == key) {
            Some(i) => i,
            None => {
                self.entries.push((key.to_string(), default()));
                self.entries.len() - 1
            }
        };
        &mut self.entries[i].1
    }
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_str())
    }
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Node)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }
    /// Sort the keys bytewise, not recursively.
    pub fn sort_keys(&mut self) {
        self.entries.sort_by(|a, b| a.0.cmp(&b.0));
    }
    /// Sort the keys in go-yaml v2's map key order ([`go_yaml_v2_key_cmp`]), as
    /// `sigs.k8s.io/yaml` (kustomize's output) writes maps; not recursively.
    pub fn sort_keys_go_yaml_v2(&mut self) {
        self.entries.sort_by(|a, b| go_yaml_v2_key_cmp(&a.0, &b.0));
    }
}

/// go-yaml v2's order of string map keys (`keyList.Less`): rune by rune, where a letter
/// sorts after a non-letter and runs of digits compare numerically.
pub fn go_yaml_v2_key_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let less = |a: &str, b: &str| -> bool {
        let ar: Vec<char> = a.chars().collect();
        let br: Vec<char> = b.chars().collect();
        let mut i = 0;
        while i < ar.len() && i < br.len() {
            if ar[i] == br[i] {
                i += 1;
                continue;
            }
            let al = ar[i].is_alphabetic();
            let bl = br[i].is_alphabetic();
            if al && bl {
                return ar[i] < br[i];
            }
            if al || bl {
                return bl;
            }
            let (mut an, mut bn): (i64, i64) = (0, 0);
            if ar[i] == '0' || br[i] == '0' {
                let mut j = i;
                while j > 0 && ar[j - 1].is_ascii_digit() {
                    j -= 1;
                    if ar[j] != '0' {
                        an = 1;
                        bn = 1;
                        break;
                    }
                }
            }
            let mut ai = i;
            while ai < ar.len() && ar[ai].is_ascii_digit() {
                an = an.wrapping_mul(10).wrapping_add(ar[ai] as i64 - '0' as i64);
                ai += 1;
            }
            let mut bi = i;
            while bi < br.len() && br[bi].is_ascii_digit() {
                bn = bn.wrapping_mul(10).wrapping_add(br[bi] as i64 - '0' as i64);
                bi += 1;
            }
            if an != bn {
                return an < bn;
            }
            if ai != bi {
                return ai < bi;
            }
            return ar[i] < br[i];
        }
        ar.len() < br.len()
    };
    if a == b {
        Ordering::Equal
    } else if less(a, b) {
        Ordering::Less
    } else {
        Ordering::Greater
    }
}

/// A YAML node.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Scalar(Scalar),
    Sequence(Vec<Node>),
    Mapping(Mapping),
}

impl Default for Node {
    fn default() -> Self {
        Node::Scalar(Scalar::null())
    }
}

impl Node {
    /// A string scalar (style chosen by the emitter).
    pub fn string(s: impl Into<String>) -> Node {
        Node::Scalar(Scalar::string(s))
    }
    /// A plain scalar with its tag resolved from the text (`"3"` is an int).
    pub fn plain(s: impl Into<String>) -> Node {
        Node::Scalar(Scalar::plain(s))
    }
    pub fn null() -> Node {
        Node::Scalar(Scalar::null())
    }
    pub fn mapping() -> Node {
        Node::Mapping(Mapping::new())
    }
    pub fn is_null(&self) -> bool {
        matches!(self, Node::Scalar(s) if s.is_null())
    }
    pub fn as_scalar(&self) -> Option<&Scalar> {
        match self {
            Node::Scalar(s) => Some(s),
            _ => None,
        }
    }
    /// The text of a scalar of any tag (not of a null).
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Node::Scalar(s) if !s.is_null() => Some(&s.value),
            _ => None,
        }
    }
    pub fn as_mapping(&self) -> Option<&Mapping> {
        match self {
            Node::Mapping(m) => Some(m),
            _ => None,
        }
    }
    pub fn as_mapping_mut(&mut self) -> Option<&mut Mapping> {
        match self {
            Node::Mapping(m) => Some(m),
            _ => None,
        }
    }
    pub fn as_sequence(&self) -> Option<&Vec<Node>> {
        match self {
            Node::Sequence(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_sequence_mut(&mut self) -> Option<&mut Vec<Node>> {
        match self {
            Node::Sequence(s) => Some(s),
            _ => None,
        }
    }
    /// `self[key]` for a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_mapping()?.get(key)
    }
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        self.as_mapping_mut()?.get_mut(key)
    }
    /// Follow a path of mapping keys.
    pub fn get_path(&self, path: &[&str]) -> Option<&Node> {
        let mut n = self;
        for p in path {
            n = n.get(p)?;
        }
        Some(n)
    }
    pub fn get_path_mut(&mut self, path: &[&str]) -> Option<&mut Node> {
        let mut n = self;
        for p in path {
            n = n.get_mut(p)?;
        }
        Some(n)
    }
    /// The string at a path of mapping keys.
    pub fn str_at(&self, path: &[&str]) -> Option<&str> {
        self.get_path(path)?.as_str()
    }
    /// Make sure the mappings along `path` exist (replacing nulls/non-mappings) and return
    /// the last one.
    pub fn ensure_mapping_path(&mut self, path: &[&str]) -> &mut Mapping {
        let mut n = self;
        for p in path {
            if !matches!(n, Node::Mapping(_)) {
                *n = Node::mapping();
            }
            let m = n.as_mapping_mut().unwrap();
            n = m.entry_or_insert_with(p, Node::mapping);
        }
        if !matches!(n, Node::Mapping(_)) {
            *n = Node::mapping();
        }
        n.as_mapping_mut().unwrap()
    }
    /// Sort all mapping keys recursively in go-yaml v2's order.
    pub fn sort_keys_go_yaml_v2_recursive(&mut self) {
        match self {
            Node::Mapping(m) => {
                m.sort_keys_go_yaml_v2();
                for (_, v) in m.entries.iter_mut() {
                    v.sort_keys_go_yaml_v2_recursive();
                }
            }
            Node::Sequence(s) => s
                .iter_mut()
                .for_each(|n| n.sort_keys_go_yaml_v2_recursive()),
            Node::Scalar(_) => {}
        }
    }
    /// Sort all mapping keys recursively.
    pub fn sort_keys_recursive(&mut self) {
        match self {
            Node::Mapping(m) => {
                m.sort_keys();
                for (_, v) in m.entries.iter_mut() {
                    v.sort_keys_recursive();
                }
            }
            Node::Sequence(s) => s.iter_mut().for_each(|n| n.sort_keys_recursive()),
            Node::Scalar(_) => {}
        }
    }
    /// Number of nodes in this tree.
    pub fn size(&self) -> usize {
        match self {
            Node::Scalar(_) => 1,
            Node::Sequence(s) => 1 + s.iter().map(Node::size).sum::<usize>(),
            Node::Mapping(m) => 1 + m.entries.iter().map(|(_, v)| 1 + v.size()).sum::<usize>(),
        }
    }
}

impl From<Scalar> for Node {
    fn from(s: Scalar) -> Self {
        Node::Scalar(s)
    }
}
impl From<Mapping> for Node {
    fn from(m: Mapping) -> Self {
        Node::Mapping(m)
    }
}
impl From<&str> for Node {
    fn from(s: &str) -> Self {
        Node::string(s)
    }
}
impl From<String> for Node {
    fn from(s: String) -> Self {
        Node::string(s)
    }
}

#[cfg(test)]
mod tests {
    use super::go_yaml_v2_key_cmp;

    #[test]
    fn go_yaml_v2_key_order() {
        let mut keys = vec!["ANOTHER", "A_FIRST", "a10", "a9", "b", "B", "a", "a09"];
        keys.sort_by(|a, b| go_yaml_v2_key_cmp(a, b));
        assert_eq!(
            keys,
            vec!["A_FIRST", "ANOTHER", "B", "a", "a9", "a09", "a10", "b"]
        );
    }
}
