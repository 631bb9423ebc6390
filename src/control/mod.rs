//! The agent's own surface: component health and the HTTP API
//! (`/health`, `/metrics`) on `SHIPD_API_ADDR`.

pub mod api;
pub mod health;
