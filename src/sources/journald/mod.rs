//! The journald source: follows the systemd journal through a `journalctl`
//! child process.
//!
//! [`JournaldSource`] runs `journalctl --follow --output=export` (binary-safe,
//! cheaper to parse than JSON) as a tokio child with `kill_on_drop`, parses
//! its stdout incrementally ([`export::ExportParser`]), maps entries onto log
//! records ([`record::RecordMapper`]) and sends them in batches, one
//! [`BatchAck`] per batch. The [`Checkpointer`] key `<name>|<directory>` (or
//! `<name>|system`, `<name>|files:<paths>`) holds the cursor of the last
//! *delivered* entry and the ordinal count of entries read. On start the
//! source resumes with `--after-cursor` from that checkpoint; if journalctl
//! dies it is restarted with backoff after the last cursor *read* in this run,
//! so nothing is lost or repeated. Without a checkpoint, `read_from = End`
//! starts after the newest entry (its cursor is persisted at once) and
//! `Beginning` reads the whole journal.
//!
//! Field mapping (a contract: OpenObserve columns are named after it):
//!
//! | journal field                 | record                                  |
//! |-------------------------------|-----------------------------------------|
//! | `MESSAGE`                     | body (invalid UTF-8 kept lossily, counted) |
//! | `PRIORITY` 0..7               | severity: emerg FATAL 21, alert ERROR3 19, crit ERROR2 18, err ERROR 17, warning WARN 13, notice INFO2 10, info INFO 9, debug DEBUG 5; severity text = the syslog keyword |
//! | `_SOURCE_REALTIME_TIMESTAMP`  | time (else `__REALTIME_TIMESTAMP`)      |
//! | `_SYSTEMD_UNIT`               | `systemd.unit`                          |
//! | `_SYSTEMD_USER_UNIT`          | `systemd.user_unit`                     |
//! | `_BOOT_ID`                    | `systemd.boot_id`                       |
//! | `SYSLOG_IDENTIFIER`           | `syslog.identifier`                     |
//! | `SYSLOG_FACILITY`             | `syslog.facility` (int)                 |
//! | `_PID`                        | `process.pid` (int)                     |
//! | `_COMM`, `_EXE`, `_CMDLINE`   | `process.executable.name`, `process.executable.path`, `process.command_line` |
//! | `_HOSTNAME`                   | `host.hostname`                         |
//! | `__CURSOR`, other `__*`       | not exported (the cursor gives `log.record.uid`) |
//! | any other field `NAME`        | `journald.<name lowercased>` (`_TRANSPORT` → `journald._transport`) |
//!
//! A field repeated in one entry becomes an array. Resource: `host.name`
//! (this node), `service.name` (the unit without `.service`, else the syslog
//! identifier, else the source name), `shipd.source`.
//!
//! Units: `include_units` become `--unit=` arguments (so systemd's own
//! messages about those units are included, and globs work); `exclude_units`
//! (globs) are filtered here on `_SYSTEMD_UNIT`. A bare name means
//! `<name>.service`. `matches` are journalctl `FIELD=value` matches (same
//! field: any of them; different fields: all of them).

pub mod available;
pub mod command;
pub mod export;
pub mod record;

use crate::event::{unix_nanos, Event, EventBatch, LogRecord, Position};
use crate::pipeline::acks::BatchAck;
use crate::pipeline::checkpoint::{Entry, SourceKey};
use crate::sources::file::{ReadFrom, SourceContext};
use crate::telemetry::{self, Metric};
use command::{journalctl_args, unit_name, Mode};
use export::{ExportEntry, ExportParser};
use record::RecordMapper;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncBufReadExt, AsyncReadExt};
use tokio::process::Command;

/// Configuration of one journald source.
#[derive(Debug, Clone)]
pub struct JournaldSourceConfig {
    pub name: String,
    /// The journalctl program (looked up on `PATH` when bare).
    pub journalctl: PathBuf,
    /// Read the journal files in this directory (`--directory`) instead of
    /// the system journal.
    pub directory: Option<PathBuf>,
    /// Read these journal files (`--file`).
    pub files: Vec<PathBuf>,
    /// Only these units (`--unit`; bare names mean `.service`; globs allowed).
    pub include_units: Vec<String>,
    /// Never these units (globs on `_SYSTEMD_UNIT`).
    pub exclude_units: Vec<String>,
    /// journalctl field matches, `FIELD=value`.
    pub matches: Vec<String>,
    /// Only the current boot (`--boot`).
    pub current_boot_only: bool,
    /// Where to start without a checkpoint.
    pub read_from: ReadFrom,
    /// First wait before restarting a journalctl that ended; doubles up to
    /// `restart_delay_max` while it keeps ending without output.
    pub restart_delay: Duration,
    pub restart_delay_max: Duration,
    /// Entries per batch at most.
    pub max_batch_events: usize,
    /// A field value longer than this is left out (entry marked truncated).
    pub max_field_bytes: usize,
}

impl JournaldSourceConfig {
    pub fn new(name: impl Into<String>) -> Self {
        JournaldSourceConfig {
            name: name.into(),
            journalctl: "journalctl".into(),
            directory: None,
            files: Vec::new(),
            include_units: Vec::new(),
            exclude_units: Vec::new(),
            matches: Vec::new(),
            current_boot_only: false,
            read_from: ReadFrom::End,
            restart_delay: Duration::from_millis(500),
            restart_delay_max: Duration::from_secs(30),
            max_batch_events: 1000,
            max_field_bytes: 1024 * 1024,
        }
    }

    /// What this source reads, as written into the checkpoint key and entry.
    pub fn journal_label(&self) -> String {
        match (&self.directory, self.files.is_empty()) {
            (Some(dir), _) => dir.display().to_string(),
            (None, false) => {
                let files: Vec<String> =
                    self.files.iter().map(|f| f.display().to_string()).collect();
                format!("files:{}", files.join(","))
            }
            (None, true) => "system".into(),
        }
    }

    /// The checkpoint key, `<name>|<journal label>`.
    pub fn checkpoint_key(&self) -> String {
        format!("{}|{}", self.name, self.journal_label())
    }
}

struct Counters {
    events: Metric,
    bytes: Metric,
    invalid_utf8: Metric,
    truncated: Metric,
    excluded: Metric,
    restarts: Metric,
    errors: Metric,
}

impl Counters {
    fn new(name: &str) -> Self {
        let c = |metric| telemetry::counter(metric, &[("component", name)]);
        Counters {
            events: c("shipd_events_in_total"),
            bytes: c("shipd_bytes_in_total"),
            invalid_utf8: c("shipd_invalid_utf8_total"),
            truncated: c("shipd_journal_entries_truncated_total"),
            excluded: telemetry::counter(
                "shipd_events_dropped_total",
                &[("component", name), ("reason", "excluded_unit")],
            ),
            restarts: c("shipd_journalctl_restarts_total"),
            errors: c("shipd_read_errors_total"),
        }
    }
}

/// Why one journalctl run ended.
enum RunEnd {
    /// The source is cancelled or the pipeline is gone: stop for good.
    Stopped,
    /// journalctl ended or failed; `read` entries came out of it.
    Ended { reason: String, read: u64 },
}

/// Entries read since the last send, waiting to become one batch.
#[derive(Default)]
struct Pending {
    records: Vec<LogRecord>,
    /// Entries read, including excluded ones.
    entries: u64,
    last_cursor: Option<String>,
}

/// A running journald source.
pub struct JournaldSource {
    cfg: JournaldSourceConfig,
    ctx: SourceContext,
    counters: Counters,
    key: SourceKey,
    origin: u64,
    exclude: Vec<glob::Pattern>,
    mapper: RecordMapper,
    parser: ExportParser,
    /// Next batch number for the checkpointer.
    seq: u64,
    /// Entries read so far (the checkpoint's offset).
    ordinal: u64,
    /// Cursor of the last entry read: where a restarted journalctl resumes.
    cursor: Option<String>,
}

impl JournaldSource {
    pub fn new(cfg: JournaldSourceConfig, ctx: SourceContext) -> Self {
        let key: SourceKey = Arc::from(cfg.checkpoint_key());
        let mut exclude = Vec::new();
        for unit in &cfg.exclude_units {
            match glob::Pattern::new(&unit_name(unit)) {
                Ok(p) => exclude.push(p),
                Err(e) => {
                    tracing::error!(source = %cfg.name, unit, error = %e, "invalid exclude_units pattern ignored")
                }
            }
        }
        JournaldSource {
            counters: Counters::new(&cfg.name),
            origin: xxhash_rust::xxh3::xxh3_64(key.as_bytes()),
            key,
            exclude,
            mapper: RecordMapper::new(cfg.name.clone(), ctx.host_name.clone()),
            parser: ExportParser::new(cfg.max_field_bytes),
            seq: 0,
            ordinal: 0,
            cursor: None,
            cfg,
            ctx,
        }
    }

    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run())
    }

    async fn run(mut self) {
        self.resume().await;
        let mut delay = self.cfg.restart_delay;
        loop {
            let (reason, read) = match self.follow().await {
                RunEnd::Stopped => return,
                RunEnd::Ended { reason, read } => (reason, read),
            };
            if read > 0 {
                delay = self.cfg.restart_delay;
            }
            self.counters.restarts.inc();
            tracing::warn!(
                source = %self.cfg.name,
                reason,
                after_cursor = self.cursor.as_deref().unwrap_or("(start)"),
                retry_in = ?delay,
                "journalctl ended; restarting"
            );
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.ctx.cancel.cancelled() => return,
            }
            delay = (delay * 2).min(self.cfg.restart_delay_max);
        }
    }

    /// Picks the start cursor (checkpoint, else the journal's tail or its
    /// beginning) and registers it with the checkpointer.
    async fn resume(&mut self) {
        let label = self.cfg.journal_label();
        let stored = self.ctx.checkpointer.entry(&self.key);
        let (ordinal, cursor) = match stored {
            Some(entry) => (entry.offset, entry.cursor),
            None if self.cfg.read_from == ReadFrom::End => (0, self.tail_cursor().await),
            None => (0, None),
        };
        self.ordinal = ordinal;
        self.cursor = cursor;
        tracing::info!(
            source = %self.cfg.name,
            journal = %label,
            after_cursor = self.cursor.as_deref().unwrap_or("(start)"),
            "following journal"
        );
        let entry = Entry {
            path: label,
            offset: self.ordinal,
            cursor: self.cursor.clone(),
        };
        if let Err(e) = self.ctx.checkpointer.start(&self.key, entry) {
            tracing::error!(source = %self.cfg.name, error = %e, "journal start position not persisted; will retry");
        }
    }

    fn command(&self, mode: Mode<'_>) -> Command {
        let mut cmd = Command::new(&self.cfg.journalctl);
        cmd.args(journalctl_args(&self.cfg, mode))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// The cursor of the newest matching entry, `None` for an empty journal.
    async fn tail_cursor(&self) -> Option<String> {
        let output =
            tokio::time::timeout(Duration::from_secs(60), self.command(Mode::Last).output()).await;
        let output = match output {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => {
                tracing::error!(source = %self.cfg.name, error = %e, "cannot run journalctl to find the journal's end; reading from its beginning");
                return None;
            }
            Err(_) => {
                tracing::error!(source = %self.cfg.name, "journalctl did not report the journal's end within 60s; reading from its beginning");
                return None;
            }
        };
        let mut parser = ExportParser::new(self.cfg.max_field_bytes);
        parser.push(&output.stdout);
        let mut cursor = None;
        while let Ok(Some(entry)) = parser.next_entry() {
            cursor = cursor_of(&entry).or(cursor);
        }
        cursor
    }

    /// Runs one journalctl until it ends or the source is cancelled.
    async fn follow(&mut self) -> RunEnd {
        let mut child = match self
            .command(Mode::Follow {
                after: self.cursor.as_deref(),
            })
            .spawn()
        {
            Ok(child) => child,
            Err(e) => {
                self.counters.errors.inc();
                return RunEnd::Ended {
                    reason: format!("cannot start {}: {e}", self.cfg.journalctl.display()),
                    read: 0,
                };
            }
        };
        if let Some(stderr) = child.stderr.take() {
            let name = self.cfg.name.clone();
            tokio::spawn(async move {
                let mut lines = tokio::io::BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    tracing::warn!(source = %name, "journalctl: {line}");
                }
            });
        }
        let Some(mut stdout) = child.stdout.take() else {
            return RunEnd::Ended {
                reason: "journalctl has no stdout".into(),
                read: 0,
            };
        };
        self.parser.reset();
        let mut read = 0;
        let reason = loop {
            let cancel = self.ctx.cancel.clone();
            let n = tokio::select! {
                r = stdout.read_buf(self.parser.buffer_mut()) => r,
                _ = cancel.cancelled() => return RunEnd::Stopped,
            };
            match n {
                Ok(0) => break None,
                Ok(n) => self.counters.bytes.add(n as u64),
                Err(e) => break Some(format!("reading its output failed: {e}")),
            }
            let mut pending = Pending::default();
            loop {
                match self.parser.next_entry() {
                    Ok(Some(entry)) => {
                        read += 1;
                        self.take(entry, &mut pending);
                        if pending.records.len() >= self.cfg.max_batch_events
                            && !self.send(&mut pending).await
                        {
                            return RunEnd::Stopped;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        self.counters.errors.inc();
                        if !self.send(&mut pending).await {
                            return RunEnd::Stopped;
                        }
                        return RunEnd::Ended {
                            reason: format!("unreadable export output: {e}"),
                            read,
                        };
                    }
                }
            }
            if !self.send(&mut pending).await {
                return RunEnd::Stopped;
            }
        };
        let status = match child.wait().await {
            Ok(status) => status.to_string(),
            Err(e) => format!("unknown exit status: {e}"),
        };
        RunEnd::Ended {
            reason: reason.unwrap_or(status),
            read,
        }
    }

    /// Maps one entry into `pending` (or drops it when its unit is excluded).
    fn take(&mut self, entry: ExportEntry, pending: &mut Pending) {
        pending.entries += 1;
        let cursor = cursor_of(&entry);
        let position_key = match &cursor {
            Some(c) => xxhash_rust::xxh3::xxh3_64(c.as_bytes()),
            None => self.ordinal + pending.entries,
        };
        if cursor.is_some() {
            pending.last_cursor = cursor;
        }
        if !self.exclude.is_empty() {
            let unit = entry
                .get(b"_SYSTEMD_UNIT")
                .and_then(|u| std::str::from_utf8(u).ok());
            if unit.is_some_and(|u| self.exclude.iter().any(|p| p.matches(u))) {
                self.counters.excluded.inc();
                return;
            }
        }
        if entry.truncated {
            self.counters.truncated.inc();
        }
        let mapped = self.mapper.map(&entry, unix_nanos(SystemTime::now()));
        if mapped.invalid_utf8 > 0 {
            self.counters.invalid_utf8.add(mapped.invalid_utf8);
        }
        let mut record = mapped.record;
        record.position = Some(Position {
            origin: self.origin,
            offset: position_key,
        });
        pending.records.push(record);
    }

    /// Sends what is pending as one acknowledged batch; false when the
    /// pipeline is gone or the source is cancelled.
    async fn send(&mut self, pending: &mut Pending) -> bool {
        if pending.entries == 0 {
            return true;
        }
        let pending = std::mem::take(pending);
        self.ordinal += pending.entries;
        if pending.last_cursor.is_some() {
            self.cursor.clone_from(&pending.last_cursor);
        }
        let seq = self.seq;
        self.seq += 1;
        let ack = BatchAck::with_cursor(
            &self.ctx.checkpointer,
            Arc::clone(&self.key),
            seq,
            self.ordinal,
            pending.records.len(),
            pending.last_cursor,
        );
        if pending.records.is_empty() {
            return true;
        }
        let source: Arc<str> = Arc::from(self.cfg.name.as_str());
        let mut batch = EventBatch::from_source(&source, pending.records.len());
        for mut record in pending.records {
            record.ack = ack.clone();
            batch.push(Event::Log(record));
        }
        self.counters.events.add(batch.len() as u64);
        tokio::select! {
            r = self.ctx.out.send_batch(batch) => r.is_ok(),
            _ = self.ctx.cancel.cancelled() => false,
        }
    }
}

fn cursor_of(entry: &ExportEntry) -> Option<String> {
    entry
        .get(b"__CURSOR")
        .and_then(|c| std::str::from_utf8(c).ok())
        .map(str::to_owned)
}
