//! One `_bulk` request: `POST {url}/_bulk` with `Content-Type:
//! application/x-ndjson`, the body gzip-compressed or not, the sink's
//! headers and Basic auth; the answer read up to [`answer_cap`] and sorted
//! item by item ([`super::answer`]), or, for a non-2xx answer, into the
//! retry policy as the OTLP/HTTP transport does. Redirects are not
//! followed.

use super::answer::{answer_cap, outcomes, ItemOutcome};
use super::ElasticsearchConfig;
use crate::event::Event;
use crate::response_body::read_prefix;
use crate::sinks::compression::Compression;
use crate::sinks::otlp::{
    classify_status, describe_failure, error_chain, http_headers, location, retry_after,
    HttpClientError, SendError,
};
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE};
use std::time::Duration;

/// Sends `_bulk` requests to one URL.
#[derive(Debug, Clone)]
pub struct BulkTransport {
    client: reqwest::Client,
    url: String,
    headers: HeaderMap,
    compression: Compression,
    /// `None`: each request's stream.
    index: Option<String>,
}

impl BulkTransport {
    pub fn new(
        cfg: &ElasticsearchConfig,
        auth: Option<HeaderValue>,
    ) -> Result<Self, HttpClientError> {
        let timeout = cfg.request_timeout;
        let client = crate::tls::http_client_builder(&cfg.url, &cfg.tls)?
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .pool_idle_timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let mut headers = http_headers(&cfg.headers)?;
        if let Some(auth) = auth {
            headers.entry(AUTHORIZATION).or_insert(auth);
        }
        Ok(BulkTransport {
            client,
            url: format!("{}/_bulk", cfg.url.trim_end_matches('/')),
            headers,
            compression: cfg.compression,
            index: cfg.index.clone(),
        })
    }

    /// The body of a request carrying `events` for `stream`: NDJSON,
    /// compressed once, re-sent as is.
    pub fn prepare(&self, stream: &str, events: &[&Event]) -> std::io::Result<Bytes> {
        let index = self.index.as_deref().unwrap_or(stream);
        let mut raw = Vec::with_capacity(events.len() * 512);
        for event in events {
            super::encode::write_item(index, event, &mut raw);
        }
        self.compression.compress(&raw).map(Bytes::from)
    }

    /// Sends one request of `sent` documents; the outcome of each, in order.
    pub async fn send(&self, body: Bytes, sent: usize) -> Result<Vec<ItemOutcome>, SendError> {
        let mut req = self
            .client
            .post(&self.url)
            .header(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-ndjson"),
            )
            .headers(self.headers.clone())
            .body(body);
        if let Some(enc) = self.compression.content_encoding() {
            req = req.header(CONTENT_ENCODING, enc);
        }
        let url = &self.url;
        let resp = req.send().await.map_err(|e| {
            SendError::Retryable(format!("request to {url} failed: {}", describe_failure(&e)))
        })?;
        let status = resp.status();
        let wait = retry_after(resp.headers());
        let location = location(resp.headers());
        let cap = answer_cap(sent);
        let body = read_prefix(resp, cap).await.map_err(|e| {
            SendError::Retryable(format!("reading the answer failed: {}", error_chain(&e)))
        })?;
        if status.is_success() {
            return outcomes(&body.bytes, body.truncated, sent, cap)
                .map_err(|e| SendError::Retryable(e.to_string()));
        }
        let shown = &body.bytes[..body.bytes.len().min(512)];
        let text = String::from_utf8_lossy(shown).into_owned();
        Err(classify_status(
            status.as_u16(),
            text.trim(),
            wait,
            location,
        ))
    }
}
