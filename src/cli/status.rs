//! `shipctl status`: a table of the agent's components (like `top`), its
//! health, and buffer and wear figures; `--json` for scripts; `--watch`
//! refreshes. It only reads.

use super::agent::runtime;
use crate::control::client::connect;
use crate::control::proto;
use comfy_table::{presets, CellAlignment, Table};
use std::path::Path;
use std::time::Duration;

/// Prints the status once, or every `watch` until Ctrl-C.
pub fn status(socket: &Path, json: bool, watch: Option<Duration>) -> i32 {
    let Some(rt) = runtime() else { return 1 };
    rt.block_on(async {
        loop {
            let reply = match fetch(socket).await {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("shipctl status: {e}");
                    if watch.is_none() {
                        return 1;
                    }
                    None
                }
            };
            if let Some(reply) = reply {
                let text = if json {
                    to_json(&reply).to_string()
                } else {
                    render(&reply)
                };
                if watch.is_some() && !json {
                    // Clear the screen and home the cursor, like top.
                    print!("\x1b[2J\x1b[H");
                }
                println!("{text}");
            }
            let Some(every) = watch else { return 0 };
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = tokio::signal::ctrl_c() => return 0,
            }
        }
    })
}

async fn fetch(socket: &Path) -> Result<Option<proto::StatusReply>, String> {
    let mut client = connect(socket).await.map_err(|e| e.to_string())?;
    client
        .status(proto::StatusRequest {})
        .await
        .map(|r| Some(r.into_inner()))
        .map_err(|s| s.message().to_owned())
}

/// `1.5 KiB`-style sizes.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// The table and summary lines.
pub fn render(s: &proto::StatusReply) -> String {
    let mut table = Table::new();
    table.load_preset(presets::NOTHING);
    table.set_header(vec![
        "COMPONENT",
        "KIND",
        "IN",
        "OUT",
        "BYTES IN",
        "BYTES OUT",
        "ERRORS",
        "DROPPED",
        "FAILED",
        "QUEUE",
        "RETRIES",
        "LAG",
        "LAST ERROR",
    ]);
    for c in &s.components {
        let last_error = if c.failing {
            format!("FAILING: {}", c.last_error)
        } else {
            c.last_error.clone()
        };
        table.add_row(vec![
            c.name.clone(),
            c.kind.clone(),
            c.events_in.to_string(),
            c.events_out.to_string(),
            human_bytes(c.bytes_in),
            human_bytes(c.bytes_out),
            c.errors.to_string(),
            c.dropped.to_string(),
            c.failed.to_string(),
            human_bytes(c.queue_bytes),
            c.retries.to_string(),
            human_bytes(c.checkpoint_lag_bytes),
            last_error,
        ]);
    }
    for column in 2..12 {
        if let Some(col) = table.column_mut(column) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
    let failing: Vec<String> = s
        .components
        .iter()
        .filter(|c| c.failing)
        .map(|c| format!("{}: {}", c.name, c.last_error))
        .collect();
    let degraded: Vec<String> = s
        .degraded
        .iter()
        .map(|d| format!("{}: {}", d.component, d.text))
        .collect();
    let mut concerns = Vec::new();
    if !failing.is_empty() {
        concerns.push(format!("FAILING ({})", failing.join("; ")));
    }
    if !degraded.is_empty() {
        concerns.push(format!("DEGRADED ({})", degraded.join("; ")));
    }
    let health = match (s.healthy, concerns.is_empty()) {
        (true, _) => "healthy".to_owned(),
        (false, true) => "FAILING".to_owned(),
        (false, false) => concerns.join(", "),
    };
    let pipeline = if s.pipeline.is_empty() {
        "embedded default"
    } else {
        &s.pipeline
    };
    let spill = metric_sum(s, |name| {
        name.contains("spill") && name.contains("bytes") && !name.ends_with("_total")
    });
    let taps = metric_sum(s, |name| name == "shipd_tap_events_dropped_total");
    // An agent of an earlier version sends warnings in the rows only.
    let warnings: String = if s.warnings.is_empty() {
        s.components
            .iter()
            .flat_map(|c| {
                c.warnings
                    .iter()
                    .map(move |w| format!("WARNING {}: {w}\n", c.name))
            })
            .collect()
    } else {
        s.warnings
            .iter()
            .map(|w| format!("WARNING {}: {}\n", w.component, w.text))
            .collect()
    };
    let routed: Vec<String> = s
        .components
        .iter()
        .filter(|c| c.kind == "router")
        .flat_map(|c| {
            c.routed
                .iter()
                .collect::<std::collections::BTreeMap<_, _>>()
        })
        .map(|(sink, n)| format!("{sink} {n}"))
        .collect();
    let routed = if routed.is_empty() {
        String::new()
    } else {
        format!("\nrouted: {}", routed.join(", "))
    };
    format!(
        "shipd {} · up {} · pipeline {} · reloads {}\nhealth: {health}\n{warnings}{table}{routed}\nbuffers: {} queued in memory, {} spilled to disk; {} tap event(s) dropped for slow readers\nwear: {} written to disk ({}), {} fsync(s)",
        s.version,
        humantime::format_duration(Duration::from_secs(s.uptime_seconds)),
        pipeline,
        s.reloads,
        human_bytes(s.components.iter().map(|c| c.queue_bytes).sum::<u64>().saturating_sub(spill)),
        human_bytes(spill),
        taps,
        human_bytes(s.disk_bytes_written),
        written_by_kind(s),
        s.fsyncs,
    )
}

fn metric_sum(s: &proto::StatusReply, pick: impl Fn(&str) -> bool) -> u64 {
    s.metrics
        .iter()
        .filter(|m| pick(&m.name))
        .map(|m| m.value)
        .sum()
}

/// `checkpoint 1.2 KiB, spill 0 B`.
fn written_by_kind(s: &proto::StatusReply) -> String {
    let parts: Vec<String> = s
        .metrics
        .iter()
        .filter(|m| m.name == "shipd_disk_bytes_written_total")
        .map(|m| {
            let kind = m
                .labels
                .strip_prefix("kind=\"")
                .and_then(|k| k.split('"').next())
                .unwrap_or(&m.labels);
            format!("{kind} {}", human_bytes(m.value))
        })
        .collect();
    if parts.is_empty() {
        "nothing yet".into()
    } else {
        parts.join(", ")
    }
}

/// The status as one JSON object.
pub fn to_json(s: &proto::StatusReply) -> serde_json::Value {
    serde_json::json!({
        "version": s.version,
        "uptime_seconds": s.uptime_seconds,
        "healthy": s.healthy,
        "degraded": s.degraded.iter().map(|d| serde_json::json!({"component": d.component, "cause": d.text})).collect::<Vec<_>>(),
        "warnings": s.warnings.iter().map(|w| serde_json::json!({"component": w.component, "warning": w.text})).collect::<Vec<_>>(),
        "pipeline": s.pipeline,
        "reloads": s.reloads,
        "disk_bytes_written": s.disk_bytes_written,
        "fsyncs": s.fsyncs,
        "components": s.components.iter().map(|c| serde_json::json!({
            "name": c.name,
            "kind": c.kind,
            "events_in": c.events_in,
            "events_out": c.events_out,
            "bytes_in": c.bytes_in,
            "bytes_out": c.bytes_out,
            "errors": c.errors,
            "dropped": c.dropped,
            "failed": c.failed,
            "routed": c.routed.iter().collect::<std::collections::BTreeMap<_, _>>(),
            "queue_bytes": c.queue_bytes,
            "retries": c.retries,
            "checkpoint_lag_bytes": c.checkpoint_lag_bytes,
            "failing": c.failing,
            "last_error": c.last_error,
            "warnings": c.warnings,
        })).collect::<Vec<_>>(),
        "checkpoints": s.checkpoints.iter().map(|c| serde_json::json!({
            "key": c.key,
            "path": c.path,
            "offset": c.offset,
            "lag_bytes": c.lag_bytes,
        })).collect::<Vec<_>>(),
        "metrics": s.metrics.iter().map(|m| serde_json::json!({
            "name": m.name,
            "labels": m.labels,
            "value": m.value,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_human() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024), "3.0 MiB");
    }

    #[test]
    fn the_table_shows_components_health_and_wear() {
        let reply = proto::StatusReply {
            version: "0.1.0".into(),
            healthy: false,
            components: vec![proto::ComponentStatus {
                name: "o2".into(),
                kind: "sink".into(),
                events_out: 42,
                failing: true,
                last_error: "HTTP 503".into(),
                ..Default::default()
            }],
            metrics: vec![proto::MetricValue {
                name: "shipd_disk_bytes_written_total".into(),
                labels: "kind=\"checkpoint\"".into(),
                value: 2048,
            }],
            disk_bytes_written: 2048,
            fsyncs: 4,
            ..Default::default()
        };
        let text = render(&reply);
        assert!(text.contains("health: FAILING (o2: HTTP 503)"), "{text}");
        assert!(text.contains("42"), "{text}");
        assert!(
            text.contains("wear: 2.0 KiB written to disk (checkpoint 2.0 KiB), 4 fsync(s)"),
            "{text}"
        );
        assert_eq!(to_json(&reply)["components"][0]["events_out"], 42);
    }

    #[test]
    fn a_degraded_agent_names_the_cause_and_standing_warnings() {
        let reply = proto::StatusReply {
            healthy: false,
            degraded: vec![proto::Concern {
                component: "checkpoints".into(),
                text: "disk copy: Read-only file system".into(),
            }],
            warnings: vec![proto::Concern {
                component: "checkpoints".into(),
                text: "runtime_dir /var/tmp is not RAM".into(),
            }],
            ..Default::default()
        };
        let text = render(&reply);
        assert!(
            text.contains("health: DEGRADED (checkpoints: disk copy: Read-only file system)"),
            "{text}"
        );
        assert!(
            text.contains("WARNING checkpoints: runtime_dir /var/tmp is not RAM"),
            "{text}"
        );
        assert_eq!(to_json(&reply)["degraded"][0]["component"], "checkpoints");
    }
}
