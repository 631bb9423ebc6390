//! Runs the `test` blocks of a pipeline: each input event goes through the
//! compiled steps and routes exactly as in the agent, then every expectation
//! is checked. Used by `shipctl test`.

use super::eval::{truthy, Ctx};
use super::program::{Expectation, Program};
use crate::event::Event;

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

fn describe(event: &Event) -> String {
    match event {
        Event::Log(log) => {
            let mut fields = vec![format!(
                "message={}",
                super::functions::stringify(&log.body)
            )];
            if let Some(s) = &log.severity_text {
                fields.push(format!("severity={s}"));
            }
            for (k, v) in &log.attributes {
                fields.push(format!("{k}={}", super::functions::stringify(v)));
            }
            fields.join(" ")
        }
        Event::Metric(m) => format!("{}={}", m.name, m.value),
    }
}

/// Runs every test of `program`.
pub fn run(program: &mut Program) -> Vec<TestReport> {
    let mut reports = Vec::new();
    for test in &program.tests {
        let mut failures = Vec::new();
        for (source, input) in &test.inputs {
            let mut event = input.clone();
            let outcome = program.agent.processor.run_steps(&mut event, source);
            let route = match &outcome {
                Ok(true) => program.agent.processor.router.route(&mut event, source),
                Ok(false) => None,
                Err(e) => program
                    .agent
                    .processor
                    .router
                    .dead_letter(&mut event, source, e),
            };
            let dropped = matches!(outcome, Ok(false));
            for expect in &test.expects {
                match expect {
                    Expectation::Dropped => {
                        if !dropped {
                            failures.push(format!(
                                "expected the event to be dropped; it was kept: {}",
                                describe(&event)
                            ));
                        }
                    }
                    _ if dropped => failures.push("the event was dropped".into()),
                    Expectation::Condition(cond, text) => {
                        if let Err(e) = &outcome {
                            failures.push(format!("a step failed: {e}"));
                            continue;
                        }
                        let mut ctx = Ctx::new(&mut event, source);
                        match cond.eval(&mut ctx) {
                            Ok(v) if truthy(&v) => {}
                            Ok(_) => failures
                                .push(format!("expected `{text}`; event: {}", describe(&event))),
                            Err(e) => failures.push(format!("`{text}` failed: {}", e.0)),
                        }
                    }
                    Expectation::Route { sink, stream } => {
                        let got = route.as_ref().map(|r| {
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
                            let got = match got {
                                Some((s, st)) => format!("{s} stream \"{st}\""),
                                None => "no route".into(),
                            };
                            failures.push(format!("expected route to {want}, got {got}"));
                        }
                    }
                }
            }
        }
        reports.push(TestReport {
            name: test.name.clone(),
            failures,
        });
    }
    reports
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
    fn tests_in_the_file_pass_and_fail_with_reasons() {
        let mut program = super::super::load(PIPELINE)
            .unwrap_or_else(|d| panic!("{}", super::super::render("t.ship", PIPELINE, &d)));
        let reports = run(&mut program);
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
