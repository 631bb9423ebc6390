//! Reads one syslog message (RFC 5424, or the BSD format RFC 3164
//! describes) into its parts: priority, timestamp, host name, app name,
//! process id, message id, structured data and the free-form message. A
//! message in neither format is [`Malformed`], with the reason; this module
//! never panics on any input (a property test feeds it arbitrary bytes),
//! does no I/O and allocates only for what it returns.
//!
//! RFC 3164 timestamps (`Oct 11 22:14:15`) carry no year and no zone: they
//! are read in the time zone the caller gives (the agent's local zone at
//! run time) and in the year that puts them closest to the moment of
//! receipt, so a December message received on 1 January keeps last year.
//! RFC 3339 timestamps in a BSD-style header (rsyslog's forward format)
//! are read as they are.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, TimeZone};
use std::borrow::Cow;

/// The facility keywords by code (RFC 5424 §6.2.1, names as rsyslog spells them).
pub const FACILITIES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];

/// The `<PRI>` of a message: facility code 0..=23 and severity 0..=7.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Priority {
    pub facility: u8,
    pub severity: u8,
}

impl Priority {
    /// The facility keyword (`local4`).
    pub fn facility_name(self) -> &'static str {
        FACILITIES[usize::from(self.facility)]
    }
}

/// Which header a message had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Rfc5424,
    Rfc3164,
}

/// One structured-data element of RFC 5424: its id and its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdElement<'a> {
    pub id: &'a str,
    pub params: Vec<(&'a str, Cow<'a, str>)>,
}

/// A parsed message, borrowing from the text it was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    pub format: Format,
    /// Always there from [`parse`]; [`parse_file_line`] reads BSD lines
    /// without one too.
    pub priority: Option<Priority>,
    /// The RFC 5424 version (1); `None` for RFC 3164.
    pub version: Option<u8>,
    /// Nanoseconds since the epoch; `None` when the header had none (`-`).
    pub timestamp: Option<i64>,
    pub hostname: Option<&'a str>,
    pub appname: Option<&'a str>,
    pub procid: Option<&'a str>,
    pub msgid: Option<&'a str>,
    pub structured_data: Vec<SdElement<'a>>,
    pub message: &'a str,
}

/// Why a message was not read: it is kept raw.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("no <PRI> priority at the start")]
    NoPriority,
    #[error("priority out of range (0 to 191)")]
    PriorityRange,
    #[error("neither an RFC 5424 header nor an RFC 3164 timestamp after the priority")]
    NoHeader,
    #[error("RFC 5424 header incomplete")]
    Incomplete5424,
    #[error("RFC 5424 timestamp is not RFC 3339")]
    Timestamp5424,
    #[error("RFC 5424 structured data is malformed")]
    StructuredData,
}

impl Malformed {
    /// A short label for the `reason` of the malformed counter.
    pub fn label(&self) -> &'static str {
        match self {
            Malformed::NoPriority | Malformed::PriorityRange => "priority",
            Malformed::NoHeader => "header",
            Malformed::Incomplete5424 | Malformed::Timestamp5424 => "rfc5424_header",
            Malformed::StructuredData => "structured_data",
        }
    }
}

/// Parses `text` (one message, framing removed), reading RFC 3164
/// timestamps in `now`'s time zone and near `now`.
pub fn parse<'a, Tz: TimeZone>(
    text: &'a str,
    now: &DateTime<Tz>,
) -> Result<Message<'a>, Malformed> {
    let text = text.trim_end_matches(['\n', '\r', '\0']);
    let (priority, rest) = priority(text)?;
    if let Some((version, after)) = version(rest) {
        return parse_5424(priority, version, after);
    }
    parse_3164(Some(priority), rest, now)
}

/// Like [`parse`], also reading a BSD line without `<PRI>`, as a local
/// syslog daemon writes them to files (`Nov  5 01:02:03 pi4 kernel: ...`).
pub fn parse_file_line<'a, Tz: TimeZone>(
    text: &'a str,
    now: &DateTime<Tz>,
) -> Result<Message<'a>, Malformed> {
    match parse(text, now) {
        Err(Malformed::NoPriority) => {
            parse_3164(None, text.trim_end_matches(['\n', '\r', '\0']), now)
                .map_err(|_| Malformed::NoPriority)
        }
        parsed => parsed,
    }
}

/// Reads `<PRI>`, returning the priority and what follows it.
fn priority(text: &str) -> Result<(Priority, &str), Malformed> {
    let rest = text.strip_prefix('<').ok_or(Malformed::NoPriority)?;
    let end = rest.find('>').filter(|&e| (1..=3).contains(&e));
    let end = end.ok_or(Malformed::NoPriority)?;
    let digits = &rest[..end];
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Malformed::NoPriority);
    }
    let pri: u16 = digits.parse().map_err(|_| Malformed::NoPriority)?;
    if pri > 191 {
        return Err(Malformed::PriorityRange);
    }
    let priority = Priority {
        facility: (pri / 8) as u8,
        severity: (pri % 8) as u8,
    };
    Ok((priority, &rest[end + 1..]))
}

/// An RFC 5424 version (1 or 2 digits, not starting with 0) and a space.
fn version(rest: &str) -> Option<(u8, &str)> {
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if !(1..=2).contains(&digits) || rest.starts_with('0') {
        return None;
    }
    let after = rest[digits..].strip_prefix(' ')?;
    Some((rest[..digits].parse().ok()?, after))
}

/// Splits off one space-delimited header field.
fn field(rest: &str) -> Option<(&str, &str)> {
    let (value, after) = match rest.find(' ') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, ""),
    };
    (!value.is_empty()).then_some((value, after))
}

fn nil(value: &str) -> Option<&str> {
    (value != "-").then_some(value)
}

fn parse_5424(priority: Priority, version: u8, rest: &str) -> Result<Message<'_>, Malformed> {
    let mut rest = rest;
    let mut next = || {
        let (value, after) = field(rest).ok_or(Malformed::Incomplete5424)?;
        rest = after;
        Ok::<_, Malformed>(value)
    };
    let timestamp = next()?;
    let hostname = next()?;
    let appname = next()?;
    let procid = next()?;
    let msgid = next()?;
    let timestamp = match timestamp {
        "-" => None,
        t => Some(rfc3339(t).ok_or(Malformed::Timestamp5424)?),
    };
    let (structured_data, after) = structured_data(rest)?;
    let message = match after {
        "" => "",
        m => m.strip_prefix(' ').ok_or(Malformed::StructuredData)?,
    };
    Ok(Message {
        format: Format::Rfc5424,
        priority: Some(priority),
        version: Some(version),
        timestamp,
        hostname: nil(hostname),
        appname: nil(appname),
        procid: nil(procid),
        msgid: nil(msgid),
        structured_data,
        message: message.strip_prefix('\u{feff}').unwrap_or(message),
    })
}

fn rfc3339(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(text)
        .ok()?
        .timestamp_nanos_opt()
}

/// Reads `-` or a run of `[id param="value" ...]` elements.
fn structured_data(rest: &str) -> Result<(Vec<SdElement<'_>>, &str), Malformed> {
    if let Some(after) = rest.strip_prefix('-') {
        return Ok((Vec::new(), after));
    }
    let mut elements = Vec::new();
    let mut rest = rest;
    while let Some(inner) = rest.strip_prefix('[') {
        let (element, after) = sd_element(inner).ok_or(Malformed::StructuredData)?;
        elements.push(element);
        rest = after;
    }
    if elements.is_empty() {
        return Err(Malformed::StructuredData);
    }
    Ok((elements, rest))
}

/// One element after its `[`, returning what follows its `]`.
fn sd_element(text: &str) -> Option<(SdElement<'_>, &str)> {
    let id_end = text.find([' ', ']', '=', '"'])?;
    let id = &text[..id_end];
    if id.is_empty() {
        return None;
    }
    let mut rest = &text[id_end..];
    let mut params = Vec::new();
    loop {
        if let Some(after) = rest.strip_prefix(']') {
            return Some((SdElement { id, params }, after));
        }
        rest = rest.strip_prefix(' ')?;
        let name_end = rest.find('=')?;
        let name = &rest[..name_end];
        if name.is_empty() || name.contains([' ', ']', '"']) {
            return None;
        }
        let (value, after) = sd_value(rest[name_end + 1..].strip_prefix('"')?)?;
        params.push((name, value));
        rest = after;
    }
}

/// A parameter value after its opening quote: `\"`, `\\` and `\]` are
/// unescaped (RFC 5424 §6.3.3), any other backslash is kept.
fn sd_value(text: &str) -> Option<(Cow<'_, str>, &str)> {
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut escaped = false;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if i + 1 < bytes.len() => {
                escaped = true;
                i += 2;
            }
            b'"' => {
                let raw = &text[..i];
                let value = if escaped {
                    Cow::Owned(unescape(raw))
                } else {
                    Cow::Borrowed(raw)
                };
                return Some((value, &text[i + 1..]));
            }
            _ => i += 1,
        }
    }
    None
}

fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(e @ ('"' | '\\' | ']')) => out.push(e),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn parse_3164<'a, Tz: TimeZone>(
    priority: Option<Priority>,
    rest: &'a str,
    now: &DateTime<Tz>,
) -> Result<Message<'a>, Malformed> {
    let (timestamp, rest) = bsd_timestamp(rest, now)
        .or_else(|| {
            let (stamp, after) = field(rest)?;
            Some((rfc3339(stamp)?, after))
        })
        .ok_or(Malformed::NoHeader)?;
    // A local sender (the /dev/log convention) writes no host name: the
    // word after the time is then already the tag (`sshd[42]:`, `cron:`).
    let (hostname, rest) = match field(rest) {
        Some((word, after)) if !looks_like_tag(word) => (Some(word), after),
        _ => (None, rest),
    };
    let (appname, procid, message) = tag(rest);
    Ok(Message {
        format: Format::Rfc3164,
        priority,
        version: None,
        timestamp: Some(timestamp),
        hostname,
        appname,
        procid,
        msgid: None,
        structured_data: Vec::new(),
        message,
    })
}

fn looks_like_tag(word: &str) -> bool {
    word.ends_with(':') || (word.contains('[') && word.ends_with("]:"))
}

/// `Mmm dd hh:mm:ss` (day padded with a space or a zero, or not at all;
/// optional fractional seconds), in `now`'s zone and the year closest to
/// `now`; returns the time and what follows it.
fn bsd_timestamp<'a, Tz: TimeZone>(text: &'a str, now: &DateTime<Tz>) -> Option<(i64, &'a str)> {
    let month = MONTHS.iter().position(|m| text.starts_with(m))? as u32 + 1;
    let rest = text[3..].strip_prefix(' ')?;
    let rest = rest.strip_prefix(' ').unwrap_or(rest);
    let (day, rest) = digits(rest, 1, 2)?;
    let rest = rest.strip_prefix(' ')?;
    let (h, rest) = digits(rest, 2, 2)?;
    let (m, rest) = digits(rest.strip_prefix(':')?, 2, 2)?;
    let (sec, rest) = digits(rest.strip_prefix(':')?, 2, 2)?;
    let (nanos, rest) = match rest.strip_prefix('.') {
        Some(frac) => {
            let n = frac.bytes().take_while(u8::is_ascii_digit).take(9).count();
            let scaled = frac[..n].parse::<u32>().ok()? * 10u32.pow(9 - n as u32);
            let more = frac[n..].bytes().take_while(u8::is_ascii_digit).count();
            (scaled, &frac[n + more..])
        }
        None => (0, rest),
    };
    if !(rest.is_empty() || rest.starts_with(' ')) {
        return None;
    }
    let rest = rest.strip_prefix(' ').unwrap_or(rest);
    let zone = now.timezone();
    let now_ns = i128::from(now.timestamp_nanos_opt()?);
    // Up to a day ahead counts as now (clock skew); further ahead loses to
    // any time in the past. 29 February takes the nearest leap year.
    let skew = 86_400_000_000_000i128;
    let distance = |ns: i64| {
        let ahead = i128::from(ns) - now_ns;
        if ahead > skew {
            i128::MAX / 2 + ahead
        } else {
            ahead.abs()
        }
    };
    (now.year() - 1..=now.year() + 1)
        .filter_map(|y| {
            let naive =
                NaiveDate::from_ymd_opt(y, month, day)?.and_hms_nano_opt(h, m, sec, nanos)?;
            local_nanos(&zone, naive)
        })
        .min_by_key(|&ns| distance(ns))
        .map(|ns| (ns, rest))
}

/// A run of `min` to `max` ASCII digits at the start of `text`.
fn digits(text: &str, min: usize, max: usize) -> Option<(u32, &str)> {
    let n = text
        .bytes()
        .take(max)
        .take_while(u8::is_ascii_digit)
        .count();
    if n < min {
        return None;
    }
    Some((text[..n].parse().ok()?, &text[n..]))
}

fn local_nanos<Tz: TimeZone>(zone: &Tz, naive: NaiveDateTime) -> Option<i64> {
    zone.from_local_datetime(&naive)
        .earliest()?
        .timestamp_nanos_opt()
}

/// `app[pid]: message`, `app: message`, or no tag (the whole rest is the message).
fn tag(rest: &str) -> (Option<&str>, Option<&str>, &str) {
    let end = rest.find([' ', ':', '[']).unwrap_or(rest.len());
    let app = &rest[..end];
    if app.is_empty() {
        return (None, None, rest);
    }
    let after = &rest[end..];
    if let Some(after) = after.strip_prefix(':') {
        return (Some(app), None, after.strip_prefix(' ').unwrap_or(after));
    }
    if let Some(inner) = after.strip_prefix('[') {
        if let Some(close) = inner.find(']') {
            let pid = &inner[..close];
            let after = &inner[close + 1..];
            if let Some(message) = after.strip_prefix(':') {
                let pid = (!pid.is_empty()).then_some(pid);
                return (Some(app), pid, message.strip_prefix(' ').unwrap_or(message));
            }
        }
    }
    (None, None, rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{FixedOffset, Utc};
    use proptest::prelude::*;

    fn at(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn ns(rfc3339: &str) -> i64 {
        at(rfc3339).timestamp_nanos_opt().unwrap()
    }

    #[test]
    fn rfc5424_example_with_structured_data() {
        let line = r#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high"] An application event log entry"#;
        let m = parse(line, &Utc::now()).unwrap();
        assert_eq!(m.format, Format::Rfc5424);
        assert_eq!(
            m.priority,
            Some(Priority {
                facility: 20,
                severity: 5
            })
        );
        assert_eq!(m.priority.unwrap().facility_name(), "local4");
        assert_eq!(m.version, Some(1));
        assert_eq!(m.timestamp, Some(1_065_910_455_003_000_000));
        assert_eq!(m.hostname, Some("mymachine.example.com"));
        assert_eq!(m.appname, Some("evntslog"));
        assert_eq!(m.procid, None);
        assert_eq!(m.msgid, Some("ID47"));
        assert_eq!(m.structured_data.len(), 2);
        assert_eq!(m.structured_data[0].id, "exampleSDID@32473");
        assert_eq!(
            m.structured_data[0].params,
            vec![
                ("iut", Cow::Borrowed("3")),
                ("eventSource", Cow::Borrowed("Application")),
                ("eventID", Cow::Borrowed("1011"))
            ]
        );
        assert_eq!(
            m.structured_data[1].params[0],
            ("class", Cow::Borrowed("high"))
        );
        assert_eq!(m.message, "An application event log entry");
    }

    #[test]
    fn rfc5424_all_nil_without_message_and_with_bom_and_offset() {
        let m = parse("<13>1 - - - - - -", &Utc::now()).unwrap();
        assert_eq!((m.timestamp, m.hostname, m.appname), (None, None, None));
        assert_eq!(m.message, "");
        let m = parse(
            "<14>1 2026-12-05T04:00:00.5+01:00 pi-3 app 42 - - \u{feff}héllo wörld",
            &Utc::now(),
        )
        .unwrap();
        assert_eq!(m.timestamp, Some(ns("2026-12-05T03:00:00.5Z")));
        assert_eq!(m.procid, Some("42"));
        assert_eq!(m.message, "héllo wörld");
    }

    #[test]
    fn structured_data_values_are_unescaped_and_keep_unknown_escapes() {
        let m = parse(
            r#"<13>1 - h a - - [x@1 q="say \"hi\" \] \\ \n"] msg"#,
            &Utc::now(),
        )
        .unwrap();
        assert_eq!(m.structured_data[0].params[0].1, r#"say "hi" ] \ \n"#);
        assert_eq!(m.message, "msg");
    }

    #[test]
    fn broken_rfc5424_headers_are_malformed_with_a_reason() {
        let now = Utc::now();
        assert_eq!(
            parse("<13>1 2026-12-05T04:00:00Z h", &now),
            Err(Malformed::Incomplete5424)
        );
        assert_eq!(
            parse("<13>1 yesterday h a - - - m", &now),
            Err(Malformed::Timestamp5424)
        );
        assert_eq!(
            parse(r#"<13>1 - h a - - [x@1 q="open"#, &now),
            Err(Malformed::StructuredData)
        );
        assert_eq!(
            parse("<13>1 - h a - - nosd m", &now),
            Err(Malformed::StructuredData)
        );
    }

    #[test]
    fn rfc3164_with_host_tag_and_pid() {
        let now = at("2026-12-05T03:00:00Z");
        let m = parse(
            "<34>Oct 11 22:14:15 mymachine su[123]: 'su root' failed",
            &now,
        )
        .unwrap();
        assert_eq!(m.format, Format::Rfc3164);
        assert_eq!(m.priority.unwrap().facility_name(), "auth");
        assert_eq!(m.priority.unwrap().severity, 2);
        assert_eq!(m.timestamp, Some(ns("2026-10-11T22:14:15Z")));
        assert_eq!(m.hostname, Some("mymachine"));
        assert_eq!(m.appname, Some("su"));
        assert_eq!(m.procid, Some("123"));
        assert_eq!(m.message, "'su root' failed");
    }

    #[test]
    fn rfc3164_from_a_local_sender_has_no_host_name() {
        let now = at("2026-12-05T03:00:00Z");
        let m = parse("<30>Dec  5 02:59:58 cron: job done", &now).unwrap();
        assert_eq!(m.hostname, None);
        assert_eq!(m.appname, Some("cron"));
        assert_eq!(m.message, "job done");
        let m = parse("<30>Dec  5 02:59:58 sshd[7]: hi", &now).unwrap();
        assert_eq!(
            (m.hostname, m.appname, m.procid),
            (None, Some("sshd"), Some("7"))
        );
    }

    #[test]
    fn rfc3164_without_a_tag_keeps_the_rest_as_message() {
        let now = at("2026-12-05T03:00:00Z");
        let m = parse(
            "<189>Dec  5 02:59:58 switch-1 %LINK-3-UPDOWN Interface up",
            &now,
        )
        .unwrap();
        assert_eq!(m.hostname, Some("switch-1"));
        assert_eq!(m.appname, None);
        assert_eq!(m.message, "%LINK-3-UPDOWN Interface up");
    }

    #[test]
    fn rfc3164_year_is_the_one_closest_to_receipt() {
        // A December message received in early January is last year's.
        let m = parse("<13>Dec 31 23:59:59 h a: m", &at("2027-01-01T00:00:10Z")).unwrap();
        assert_eq!(m.timestamp, Some(ns("2026-12-31T23:59:59Z")));
        // A January message received on 31 December (sender's clock ahead) is next year's.
        let m = parse("<13>Jan  1 00:00:05 h a: m", &at("2026-12-31T23:59:50Z")).unwrap();
        assert_eq!(m.timestamp, Some(ns("2027-01-01T00:00:05Z")));
        // 29 February takes the nearest leap year.
        let m = parse("<13>Feb 29 12:00:00 h a: m", &at("2028-03-01T00:00:00Z")).unwrap();
        assert_eq!(m.timestamp, Some(ns("2028-02-29T12:00:00Z")));
    }

    #[test]
    fn rfc3164_days_may_be_unpadded_and_seconds_fractional() {
        let now = at("2026-12-05T03:00:00Z");
        let m = parse("<13>Dec 5 02:59:58 h a: m", &now).unwrap();
        assert_eq!(m.timestamp, Some(ns("2026-12-05T02:59:58Z")));
        let m = parse("<13>Dec 05 02:59:58.25 h a: m", &now).unwrap();
        assert_eq!(m.timestamp, Some(ns("2026-12-05T02:59:58.25Z")));
        assert_eq!(m.hostname, Some("h"));
        assert_eq!(
            parse("<13>Dec 5 2:59:58 h a: m", &now),
            Err(Malformed::NoHeader)
        );
        assert_eq!(
            parse("<13>Dec 32 02:59:58 h a: m", &now),
            Err(Malformed::NoHeader)
        );
    }

    #[test]
    fn rfc3164_time_is_read_in_the_given_zone() {
        let zone = FixedOffset::east_opt(3600).unwrap();
        let now = at("2026-12-05T03:00:00Z").with_timezone(&zone);
        let m = parse("<13>Dec  5 04:00:00 h a: m", &now).unwrap();
        assert_eq!(m.timestamp, Some(ns("2026-12-05T03:00:00Z")));
    }

    #[test]
    fn rfc3339_time_in_a_bsd_header_is_read_as_is() {
        let m = parse(
            "<86>2026-12-05T03:00:00.123456+00:00 pi-2 sudo: pam_unix opened",
            &Utc::now(),
        )
        .unwrap();
        assert_eq!(m.format, Format::Rfc3164);
        assert_eq!(m.timestamp, Some(ns("2026-12-05T03:00:00.123456Z")));
        assert_eq!((m.hostname, m.appname), (Some("pi-2"), Some("sudo")));
        assert_eq!(m.priority.unwrap().facility_name(), "authpriv");
    }

    #[test]
    fn messages_without_priority_or_header_are_malformed() {
        let now = Utc::now();
        assert_eq!(parse("hello world", &now), Err(Malformed::NoPriority));
        assert_eq!(parse("<>x", &now), Err(Malformed::NoPriority));
        assert_eq!(parse("<1a>x", &now), Err(Malformed::NoPriority));
        assert_eq!(
            parse("<192>Oct 11 22:14:15 h a: m", &now),
            Err(Malformed::PriorityRange)
        );
        assert_eq!(parse("<13>just text", &now), Err(Malformed::NoHeader));
        assert_eq!(
            parse("<13>Foo 11 22:14:15 h a: m", &now),
            Err(Malformed::NoHeader)
        );
        assert_eq!(parse("<13>", &now), Err(Malformed::NoHeader));
    }

    #[test]
    fn file_lines_may_lack_the_priority_but_not_the_header() {
        let now = at("2026-11-06T00:00:00Z");
        let m = parse_file_line("Nov  5 01:02:03 pi4 kernel: usb 1-1: new device", &now).unwrap();
        assert_eq!(m.priority, None);
        assert_eq!((m.hostname, m.appname), (Some("pi4"), Some("kernel")));
        assert_eq!(m.message, "usb 1-1: new device");
        assert_eq!(
            parse_file_line("hello world", &now),
            Err(Malformed::NoPriority)
        );
        assert!(parse_file_line("<13>1 - h a - - - x", &now).is_ok());
    }

    #[test]
    fn trailing_newline_and_nul_are_not_part_of_the_message() {
        let m = parse("<13>1 - h a - - - text\r\n\0", &Utc::now()).unwrap();
        assert_eq!(m.message, "text");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let text = String::from_utf8_lossy(&bytes);
            let _ = parse(&text, &Utc::now());
        }

        #[test]
        fn syslog_shaped_text_never_panics(
            pri in 0u16..300,
            body in r#"[ -~\[\]"\\=é\u{feff}]{0,120}"#,
            rfc5424 in any::<bool>(),
        ) {
            let text = if rfc5424 {
                format!("<{pri}>1 {body}")
            } else {
                format!("<{pri}>Feb 29 12:00:00 {body}")
            };
            let _ = parse(&text, &Utc::now());
        }
    }
}
