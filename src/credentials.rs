//! Credentials in URLs and on the wire: a `user:password@` in a URL is taken
//! out before the URL is used anywhere (so no log line, error, status or
//! metric can carry it), and Basic auth that would cross the network in
//! cleartext is named so the agent can warn once. Never logs a secret.

use percent_encoding::percent_decode_str;

/// A URL with its userinfo taken out, and that userinfo (decoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitUrl {
    pub url: String,
    pub user: Option<String>,
    pub password: Option<String>,
}

/// Takes `user:password@` out of `url`. A URL that does not parse is
/// returned unchanged (the caller's own validation reports it).
pub fn split_userinfo(url: &str) -> SplitUrl {
    let unchanged = || SplitUrl {
        url: url.to_owned(),
        user: None,
        password: None,
    };
    let Ok(mut parsed) = url::Url::parse(url) else {
        return unchanged();
    };
    if parsed.username().is_empty() && parsed.password().is_none() {
        return unchanged();
    }
    let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
    let user = Some(decode(parsed.username())).filter(|u| !u.is_empty());
    let password = parsed.password().map(decode);
    // Neither setter fails on a URL with a host, which userinfo implies.
    let _ = parsed.set_username("");
    let _ = parsed.set_password(None);
    let mut clean = parsed.to_string();
    // `Url` adds a `/` path to a bare origin; keep the caller's form.
    if !url.ends_with('/') && clean.ends_with('/') && parsed.path() == "/" {
        clean.pop();
    }
    SplitUrl {
        url: clean,
        user,
        password,
    }
}

/// `url` fit to print: without userinfo.
pub fn redact_url(url: &str) -> String {
    split_userinfo(url).url
}

/// The warning for credentials sent over plain `http://` to a host that is
/// not this machine, or `None` when they stay private.
pub fn cleartext_warning(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    if parsed.scheme() != "http" {
        return None;
    }
    let loopback = match parsed.host()? {
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    };
    (!loopback).then(|| {
        format!(
            "credentials sent in cleartext to {}; use https",
            redact_url(url)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_taken_out_and_decoded() {
        let s = split_userinfo("https://root%40example.com:p%3Ass@o2.lan:5080");
        assert_eq!(s.url, "https://o2.lan:5080");
        assert_eq!(s.user.as_deref(), Some("root@example.com"));
        assert_eq!(s.password.as_deref(), Some("p:ss"));
        let plain = split_userinfo("http://o2.lan:5080/");
        assert_eq!(plain.url, "http://o2.lan:5080/");
        assert_eq!(plain.user, None);
        assert_eq!(redact_url("http://u:secret@h/metrics"), "http://h/metrics");
    }

    #[test]
    fn cleartext_is_named_only_off_this_machine() {
        assert!(cleartext_warning("http://pi-obs:5080").is_some());
        assert!(cleartext_warning("http://10.0.0.2:5080").is_some());
        assert_eq!(cleartext_warning("http://127.0.0.1:5080"), None);
        assert_eq!(cleartext_warning("http://localhost:5080"), None);
        assert_eq!(cleartext_warning("http://[::1]:5080"), None);
        assert_eq!(cleartext_warning("https://pi-obs:5080"), None);
    }
}
