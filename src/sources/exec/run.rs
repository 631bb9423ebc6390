//! One run of an `exec` command: spawned without a shell in its own process
//! group, with no standard input and a minimal environment (never the
//! agent's secrets), its standard output read up to a cap and its standard
//! error kept as a short excerpt. A run that outlives its timeout, or whose
//! run is abandoned (the source stops), has its whole process group killed,
//! so children it started die with it. Async throughout (tokio::process):
//! nothing here blocks the runtime.

use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The environment variables a command inherits from the agent; everything
/// else (credentials such as `OPENOBSERVE_PASSWORD`) is withheld.
pub const INHERITED_ENV: &[&str] = &["PATH", "HOME", "LANG", "LC_ALL", "TZ", "USER", "LOGNAME"];

/// Bytes of standard error kept for the log; the rest is read and counted.
pub const STDERR_EXCERPT_BYTES: usize = 1024;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Exited by itself with this code.
    Exited(i32),
    /// Killed by this signal, not by the agent.
    Signaled(i32),
    /// Outlived its timeout: its process group was killed.
    TimedOut,
}

impl Ending {
    fn of(status: ExitStatus) -> Ending {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(code), _) => Ending::Exited(code),
            (None, Some(signal)) => Ending::Signaled(signal),
            // Neither a code nor a signal does not happen on Unix.
            (None, None) => Ending::Exited(-1),
        }
    }

    /// True for exit code 0.
    pub fn succeeded(self) -> bool {
        self == Ending::Exited(0)
    }
}

/// What one run produced.
#[derive(Debug)]
pub struct Run {
    pub ending: Ending,
    /// Standard output, at most `max_output_bytes` of it.
    pub stdout: Vec<u8>,
    /// Standard output went past `max_output_bytes`: it was cut there and
    /// the pipe closed (the command sees EPIPE / SIGPIPE).
    pub stdout_cut: bool,
    /// The first [`STDERR_EXCERPT_BYTES`] of standard error.
    pub stderr_excerpt: Vec<u8>,
    /// Every byte written to standard error.
    pub stderr_bytes: u64,
    pub duration: Duration,
}

/// The command could not be started.
#[derive(Debug, thiserror::Error)]
#[error("cannot start `{program}`: {error}")]
pub struct SpawnError {
    pub program: String,
    pub error: std::io::Error,
}

/// Kills a process group when dropped, unless disarmed: a run abandoned at
/// any await point leaves no process behind.
struct GroupKill(Option<i32>);

impl GroupKill {
    fn kill_now(&mut self) {
        if let Some(pgid) = self.0.take() {
            kill_group(pgid);
        }
    }
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for GroupKill {
    fn drop(&mut self) {
        self.kill_now();
    }
}

fn kill_group(pgid: i32) {
    let Some(pid) = rustix::process::Pid::from_raw(pgid) else {
        return;
    };
    // ESRCH: every member already exited; nothing else can fail for our own group.
    if let Err(e) = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL) {
        if e != rustix::io::Errno::SRCH {
            tracing::warn!(pgid, error = %e, "cannot kill an exec command's process group");
        }
    }
}

/// Checks that `program` names an executable file (a path, or a name found
/// in `PATH`) before it is spawned, so a missing program is a spawn error
/// everywhere: a `vfork` emulated as `fork` (qemu-user) reports a failed
/// `exec` only as exit status 127.
fn locate(program: &str) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |path: &std::path::Path| {
        std::fs::metadata(path).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        return match executable(std::path::Path::new(program))? {
            true => Ok(()),
            false => Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                "not an executable file",
            )),
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    if std::env::split_paths(&path).any(|dir| executable(&dir.join(program)).unwrap_or(false)) {
        return Ok(());
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::NotFound,
        "no such program in PATH",
    ))
}

/// Runs `argv` once: waits for it to exit and for its output to end, at
/// most `timeout`, keeping at most `max_output_bytes` of standard output.
pub async fn run(
    argv: &[String],
    timeout: Duration,
    max_output_bytes: usize,
) -> Result<Run, SpawnError> {
    let began = Instant::now();
    let program = argv.first().map(String::as_str).unwrap_or_default();
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(argv.iter().skip(1))
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    for key in INHERITED_ENV {
        if let Some(value) = std::env::var_os(key) {
            cmd.env(key, value);
        }
    }
    let spawn_error = |error| SpawnError {
        program: program.to_owned(),
        error,
    };
    locate(program).map_err(spawn_error)?;
    let mut child = cmd.spawn().map_err(spawn_error)?;
    // The leader's pid is the group's id (process_group(0)).
    let mut group = GroupKill(child.id().and_then(|id| i32::try_from(id).ok()));
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let mut out = Capture::new(max_output_bytes);
    let mut err = Excerpt::default();
    let finished = tokio::time::timeout(timeout, async {
        let (_, _, status) = tokio::join!(out.read(stdout), err.read(stderr), child.wait());
        status
    })
    .await;
    let ending = match finished {
        Ok(Ok(status)) => {
            // Reaped, and its output ended: members left in the background
            // that no longer hold the output are not ours to kill.
            group.disarm();
            Ending::of(status)
        }
        Ok(Err(e)) => {
            tracing::warn!(program, error = %e, "cannot wait for an exec command");
            group.kill_now();
            let _ = child.wait().await;
            Ending::Exited(-1)
        }
        Err(_) => {
            group.kill_now();
            // Reap the leader (SIGKILL cannot be ignored: this returns at once).
            let _ = child.wait().await;
            Ending::TimedOut
        }
    };
    Ok(Run {
        ending,
        stdout: out.bytes,
        stdout_cut: out.cut,
        stderr_excerpt: err.bytes,
        stderr_bytes: err.total,
        duration: began.elapsed(),
    })
}

/// Standard output up to a cap. Bytes stay in `bytes` as they arrive, so a
/// run cut short by its timeout keeps what it printed.
struct Capture {
    bytes: Vec<u8>,
    max: usize,
    cut: bool,
}

impl Capture {
    fn new(max: usize) -> Self {
        Capture {
            bytes: Vec::new(),
            max,
            cut: false,
        }
    }

    /// Reads until end of output or the cap; past the cap the pipe is
    /// dropped (closed), so a flood costs neither memory nor CPU.
    async fn read(&mut self, pipe: Option<impl AsyncRead + Unpin>) {
        let Some(mut pipe) = pipe else { return };
        let mut chunk = [0u8; 8192];
        loop {
            match pipe.read(&mut chunk).await {
                Ok(0) => return,
                Ok(n) => {
                    let room = self.max - self.bytes.len();
                    if n > room {
                        self.bytes.extend_from_slice(&chunk[..room]);
                        self.cut = true;
                        return;
                    }
                    self.bytes.extend_from_slice(&chunk[..n]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }
}

/// The start of standard error and how much of it there was. Read to the
/// end (a chatty command must not block on a full pipe), kept only in part.
#[derive(Default)]
struct Excerpt {
    bytes: Vec<u8>,
    total: u64,
}

impl Excerpt {
    async fn read(&mut self, pipe: Option<impl AsyncRead + Unpin>) {
        let Some(mut pipe) = pipe else { return };
        let mut chunk = [0u8; 4096];
        loop {
            match pipe.read(&mut chunk).await {
                Ok(0) => return,
                Ok(n) => {
                    self.total += n as u64;
                    let room = STDERR_EXCERPT_BYTES.saturating_sub(self.bytes.len());
                    self.bytes.extend_from_slice(&chunk[..n.min(room)]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| (*w).to_owned()).collect()
    }

    #[tokio::test]
    async fn output_and_exit_code_are_captured() {
        let run = run(
            &argv(&["sh", "-c", "echo one; echo two; echo oops >&2; exit 3"]),
            Duration::from_secs(10),
            1024,
        )
        .await
        .unwrap();
        assert_eq!(run.ending, Ending::Exited(3));
        assert_eq!(run.stdout, b"one\ntwo\n");
        assert_eq!(run.stderr_excerpt, b"oops\n");
        assert_eq!(run.stderr_bytes, 5);
        assert!(!run.stdout_cut);
    }

    #[tokio::test]
    async fn output_past_the_cap_is_cut_and_the_pipe_closed() {
        // `yes` would run forever; the closed pipe ends it.
        let run = run(&argv(&["yes"]), Duration::from_secs(30), 4096)
            .await
            .unwrap();
        assert!(run.stdout_cut);
        assert_eq!(run.stdout.len(), 4096);
        assert_ne!(run.ending, Ending::TimedOut);
    }

    #[tokio::test]
    async fn secrets_of_the_agent_are_not_inherited() {
        std::env::set_var("SHIPD_EXEC_TEST_SECRET", "hunter2");
        let run = run(&argv(&["env"]), Duration::from_secs(10), 65536)
            .await
            .unwrap();
        let env = String::from_utf8_lossy(&run.stdout);
        assert!(!env.contains("hunter2"), "{env}");
        assert!(env.contains("PATH="), "{env}");
    }

    #[tokio::test]
    async fn a_missing_program_is_a_spawn_error_naming_it() {
        let err = run(
            &argv(&["/nonexistent/shipd-probe"]),
            Duration::from_secs(1),
            64,
        )
        .await
        .unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/shipd-probe"),
            "{err}"
        );
    }
}
