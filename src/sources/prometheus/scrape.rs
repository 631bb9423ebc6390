//! The `prometheus_scrape` source: fetches each target URL every `interval`
//! (bounded by `timeout`), parses the exposition ([`super::text`]) and sends
//! the series as metric points, plus per target `up` (1 when the scrape
//! succeeded, else 0), `scrape_duration_seconds`, `scrape_samples_scraped`
//! and `scrape_samples_malformed`.
//!
//! Labels: every series gets the target's `job` and `instance` (host:port).
//! `honor_labels` decides a clash with labels the target exposes itself,
//! as Prometheus does: `false` (default) keeps the target labels and renames
//! the exposed ones to `exported_job` / `exported_instance`; `true` keeps the
//! exposed labels and drops the target's. Counters, histograms and summaries
//! are cumulative: they start at their OpenMetrics `_created` time when
//! given, else at the target's first successful scrape. A failed scrape
//! emits only `up` 0 and the duration; it never stops the source.
//!
//! Bounded under a hostile target: the body is streamed and refused past
//! `max_body_bytes`, and parsing stops past `max_series` sample lines; either
//! fails the scrape (`up` 0, `shipd_scrape_failures_total`, the reason in
//! `/health` and a rate-limited WARN) and nothing of it is sent.

use super::text::{self, Format};
use crate::control::health::ComponentHealth;
use crate::event::{Event, EventBatch, MetricKind, MetricPoint, Resource, Value};
use crate::lang::option_range::format_size;
use crate::response_body::{read_capped, CappedReadError};
use crate::sinks::log_limit::LogLimit;
use crate::sinks::openobserve::{describe_failure, error_chain};
use crate::sources::file::SourceContext;
use crate::telemetry::{self, Metric};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Configuration of one scrape source.
#[derive(Debug, Clone)]
pub struct PrometheusScrapeConfig {
    pub name: String,
    pub urls: Vec<String>,
    /// The `job` label (default: the source name).
    pub job: Option<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub honor_labels: bool,
    /// A longer body fails the scrape (never read past this).
    pub max_body_bytes: usize,
    /// More sample lines fail the scrape (parsing stops there).
    pub max_series: usize,
    /// TLS of `https://` targets.
    pub tls: crate::tls::TlsOptions,
}

/// Default `max_body_bytes`: 16 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// Default `max_series`.
pub const DEFAULT_MAX_SERIES: usize = 100_000;

impl PrometheusScrapeConfig {
    pub fn new(name: impl Into<String>, urls: Vec<String>) -> Self {
        PrometheusScrapeConfig {
            name: name.into(),
            urls,
            job: None,
            interval: Duration::from_secs(15),
            timeout: Duration::from_secs(10),
            honor_labels: false,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_series: DEFAULT_MAX_SERIES,
            tls: crate::tls::TlsOptions::default(),
        }
    }

    fn job(&self) -> &str {
        self.job.as_deref().unwrap_or(&self.name)
    }
}

/// The source could not start.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeConfigError {
    #[error("source {source_name}: `{url}` is not a valid URL: {reason}")]
    Url {
        source_name: String,
        url: String,
        reason: String,
    },
    #[error("source {source_name}: cannot build the HTTP client: {error}")]
    Client {
        source_name: String,
        error: reqwest::Error,
    },
    #[error("source {source_name}: {error}")]
    Tls {
        source_name: String,
        error: crate::tls::TlsConfigError,
    },
}

/// `up`, `scrape_duration_seconds`, `scrape_samples_scraped`, `scrape_samples_malformed`.
const TARGET_SERIES: usize = 4;

/// One fetched scrape whose samples are still to become points.
#[derive(Debug)]
pub struct Scraped {
    samples: std::vec::IntoIter<text::Sample>,
    /// Samples the exposition held.
    scraped: usize,
    now: u64,
    start: u64,
    pub duration: Duration,
    pub malformed: usize,
    /// Why the scrape failed, when it did.
    pub error: Option<String>,
    /// The target's own series were taken.
    closed: bool,
}

impl Scraped {
    /// Points still to take, the target's own series included.
    pub fn remaining(&self) -> usize {
        self.samples.len() + if self.closed { 0 } else { TARGET_SERIES }
    }
}

/// What one scrape of one target produced.
#[derive(Debug)]
pub struct ScrapeReport {
    pub points: Vec<MetricPoint>,
    pub up: bool,
    pub duration: Duration,
    pub malformed: usize,
    /// Why the scrape failed, when it did.
    pub error: Option<String>,
}

static SCRAPE_ERROR_LOG: LogLimit = LogLimit::new(Duration::from_secs(60));
static MALFORMED_LOG: LogLimit = LogLimit::new(Duration::from_secs(300));

/// One target and what is remembered between its scrapes.
pub struct Target {
    /// The URL without userinfo (which travels as `basic_auth`).
    url: String,
    basic_auth: Option<(String, Option<String>)>,
    instance: String,
    job: String,
    honor_labels: bool,
    max_body_bytes: usize,
    max_series: usize,
    resource: Arc<Resource>,
    /// First successful scrape, ns since the epoch (start of cumulative series).
    started: Option<u64>,
    malformed_lines: Metric,
    failures: Metric,
}

impl Target {
    pub fn new(
        cfg: &PrometheusScrapeConfig,
        url: &str,
        host_name: &str,
    ) -> Result<Target, ScrapeConfigError> {
        let split = crate::credentials::split_userinfo(url);
        let url = split.url.as_str();
        let parsed = reqwest::Url::parse(url).map_err(|e| ScrapeConfigError::Url {
            source_name: cfg.name.clone(),
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
        let host = parsed.host_str().ok_or_else(|| ScrapeConfigError::Url {
            source_name: cfg.name.clone(),
            url: url.to_owned(),
            reason: "no host".into(),
        })?;
        let instance = match parsed.port_or_known_default() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        let resource = Arc::new(Resource {
            attributes: vec![
                ("host.name".into(), Value::from(host_name)),
                ("service.name".into(), Value::from(cfg.job())),
                ("service.instance.id".into(), Value::from(instance.as_str())),
                ("shipd.source".into(), Value::from(cfg.name.as_str())),
            ],
        });
        let labels = [("component", cfg.name.as_str())];
        Ok(Target {
            url: url.to_owned(),
            basic_auth: split.user.map(|u| (u, split.password)),
            instance,
            job: cfg.job().to_owned(),
            honor_labels: cfg.honor_labels,
            max_body_bytes: cfg.max_body_bytes,
            max_series: cfg.max_series,
            resource,
            started: None,
            malformed_lines: telemetry::counter("shipd_scrape_malformed_lines_total", &labels),
            failures: telemetry::counter("shipd_scrape_failures_total", &labels),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Scrapes once with `client` (whose timeout bounds the request): every
    /// point at once.
    pub async fn scrape(&mut self, client: &reqwest::Client, timeout: Duration) -> ScrapeReport {
        let mut scraped = self.fetch_samples(client, timeout).await;
        let points = self.take_points(&mut scraped, usize::MAX);
        ScrapeReport {
            points,
            up: scraped.error.is_none(),
            duration: scraped.duration,
            malformed: scraped.malformed,
            error: scraped.error,
        }
    }

    /// Fetches and parses the exposition (counting and logging a failure);
    /// its points come from [`take_points`](Self::take_points).
    pub async fn fetch_samples(&mut self, client: &reqwest::Client, timeout: Duration) -> Scraped {
        let began = Instant::now();
        let now = crate::event::unix_nanos(SystemTime::now());
        let fetched = match fetch(
            client,
            &self.url,
            self.basic_auth.as_ref(),
            timeout,
            self.max_body_bytes,
        )
        .await
        {
            Ok((body, format)) => parse_off_runtime(body, format, self.max_series)
                .await
                .map_err(|e| format!("GET {}: {e}", self.url)),
            Err(e) => Err(e),
        };
        let mut scraped = Scraped {
            samples: Vec::new().into_iter(),
            scraped: 0,
            now,
            start: now,
            duration: began.elapsed(),
            malformed: 0,
            error: None,
            closed: false,
        };
        match fetched {
            Ok(exposition) => {
                scraped.malformed = exposition.malformed;
                if exposition.malformed > 0 {
                    self.malformed_lines.add(exposition.malformed as u64);
                    if let Some(suppressed) = MALFORMED_LOG.allow() {
                        tracing::warn!(target_url = %self.url, malformed = exposition.malformed, examples = ?exposition.malformed_examples, suppressed, "skipped malformed exposition lines");
                    }
                }
                scraped.start = *self.started.get_or_insert(now);
                scraped.scraped = exposition.samples.len();
                scraped.samples = exposition.samples.into_iter();
            }
            Err(reason) => {
                self.failures.inc();
                if let Some(suppressed) = SCRAPE_ERROR_LOG.allow() {
                    tracing::warn!(target_url = %self.url, %reason, suppressed, "scrape failed");
                }
                scraped.error = Some(reason);
            }
        }
        scraped
    }

    /// The next (at most `n`) points of `scraped`: its samples, then once the
    /// target's own series (`up`, `scrape_duration_seconds`, ...). Empty when
    /// all were taken. Samples become points only here, batch by batch, so a
    /// large scrape is never held twice.
    pub fn take_points(&self, scraped: &mut Scraped, n: usize) -> Vec<MetricPoint> {
        let mut points: Vec<MetricPoint> =
            Vec::with_capacity(n.min(scraped.samples.len() + TARGET_SERIES));
        for sample in scraped.samples.by_ref().take(n) {
            points.push(self.point(sample, scraped.now, scraped.start));
        }
        if points.len() < n && !scraped.closed {
            scraped.closed = true;
            let up = scraped.error.is_none();
            for (name, unit, value) in [
                ("up", "1", if up { 1.0 } else { 0.0 }),
                (
                    "scrape_duration_seconds",
                    "s",
                    scraped.duration.as_secs_f64(),
                ),
                ("scrape_samples_scraped", "{sample}", scraped.scraped as f64),
                (
                    "scrape_samples_malformed",
                    "{line}",
                    scraped.malformed as f64,
                ),
            ] {
                let mut p = MetricPoint::new(
                    name,
                    unit,
                    MetricKind::Gauge,
                    value,
                    scraped.now,
                    Arc::clone(&self.resource),
                );
                p.labels = self.target_labels();
                points.push(p);
            }
        }
        points
    }

    fn target_labels(&self) -> crate::event::Attributes {
        vec![
            ("job".into(), Value::from(self.job.as_str())),
            ("instance".into(), Value::from(self.instance.as_str())),
        ]
    }

    fn point(&self, mut sample: text::Sample, now: u64, start: u64) -> MetricPoint {
        let labels = self.labels(std::mem::take(&mut sample.labels));
        super::points::sample_point(sample, labels, now, start, &self.resource)
    }

    /// Exposed labels merged with `job` and `instance` per `honor_labels`.
    fn labels(&self, exposed: text::Labels) -> crate::event::Attributes {
        let mut labels: crate::event::Attributes = Vec::with_capacity(exposed.len() + 2);
        let mut has = [false, false];
        for (key, value) in exposed {
            let clash = match key.as_str() {
                "job" => Some(0),
                "instance" => Some(1),
                _ => None,
            };
            match clash {
                Some(i) if self.honor_labels => {
                    has[i] = true;
                    labels.push((key, Value::String(value)));
                }
                Some(_) => labels.push((format!("exported_{key}").into(), Value::String(value))),
                None => labels.push((key, Value::String(value))),
            }
        }
        if !has[0] {
            labels.push(("job".into(), Value::from(self.job.as_str())));
        }
        if !has[1] {
            labels.push(("instance".into(), Value::from(self.instance.as_str())));
        }
        labels
    }
}

/// GETs the exposition, at most `max_body_bytes` of it; any failure
/// (connect, timeout, non-2xx, body too long or broken) as text.
async fn fetch(
    client: &reqwest::Client,
    url: &str,
    basic_auth: Option<&(String, Option<String>)>,
    timeout: Duration,
    max_body_bytes: usize,
) -> Result<(Vec<u8>, Format), String> {
    let mut req = client.get(url);
    if let Some((user, password)) = basic_auth {
        req = req.basic_auth(user, password.as_ref());
    }
    let resp = req
        .header(
            reqwest::header::ACCEPT,
            "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1",
        )
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {}", describe_failure(&e)))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!("GET {url}: HTTP {status}"));
    }
    let format = Format::from_content_type(
        resp.headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
    );
    let body = read_capped(resp, max_body_bytes)
        .await
        .map_err(|e| match e {
            CappedReadError::TooLarge(_) => format!(
                "GET {url}: the body is larger than max_body_bytes ({}); not read further",
                format_size(max_body_bytes as u64)
            ),
            CappedReadError::Read(e) => format!("GET {url}: reading the body: {}", error_chain(&e)),
        })?;
    Ok((body, format))
}

/// Parses a body on the blocking pool (a large exposition takes a while),
/// stopping past `max_series` sample lines. Invalid UTF-8 is read lossily.
async fn parse_off_runtime(
    body: Vec<u8>,
    format: Format,
    max_series: usize,
) -> Result<text::Exposition, String> {
    tokio::task::spawn_blocking(move || {
        let text = match String::from_utf8(body) {
            Ok(text) => text,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        };
        text::parse_with_limit(&text, format, max_series).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| format!("parsing the exposition failed: {e}"))?
}

/// The running source: one task per target.
pub struct PrometheusScrapeSource {
    cfg: PrometheusScrapeConfig,
    ctx: SourceContext,
}

impl PrometheusScrapeSource {
    pub fn new(cfg: PrometheusScrapeConfig, ctx: SourceContext) -> Self {
        PrometheusScrapeSource { cfg, ctx }
    }

    /// Starts scraping; fails when a URL is invalid.
    pub fn spawn(self) -> Result<tokio::task::JoinHandle<()>, ScrapeConfigError> {
        let tls_url = self
            .cfg
            .urls
            .iter()
            .find(|u| crate::tls::is_https(u))
            .map_or("", String::as_str);
        let client = crate::tls::http_client_builder(tls_url, &self.cfg.tls)
            .map_err(|error| ScrapeConfigError::Tls {
                source_name: self.cfg.name.clone(),
                error,
            })?
            .timeout(self.cfg.timeout)
            .build()
            .map_err(|error| ScrapeConfigError::Client {
                source_name: self.cfg.name.clone(),
                error,
            })?;
        let targets = self
            .cfg
            .urls
            .iter()
            .map(|url| Target::new(&self.cfg, url, &self.ctx.host_name))
            .collect::<Result<Vec<_>, _>>()?;
        let health = ComponentHealth::register(&self.cfg.name);
        if self.cfg.tls.insecure_skip_verify && !tls_url.is_empty() {
            let warning = "TLS certificate verification is disabled (tls.insecure_skip_verify) for the https targets".to_owned();
            tracing::warn!(source = %self.cfg.name, "{warning}");
            health.set_warnings(vec![warning]);
        }
        let mut tasks = tokio::task::JoinSet::new();
        for target in targets {
            tasks.spawn(scrape_loop(
                target,
                client.clone(),
                self.cfg.clone(),
                self.ctx.clone(),
            ));
        }
        Ok(tokio::spawn(async move {
            while tasks.join_next().await.is_some() {}
        }))
    }
}

async fn scrape_loop(
    mut target: Target,
    client: reqwest::Client,
    cfg: PrometheusScrapeConfig,
    ctx: SourceContext,
) {
    let events = telemetry::counter("shipd_events_in_total", &[("component", &cfg.name)]);
    let health = ComponentHealth::register(&cfg.name);
    let mut ticks = tokio::time::interval(cfg.interval.max(Duration::from_millis(10)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tracing::info!(source = %cfg.name, url = %target.url(), interval = ?cfg.interval, "scraping");
    loop {
        tokio::select! {
            _ = ctx.cancel.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let mut scraped = tokio::select! {
            _ = ctx.cancel.cancelled() => return,
            r = target.fetch_samples(&client, cfg.timeout) => r,
        };
        match &scraped.error {
            Some(reason) => health.failed(reason),
            None => health.delivered(),
        }
        events.add(scraped.remaining() as u64);
        // In bounded batches, converted as they go: a large scrape meets
        // backpressure (and the channels' byte budgets) batch by batch and
        // its points never all exist at once.
        loop {
            let points = target.take_points(&mut scraped, SEND_BATCH_POINTS);
            if points.is_empty() {
                break;
            }
            let mut batch = EventBatch::with_capacity(points.len());
            for p in points {
                batch.push(Event::Metric(p));
            }
            if ctx.unreplayable.send(batch).await.is_err() {
                return;
            }
        }
    }
}

/// Metric points per batch sent into the pipeline.
const SEND_BATCH_POINTS: usize = 1000;

#[cfg(test)]
mod tests {
    use super::*;

    fn target(honor: bool) -> Target {
        let mut cfg = PrometheusScrapeConfig::new("k3s", vec![]);
        cfg.honor_labels = honor;
        Target::new(&cfg, "http://10.0.0.5:10249/metrics", "pi1").unwrap()
    }

    fn text_labels(labels: &[(crate::event::Str, Value)]) -> Vec<(&str, &str)> {
        labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or("?")))
            .collect()
    }

    #[test]
    fn target_labels_win_unless_honor_labels() {
        let exposed: text::Labels = vec![("job".into(), "app".into()), ("path".into(), "/".into())];
        let l = target(false).labels(exposed.clone());
        assert_eq!(
            text_labels(&l),
            [
                ("exported_job", "app"),
                ("path", "/"),
                ("job", "k3s"),
                ("instance", "10.0.0.5:10249")
            ]
        );
        let l = target(true).labels(exposed);
        assert_eq!(
            text_labels(&l),
            [
                ("job", "app"),
                ("path", "/"),
                ("instance", "10.0.0.5:10249")
            ]
        );
    }

    #[test]
    fn invalid_urls_are_refused_with_the_source_name() {
        let cfg = PrometheusScrapeConfig::new("k3s", vec![]);
        let err = Target::new(&cfg, "not a url", "pi1").err().unwrap();
        assert!(err.to_string().contains("k3s"), "{err}");
    }
}
