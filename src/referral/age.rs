//! The age group on the referral date, and the referral date itself.

use fhir_sdk::{Date, DateTime};
use time::{Month, OffsetDateTime};

/// The two groups the directory distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgeGroup {
    Under18,
    Adult,
}

impl AgeGroup {
    /// The code in the project's age-group CodeSystem.
    pub fn code(self) -> &'static str {
        match self {
            Self::Under18 => "under-18",
            Self::Adult => "18-plus",
        }
    }
}

/// Why no age group could be decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgeError {
    NoBirthDate,
    /// A partial birth date (year, or year and month) that spans the 18th birthday.
    Imprecise,
    AfterReferral,
}

const ADULT_AGE: i32 = 18;

/// The age group on `on`. Someone born on 29 February turns a year older on 1 March
/// in years without 29 February (ages compare (month, day) pairs).
pub fn age_group(birth: Option<&Date>, on: time::Date) -> Result<AgeGroup, AgeError> {
    let (earliest, latest) = birth_range(birth.ok_or(AgeError::NoBirthDate)?)?;
    if earliest > on {
        return Err(AgeError::AfterReferral);
    }
    let group = |age: i32| {
        if age >= ADULT_AGE {
            AgeGroup::Adult
        } else {
            AgeGroup::Under18
        }
    };
    let oldest = group(age_on(earliest, on));
    let youngest = group(age_on(latest.min(on), on));
    if oldest == youngest {
        Ok(oldest)
    } else {
        Err(AgeError::Imprecise)
    }
}

fn age_on(birth: time::Date, on: time::Date) -> i32 {
    let before_birthday = (on.month() as u8, on.day()) < (birth.month() as u8, birth.day());
    on.year() - birth.year() - i32::from(before_birthday)
}

/// The first and last day a (partial) birth date can mean.
fn birth_range(birth: &Date) -> Result<(time::Date, time::Date), AgeError> {
    let day = |y, m, d| time::Date::from_calendar_date(y, m, d).map_err(|_| AgeError::NoBirthDate);
    match birth {
        Date::Date(d) => Ok((*d, *d)),
        Date::YearMonth(y, m) => Ok((day(*y, *m, 1)?, day(*y, *m, m.length(*y))?)),
        Date::Year(y) => Ok((day(*y, Month::January, 1)?, day(*y, Month::December, 31)?)),
    }
}

/// Where the referral date came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateSource {
    AuthoredOn,
    Received,
}

/// The referral date: `authoredOn` as a calendar date in the Netherlands, else the
/// day the hub received the referral. A partial `authoredOn` (year or month) cannot
/// give a day, so the receipt day is used.
pub fn referral_date(
    authored_on: Option<&DateTime>,
    received: OffsetDateTime,
) -> (time::Date, DateSource) {
    match authored_on {
        Some(DateTime::Date(Date::Date(d))) => (*d, DateSource::AuthoredOn),
        Some(DateTime::DateTime(instant)) => (dutch_date(instant.0), DateSource::AuthoredOn),
        _ => (dutch_date(received), DateSource::Received),
    }
}

/// The calendar date in Europe/Amsterdam at `instant`.
pub fn dutch_date(instant: OffsetDateTime) -> time::Date {
    let fallback = instant.date();
    let Ok(zone) = jiff::tz::TimeZone::get("Europe/Amsterdam") else {
        return fallback;
    };
    let Ok(ts) = jiff::Timestamp::from_second(instant.unix_timestamp()) else {
        return fallback;
    };
    let d = ts.to_zoned(zone).date();
    Month::try_from(d.month().unsigned_abs())
        .ok()
        .and_then(|m| {
            time::Date::from_calendar_date(i32::from(d.year()), m, d.day().unsigned_abs()).ok()
        })
        .unwrap_or(fallback)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    fn group(birth: &str, on: time::Date) -> Result<AgeGroup, AgeError> {
        let birth: Date = birth.parse().unwrap();
        age_group(Some(&birth), on)
    }

    #[test]
    fn birthdays() {
        let on = date!(2026 - 11 - 20);
        assert_eq!(
            group("2008-11-20", on),
            Ok(AgeGroup::Adult),
            "18th birthday"
        );
        assert_eq!(
            group("2008-11-21", on),
            Ok(AgeGroup::Under18),
            "one day short"
        );
        assert_eq!(group("2014-03-02", on), Ok(AgeGroup::Under18));
        assert_eq!(group("1958-04-17", on), Ok(AgeGroup::Adult));
        assert_eq!(group("2026-11-20", on), Ok(AgeGroup::Under18), "born today");
        assert_eq!(group("2026-11-21", on), Err(AgeError::AfterReferral));
        assert_eq!(age_group(None, on), Err(AgeError::NoBirthDate));
    }

    #[test]
    fn leap_day_birthdays_count_from_first_of_march() {
        assert_eq!(
            group("2008-02-29", date!(2026 - 02 - 28)),
            Ok(AgeGroup::Under18)
        );
        assert_eq!(
            group("2008-02-29", date!(2026 - 03 - 01)),
            Ok(AgeGroup::Adult)
        );
        assert_eq!(
            group("2008-02-29", date!(2028 - 02 - 29)),
            Ok(AgeGroup::Adult)
        );
    }

    #[test]
    fn partial_birth_dates_decide_only_when_every_day_agrees() {
        let on = date!(2026 - 11 - 20);
        assert_eq!(group("1958", on), Ok(AgeGroup::Adult));
        assert_eq!(group("2008", on), Err(AgeError::Imprecise));
        assert_eq!(group("2008-10", on), Ok(AgeGroup::Adult));
        assert_eq!(group("2008-11", on), Err(AgeError::Imprecise));
        assert_eq!(group("2008-12", on), Ok(AgeGroup::Under18));
        assert_eq!(group("2009", on), Ok(AgeGroup::Under18));
        assert_eq!(group("2026", on), Ok(AgeGroup::Under18), "born this year");
        assert_eq!(group("2027", on), Err(AgeError::AfterReferral));
    }

    #[test]
    fn referral_dates_are_dutch_calendar_days() {
        let received = datetime!(2026-11-20 23:30 UTC);
        let at = |s: &str| referral_date(Some(&s.parse().unwrap()), received);
        assert_eq!(
            at("2026-11-20T10:00:00+01:00"),
            (date!(2026 - 11 - 20), DateSource::AuthoredOn)
        );
        // 23:30 UTC is already the next day in Amsterdam (CET, UTC+1).
        assert_eq!(
            at("2026-11-20T23:30:00Z"),
            (date!(2026 - 11 - 21), DateSource::AuthoredOn)
        );
        // Summer time: UTC+2.
        assert_eq!(
            at("2026-06-30T22:30:00Z"),
            (date!(2026 - 07 - 01), DateSource::AuthoredOn)
        );
        assert_eq!(
            at("2026-11-19"),
            (date!(2026 - 11 - 19), DateSource::AuthoredOn)
        );
        assert_eq!(at("2026-11"), (date!(2026 - 11 - 21), DateSource::Received));
        assert_eq!(
            referral_date(None, received),
            (date!(2026 - 11 - 21), DateSource::Received)
        );
    }
}
