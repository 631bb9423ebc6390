//! Apache `LogFormat` strings (`%h %l %u %t \"%r\" %>s %b`) turned into an
//! [`AccessFormat`]. Field names follow the built-in `common`/`combined`
//! parsers (client, ident, user, timestamp, request, status, size); request
//! and response headers (`%{User-Agent}i`) become their lowercased names
//! with `_` for `-` (`user_agent`).

use super::access_format::{AccessFormat, Kind, Segment};

fn directive(letter: char, arg: Option<&str>) -> Result<(String, Kind), String> {
    let named = |n: &str, k| Ok((n.to_owned(), k));
    match (letter, arg) {
        ('i' | 'o' | 'e' | 'n' | 'C', Some(h)) => {
            Ok((h.to_ascii_lowercase().replace('-', "_"), Kind::Str))
        }
        ('t', Some(_)) => Err("%{format}t (custom time formats) is not supported; use %t".into()),
        ('T', Some(unit @ ("s" | "ms" | "us"))) => Ok((format!("duration_{unit}"), Kind::Int)),
        ('h', _) => named("client", Kind::Str),
        ('a', _) => named("client_ip", Kind::Str),
        ('A', _) => named("local_ip", Kind::Str),
        ('l', _) => named("ident", Kind::Str),
        ('u', _) => named("user", Kind::Str),
        ('t', None) => named("timestamp", Kind::TimeLocal),
        ('r', _) => named("request", Kind::Request),
        ('s', _) => named("status", Kind::Int),
        ('b', _) => named("size", Kind::BytesOrDash),
        ('B', _) => named("size", Kind::Int),
        ('D', _) => named("duration_us", Kind::Int),
        ('T', _) => named("duration_s", Kind::Int),
        ('I', _) => named("bytes_received", Kind::Int),
        ('O', _) => named("bytes_sent", Kind::Int),
        ('S', _) => named("bytes_transferred", Kind::Int),
        ('p', _) => named("port", Kind::Int),
        ('P', _) => named("pid", Kind::Int),
        ('k', _) => named("keepalive_requests", Kind::Int),
        ('m', _) => named("method", Kind::Str),
        ('H', _) => named("protocol", Kind::Str),
        ('U', _) => named("path", Kind::Str),
        ('q', _) => named("query", Kind::Str),
        ('v', _) => named("server_name", Kind::Str),
        ('V', _) => named("canonical_server_name", Kind::Str),
        ('X', _) => named("connection_status", Kind::Str),
        ('R', _) => named("handler", Kind::Str),
        ('f', _) => named("filename", Kind::Str),
        (other, _) => Err(format!("unknown LogFormat directive `%{other}`")),
    }
}

/// Builds the parser for a `LogFormat` string.
pub fn compile(format: &str) -> Result<AccessFormat, String> {
    let mut segments = Vec::new();
    let mut literal = String::new();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            // `\"` in the Apache config is a quote in the line.
            '\\' => match chars.next() {
                Some('n') => literal.push('\n'),
                Some('t') => literal.push('\t'),
                Some(other) => literal.push(other),
                None => literal.push('\\'),
            },
            '%' => {
                if chars.peek() == Some(&'%') {
                    chars.next();
                    literal.push('%');
                    continue;
                }
                // Modifiers: `<`/`>` (original or final request) and
                // status conditions like `!200,304`.
                while matches!(chars.peek(), Some('<' | '>' | '!' | ',' | '0'..='9')) {
                    chars.next();
                }
                let mut arg = None;
                if chars.peek() == Some(&'{') {
                    chars.next();
                    let text: String = chars.by_ref().take_while(|&c| c != '}').collect();
                    arg = Some(text);
                }
                let letter = chars
                    .next()
                    .ok_or("Apache LogFormat: `%` at the end of the format")?;
                let (name, kind) = directive(letter, arg.as_deref())
                    .map_err(|e| format!("Apache LogFormat: {e}"))?;
                if letter == 't' {
                    literal.push('[');
                }
                segments.push(Segment::Literal(std::mem::take(&mut literal)));
                segments.push(Segment::Field {
                    name: name.into(),
                    kind,
                });
                if letter == 't' {
                    literal.push(']');
                }
            }
            c => literal.push(c),
        }
    }
    segments.push(Segment::Literal(literal));
    AccessFormat::new(segments, "Apache LogFormat")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Value;

    #[test]
    fn combined_with_duration_parses_typed_fields() {
        let f =
            compile(r#"%h %l %u %t \"%r\" %>s %b \"%{Referer}i\" \"%{User-Agent}i\" %D"#).unwrap();
        let m = f
            .parse(r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 - "http://www.example.com/start.html" "Mozilla/4.08" 1520"#)
            .unwrap();
        assert_eq!(m.get("client"), Some(&Value::from("127.0.0.1")));
        assert_eq!(m.get("ident"), Some(&Value::Null));
        assert_eq!(m.get("user"), Some(&Value::from("frank")));
        assert_eq!(
            m.get("timestamp"),
            Some(&Value::Timestamp(971_211_336_000_000_000))
        );
        assert_eq!(m.get("method"), Some(&Value::from("GET")));
        assert_eq!(m.get("status"), Some(&Value::Int(200)));
        assert_eq!(
            m.get("size"),
            Some(&Value::Int(0)),
            "%b writes - for 0 bytes"
        );
        assert_eq!(
            m.get("referer"),
            Some(&Value::from("http://www.example.com/start.html"))
        );
        assert_eq!(m.get("user_agent"), Some(&Value::from("Mozilla/4.08")));
        assert_eq!(m.get("duration_us"), Some(&Value::Int(1520)));
        assert!(f.parse("127.0.0.1 - frank").is_err());
    }

    #[test]
    fn unknown_directives_are_refused_at_load() {
        assert!(compile("%h %Z").unwrap_err().contains("%Z"));
        assert!(compile("%h %").is_err());
        assert!(compile("%h%u").is_err());
        assert!(compile("%h %{ms}T").is_ok_and(|f| f
            .parse("a 12")
            .is_ok_and(|m| m.get("duration_ms") == Some(&Value::Int(12)))));
    }
}
