//! Routing: the last stage. Every event goes to exactly one (sink, stream);
//! the fallback route is mandatory so nothing disappears unrouted. Stream
//! names are normalised the way OpenObserve stores them.

use crate::event::EventBatch;
use std::sync::Arc;

/// A destination: a sink (by index in the topology) and a stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub sink: usize,
    pub stream: Arc<str>,
}

/// Decides the destination of every event.
#[derive(Debug, Clone)]
pub struct Router {
    fallback: Route,
}

impl Router {
    /// A router sending everything to `fallback` (its stream normalised).
    pub fn new(fallback_sink: usize, fallback_stream: &str) -> Self {
        Router {
            fallback: Route {
                sink: fallback_sink,
                stream: Arc::from(normalize_stream_name(fallback_stream)),
            },
        }
    }

    /// Splits a batch by destination.
    pub fn route(&self, batch: EventBatch) -> Vec<(Route, EventBatch)> {
        if batch.is_empty() {
            return Vec::new();
        }
        vec![(self.fallback.clone(), batch)]
    }
}

/// OpenObserve's stream-name rule: runs of characters outside
/// `[a-zA-Z0-9_:]` become one `_`, and the name is lowercased.
pub fn normalize_stream_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_run = false;
    for c in name.chars() {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            out.push(c.to_ascii_lowercase());
            in_run = false;
        } else if !in_run {
            out.push('_');
            in_run = true;
        }
    }
    if out.is_empty() {
        out.push_str("default");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_are_normalised_like_openobserve() {
        assert_eq!(normalize_stream_name("Logs-Web.01"), "logs_web_01");
        assert_eq!(normalize_stream_name("a  -- b"), "a_b");
        assert_eq!(normalize_stream_name("k8s:pods"), "k8s:pods");
        assert_eq!(normalize_stream_name(""), "default");
    }
}
