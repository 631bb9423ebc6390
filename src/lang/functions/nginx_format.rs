//! nginx `log_format` strings (`$remote_addr - $remote_user [$time_local] ...`)
//! turned into an [`AccessFormat`]: each `$variable` (or `${variable}`)
//! becomes a field of the same name, typed by what nginx writes there.

use super::access_format::{AccessFormat, Kind, Segment};

/// nginx's default `main` format (from the stock nginx.conf).
pub const MAIN: &str = r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" "$http_x_forwarded_for""#;

/// The type of what nginx writes for a variable; unknown ones are strings.
fn kind_of(var: &str) -> Kind {
    match var {
        "status"
        | "body_bytes_sent"
        | "bytes_sent"
        | "request_length"
        | "connection"
        | "connection_requests"
        | "pid"
        | "remote_port"
        | "server_port"
        | "content_length" => Kind::Int,
        "request_time" | "gzip_ratio" => Kind::Float,
        "time_local" => Kind::TimeLocal,
        "time_iso8601" => Kind::TimeIso8601,
        "msec" => Kind::EpochSeconds,
        "request" => Kind::Request,
        "upstream_response_time" | "upstream_connect_time" | "upstream_header_time" => {
            Kind::FloatList
        }
        "upstream_status"
        | "upstream_response_length"
        | "upstream_bytes_received"
        | "upstream_bytes_sent" => Kind::IntList,
        _ => Kind::Str,
    }
}

/// Builds the parser for a `log_format` string.
pub fn compile(format: &str) -> Result<AccessFormat, String> {
    let mut segments = Vec::new();
    let mut literal = String::new();
    let mut rest = format;
    while let Some(i) = rest.find('$') {
        literal.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, consumed) = if let Some(braced) = after.strip_prefix('{') {
            let end = braced
                .find('}')
                .ok_or("nginx log_format: `${` without a closing `}`")?;
            (&braced[..end], end + 2)
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        if name.is_empty() {
            return Err(format!(
                "nginx log_format: `$` without a variable name at `{}`",
                rest[i..].chars().take(20).collect::<String>()
            ));
        }
        segments.push(Segment::Literal(std::mem::take(&mut literal)));
        segments.push(Segment::Field {
            name: name.into(),
            kind: kind_of(name),
        });
        rest = &after[consumed..];
    }
    literal.push_str(rest);
    segments.push(Segment::Literal(literal));
    AccessFormat::new(segments, "nginx log_format")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Value;

    #[test]
    fn custom_format_with_upstream_timings_keeps_every_field_typed() {
        let f = compile(
            r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" $request_time $upstream_response_time"#,
        )
        .unwrap();
        let m = f
            .parse(r#"10.0.0.7 - - [25/Nov/2026:10:00:00 +0100] "POST /api/login HTTP/2.0" 401 23 "-" "curl/8.5.0" 0.120 0.118"#)
            .unwrap();
        assert_eq!(m.get("remote_addr"), Some(&Value::from("10.0.0.7")));
        assert_eq!(m.get("remote_user"), Some(&Value::Null));
        assert_eq!(
            m.get("time_local"),
            Some(&Value::Timestamp(1_795_597_200_000_000_000))
        );
        assert_eq!(m.get("method"), Some(&Value::from("POST")));
        assert_eq!(m.get("path"), Some(&Value::from("/api/login")));
        assert_eq!(m.get("protocol"), Some(&Value::from("HTTP/2.0")));
        assert_eq!(m.get("status"), Some(&Value::Int(401)));
        assert_eq!(m.get("body_bytes_sent"), Some(&Value::Int(23)));
        assert_eq!(m.get("http_referer"), Some(&Value::Null));
        assert_eq!(m.get("http_user_agent"), Some(&Value::from("curl/8.5.0")));
        assert_eq!(m.get("request_time"), Some(&Value::Float(0.120)));
        assert_eq!(m.get("upstream_response_time"), Some(&Value::Float(0.118)));
    }

    #[test]
    fn a_line_longer_than_the_format_is_an_error() {
        let f = compile("$remote_addr $status").unwrap();
        let e = f.parse("10.0.0.1 200 0.5 0.4").unwrap_err();
        assert!(e.contains("unparsed text"), "{e}");
    }

    #[test]
    fn braced_and_iso_variables_and_bad_formats() {
        let f = compile("${host}:$time_iso8601 $msec").unwrap();
        let m = f
            .parse("web1:2026-11-25T10:00:00+00:00 1795600800.5")
            .unwrap();
        assert_eq!(m.get("host"), Some(&Value::from("web1")));
        assert_eq!(
            m.get("time_iso8601"),
            Some(&Value::Timestamp(1_795_600_800_000_000_000))
        );
        assert_eq!(
            m.get("msec"),
            Some(&Value::Timestamp(1_795_600_800_500_000_000))
        );
        assert!(compile("$a$b").is_err());
        assert!(compile("cost $ 5 $status").is_err());
        assert!(compile("${host").is_err());
        assert!(compile(MAIN).is_ok());
    }
}
