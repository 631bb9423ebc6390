//! RFC 3339 timestamps as container runtimes write them
//! (`2026-03-01T10:00:00.123456789Z`, `2026-03-01T11:00:00.5+01:00`),
//! parsed to nanoseconds since the Unix epoch without allocating.

/// Parses an RFC 3339 date-time with optional fraction (up to nanoseconds)
/// and a `Z` or `±hh:mm` offset. `None` when it is not one, or before 1970.
pub fn parse_rfc3339_nanos(text: &[u8]) -> Option<u64> {
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = text.get(range)?;
        let mut n = 0i64;
        for &d in digits {
            if !d.is_ascii_digit() {
                return None;
            }
            n = n * 10 + i64::from(d - b'0');
        }
        Some(n)
    };
    let sep = |i: usize, c: &[u8]| text.get(i).is_some_and(|b| c.contains(b));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0i64;
    if text.get(i) == Some(&b'.') {
        i += 1;
        let mut scale = 100_000_000i64;
        let begin = i;
        while let Some(d) = text.get(i).filter(|d| d.is_ascii_digit()) {
            nanos += i64::from(d - b'0') * scale;
            scale /= 10;
            i += 1;
        }
        if i == begin {
            return None;
        }
    }
    let offset_seconds = match text.get(i)? {
        b'Z' | b'z' if i + 1 == text.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == text.len() && sep(i + 3, b":") => {
            let minutes = num(i + 1..i + 3)? * 60 + num(i + 4..i + 6)?;
            if *sign == b'+' {
                minutes * 60
            } else {
                -minutes * 60
            }
        }
        _ => return None,
    };
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
        - offset_seconds;
    u64::try_from(seconds)
        .ok()?
        .checked_mul(1_000_000_000)?
        .checked_add(nanos as u64)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_and_cri_timestamps_parse_to_epoch_nanos() {
        assert_eq!(parse_rfc3339_nanos(b"1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339_nanos(b"2026-03-01T10:00:00.123456789Z"),
            Some(1_772_359_200_123_456_789)
        );
        assert_eq!(
            parse_rfc3339_nanos(b"2026-03-01T11:00:00.5+01:00"),
            Some(1_772_359_200_500_000_000)
        );
        assert_eq!(
            parse_rfc3339_nanos(b"2024-02-29T23:59:59-00:30"),
            parse_rfc3339_nanos(b"2024-03-01T00:29:59Z")
        );
    }

    #[test]
    fn malformed_timestamps_are_refused() {
        for bad in [
            &b"2026-03-01 10:00"[..],
            b"2026-13-01T10:00:00Z",
            b"2026-03-01T10:00:00",
            b"2026-03-01T10:00:00.Z",
            b"2026-03-01T10:00:00Zjunk",
            b"",
        ] {
            assert_eq!(
                parse_rfc3339_nanos(bad),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
