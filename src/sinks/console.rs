//! The console sink: one human-readable line per event on stdout. Used when
//! no OpenObserve URL is configured, and for trying pipelines out.

use super::RoutedBatch;
use crate::event::{format_rfc3339, Event, Value};
use crate::pipeline::acks::ack_events;
use crate::pipeline::channel::BatchReceiver;
use crate::telemetry;
use std::fmt::Write as _;
use std::io::Write;

/// Formats one event as a line (without newline).
pub fn format_event(stream: &str, event: &Event) -> String {
    let mut line = String::new();
    match event {
        Event::Log(log) => {
            let ts = format_rfc3339(log.time_unix_nano as i64);
            let sev = log.severity_text.as_deref().unwrap_or("-");
            let body = render(&log.body);
            let _ = write!(line, "{ts} {sev} [{stream}] {body}");
            for (k, v) in &log.attributes {
                let _ = write!(line, " {k}={}", render(v));
            }
        }
        Event::Metric(m) => {
            let ts = format_rfc3339(m.time_unix_nano as i64);
            let _ = write!(line, "{ts} METRIC [{stream}] {}={}", m.name, m.value);
            for (k, v) in &m.labels {
                let _ = write!(line, " {k}={}", render(v));
            }
        }
    }
    line
}

fn render(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::String(s) => s.to_string(),
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Value::Timestamp(ns) => format_rfc3339(*ns),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(render).collect::<Vec<_>>().join(",")
        ),
        Value::Map(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("{k}:{}", render(v)))
                .collect::<Vec<_>>()
                .join(",")
        ),
    }
}

/// Prints every batch; events are acknowledged once written.
pub async fn run(name: String, mut input: BatchReceiver<RoutedBatch>) {
    let out_count = telemetry::counter("shipd_events_out_total", &[("component", &name)]);
    while let Some(routed) = input.recv().await {
        let RoutedBatch { stream, batch } = routed.item;
        let mut text = String::new();
        for event in &batch.events {
            text.push_str(&format_event(&stream, event));
            text.push('\n');
        }
        let written = tokio::task::spawn_blocking(move || {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(text.as_bytes())
                .and_then(|_| stdout.flush())
        })
        .await;
        match written {
            Ok(Ok(())) => {
                out_count.add(batch.len() as u64);
                ack_events(&batch.events);
            }
            Ok(Err(e)) => {
                tracing::error!(sink = %name, error = %e, "cannot write to stdout; stopping console sink");
                return;
            }
            Err(e) => {
                tracing::error!(sink = %name, error = %e, "console writer failed");
                return;
            }
        }
    }
}
