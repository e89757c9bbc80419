//! parse -> emit -> parse keeps every value: strings that need quoting, multi-line strings
//! (block scalars with every chomping), empty strings, YAML 1.1 specials, unicode,
//! trailing spaces and newlines, nested mappings and sequences.

use capstan_yaml::{emit_documents, parse_documents, to_json, Mapping, Node, Scalar, Tag};
use proptest::prelude::*;

/// Scalars go-yaml and YAML 1.1 readers treat specially, and texts that need quoting.
const SPECIAL: &[&str] = &[
    "",
    " ",
    "  ",
    "yes",
    "no",
    "on",
    "off",
    "y",
    "n",
    "Yes",
    "NO",
    "true",
    "False",
    "null",
    "Null",
    "~",
    "0x1",
    "0o17",
    "012",
    "0b101",
    "1e3",
    "1_000",
    ".inf",
    "-.Inf",
    ".nan",
    "1:20",
    "2001-12-14",
    "2001-12-14t21:59:43.10-05:00",
    "-",
    "--",
    "---",
    "...",
    "- x",
    "? x",
    ": x",
    "a: b",
    "a:b",
    "a #b",
    "#x",
    "x#",
    "&a",
    "*a",
    "!x",
    "!!str",
    "|",
    ">",
    "'",
    "\"",
    "'x'",
    "\"x\"",
    "%x",
    "@x",
    "`x",
    "[x]",
    "{x}",
    "a, b",
    "\\",
    "\t",
    "x\t",
    "\n",
    "\n\n",
    "x\n",
    "x\n\n",
    "\nx",
    " x",
    "x ",
    "x \n",
    " \nx",
    "x\n ",
    "a\r\nb",
    "é",
    "日本語",
    "emoji 🎉",
    "\u{85}",
    "\u{2028}",
    "\u{feff}x",
    "\u{7f}",
    "\u{0}",
    "<<",
    "=",
    "0.",
    ".5",
    "+1",
    "-0",
    "0",
    "1.0",
    "x: |\n  y",
    "  leading",
];

fn text() -> impl Strategy<Value = String> {
    let chars = prop::sample::select(vec![
        'a', 'b', 'z', 'A', '0', '9', ' ', ' ', ' ', '\n', '\n', '\t', ':', '#', '-', '?', ',',
        '[', ']', '{', '}', '\'', '"', '\\', '|', '>', '!', '&', '*', '%', '@', '`', '.', '~', 'é',
        '日', '🎉', '\r', '\u{a0}', '\u{85}', '\u{2028}',
    ]);
    prop_oneof![
        3 => prop::sample::select(SPECIAL).prop_map(str::to_string),
        4 => prop::collection::vec(chars, 0..24).prop_map(|v| v.into_iter().collect()),
        // Long lines with spaces: the emitter folds plain and quoted scalars at 80 columns.
        1 => prop::collection::vec(prop::sample::select(vec!["word", " ", "  ", "x\n", "long-token-without-spaces"]), 10..60)
            .prop_map(|v| v.concat()),
    ]
}

fn scalar() -> impl Strategy<Value = Node> {
    prop_oneof![
        6 => text().prop_map(Node::string),
        1 => prop::sample::select(vec!["1", "-7", "0x1f", "1.5", "1e3", "true", "false", "null", "~"])
            .prop_map(Node::plain),
    ]
}

fn node() -> impl Strategy<Value = Node> {
    scalar().prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Node::Sequence),
            prop::collection::vec((text(), inner), 0..6).prop_map(|entries| {
                let mut m = Mapping::new();
                for (k, v) in entries {
                    if !m.contains_key(&k) {
                        m.entries.push((k, v));
                    }
                }
                Node::Mapping(m)
            }),
        ]
    })
}

/// The data of a node: tags decide the JSON type; styles do not matter.
fn data(n: &Node) -> serde_json::Value {
    to_json(n)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: std::env::var("YAML_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    // Documents are collections, as resources are: saphyr refuses a root block scalar of
    // only line breaks followed by `---` ("wrongly indented line").
    fn parse_emit_parse_is_identity(docs in prop::collection::vec(node().prop_filter("a collection", |n| n.as_scalar().is_none()), 1..3)) {
        let text1 = emit_documents(&docs);
        let parsed1 = parse_documents(&text1, "gen").map_err(|e| {
            TestCaseError::fail(format!("emitted text does not parse: {e}\n{text1}"))
        })?;
        prop_assert_eq!(parsed1.len(), docs.len(), "documents in\n{}", text1);
        for (a, b) in docs.iter().zip(&parsed1) {
            prop_assert_eq!(data(a), data(b), "emitted:\n{}", text1);
        }
        // Emitting what was parsed gives the same nodes again (styles and tags too).
        let text2 = emit_documents(&parsed1);
        let parsed2 = parse_documents(&text2, "gen").map_err(|e| {
            TestCaseError::fail(format!("re-emitted text does not parse: {e}\n{text2}"))
        })?;
        prop_assert_eq!(&parsed1, &parsed2, "first:\n{}\nsecond:\n{}", text1, text2);
    }

    /// A single string at every nesting position, compared exactly.
    #[test]
    fn strings_survive(s in text(), k in text()) {
        let mut m = Mapping::new();
        m.insert(k.clone(), Node::Sequence(vec![Node::string(s.clone())]));
        m.insert(format!("{k}-2"), Node::string(s.clone()));
        let doc = Node::Mapping(m);
        let out = emit_documents(std::slice::from_ref(&doc));
        let back = parse_documents(&out, "gen").map_err(|e| {
            TestCaseError::fail(format!("does not parse: {e}\n{out}"))
        })?;
        let n = &back[0];
        let got_seq = n.get(&k).and_then(|v| v.as_sequence()).map(|v| v[0].clone());
        prop_assert_eq!(
            got_seq.and_then(|v| v.as_scalar().map(|s| (s.value.clone(), s.tag.clone()))),
            Some((s.clone(), Tag::Str)),
            "emitted:\n{}", out
        );
        let got = n.get(&format!("{k}-2")).and_then(|v| v.as_scalar()).cloned();
        prop_assert_eq!(got.map(|s: Scalar| (s.value, s.tag)), Some((s, Tag::Str)), "emitted:\n{}", out);
    }
}
