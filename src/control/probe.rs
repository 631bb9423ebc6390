//! The client side of `GET /health`, for `shipctl health` (container
//! HEALTHCHECKs, scripts): asks a running agent whether it is healthy.
//! It only reads; it must never change the agent.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// What the agent answered.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthAnswer {
    pub status: u16,
    pub body: String,
}

impl HealthAnswer {
    pub fn healthy(&self) -> bool {
        self.status == 200
    }
}

/// The agent could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("`{0}` is not an address like 127.0.0.1:9717")]
    Address(String),
    #[error("GET {url}: {source}")]
    Request { url: String, source: reqwest::Error },
}

/// The address to connect to for an agent listening on `listen`: an agent
/// bound to every interface (`0.0.0.0`, `[::]`) is asked on loopback.
pub fn connect_addr(listen: &str) -> Result<SocketAddr, ProbeError> {
    let mut addr: SocketAddr = listen
        .trim()
        .parse()
        .map_err(|_| ProbeError::Address(listen.to_owned()))?;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        });
    }
    Ok(addr)
}

/// `GET http://{listen}/health` within `timeout`.
pub async fn probe_health(listen: &str, timeout: Duration) -> Result<HealthAnswer, ProbeError> {
    let url = format!("http://{}/health", connect_addr(listen)?);
    let failed = |source| ProbeError::Request {
        url: url.clone(),
        source,
    };
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .no_proxy()
        .build()
        .map_err(failed)?;
    let response = client.get(&url).send().await.map_err(failed)?;
    let status = response.status().as_u16();
    let body = response.text().await.map_err(failed)?;
    Ok(HealthAnswer { status, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agent_on_every_interface_is_asked_on_loopback() {
        assert_eq!(
            connect_addr("0.0.0.0:9717").unwrap(),
            "127.0.0.1:9717".parse().unwrap()
        );
        assert_eq!(
            connect_addr("[::]:9717").unwrap(),
            "[::1]:9717".parse().unwrap()
        );
        assert_eq!(
            connect_addr("10.0.0.5:1").unwrap(),
            "10.0.0.5:1".parse().unwrap()
        );
        assert!(matches!(
            connect_addr("pi-obs"),
            Err(ProbeError::Address(_))
        ));
    }
}
