//! `shipctl tail`: live events from a running agent's taps, printed as
//! coloured lines on a terminal, JSON lines otherwise (or logfmt). Follows
//! the agent across restarts; reports events the tap dropped because this
//! reader was slow. It only reads; a slow `tail` never slows the agent.

use super::agent::runtime;
use crate::control::client::connect;
use crate::control::proto::{self, tap_message};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

/// How events are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Pretty,
    Json,
    Logfmt,
}

/// What `shipctl tail` was asked.
#[derive(Debug, Clone)]
pub struct TailOptions {
    pub socket: PathBuf,
    pub components: Vec<String>,
    pub filter: Option<String>,
    pub format: Format,
    pub limit: Option<u64>,
    pub rate_per_second: u32,
    pub color: bool,
}

/// Parses `100/s`, `100` (per second) or `6000/m`.
pub fn parse_rate(text: &str) -> Result<u32, String> {
    let (n, per) = text.split_once('/').unwrap_or((text, "s"));
    let n: u32 = n
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a rate like 100/s"))?;
    match per.trim() {
        "s" | "sec" => Ok(n),
        "m" | "min" => Ok(n.div_ceil(60)),
        other => Err(format!("unknown rate unit `{other}`; use /s or /m")),
    }
}

/// Why one connection ended.
enum Ended {
    /// The reader had enough (limit, closed stdout).
    Done,
    /// The agent went away; follow it.
    Lost(String),
    /// The agent refused the request; retrying cannot help.
    Refused(String),
}

/// Runs `shipctl tail` until the limit, Ctrl-C or a refusal; the exit code.
pub fn tail(opts: &TailOptions) -> i32 {
    let Some(rt) = runtime() else { return 1 };
    rt.block_on(async {
        tokio::select! {
            code = follow(opts) => code,
            _ = tokio::signal::ctrl_c() => 0,
        }
    })
}

/// What survives reconnections.
#[derive(Default)]
struct Progress {
    shown: u64,
    /// A tap was set up at least once: losing the agent now means it restarts.
    connected_before: bool,
    /// "reconnecting" was printed and "reconnected" is still due.
    lost: bool,
}

async fn follow(opts: &TailOptions) -> i32 {
    let mut progress = Progress::default();
    loop {
        match tap_once(opts, &mut progress).await {
            Ended::Done => return 0,
            Ended::Refused(why) => {
                eprintln!("shipctl tail: {why}");
                return 1;
            }
            Ended::Lost(why) if !progress.connected_before => {
                eprintln!("shipctl tail: {why}");
                return 1;
            }
            Ended::Lost(why) => {
                if !progress.lost {
                    eprintln!("shipctl tail: {why}; reconnecting");
                    progress.lost = true;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    }
}

async fn tap_once(opts: &TailOptions, progress: &mut Progress) -> Ended {
    let mut client = match connect(&opts.socket).await {
        Ok(c) => c,
        Err(e) => return Ended::Lost(e.to_string()),
    };
    let request = proto::TapRequest {
        components: opts.components.clone(),
        r#where: opts.filter.clone().unwrap_or_default(),
        rate_per_second: opts.rate_per_second,
    };
    let mut stream = match client.tap(request).await {
        Ok(s) => s.into_inner(),
        Err(status) => {
            return match status.code() {
                tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled => {
                    Ended::Lost(status.message().to_owned())
                }
                _ => Ended::Refused(status.message().to_owned()),
            }
        }
    };
    let mut reported_drops = 0u64;
    let mut stdout = std::io::stdout().lock();
    loop {
        let message = match stream.message().await {
            Ok(Some(m)) => m,
            Ok(None) => return Ended::Lost("shipd closed the tap".into()),
            Err(status) => return Ended::Lost(format!("tap ended: {}", status.message())),
        };
        if message.dropped > reported_drops {
            eprintln!(
                "shipctl tail: {} event(s) dropped so far (this reader is slower than the pipeline)",
                message.dropped
            );
            reported_drops = message.dropped;
        }
        match message.kind {
            Some(tap_message::Kind::Notice(notice)) => {
                if progress.lost {
                    eprintln!("shipctl tail: reconnected");
                    progress.lost = false;
                }
                progress.connected_before = true;
                eprintln!("shipctl tail: tapping {}", notice.matched.join(", "));
            }
            Some(tap_message::Kind::Event(event)) => {
                let line = render(&event, opts.format, opts.color);
                if writeln!(stdout, "{line}")
                    .and_then(|_| stdout.flush())
                    .is_err()
                {
                    return Ended::Done;
                }
                progress.shown += 1;
                if opts.limit.is_some_and(|l| progress.shown >= l) {
                    return Ended::Done;
                }
            }
            None => {}
        }
    }
}

/// One line for one tapped event.
pub fn render(event: &proto::TapEvent, format: Format, color: bool) -> String {
    let parsed: serde_json::Value =
        serde_json::from_str(&event.json).unwrap_or(serde_json::Value::Null);
    match format {
        Format::Json => {
            let mut object = serde_json::Map::new();
            object.insert("component".into(), event.component.clone().into());
            object.insert("point".into(), event.point.clone().into());
            object.insert("source".into(), event.source.clone().into());
            if let serde_json::Value::Object(fields) = parsed {
                object.extend(fields);
            }
            serde_json::Value::Object(object).to_string()
        }
        Format::Logfmt => {
            let mut pairs = vec![
                ("component".to_owned(), event.component.clone()),
                ("point".to_owned(), event.point.clone()),
                ("source".to_owned(), event.source.clone()),
            ];
            // Headline fields first, then the maps (attributes, labels, resource).
            const FIRST: [&str; 7] = [
                "timestamp",
                "severity",
                "message",
                "name",
                "kind",
                "value",
                "unit",
            ];
            for key in FIRST {
                if let Some(v) = parsed.get(key) {
                    flatten(key, v, &mut pairs);
                }
            }
            if let serde_json::Value::Object(fields) = &parsed {
                for (k, v) in fields.iter().filter(|(k, _)| !FIRST.contains(&k.as_str())) {
                    flatten(k, v, &mut pairs);
                }
            }
            pairs
                .iter()
                .map(|(k, v)| format!("{k}={}", logfmt_value(v)))
                .collect::<Vec<_>>()
                .join(" ")
        }
        Format::Pretty => pretty(event, &parsed, color),
    }
}

fn pretty(event: &proto::TapEvent, parsed: &serde_json::Value, color: bool) -> String {
    let paint = |code: &str, text: &str| {
        if color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    };
    let field = |k: &str| parsed.get(k).cloned().unwrap_or(serde_json::Value::Null);
    let time = text_of(&field("timestamp"));
    let mut line = format!(
        "{} {}",
        paint("2", &time),
        paint("36", &format!("[{}]", event.component))
    );
    if let Some(name) = parsed.get("name").and_then(|n| n.as_str()) {
        line.push_str(&format!(
            " {}={}",
            paint("1", name),
            text_of(&field("value"))
        ));
        append_pairs(&mut line, &field("labels"), &paint);
        return line;
    }
    let severity = text_of(&field("severity"));
    let severity_color = match severity.to_ascii_lowercase().as_str() {
        s if s.starts_with("err") || s.starts_with("crit") || s.starts_with("fatal") => "31",
        s if s.starts_with("warn") => "33",
        s if s.starts_with("debug") || s.starts_with("trace") => "2",
        _ => "32",
    };
    if !severity.is_empty() && severity != "null" {
        line.push(' ');
        line.push_str(&paint(severity_color, &severity));
    }
    line.push(' ');
    line.push_str(&text_of(&field("message")));
    append_pairs(&mut line, &field("attributes"), &paint);
    line
}

fn append_pairs(line: &mut String, map: &serde_json::Value, paint: &dyn Fn(&str, &str) -> String) {
    if let serde_json::Value::Object(map) = map {
        for (k, v) in map {
            line.push_str(&format!(" {}={}", paint("2", k), text_of(v)));
        }
    }
}

fn text_of(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `a.b=1` pairs of nested objects.
fn flatten(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        serde_json::Value::Null => {}
        other => out.push((prefix.to_owned(), text_of(other))),
    }
}

fn logfmt_value(v: &str) -> String {
    if v.is_empty() || v.chars().any(|c| c.is_whitespace() || c == '"' || c == '=') {
        format!("{v:?}")
    } else {
        v.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> proto::TapEvent {
        proto::TapEvent {
            component: "app".into(),
            point: "sink".into(),
            source: "app".into(),
            json: r#"{"timestamp":"2026-11-26T01:00:00Z","severity":"error","message":"disk full","attributes":{"file":{"path":"/var/log/a b.log"}}}"#.into(),
        }
    }

    #[test]
    fn events_render_as_json_logfmt_and_plain_text() {
        let json: serde_json::Value =
            serde_json::from_str(&render(&event(), Format::Json, false)).unwrap();
        assert_eq!(json["component"], "app");
        assert_eq!(json["message"], "disk full");
        assert_eq!(
            render(&event(), Format::Logfmt, false),
            "component=app point=sink source=app timestamp=2026-11-26T01:00:00Z severity=error message=\"disk full\" attributes.file.path=\"/var/log/a b.log\""
        );
        let plain = render(&event(), Format::Pretty, false);
        assert_eq!(
            plain,
            "2026-11-26T01:00:00Z [app] error disk full file={\"path\":\"/var/log/a b.log\"}"
        );
        assert!(render(&event(), Format::Pretty, true).contains("\x1b[31merror"));
    }

    #[test]
    fn rates_parse_per_second_and_minute() {
        assert_eq!(parse_rate("100/s"), Ok(100));
        assert_eq!(parse_rate("7"), Ok(7));
        assert_eq!(parse_rate("120/m"), Ok(2));
        assert!(parse_rate("fast").is_err());
    }
}
