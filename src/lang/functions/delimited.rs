//! Delimited text: `parse_csv` (RFC 4180 quoting, optional header names)
//! and `parse_key_value` (`k=v k2="quoted v"` with configurable separators).

use super::{arg_text, Prepared};
use crate::event::{Map, Str, Value};

/// The fields of one CSV record; quotes may hold the delimiter and `""`.
fn csv_fields(line: &str, delimiter: char) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => {
                    quoted = false;
                    if chars.peek().is_some_and(|&d| d != delimiter) {
                        return Err("csv: text after a closing quote".into());
                    }
                }
                c => field.push(c),
            }
        } else if c == '"' && at_start {
            quoted = true;
            at_start = false;
        } else if c == delimiter {
            fields.push(std::mem::take(&mut field));
            at_start = true;
        } else {
            field.push(c);
            at_start = false;
        }
    }
    if quoted {
        return Err("csv: unterminated quote".into());
    }
    fields.push(field);
    Ok(fields)
}

fn single_char(a: &[Value], i: usize, default: char, what: &str) -> Result<char, String> {
    match a.get(i) {
        None | Some(Value::Null) => Ok(default),
        Some(_) => {
            let t = arg_text(a, i)?;
            let mut cs = t.chars();
            match (cs.next(), cs.next()) {
                (Some(c), None) => Ok(c),
                _ => Err(format!("the {what} must be one character, got `{t}`")),
            }
        }
    }
}

/// An array of strings, or a map when header names are given (their count
/// must match the record's).
pub fn parse_csv(a: &[Value], _: &Prepared) -> Result<Value, String> {
    let text = arg_text(a, 0)?;
    let delimiter = single_char(a, 2, ',', "delimiter")?;
    let fields = csv_fields(text.trim_end_matches(['\n', '\r']), delimiter)?;
    match a.get(1) {
        None | Some(Value::Null) => Ok(Value::Array(
            fields
                .into_iter()
                .map(|f| Value::String(f.into()))
                .collect(),
        )),
        Some(Value::Array(names)) => {
            if names.len() != fields.len() {
                return Err(format!(
                    "csv: {} fields for {} header names",
                    fields.len(),
                    names.len()
                ));
            }
            let mut entries = Vec::with_capacity(names.len());
            for (name, field) in names.iter().zip(fields) {
                let name = super::text_of(name).ok_or("csv: header names must be strings")?;
                entries.push((Str::from(name.as_ref()), Value::String(field.into())));
            }
            Ok(Value::Map(Map::from_entries(entries)))
        }
        Some(_) => Err("csv: the header must be an array of names".into()),
    }
}

/// `key<kv>value` pairs split by `field` separators (one or more of it);
/// values may be double-quoted (`\"` inside). A word without `kv` is an error.
pub fn parse_key_value(a: &[Value], _: &Prepared) -> Result<Value, String> {
    let text = arg_text(a, 0)?;
    let kv = match a.get(1) {
        None | Some(Value::Null) => "=".into(),
        Some(_) => arg_text(a, 1)?,
    };
    let field = match a.get(2) {
        None | Some(Value::Null) => " ".into(),
        Some(_) => arg_text(a, 2)?,
    };
    if kv.is_empty() || field.is_empty() {
        return Err("key_value: separators must not be empty".into());
    }
    let mut entries = Vec::new();
    let mut rest = text.trim_end_matches(['\n', '\r']);
    loop {
        while let Some(r) = rest.strip_prefix(field.as_ref()) {
            rest = r;
        }
        if rest.is_empty() {
            break;
        }
        let key_end = rest.find(kv.as_ref()).ok_or_else(|| {
            format!(
                "key_value: `{}` has no `{kv}`",
                rest.chars().take(30).collect::<String>()
            )
        })?;
        let key = &rest[..key_end];
        if key.is_empty() || key.contains(field.as_ref()) {
            return Err(format!(
                "key_value: expected a key before `{kv}` in `{key}`"
            ));
        }
        rest = &rest[key_end + kv.len()..];
        let value = if let Some(quoted) = rest.strip_prefix('"') {
            let mut value = String::new();
            let mut end = None;
            let mut chars = quoted.char_indices();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => value.push(c),
                }
            }
            let end = end.ok_or_else(|| format!("key_value: unterminated quote after `{key}`"))?;
            rest = &quoted[end..];
            value
        } else {
            let end = rest.find(field.as_ref()).unwrap_or(rest.len());
            let value = rest[..end].to_owned();
            rest = &rest[end..];
            value
        };
        entries.push((Str::from(key), Value::String(value.into())));
    }
    Ok(Value::Map(Map::from_entries(entries)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(f: super::super::CallFn, args: Vec<Value>) -> Result<Value, String> {
        f(&args, &Prepared::None)
    }

    #[test]
    fn csv_with_quotes_and_header_names() {
        let line = Value::from(r#"10.0.0.1,"GET /a,b",200,"say ""hi""""#);
        assert_eq!(
            call(parse_csv, vec![line.clone()]),
            Ok(Value::Array(vec![
                Value::from("10.0.0.1"),
                Value::from("GET /a,b"),
                Value::from("200"),
                Value::from(r#"say "hi""#),
            ]))
        );
        let header = Value::Array(["ip", "req", "status", "note"].map(Value::from).to_vec());
        let Ok(Value::Map(m)) = call(parse_csv, vec![line.clone(), header]) else {
            panic!()
        };
        assert_eq!(m.get("req"), Some(&Value::from("GET /a,b")));
        let short = Value::Array(vec![Value::from("ip")]);
        assert!(call(parse_csv, vec![line, short])
            .unwrap_err()
            .contains("4 fields"));
        assert_eq!(
            call(
                parse_csv,
                vec![Value::from("a;b"), Value::Null, Value::from(";")]
            ),
            Ok(Value::Array(vec![Value::from("a"), Value::from("b")]))
        );
        assert!(call(parse_csv, vec![Value::from(r#""open,x"#)]).is_err());
    }

    #[test]
    fn key_value_pairs_with_quotes_and_custom_separators() {
        let Ok(Value::Map(m)) = call(
            parse_key_value,
            vec![Value::from(r#"user=bob  msg="hello \"you\" there" n=3"#)],
        ) else {
            panic!()
        };
        assert_eq!(m.get("user"), Some(&Value::from("bob")));
        assert_eq!(m.get("msg"), Some(&Value::from(r#"hello "you" there"#)));
        assert_eq!(m.get("n"), Some(&Value::from("3")));
        let Ok(Value::Map(m)) = call(
            parse_key_value,
            vec![
                Value::from("a: 1, b: two"),
                Value::from(": "),
                Value::from(", "),
            ],
        ) else {
            panic!()
        };
        assert_eq!(m.get("b"), Some(&Value::from("two")));
        assert!(call(parse_key_value, vec![Value::from("a=1 stray")]).is_err());
        assert!(call(parse_key_value, vec![Value::from(r#"a="open"#)]).is_err());
    }
}
