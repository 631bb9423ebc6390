//! The `journalctl` command lines the journald source runs: what to read
//! (directory, files, units, matches, boot) and where to start. Pure: it
//! builds arguments and never starts a process.

use super::JournaldSourceConfig;
use std::ffi::OsString;

/// Which journalctl run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode<'a> {
    /// Follow the journal after `after` (from its first entry when `None`).
    Follow { after: Option<&'a str> },
    /// Print only the newest matching entry (to learn the tail cursor).
    Last,
}

/// `nginx` means `nginx.service`, as `systemctl` and `journalctl -u` read it.
pub fn unit_name(unit: &str) -> String {
    let unit = unit.trim();
    let has_type = unit.rsplit_once('.').is_some_and(|(_, t)| !t.is_empty());
    let is_glob = unit.contains(['*', '?', '[']);
    if has_type || is_glob {
        unit.to_owned()
    } else {
        format!("{unit}.service")
    }
}

/// The arguments (without the program) for `mode`.
pub fn journalctl_args(cfg: &JournaldSourceConfig, mode: Mode<'_>) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["--output=export".into(), "--quiet".into()];
    match mode {
        Mode::Follow { after } => {
            args.push("--follow".into());
            args.push("--no-tail".into());
            if let Some(cursor) = after {
                args.push(format!("--after-cursor={cursor}").into());
            }
        }
        Mode::Last => args.push("--lines=1".into()),
    }
    if let Some(dir) = &cfg.directory {
        let mut arg = OsString::from("--directory=");
        arg.push(dir);
        args.push(arg);
    }
    for file in &cfg.files {
        let mut arg = OsString::from("--file=");
        arg.push(file);
        args.push(arg);
    }
    if cfg.current_boot_only {
        args.push("--boot".into());
    }
    for unit in &cfg.include_units {
        args.push(format!("--unit={}", unit_name(unit)).into());
    }
    for m in &cfg.matches {
        args.push(m.into());
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(args: Vec<OsString>) -> Vec<String> {
        args.into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn follow_resumes_after_the_cursor_with_every_filter() {
        let mut cfg = JournaldSourceConfig::new("journald");
        cfg.directory = Some("/var/log/remote".into());
        cfg.include_units = vec!["nginx".into(), "getty@tty1.service".into()];
        cfg.matches = vec!["_TRANSPORT=syslog".into()];
        cfg.current_boot_only = true;
        let args = text(journalctl_args(
            &cfg,
            Mode::Follow {
                after: Some("s=1;i=2"),
            },
        ));
        assert_eq!(
            args,
            vec![
                "--output=export",
                "--quiet",
                "--follow",
                "--no-tail",
                "--after-cursor=s=1;i=2",
                "--directory=/var/log/remote",
                "--boot",
                "--unit=nginx.service",
                "--unit=getty@tty1.service",
                "_TRANSPORT=syslog",
            ]
        );
    }

    #[test]
    fn tail_query_prints_one_entry_without_following() {
        let cfg = JournaldSourceConfig::new("journald");
        let args = text(journalctl_args(&cfg, Mode::Last));
        assert_eq!(args, vec!["--output=export", "--quiet", "--lines=1"]);
    }

    #[test]
    fn bare_unit_names_mean_services() {
        assert_eq!(unit_name("nginx"), "nginx.service");
        assert_eq!(unit_name("cron.timer"), "cron.timer");
        assert_eq!(unit_name("ssh*"), "ssh*");
    }
}
