//! Reading "when" as a member types it, in their time zone, into one UTC instant.
//!
//! Accepted (any letter case, extra spaces ignored):
//! - relative: `in 2h30m`, `in 90 minutes`, `90 minutes`, `in an hour`, `in 1 day 2 hours`
//!   (units: m/min/minute(s), h/hr/hour(s), d/day(s), w/week(s)). A relative time is real
//!   elapsed time from `now`: "in 24h" across a DST change is 24 hours, not the same wall time.
//! - a day and a time: `today 18:00`, `tomorrow 9:00`, `tomorrow at 9am`, `friday 18:00`,
//!   `fri 6pm`. A weekday means the next such day; today if that time is still ahead today,
//!   otherwise a week from today.
//! - a bare time: `18:00`, `9:30pm` — the next time the member's clock shows it.
//! - a date and a time: `2026-12-24 18:00`, `2026-12-24T18:00`.
//! - ISO 8601 with an offset: `2026-12-24T18:00:00+01:00`, `2026-12-24T17:00Z`; the zone is
//!   then the one written, not the member's.
//!
//! Wall times (all but relative and ISO-with-offset) may end with an IANA zone that replaces the
//! member's for this one reading: `tomorrow 9:00 America/New_York`.
//!
//! DST: a wall time inside a gap (Europe/Berlin 2027-03-28 02:30 does not exist) is moved
//! forward by the gap's length (to 03:30 CEST); a wall time that happens twice (2027-10-31
//! 02:30) means the earlier of the two instants (CEST). [`resolve_local`] implements both and
//! recurrence uses it too.
//!
//! The result must be after `now` and at most five years ahead. Every refusal is a
//! [`ParseError`] whose text is written for the member.
//!
//! The end of a repeat ([`parse_end`]) is such a time, or a number of times: `10 times`,
//! `after 10 times`, `1 time`.
//!
//! Not here: repeating rules (`recurrence.rs`) and storing anything (`mod.rs`).

use chrono::{
    DateTime, Datelike, Days, Duration, LocalResult, Months, NaiveDate, NaiveDateTime, NaiveTime,
    Offset, TimeZone, Utc, Weekday,
};
use chrono_tz::Tz;

use crate::optins;

/// How far ahead a reminder may be set.
const MAX_MONTHS_AHEAD: u32 = 60;

/// The most times a repeat may be set to go off (also a CHECK in `schema/0005`).
pub const MAX_TIMES: u32 = 10_000;

/// How a repeat ends: with its last time at or before an instant, or after a number of times
/// (the first included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepeatEnd {
    At(DateTime<Utc>),
    After(u32),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("Tell me when, for example \"in 2h\", \"tomorrow 9:00\" or \"2026-12-24 18:00\".")]
    Empty,
    #[error(
        "I can't read \"{0}\" as a time. Try \"in 2h30m\", \"tomorrow 9:00\", \"friday 18:00\" \
         or \"2026-12-24 18:00\"."
    )]
    Unrecognised(String),
    #[error("Add a time of day, for example \"{0} 18:00\".")]
    MissingTime(String),
    #[error("\"{0}\" is not a time of day.")]
    NoSuchTime(String),
    #[error("\"{0}\" is not a date on the calendar.")]
    NoSuchDate(String),
    #[error(
        "I don't know the time zone \"{0}\". Use a name like Europe/Berlin or America/New_York."
    )]
    UnknownZone(String),
    #[error("That time is in the past.")]
    InPast,
    #[error("That is more than 5 years away. Pick an earlier time.")]
    TooFar,
    #[error("A repeat can go off from 1 to {max} times.")]
    Times { max: u32 },
}

impl ParseError {
    /// Every parse error is the member's to fix, so this is always `Some`; it exists so that
    /// callers treat all reminder errors alike.
    pub fn user_message(&self) -> Option<String> {
        Some(self.to_string())
    }
}

/// Reads `input` as a moment, wall times in `zone`, relative ones from `now`.
pub fn parse_when(input: &str, zone: Tz, now: DateTime<Utc>) -> Result<DateTime<Utc>, ParseError> {
    let text = input.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        return Err(ParseError::Empty);
    }
    let due = match with_offset(&text) {
        Some(instant) => instant,
        None => relative_or_wall(&text, zone, now)?,
    };
    check_window(due, now)?;
    Ok(due)
}

/// Reads the end of a repeat: `10 times` or `after 10 times` (a count), else a time as
/// [`parse_when`] reads it.
pub fn parse_end(input: &str, zone: Tz, now: DateTime<Utc>) -> Result<RepeatEnd, ParseError> {
    let lower = input.trim().to_lowercase();
    let count = lower.strip_prefix("after ").unwrap_or(&lower);
    let Some(number) = count
        .strip_suffix("times")
        .or_else(|| count.strip_suffix("time"))
        .map(str::trim)
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    else {
        return parse_when(input, zone, now).map(RepeatEnd::At);
    };
    number
        .parse()
        .ok()
        .filter(|n| (1..=MAX_TIMES).contains(n))
        .map(RepeatEnd::After)
        .ok_or(ParseError::Times { max: MAX_TIMES })
}

/// Refuses instants at or before `now` and more than five years after it.
pub fn check_window(due: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), ParseError> {
    if due <= now {
        return Err(ParseError::InPast);
    }
    match now.checked_add_months(Months::new(MAX_MONTHS_AHEAD)) {
        Some(limit) if due <= limit => Ok(()),
        _ => Err(ParseError::TooFar),
    }
}

/// The instant a wall time in `zone` denotes, with the DST rules of the module doc.
pub fn resolve_local(zone: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match zone.from_local_datetime(&local) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.with_timezone(&Utc),
        LocalResult::None => {
            // Reading the wall time with the offset in force before the gap lands exactly the
            // gap's length later on the far side. A day earlier is before any gap that
            // contains `local`, and zones do not change offset twice within a day.
            let before = zone
                .offset_from_utc_datetime(&(local - Days::new(1)))
                .fix()
                .local_minus_utc();
            (local - Duration::seconds(i64::from(before))).and_utc()
        }
    }
}

fn with_offset(text: &str) -> Option<DateTime<Utc>> {
    let upper = text.to_ascii_uppercase();
    let normalised = match upper.strip_suffix('Z') {
        Some(rest) => format!("{rest}+00:00"),
        None => upper,
    };
    [
        "%Y-%m-%dT%H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M%:z",
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M%:z",
    ]
    .iter()
    .find_map(|format| DateTime::parse_from_str(&normalised, format).ok())
    .map(|t| t.with_timezone(&Utc))
}

fn relative_or_wall(text: &str, zone: Tz, now: DateTime<Utc>) -> Result<DateTime<Utc>, ParseError> {
    let lower = text.to_lowercase();
    if let Some(rest) = lower.strip_prefix("in ") {
        let span = duration(rest).ok_or_else(|| ParseError::Unrecognised(text.to_owned()))?;
        return now.checked_add_signed(span).ok_or(ParseError::TooFar);
    }
    if let Some(span) = duration(&lower) {
        return now.checked_add_signed(span).ok_or(ParseError::TooFar);
    }
    let (words, zone) = split_zone(&lower, text, zone)?;
    wall_time(words, zone, now)?.ok_or_else(|| ParseError::Unrecognised(text.to_owned()))
}

/// Splits a trailing zone name (a last word containing '/', or "utc") off `lower`.
fn split_zone<'a>(lower: &'a str, original: &str, zone: Tz) -> Result<(&'a str, Tz), ParseError> {
    let Some((head, last)) = lower.rsplit_once(' ') else {
        return Ok((lower, zone));
    };
    if last != "utc" && !(last.contains('/') && last.chars().any(char::is_alphabetic)) {
        return Ok((lower, zone));
    }
    let written = original.rsplit_once(' ').map_or(last, |(_, w)| w);
    optins::parse_time_zone(written)
        .map(|named| (head, named))
        .map_err(|_| ParseError::UnknownZone(written.to_owned()))
}

/// `Ok(None)` when `words` does not have the shape of a wall time at all.
fn wall_time(
    words: &str,
    zone: Tz,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, ParseError> {
    let today = now.with_timezone(&zone).date_naive();
    let (day_word, rest) = split_day(words);
    let rest = match rest.strip_prefix("at") {
        Some(after) if after.is_empty() || after.starts_with(' ') => after.trim(),
        _ => rest.trim(),
    };
    let day = match day_word {
        "today" => Day::On(today),
        "tomorrow" => Day::On(today + Days::new(1)),
        word => match (word.parse::<Weekday>(), date(word)?) {
            (_, Some(date)) => Day::On(date),
            (Ok(weekday), None) => Day::Next(weekday),
            (Err(_), None) => {
                return Ok(time_of_day(words)?.map(|time| next_at(zone, now, today, time)))
            }
        },
    };
    if rest.is_empty() {
        return Err(ParseError::MissingTime(day_word.to_owned()));
    }
    let Some(time) = time_of_day(rest)? else {
        return Ok(None);
    };
    Ok(Some(match day {
        Day::On(date) => resolve_local(zone, date.and_time(time)),
        Day::Next(weekday) => {
            let ahead =
                (7 + weekday.num_days_from_monday() - today.weekday().num_days_from_monday()) % 7;
            let first = resolve_local(zone, (today + Days::new(ahead.into())).and_time(time));
            if first > now {
                first
            } else {
                resolve_local(
                    zone,
                    (today + Days::new(u64::from(ahead) + 7)).and_time(time),
                )
            }
        }
    }))
}

enum Day {
    On(NaiveDate),
    Next(Weekday),
}

/// Splits the first word off, treating `2026-12-24t18:00` as two words.
fn split_day(words: &str) -> (&str, &str) {
    let (first, rest) = words.split_once(' ').unwrap_or((words, ""));
    match first.split_once('t') {
        Some((date, time)) if date.len() == 10 && date.as_bytes()[4] == b'-' && rest.is_empty() => {
            (date, time)
        }
        _ => (first, rest),
    }
}

/// `Ok(None)` unless `word` looks like `YYYY-MM-DD`.
fn date(word: &str) -> Result<Option<NaiveDate>, ParseError> {
    let parts: Vec<&str> = word.split('-').collect();
    if parts.len() != 3
        || parts
            .iter()
            .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return Ok(None);
    }
    NaiveDate::parse_from_str(word, "%Y-%m-%d")
        .map(Some)
        .map_err(|_| ParseError::NoSuchDate(word.to_owned()))
}

/// `18:00`, `18:00:30`, `9:30pm`, `9 pm`, `9am`. `Ok(None)` when `text` is not shaped like a
/// time; an error when it is but names none (`25:00`, `13pm`).
pub(crate) fn time_of_day(text: &str) -> Result<Option<NaiveTime>, ParseError> {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let (clock, meridiem) = if let Some(c) = compact.strip_suffix("am") {
        (c, Some(false))
    } else if let Some(c) = compact.strip_suffix("pm") {
        (c, Some(true))
    } else {
        (compact.as_str(), None)
    };
    let fields: Vec<&str> = clock.split(':').collect();
    let shaped = !clock.is_empty()
        && fields.len() <= 3
        && (fields.len() > 1 || meridiem.is_some())
        && fields
            .iter()
            .all(|f| !f.is_empty() && f.len() <= 2 && f.bytes().all(|b| b.is_ascii_digit()));
    if !shaped {
        return Ok(None);
    }
    let invalid = || ParseError::NoSuchTime(text.to_owned());
    let numbers: Vec<u32> = fields
        .iter()
        .map(|f| f.parse().unwrap_or(u32::MAX))
        .collect();
    let hour = match (numbers[0], meridiem) {
        (h @ 0..=23, None) => h,
        (12, Some(pm)) => {
            if pm {
                12
            } else {
                0
            }
        }
        (h @ 1..=11, Some(pm)) => {
            if pm {
                h + 12
            } else {
                h
            }
        }
        _ => return Err(invalid()),
    };
    let minute = numbers.get(1).copied().unwrap_or(0);
    let second = numbers.get(2).copied().unwrap_or(0);
    NaiveTime::from_hms_opt(hour, minute, second)
        .map(Some)
        .ok_or_else(invalid)
}

/// The first instant after `now` at which the wall clock in `zone` shows `time`.
fn next_at(zone: Tz, now: DateTime<Utc>, today: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    let first = resolve_local(zone, today.and_time(time));
    if first > now {
        first
    } else {
        resolve_local(zone, (today + Days::new(1)).and_time(time))
    }
}

/// A sum of `<number> <unit>` terms (`2h30m`, `1 hour and 30 minutes`, `an hour`); `None`
/// unless all of `text` is such a sum.
fn duration(text: &str) -> Option<Duration> {
    let mut total = Duration::zero();
    let mut terms = 0;
    let mut rest = text.trim();
    while !rest.is_empty() {
        rest = rest.trim_start_matches([' ', ',']);
        if let Some(after) = rest.strip_prefix("and ") {
            rest = after;
            continue;
        }
        let (count, after) = count(rest)?;
        let after = after.trim_start();
        let unit_len = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let minutes_per = match &after[..unit_len] {
            "m" | "min" | "mins" | "minute" | "minutes" => 1,
            "h" | "hr" | "hrs" | "hour" | "hours" => 60,
            "d" | "day" | "days" => 24 * 60,
            "w" | "wk" | "wks" | "week" | "weeks" => 7 * 24 * 60,
            _ => return None,
        };
        total = total.checked_add(&Duration::try_minutes(count.checked_mul(minutes_per)?)?)?;
        terms += 1;
        rest = after[unit_len..].trim_start();
    }
    (terms > 0).then_some(total)
}

fn count(text: &str) -> Option<(i64, &str)> {
    for word in ["an ", "a "] {
        if let Some(rest) = text.strip_prefix(word) {
            return Some((1, rest));
        }
    }
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let value = text[..digits].parse().ok()?;
    Some((value, &text[digits..]))
}

#[cfg(test)]
mod tests {
    use chrono_tz::{America, Europe};

    use super::*;
    use crate::test_support::berlin;

    /// Wednesday 2026-06-10 12:00:00 UTC (14:00 in Berlin).
    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 10, 12, 0, 0).unwrap()
    }

    fn parse(input: &str) -> Result<DateTime<Utc>, ParseError> {
        parse_when(input, Europe::Berlin, now())
    }

    #[test]
    fn a_repeat_ends_after_a_number_of_times_or_at_a_time() {
        let end = |input| parse_end(input, Europe::Berlin, now());
        assert_eq!(end("10 times"), Ok(RepeatEnd::After(10)));
        assert_eq!(end(" After 3 Times "), Ok(RepeatEnd::After(3)));
        assert_eq!(end("1 time"), Ok(RepeatEnd::After(1)));
        assert_eq!(end("in 2h"), Ok(RepeatEnd::At(now() + Duration::hours(2))));
        for refused in ["0 times", "10001 times", "99999999999999999999 times"] {
            assert_eq!(
                end(refused),
                Err(ParseError::Times { max: MAX_TIMES }),
                "{refused}"
            );
        }
        assert!(matches!(
            end("many times"),
            Err(ParseError::Unrecognised(_))
        ));
    }

    #[test]
    fn relative_times_count_from_now() {
        let cases = [
            ("in 2h30m", 150),
            ("in 90 minutes", 90),
            ("90 minutes", 90),
            ("IN 2 H 30 M", 150),
            ("in an hour", 60),
            ("in 1 day and 2 hours", 26 * 60),
            ("in 1w, 1d", 8 * 24 * 60),
            ("45min", 45),
        ];
        for (input, minutes) in cases {
            assert_eq!(
                parse(input),
                Ok(now() + Duration::minutes(minutes)),
                "{input}"
            );
        }
    }

    #[test]
    fn days_and_times_are_read_in_the_members_zone() {
        assert_eq!(parse("tomorrow 9:00"), Ok(berlin(2026, 6, 11, 9, 0)));
        assert_eq!(parse("Tomorrow at 9am"), Ok(berlin(2026, 6, 11, 9, 0)));
        assert_eq!(parse("today 18:00"), Ok(berlin(2026, 6, 10, 18, 0)));
        assert_eq!(parse("2026-12-24 18:00"), Ok(berlin(2026, 12, 24, 18, 0)));
        assert_eq!(parse("2026-12-24T18:00"), Ok(berlin(2026, 12, 24, 18, 0)));
        assert_eq!(
            parse("2026-12-24 at 6:30 pm"),
            Ok(berlin(2026, 12, 24, 18, 30))
        );
        assert_eq!(
            parse_when("tomorrow 9:00", America::New_York, now()),
            Ok(Utc.with_ymd_and_hms(2026, 6, 11, 13, 0, 0).unwrap())
        );
    }

    #[test]
    fn a_weekday_is_today_while_that_time_is_ahead_and_otherwise_next_week() {
        // now() is Wednesday 14:00 in Berlin.
        assert_eq!(parse("friday 18:00"), Ok(berlin(2026, 6, 12, 18, 0)));
        assert_eq!(parse("fri 6pm"), Ok(berlin(2026, 6, 12, 18, 0)));
        assert_eq!(parse("wednesday 18:00"), Ok(berlin(2026, 6, 10, 18, 0)));
        assert_eq!(parse("wednesday 9:00"), Ok(berlin(2026, 6, 17, 9, 0)));
        assert_eq!(parse("monday at 9:00"), Ok(berlin(2026, 6, 15, 9, 0)));
    }

    #[test]
    fn a_bare_time_is_the_next_time_the_clock_shows_it() {
        assert_eq!(parse("18:00"), Ok(berlin(2026, 6, 10, 18, 0)));
        assert_eq!(parse("9:15"), Ok(berlin(2026, 6, 11, 9, 15)));
        assert_eq!(
            parse("14:00:01"),
            Ok(berlin(2026, 6, 10, 14, 0) + Duration::seconds(1))
        );
    }

    #[test]
    fn iso_8601_with_an_offset_ignores_the_members_zone() {
        let expected = Utc.with_ymd_and_hms(2026, 12, 24, 17, 0, 0).unwrap();
        for input in [
            "2026-12-24T18:00:00+01:00",
            "2026-12-24T18:00+01:00",
            "2026-12-24 12:00-05:00",
            "2026-12-24T17:00:00Z",
            "2026-12-24t17:00z",
            "2026-12-24T17:00:00.000Z",
        ] {
            assert_eq!(parse(input), Ok(expected), "{input}");
        }
    }

    #[test]
    fn a_trailing_zone_replaces_the_members_for_that_reading() {
        assert_eq!(
            parse("tomorrow 9:00 america/new_york"),
            Ok(Utc.with_ymd_and_hms(2026, 6, 11, 13, 0, 0).unwrap())
        );
        assert_eq!(
            parse("2026-12-24 18:00 UTC"),
            Ok(Utc.with_ymd_and_hms(2026, 12, 24, 18, 0, 0).unwrap())
        );
    }

    #[test]
    fn each_mistake_gets_its_own_message() {
        let cases = [
            ("", ParseError::Empty),
            ("   ", ParseError::Empty),
            ("soonish", ParseError::Unrecognised("soonish".into())),
            ("in a while", ParseError::Unrecognised("in a while".into())),
            (
                "in 5 parsecs",
                ParseError::Unrecognised("in 5 parsecs".into()),
            ),
            ("tomorrow", ParseError::MissingTime("tomorrow".into())),
            ("2026-12-24", ParseError::MissingTime("2026-12-24".into())),
            (
                "2026-12-24 at",
                ParseError::MissingTime("2026-12-24".into()),
            ),
            (
                "friday teatime",
                ParseError::Unrecognised("friday teatime".into()),
            ),
            ("tomorrow 25:00", ParseError::NoSuchTime("25:00".into())),
            ("tomorrow 9:60", ParseError::NoSuchTime("9:60".into())),
            ("13pm", ParseError::NoSuchTime("13pm".into())),
            (
                "2026-02-30 10:00",
                ParseError::NoSuchDate("2026-02-30".into()),
            ),
            (
                "tomorrow 9:00 Mars/Olympus",
                ParseError::UnknownZone("Mars/Olympus".into()),
            ),
            ("today 9:00", ParseError::InPast),
            ("2020-01-01 10:00", ParseError::InPast),
            ("2026-06-10T12:00:00Z", ParseError::InPast),
            ("in 0m", ParseError::InPast),
            ("2031-06-10T12:00:01Z", ParseError::TooFar),
            ("in 300 weeks", ParseError::TooFar),
            (
                "in 99999999999999999 weeks",
                ParseError::Unrecognised("in 99999999999999999 weeks".into()),
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(parse(input), Err(expected), "{input:?}");
        }
        assert_eq!(parse("2031-06-10T12:00:00Z").map(|_| ()), Ok(()));
        assert_eq!(
            ParseError::InPast.user_message().as_deref(),
            Some("That time is in the past.")
        );
    }

    #[test]
    fn a_wall_time_in_a_dst_gap_moves_forward_by_the_gap() {
        let now = Utc.with_ymd_and_hms(2027, 3, 1, 0, 0, 0).unwrap();
        // 02:30 does not exist on 2027-03-28 in Berlin; 03:30 CEST is 01:30 UTC.
        assert_eq!(
            parse_when("2027-03-28 02:30", Europe::Berlin, now),
            Ok(Utc.with_ymd_and_hms(2027, 3, 28, 1, 30, 0).unwrap())
        );
        assert_eq!(
            parse_when("2027-03-28 03:30", Europe::Berlin, now),
            Ok(Utc.with_ymd_and_hms(2027, 3, 28, 1, 30, 0).unwrap())
        );
    }

    #[test]
    fn an_ambiguous_wall_time_takes_the_earlier_instant() {
        let now = Utc.with_ymd_and_hms(2027, 10, 1, 0, 0, 0).unwrap();
        // 02:30 happens twice on 2027-10-31 in Berlin: first in CEST (00:30 UTC).
        assert_eq!(
            parse_when("2027-10-31 02:30", Europe::Berlin, now),
            Ok(Utc.with_ymd_and_hms(2027, 10, 31, 0, 30, 0).unwrap())
        );
    }
}
