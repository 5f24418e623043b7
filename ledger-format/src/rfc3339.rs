//! RFC 3339 timestamps as statements and entries carry them (`signed_at`, `occurred_at`,
//! `submitted_at`): a strict syntax check, the conversion to Unix milliseconds and back, with
//! no time library (the crate stays free of I/O and platform clocks).

/// Returns the number of days in `month` (1..=12) of `year`, proleptic Gregorian.
fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Returns true for `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` naming a real calendar day (no
/// 31st of April, no 29th of February outside leap years), hours 00-23, minutes 00-59, seconds
/// 00-60 (RFC 3339 §5.7 allows a leap second) and an offset of at most ±23:59.
pub fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 20 {
        return false;
    }
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    let num = |r: std::ops::Range<usize>| s[r].parse::<u32>().unwrap_or(99);
    let date = digits(0..4) && b[4] == b'-' && digits(5..7) && b[7] == b'-' && digits(8..10);
    let time = digits(11..13) && b[13] == b':' && digits(14..16) && b[16] == b':' && digits(17..19);
    if !(date && matches!(b[10], b'T' | b't') && time) {
        return false;
    }
    let month = num(5..7);
    if !(1..=12).contains(&month)
        || !(1..=days_in_month(num(0..4), month)).contains(&num(8..10))
        || num(11..13) > 23
        || num(14..16) > 59
        || num(17..19) > 60
    {
        return false;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    match rest.as_bytes() {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => {
            [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit())
                && (h1 - b'0') * 10 + (h2 - b'0') <= 23
                && (m1 - b'0') * 10 + (m2 - b'0') <= 59
        }
        _ => false,
    }
}

/// Returns a date (`YYYY-MM-DD`, meaning its midnight UTC) or an RFC 3339 time as Unix
/// milliseconds, or `None` for anything else: the bounds of date-range queries and reports.
pub fn date_or_time_to_ms(s: &str) -> Option<u64> {
    if s.len() == 10 {
        return rfc3339_to_ms(&format!("{s}T00:00:00Z"));
    }
    rfc3339_to_ms(s)
}

/// Returns an RFC 3339 time as Unix milliseconds (UTC), or `None` if it is not one (or is
/// before 1970).
pub fn rfc3339_to_ms(s: &str) -> Option<u64> {
    if !is_rfc3339(s) {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s[r].parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (hh, mm, ss) = (n(11..13)?, n(14..16)?, n(17..19)?);
    let mut rest = &s[19..];
    let mut ms = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits: String = frac.chars().take_while(char::is_ascii_digit).collect();
        let padded = format!("{:0<3}", &digits[..digits.len().min(3)]);
        ms = padded.parse().ok()?;
        rest = &frac[digits.len()..];
    }
    let offset_min = match rest.as_bytes() {
        [b'Z' | b'z'] => 0,
        [sign, ..] => {
            let (oh, om) = (
                rest[1..3].parse::<i64>().ok()?,
                rest[4..6].parse::<i64>().ok()?,
            );
            let o = oh * 60 + om;
            if *sign == b'-' {
                -o
            } else {
                o
            }
        }
        _ => return None,
    };
    // Days from civil (Howard Hinnant), proleptic Gregorian.
    let (y2, m2) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * m2 + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss - offset_min * 60;
    u64::try_from(secs * 1000 + ms).ok()
}

/// Returns `ms` since the Unix epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ` (proleptic Gregorian, UTC).
pub fn format_ms(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

/// Returns the UTC day (`YYYY-MM-DD`) of `ms` since the Unix epoch.
pub fn day_of(ms: u64) -> String {
    format_ms(ms)[..10].to_owned()
}

/// Returns (year, month, day) for days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants_and_reads_them_back() {
        assert_eq!(format_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_ms(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(format_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(day_of(951_782_400_000 + 86_399_999), "2000-02-29");
        for ms in [0, 1_700_000_000_123, 4_102_444_800_000, 951_868_799_999] {
            assert_eq!(rfc3339_to_ms(&format_ms(ms)), Some(ms));
        }
    }

    /// Impossible or loosely written times are refused (`max_age` depends on them).
    #[test]
    fn impossible_times_are_refused() {
        for bad in [
            "2999-02-31T00:00:00+99:99",
            "2026-02-29T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-01-01T00:00:00+24:00",
            "2026-01-01T00:00:00+01:60",
            "2026-01-01T24:00:00Z",
        ] {
            assert!(!is_rfc3339(bad), "{bad}");
            assert_eq!(rfc3339_to_ms(bad), None, "{bad}");
        }
        assert!(is_rfc3339("2024-02-29T00:00:00Z"));
        assert!(is_rfc3339("2000-02-29T23:59:60-23:59"));
        // Before 1970: no value, so nothing can treat it as "not expired".
        assert_eq!(rfc3339_to_ms("1969-12-31T23:59:59Z"), None);
        assert_eq!(rfc3339_to_ms("0001-01-01T00:00:00Z"), None);
        assert_eq!(rfc3339_to_ms("1970-01-01T00:00:01Z"), Some(1000));
        assert_eq!(rfc3339_to_ms("1970-01-01T01:00:00+01:00"), Some(0));
    }
}
