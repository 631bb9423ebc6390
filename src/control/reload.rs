//! Reloading the pipeline (SIGHUP, `shipctl reload`): the [`Reloader`] reads
//! and checks the pipeline file again; an invalid file is refused with its
//! diagnostics and the running pipeline is untouched. A valid one goes to the
//! topology as an [`Apply`], which swaps the running pipeline (stop reading,
//! drain, start the new one from the checkpoints). It never touches the
//! running pipeline itself.

use crate::config::AgentConfig;
use crate::lang::Program;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{mpsc, oneshot};

/// Where the pipeline comes from: a `.ship` file, or the embedded default.
#[derive(Debug, Clone)]
pub struct PipelineOrigin {
    pub path: Option<PathBuf>,
    pub embedded: &'static str,
}

impl PipelineOrigin {
    /// The file's name for messages; empty for the embedded default.
    pub fn name(&self) -> String {
        self.path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    }

    /// Reads the pipeline text.
    pub fn read(&self) -> Result<String, String> {
        match &self.path {
            Some(p) => std::fs::read_to_string(p)
                .map_err(|e| format!("cannot read {}: {e}\n", p.display())),
            None => Ok(self.embedded.to_owned()),
        }
    }

    /// Reads and compiles the pipeline; `Err` is the rendered diagnostics.
    pub fn load(&self) -> Result<Program, String> {
        let src = self.read()?;
        self.compile(&src)
    }

    /// Compiles pipeline text; `Err` is the rendered diagnostics.
    pub fn compile(&self, src: &str) -> Result<Program, String> {
        let name = match &self.path {
            Some(p) => p.display().to_string(),
            None => "<embedded default.ship>".to_owned(),
        };
        crate::lang::load_file(&name, src).map_err(|d| {
            format!(
                "{}{name}: {} error(s)\n",
                crate::lang::render(&name, src, &d),
                d.len()
            )
        })
    }
}

/// A checked configuration for the topology to run instead of the current.
#[derive(Debug)]
pub struct Apply {
    pub cfg: AgentConfig,
    /// `Err` when the new pipeline could not start.
    pub reply: oneshot::Sender<Result<(), String>>,
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq)]
pub struct ReloadOutcome {
    pub applied: bool,
    /// Rendered diagnostics (or the start error) when refused.
    pub diagnostics: String,
    pub summary: String,
}

/// Checks the pipeline again and hands valid ones to the topology.
#[derive(Debug)]
pub struct Reloader {
    origin: PipelineOrigin,
    applies: mpsc::Sender<Apply>,
    /// The text of the pipeline that runs, to restore if a new one fails to start.
    running: tokio::sync::Mutex<Option<String>>,
    applied: AtomicU64,
}

impl Reloader {
    pub fn new(origin: PipelineOrigin, applies: mpsc::Sender<Apply>) -> Self {
        Reloader {
            origin,
            applies,
            running: tokio::sync::Mutex::new(None),
            applied: AtomicU64::new(0),
        }
    }

    /// Reloads applied so far.
    pub fn applied(&self) -> u64 {
        self.applied.load(Ordering::Relaxed)
    }

    /// One reload, start to end; concurrent requests run one after another.
    pub async fn reload(&self) -> ReloadOutcome {
        let mut running = self.running.lock().await;
        let refused = |diagnostics: String| {
            tracing::warn!("reload refused; the running pipeline continues:\n{diagnostics}");
            ReloadOutcome {
                applied: false,
                diagnostics,
                summary: String::new(),
            }
        };
        let src = match self.origin.read() {
            Ok(src) => src,
            Err(e) => return refused(e),
        };
        let program = match self.origin.compile(&src) {
            Ok(p) => p,
            Err(d) => return refused(d),
        };
        let summary = summarize(&program);
        match self.apply(program.agent).await {
            Ok(()) => {
                *running = Some(src);
                self.applied.fetch_add(1, Ordering::Relaxed);
                tracing::info!(%summary, "pipeline reloaded");
                ReloadOutcome {
                    applied: true,
                    diagnostics: String::new(),
                    summary,
                }
            }
            Err(e) => {
                let restored = match running.as_deref().map(|s| self.origin.compile(s)) {
                    Some(Ok(previous)) => self.apply(previous.agent).await.is_ok(),
                    _ => false,
                };
                tracing::error!(error = %e, restored, "the new pipeline cannot start");
                refused(format!(
                    "the new pipeline cannot start: {e}\n{}",
                    if restored {
                        "the previous pipeline runs again\n"
                    } else {
                        "no pipeline runs; fix the file and reload\n"
                    }
                ))
            }
        }
    }

    /// Remembers the pipeline text that started the agent.
    pub async fn started_with(&self, src: String) {
        *self.running.lock().await = Some(src);
    }

    async fn apply(&self, cfg: AgentConfig) -> Result<(), String> {
        let (reply, answer) = oneshot::channel();
        self.applies
            .send(Apply { cfg, reply })
            .await
            .map_err(|_| "the agent is shutting down".to_owned())?;
        answer
            .await
            .map_err(|_| "the agent is shutting down".to_owned())?
    }
}

/// One line saying what the pipeline consists of.
fn summarize(program: &Program) -> String {
    let names = |v: Vec<&str>| v.join(", ");
    format!(
        "sources: {}; steps: {}; sinks: {}; {} route rule(s)",
        names(program.agent.sources.iter().map(|s| s.name()).collect()),
        names(program.steps.iter().map(|(n, _)| n.as_str()).collect()),
        names(program.sink_names.iter().map(String::as_str).collect()),
        program.routes.len()
    )
}
