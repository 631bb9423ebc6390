//! The systemd service protocol (`Type=notify`): tells the service manager
//! READY=1 once the pipeline runs, pings WATCHDOG=1 at half the interval
//! systemd asked for (`WatchdogSec=` → `WATCHDOG_USEC`), and STOPPING=1 when
//! shutdown begins. Outside systemd (`NOTIFY_SOCKET` unset) every call is a
//! no-op. It only reports; it must never decide anything about the pipeline.

use sd_notify::NotifyState;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Tells systemd the agent is up: sources, stage and sinks are running.
pub fn ready() {
    send(&[NotifyState::Ready], "READY");
}

/// Tells systemd the agent is draining and will exit.
pub fn stopping() {
    send(&[NotifyState::Stopping], "STOPPING");
}

/// Pings the watchdog at half the interval systemd asked for until `cancel`;
/// returns `None` when no watchdog is configured for this process.
pub fn spawn_watchdog(cancel: CancellationToken) -> Option<tokio::task::JoinHandle<()>> {
    let interval = ping_interval(sd_notify::watchdog_enabled()?);
    tracing::info!(every = ?interval, "systemd watchdog enabled");
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => send(&[NotifyState::Watchdog], "WATCHDOG"),
            }
        }
    }))
}

/// Half of the watchdog timeout, as sd_watchdog_enabled(3) recommends, and
/// never a busy loop.
fn ping_interval(timeout: Duration) -> Duration {
    (timeout / 2).max(Duration::from_millis(10))
}

fn send(state: &[NotifyState], what: &str) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!(error = %e, "cannot send {what} to systemd (NOTIFY_SOCKET)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_pings_at_half_the_timeout() {
        assert_eq!(
            ping_interval(Duration::from_secs(30)),
            Duration::from_secs(15)
        );
        assert_eq!(
            ping_interval(Duration::from_micros(4)),
            Duration::from_millis(10)
        );
    }
}
