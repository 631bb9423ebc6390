//! `shipctl fmt` keeps the meaning: on generated programs, mutated example
//! pipelines and random token soup, the formatted text of a valid file
//! parses to the same syntax tree (spans aside), a broken file stays
//! broken, and formatting it again changes nothing. `PROPTEST_CASES=20000 cargo test --release --test
//! lang_fmt` runs it longer.

use proptest::prelude::*;
use shipd::lang::{fmt, parse};

/// The syntax tree and error messages of `src`, without positions.
fn meaning(src: &str) -> String {
    let (file, errors) = parse::parse(src);
    let spans = regex::Regex::new(r"Span \{ start: \d+, end: \d+ \}").unwrap();
    let tree = spans.replace_all(&format!("{file:?}"), "").into_owned();
    let messages: Vec<&str> = errors.iter().map(|d| d.message.as_str()).collect();
    format!("{tree}\n{messages:?}")
}

fn keeps_meaning_and_is_idempotent(src: &str) -> Result<(), TestCaseError> {
    let Ok(once) = fmt::format(src) else {
        return Ok(());
    };
    if parse::parse(src).1.is_empty() {
        prop_assert_eq!(
            meaning(src),
            meaning(&once),
            "formatting changed the meaning of:\n{}\n---- into:\n{}",
            src,
            once
        );
    } else {
        // A broken file stays broken (nothing is silently turned into a
        // different valid program); its error messages may differ, since
        // spacing decides how far the parser gets past the first error.
        prop_assert!(
            !parse::parse(&once).1.is_empty(),
            "formatting turned a broken file into a valid one:\n{}\n---- into:\n{}",
            src,
            once
        );
    }
    let twice = fmt::format(&once).expect("formatted text lexes");
    prop_assert_eq!(&twice, &once, "fmt is not idempotent on:\n{}", src);
    Ok(())
}

const EXAMPLES: [&str; 5] = [
    include_str!("../pipelines/default.ship"),
    include_str!("../pipelines/nginx-lb.ship"),
    include_str!("../pipelines/k3s-node.ship"),
    include_str!("../pipelines/pi-node.ship"),
    include_str!("../pipelines/compose-sidecar.ship"),
];

/// An expression built from the language's forms, written with random
/// spacing (none, a space or a newline where a space is allowed).
fn expr() -> impl Strategy<Value = String> {
    let leaf = prop::sample::select(vec![
        ".a",
        ".b.c",
        ".\"odd key\"",
        ".a[0]",
        "\"s\"",
        "1",
        "-2",
        "3.5",
        "15s",
        "null",
        "true",
        "source",
        "/x(?<y>z)/",
    ])
    .prop_map(str::to_owned);
    leaf.prop_recursive(4, 24, 3, |inner| {
        let op = prop::sample::select(vec![
            "+", "-", "*", "/", "%", "==", "!=", "<", ">=", "??", "and", "or",
        ]);
        prop_oneof![
            (inner.clone(), op, inner.clone()).prop_map(|(a, o, b)| format!("{a} {o} {b}")),
            inner.clone().prop_map(|a| format!("({a})")),
            inner.clone().prop_map(|a| format!("not {a}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("[{a}, {b}]")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{{ \"k\": {a}, v: {b} }}")),
            inner.clone().prop_map(|a| format!("to_int({a}) ?? 0")),
            inner.clone().prop_map(|a| format!("parse_json!({a})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("map_values({a},|v|{b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("filter({a}, | k ,v | {b})")),
            (inner.clone(), inner.clone(), inner.clone())
                .prop_map(|(c, a, b)| format!("if {c} {{ {a} }} else {{ {b} }}")),
        ]
    })
}

fn stmt() -> impl Strategy<Value = String> {
    prop_oneof![
        (prop::sample::select(vec![".x", ".y.z", ".\"k\""]), expr())
            .prop_map(|(t, e)| format!("{t} = {e}")),
        expr().prop_map(|e| format!("drop where {e}")),
        (expr(), expr()).prop_map(|(c, e)| format!("if {c} {{ .x = {e} .y = 1 }}")),
        expr().prop_map(|e| format!("del({e})")),
    ]
}

/// A whole program, statements separated by random whitespace.
fn program() -> impl Strategy<Value = String> {
    let sep = prop::sample::select(vec![" ", "\n", "\n\n   ", "; "]);
    (
        prop::collection::vec((stmt(), sep.clone()), 1..6),
        expr(),
        sep,
    )
        .prop_map(|(stmts, cond, sep)| {
            let body: String = stmts
                .into_iter()
                .map(|(s, sep)| format!("{s}{sep}"))
                .collect();
            format!(
                "source app = files {{ include =[\"/x\"],multiline.start=/^\\S/ }}{sep}\
                 step s on app where {cond} on_error tag {{{sep}{body}}}\n\
                 sink o = console {{ enabled = true,{sep}stream = \"x\" }}\n\
                 route {{ {cond} => o stream \"s_\" +(.b) else => o }}\n\
                 test \"t\" {{ env {{ A = \"1\" }} input app lines [\"a\", \"b\"] expect failed \"x\" }}\n"
            )
        })
}

fn mutated_example() -> impl Strategy<Value = String> {
    (
        0..EXAMPLES.len(),
        prop::collection::vec(
            (
                any::<usize>(),
                prop::sample::select(vec![" ", "\n", "", "{", "}", "(", ";"]),
                0u8..2,
            ),
            1..6,
        ),
    )
        .prop_map(|(which, edits)| {
            let mut text = EXAMPLES[which].to_owned();
            for (pos, piece, op) in edits {
                let mut at = pos % (text.len() + 1);
                while !text.is_char_boundary(at) {
                    at -= 1;
                }
                if op == 0 {
                    text.insert_str(at, piece);
                } else if at < text.len() {
                    let mut end = at + 1;
                    while !text.is_char_boundary(end) {
                        end += 1;
                    }
                    text.replace_range(at..end, piece);
                }
            }
            text
        })
}

#[test]
fn every_example_pipeline_keeps_its_meaning() {
    for src in EXAMPLES {
        keeps_meaning_and_is_idempotent(src).unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn generated_programs_keep_their_meaning(src in program()) {
        keeps_meaning_and_is_idempotent(&src)?;
    }

    #[test]
    fn mutated_examples_keep_their_meaning(src in mutated_example()) {
        keeps_meaning_and_is_idempotent(&src)?;
    }

    #[test]
    fn token_soup_keeps_its_meaning(src in prop::collection::vec(prop::sample::select(vec![
        "step", "s", "{", "}", "(", ")", "[", "]", ".a", "=", "+", "-", "!", "f", "\"x\"", "1",
        "if", "else", "drop", "where", ",", ";", ":", "\n", " ", "#c\n", "route", "=>", "test",
        "input", "expect", "lines", "failed", "env", "|", "v", "filter(",
    ]), 0..60).prop_map(|t| t.concat())) {
        keeps_meaning_and_is_idempotent(&src)?;
    }
}
