//! Health of every component, in three kinds:
//! - *failing*: a sink (or scrape) whose last attempt failed, until one
//!   succeeds again;
//! - *degraded*: the agent still ships but breaks a promise about what
//!   survives a crash: checkpoints or spill segments cannot be written
//!   (read-only remount, full disk, permissions), until a write succeeds
//!   again (each cause is set and cleared by the code that writes);
//! - *warnings*: standing concerns about how the agent is set up (TLS
//!   verification off, a runtime directory that is not RAM): shown, never
//!   failing.
//!
//! It only records; `/health` ([`super::api`]) and `shipctl status`
//! ([`super::status`]) read it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

/// The health of one component.
#[derive(Debug, Default)]
pub struct ComponentHealth {
    failing: AtomicBool,
    last_error: Mutex<Option<String>>,
    /// Why the component cannot keep a promise right now, by cause (e.g.
    /// `disk copy`, `RAM copy`): each writer sets and clears its own.
    degraded: Mutex<BTreeMap<&'static str, String>>,
    /// Standing concerns about how the component is configured (TLS
    /// verification off, cleartext credentials): shown, never failing.
    warnings: Mutex<Vec<String>>,
}

static COMPONENTS: LazyLock<Mutex<BTreeMap<String, Arc<ComponentHealth>>>> =
    LazyLock::new(Mutex::default);

impl ComponentHealth {
    /// Registers (or returns) the health of component `name`.
    pub fn register(name: &str) -> Arc<Self> {
        let mut all = COMPONENTS.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(all.entry(name.to_owned()).or_default())
    }

    pub fn delivered(&self) {
        self.failing.store(false, Ordering::Relaxed);
    }

    pub fn failed(&self, reason: &str) {
        self.failing.store(true, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason.to_owned());
    }

    /// Marks the component degraded for `cause` (one of its writers) with
    /// a `reason` for the operator; replaces the earlier reason of `cause`.
    /// Returns whether it was not degraded for that cause before (so the
    /// caller logs the change once).
    pub fn degrade(&self, cause: &'static str, reason: String) -> bool {
        let mut degraded = self.degraded.lock().unwrap_or_else(|p| p.into_inner());
        degraded.insert(cause, reason).is_none()
    }

    /// Clears `cause`; returns whether it was set (recovered just now).
    pub fn restore(&self, cause: &'static str) -> bool {
        let mut degraded = self.degraded.lock().unwrap_or_else(|p| p.into_inner());
        degraded.remove(cause).is_some()
    }

    /// Every reason the component is degraded, empty when it is not.
    pub fn degraded(&self) -> Vec<String> {
        let degraded = self.degraded.lock().unwrap_or_else(|p| p.into_inner());
        degraded.values().cloned().collect()
    }

    pub fn set_warnings(&self, warnings: Vec<String>) {
        *self.warnings.lock().unwrap_or_else(|p| p.into_inner()) = warnings;
    }

    pub fn warnings(&self) -> Vec<String> {
        self.warnings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// What one component's health says.
#[derive(Debug, Clone, Default)]
pub struct HealthView {
    pub failing: bool,
    pub last_error: Option<String>,
    pub degraded: Vec<String>,
    pub warnings: Vec<String>,
}

/// Every registered component by name.
pub fn all() -> BTreeMap<String, HealthView> {
    let all = COMPONENTS.lock().unwrap_or_else(|p| p.into_inner());
    all.iter()
        .map(|(name, h)| {
            (
                name.clone(),
                HealthView {
                    failing: h.failing.load(Ordering::Relaxed),
                    last_error: h.last_error(),
                    degraded: h.degraded(),
                    warnings: h.warnings(),
                },
            )
        })
        .collect()
}

/// Every component's warnings, for `/health`.
pub fn warnings() -> Vec<(String, String)> {
    let all = COMPONENTS.lock().unwrap_or_else(|p| p.into_inner());
    all.iter()
        .flat_map(|(name, h)| h.warnings().into_iter().map(|w| (name.clone(), w)))
        .collect()
}

/// Every reason a component is degraded, by component; empty when none is.
pub fn degraded() -> Vec<(String, String)> {
    let all = COMPONENTS.lock().unwrap_or_else(|p| p.into_inner());
    all.iter()
        .flat_map(|(name, h)| h.degraded().into_iter().map(|d| (name.clone(), d)))
        .collect()
}

/// Failing components with their last error; empty when all are healthy.
pub fn failing() -> Vec<(String, String)> {
    let all = COMPONENTS.lock().unwrap_or_else(|p| p.into_inner());
    all.iter()
        .filter(|(_, h)| h.failing.load(Ordering::Relaxed))
        .map(|(name, h)| (name.clone(), h.last_error().unwrap_or_default()))
        .collect()
}
