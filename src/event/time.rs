//! Times as text on the hot paths, by calendar arithmetic rather than a
//! general formatter: RFC 3339 output (every timestamp attribute shipped)
//! and the fixed layout of access logs' `[10/Oct/2000:13:55:36 -0700]`.
//! Anything these do not cover exactly is left to the caller's general
//! parser, so they change no result, only the cost.

/// Bytes of [`rfc3339`]'s text: `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
pub const RFC3339_LEN: usize = 30;

const NANOS: i64 = 1_000_000_000;
const DAY: i64 = 86_400;

/// RFC 3339 text (UTC, nanoseconds) of a time in ns since the epoch. Every
/// `i64` is a time between the years 1677 and 2262, so the text always has
/// [`RFC3339_LEN`] bytes.
pub fn rfc3339(ns: i64) -> [u8; RFC3339_LEN] {
    let (secs, nanos) = (ns.div_euclid(NANOS), ns.rem_euclid(NANOS));
    let (days, of_day) = (secs.div_euclid(DAY), secs.rem_euclid(DAY));
    let (year, month, day) = civil_from_days(days);
    let mut out = *b"0000-00-00T00:00:00.000000000Z";
    digits(&mut out[0..4], year);
    digits(&mut out[5..7], month);
    digits(&mut out[8..10], day);
    digits(&mut out[11..13], of_day / 3600);
    digits(&mut out[14..16], of_day / 60 % 60);
    digits(&mut out[17..19], of_day % 60);
    digits(&mut out[20..29], nanos);
    out
}

/// Writes `n` as decimal digits filling `out` (zero-padded on the left).
fn digits(out: &mut [u8], mut n: i64) {
    for b in out.iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// (year, month, day) of a day count since 1970-01-01 (proleptic
/// Gregorian; Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the inverse of
/// [`civil_from_days`]).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The time of `10/Oct/2000:13:55:36 -0700` (chrono's
/// `%d/%b/%Y:%H:%M:%S %z`, as nginx and Apache write it) in ns since the
/// epoch; `None` for anything but exactly that layout with valid fields
/// and an English month abbreviation, or a time outside `i64` ns.
pub fn parse_common_log(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 26
        || b[2] != b'/'
        || b[6] != b'/'
        || b[11] != b':'
        || b[14] != b':'
        || b[17] != b':'
        || b[20] != b' '
    {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        b[range].iter().try_fold(0i64, |n, c| {
            c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0'))
        })
    };
    const MONTHS: [&[u8]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let month = MONTHS.iter().position(|m| *m == &b[3..6])? as i64 + 1;
    let (day, year) = (num(0..2)?, num(7..11)?);
    let (hour, minute, second) = (num(12..14)?, num(15..17)?, num(18..20)?);
    let sign = match b[21] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (off_h, off_m) = (num(22..24)?, num(24..26)?);
    if !(1..=days_in_month(year, month)).contains(&day)
        || hour > 23
        || minute > 59
        || second > 59
        || off_h > 23
        || off_m > 59
    {
        return None;
    }
    let secs = days_from_civil(year, month, day) * DAY + hour * 3600 + minute * 60 + second
        - sign * (off_h * 3600 + off_m * 60);
    secs.checked_mul(NANOS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn chrono_rfc3339(ns: i64) -> String {
        chrono::DateTime::from_timestamp_nanos(ns)
            .format("%Y-%m-%dT%H:%M:%S%.9fZ")
            .to_string()
    }

    #[test]
    fn rfc3339_of_known_times() {
        assert_eq!(&rfc3339(0), b"1970-01-01T00:00:00.000000000Z");
        assert_eq!(&rfc3339(-1), b"1969-12-31T23:59:59.999999999Z");
        assert_eq!(
            &rfc3339(951_782_400_000_000_001),
            b"2000-02-29T00:00:00.000000001Z"
        );
        assert_eq!(&rfc3339(i64::MIN), chrono_rfc3339(i64::MIN).as_bytes());
        assert_eq!(&rfc3339(i64::MAX), chrono_rfc3339(i64::MAX).as_bytes());
    }

    #[test]
    fn common_log_times_of_known_lines() {
        assert_eq!(
            parse_common_log("10/Oct/2000:13:55:36 -0700"),
            Some(971_211_336_000_000_000)
        );
        assert_eq!(parse_common_log("29/Feb/2001:00:00:00 +0000"), None);
        assert_eq!(parse_common_log("10/oct/2000:13:55:36 -0700"), None);
        assert_eq!(parse_common_log("10/Oct/2000:13:55:60 -0700"), None);
        assert_eq!(parse_common_log("1/Oct/2000:13:55:36 -0700"), None);
    }

    proptest! {
        #[test]
        fn rfc3339_is_chronos_text_for_every_time(ns in any::<i64>()) {
            let ours = rfc3339(ns);
            prop_assert_eq!(std::str::from_utf8(&ours).unwrap(), chrono_rfc3339(ns));
        }

        #[test]
        fn common_log_time_is_chronos_wherever_it_answers(
            day in 0u32..33, month in 0usize..13, year in 1600u32..2300,
            hour in 0u32..25, minute in 0u32..61, second in 0u32..61,
            minus in any::<bool>(), off_h in 0u32..25, off_m in 0u32..61,
        ) {
            const NAMES: [&str; 13] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec", "Foo"];
            let text = format!(
                "{day:02}/{}/{year:04}:{hour:02}:{minute:02}:{second:02} {}{off_h:02}{off_m:02}",
                NAMES[month],
                if minus { '-' } else { '+' },
            );
            let chrono = chrono::DateTime::parse_from_str(&text, "%d/%b/%Y:%H:%M:%S %z")
                .ok()
                .and_then(|t| t.timestamp_nanos_opt());
            match parse_common_log(&text) {
                Some(ns) => prop_assert_eq!(Some(ns), chrono, "{}", text),
                // Where ours declines, the caller asks chrono: only a leap
                // second or an odd offset may parse there.
                None => prop_assert!(chrono.is_none() || second == 60 || off_h > 23, "{}", text),
            }
        }
    }
}
