//! String, collection and sampling functions.

use super::parse_structured::compile_regex;
use super::{arg_text, Prepared};
use crate::event::{Map, Value};
use crate::lang::ast::Lit;
use crate::lang::eval::CExpr;

pub fn lowercase(a: &[Value], _: &Prepared) -> Result<Value, String> {
    Ok(Value::String(arg_text(a, 0)?.to_lowercase().into()))
}

pub fn uppercase(a: &[Value], _: &Prepared) -> Result<Value, String> {
    Ok(Value::String(arg_text(a, 0)?.to_uppercase().into()))
}

pub fn trim(a: &[Value], _: &Prepared) -> Result<Value, String> {
    Ok(Value::String(arg_text(a, 0)?.trim().to_owned().into()))
}

pub fn contains(a: &[Value], _: &Prepared) -> Result<Value, String> {
    Ok(Value::Bool(arg_text(a, 0)?.contains(&*arg_text(a, 1)?)))
}

pub fn starts_with(a: &[Value], _: &Prepared) -> Result<Value, String> {
    Ok(Value::Bool(arg_text(a, 0)?.starts_with(&*arg_text(a, 1)?)))
}

pub fn ends_with(a: &[Value], _: &Prepared) -> Result<Value, String> {
    Ok(Value::Bool(arg_text(a, 0)?.ends_with(&*arg_text(a, 1)?)))
}

/// A regex literal in argument 1 is compiled once; a string stays literal text.
pub fn prepare_optional_regex(args: &super::ConstArgs) -> Result<Prepared, String> {
    match super::literal(args, 1) {
        Some(Lit::Regex(p)) => compile_regex(p).map(Prepared::Regex),
        _ => Ok(Prepared::None),
    }
}

pub fn replace(a: &[Value], p: &Prepared) -> Result<Value, String> {
    let text = arg_text(a, 0)?;
    let with = arg_text(a, 2)?;
    Ok(Value::String(match p {
        Prepared::Regex(re) => re.replace_all(&text, &*with).into_owned().into(),
        _ => text.replace(&*arg_text(a, 1)?, &with).into(),
    }))
}

pub fn split(a: &[Value], p: &Prepared) -> Result<Value, String> {
    let text = arg_text(a, 0)?;
    let parts: Vec<Value> = match p {
        Prepared::Regex(re) => re.split(&text).map(Value::from).collect(),
        _ => {
            let sep = arg_text(a, 1)?;
            if sep.is_empty() {
                return Err("the separator is empty".into());
            }
            text.split(&*sep).map(Value::from).collect()
        }
    };
    Ok(Value::Array(parts))
}

pub fn join(a: &[Value], _: &Prepared) -> Result<Value, String> {
    let Value::Array(items) = &a[0] else {
        return Err("expected an array".into());
    };
    let sep = match a.get(1) {
        Some(Value::Null) | None => String::new(),
        Some(_) => arg_text(a, 1)?.into_owned(),
    };
    Ok(Value::String(
        items
            .iter()
            .map(super::convert::stringify)
            .collect::<Vec<_>>()
            .join(&sep)
            .into(),
    ))
}

pub fn len(a: &[Value], _: &Prepared) -> Result<Value, String> {
    let n = match &a[0] {
        Value::String(s) => s.len(),
        Value::Bytes(b) => b.len(),
        Value::Array(v) => v.len(),
        Value::Map(m) => m.len(),
        other => {
            return Err(format!(
                "len of {} is undefined",
                super::Ty::of(other).describe()
            ))
        }
    };
    Ok(Value::Int(n as i64))
}

pub fn merge(a: &[Value], _: &Prepared) -> Result<Value, String> {
    match (&a[0], &a[1]) {
        (Value::Map(to), Value::Map(from)) => {
            let mut out: Map = to.clone();
            out.extend(from.iter().map(|(k, v)| (k.clone(), v.clone())));
            Ok(Value::Map(out))
        }
        _ => Err("merge expects two maps".into()),
    }
}

/// A stable hash of a value's text (the same across runs and machines).
pub fn stable_hash(v: &Value) -> i64 {
    let h = match v {
        Value::String(s) => xxhash_rust::xxh3::xxh3_64(s.as_bytes()),
        Value::Bytes(b) => xxhash_rust::xxh3::xxh3_64(b),
        other => xxhash_rust::xxh3::xxh3_64(super::convert::stringify(other).as_bytes()),
    };
    (h >> 1) as i64
}

pub fn hash(a: &[Value], _: &Prepared) -> Result<Value, String> {
    Ok(Value::Int(stable_hash(&a[0])))
}

pub fn sample(a: &[Value], _: &Prepared) -> Result<Value, String> {
    let Value::Int(rate) = a[0] else {
        return Err("the rate must be an integer".into());
    };
    if rate < 1 {
        return Err(format!("the rate must be at least 1, got {rate}"));
    }
    Ok(Value::Bool(stable_hash(&a[1]) % rate == 0))
}

/// A constant rate below 1 is refused at load; a computed one may fail.
pub fn check_sample(args: &[CExpr]) -> Result<bool, (usize, String)> {
    let mut arg = args.first();
    // `-3` is a negation of 3 (located: negating may fail in general).
    while let Some(CExpr::Located(inner, _)) = arg {
        arg = Some(&**inner);
    }
    let rate = match arg {
        Some(CExpr::Const(Value::Int(rate))) => *rate,
        Some(CExpr::Neg(inner)) => match &**inner {
            CExpr::Const(Value::Int(rate)) => rate.wrapping_neg(),
            _ => return Ok(true),
        },
        // Another constant is refused by its type.
        Some(CExpr::Const(_)) | None => return Ok(false),
        Some(_) => return Ok(true),
    };
    if rate < 1 {
        return Err((0, format!("the rate must be at least 1, got {rate}")));
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lang::functions::parse_structured::tests::e;

    fn v(s: &str) -> Value {
        Value::from(s)
    }

    /// The messages of loading a pipeline with `step` (none: it loaded).
    fn load_errors(step: &str) -> Vec<(usize, String)> {
        let src = format!("source app = files {{ include = [\"/none/*.log\"] }}\nsink out = console {{}}\n{step}\nroute {{ else => out }}\n");
        match crate::lang::load(&src) {
            Ok(_) => Vec::new(),
            Err(d) => d.into_iter().map(|d| (d.span.start, d.message)).collect(),
        }
    }

    #[test]
    fn a_constant_sample_rate_below_one_is_refused_at_load_where_it_is_written() {
        for (step, rate) in [
            ("step s on app { drop where not sample(0, .user) }", "0"),
            ("step s on app { drop where not sample(-3, .user) }", "-3"),
            (
                "let rate = 0\nstep s on app { drop where not sample(rate, .user) }",
                "rate",
            ),
        ] {
            let errors = load_errors(step);
            let at = "source app = files { include = [\"/none/*.log\"] }\nsink out = console {}\n"
                .len()
                + step.find(&format!("sample({rate}")).unwrap_or(0)
                + "sample(".len();
            assert_eq!(errors.len(), 1, "{step}: {errors:?}");
            assert!(
                errors[0]
                    .1
                    .starts_with("`sample`: the rate must be at least 1, got "),
                "{errors:?}"
            );
            assert_eq!(errors[0].0, at, "located at the rate: {step}");
        }
        assert_eq!(
            load_errors("step s on app { drop where not sample(1, .user) }"),
            []
        );
    }

    #[test]
    fn a_sample_rate_computed_per_event_makes_the_call_fallible() {
        let errors = load_errors("step s on app { drop where not (sample(.n, .user) ?? true) }");
        assert!(errors.is_empty(), "a fallback handles it: {errors:?}");
        let errors = load_errors("step s on app { drop where not sample(.n, .user) }");
        assert!(
            errors
                .iter()
                .any(|(_, m)| m == "unhandled error: `sample` can fail"),
            "{errors:?}"
        );
        let handled = load_errors("step s on app { drop where not sample!(.n, .user) }");
        assert_eq!(handled, []);
        let constant = load_errors("step s on app { drop where not sample!(4, .user) }");
        assert!(
            constant
                .iter()
                .any(|(_, m)| m.contains("cannot fail; remove the `!`")),
            "{constant:?}"
        );
    }

    #[test]
    fn string_functions() {
        let n = &Prepared::None;
        assert_eq!(lowercase(&[v("AbC")], n), Ok(v("abc")));
        assert_eq!(uppercase(&[v("AbC")], n), Ok(v("ABC")));
        assert_eq!(trim(&[v("  x ")], n), Ok(v("x")));
        assert_eq!(contains(&[v("hello"), v("ell")], n), Ok(Value::Bool(true)));
        assert_eq!(
            starts_with(&[v("hello"), v("he")], n),
            Ok(Value::Bool(true))
        );
        assert_eq!(ends_with(&[v("hello"), v("x")], n), Ok(Value::Bool(false)));
        assert!(lowercase(&[Value::Int(1)], n).is_err());
    }

    #[test]
    fn replace_and_split_with_strings_and_regexes() {
        let n = &Prepared::None;
        assert_eq!(replace(&[v("a-b-c"), v("-"), v("+")], n), Ok(v("a+b+c")));
        let re = prepare_optional_regex(&[&e(Lit::Null), &e(Lit::Regex(r"\d+".into()))]).unwrap();
        assert_eq!(
            replace(&[v("a1b22"), Value::Null, v("#")], &re),
            Ok(v("a#b#"))
        );
        assert_eq!(
            split(&[v("a,b"), v(",")], n),
            Ok(Value::Array(vec![v("a"), v("b")]))
        );
        assert!(split(&[v("a"), v("")], n).is_err());
        let ws = prepare_optional_regex(&[&e(Lit::Null), &e(Lit::Regex(r"\s+".into()))]).unwrap();
        assert_eq!(
            split(&[v("a  b"), Value::Null], &ws),
            Ok(Value::Array(vec![v("a"), v("b")]))
        );
    }

    #[test]
    fn join_len_merge() {
        let n = &Prepared::None;
        assert_eq!(
            join(&[Value::Array(vec![v("a"), Value::Int(1)]), v(",")], n),
            Ok(v("a,1"))
        );
        assert!(join(&[v("x")], n).is_err());
        assert_eq!(len(&[v("abc")], n), Ok(Value::Int(3)));
        assert!(len(&[Value::Int(3)], n).is_err());
        let a = Value::Map([("x".into(), Value::Int(1))].into());
        let b = Value::Map([("x".into(), Value::Int(2)), ("y".into(), Value::Int(3))].into());
        let Ok(Value::Map(m)) = merge(&[a, b], n) else {
            panic!()
        };
        assert_eq!(m["x"], Value::Int(2));
        assert!(merge(&[Value::Int(1), Value::Int(2)], n).is_err());
    }

    #[test]
    fn hash_is_stable_and_sample_keeps_about_one_in_rate() {
        assert_eq!(stable_hash(&v("node-1")), stable_hash(&v("node-1")));
        let kept = (0..10_000)
            .filter(|i| {
                sample(
                    &[Value::Int(10), Value::from(format!("k{i}"))],
                    &Prepared::None,
                ) == Ok(Value::Bool(true))
            })
            .count();
        assert!((800..1200).contains(&kept), "kept {kept}");
        assert!(sample(&[Value::Int(0), v("k")], &Prepared::None).is_err());
    }
}
