//! A YAML document model faithful enough for kustomize's kyaml (go-yaml v3).
//!
//! * [`Node`]: an ordered tree (mappings keep insertion order; string keys), scalars keep
//!   their [`ScalarStyle`] and resolved [`Tag`]. Comments are dropped, aliases are expanded
//!   (with a budget against alias bombs, and a depth limit) and `<<` merge keys are applied
//!   at parse time.
//! * [`parse_documents`]: a multi-document stream to nodes; errors ([`YamlError`]) carry
//!   the source name, line/column and a [`YamlErrorKind`]. Duplicate mapping keys are an
//!   error as in go-yaml v3 ([`parse_documents_last_key_wins`] for go-yaml v2 readers).
//! * [`emit_documents`]: writes nodes the way go-yaml v3's encoder does with kyaml's
//!   settings (indent 2, sequences in mappings not indented, width 80 folding, go-yaml's
//!   quoting rules, literal block style for multi-line strings), documents separated by
//!   `---\n`.
//! * [`to_json`] / [`from_json`]: conversions to and from `serde_json::Value` (ordered).
//!
//! The API is stable: other crates (strategic merge patch, apply) build on it.

mod emit;
mod json;
mod node;
mod parse;
mod resolve;

pub use emit::{emit_document, emit_documents, emit_documents_with, CommentSource, EmitOptions};
pub use json::{from_json, normalize_json_like, to_json};
pub use node::{go_yaml_v2_key_cmp, Mapping, Node, Scalar, ScalarStyle, Tag};
pub use parse::{
    parse_documents, parse_documents_last_key_wins, parse_documents_with, BlockScalarAtEnd,
    DuplicateKeys, ParseLimits, YamlError, YamlErrorKind,
};
pub use resolve::{go_yaml_timestamp, resolve_plain, resolve_plain_v1_1};
