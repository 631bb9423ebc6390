//! Redaction of secrets and personal data: built-in detectors (email, IPv4,
//! bearer tokens, JWTs, credit card numbers with a Luhn check) and custom
//! regexes, applied to a string or to every string inside maps and arrays.

use super::parse_structured::compile_regex;
use super::{text_of, Prepared};
use crate::event::{Map, Value};
use crate::lang::ast::{ExprKind, Lit};
use regex::Regex;

const MASK: &str = "[REDACTED]";

#[derive(Debug)]
pub struct Rule {
    regex: Regex,
    luhn: bool,
}

const BUILTIN: &[(&str, &str)] = &[
    ("email", r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"),
    (
        "ipv4",
        r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b",
    ),
    ("bearer_token", r"(?i)\bbearer\s+[A-Za-z0-9\-._~+/]+=*"),
    (
        "jwt",
        r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+",
    ),
    ("credit_card", r"\b\d(?:[ -]?\d){12,18}\b"),
];

/// Builds the rules from a literal array of built-in names (bare or quoted)
/// and regex literals, e.g. `[email, bearer_token, /secret=\S+/]`.
pub fn prepare(args: &super::ConstArgs) -> Result<Prepared, String> {
    let Some(ExprKind::Array(items)) = args.get(1).map(|e| &e.kind) else {
        return Err("the rules must be a literal list like [email, ipv4, /custom/]".into());
    };
    let mut rules = Vec::new();
    for item in items {
        match &item.kind {
            ExprKind::Name(name) | ExprKind::Lit(Lit::Str(name)) => {
                let (_, pattern) = BUILTIN.iter().find(|(n, _)| n == name).ok_or_else(|| {
                    let known: Vec<&str> = BUILTIN.iter().map(|(n, _)| *n).collect();
                    format!(
                        "unknown redaction `{name}` (known: {}, or a regex)",
                        known.join(", ")
                    )
                })?;
                rules.push(Rule {
                    regex: compile_regex(pattern)?,
                    luhn: *name == "credit_card",
                });
            }
            ExprKind::Lit(Lit::Regex(p)) => rules.push(Rule {
                regex: compile_regex(p)?,
                luhn: false,
            }),
            _ => return Err("each rule is a built-in name or a regex literal".into()),
        }
    }
    Ok(Prepared::Redact(rules))
}

fn luhn_valid(digits: &str) -> bool {
    let ds: Vec<u32> = digits.chars().filter_map(|c| c.to_digit(10)).collect();
    let sum: u32 = ds
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            if i % 2 == 1 {
                if d * 2 > 9 {
                    d * 2 - 9
                } else {
                    d * 2
                }
            } else {
                *d
            }
        })
        .sum();
    ds.len() >= 13 && sum % 10 == 0
}

fn redact_text(text: &str, rules: &[Rule]) -> String {
    let mut text = text.to_owned();
    for rule in rules {
        text = rule
            .regex
            .replace_all(&text, |c: &regex::Captures| {
                let m = &c[0];
                if rule.luhn && !luhn_valid(m) {
                    m.to_owned()
                } else {
                    MASK.to_owned()
                }
            })
            .into_owned();
    }
    text
}

/// Strings are redacted, maps and arrays walked (keys are kept), other
/// values pass unchanged.
fn redact_value(v: &Value, rules: &[Rule]) -> Value {
    match v {
        Value::Map(m) => Value::Map(Map::from_entries(
            m.iter()
                .map(|(k, v)| (k.clone(), redact_value(v, rules)))
                .collect(),
        )),
        Value::Array(a) => Value::Array(a.iter().map(|v| redact_value(v, rules)).collect()),
        other => match text_of(other) {
            Some(t) => Value::String(redact_text(&t, rules).into()),
            None => other.clone(),
        },
    }
}

pub fn redact(a: &[Value], p: &Prepared) -> Result<Value, String> {
    let Prepared::Redact(rules) = p else {
        return Err("redaction rules not prepared".into());
    };
    Ok(redact_value(&a[0], rules))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lang::ast::Expr;

    fn expr(kind: ExprKind) -> Expr {
        Expr {
            kind,
            span: Default::default(),
        }
    }

    fn rules(items: Vec<ExprKind>) -> Result<Prepared, String> {
        let list = expr(ExprKind::Array(items.into_iter().map(expr).collect()));
        prepare(&[&expr(ExprKind::Lit(Lit::Null)), &list])
    }

    #[test]
    fn builtin_detectors_mask_secrets_and_keep_the_rest() {
        let names = ["email", "ipv4", "bearer_token", "jwt", "credit_card"];
        let p = rules(names.iter().map(|n| ExprKind::Name((*n).into())).collect()).unwrap();
        let line = "user bob@example.com from 192.168.1.7 Authorization: Bearer abc.def-ghi token eyJhbGciOi.eyJzdWIiOjF9.sig card 4111 1111 1111 1111 order 1234567890123";
        let Ok(Value::String(out)) = redact(&[Value::from(line)], &p) else {
            panic!()
        };
        assert_eq!(
            out,
            "user [REDACTED] from [REDACTED] Authorization: [REDACTED] token [REDACTED] card [REDACTED] order 1234567890123"
        );
    }

    #[test]
    fn maps_and_arrays_are_redacted_at_every_depth() {
        let p = rules(vec![ExprKind::Name("email".into())]).unwrap();
        let http = Map::from_entries(vec![
            ("path".into(), Value::from("/u?mail=a@b.org")),
            ("status".into(), Value::Int(200)),
            (
                "cc".into(),
                Value::Array(vec![Value::from("x c@d.com"), Value::Null]),
            ),
        ]);
        let Ok(Value::Map(out)) = redact(&[Value::Map(http)], &p) else {
            panic!()
        };
        assert_eq!(out.get("path"), Some(&Value::from("/u?mail=[REDACTED]")));
        assert_eq!(out.get("status"), Some(&Value::Int(200)));
        assert_eq!(
            out.get("cc"),
            Some(&Value::Array(vec![
                Value::from("x [REDACTED]"),
                Value::Null
            ]))
        );
    }

    #[test]
    fn custom_regex_and_bad_rules() {
        let p = rules(vec![ExprKind::Lit(Lit::Regex(r"password=\S+".into()))]).unwrap();
        assert_eq!(
            redact(&[Value::from("a password=x1 b")], &p),
            Ok(Value::from("a [REDACTED] b"))
        );
        assert!(rules(vec![ExprKind::Name("passport".into())]).is_err());
        assert!(prepare(&[&expr(ExprKind::Lit(Lit::Null))]).is_err());
    }
}
