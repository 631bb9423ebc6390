//! Node health: warning and critical thresholds over CPU, memory, disk, load
//! and temperature, reported as `shipd.node.health` (0 healthy, 1 warning,
//! 2 critical) with a `check` label (`overall` and one per check that had
//! data), and as one log event each time the overall level changes (the
//! agent starts from healthy, so a node that starts unhealthy says so).
//! Pure evaluation: no I/O.

use super::HealthInputs;
use crate::event::{LogRecord, Resource, Value};
use std::sync::Arc;

/// The metric name.
pub const METRIC: &str = "shipd.node.health";

/// A warning and a critical threshold (reached when the value is >= it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Levels {
    pub warning: f64,
    pub critical: f64,
}

impl Levels {
    pub const fn new(warning: f64, critical: f64) -> Self {
        Levels { warning, critical }
    }

    fn level(&self, value: f64) -> HealthLevel {
        if value >= self.critical {
            HealthLevel::Critical
        } else if value >= self.warning {
            HealthLevel::Warning
        } else {
            HealthLevel::Healthy
        }
    }
}

/// Thresholds per check; defaults from the cluster guide.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthThresholds {
    /// Busy CPU, percent.
    pub cpu: Levels,
    /// Memory not available, percent.
    pub memory: Levels,
    /// Fullest read-write filesystem, percent.
    pub disk: Levels,
    /// 1-minute load average.
    pub load: Levels,
    /// Hottest thermal zone, °C.
    pub temperature: Levels,
}

impl Default for HealthThresholds {
    fn default() -> Self {
        HealthThresholds {
            cpu: Levels::new(80.0, 95.0),
            memory: Levels::new(85.0, 95.0),
            disk: Levels::new(80.0, 90.0),
            load: Levels::new(4.0, 8.0),
            temperature: Levels::new(70.0, 80.0),
        }
    }
}

/// How a node is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum HealthLevel {
    Healthy = 0,
    Warning = 1,
    Critical = 2,
}

impl HealthLevel {
    pub fn name(self) -> &'static str {
        match self {
            HealthLevel::Healthy => "healthy",
            HealthLevel::Warning => "warning",
            HealthLevel::Critical => "critical",
        }
    }
}

/// The overall level changed.
#[derive(Debug, Clone, PartialEq)]
pub struct LevelChange {
    pub from: HealthLevel,
    pub to: HealthLevel,
    /// The checks above healthy, e.g. `cpu 97.0 % >= 95`.
    pub reasons: Vec<String>,
}

impl LevelChange {
    /// The log event announcing the change.
    pub fn into_log(self, time: u64, resource: Arc<Resource>) -> LogRecord {
        let reasons = if self.reasons.is_empty() {
            "all checks within thresholds".to_owned()
        } else {
            self.reasons.join(", ")
        };
        let mut log = LogRecord::new(
            Value::String(
                format!(
                    "node health changed from {} to {}: {reasons}",
                    self.from.name(),
                    self.to.name()
                )
                .into(),
            ),
            resource,
        );
        log.time_unix_nano = time;
        let (number, text) = match self.to {
            HealthLevel::Healthy => (9, "INFO"),
            HealthLevel::Warning => (13, "WARN"),
            HealthLevel::Critical => (17, "ERROR"),
        };
        log.severity_number = number;
        log.severity_text = Some(text.into());
        log.attributes = vec![
            (METRIC.into(), Value::Int(self.to as i64)),
            (
                format!("{METRIC}.previous").into(),
                Value::Int(self.from as i64),
            ),
            (
                format!("{METRIC}.reasons").into(),
                Value::String(reasons.into()),
            ),
        ];
        log
    }
}

/// The thresholds and the last overall level.
#[derive(Debug)]
pub struct HealthState {
    thresholds: HealthThresholds,
    level: HealthLevel,
}

impl HealthState {
    pub fn new(thresholds: HealthThresholds) -> Self {
        HealthState {
            thresholds,
            level: HealthLevel::Healthy,
        }
    }

    /// Levels per check (`overall` first) and the change of the overall
    /// level, if any.
    pub fn evaluate(
        &mut self,
        inputs: &HealthInputs,
    ) -> (Option<LevelChange>, Vec<(&'static str, HealthLevel)>) {
        let t = &self.thresholds;
        let disk = inputs.disk_percent.as_ref().map(|(p, _)| *p);
        let checks: [(&'static str, Option<f64>, Levels, &str); 5] = [
            ("cpu", inputs.cpu_percent, t.cpu, " %"),
            ("memory", inputs.memory_percent, t.memory, " %"),
            ("disk", disk, t.disk, " %"),
            ("load", inputs.load_1m, t.load, ""),
            (
                "temperature",
                inputs.temperature_celsius,
                t.temperature,
                " °C",
            ),
        ];
        let mut levels = vec![("overall", HealthLevel::Healthy)];
        let mut reasons = Vec::new();
        for (check, value, limits, unit) in checks {
            let Some(value) = value else { continue };
            let level = limits.level(value);
            if level != HealthLevel::Healthy {
                let bound = if level == HealthLevel::Critical {
                    limits.critical
                } else {
                    limits.warning
                };
                let place = match (check, &inputs.disk_percent) {
                    ("disk", Some((_, mount))) => format!(" on {mount}"),
                    _ => String::new(),
                };
                reasons.push(format!("{check}{place} {value:.1}{unit} >= {bound}"));
            }
            levels[0].1 = levels[0].1.max(level);
            levels.push((check, level));
        }
        let overall = levels[0].1;
        let change = (overall != self.level).then_some(LevelChange {
            from: self.level,
            to: overall,
            reasons,
        });
        self.level = overall;
        (change, levels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_check_sets_the_overall_level_and_changes_are_reported_once() {
        let mut state = HealthState::new(HealthThresholds::default());
        let calm = HealthInputs {
            cpu_percent: Some(10.0),
            load_1m: Some(0.5),
            ..Default::default()
        };
        let (change, levels) = state.evaluate(&calm);
        assert!(change.is_none(), "starting healthy is not a change");
        assert_eq!(
            levels,
            [
                ("overall", HealthLevel::Healthy),
                ("cpu", HealthLevel::Healthy),
                ("load", HealthLevel::Healthy)
            ]
        );

        let hot = HealthInputs {
            temperature_celsius: Some(81.5),
            memory_percent: Some(86.0),
            ..calm.clone()
        };
        let (change, levels) = state.evaluate(&hot);
        let change = change.expect("level changed");
        assert_eq!(
            (change.from, change.to),
            (HealthLevel::Healthy, HealthLevel::Critical)
        );
        assert_eq!(
            change.reasons,
            ["memory 86.0 % >= 85", "temperature 81.5 °C >= 80"]
        );
        assert_eq!(levels[0], ("overall", HealthLevel::Critical));
        assert!(
            state.evaluate(&hot).0.is_none(),
            "same level again is not a change"
        );
        let back = state.evaluate(&calm).0.unwrap();
        assert_eq!(back.to, HealthLevel::Healthy);
        let log = back.into_log(5, Arc::new(Resource::default()));
        assert_eq!(log.severity_text.as_deref(), Some("INFO"));
        assert_eq!(log.attributes[0], (METRIC.into(), Value::Int(0)));
    }

    #[test]
    fn thresholds_are_inclusive() {
        let l = Levels::new(80.0, 90.0);
        assert_eq!(l.level(79.9), HealthLevel::Healthy);
        assert_eq!(l.level(80.0), HealthLevel::Warning);
        assert_eq!(l.level(90.0), HealthLevel::Critical);
    }
}
