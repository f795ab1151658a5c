//! FHIR `instant` values and HTTP dates, from the microsecond timestamps the store keeps.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::OffsetDateTime;

/// Now, in microseconds since the Unix epoch.
pub fn now_micros() -> i64 {
    to_micros(OffsetDateTime::now_utc())
}

fn to_micros(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX)
}

pub fn from_micros(micros: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// `2026-11-23T16:49:50.123456Z`
pub fn format_instant(micros: i64) -> String {
    let t = from_micros(micros);
    let fmt =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");
    t.format(&fmt).unwrap_or_default()
}

/// `Mon, 23 Nov 2026 16:49:50 GMT` (RFC 9110 IMF-fixdate) for Last-Modified.
pub fn format_http_date(micros: i64) -> String {
    let t = from_micros(micros);
    let fmt = format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    t.format(&fmt).unwrap_or_default()
}

/// Parses a FHIR instant (full date-time with zone) into microseconds.
pub fn parse_instant(value: &str) -> Option<i64> {
    OffsetDateTime::parse(value, &Rfc3339).ok().map(to_micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let t = parse_instant("2026-11-23T17:49:50.123456+01:00").unwrap();
        assert_eq!(format_instant(t), "2026-11-23T16:49:50.123456Z");
        assert_eq!(format_http_date(t), "Mon, 23 Nov 2026 16:49:50 GMT");
        assert!(parse_instant("2026-11-23").is_none());
    }
}
