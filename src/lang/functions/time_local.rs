//! The time of access-log lines (`25/Nov/2026:10:00:00 +0100`: nginx
//! `$time_local`, Apache `%t`). Written the way servers write it, it is read
//! field by field here, without chrono's format interpreter (a tenth of the
//! work); any other spelling, and every error, is left to
//! [`parse_time`] with the format `%d/%b/%Y:%H:%M:%S %z`, so the result is
//! always the one that gives.

use super::convert::parse_time;
use chrono::NaiveDate;

/// The chrono format of the access-log time.
pub const FORMAT: &str = "%d/%b/%Y:%H:%M:%S %z";

/// Nanoseconds since the epoch of an access-log time.
pub fn parse_time_local(text: &str) -> Result<i64, String> {
    match usual(text.as_bytes()) {
        Some(nanos) => Ok(nanos),
        None => parse_time(text, Some(FORMAT)),
    }
}

/// The time of `DD/Mon/YYYY:HH:MM:SS +HHMM` with every field in range (a
/// year from 1900 to 2200, so the nanoseconds always fit; no leap second);
/// `None` for anything else.
fn usual(b: &[u8]) -> Option<i64> {
    let [d1, d2, b'/', m1, m2, m3, b'/', y1, y2, y3, y4, b':', h1, h2, b':', mi1, mi2, b':', s1, s2, b' ', sign, oh1, oh2, om1, om2] =
        *b
    else {
        return None;
    };
    let month = match [m1, m2, m3] {
        [b'J', b'a', b'n'] => 1,
        [b'F', b'e', b'b'] => 2,
        [b'M', b'a', b'r'] => 3,
        [b'A', b'p', b'r'] => 4,
        [b'M', b'a', b'y'] => 5,
        [b'J', b'u', b'n'] => 6,
        [b'J', b'u', b'l'] => 7,
        [b'A', b'u', b'g'] => 8,
        [b'S', b'e', b'p'] => 9,
        [b'O', b'c', b't'] => 10,
        [b'N', b'o', b'v'] => 11,
        [b'D', b'e', b'c'] => 12,
        _ => return None,
    };
    let year = number(&[y1, y2, y3, y4])?;
    let (hour, minute, second) = (number(&[h1, h2])?, number(&[mi1, mi2])?, number(&[s1, s2])?);
    let (offset_hours, offset_minutes) = (number(&[oh1, oh2])?, number(&[om1, om2])?);
    let east = match sign {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    if !(1900..=2200).contains(&year)
        || hour > 23
        || minute > 59
        || second > 59
        || offset_hours > 23
        || offset_minutes > 59
    {
        return None;
    }
    let local = NaiveDate::from_ymd_opt(year as i32, month, number(&[d1, d2])?)?
        .and_hms_opt(hour, minute, second)?
        .and_utc()
        .timestamp();
    let offset = east * i64::from(offset_hours * 3600 + offset_minutes * 60);
    Some((local - offset) * 1_000_000_000)
}

/// ASCII digits as a number.
fn number(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0, |n, &d| {
        d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn usual_times_are_read_directly_and_the_rest_by_chrono() {
        assert_eq!(
            usual(b"25/Nov/2026:10:00:00 +0100"),
            Some(1_795_597_200_000_000_000)
        );
        assert_eq!(
            parse_time_local("25/Nov/2026:10:00:00 +0100"),
            parse_time("25/Nov/2026:10:00:00 +0100", Some(FORMAT))
        );
        // Chrono's spellings: a lower-case month, an offset with a colon.
        for other in ["25/nov/2026:10:00:00 +0100", "25/Nov/2026:10:00:00 +01:00"] {
            assert_eq!(usual(other.as_bytes()), None, "{other}");
            assert_eq!(
                parse_time_local(other),
                Ok(1_795_597_200_000_000_000),
                "{other}"
            );
        }
        let e = parse_time_local("31/Nov/2026:10:00:00 +0100").unwrap_err();
        assert!(e.starts_with("cannot parse timestamp"), "{e}");
    }

    const MONTHS: [&str; 14] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec", "nov",
        "Foo",
    ];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 5_000, ..ProptestConfig::default() })]

        #[test]
        fn access_log_times_read_as_chrono_reads_them(
            day in 0u32..33,
            month in 0usize..MONTHS.len(),
            year in prop_oneof![1899u32..2202, 0u32..10_000],
            hour in 0u32..25,
            minute in 0u32..61,
            second in 0u32..62,
            sign in prop_oneof![Just('+'), Just('-'), Just(' ')],
            offset_hours in 0u32..30,
            offset_minutes in 0u32..62,
        ) {
            let text = format!(
                "{day:02}/{}/{year:04}:{hour:02}:{minute:02}:{second:02} {sign}{offset_hours:02}{offset_minutes:02}",
                MONTHS[month]
            );
            prop_assert_eq!(parse_time_local(&text), parse_time(&text, Some(FORMAT)));
        }

        #[test]
        fn any_text_reads_as_chrono_reads_it(text in "[0-9/:+ A-Za-z-]{20,30}") {
            prop_assert_eq!(parse_time_local(&text), parse_time(&text, Some(FORMAT)));
        }
    }
}
