//! A cap on the connections one listening source holds open at once. Every
//! stream listener (OTLP receiver, syslog over TCP, Fluentd forward) admits a
//! connection through [`ConnectionLimit::admit`] and keeps the returned
//! permit for as long as it serves the connection; one over the cap is
//! closed at once, counted (`shipd_connections_refused_total`) and logged at
//! most once a minute. `shipd_connections_open` shows the connections held.

use crate::sinks::log_limit::LogLimit;
use crate::telemetry::{self, Metric};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The connections a listening source serves at once unless configured.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;

/// Admits at most `max` connections of one source at a time.
#[derive(Debug, Clone)]
pub struct ConnectionLimit {
    source: Arc<str>,
    max: usize,
    permits: Arc<Semaphore>,
    open: Metric,
    refused: Metric,
    log: Arc<LogLimit>,
}

/// Held while one admitted connection is served; dropping it frees the slot.
#[derive(Debug)]
pub struct ConnectionPermit {
    _permit: OwnedSemaphorePermit,
    open: Metric,
    permits: Arc<Semaphore>,
    max: usize,
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        // The permit returns after this body: count it as free already.
        let free = self.permits.available_permits() + 1;
        self.open.set(self.max.saturating_sub(free) as u64);
    }
}

impl ConnectionLimit {
    /// A limit of `max` connections (at least one) for the source `source`.
    pub fn new(source: &str, max: usize) -> Self {
        let max = max.max(1);
        let labels = [("component", source)];
        ConnectionLimit {
            source: source.into(),
            max,
            permits: Arc::new(Semaphore::new(max)),
            open: telemetry::gauge("shipd_connections_open", &labels),
            refused: telemetry::counter("shipd_connections_refused_total", &labels),
            log: Arc::new(LogLimit::new(Duration::from_secs(60))),
        }
    }

    /// The most connections served at once.
    pub fn max(&self) -> usize {
        self.max
    }

    /// A permit for one more connection from `peer`, or `None` when `max`
    /// are open: the caller closes that connection (counted and logged here).
    pub fn admit(&self, peer: SocketAddr) -> Option<ConnectionPermit> {
        match Arc::clone(&self.permits).try_acquire_owned() {
            Ok(permit) => {
                let open = self.max - self.permits.available_permits();
                self.open.set(open as u64);
                Some(ConnectionPermit {
                    _permit: permit,
                    open: self.open.clone(),
                    permits: Arc::clone(&self.permits),
                    max: self.max,
                })
            }
            Err(_) => {
                self.refused.inc();
                if let Some(suppressed) = self.log.allow() {
                    tracing::warn!(
                        source = %self.source,
                        %peer,
                        max_connections = self.max,
                        suppressed,
                        "too many open connections; closing the new one"
                    );
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 9))
    }

    #[test]
    fn admits_up_to_max_then_refuses_until_a_permit_is_dropped() {
        let limit = ConnectionLimit::new("limit_test_admits", 2);
        let a = limit.admit(peer()).expect("first");
        let _b = limit.admit(peer()).expect("second");
        assert!(limit.admit(peer()).is_none(), "third refused");
        assert_eq!(
            telemetry::value(
                "shipd_connections_refused_total",
                "component=\"limit_test_admits\""
            ),
            Some(1)
        );
        assert_eq!(
            telemetry::value("shipd_connections_open", "component=\"limit_test_admits\""),
            Some(2)
        );
        drop(a);
        assert_eq!(
            telemetry::value("shipd_connections_open", "component=\"limit_test_admits\""),
            Some(1)
        );
        assert!(limit.admit(peer()).is_some(), "room again after a close");
    }

    #[test]
    fn a_limit_of_zero_still_admits_one() {
        let limit = ConnectionLimit::new("limit_test_zero", 0);
        assert_eq!(limit.max(), 1);
        assert!(limit.admit(peer()).is_some());
    }
}
