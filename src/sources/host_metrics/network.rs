//! Network interfaces: `/proc/net/dev` → `system.network.io` (bytes),
//! `system.network.packets`, `system.network.errors` and
//! `system.network.dropped`, by device and direction (receive, transmit).

use super::{read, Emit};
use std::path::Path;

/// Counters of one interface.
#[derive(Debug, Clone, PartialEq)]
pub struct InterfaceStats<'a> {
    pub device: &'a str,
    /// bytes, packets, errors, dropped.
    pub receive: [u64; 4],
    pub transmit: [u64; 4],
}

/// Parses one data line of `/proc/net/dev` (`name: 16 numbers`).
pub fn parse_line(line: &str) -> Option<InterfaceStats<'_>> {
    let (name, rest) = line.split_once(':')?;
    let mut n = [0u64; 16];
    let mut fields = rest.split_ascii_whitespace();
    for slot in &mut n {
        *slot = fields.next()?.parse().ok()?;
    }
    Some(InterfaceStats {
        device: name.trim(),
        receive: [n[0], n[1], n[2], n[3]],
        transmit: [n[8], n[9], n[10], n[11]],
    })
}

pub fn emit(root: &Path, exclude: &[String], out: &mut Emit<'_>) -> std::io::Result<()> {
    let text = read(root, "proc/net/dev")?;
    // The first two lines are headers.
    for iface in text.lines().skip(2).filter_map(parse_line) {
        if exclude.iter().any(|e| e == iface.device) {
            continue;
        }
        for (direction, c) in [("receive", iface.receive), ("transmit", iface.transmit)] {
            let labels = [("device", iface.device), ("direction", direction)];
            out.counter("system.network.io", "By", c[0], 1.0, &labels);
            out.counter("system.network.packets", "{packet}", c[1], 1.0, &labels);
            out.counter("system.network.errors", "{error}", c[2], 1.0, &labels);
            out.counter("system.network.dropped", "{packet}", c[3], 1.0, &labels);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_dev_line_splits_receive_and_transmit() {
        let s = parse_line("  eth0: 100 2 3 4 0 0 0 0 200 5 6 7 0 0 0 0").unwrap();
        assert_eq!(s.device, "eth0");
        assert_eq!(s.receive, [100, 2, 3, 4]);
        assert_eq!(s.transmit, [200, 5, 6, 7]);
        assert!(parse_line("eth0: 1 2").is_none());
    }
}
