//! The OpenObserve search client of `shipctl query`, `shipctl streams` and
//! `shipctl tail --openobserve`: `POST /api/{org}/_search?type=...` (JSON
//! answer `{took, hits, total}`), `POST /api/{org}/_search_stream`
//! (server-sent events) and the GET APIs ([`SearchClient::get`]: the stream
//! list, the Prometheus-compatible query API), with
//! the agent's own credentials (`OPENOBSERVE_URL`, `_ORG`, `_USER`,
//! `_PASSWORD` or `_PASSWORD_FILE`). It turns 401, 404 and 400 answers and
//! timeouts into errors that carry OpenObserve's message and say what to
//! check; it never prints and never retries. An
//! answer is read up to [`MAX_ANSWER_BYTES`] (an error answer up to
//! [`ANSWER_PREFIX_BYTES`]); a larger one is an error, never a memory blow-up.

use crate::response_body::{read_capped, read_prefix, CappedReadError};
use crate::sinks::openobserve::base_url::{self, BaseUrlError, UrlRole};
use crate::sinks::openobserve::{describe_failure, OpenObserveConfig, ANSWER_PREFIX_BYTES};
use serde_json::{Map, Value};
use std::time::Duration;

/// The largest search answer read: far more rows than a terminal shows.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

/// One row of a search answer.
pub type Hit = Map<String, Value>;

/// A search failed.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error(
        "OPENOBSERVE_URL is not set (the agent's OpenObserve base URL, e.g. http://pi-obs:5080)"
    )]
    NoUrl,
    #[error("OPENOBSERVE_URL {error}; {}", .error.hint())]
    Url { error: BaseUrlError },
    #[error("cannot read OPENOBSERVE_PASSWORD_FILE {path}: {error}")]
    PasswordFile { path: String, error: std::io::Error },
    #[error("OpenObserve refused the credentials (401): {message}; check OPENOBSERVE_USER and OPENOBSERVE_PASSWORD (search needs the user's password, not an ingestion token)")]
    Unauthorized { message: String },
    #[error("OpenObserve refused the query (400): {message}{}", not_found_hint(.message))]
    BadQuery { message: String },
    #[error("OpenObserve answered 404 for {url}: {message}; check OPENOBSERVE_ORG (the organisation) and the stream name{}", not_found_hint(.message))]
    NotFound { url: String, message: String },
    #[error("OpenObserve did not answer {url} within {}; a long time range or a heavy query takes longer: narrow --since/--until or raise --timeout", humantime::format_duration(*.timeout))]
    Timeout { url: String, timeout: Duration },
    #[error("OpenObserve answered {status}: {message}")]
    Status { status: u16, message: String },
    #[error("cannot reach OpenObserve at {url}: {reason}")]
    Transport { url: String, reason: String },
    #[error("cannot set up the connection to OpenObserve: {0}")]
    Client(String),
    #[error("OpenObserve's answer is not a search response: {0}")]
    Answer(String),
    #[error("OpenObserve's answer is larger than {} MiB; ask for fewer rows (--limit) or a shorter time range (--since/--until)", MAX_ANSWER_BYTES / (1024 * 1024))]
    AnswerTooLarge,
}

/// What to try when OpenObserve says a stream was not found: the stream
/// types and how metric streams are named.
fn not_found_hint(message: &str) -> &'static str {
    if message.to_ascii_lowercase().contains("not found") {
        "; metric and trace streams need --type metrics / --type traces, metric streams are named after the metric with dots as underscores (system.cpu.time is system_cpu_time), and `shipctl streams --type metrics` lists them"
    } else {
        ""
    }
}

/// The kind of data a stream holds: OpenObserve's `type` parameter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum StreamType {
    #[default]
    Logs,
    Metrics,
    Traces,
}

impl StreamType {
    pub fn as_str(self) -> &'static str {
        match self {
            StreamType::Logs => "logs",
            StreamType::Metrics => "metrics",
            StreamType::Traces => "traces",
        }
    }
}

/// The connection settings from the agent's environment (design §5).
pub fn config_from_env() -> Result<OpenObserveConfig, SearchError> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let url = var("OPENOBSERVE_URL").ok_or(SearchError::NoUrl)?;
    base_url::check(url.trim(), UrlRole::Http).map_err(|error| SearchError::Url { error })?;
    let split = crate::credentials::split_userinfo(url.trim_end_matches('/'));
    let mut cfg = OpenObserveConfig::new("shipctl", split.url);
    if let Some(org) = var("OPENOBSERVE_ORG") {
        cfg.org = org;
    }
    cfg.tls = crate::tls::TlsOptions {
        ca_file: var("OPENOBSERVE_CA_FILE").map(Into::into),
        cert_file: var("OPENOBSERVE_CERT_FILE").map(Into::into),
        key_file: var("OPENOBSERVE_KEY_FILE").map(Into::into),
        server_name: var("OPENOBSERVE_TLS_SERVER_NAME"),
        insecure_skip_verify: var("OPENOBSERVE_TLS_INSECURE")
            .is_some_and(|v| matches!(v.trim(), "true" | "1" | "yes" | "on")),
    };
    cfg.user = var("OPENOBSERVE_USER").or(split.user);
    cfg.password = match (
        var("OPENOBSERVE_PASSWORD").or(split.password),
        var("OPENOBSERVE_PASSWORD_FILE"),
    ) {
        (Some(p), _) => Some(p),
        (None, Some(path)) => Some(
            std::fs::read_to_string(&path)
                .map_err(|error| SearchError::PasswordFile { path, error })?
                .trim_end_matches(['\n', '\r'])
                .to_owned(),
        ),
        (None, None) => None,
    };
    Ok(cfg)
}

/// One SQL search over a time range (µs since the epoch).
#[derive(Debug, Clone, PartialEq)]
pub struct SearchQuery {
    pub sql: String,
    pub start_us: i64,
    pub end_us: i64,
    pub from: u64,
    pub size: u64,
    /// The streams searched: `?type=` of the request.
    pub stream_type: StreamType,
}

/// A search answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchAnswer {
    pub took_ms: u64,
    pub total: u64,
    pub hits: Vec<Hit>,
}

/// Searches one OpenObserve organisation.
pub struct SearchClient {
    http: reqwest::Client,
    timeout: Duration,
    base: String,
    org: String,
    authorization: Option<String>,
}

impl SearchClient {
    pub fn new(cfg: &OpenObserveConfig, timeout: Duration) -> Result<Self, SearchError> {
        let http = crate::tls::http_client_builder(&cfg.url, &cfg.tls)
            .map_err(|e| SearchError::Client(e.to_string()))?
            .timeout(timeout)
            .build()
            .map_err(|e| SearchError::Client(describe_failure(&e)))?;
        for warning in cfg.security_warnings() {
            tracing::warn!("{warning}");
        }
        Ok(SearchClient {
            http,
            timeout,
            base: cfg.url.trim_end_matches('/').to_owned(),
            org: cfg.org.clone(),
            authorization: cfg.authorization(),
        })
    }

    async fn post(&self, endpoint: &str, q: &SearchQuery) -> Result<String, SearchError> {
        let url = format!(
            "{}/api/{}/{endpoint}?type={}",
            self.base,
            self.org,
            q.stream_type.as_str()
        );
        let body = serde_json::json!({
            "query": {
                "sql": q.sql,
                "start_time": q.start_us,
                "end_time": q.end_us,
                "from": q.from,
                "size": q.size,
            }
        });
        let req = self
            .http
            .post(&url)
            .header("content-type", "application/json")
            .body(body.to_string());
        self.answer(req, url).await
    }

    /// `GET /api/{org}/{endpoint}` with `query` (URL-encoded here): the
    /// answer's text, or the error OpenObserve's answer means.
    pub async fn get(&self, endpoint: &str, query: &[(&str, &str)]) -> Result<String, SearchError> {
        let mut url = reqwest::Url::parse(&format!("{}/api/{}/{endpoint}", self.base, self.org))
            .map_err(|e| SearchError::Client(e.to_string()))?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let req = self.http.get(url.clone());
        self.answer(req, url.to_string()).await
    }

    /// Sends `req` (to `url`) with the credentials and reads the answer.
    async fn answer(
        &self,
        mut req: reqwest::RequestBuilder,
        url: String,
    ) -> Result<String, SearchError> {
        if let Some(auth) = &self.authorization {
            req = req.header("authorization", auth);
        }
        let transport = |error: reqwest::Error| {
            if error.is_timeout() {
                SearchError::Timeout {
                    url: url.clone(),
                    timeout: self.timeout,
                }
            } else {
                SearchError::Transport {
                    url: url.clone(),
                    reason: describe_failure(&error),
                }
            }
        };
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status().as_u16();
        let body = if resp.status().is_success() {
            read_capped(resp, MAX_ANSWER_BYTES)
                .await
                .map_err(|e| match e {
                    CappedReadError::TooLarge(_) => SearchError::AnswerTooLarge,
                    CappedReadError::Read(e) => transport(e),
                })?
        } else {
            // Only the message matters: a bounded prefix of it.
            read_prefix(resp, ANSWER_PREFIX_BYTES)
                .await
                .map_err(transport)?
                .bytes
        };
        let text = match String::from_utf8(body) {
            Ok(text) => text,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        };
        if let Some(named) = crate::tls::name_answer(&text).filter(|_| status == 400) {
            return Err(SearchError::Transport {
                url: url.clone(),
                reason: named,
            });
        }
        match status {
            200..=299 => Ok(text),
            401 | 403 => Err(SearchError::Unauthorized {
                message: error_message(&text),
            }),
            400 | 422 => Err(SearchError::BadQuery {
                message: error_message(&text),
            }),
            404 => Err(SearchError::NotFound {
                url,
                message: error_message(&text),
            }),
            status => Err(SearchError::Status {
                status,
                message: error_message(&text),
            }),
        }
    }

    /// `POST /api/{org}/_search`.
    pub async fn search(&self, q: &SearchQuery) -> Result<SearchAnswer, SearchError> {
        let text = self.post("_search", q).await?;
        let v: Value =
            serde_json::from_str(&text).map_err(|e| SearchError::Answer(e.to_string()))?;
        let hits = v
            .get("hits")
            .and_then(Value::as_array)
            .ok_or_else(|| SearchError::Answer("no `hits` array".into()))?;
        Ok(SearchAnswer {
            took_ms: v.get("took").and_then(Value::as_u64).unwrap_or(0),
            total: v
                .get("total")
                .and_then(Value::as_u64)
                .unwrap_or(hits.len() as u64),
            hits: rows(hits),
        })
    }

    /// `POST /api/{org}/_search_stream`: the same query answered as
    /// server-sent events (`search_response_metadata`,
    /// `search_response_hits`, `error`), collected into one answer.
    pub async fn search_stream(&self, q: &SearchQuery) -> Result<SearchAnswer, SearchError> {
        let text = self.post("_search_stream", q).await?;
        parse_events(&text)
    }
}

fn rows(hits: &[Value]) -> Vec<Hit> {
    hits.iter().filter_map(|h| h.as_object().cloned()).collect()
}

/// OpenObserve's error text: the `message` (or `error`) of a JSON body, else the body.
fn error_message(body: &str) -> String {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let field = parsed.as_ref().and_then(|v| {
        ["message", "error", "error_detail"]
            .iter()
            .find_map(|k| v.get(*k).and_then(Value::as_str))
            .map(str::to_owned)
    });
    match field {
        Some(m) => m,
        None if body.trim().is_empty() => "(empty answer)".into(),
        None => body.trim().chars().take(500).collect(),
    }
}

/// Collects the hits of a `_search_stream` event stream.
pub fn parse_events(text: &str) -> Result<SearchAnswer, SearchError> {
    let mut answer = SearchAnswer::default();
    let mut saw_total = false;
    let mut event = String::new();
    let mut data = String::new();
    let mut dispatch = |event: &str, data: &str| -> Result<(), SearchError> {
        let data = data.trim();
        if data.is_empty() || data == "[[DONE]]" {
            return Ok(());
        }
        let v: Value = serde_json::from_str(data)
            .map_err(|e| SearchError::Answer(format!("event `{event}`: {e}")))?;
        let results = v.get("results").unwrap_or(&v);
        match event {
            "search_response_hits" => {
                if let Some(hits) = results.get("hits").and_then(Value::as_array) {
                    answer.hits.extend(rows(hits));
                }
            }
            "search_response_metadata" => {
                if let Some(total) = results.get("total").and_then(Value::as_u64) {
                    answer.total = total;
                    saw_total = true;
                }
                if let Some(took) = results.get("took").and_then(Value::as_u64) {
                    answer.took_ms = took;
                }
            }
            "error" => {
                return Err(SearchError::BadQuery {
                    message: error_message(data),
                })
            }
            _ => {}
        }
        Ok(())
    };
    for line in text.lines().chain(std::iter::once("")) {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            dispatch(&event, &data)?;
            event.clear();
            data.clear();
        } else if let Some(e) = line.strip_prefix("event:") {
            event = e.trim().to_owned();
        } else if let Some(d) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(d.strip_prefix(' ').unwrap_or(d));
        }
    }
    if !saw_total {
        answer.total = answer.hits.len() as u64;
    }
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_stream_hits_are_collected_and_done_marker_ignored() {
        let text =
            "event: search_response_metadata\ndata: {\"results\":{\"total\":3,\"took\":12}}\n\n\
                    event: search_response_hits\ndata: {\"hits\":[{\"a\":1},{\"a\":2}]}\n\n\
                    event: search_response_hits\ndata: {\"results\":{\"hits\":[{\"a\":3}]}}\n\n\
                    data: [[DONE]]\n\n";
        let answer = parse_events(text).unwrap();
        assert_eq!(
            (answer.total, answer.took_ms, answer.hits.len()),
            (3, 12, 3)
        );
        assert_eq!(answer.hits[2]["a"], 3);
    }

    #[test]
    fn error_event_carries_openobserve_message() {
        let text =
            "event: error\ndata: {\"code\":400,\"message\":\"Search field not found: foo\"}\n\n";
        match parse_events(text) {
            Err(SearchError::BadQuery { message }) => {
                assert_eq!(message, "Search field not found: foo")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn error_text_is_the_json_message_or_the_body() {
        assert_eq!(
            error_message("{\"code\":401,\"message\":\"Unauthorized Access\"}"),
            "Unauthorized Access"
        );
        assert_eq!(error_message("plain words\n"), "plain words");
        assert_eq!(error_message(""), "(empty answer)");
    }
}
