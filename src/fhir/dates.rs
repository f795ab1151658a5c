//! FHIR date, dateTime and instant values as inclusive ranges of microseconds (UTC):
//! `2026` covers the whole year, `2026-11-20T10:00:00Z` one second. Dates without a
//! time are days in UTC.

use time::{Date, Month, PrimitiveDateTime, Time, UtcOffset};

/// The inclusive range `[low, high]` a value covers, or `None` if it is not a FHIR
/// date, dateTime or instant (a time needs a zone; minutes without seconds are allowed).
pub fn date_range(value: &str) -> Option<(i64, i64)> {
    let (date_part, time_part) = match value.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (value, None),
    };
    let fields: Vec<&str> = date_part.split('-').collect();
    let year = digits(fields.first()?, 4)?;
    let month = match fields.get(1) {
        Some(m) => Some(digits(m, 2)?),
        None => None,
    };
    let day = match fields.get(2) {
        Some(d) => Some(digits(d, 2)?),
        None => None,
    };
    if fields.len() > 3 || (time_part.is_some() && day.is_none()) {
        return None;
    }
    let year = i32::try_from(year).ok()?;
    let Some(time_part) = time_part else {
        let (start, end) = match (month, day) {
            (None, _) => (ymd(year, 1, 1)?, ymd(year + 1, 1, 1)?),
            (Some(m), None) => {
                let start = ymd(year, m, 1)?;
                let end = if m == 12 {
                    ymd(year + 1, 1, 1)?
                } else {
                    ymd(year, m + 1, 1)?
                };
                (start, end)
            }
            (Some(m), Some(d)) => {
                let start = ymd(year, m, d)?;
                (start, start.next_day()?)
            }
        };
        return Some((
            micros(start, Time::MIDNIGHT, UtcOffset::UTC),
            micros(end, Time::MIDNIGHT, UtcOffset::UTC) - 1,
        ));
    };
    let date = ymd(year, month?, day?)?;
    let (clock, offset) = split_zone(time_part)?;
    let parts: Vec<&str> = clock.split(':').collect();
    let hour = u8::try_from(digits(parts.first()?, 2)?).ok()?;
    let minute = u8::try_from(digits(parts.get(1)?, 2)?).ok()?;
    let (second, fraction) = match parts.get(2) {
        None => (None, None),
        Some(s) => match s.split_once('.') {
            Some((whole, frac)) => (Some(digits(whole, 2)?), Some(frac)),
            None => (Some(digits(s, 2)?), None),
        },
    };
    if parts.len() > 3 {
        return None;
    }
    let sec = u8::try_from(second.unwrap_or(0)).ok()?;
    let mut micro = 0_u32;
    if let Some(frac) = fraction {
        if frac.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let six: String = frac.chars().chain(std::iter::repeat('0')).take(6).collect();
        micro = six.parse().ok()?;
    }
    let low = micros(
        date,
        Time::from_hms_micro(hour, minute, sec, micro).ok()?,
        offset,
    );
    let width: i64 = match (second, fraction) {
        (None, _) => 60_000_000,
        (Some(_), None) => 1_000_000,
        (Some(_), Some(_)) => 1,
    };
    Some((low, low + width - 1))
}

fn digits(s: &str, len: usize) -> Option<u32> {
    (s.len() == len && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

fn ymd(year: i32, month: u32, day: u32) -> Option<Date> {
    let month = Month::try_from(u8::try_from(month).ok()?).ok()?;
    Date::from_calendar_date(year, month, u8::try_from(day).ok()?).ok()
}

/// `10:00:00+01:00` -> (`10:00:00`, +01:00); `Z` is UTC; a zone is required.
fn split_zone(time: &str) -> Option<(&str, UtcOffset)> {
    if let Some(clock) = time.strip_suffix('Z') {
        return Some((clock, UtcOffset::UTC));
    }
    let at = time.rfind(['+', '-'])?;
    let (clock, zone) = time.split_at(at);
    let sign: i8 = if zone.starts_with('-') { -1 } else { 1 };
    let (h, m) = zone.get(1..)?.split_once(':')?;
    let h = i8::try_from(digits(h, 2)?).ok()?;
    let m = i8::try_from(digits(m, 2)?).ok()?;
    Some((clock, UtcOffset::from_hms(sign * h, sign * m, 0).ok()?))
}

fn micros(date: Date, time: Time, offset: UtcOffset) -> i64 {
    let t = PrimitiveDateTime::new(date, time).assume_offset(offset);
    i64::try_from(t.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::date_range;

    const DAY: i64 = 86_400_000_000;

    #[test]
    fn partial_dates_are_ranges() {
        let (lo, hi) = date_range("1970").unwrap();
        assert_eq!(lo, 0);
        assert_eq!(hi, 365 * DAY - 1);
        let (lo, hi) = date_range("1970-02").unwrap();
        assert_eq!((lo, hi), (31 * DAY, 59 * DAY - 1));
        let (lo, hi) = date_range("1970-01-02").unwrap();
        assert_eq!((lo, hi), (DAY, 2 * DAY - 1));
        let (lo, hi) = date_range("1970-01-01T01:00:00+01:00").unwrap();
        assert_eq!((lo, hi), (0, 999_999));
        let (lo, hi) = date_range("1970-01-01T00:01Z").unwrap();
        assert_eq!((lo, hi), (60_000_000, 120_000_000 - 1));
        let (lo, hi) = date_range("1970-01-01T00:00:00.5Z").unwrap();
        assert_eq!((lo, hi), (500_000, 500_000));
        let (_, hi) = date_range("2024-12").unwrap();
        assert_eq!(hi + 1, date_range("2025").unwrap().0);
    }

    #[test]
    fn malformed_values_are_refused() {
        for bad in [
            "",
            "70",
            "1970-1",
            "1970-13",
            "1970-02-30",
            "1970-01-01T10:00:00",
            "1970-01-01T10Z",
            "2026-11-20T10:00:00+1",
        ] {
            assert!(date_range(bad).is_none(), "{bad}");
        }
    }
}
