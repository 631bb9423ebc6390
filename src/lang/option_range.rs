//! Valid ranges of numeric options (durations, sizes, counts): the data the
//! option schema ([`super::components::KINDS`]) carries, the check applied
//! to every value when a pipeline loads, and how ranges and values are
//! written in diagnostics and the reference. A value outside its range is
//! refused at load (`shipctl check`, the start of shipd, a reload), never
//! clamped, so whatever the checker accepts the agent can run. A refusal
//! names the environment variable the value came from, since users of the
//! embedded default pipeline only know the variables.

use super::ast::{BinOp, Expr, ExprKind, Lit, Stmt};
use super::components::{OptTy, OptVal};
use super::environment::Environment;
use std::time::Duration;

pub const KIB: u64 = 1024;
pub const MIB: u64 = 1024 * KIB;
pub const GIB: u64 = 1024 * MIB;

pub const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
pub const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}
pub const fn mins(n: u64) -> Duration {
    Duration::from_secs(n * 60)
}
pub const fn hours(n: u64) -> Duration {
    Duration::from_secs(n * 3600)
}
pub const fn days(n: u64) -> Duration {
    Duration::from_secs(n * 86_400)
}

/// The inclusive range of values an option accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptRange {
    Int { min: i64, max: i64 },
    Size { min: u64, max: u64 },
    Duration { min: Duration, max: Duration },
}

impl OptRange {
    pub const fn int(min: i64, max: i64) -> Self {
        OptRange::Int { min, max }
    }

    pub const fn size(min: u64, max: u64) -> Self {
        OptRange::Size { min, max }
    }

    pub const fn duration(min: Duration, max: Duration) -> Self {
        OptRange::Duration { min, max }
    }

    /// Whether this range applies to values of `ty`.
    pub fn fits(self, ty: OptTy) -> bool {
        matches!(
            (self, ty),
            (OptRange::Int { .. }, OptTy::Int)
                | (OptRange::Size { .. }, OptTy::Size)
                | (OptRange::Duration { .. }, OptTy::Duration)
        )
    }

    /// Whether `value` lies within the range; values of another type are
    /// refused too (a range only sits on an option of its own type).
    pub fn contains(self, value: &OptVal) -> bool {
        match (self, value) {
            (OptRange::Int { min, max }, OptVal::Int(v)) => (min..=max).contains(v),
            (OptRange::Size { min, max }, OptVal::Size(v)) => (min..=max).contains(v),
            (OptRange::Duration { min, max }, OptVal::Duration(v)) => (min..=max).contains(v),
            _ => false,
        }
    }

    /// `100ms to 1h`, in the units a pipeline is written in.
    pub fn describe(self) -> String {
        let (min, max) = self.bounds();
        format!("{min} to {max}")
    }

    /// The bounds as written in a pipeline.
    pub fn bounds(self) -> (String, String) {
        match self {
            OptRange::Int { min, max } => (format_int(min), format_int(max)),
            OptRange::Size { min, max } => (format_size(min), format_size(max)),
            OptRange::Duration { min, max } => (format_duration(min), format_duration(max)),
        }
    }
}

/// `1_000_000` for large counts, so the digits can be told apart.
fn format_int(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    if digits.len() <= 4 {
        return n.to_string();
    }
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push('_');
        }
        out.push(c);
    }
    if n < 0 {
        out.insert(0, '-');
    }
    out
}

/// A size in the largest binary unit that divides it exactly: `64MiB`, `1000B`.
pub fn format_size(n: u64) -> String {
    for (unit, scale) in [("GiB", GIB), ("MiB", MIB), ("KiB", KIB)] {
        if n >= scale && n % scale == 0 {
            return format!("{}{unit}", n / scale);
        }
    }
    format!("{n}B")
}

/// A duration in the largest unit of the language that divides it exactly:
/// `100ms`, `1h`, `1d`; anything finer in humantime's form (`1ms 500us`).
pub fn format_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".into();
    }
    let nanos = d.as_nanos();
    for (unit, scale) in [
        ("d", 86_400_000_000_000u128),
        ("h", 3_600_000_000_000),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
    ] {
        if nanos >= scale && nanos % scale == 0 {
            return format!("{}{unit}", nanos / scale);
        }
    }
    humantime::format_duration(d).to_string()
}

/// A numeric value as written in a pipeline; `None` for other values (which
/// may hold secrets and are never echoed).
pub fn format_value(value: &OptVal) -> Option<String> {
    match value {
        OptVal::Int(n) => Some(n.to_string()),
        OptVal::Size(n) => Some(format_size(*n)),
        OptVal::Duration(d) => Some(format_duration(*d)),
        _ => None,
    }
}

/// The environment variables an option's value came from: in
/// `env("X") ?? default` (or a chain of them) the first one that is set;
/// otherwise every `env("X")` the expression reads that is set.
pub fn env_origin(env: &Environment, e: &Expr) -> Vec<String> {
    if let ExprKind::Binary(BinOp::Coalesce, left, right) = &e.kind {
        if let Some(var) = env_var_of(left) {
            return if env.is_set(&var) {
                vec![var]
            } else {
                env_origin(env, right)
            };
        }
    }
    let mut vars = env_vars(e);
    vars.retain(|v| env.is_set(v));
    vars
}

/// Every environment variable `e` reads with `env("X")`, set or not.
pub fn env_vars(e: &Expr) -> Vec<String> {
    let mut vars = Vec::new();
    collect_env(e, &mut vars);
    vars
}

/// `X` of `env("X")`.
fn env_var_of(e: &Expr) -> Option<String> {
    match &e.kind {
        ExprKind::Call { name, args, .. } if name.name == "env" => match args.as_slice() {
            [arg] => match &arg.value.kind {
                ExprKind::Lit(Lit::Str(var)) => Some(var.clone()),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    }
}

fn collect_env(e: &Expr, out: &mut Vec<String>) {
    if let Some(var) = env_var_of(e) {
        if !out.contains(&var) {
            out.push(var);
        }
        return;
    }
    match &e.kind {
        ExprKind::Lit(_) | ExprKind::Path(_) | ExprKind::Name(_) => {}
        ExprKind::Array(items) => items.iter().for_each(|i| collect_env(i, out)),
        ExprKind::Map(entries) => entries.iter().for_each(|(_, v)| collect_env(v, out)),
        ExprKind::Index(a, b) | ExprKind::Binary(_, a, b) => {
            collect_env(a, out);
            collect_env(b, out);
        }
        ExprKind::Unary(_, a) | ExprKind::Closure { body: a, .. } => collect_env(a, out),
        ExprKind::Call { args, .. } => args.iter().for_each(|a| collect_env(&a.value, out)),
        ExprKind::If {
            cond,
            then,
            otherwise,
        } => {
            collect_env(cond, out);
            for stmt in then.iter().chain(otherwise.iter().flatten()) {
                match stmt {
                    Stmt::Expr(e) | Stmt::Assign { value: e, .. } | Stmt::Let { value: e, .. } => {
                        collect_env(e, out)
                    }
                    Stmt::Drop { condition, .. } => {
                        if let Some(c) = condition {
                            collect_env(c, out);
                        }
                    }
                }
            }
        }
    }
}

/// What a diagnostic says about the origin of a value: ` (SHIPD_X=0s)`, or
/// nothing for a value written in the pipeline. The variable's text is shown
/// only for a value that parsed as a number, so it holds no secret.
pub fn origin_note(env: &Environment, vars: &[String], echo_text: bool) -> String {
    match vars {
        [] => String::new(),
        [var] if echo_text => {
            let text = env.get(var).unwrap_or_default();
            let text: String = text.chars().take(40).collect();
            format!(" ({var}={text})")
        }
        vars => format!(" (from {})", vars.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_written_in_pipeline_units() {
        assert_eq!(
            OptRange::duration(ms(100), hours(1)).describe(),
            "100ms to 1h"
        );
        assert_eq!(OptRange::duration(secs(0), days(1)).describe(), "0s to 1d");
        assert_eq!(OptRange::size(KIB, 64 * MIB).describe(), "1KiB to 64MiB");
        assert_eq!(OptRange::int(1, 1_000_000).describe(), "1 to 1_000_000");
        assert_eq!(format_size(1000), "1000B");
        assert_eq!(format_duration(Duration::from_micros(1500)), "1ms 500us");
        assert_eq!(format_duration(secs(90)), "90s");
    }

    #[test]
    fn bounds_are_inclusive_and_types_must_match() {
        let r = OptRange::duration(ms(100), hours(1));
        assert!(r.contains(&OptVal::Duration(ms(100))));
        assert!(r.contains(&OptVal::Duration(hours(1))));
        assert!(!r.contains(&OptVal::Duration(ms(99))));
        assert!(!r.contains(&OptVal::Duration(hours(1) + Duration::from_nanos(1))));
        assert!(!r.contains(&OptVal::Int(1)));
        let n = OptRange::int(1, 64);
        assert!(!n.contains(&OptVal::Int(0)) && !n.contains(&OptVal::Int(-1)));
        assert!(n.contains(&OptVal::Int(64)) && !n.contains(&OptVal::Int(65)));
    }
}

/// The schema's ranges hold for every option, and whatever value a pipeline
/// gives a numeric option, loading it yields diagnostics or an agent
/// configuration the runtime can run: never a panic.
#[cfg(test)]
mod properties {
    use super::*;
    use crate::config::{AgentConfig, SinkConfig, SourceConfig};
    use crate::lang::components::{OptSpec, KINDS};
    use proptest::prelude::*;

    /// (kind, option, range) of every ranged option.
    fn ranged() -> Vec<(&'static str, &'static OptSpec, OptRange)> {
        KINDS
            .iter()
            .flat_map(|k| {
                k.options
                    .iter()
                    .filter_map(move |o| o.range.map(|r| (k.name, o, r)))
            })
            .collect()
    }

    #[test]
    fn every_duration_size_and_count_option_has_a_range_of_its_type() {
        for kind in KINDS {
            for opt in kind.options {
                let numeric = matches!(opt.ty, OptTy::Duration | OptTy::Size | OptTy::Int);
                match opt.range {
                    None => assert!(!numeric, "`{}.{}` has no range", kind.name, opt.name),
                    Some(r) => {
                        assert!(r.fits(opt.ty), "`{}.{}`: {r:?}", kind.name, opt.name);
                        let ordered = match r {
                            OptRange::Int { min, max } => min <= max,
                            OptRange::Size { min, max } => min <= max,
                            OptRange::Duration { min, max } => min <= max,
                        };
                        assert!(ordered, "`{}.{}`: {r:?}", kind.name, opt.name);
                    }
                }
            }
        }
    }

    #[test]
    fn every_documented_default_lies_within_its_range() {
        for (kind, opt, range) in ranged() {
            let Some(text) = opt.doc.split("default ").nth(1) else {
                continue;
            };
            let text: String = text
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let value = match opt.ty {
                OptTy::Duration => humantime::parse_duration(&text).ok().map(OptVal::Duration),
                OptTy::Size => crate::config::parse_size(&text)
                    .ok()
                    .map(|n| OptVal::Size(n as u64)),
                _ => text.replace('_', "").parse().ok().map(OptVal::Int),
            };
            let value = value.unwrap_or_else(|| panic!("`{kind}.{}`: default `{text}`", opt.name));
            assert!(
                range.contains(&value),
                "`{kind}.{}`: default {text} outside {}",
                opt.name,
                range.describe()
            );
        }
    }

    /// Whether `option` belongs to the sink kind `kind` (the `otlp` source
    /// and sink share a name).
    fn is_sink_option(kind: &str, option: &str) -> bool {
        crate::lang::components::kind(kind, crate::lang::components::Role::Sink)
            .is_some_and(|k| k.options.iter().any(|o| o.name == option))
    }

    /// A pipeline that sets `option` of a component of `kind` to `value`,
    /// with the kind's required options (and multiline on, so its limits
    /// reach the configuration).
    fn pipeline(kind: &str, option: &str, value: &str) -> String {
        let set = format!("{option} = {value}");
        let files = "include = [\"/nonexistent-shipd-test/*.log\"], multiline.start = /^\\S/";
        let (source, sink, settings) = match kind {
            "settings" => (format!("files {{ {files} }}"), "console {}".to_owned(), set),
            "openobserve" | "otlp" | "elasticsearch" if is_sink_option(kind, option) => {
                // Room for any segment size, unless max_size is the option.
                let max = if option == "buffer.max_size" {
                    ""
                } else {
                    "buffer.max_size = 64GiB,"
                };
                (
                    format!("files {{ {files} }}"),
                    format!("{kind} {{ url = \"http://127.0.0.1:9\", {max} {set} }}"),
                    String::new(),
                )
            }
            "files" => (
                format!("files {{ {files}, {set} }}"),
                "console {}".to_owned(),
                String::new(),
            ),
            "docker" | "cri" => (
                format!("{kind} {{ multiline.start = /^\\S/, {set} }}"),
                "console {}".to_owned(),
                String::new(),
            ),
            "exec" => (
                format!("exec {{ command = [\"true\"], {set} }}"),
                "console {}".to_owned(),
                String::new(),
            ),
            "prometheus_scrape" => (
                format!("prometheus_scrape {{ urls = [\"http://127.0.0.1:9/metrics\"], {set} }}"),
                "console {}".to_owned(),
                String::new(),
            ),
            "syslog" => (
                format!("syslog {{ listen = [\"udp://127.0.0.1:0\"], {set} }}"),
                "console {}".to_owned(),
                String::new(),
            ),
            other => (
                format!("{other} {{ {set} }}"),
                "console {}".to_owned(),
                String::new(),
            ),
        };
        format!(
            "settings {{ {settings} }}\nsource s = {source}\nsink out = {sink}\nroute {{ else => out }}\n"
        )
    }

    /// A value inside `range`, written as a literal of the language.
    fn inside(range: OptRange, at: f64) -> String {
        let pick = |lo: u64, hi: u64| lo + ((hi - lo) as f64 * at) as u64;
        match range {
            OptRange::Int { min, max } => (min + ((max - min) as f64 * at) as i64).to_string(),
            OptRange::Size { min, max } => format!("{}B", pick(min, max)),
            OptRange::Duration { min, max } => {
                format!("{}ms", pick(min.as_millis() as u64, max.as_millis() as u64))
            }
        }
    }

    /// Any value: numbers and literals of every unit, in range or far out,
    /// negative, and text as an environment variable would hold it.
    fn any_value() -> impl Strategy<Value = String> {
        let units = prop::sample::select(vec![
            "", "ms", "s", "m", "h", "d", "B", "KiB", "MiB", "GiB", "KB", "MB", "GB",
        ]);
        prop_oneof![
            any::<i64>().prop_map(|n| n.to_string()),
            (0u64..=u64::MAX, units.clone()).prop_map(|(n, u)| format!("{n}{u}")),
            (0u64..100_000, units.clone()).prop_map(|(n, u)| format!("{n}{u}")),
            (0u64..100_000, units).prop_map(|(n, u)| format!("\"{n}{u}\"")),
            "[-0-9a-zA-Z. _]{0,16}".prop_map(|t| format!("{t:?}")),
            any::<f64>().prop_map(|f| format!("{f:?}")),
            Just("null".to_owned()),
            Just("true".to_owned()),
            Just("[1, 2]".to_owned()),
        ]
    }

    /// What the runtime does with the configuration's numbers, none of
    /// which may panic: timers, deadlines, backoff, spill sizes.
    fn assert_runnable(agent: &AgentConfig) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let _guard = rt.enter();
        let now = std::time::Instant::now();
        let mut timers = vec![agent.checkpoint_interval, agent.checkpoint_disk_interval];
        let mut deadlines = vec![agent.drain_timeout];
        let mut sizes = vec![agent.channel_bytes];
        for source in &agent.sources {
            match source {
                SourceConfig::File(f) => {
                    deadlines.extend([f.poll_interval, f.glob_interval, f.rotate_wait]);
                    sizes.push(f.max_line_bytes);
                    if let Some(m) = &f.multiline {
                        deadlines.push(m.timeout);
                        sizes.extend([m.max_lines, m.max_bytes]);
                    }
                }
                SourceConfig::HostMetrics(h) => timers.push(h.interval),
                SourceConfig::LogMetrics(m) => timers.push(m.interval),
                SourceConfig::PrometheusScrape(p) => {
                    timers.push(p.interval);
                    deadlines.push(p.timeout);
                }
                SourceConfig::Otlp(o) => {
                    deadlines.extend([o.accept_timeout, o.retry_after]);
                    sizes.push(o.max_message_bytes);
                }
                SourceConfig::Exec(e) => {
                    timers.push(e.interval);
                    deadlines.push(e.timeout);
                    sizes.push(e.max_output_bytes);
                }
                SourceConfig::Forward(f) => {
                    sizes.extend([f.max_message_bytes, f.max_memory, f.max_connections])
                }
                SourceConfig::Syslog(s) => sizes.extend([s.max_message_bytes, s.max_connections]),
                SourceConfig::Journald(_) => {}
            }
        }
        for sink in &agent.sinks {
            let shipping = match sink {
                SinkConfig::OpenObserve(o) => Some(&o.sink),
                SinkConfig::Otlp(o) => Some(&**o),
                SinkConfig::Elasticsearch(o) => Some(&o.sink),
                SinkConfig::Console { .. } => None,
            };
            if let Some(o) = shipping {
                sizes.extend([o.batch.max_events, o.batch.max_bytes, o.in_flight]);
                deadlines.extend([o.batch.timeout, o.request_timeout, o.buffer.sync_interval]);
                let mut backoff = crate::sinks::retry::Backoff::new(o.retry);
                for _ in 0..20 {
                    deadlines.push(backoff.next_delay());
                }
                deadlines.push(backoff.auth_delay());
                let spill = o.buffer.normalized();
                assert!(spill.segment_bytes <= spill.max_bytes / 4);
            }
        }
        for d in timers {
            assert!(!d.is_zero());
            drop(tokio::time::interval(d));
            deadlines.push(d);
        }
        for d in deadlines {
            assert!(now.checked_add(d).is_some(), "{d:?}");
            drop(tokio::time::sleep(d));
        }
        assert!(sizes.iter().all(|n| *n >= 1), "{sizes:?}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn any_value_of_a_numeric_option_loads_or_is_refused(
            pick in any::<prop::sample::Index>(),
            value in any_value(),
        ) {
            let options = ranged();
            let (kind, opt, range) = options[pick.index(options.len())];
            let src = pipeline(kind, opt.name, &value);
            match crate::lang::load(&src) {
                Ok(program) => assert_runnable(&program.agent),
                Err(diagnostics) => {
                    let text = crate::lang::render("p.ship", &src, &diagnostics);
                    // A number out of range is refused with its range.
                    prop_assert!(
                        !text.contains("outside its range") || text.contains(&range.describe()),
                        "{text}"
                    );
                }
            }
        }

        #[test]
        fn every_value_inside_a_range_is_accepted_and_runnable(
            pick in any::<prop::sample::Index>(),
            at in 0.0f64..=1.0,
        ) {
            let options = ranged();
            let (kind, opt, range) = options[pick.index(options.len())];
            let src = pipeline(kind, opt.name, &inside(range, at));
            match crate::lang::load(&src) {
                Ok(program) => assert_runnable(&program.agent),
                Err(d) => prop_assert!(false, "{}", crate::lang::render("p.ship", &src, &d)),
            }
        }
    }

    #[test]
    fn both_ends_of_every_range_are_accepted_and_one_past_them_refused() {
        for (kind, opt, range) in ranged() {
            for at in [0.0, 1.0] {
                let src = pipeline(kind, opt.name, &inside(range, at));
                if let Err(d) = crate::lang::load(&src) {
                    panic!("{}", crate::lang::render("p.ship", &src, &d));
                }
            }
            let past = match range {
                OptRange::Int { min, max } => vec![(min - 1).to_string(), (max + 1).to_string()],
                OptRange::Size { min, max } => {
                    let mut v = vec![format!("{}B", max + 1)];
                    if min > 0 {
                        v.push(format!("{}B", min - 1));
                    }
                    v
                }
                OptRange::Duration { min, max } => {
                    let mut v = vec![format!("{}ms", max.as_millis() + 1)];
                    if !min.is_zero() {
                        v.push(format!("{}ms", min.as_millis() - 1));
                    }
                    v
                }
            };
            for value in past {
                let src = pipeline(kind, opt.name, &value);
                let d = crate::lang::load(&src).expect_err(&src);
                let text = crate::lang::render("p.ship", &src, &d);
                assert!(
                    text.contains(&format!("option `{}` is ", opt.name))
                        && text.contains(&format!("outside its range {}", range.describe())),
                    "{text}"
                );
            }
        }
    }
}
