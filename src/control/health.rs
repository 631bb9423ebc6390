//! Health of every sink: delivering or idle is healthy; a sink whose last
//! attempt failed is unhealthy until a request succeeds again.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

/// The health of one component.
#[derive(Debug, Default)]
pub struct ComponentHealth {
    failing: AtomicBool,
    last_error: Mutex<Option<String>>,
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

/// Failing components with their last error; empty when all are healthy.
pub fn failing() -> Vec<(String, String)> {
    let all = COMPONENTS.lock().unwrap_or_else(|p| p.into_inner());
    all.iter()
        .filter(|(_, h)| h.failing.load(Ordering::Relaxed))
        .map(|(name, h)| (name.clone(), h.last_error().unwrap_or_default()))
        .collect()
}
