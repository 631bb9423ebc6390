//! The agent's own surface: component health and the HTTP API
//! (`/health`, `/metrics`) on `SHIPD_API_ADDR`, the probe `shipctl health`
//! uses, the systemd notify protocol, and the control socket
//! (`SHIPD_CONTROL_SOCKET`): live taps, status and reload over gRPC
//! ([`proto`], [`server`], [`client`], [`tap`], [`status`], [`reload`]).

pub mod api;
pub mod client;
pub mod health;
pub mod probe;
pub mod proto;
pub mod reload;
pub mod server;
pub mod status;
pub mod systemd;
pub mod tap;
