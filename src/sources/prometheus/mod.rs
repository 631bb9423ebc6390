//! Prometheus: the text exposition parser ([`text`]) and the
//! `prometheus_scrape` source ([`scrape`]) that fetches targets on an
//! interval and turns their series into metric points ([`points`], the
//! conversion the `exec` source shares).

pub mod points;
pub mod scrape;
pub mod text;

pub use scrape::{PrometheusScrapeConfig, PrometheusScrapeSource};
