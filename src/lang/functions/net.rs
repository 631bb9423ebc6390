//! IP address helpers: masking to a prefix (`ip_mask`) and CIDR membership
//! (`ip_in_cidr`), for IPv4 and IPv6.

use super::{arg_text, Prepared};
use crate::event::Value;
use std::net::IpAddr;

fn ip(text: &str) -> Result<IpAddr, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("`{text}` is not an IP address"))
}

/// `addr` with every bit after the first `prefix` set to zero.
fn masked(addr: IpAddr, prefix: i64) -> Result<IpAddr, String> {
    let bits = if addr.is_ipv4() { 32 } else { 128 };
    if !(0..=bits).contains(&prefix) {
        return Err(format!(
            "prefix length {prefix} is out of range for {} (0-{bits})",
            if bits == 32 { "IPv4" } else { "IPv6" }
        ));
    }
    let keep = |width: u32| -> u128 {
        match prefix as u32 {
            0 => 0,
            p => (!0u128 >> (128 - width)) & (!0u128 << (width - p)),
        }
    };
    Ok(match addr {
        IpAddr::V4(a) => IpAddr::V4((u32::from(a) & keep(32) as u32).into()),
        IpAddr::V6(a) => IpAddr::V6((u128::from(a) & keep(128)).into()),
    })
}

pub fn ip_mask(a: &[Value], _: &Prepared) -> Result<Value, String> {
    let addr = ip(&arg_text(a, 0)?)?;
    let Value::Int(prefix) = a[1] else {
        return Err("the prefix length must be an integer".into());
    };
    Ok(Value::String(masked(addr, prefix)?.to_string().into()))
}

pub fn ip_in_cidr(a: &[Value], _: &Prepared) -> Result<Value, String> {
    let addr = ip(&arg_text(a, 0)?)?;
    let cidr = arg_text(a, 1)?;
    let (net, prefix) = cidr
        .split_once('/')
        .ok_or_else(|| format!("`{cidr}` is not a CIDR like 10.0.0.0/8"))?;
    let net = ip(net)?;
    let prefix: i64 = prefix
        .parse()
        .map_err(|_| format!("`{cidr}`: bad prefix length"))?;
    let net = masked(net, prefix)?;
    if addr.is_ipv4() != net.is_ipv4() {
        return Ok(Value::Bool(false));
    }
    Ok(Value::Bool(masked(addr, prefix)? == net))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(f: super::super::CallFn, a: Value, b: Value) -> Result<Value, String> {
        f(&[a, b], &Prepared::None)
    }

    #[test]
    fn masks_v4_and_v6_to_their_prefix() {
        let m = |ip: &str, p| call(ip_mask, Value::from(ip), Value::Int(p));
        assert_eq!(m("192.168.17.201", 24), Ok(Value::from("192.168.17.0")));
        assert_eq!(m("192.168.17.201", 0), Ok(Value::from("0.0.0.0")));
        assert_eq!(m("192.168.17.201", 32), Ok(Value::from("192.168.17.201")));
        assert_eq!(
            m("2001:db8:abcd:12::1", 48),
            Ok(Value::from("2001:db8:abcd::"))
        );
        assert!(m("10.0.0.1", 33).unwrap_err().contains("out of range"));
        assert!(m("not-an-ip", 24).is_err());
    }

    #[test]
    fn cidr_membership_for_both_families() {
        let c = |ip: &str, cidr: &str| call(ip_in_cidr, Value::from(ip), Value::from(cidr));
        assert_eq!(c("10.1.2.3", "10.0.0.0/8"), Ok(Value::Bool(true)));
        assert_eq!(c("11.1.2.3", "10.0.0.0/8"), Ok(Value::Bool(false)));
        assert_eq!(c("fd00::5", "fd00::/8"), Ok(Value::Bool(true)));
        assert_eq!(c("10.1.2.3", "fd00::/8"), Ok(Value::Bool(false)));
        assert!(c("10.1.2.3", "10.0.0.0").is_err());
        assert!(c("10.1.2.3", "10.0.0.0/40").is_err());
    }
}
