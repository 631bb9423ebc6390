//! The agent's own surface: component health and the HTTP API
//! (`/health`, `/metrics`) on `SHIPD_API_ADDR`, the probe `shipctl health`
//! uses, and the systemd notify protocol.

pub mod api;
pub mod health;
pub mod probe;
pub mod systemd;
