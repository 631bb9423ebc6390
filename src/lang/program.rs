//! Loading a `.ship` file: parse, check and compile every item into a
//! runnable [`Program`] — the agent configuration (sources, sinks, settings),
//! the compiled steps and routes, and the file's tests — or every diagnostic.

use super::ast::{self, Expr, ExprKind, Item, Lit, OnError, RuleKind};
use super::compile::{Compiler, Scope, SourceFile};
use super::components::{self, OptVal, Options, Role};
use super::connection_options;
use super::diagnostics::{suggest, Diagnostic, Span};
use super::environment::Environment;
use super::eval::{CExpr, CStmt, Place};
use super::multiline_options;
use super::sink_options;
use crate::config::{AgentConfig, SinkConfig, SourceConfig};
use crate::event::{Event, LogRecord, MetricKind, MetricPoint, Resource, Value};
use crate::pipeline::processor::{Processor, Step};
use crate::pipeline::router::{normalize_stream_name, Router, Rule, StreamSpec};
use crate::sources::containers;
use crate::sources::exec::{ExecConfig, ExecFormat};
use crate::sources::file::{FileSourceConfig, LogFormat, ReadFrom};
use crate::sources::forward::ForwardSourceConfig;
use crate::sources::host_metrics::{HostMetricsConfig, Levels};
use crate::sources::journald::{available, JournaldSourceConfig};
use crate::sources::log_metrics::{LogMetricsConfig, MetricStore};
use crate::sources::otlp::OtlpReceiverConfig;
use crate::sources::prometheus::PrometheusScrapeConfig;
use crate::sources::syslog::{Listen, SyslogSourceConfig};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// A loaded pipeline.
#[derive(Debug)]
pub struct Program {
    pub agent: AgentConfig,
    pub tests: Vec<TestCase>,
    /// Names of the enabled sinks, by index in `agent.sinks`.
    pub sink_names: Vec<String>,
    /// Source names and kinds, in declaration order.
    pub sources: Vec<(String, String)>,
    /// Step names and the sources they apply to.
    pub steps: Vec<(String, Vec<String>)>,
    /// Route rules as written, for `shipctl explain`.
    pub routes: Vec<String>,
    /// What `check` reports without refusing the file.
    pub warnings: Vec<Diagnostic>,
    /// The series stores of the `log_metrics` sources (the tests read them).
    pub log_metrics: Vec<Arc<MetricStore>>,
}

/// One `test` block, compiled.
#[derive(Debug)]
pub struct TestCase {
    pub name: String,
    /// The test's own environment variables (`env { ... }`).
    pub env: Vec<(String, String)>,
    pub inputs: Vec<(String, Event)>,
    pub expects: Vec<Expectation>,
    pub span: Span,
}

#[derive(Debug)]
pub enum Expectation {
    Condition(CExpr, String),
    Route {
        sink: String,
        stream: Option<String>,
    },
    Dropped,
    /// A step failed, with an error containing this text when given.
    Failed(Option<String>),
    /// After every input, the series of `name` with exactly `labels` has
    /// this value (`NAME_count`, `NAME_sum` and `NAME_bucket` with an `le`
    /// label read a histogram the way OpenObserve stores it).
    Metric {
        name: String,
        labels: Vec<(String, String)>,
        want: f64,
        text: String,
    },
}

struct Names {
    seen: HashMap<String, (&'static str, Span)>,
}

impl Names {
    fn declare(&mut self, c: &mut Compiler, what: &'static str, name: &ast::Ident, src: &str) {
        if let Some((kind, first)) = self.seen.get(&name.name) {
            let (line, _) = super::diagnostics::line_col(src, first.start);
            c.diagnostics.push(
                Diagnostic::new(name.span, format!("duplicate name `{}`", name.name))
                    .hint(format!("a {kind} of that name is declared on line {line}; names of sources, steps and sinks must be unique")),
            );
            return;
        }
        self.seen.insert(name.name.clone(), (what, name.span));
    }
}

/// Where the RAM journal goes when no `runtime_dir` is set: systemd's
/// `$RUNTIME_DIRECTORY` (tmpfs under /run), else a directory in /dev/shm
/// named after the data directory, so agents with different data
/// directories never share one.
fn default_runtime_dir(env: &Environment, data_dir: &std::path::Path) -> PathBuf {
    if let Some(dir) = env.get("RUNTIME_DIRECTORY") {
        return PathBuf::from(dir).join("journal");
    }
    // FNV-1a: stable across runs and versions, unlike std's hasher.
    let id = data_dir
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
        });
    PathBuf::from(format!("/dev/shm/shipd-{id:016x}"))
}

/// Loads pipeline text in the process environment; `Err` holds every
/// diagnostic. Run-time errors name the file `pipeline`; [`load_file`]
/// names it.
pub fn load(src: &str) -> Result<Program, Vec<Diagnostic>> {
    load_named("pipeline", src, Environment::Process)
}

/// Loads pipeline text reading `env` for `env("X")` and the settings'
/// environment fallbacks; `Err` holds every diagnostic.
pub fn load_in(src: &str, env: Environment) -> Result<Program, Vec<Diagnostic>> {
    load_named("pipeline", src, env)
}

/// Loads the text of pipeline file `name` in the process environment;
/// run-time errors of its steps carry `name:line:col`.
pub fn load_file(name: &str, src: &str) -> Result<Program, Vec<Diagnostic>> {
    load_named(name, src, Environment::Process)
}

/// Loads the text of pipeline file `name`, reading `env`.
pub fn load_named(name: &str, src: &str, env: Environment) -> Result<Program, Vec<Diagnostic>> {
    let (file, parse_errors) = super::parse::parse(src);
    let source_file = SourceFile {
        name: Arc::from(name),
        text: Arc::from(src),
    };
    let mut c = Compiler {
        diagnostics: parse_errors,
        env,
        file: Some(source_file.clone()),
        ..Compiler::default()
    };
    let mut warnings = Vec::new();
    let mut names = Names {
        seen: HashMap::new(),
    };
    let items = &file.items;

    let source_decls: Vec<&ast::Component> = items
        .iter()
        .filter_map(|i| {
            if let Item::Source(s) = i {
                Some(s)
            } else {
                None
            }
        })
        .collect();
    let sink_decls: Vec<&ast::Component> = items
        .iter()
        .filter_map(|i| if let Item::Sink(s) = i { Some(s) } else { None })
        .collect();
    let step_decls: Vec<&ast::Step> = items
        .iter()
        .filter_map(|i| if let Item::Step(s) = i { Some(s) } else { None })
        .collect();
    for s in &source_decls {
        names.declare(&mut c, "source", &s.name, src);
    }
    for s in &step_decls {
        names.declare(&mut c, "step", &s.name, src);
    }
    for s in &sink_decls {
        names.declare(&mut c, "sink", &s.name, src);
    }
    let source_names: Vec<String> = source_decls.iter().map(|s| s.name.name.clone()).collect();

    // top-level `let`s, in file order, before anything that may use them
    for item in items {
        if let Item::Let { name, value, .. } = item {
            c.global(name, value, &source_names);
        }
    }

    // settings
    let settings_spec = components::kind("settings", Role::Settings);
    let mut settings = Options::default();
    let mut settings_seen = false;
    for item in items {
        if let Item::Settings(opts, span) = item {
            if settings_seen {
                c.diagnostics.push(
                    Diagnostic::new(*span, "only one `settings` block is allowed")
                        .hint("merge the blocks"),
                );
                continue;
            }
            settings_seen = true;
            if let Some(spec) = settings_spec {
                settings = components::evaluate(&mut c, spec, opts, *span);
            }
        }
    }
    let host_name = settings
        .str("hostname")
        .or_else(|| c.env.get("SHIPD_HOSTNAME"))
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());

    // sources
    let mut sources = Vec::new();
    for decl in &source_decls {
        let Some(spec) = components::kind_of(&mut c, decl, Role::Source) else {
            continue;
        };
        let opts = components::evaluate(&mut c, spec, &decl.options, decl.span);
        if spec.name == "log_metrics" {
            // Steps record into its store even when the source is left out.
            let metrics = log_metrics_source(&decl.name.name, &host_name, &opts);
            c.log_metrics.push(Arc::clone(&metrics.store));
            if opts.bool("enabled") != Some(false) {
                sources.push(SourceConfig::LogMetrics(metrics));
            }
            continue;
        }
        if opts.bool("enabled") == Some(false) {
            continue;
        }
        if let Some(s) = build_source(&mut c, spec.name, &decl.name.name, &opts, decl.span) {
            sources.push(s);
        }
    }

    // sinks: only enabled ones run; `a or b` routes fall through to enabled ones
    let mut sinks = Vec::new();
    let mut sink_names = Vec::new();
    let mut sink_streams: HashMap<String, String> = HashMap::new();
    let mut disabled = Vec::new();
    for decl in &sink_decls {
        let Some(spec) = components::kind_of(&mut c, decl, Role::Sink) else {
            continue;
        };
        let opts = components::evaluate(&mut c, spec, &decl.options, decl.span);
        if opts.bool("enabled") == Some(false) {
            disabled.push(decl.name.name.clone());
            continue;
        }
        let name = decl.name.name.clone();
        let (sink, stream) = match spec.name {
            "openobserve" => {
                let Some(o2) =
                    sink_options::openobserve(&mut c, &name, &opts, &decl.options, decl.span)
                else {
                    continue;
                };
                (
                    SinkConfig::OpenObserve(Box::new(o2)),
                    opts.str("stream").unwrap_or_else(|| "default".into()),
                )
            }
            "otlp" => {
                let Some(otlp) = sink_options::otlp(&mut c, &name, &opts, &decl.options, decl.span)
                else {
                    continue;
                };
                (
                    SinkConfig::Otlp(Box::new(otlp)),
                    opts.str("stream").unwrap_or_else(|| "default".into()),
                )
            }
            "elasticsearch" => {
                let Some(es) =
                    sink_options::elasticsearch(&mut c, &name, &opts, &decl.options, decl.span)
                else {
                    continue;
                };
                (
                    SinkConfig::Elasticsearch(Box::new(es)),
                    opts.str("stream").unwrap_or_else(|| "default".into()),
                )
            }
            _ => (
                SinkConfig::Console { name: name.clone() },
                "console".to_owned(),
            ),
        };
        sink_streams.insert(name.clone(), stream);
        sinks.push(sink);
        sink_names.push(name);
    }
    let declared_sinks: Vec<String> = sink_decls.iter().map(|s| s.name.name.clone()).collect();

    // steps
    let mut steps = Vec::new();
    // Steps that may fail and abort the event (no `on_error`).
    let mut failable_steps: Vec<ast::Ident> = Vec::new();
    for decl in &step_decls {
        for s in &decl.sources {
            if !source_names.contains(&s.name) {
                let hint = suggest(&s.name, source_names.iter().map(String::as_str), || {
                    "declare it with `source NAME = KIND { ... }`".into()
                });
                c.diagnostics.push(
                    Diagnostic::new(s.span, format!("unknown source `{}`", s.name)).hint(hint),
                );
            }
        }
        let scope = Scope {
            sources: &source_names,
            step_handles_errors: decl.on_error.is_some(),
            paths: true,
            records: true,
        };
        c.begin_step();
        let condition = decl
            .condition
            .as_ref()
            .map(|e| c.condition(e, &scope, false));
        if let Some(e) = &decl.condition {
            c.assume(e, true);
        }
        // Statements compile one by one to learn which may fail: a step
        // needs a copy of the event (to undo on failure) only when something
        // may fail after a change was made.
        let mut body = Vec::with_capacity(decl.body.len());
        let mut snapshot = condition
            .as_ref()
            .is_some_and(|t| t.may_fail && t.expr.has_effects());
        let mut may_fail = condition.as_ref().is_some_and(|t| t.may_fail);
        for stmt in &decl.body {
            let (mut compiled, _, fails) = c.block(std::slice::from_ref(stmt), &scope, false);
            snapshot |= fails && (!body.is_empty() || compiled.iter().any(CStmt::has_effects));
            may_fail |= fails;
            body.append(&mut compiled);
        }
        if may_fail && decl.on_error.is_none() {
            failable_steps.push(decl.name.clone());
        }
        c.end_step();
        steps.push(Step {
            name: decl.name.name.clone(),
            sources: decl.sources.iter().map(|s| s.name.clone()).collect(),
            condition: condition.map(|t| t.expr),
            on_error: decl.on_error.map(|(p, _)| p).unwrap_or(OnError::Abort),
            body,
            snapshot,
            origin: source_file.origin(decl.name.span),
        });
    }

    // routes
    let route_blocks: Vec<(&Vec<ast::Rule>, Span)> = items
        .iter()
        .filter_map(|i| {
            if let Item::Route(r, s) = i {
                Some((r, *s))
            } else {
                None
            }
        })
        .collect();
    let mut rules = Vec::new();
    let mut dead_letter = None;
    let mut route_texts = Vec::new();
    match route_blocks.as_slice() {
        [] => c.diagnostics.push(
            Diagnostic::new(
                Span::new(src.len(), src.len()),
                "the pipeline has no `route` block",
            )
            .hint("add `route { else => SINK }` so every event has a destination"),
        ),
        [(block, span), rest @ ..] => {
            for (_, extra) in rest {
                c.diagnostics.push(
                    Diagnostic::new(*extra, "only one `route` block is allowed")
                        .hint("merge the rules into the first block, in order"),
                );
            }
            let scope = Scope {
                sources: &source_names,
                step_handles_errors: false,
                paths: true,
                records: false,
            };
            let mut closed_at: Option<Span> = None;
            let mut has_else = false;
            for rule in block.iter() {
                if let Some(at) = closed_at {
                    if !matches!(rule.kind, RuleKind::DeadLetter) {
                        let (line, _) = super::diagnostics::line_col(src, at.start);
                        c.diagnostics.push(
                            Diagnostic::new(rule.span, "unreachable route")
                                .hint(format!("the rule on line {line} matches every event; move this one above it")),
                        );
                        continue;
                    }
                }
                let mut target = None;
                for s in &rule.sinks {
                    if !declared_sinks.contains(&s.name) {
                        let hint =
                            suggest(&s.name, declared_sinks.iter().map(String::as_str), || {
                                "declare it with `sink NAME = KIND { ... }`".into()
                            });
                        c.diagnostics.push(
                            Diagnostic::new(
                                s.span,
                                format!("route to undeclared sink `{}`", s.name),
                            )
                            .hint(hint),
                        );
                    } else if target.is_none() && !disabled.contains(&s.name) {
                        target = sink_names
                            .iter()
                            .position(|n| *n == s.name)
                            .map(|i| (i, s.name.clone()));
                    }
                }
                c.begin_step();
                if let RuleKind::When(e) = &rule.kind {
                    c.assume(e, true);
                }
                let stream = match &rule.stream {
                    Some(Expr {
                        kind: ExprKind::Lit(Lit::Str(s)),
                        ..
                    }) => Some(StreamSpec::Fixed(Arc::from(normalize_stream_name(s)))),
                    Some(e) => {
                        let t = c.expr(e, &scope, true);
                        Some(StreamSpec::Computed(t.expr))
                    }
                    None => None,
                };
                c.begin_step();
                let condition = match &rule.kind {
                    RuleKind::When(e) => {
                        let t = c.condition(e, &scope, false);
                        if matches!(t.expr, CExpr::Boolean(_)) {
                            // a failed rule cannot fail its event: it must not need a run-time check
                            c.diagnostics.push(
                                Diagnostic::new(e.span, "a route condition must be known to be a boolean")
                                    .hint("compare it, e.g. `.flag == true` or `exists(.x)`; there is no truthiness"),
                            );
                        }
                        if matches!(e.kind, ExprKind::Lit(Lit::Bool(true))) {
                            closed_at = Some(rule.span);
                        }
                        Some(t.expr)
                    }
                    RuleKind::Else => {
                        closed_at = Some(rule.span);
                        has_else = true;
                        None
                    }
                    RuleKind::DeadLetter => None,
                };
                let Some((sink, sink_name)) = target else {
                    if matches!(rule.kind, RuleKind::Else)
                        && rule.sinks.iter().all(|s| declared_sinks.contains(&s.name))
                    {
                        c.diagnostics.push(
                            Diagnostic::new(
                                rule.span,
                                "every sink of the `else` route is disabled",
                            )
                            .hint("add an always-enabled fallback, e.g. `else => o2 or console`"),
                        );
                    }
                    continue;
                };
                let stream = stream.unwrap_or_else(|| {
                    StreamSpec::Fixed(Arc::from(normalize_stream_name(
                        sink_streams
                            .get(&sink_name)
                            .map(String::as_str)
                            .unwrap_or("default"),
                    )))
                });
                route_texts.push(format!(
                    "{} => {sink_name}{}",
                    match &rule.kind {
                        RuleKind::When(_) => src
                            .get(rule.span.start..rule.span.end)
                            .unwrap_or("")
                            .split("=>")
                            .next()
                            .unwrap_or("")
                            .trim()
                            .to_owned(),
                        RuleKind::Else => "else".into(),
                        RuleKind::DeadLetter => "dead_letter".into(),
                    },
                    match &stream {
                        StreamSpec::Fixed(s) => format!(" stream \"{s}\""),
                        StreamSpec::Computed(_) => format!(
                            " stream {}",
                            rule.stream
                                .as_ref()
                                .and_then(|e| src.get(e.span.start..e.span.end))
                                .unwrap_or("?")
                        ),
                    }
                ));
                let compiled = Rule {
                    condition,
                    sink,
                    stream,
                };
                if matches!(rule.kind, RuleKind::DeadLetter) {
                    dead_letter = Some(compiled);
                } else {
                    rules.push(compiled);
                }
            }
            if !has_else {
                c.diagnostics.push(
                    Diagnostic::new(*span, "the route block has no `else` rule").hint(
                        "add `else => SINK` as the last rule so no event disappears unrouted",
                    ),
                );
            }
        }
    }

    if dead_letter.is_none() {
        warnings.extend(
            failable_steps
                .iter()
                .map(super::check_warnings::failable_without_dead_letter),
        );
    }

    // tests
    let mut tests = Vec::new();
    for item in items {
        let Item::Test(t) = item else { continue };
        tests.push(compile_test(
            &mut c,
            t,
            &source_names,
            &sources,
            &declared_sinks,
            src,
        ));
    }

    if !c.diagnostics.is_empty() {
        let mut d = c.diagnostics;
        d.sort_by_key(|d| d.span.start);
        return Err(d);
    }

    let api_addr = match settings
        .str("api_addr")
        .or_else(|| c.env.get("SHIPD_API_ADDR"))
    {
        Some(a) if a == "off" => None,
        Some(a) => match a.parse::<SocketAddr>() {
            Ok(addr) => Some(addr),
            Err(_) => {
                let origin = match settings.span("api_addr") {
                    Some(_) => settings.origin(&c.env, "api_addr"),
                    None => " (from SHIPD_API_ADDR)".to_owned(),
                };
                return Err(vec![Diagnostic::new(
                    settings.span("api_addr").unwrap_or_default(),
                    format!("`api_addr`{origin} is not an address like 127.0.0.1:9717"),
                )
                .hint("or \"off\" to disable the API")]);
            }
        },
        None => Some(SocketAddr::from(([127, 0, 0, 1], 9717))),
    };
    let max_streams = settings.count("max_streams").unwrap_or(100);
    let overflow = settings
        .str("overflow_stream")
        .unwrap_or_else(|| "overflow".into());
    let processor = Processor::new(
        steps,
        Router::new(rules, dead_letter, max_streams, &overflow),
    );
    let data_dir: PathBuf = settings
        .str("data_dir")
        .or_else(|| c.env.get("SHIPD_DATA_DIR"))
        .map(PathBuf::from)
        .unwrap_or_else(|| "/var/lib/shipd".into());
    let runtime_dir = match settings
        .str("runtime_dir")
        .or_else(|| c.env.get("SHIPD_RUNTIME_DIR"))
    {
        Some(s) if s == "off" => None,
        Some(s) => Some(PathBuf::from(s)),
        None => Some(default_runtime_dir(&c.env, &data_dir)),
    };
    let agent = AgentConfig {
        data_dir,
        runtime_dir,
        api_addr,
        control_socket: match settings
            .str("control_socket")
            .or_else(|| c.env.get("SHIPD_CONTROL_SOCKET"))
        {
            Some(s) if s == "off" => None,
            Some(s) => Some(PathBuf::from(s)),
            None => Some(PathBuf::from("/run/shipd/control.sock")),
        },
        // Positions reach the RAM copy within this of their acknowledgement
        // (writes coalesced): RAM writes cost no flash.
        checkpoint_interval: settings
            .duration("checkpoint_interval")
            .unwrap_or(std::time::Duration::from_millis(250)),
        // Each disk write may cost one or two 4 KiB pages of flash (the data
        // page, and the inode's new mtime): at most 5 writes per 10 minutes,
        // whatever the kernel's writeback does.
        checkpoint_disk_interval: settings
            .duration("checkpoint_disk_interval")
            .unwrap_or(std::time::Duration::from_secs(120)),
        drain_timeout: settings
            .duration("drain_timeout")
            .unwrap_or(std::time::Duration::from_secs(10)),
        channel_bytes: settings
            .bytes("channel_bytes")
            .unwrap_or(crate::memory::budgets().channel_bytes),
        host_name,
        sources,
        sinks,
        processor,
    };
    Ok(Program {
        agent,
        tests,
        sink_names,
        sources: source_decls
            .iter()
            .map(|s| (s.name.name.clone(), s.kind.name.clone()))
            .collect(),
        steps: step_decls
            .iter()
            .map(|s| {
                (
                    s.name.name.clone(),
                    s.sources.iter().map(|i| i.name.clone()).collect(),
                )
            })
            .collect(),
        routes: route_texts,
        warnings,
        log_metrics: c.log_metrics,
    })
}

/// A `log_metrics` source from its options.
fn log_metrics_source(name: &str, host_name: &str, opts: &Options) -> LogMetricsConfig {
    let max_series = opts
        .count("max_series")
        .unwrap_or(LogMetricsConfig::DEFAULT_MAX_SERIES);
    let mut m = LogMetricsConfig::new(name, host_name, max_series);
    if let Some(d) = opts.duration("every") {
        m.interval = d;
    }
    m
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        _ => None,
    }
}

/// The options the files, docker and cri sources share: `read_from`,
/// `max_open_files`.
fn with_shared_file_options(mut f: FileSourceConfig, opts: &Options) -> Option<SourceConfig> {
    if let Some(r) = read_from(opts) {
        f.read_from = r;
    }
    if let Some(n) = opts.count("max_open_files") {
        f.max_open_files = n;
    }
    Some(SourceConfig::File(f))
}

fn read_from(opts: &Options) -> Option<ReadFrom> {
    opts.str("read_from").map(|r| {
        if r == "beginning" {
            ReadFrom::Beginning
        } else {
            ReadFrom::End
        }
    })
}

/// Maps evaluated options of a source kind onto its configuration.
fn build_source(
    c: &mut Compiler,
    kind: &str,
    name: &str,
    opts: &Options,
    at: Span,
) -> Option<SourceConfig> {
    match kind {
        "journald" => {
            if opts.bool("only_when_available") == Some(true)
                && opts.str("directory").is_none()
                && !available::system_journal_available()
            {
                return None;
            }
            let mut j = JournaldSourceConfig::new(name);
            if let Some(dir) = opts.str("directory") {
                if !std::path::Path::new(&dir).is_dir() {
                    c.diagnostics.push(
                        Diagnostic::new(opts.span("directory").unwrap_or(at), "option `directory` is not a directory")
                            .hint("point it at a directory of journal files, or leave it out for the system journal"),
                    );
                    return None;
                }
                j.directory = Some(PathBuf::from(dir));
            }
            j.files = opts
                .strings("files")
                .unwrap_or_default()
                .into_iter()
                .map(PathBuf::from)
                .collect();
            j.include_units = opts.strings("units").unwrap_or_default();
            j.exclude_units = opts.strings("exclude_units").unwrap_or_default();
            for unit in &j.exclude_units {
                if glob::Pattern::new(unit).is_err() {
                    c.diagnostics.push(
                        Diagnostic::new(
                            opts.span("exclude_units").unwrap_or(at),
                            "option `exclude_units` holds an invalid glob",
                        )
                        .hint("globs use * ? and [...]"),
                    );
                }
            }
            j.matches = opts.strings("matches").unwrap_or_default();
            j.current_boot_only = opts.bool("current_boot_only").unwrap_or(false);
            if let Some(r) = read_from(opts) {
                j.read_from = r;
            }
            if let Some(p) = opts.str("journalctl") {
                j.journalctl = PathBuf::from(p);
            }
            Some(SourceConfig::Journald(j))
        }
        "files" => {
            let mut f = FileSourceConfig::new(name, opts.strings("include")?);
            f.exclude = opts.strings("exclude").unwrap_or_default();
            for pattern in f.include.iter().chain(&f.exclude) {
                if glob::Pattern::new(pattern).is_err() {
                    c.diagnostics.push(
                        Diagnostic::new(at, "a glob of `include` or `exclude` is invalid")
                            .hint("globs use * ? ** and [...]"),
                    );
                }
            }
            if let Some(n) = opts.bytes("max_line_bytes") {
                f.max_line_bytes = n;
            }
            if let Some(d) = opts.duration("poll_interval") {
                f.poll_interval = d;
            }
            if let Some(d) = opts.duration("glob_interval") {
                f.glob_interval = d;
            }
            if let Some(d) = opts.duration("rotate_wait") {
                f.rotate_wait = d;
            }
            f.read_compressed = opts.bool("read_compressed").unwrap_or(false);
            f.format = match opts.str("format").as_deref() {
                Some("docker") => LogFormat::Docker,
                Some("cri") => LogFormat::Cri,
                _ => LogFormat::Plain,
            };
            f.multiline = multiline_options::multiline(c, opts, at);
            f.service_name = opts.str("service");
            with_shared_file_options(f, opts)
        }
        "host_metrics" => {
            let mut h = HostMetricsConfig::new(name);
            if let Some(d) = opts.duration("every") {
                h.interval = d;
            }
            if let Some(root) = opts.str("root") {
                h.root = PathBuf::from(root);
            }
            if let Some(v) = opts.strings("exclude_interfaces") {
                h.exclude_interfaces = v;
            }
            if let Some(v) = opts.strings("exclude_mount_points") {
                h.exclude_mount_points = v;
            }
            if let Some((OptVal::Map(m), span)) = opts.values.get("health") {
                for (check, levels) in m {
                    let pair = match levels {
                        Value::Array(a) if a.len() == 2 => match (number(&a[0]), number(&a[1])) {
                            (Some(w), Some(c)) if w <= c => Some(Levels::new(w, c)),
                            _ => None,
                        },
                        _ => None,
                    };
                    let slot = match check.as_str() {
                        "cpu" => &mut h.thresholds.cpu,
                        "memory" => &mut h.thresholds.memory,
                        "disk" => &mut h.thresholds.disk,
                        "load" => &mut h.thresholds.load,
                        "temperature" => &mut h.thresholds.temperature,
                        other => {
                            c.diagnostics.push(
                                Diagnostic::new(*span, format!("unknown health check `{other}`"))
                                    .hint("checks are cpu, memory, disk, load, temperature"),
                            );
                            continue;
                        }
                    };
                    match pair {
                        Some(l) => *slot = l,
                        None => c.diagnostics.push(
                            Diagnostic::new(*span, format!("health `{check}` needs [warning, critical] numbers with warning <= critical"))
                                .hint("e.g. cpu: [80, 95]"),
                        ),
                    }
                }
            }
            Some(SourceConfig::HostMetrics(h))
        }
        "prometheus_scrape" => {
            let mut p = PrometheusScrapeConfig::new(name, opts.strings("urls")?);
            for url in &p.urls {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    c.diagnostics.push(
                        Diagnostic::new(
                            opts.span("urls").unwrap_or(at),
                            "every scrape URL must start with http:// or https://",
                        )
                        .hint("e.g. \"http://127.0.0.1:9100/metrics\""),
                    );
                }
            }
            p.interval = opts.duration("every").unwrap_or(p.interval);
            p.timeout = opts.duration("timeout").unwrap_or(p.timeout);
            p.job = opts.str("job");
            p.honor_labels = opts.bool("honor_labels").unwrap_or(false);
            p.max_body_bytes = opts.bytes("max_body_bytes").unwrap_or(p.max_body_bytes);
            p.max_series = opts.count("max_series").unwrap_or(p.max_series);
            p.tls = connection_options::client_tls(c, opts, at);
            Some(SourceConfig::PrometheusScrape(p))
        }
        "exec" => {
            let mut e = ExecConfig::new(name, opts.strings("command")?);
            if e.command.is_empty() {
                c.diagnostics.push(
                    Diagnostic::new(
                        opts.span("command").unwrap_or(at),
                        "`command` names no program",
                    )
                    .hint("e.g. [\"vcgencmd\", \"measure_temp\"], or [\"sh\", \"-c\", \"...\"] for a shell"),
                );
            }
            e.interval = opts.duration("every").unwrap_or(e.interval);
            e.timeout = opts.duration("timeout").unwrap_or(e.timeout);
            e.max_output_bytes = opts.bytes("max_output_bytes").unwrap_or(e.max_output_bytes);
            if opts.str("format").as_deref() == Some("prometheus") {
                e.format = ExecFormat::Prometheus;
            }
            Some(SourceConfig::Exec(e))
        }
        "otlp" => {
            let mut r = OtlpReceiverConfig::new(name);
            for (option, slot) in [
                ("grpc_address", &mut r.grpc_address),
                ("http_address", &mut r.http_address),
            ] {
                let Some(text) = opts.str(option) else {
                    continue;
                };
                if text.trim() == "off" {
                    *slot = None;
                    continue;
                }
                match text.trim().parse() {
                    Ok(addr) => *slot = Some(addr),
                    Err(_) => c.diagnostics.push(
                        Diagnostic::new(
                            opts.span(option).unwrap_or(at),
                            format!(
                                "option `{option}`{} is not an address like 127.0.0.1:4318",
                                opts.origin(&c.env, option)
                            ),
                        )
                        .hint("IP:port, or \"off\" to disable this protocol"),
                    ),
                }
            }
            if r.grpc_address.is_none() && r.http_address.is_none() {
                c.diagnostics.push(
                    Diagnostic::new(at, "`otlp` with both protocols off receives nothing")
                        .hint("set `enabled = false` to leave the source out"),
                );
            }
            if let Some(n) = opts.bytes("max_message_bytes") {
                r.max_message_bytes = n;
            }
            if let Some(n) = opts.bytes("max_request_memory") {
                r.max_request_memory = n;
            }
            r.max_concurrent_requests = opts
                .count("max_concurrent_requests")
                .unwrap_or(r.max_concurrent_requests);
            r.max_connections = opts.count("max_connections").unwrap_or(r.max_connections);
            r.accept_timeout = opts.duration("accept_timeout").unwrap_or(r.accept_timeout);
            r.retry_after = opts.duration("retry_after").unwrap_or(r.retry_after);
            r.tls = connection_options::server_tls(c, opts, at);
            Some(SourceConfig::Otlp(r))
        }
        "forward" => {
            let mut f = ForwardSourceConfig::new(name);
            if let Some(text) = opts.str("address") {
                match text.trim().parse() {
                    Ok(addr) => f.address = addr,
                    Err(_) => c.diagnostics.push(
                        Diagnostic::new(
                            opts.span("address").unwrap_or(at),
                            format!(
                                "option `address`{} is not an address like 127.0.0.1:24224",
                                opts.origin(&c.env, "address")
                            ),
                        )
                        .hint("IP:port; 0.0.0.0:24224 listens on every interface"),
                    ),
                }
            }
            f.max_message_bytes = opts
                .bytes("max_message_bytes")
                .unwrap_or(f.max_message_bytes);
            f.max_memory = opts.bytes("max_memory").unwrap_or(f.max_memory);
            f.max_connections = opts.count("max_connections").unwrap_or(f.max_connections);
            f.shared_key = opts.str("shared_key").filter(|k| !k.is_empty());
            f.self_hostname = opts.str("self_hostname");
            Some(SourceConfig::Forward(f))
        }
        "syslog" => {
            let at_listen = opts.span("listen").unwrap_or(at);
            let mut listen = Vec::new();
            for text in opts.strings("listen")? {
                match Listen::parse(&text) {
                    Ok(l) => listen.push(l),
                    Err(e) => c.diagnostics.push(
                        Diagnostic::new(at_listen, format!("option `listen`{}: {e}", opts.origin(&c.env, "listen")))
                            .hint("e.g. [\"udp://0.0.0.0:514\", \"tcp://127.0.0.1:6514\", \"unix:///run/shipd/syslog.sock\"]"),
                    ),
                }
            }
            if listen.is_empty() {
                c.diagnostics.push(
                    Diagnostic::new(at_listen, "`syslog` with no address in `listen` receives nothing")
                        .hint("give at least one address, or set `enabled = false` to leave the source out"),
                );
                return None;
            }
            let mut s = SyslogSourceConfig::new(name, listen);
            s.max_message_bytes = opts
                .bytes("max_message_bytes")
                .unwrap_or(s.max_message_bytes);
            s.max_connections = opts.count("max_connections").unwrap_or(s.max_connections);
            Some(SourceConfig::Syslog(s))
        }
        "docker" => {
            let dir = opts
                .str("directory")
                .unwrap_or_else(|| "/var/lib/docker/containers".into());
            let mut f = containers::docker_source(name, std::path::Path::new(&dir));
            f.multiline = multiline_options::multiline(c, opts, at);
            with_shared_file_options(f, opts)
        }
        "cri" => {
            let dir = opts
                .str("directory")
                .unwrap_or_else(|| "/var/log/pods".into());
            let mut f = containers::cri_source(name, std::path::Path::new(&dir));
            f.multiline = multiline_options::multiline(c, opts, at);
            with_shared_file_options(f, opts)
        }
        _ => None,
    }
}

fn unknown_input_source(c: &mut Compiler, source: &ast::Ident, sources: &[String]) {
    let hint = suggest(&source.name, sources.iter().map(String::as_str), || {
        "inputs name a declared source".into()
    });
    c.diagnostics
        .push(Diagnostic::new(source.span, format!("unknown source `{}`", source.name)).hint(hint));
}

fn compile_test(
    c: &mut Compiler,
    t: &ast::Test,
    sources: &[String],
    configs: &[SourceConfig],
    sinks: &[String],
    src: &str,
) -> TestCase {
    let mut inputs = Vec::new();
    for input in &t.inputs {
        let (source, fields) = match input {
            ast::Input::Fields(source, fields) => (source, fields),
            ast::Input::Lines(source, lines, path) => {
                if !sources.contains(&source.name) {
                    unknown_input_source(c, source, sources);
                }
                let path = path.as_ref();
                for event in super::test_input::framed_events(c, source, lines, path, configs) {
                    inputs.push((source.name.clone(), event));
                }
                continue;
            }
        };
        if !sources.contains(&source.name) {
            unknown_input_source(c, source, sources);
        }
        // An input with `name` and `value` and no `message` is a metric point.
        let is_metric = fields.iter().any(|f| f.key.name == "name")
            && fields.iter().any(|f| f.key.name == "value")
            && !fields.iter().any(|f| f.key.name == "message");
        let mut event = if is_metric {
            Event::Metric(MetricPoint::new(
                "",
                "",
                MetricKind::Gauge,
                0.0,
                0,
                Arc::new(Resource::default()),
            ))
        } else {
            Event::Log(LogRecord::new(Value::Null, Arc::new(Resource::default())))
        };
        for opt in fields {
            match components::const_value(c, &opt.value) {
                Ok(v) => {
                    let place =
                        Place::resolve(&[ast::Segment::Field(opt.key.name.as_str().into())]);
                    let place = if opt.key.name.contains('.') {
                        Place::resolve(
                            &opt.key
                                .name
                                .split('.')
                                .map(|s| ast::Segment::Field(s.into()))
                                .collect::<Vec<_>>(),
                        )
                    } else {
                        place
                    };
                    if let Err(e) = super::eval::write(&mut event, &place, v) {
                        c.diagnostics.push(Diagnostic::new(
                            opt.value.span,
                            format!("input field `{}`: {}", opt.key.name, e.0),
                        ));
                    }
                }
                Err(msg) if msg.is_empty() => {}
                Err(msg) => c.diagnostics.push(Diagnostic::new(
                    opt.value.span,
                    format!("input field `{}`: {msg}", opt.key.name),
                )),
            }
        }
        inputs.push((source.name.clone(), event));
    }
    if t.inputs.is_empty() {
        c.diagnostics.push(
            Diagnostic::new(t.span, format!("test \"{}\" has no input", t.name))
                .hint("add `input SOURCE { message = \"...\" }`"),
        );
    }
    let scope = Scope {
        sources,
        step_handles_errors: true,
        paths: true,
        records: false,
    };
    let mut expects = Vec::new();
    for e in &t.expects {
        match e {
            ast::Expect::Conditions(conds) => {
                for cond in conds {
                    c.begin_step();
                    let compiled = c.condition(cond, &scope, true);
                    let text = src
                        .get(cond.span.start..cond.span.end)
                        .unwrap_or("")
                        .to_owned();
                    expects.push(Expectation::Condition(compiled.expr, text));
                }
            }
            ast::Expect::Route { sink, stream, span } => {
                if !sinks.contains(&sink.name) {
                    c.diagnostics.push(
                        Diagnostic::new(sink.span, format!("undeclared sink `{}`", sink.name))
                            .hint("expect a route to a declared sink"),
                    );
                }
                let stream = match stream.as_ref().map(|e| &e.kind) {
                    Some(ExprKind::Lit(Lit::Str(s))) => Some(normalize_stream_name(s)),
                    Some(_) => {
                        c.diagnostics.push(Diagnostic::new(
                            *span,
                            "the expected stream must be a string literal",
                        ));
                        None
                    }
                    None => None,
                };
                expects.push(Expectation::Route {
                    sink: sink.name.clone(),
                    stream,
                });
            }
            ast::Expect::Dropped(_) => expects.push(Expectation::Dropped),
            ast::Expect::Metric {
                name,
                labels,
                value,
                span,
            } => {
                if let Some(e) = super::metric_expect::compile(c, name, labels, value, *span, src) {
                    expects.push(e);
                }
            }
            ast::Expect::Failed(message, span) => {
                let message = match message.as_ref().map(|e| &e.kind) {
                    Some(ExprKind::Lit(Lit::Str(s))) => Some(s.clone()),
                    Some(_) => {
                        c.diagnostics.push(
                            Diagnostic::new(*span, "the expected failure must be a string literal")
                                .hint("write `expect failed \"part of the error\"`"),
                        );
                        None
                    }
                    None => None,
                };
                expects.push(Expectation::Failed(message));
            }
        }
    }
    let env = super::test_input::environment(c, &t.env);
    TestCase {
        name: t.name.clone(),
        env,
        inputs,
        expects,
        span: t.span,
    }
}
