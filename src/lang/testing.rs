//! Runs the `test` blocks of a pipeline: each input event goes through the
//! compiled steps and routes exactly as in the agent, then every expectation
//! is checked. A test sees only the environment it is given (`shipctl test
//! --env`) and declares (`env { ... }`): the pipeline is loaded again for a
//! test with its own variables. Used by `shipctl test`.

use super::diagnostics::{line_col, Diagnostic};
use super::environment::Environment;
use super::eval::{truthy, Ctx};
use super::program::{Expectation, Program, TestCase};
use crate::event::{format_rfc3339, Event, MetricPoint, Value};
use crate::pipeline::router::Route;

/// The result of one test.
#[derive(Debug)]
pub struct TestReport {
    pub name: String,
    pub failures: Vec<String>,
}

impl TestReport {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// What became of one input event.
enum Fate {
    Routed(Option<Route>),
    Dropped,
    /// A step failed with this error; the route is the `dead_letter` one.
    Failed(String, Option<Route>),
}

/// A value as a failure shows it: strings quoted, other types as they are.
fn shown(v: &Value) -> String {
    match v {
        Value::String(_) | Value::Bytes(_) => format!("{:?}", super::functions::stringify(v)),
        Value::Null => "null".into(),
        v => super::functions::stringify(v),
    }
}

/// `key=value` pairs.
fn pairs<'a>(items: impl Iterator<Item = (&'a str, &'a Value)>) -> String {
    items
        .map(|(k, v)| format!("{k}={}", shown(v)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The event as a failure shows it: time, severity, body, attributes,
/// resource and where it went.
fn describe(event: &Event, destination: &str) -> String {
    let mut parts = Vec::new();
    match event {
        Event::Log(log) => {
            if log.time_unix_nano != 0 {
                parts.push(format!(
                    "timestamp={}",
                    format_rfc3339(log.time_unix_nano as i64)
                ));
            }
            match (&log.severity_text, log.severity_number) {
                (Some(text), n) => parts.push(format!("severity={text:?} ({n})")),
                (None, 0) => {}
                (None, n) => parts.push(format!("severity=({n})")),
            }
            parts.push(format!("message={}", shown(&log.body)));
            if !log.attributes.is_empty() {
                parts.push(pairs(log.attributes.iter().map(|(k, v)| (k.as_ref(), v))));
            }
            if !log.resource.attributes.is_empty() {
                let resource = pairs(log.resource.attributes.iter().map(|(k, v)| (k.as_ref(), v)));
                parts.push(format!("resource {{ {resource} }}"));
            }
        }
        Event::Metric(m) => {
            parts.push(format!("{}={}", m.name, m.value));
            if !m.labels.is_empty() {
                parts.push(pairs(m.labels.iter().map(|(k, v)| (k.as_ref(), v))));
            }
        }
    }
    parts.push(format!("-> {destination}"));
    parts.join(" ")
}

fn destination(program: &Program, route: Option<&Route>) -> String {
    match route {
        Some(r) => format!(
            "{} stream \"{}\"",
            program.sink_names.get(r.sink).map_or("?", String::as_str),
            r.stream
        ),
        None => "no route".into(),
    }
}

/// Loads `src` in `env` and runs every test, each test in `env` plus its own
/// `env { ... }` variables. `Err` holds the diagnostics of a pipeline that
/// does not load.
pub fn run_source(src: &str, env: &Environment) -> Result<Vec<TestReport>, Vec<Diagnostic>> {
    let mut program = super::load_in(src, env.clone())?;
    let mut reports = Vec::with_capacity(program.tests.len());
    for index in 0..program.tests.len() {
        let test = &program.tests[index];
        if test.env.is_empty() {
            reports.push(run_test(&mut program, index));
            continue;
        }
        let name = test.name.clone();
        match super::load_in(src, env.with(&test.env)) {
            Ok(mut own) => reports.push(run_test(&mut own, index)),
            Err(diagnostics) => reports.push(TestReport {
                name,
                failures: diagnostics
                    .iter()
                    .map(|d| {
                        let (line, col) = line_col(src, d.span.start);
                        format!("in the test's environment the pipeline does not load: {line}:{col}: {}", d.message)
                    })
                    .collect(),
            }),
        }
    }
    Ok(reports)
}

/// Runs test number `index` of `program`.
fn run_test(program: &mut Program, index: usize) -> TestReport {
    for store in &program.log_metrics {
        store.clear();
    }
    let test: &TestCase = &program.tests[index];
    let expects_failure = test
        .expects
        .iter()
        .any(|e| matches!(e, Expectation::Failed(_)));
    let mut failures = Vec::new();
    for (source, input) in &test.inputs {
        let mut event = input.clone();
        let processor = &mut program.agent.processor;
        // A step or a route condition that fails sends the event to `dead_letter`.
        let ran = match processor.run_steps(&mut event, source) {
            Ok(true) => processor.router.route(&mut event, source).map(Some),
            Ok(false) => Ok(None),
            Err(e) => Err(e),
        };
        let fate = match ran {
            Ok(Some(route)) => Fate::Routed(route),
            Ok(None) => Fate::Dropped,
            Err(e) => {
                let route = processor.router.dead_letter(&mut event, source, &e);
                Fate::Failed(e, route)
            }
        };
        let route = match &fate {
            Fate::Routed(r) | Fate::Failed(_, r) => r.as_ref(),
            Fate::Dropped => None,
        };
        let dump = |event: &Event| {
            let to = match &fate {
                Fate::Dropped => "dropped".to_owned(),
                Fate::Failed(..) => format!("dead-lettered to {}", destination(program, route)),
                Fate::Routed(_) => destination(program, route),
            };
            describe(event, &to)
        };
        if let Fate::Failed(e, _) = &fate {
            if !expects_failure {
                failures.push(format!("a step failed: {e}; event: {}", dump(&event)));
                continue;
            }
        }
        for expect in &test.expects {
            match (expect, &fate) {
                (Expectation::Dropped, Fate::Dropped) => {}
                (Expectation::Dropped, _) => failures.push(format!(
                    "expected the event to be dropped; event: {}",
                    dump(&event)
                )),
                (Expectation::Failed(want), Fate::Failed(e, _)) => {
                    if let Some(want) = want.as_ref().filter(|w| !e.contains(w.as_str())) {
                        failures.push(format!(
                            "expected a failure containing \"{want}\"; the step failed with: {e}"
                        ));
                    }
                }
                (Expectation::Failed(want), _) => failures.push(format!(
                    "expected a step to fail{}; event: {}",
                    want.as_ref()
                        .map(|w| format!(" with \"{w}\""))
                        .unwrap_or_default(),
                    dump(&event)
                )),
                // Checked once, after every input.
                (Expectation::Metric { .. }, _) => {}
                (_, Fate::Dropped) => failures.push("the event was dropped".into()),
                (Expectation::Condition(cond, text), _) => {
                    let mut ctx = Ctx::new(&mut event, source);
                    match cond.eval(&mut ctx) {
                        Ok(v) if truthy(&v) => {}
                        Ok(_) => {
                            failures.push(format!("expected `{text}`; event: {}", dump(&event)))
                        }
                        Err(e) => failures.push(format!("`{text}` failed: {}", e.0)),
                    }
                }
                (Expectation::Route { sink, stream }, _) => {
                    let got = route.map(|r| {
                        (
                            program.sink_names.get(r.sink).cloned().unwrap_or_default(),
                            r.stream.to_string(),
                        )
                    });
                    let ok = got.as_ref().is_some_and(|(s, st)| {
                        s == sink && stream.as_ref().is_none_or(|want| want == st)
                    });
                    if !ok {
                        let want = match stream {
                            Some(s) => format!("{sink} stream \"{s}\""),
                            None => sink.clone(),
                        };
                        failures.push(format!(
                            "expected route to {want}, got {}",
                            destination(program, route)
                        ));
                    }
                }
            }
        }
    }
    let points: Vec<MetricPoint> = program
        .log_metrics
        .iter()
        .flat_map(|store| store.points(0))
        .collect();
    for expect in &test.expects {
        if let Expectation::Metric {
            name,
            labels,
            want,
            text,
        } = expect
        {
            if let Err(why) = super::metric_expect::check(&points, name, labels, *want) {
                failures.push(format!("expected `{text}`; {why}"));
            }
        }
    }
    TestReport {
        name: test.name.clone(),
        failures,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PIPELINE: &str = r#"
source web = files { include = ["/tmp/none.log"] }
step nginx on web {
  .http = parse_nginx!(.message)
  .level = if (.http.status ?? 0) >= 500 { "error" } else { "info" }
  drop where .http.path == "/healthz"
}
sink out = console {}
route {
  .level == "error" => out stream "errors"
  else => out stream "web_" + (.http.method ?? "none")
}
test "a 502 is routed to errors" {
  input web { message = "10.0.0.1 - - [01/Jan/2026:00:00:00 +0000] \"GET / HTTP/1.1\" 502 12 \"-\" \"curl\"" }
  expect { .level == "error", .http.status == 502 }
  expect route out stream "errors"
}
test "health checks are dropped" {
  input web { message = "10.0.0.1 - - [01/Jan/2026:00:00:00 +0000] \"GET /healthz HTTP/1.1\" 200 2 \"-\" \"kube-probe\"" }
  expect dropped
}
test "a wrong expectation fails" {
  input web { message = "10.0.0.1 - - [01/Jan/2026:00:00:00 +0000] \"POST /x HTTP/1.1\" 200 2 \"-\" \"curl\"" }
  expect { .level == "error" }
  expect route out stream "web_get"
}
"#;

    #[test]
    fn a_test_environment_that_breaks_the_pipeline_fails_that_test_only() {
        let src = r#"
source web = files { include = ["/tmp/none.log"] }
sink o2 = openobserve { url = env("TEST_O2_URL") ?? "http://o2.example:5080" }
route { else => o2 stream "web" }
test "default url" {
  input web { message = "x" }
  expect route o2 stream "web"
}
test "bad url" {
  env { TEST_O2_URL = "ftp://nope" }
  input web { message = "x" }
  expect route o2 stream "web"
}
"#;
        let reports = run_source(src, &Environment::empty()).unwrap();
        assert!(reports[0].passed(), "{:?}", reports[0].failures);
        assert_eq!(reports[1].failures.len(), 1, "{:?}", reports[1].failures);
        assert!(
            reports[1].failures[0]
                .starts_with("in the test's environment the pipeline does not load: 3:"),
            "{:?}",
            reports[1].failures
        );
    }

    #[test]
    fn a_failure_dump_shows_time_severity_resource_and_destination() {
        let resource = crate::event::Resource {
            attributes: vec![("host.name".into(), Value::from("pi-1"))],
        };
        let mut log =
            crate::event::LogRecord::new(Value::from("boom"), std::sync::Arc::new(resource));
        log.time_unix_nano = 1_767_225_600_000_000_000;
        log.severity_text = Some("ERROR".into());
        log.severity_number = 17;
        log.attributes.push(("status".into(), Value::Int(502)));
        let text = describe(&Event::Log(log), "o2 stream \"errors\"");
        assert_eq!(
            text,
            "timestamp=2026-01-01T00:00:00.000000000Z severity=\"ERROR\" (17) message=\"boom\" \
             status=502 resource { host.name=\"pi-1\" } -> o2 stream \"errors\""
        );
    }

    #[test]
    fn tests_in_the_file_pass_and_fail_with_reasons() {
        let reports = run_source(PIPELINE, &Environment::empty())
            .unwrap_or_else(|d| panic!("{}", super::super::render("t.ship", PIPELINE, &d)));
        assert_eq!(reports.len(), 3);
        assert!(reports[0].passed(), "{:?}", reports[0].failures);
        assert!(reports[1].passed(), "{:?}", reports[1].failures);
        assert_eq!(reports[2].failures.len(), 2, "{:?}", reports[2].failures);
        assert!(reports[2].failures[0].contains("expected `.level == \"error\"`"));
        assert!(
            reports[2].failures[1].contains("got out stream \"web_post\""),
            "{:?}",
            reports[2].failures
        );
    }
}
