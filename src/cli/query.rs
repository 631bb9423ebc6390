//! `shipctl query 'SQL'`, `shipctl query --promql EXPR`, `shipctl streams`
//! and `shipctl tail --openobserve`: the cluster-wide view, read from
//! OpenObserve's search API ([`super::openobserve_search`]), its
//! Prometheus-compatible API ([`super::promql`]) and its stream list
//! ([`super::streams`]), printed as a table, JSON lines or CSV ([`super::table`]). Tail follows
//! new records by `_timestamp`, polling, re-reading a short overlap so late
//! arrivals are not missed and printing each record once. Never writes to
//! OpenObserve.

use super::openobserve_search::{
    Hit, SearchAnswer, SearchClient, SearchError, SearchQuery, StreamType,
};
use super::promql::PromQuery;
use super::table::{Format, RowWriter};
use crate::sinks::openobserve::OpenObserveConfig;
use serde_json::Value;
use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `shipctl query`.
#[derive(Debug, Clone, clap::Args)]
pub struct QueryArgs {
    /// SQL, e.g. "SELECT * FROM \"default\" WHERE severity = 'ERROR'".
    #[arg(required_unless_present = "promql", conflicts_with = "promql")]
    pub sql: Option<String>,
    /// The streams the SQL reads: logs, metrics (one stream per metric,
    /// dots as underscores: system_cpu_time) or traces.
    #[arg(long = "type", value_enum, default_value_t = StreamType::Logs)]
    pub stream_type: StreamType,
    /// A PromQL expression instead of SQL, e.g. 'rate(system_cpu_time[5m])',
    /// run by OpenObserve's Prometheus-compatible API: at --until (default
    /// now), or with --step from --since to --until.
    #[arg(long, value_name = "EXPR")]
    pub promql: Option<String>,
    /// With --promql: a range query, one sample per step (e.g. 1m).
    #[arg(long, requires = "promql", value_parser = humantime::parse_duration)]
    pub step: Option<Duration>,
    /// Print OpenObserve's answer as JSON: the rows as JSON lines for SQL
    /// (as --format json), the Prometheus API's `data` object for PromQL.
    #[arg(long)]
    pub json: bool,
    /// Start of the time range: a duration back from now (15m, 1h, 2d) or an RFC 3339 time.
    #[arg(long, default_value = "1h")]
    pub since: String,
    /// End of the time range: a duration back from now or an RFC 3339 time (default: now).
    #[arg(long)]
    pub until: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Rows at most.
    #[arg(long, default_value_t = 100)]
    pub limit: u64,
    /// Use `_search_stream` (server-sent events) instead of `_search`.
    #[arg(long)]
    pub stream: bool,
    /// Give up after this long.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// `shipctl tail --openobserve`: follow a stream's new records.
#[derive(Debug, Clone, clap::Args)]
pub struct OpenObserveTailArgs {
    /// The stream to follow (default: $OPENOBSERVE_STREAM, else `default`).
    #[arg(long)]
    pub stream: Option<String>,
    /// SQL condition on the records, e.g. "severity = 'ERROR' AND host_name = 'pi-3'".
    #[arg(long = "where", value_name = "SQL-CONDITION")]
    pub condition: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    pub format: Format,
    /// Start with the records of this last stretch of time.
    #[arg(long, default_value = "1m", value_parser = humantime::parse_duration)]
    pub since: Duration,
    /// How often to ask OpenObserve for new records.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub every: Duration,
    /// How far back each poll looks again for records that arrived late.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub overlap: Duration,
    /// Stop after this many records.
    #[arg(long)]
    pub limit: Option<u64>,
}

/// `shipctl streams`.
#[derive(Debug, Clone, clap::Args)]
pub struct StreamsArgs {
    /// Which streams: logs, metrics or traces.
    #[arg(long = "type", value_enum, default_value_t = StreamType::Logs)]
    pub stream_type: StreamType,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Give up after this long.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// A query or tail failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(transparent)]
    Search(#[from] SearchError),
    #[error("`{0}` is neither a duration like 1h nor an RFC 3339 time")]
    Time(String),
    #[error("the time range is empty: --since is not before --until")]
    EmptyRange,
    #[error("--step must be longer than zero")]
    ZeroStep,
    #[error("--step is for PromQL range queries (--promql); SQL takes --since/--until")]
    StepWithoutPromql,
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// `1h` (back from `now_us`) or an RFC 3339 time, in µs since the epoch.
pub fn parse_time(text: &str, now_us: i64) -> Result<i64, QueryError> {
    let t = text.trim();
    if let Ok(d) = humantime::parse_duration(t) {
        return Ok(now_us - d.as_micros() as i64);
    }
    humantime::parse_rfc3339_weak(t)
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_micros() as i64)
        .ok_or_else(|| QueryError::Time(text.to_owned()))
}

/// Runs `shipctl query`; prints the rows to `out` and a summary to `err`.
/// Returns the SQL answer (PromQL rows are not a search answer: `None`).
pub async fn query(
    cfg: &OpenObserveConfig,
    args: &QueryArgs,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
) -> Result<Option<SearchAnswer>, QueryError> {
    match (&args.sql, &args.promql) {
        (_, Some(expr)) => {
            promql_query(cfg, args, expr, out, err).await?;
            Ok(None)
        }
        (Some(_), None) if args.step.is_some() => Err(QueryError::StepWithoutPromql),
        (Some(sql), None) => sql_query(cfg, args, sql, out, err).await.map(Some),
        // clap requires one of them.
        (None, None) => Ok(None),
    }
}

/// Runs a PromQL expression and prints its samples.
async fn promql_query(
    cfg: &OpenObserveConfig,
    args: &QueryArgs,
    expr: &str,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
) -> Result<(), QueryError> {
    let now = now_us();
    let end_us = match &args.until {
        Some(u) => parse_time(u, now)?,
        None => now,
    };
    let q = match args.step {
        Some(step) if step.is_zero() => return Err(QueryError::ZeroStep),
        Some(step) => {
            let start_us = parse_time(&args.since, now)?;
            if start_us >= end_us {
                return Err(QueryError::EmptyRange);
            }
            PromQuery::Range {
                expr: expr.to_owned(),
                start_us,
                end_us,
                step,
            }
        }
        None => PromQuery::Instant {
            expr: expr.to_owned(),
            time_us: end_us,
        },
    };
    let client = SearchClient::new(cfg, args.timeout)?;
    let answer = super::promql::query(&client, &q).await?;
    for warning in &answer.warnings {
        writeln!(err, "OpenObserve warns: {warning}")?;
    }
    let rows = super::promql::rows(&answer);
    if args.json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&answer.data).unwrap_or_default()
        )?;
    } else {
        RowWriter::new(args.format).write(&rows, out)?;
    }
    writeln!(err, "{} samples ({})", rows.len(), answer.result_type)?;
    Ok(())
}

/// Runs `shipctl streams`; prints one row per stream.
pub async fn streams(
    cfg: &OpenObserveConfig,
    args: &StreamsArgs,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
) -> Result<usize, QueryError> {
    let client = SearchClient::new(cfg, args.timeout)?;
    let list = super::streams::list(&client, args.stream_type).await?;
    match args.format {
        Format::Table => {
            let cols: Vec<String> = super::streams::COLUMNS
                .iter()
                .map(|c| (*c).to_owned())
                .collect();
            let cells: Vec<Vec<String>> = list.iter().map(super::streams::cells).collect();
            super::table::write_columns(&cols, &cells, out)?;
        }
        format => {
            let rows: Vec<Hit> = list.iter().map(super::streams::row).collect();
            RowWriter::new(format).write(&rows, out)?;
        }
    }
    writeln!(err, "{} {} streams", list.len(), args.stream_type.as_str())?;
    Ok(list.len())
}

/// Runs one SQL search and prints its rows.
async fn sql_query(
    cfg: &OpenObserveConfig,
    args: &QueryArgs,
    sql: &str,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
) -> Result<SearchAnswer, QueryError> {
    let now = now_us();
    let start_us = parse_time(&args.since, now)?;
    let end_us = match &args.until {
        Some(u) => parse_time(u, now)?,
        None => now,
    };
    if start_us >= end_us {
        return Err(QueryError::EmptyRange);
    }
    let client = SearchClient::new(cfg, args.timeout)?;
    let q = SearchQuery {
        sql: sql.to_owned(),
        start_us,
        end_us,
        from: 0,
        size: args.limit,
        stream_type: args.stream_type,
    };
    let answer = if args.stream {
        client.search_stream(&q).await?
    } else {
        client.search(&q).await?
    };
    let format = if args.json { Format::Json } else { args.format };
    RowWriter::new(format).write(&answer.hits, out)?;
    writeln!(
        err,
        "{} of {} rows ({} ms)",
        answer.hits.len(),
        answer.total,
        answer.took_ms
    )?;
    Ok(answer)
}

/// The SQL of one tail poll: the stream's records, oldest first.
pub fn tail_sql(stream: &str, condition: Option<&str>) -> String {
    let quoted = stream.replace('"', "\"\"");
    match condition.map(str::trim).filter(|c| !c.is_empty()) {
        Some(c) => format!("SELECT * FROM \"{quoted}\" WHERE ({c}) ORDER BY _timestamp ASC"),
        None => format!("SELECT * FROM \"{quoted}\" ORDER BY _timestamp ASC"),
    }
}

/// Records already printed, remembered for the overlap window only.
#[derive(Default)]
struct Printed {
    keys: HashSet<String>,
    order: VecDeque<(i64, String)>,
}

impl Printed {
    /// True when `hit` was not printed before (and remembers it).
    fn first_time(&mut self, ts: i64, hit: &Hit) -> bool {
        let key = Value::Object(hit.clone()).to_string();
        if !self.keys.insert(key.clone()) {
            return false;
        }
        self.order.push_back((ts, key));
        true
    }

    fn forget_before(&mut self, ts: i64) {
        while self.order.front().is_some_and(|(t, _)| *t < ts) {
            if let Some((_, key)) = self.order.pop_front() {
                self.keys.remove(&key);
            }
        }
    }
}

/// Rows of one poll page.
const PAGE: u64 = 1000;

/// Follows new records of a stream until `stop` resolves or `--limit` records
/// were printed; returns how many were printed. Errors end the tail (a 401 or
/// a bad condition does not fix itself); an unreachable OpenObserve is
/// reported on `err` and asked again at the next poll.
pub async fn tail_openobserve(
    cfg: &OpenObserveConfig,
    args: &OpenObserveTailArgs,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
    stop: impl Future<Output = ()>,
) -> Result<u64, QueryError> {
    let stream = args
        .stream
        .clone()
        .or_else(|| std::env::var("OPENOBSERVE_STREAM").ok())
        .unwrap_or_else(|| "default".into());
    let client = SearchClient::new(cfg, Duration::from_secs(30))?;
    let sql = tail_sql(&stream, args.condition.as_deref());
    let overlap_us = args.overlap.as_micros() as i64;
    let mut cursor = now_us() - args.since.as_micros() as i64;
    let mut printed = Printed::default();
    let mut count = 0u64;
    let mut writer = RowWriter::new(args.format);
    tokio::pin!(stop);
    loop {
        let end_us = now_us();
        let mut from = 0;
        loop {
            let q = SearchQuery {
                sql: sql.clone(),
                start_us: cursor - overlap_us,
                end_us,
                from,
                size: PAGE,
                stream_type: StreamType::Logs,
            };
            let answer = tokio::select! {
                _ = &mut stop => return Ok(count),
                a = client.search(&q) => a,
            };
            let hits = match answer {
                Ok(a) => a.hits,
                Err(e @ (SearchError::Transport { .. } | SearchError::Timeout { .. })) => {
                    writeln!(
                        err,
                        "{e}; asking again in {}",
                        humantime::format_duration(args.every)
                    )?;
                    break;
                }
                Err(e) => return Err(e.into()),
            };
            let n = hits.len() as u64;
            let mut fresh = Vec::new();
            for hit in hits {
                let ts = hit.get("_timestamp").and_then(Value::as_i64).unwrap_or(0);
                if printed.first_time(ts, &hit) {
                    cursor = cursor.max(ts);
                    fresh.push(hit);
                }
            }
            if let Some(limit) = args.limit {
                fresh.truncate((limit - count.min(limit)) as usize);
            }
            if !fresh.is_empty() {
                writer.write(&fresh, out)?;
                out.flush()?;
                count += fresh.len() as u64;
            }
            if args.limit.is_some_and(|l| count >= l) {
                return Ok(count);
            }
            if n < PAGE {
                break;
            }
            from += PAGE;
        }
        printed.forget_before(cursor - overlap_us);
        tokio::select! {
            _ = &mut stop => return Ok(count),
            _ = tokio::time::sleep(args.every) => {}
        }
    }
}

/// Exit code of a search OpenObserve refused or could not answer.
pub const FAILED: i32 = 1;
/// Exit code of unusable settings (no URL, unreadable password file, bad time).
pub const UNUSABLE: i32 = 2;

fn exit_code(e: &QueryError) -> i32 {
    match e {
        QueryError::Search(SearchError::NoUrl | SearchError::PasswordFile { .. })
        | QueryError::Time(_)
        | QueryError::EmptyRange
        | QueryError::ZeroStep
        | QueryError::StepWithoutPromql => UNUSABLE,
        _ => FAILED,
    }
}

fn block_on<T>(f: impl Future<Output = Result<T, QueryError>>) -> Result<T, QueryError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(QueryError::Output)?
        .block_on(f)
}

/// `shipctl query` with the agent's environment; returns the exit code.
pub fn query_command(
    args: &QueryArgs,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
) -> i32 {
    let result = config_from_env_or_err().and_then(|cfg| block_on(query(&cfg, args, out, err)));
    match result {
        Ok(_) => 0,
        Err(e) => {
            let _ = writeln!(err, "shipctl query: {e}");
            exit_code(&e)
        }
    }
}

/// `shipctl streams` with the agent's environment; returns the exit code.
pub fn streams_command(
    args: &StreamsArgs,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
) -> i32 {
    let result =
        config_from_env_or_err().and_then(|cfg| block_on(streams(&cfg, args, out, &mut *err)));
    match result {
        Ok(_) => 0,
        Err(e) => {
            let _ = writeln!(err, "shipctl streams: {e}");
            exit_code(&e)
        }
    }
}

/// `shipctl tail --openobserve` with the agent's environment, until Ctrl-C
/// or `--limit`; returns the exit code.
pub fn tail_openobserve_command(
    args: &OpenObserveTailArgs,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
) -> i32 {
    let result = config_from_env_or_err().and_then(|cfg| {
        block_on(tail_openobserve(&cfg, args, out, &mut *err, async {
            let _ = tokio::signal::ctrl_c().await;
        }))
    });
    match result {
        Ok(_) => 0,
        Err(e) => {
            let _ = writeln!(err, "shipctl tail --openobserve: {e}");
            exit_code(&e)
        }
    }
}

fn config_from_env_or_err() -> Result<OpenObserveConfig, QueryError> {
    Ok(super::openobserve_search::config_from_env()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_durations_back_from_now_or_rfc3339() {
        let now = 1_800_000_000_000_000;
        assert_eq!(parse_time("1h", now).unwrap(), now - 3_600_000_000);
        assert_eq!(
            parse_time("2026-11-26T00:00:00Z", now).unwrap(),
            1_795_651_200_000_000
        );
        assert!(parse_time("yesterday-ish", now).is_err());
    }

    #[test]
    fn tail_sql_quotes_the_stream_and_brackets_the_condition() {
        assert_eq!(
            tail_sql("node_logs", Some("a = 1 OR b = 2")),
            "SELECT * FROM \"node_logs\" WHERE (a = 1 OR b = 2) ORDER BY _timestamp ASC"
        );
        assert_eq!(
            tail_sql("x\"y", None),
            "SELECT * FROM \"x\"\"y\" ORDER BY _timestamp ASC"
        );
    }
}
