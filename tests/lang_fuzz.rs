//! Malformed input never panics anywhere in the language: random text and
//! mutations of real pipelines go through the lexer, parser, checker,
//! compiler, formatter and (when they load) the in-file tests.
//! `PROPTEST_CASES=200000 cargo test --release --test lang_fuzz` runs it longer.

use proptest::prelude::*;
use shipd::lang;

const SEED_PIPELINE: &str = include_str!("../pipelines/default.ship");

const TOKENS: &[&str] = &[
    "source",
    "sink",
    "step",
    "route",
    "test",
    "settings",
    "on",
    "where",
    "drop",
    "if",
    "else",
    "and",
    "or",
    "not",
    "true",
    "null",
    "on_error",
    "dead_letter",
    "input",
    "expect",
    "stream",
    "let",
    ";",
    "=",
    "==",
    "=>",
    "??",
    "!",
    "(",
    ")",
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    ".",
    ".a.b",
    ".\"x y\"",
    "[0]",
    "/a(?<x>b)/",
    "/[/",
    "\"s\"",
    "\"\\q\"",
    "15s",
    "1MiB",
    "3.5",
    "-",
    "+",
    "*",
    "/",
    "%",
    "parse_json",
    "parse_regex",
    "to_int",
    "redact",
    "del",
    "exists",
    "env",
    "file",
    "map_values(",
    "map_keys(",
    "filter(",
    "|",
    "|v|",
    "|k, v|",
    "files",
    "console",
    "openobserve",
    "x",
    "\n",
    " ",
    "#c\n",
    "é",
    "\u{0}",
];

fn token_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..80).prop_map(|t| t.join(" "))
}

fn mutated_pipeline() -> impl Strategy<Value = String> {
    (
        any::<u64>(),
        prop::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 1..8),
    )
        .prop_map(|(_, edits)| {
            let mut bytes = SEED_PIPELINE.as_bytes().to_vec();
            for (pos, byte, op) in edits {
                if bytes.is_empty() {
                    break;
                }
                let at = pos % bytes.len();
                match op {
                    0 => {
                        bytes.remove(at);
                    }
                    1 => bytes.insert(at, byte),
                    _ => bytes[at] = byte,
                }
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
}

fn exercise(src: &str) {
    match lang::testing::run_source(src, &lang::Environment::empty()) {
        Ok(_) => {}
        Err(d) => {
            let text = lang::render("fuzz.ship", src, &d);
            assert!(!text.is_empty());
        }
    }
    if let Ok(formatted) = lang::fmt::format(src) {
        assert_eq!(
            lang::fmt::format(&formatted).ok().as_deref(),
            Some(formatted.as_str()),
            "fmt is idempotent"
        );
    }
    let _ = lang::parse::parse_expr(src);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn random_token_soup_never_panics(src in token_soup()) {
        exercise(&src);
    }

    #[test]
    fn mutated_pipelines_never_panic(src in mutated_pipeline()) {
        exercise(&src);
    }

    #[test]
    fn arbitrary_text_never_panics(src in ".{0,300}") {
        exercise(&src);
    }
}
