//! Repeating reminders: the rule, its text form in `reminders.recurrence`, and the next
//! occurrence after a delivery.
//!
//! Rules and their stored text (`Display` writes it, `FromStr` reads it back and also reads
//! what members type):
//! - `every 90m`, `every 2h`: a fixed span of real time (at least 5 minutes), so "every 2h"
//!   stays two hours apart across DST changes.
//! - `every 3d at 09:00`, `every 1w at 09:00`: that wall-clock time every N days or weeks in
//!   the reminder's zone. A member types `every 3 days` or `weekly`; [`Recurrence::anchored`]
//!   adds the wall time of the first occurrence when the reminder is created, so a day whose
//!   09:00 falls in a DST gap moves that day only (as `daily 09:00` does).
//! - `every 3d`, `every 1w` without a time (stored before the anchor existed): the wall time
//!   is taken from the previous occurrence, so one that a DST gap pushed from 02:30 to 03:30
//!   stays at 03:30 from then on.
//! - `daily 09:00`: 09:00 on the wall clock every day, whatever the offset; gaps and repeated
//!   hours resolve as in `parse.rs` ([`super::parse::resolve_local`]).
//! - `weekdays 09:00`: the same, Monday to Friday only.
//! - `monthly on day 31 at 09:00`: that day of every month at that wall time, or the month's
//!   last day when it is shorter (the 31st falls on 30 April, 28 February), back on the 31st
//!   the month after. A member types `monthly`, `monthly on the 15th` or `monthly at 9:00`;
//!   [`Recurrence::anchored`] fills in the first occurrence's day and time.
//! - `yearly on 02-29 at 09:00`: that date every year (28 February when there is no 29th);
//!   members type `yearly`, `every year` or `annually`, anchored like `monthly`.
//! - `monthly on the 2nd tuesday at 09:00`, `monthly on the last friday at 09:00`: that
//!   weekday of every month; members may type `every 2nd tuesday` or `last friday of the
//!   month`. The first reminder is at the time asked for; the repeats follow the rule.
//!
//! Occurrences missed while the bot was down are not replayed: the next one is the first of the
//! series after both the previous due time and `after` (usually now). The first occurrence of a
//! new series is `next_after(zone, now, now)`.
//!
//! Not here: the end of a series (`recurrence_end`: a time, or the last of N times, worked out
//! in `mod.rs`; applied in `delivery.rs`) and storage.

use std::{fmt, str::FromStr};

use chrono::{
    DateTime, Datelike, Days, Duration, Months, NaiveDate, NaiveTime, Timelike, Utc, Weekday,
};
use chrono_tz::Tz;

use super::parse::{self, resolve_local, ParseError};

/// The shortest span a reminder may repeat at.
const MIN_MINUTES: u64 = 5;
/// The longest: five years of weeks, like the five-year limit on one-off times.
const MAX_MINUTES: u64 = 261 * 7 * 24 * 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recurrence {
    Every {
        count: u32,
        unit: Unit,
        /// For days and weeks: the wall time each occurrence is at, if anchored.
        at: Option<NaiveTime>,
    },
    /// Every day at this wall-clock time in the reminder's zone.
    Daily(NaiveTime),
    /// Monday to Friday at this wall-clock time.
    Weekdays(NaiveTime),
    /// Every month on `day` (the month's last day when shorter) at `at`; both filled in from
    /// the first occurrence when not given.
    Monthly {
        day: Option<u32>,
        at: Option<NaiveTime>,
    },
    /// Every year on (month, day) (the month's last day when shorter) at `at`; both filled in
    /// from the first occurrence when not given.
    Yearly {
        date: Option<(u32, u32)>,
        at: Option<NaiveTime>,
    },
    /// Every month on its `nth` `weekday` (1 to 4, or -1 for the last) at `at` (filled in from
    /// the first occurrence when not given).
    MonthlyWeekday {
        nth: i8,
        weekday: Weekday,
        at: Option<NaiveTime>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Minutes,
    Hours,
    Days,
    Weeks,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecurrenceError {
    #[error(
        "I can't read \"{0}\" as a repeat. Try \"every 2h\", \"every 3 days\", \"weekly\", \
         \"daily at 09:00\", \"weekdays at 09:00\" or \"monthly on the 31st\"."
    )]
    Unrecognised(String),
    #[error("A reminder can repeat at most every 5 minutes.")]
    TooOften,
    #[error("A reminder has to repeat at least once every 5 years.")]
    TooRare,
    #[error("\"{0}\" is not a time of day.")]
    NoSuchTime(String),
}

impl RecurrenceError {
    /// Every variant is the member's to fix; `Some` always, like [`ParseError::user_message`].
    pub fn user_message(&self) -> Option<String> {
        Some(self.to_string())
    }
}

impl Recurrence {
    /// The rule a new reminder first due at `first` keeps: a repeat by days or weeks gets
    /// `first`'s wall time in `zone`, so that it keeps that time after a DST gap.
    pub fn anchored(self, zone: Tz, first: DateTime<Utc>) -> Self {
        match self {
            Self::Every {
                count,
                unit: unit @ (Unit::Days | Unit::Weeks),
                at: None,
            } => Self::Every {
                count,
                unit,
                at: Some(first.with_timezone(&zone).time()),
            },
            Self::Monthly { day, at } => {
                let local = first.with_timezone(&zone);
                Self::Monthly {
                    day: day.or(Some(local.day())),
                    at: at.or(Some(local.time())),
                }
            }
            Self::Yearly { date, at } => {
                let local = first.with_timezone(&zone);
                Self::Yearly {
                    date: date.or(Some((local.month(), local.day()))),
                    at: at.or(Some(local.time())),
                }
            }
            Self::MonthlyWeekday { nth, weekday, at } => Self::MonthlyWeekday {
                nth,
                weekday,
                at: at.or(Some(first.with_timezone(&zone).time())),
            },
            other => other,
        }
    }

    /// The first occurrence after `prev` (the due time just delivered) that is also after
    /// `after`; `None` only if it would not fit in a date.
    pub fn next_after(
        &self,
        zone: Tz,
        prev: DateTime<Utc>,
        after: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        match *self {
            Self::Every { count, unit, at } => match unit {
                Unit::Minutes | Unit::Hours => {
                    let step = i64::from(count) * if unit == Unit::Hours { 3600 } else { 60 };
                    let behind = (after - prev).num_seconds().max(0);
                    let steps = behind / step + 1;
                    prev.checked_add_signed(Duration::try_seconds(steps.checked_mul(step)?)?)
                }
                Unit::Days | Unit::Weeks => {
                    let days = u64::from(count) * if unit == Unit::Weeks { 7 } else { 1 };
                    let prev_wall = prev.with_timezone(&zone).naive_local();
                    let wall = prev_wall.date().and_time(at.unwrap_or(prev_wall.time()));
                    let behind = u64::try_from((after - prev).num_days()).unwrap_or(0);
                    let mut steps = (behind / days).max(1);
                    loop {
                        let next =
                            resolve_local(zone, wall.checked_add_days(Days::new(steps * days))?);
                        if next > after && next > prev {
                            return Some(next);
                        }
                        steps += 1;
                    }
                }
            },
            Self::Monthly { day, at } => {
                let day = day.unwrap_or(prev.with_timezone(&zone).day());
                month_by_month(zone, prev, after, at, |month| on_or_last(month, day))
            }
            Self::Yearly { date, at } => {
                let local = prev.with_timezone(&zone);
                let (on_month, day) = date.unwrap_or((local.month(), local.day()));
                month_by_month(zone, prev, after, at, |month| {
                    (month.month() == on_month)
                        .then(|| on_or_last(month, day))
                        .flatten()
                })
            }
            Self::MonthlyWeekday { nth, weekday, at } => {
                month_by_month(zone, prev, after, at, |month| {
                    nth_weekday(month, nth, weekday)
                })
            }
            Self::Daily(time) | Self::Weekdays(time) => {
                let weekdays_only = matches!(self, Self::Weekdays(_));
                let from = prev.max(after);
                let mut day = from.with_timezone(&zone).date_naive();
                loop {
                    let next = resolve_local(zone, day.and_time(time));
                    let weekend = day.weekday().number_from_monday() > 5;
                    if next > from && !(weekdays_only && weekend) {
                        return Some(next);
                    }
                    day = day.succ_opt()?;
                }
            }
        }
    }

    fn minutes(&self) -> u64 {
        match *self {
            Self::Every { count, unit, .. } => {
                u64::from(count)
                    * match unit {
                        Unit::Minutes => 1,
                        Unit::Hours => 60,
                        Unit::Days => 24 * 60,
                        Unit::Weeks => 7 * 24 * 60,
                    }
            }
            Self::Daily(_) | Self::Weekdays(_) => 24 * 60,
            Self::Monthly { .. } | Self::MonthlyWeekday { .. } => 31 * 24 * 60,
            Self::Yearly { .. } => 366 * 24 * 60,
        }
    }
}

impl fmt::Display for Recurrence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Every { count, unit, at } => {
                let unit = match unit {
                    Unit::Minutes => 'm',
                    Unit::Hours => 'h',
                    Unit::Days => 'd',
                    Unit::Weeks => 'w',
                };
                write!(f, "every {count}{unit}")?;
                at_clock(f, *at)
            }
            Self::Daily(time) => write!(f, "daily {}", clock(*time)),
            Self::Weekdays(time) => write!(f, "weekdays {}", clock(*time)),
            Self::Monthly { day, at } => {
                write!(f, "monthly")?;
                if let Some(day) = day {
                    write!(f, " on day {day}")?;
                }
                at_clock(f, *at)
            }
            Self::Yearly { date, at } => {
                write!(f, "yearly")?;
                if let Some((month, day)) = date {
                    write!(f, " on {month:02}-{day:02}")?;
                }
                at_clock(f, *at)
            }
            Self::MonthlyWeekday { nth, weekday, at } => {
                let nth = match nth {
                    1 => "1st",
                    2 => "2nd",
                    3 => "3rd",
                    4 => "4th",
                    _ => "last",
                };
                let day = WEEKDAYS[weekday.num_days_from_monday() as usize];
                write!(f, "monthly on the {nth} {day}")?;
                at_clock(f, *at)
            }
        }
    }
}

/// ` at 09:00`, when there is a time.
fn at_clock(f: &mut fmt::Formatter<'_>, at: Option<NaiveTime>) -> fmt::Result {
    match at {
        Some(time) => write!(f, " at {}", clock(time)),
        None => Ok(()),
    }
}

const WEEKDAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// The first occurrence after both `prev` and `after` on the day `pick` chooses in each month
/// (from `prev`'s month on; `None`: none that month), at `at` or else `prev`'s wall time.
fn month_by_month(
    zone: Tz,
    prev: DateTime<Utc>,
    after: DateTime<Utc>,
    at: Option<NaiveTime>,
    pick: impl Fn(NaiveDate) -> Option<NaiveDate>,
) -> Option<DateTime<Utc>> {
    let from = prev.max(after);
    let local = prev.with_timezone(&zone).naive_local();
    let time = at.unwrap_or(local.time());
    let mut month = NaiveDate::from_ymd_opt(local.year(), local.month(), 1)?;
    loop {
        if let Some(day) = pick(month) {
            let next = resolve_local(zone, day.and_time(time));
            if next > from {
                return Some(next);
            }
        }
        month = month.checked_add_months(Months::new(1))?;
    }
}

/// The `nth` (1 to 4, or -1: the last) `weekday` of the month starting `first`.
fn nth_weekday(first: NaiveDate, nth: i8, weekday: Weekday) -> Option<NaiveDate> {
    match u8::try_from(nth) {
        Ok(n) => NaiveDate::from_weekday_of_month_opt(first.year(), first.month(), weekday, n),
        Err(_) => {
            let mut day = first.checked_add_months(Months::new(1))?.pred_opt()?;
            while day.weekday() != weekday {
                day = day.pred_opt()?;
            }
            Some(day)
        }
    }
}

/// `on 02-29`: (month, day).
fn month_and_day(text: &str) -> Option<(u32, u32)> {
    let (month, day) = text.strip_prefix("on")?.trim().split_once('-')?;
    let (month, day) = (month.parse().ok()?, day.parse().ok()?);
    ((1..=12).contains(&month) && (1..=31).contains(&day)).then_some((month, day))
}

/// `on …` and the time after ` at `, either possibly absent: `on the 31st at 9:00`.
fn on_and_clock(rest: &str) -> (&str, Option<&str>) {
    match rest.strip_prefix("at ") {
        Some(clock) => ("", Some(clock)),
        None => rest
            .split_once(" at ")
            .map_or((rest, None), |(on, clock)| (on, Some(clock))),
    }
}

/// `on the 2nd tuesday`, `on the last friday`: (nth, weekday).
fn weekday_of_month(text: &str) -> Option<(i8, Weekday)> {
    let text = text.strip_prefix("on")?.trim();
    let text = text.strip_prefix("the ").unwrap_or(text);
    let (nth, day) = text.split_once(' ')?;
    let nth = match nth {
        "1st" | "first" => 1,
        "2nd" | "second" => 2,
        "3rd" | "third" => 3,
        "4th" | "fourth" => 4,
        "last" => -1,
        _ => return None,
    };
    Some((nth, day.trim().parse().ok()?))
}

/// Day `day` of the month starting `first`, or the month's last day when it has fewer.
fn on_or_last(first: NaiveDate, day: u32) -> Option<NaiveDate> {
    let last = first.checked_add_months(Months::new(1))?.pred_opt()?.day();
    first.with_day(day.min(last))
}

/// `on the 31st`, `on day 31`, `on 31`: the day of the month, 1 to 31.
fn day_of_month(text: &str) -> Option<u32> {
    let text = text.strip_prefix("on")?.trim();
    let text = text
        .strip_prefix("the ")
        .or_else(|| text.strip_prefix("day "))
        .unwrap_or(text)
        .trim();
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let suffix = &text[digits.len()..];
    if !matches!(suffix, "" | "st" | "nd" | "rd" | "th") {
        return None;
    }
    digits.parse().ok().filter(|day| (1..=31).contains(day))
}

/// `09:00`, or `07:15:30` when the seconds matter.
fn clock(time: NaiveTime) -> impl fmt::Display {
    if time.second() == 0 {
        time.format("%H:%M")
    } else {
        time.format("%H:%M:%S")
    }
}

impl FromStr for Recurrence {
    type Err = RecurrenceError;

    /// Reads the stored form and what members type: `every 90 minutes`, `every 2h`,
    /// `every day`, `every 2 weeks`, `hourly`, `daily`, `weekly`, `daily at 9:00`,
    /// `every day at 9am`.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let text = input
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase();
        let unrecognised = || RecurrenceError::Unrecognised(input.trim().to_owned());
        let time_of_day = |clock: &str| {
            parse::time_of_day(clock)
                .map_err(|e| match e {
                    ParseError::NoSuchTime(t) => RecurrenceError::NoSuchTime(t),
                    _ => unrecognised(),
                })?
                .ok_or_else(unrecognised)
        };
        let daily_at = text
            .strip_prefix("daily")
            .or_else(|| text.strip_prefix("every day"))
            .map(|rest| rest.trim_start().strip_prefix("at").unwrap_or(rest).trim())
            .filter(|rest| !rest.is_empty());
        // "every 2nd tuesday", "last friday of the month": the monthly form.
        let text = text
            .replace(" of the month", "")
            .replace(" of every month", "");
        let ordinal = text
            .strip_prefix("every ")
            .unwrap_or(&text)
            .split(' ')
            .next()
            .is_some_and(|word| {
                matches!(
                    word,
                    "1st"
                        | "2nd"
                        | "3rd"
                        | "4th"
                        | "first"
                        | "second"
                        | "third"
                        | "fourth"
                        | "last"
                )
            });
        let text = if ordinal {
            format!(
                "monthly on the {}",
                text.strip_prefix("every ").unwrap_or(&text)
            )
        } else {
            text
        };
        let weekdays_at = text
            .strip_prefix("weekdays")
            .map(|rest| rest.trim_start().strip_prefix("at").unwrap_or(rest).trim());
        let yearly = ["yearly", "every year", "annually"]
            .iter()
            .find_map(|word| text.strip_prefix(word));
        let rule = if let Some(rest) = yearly {
            let (on, clock) = on_and_clock(rest.trim());
            let at = clock.map(time_of_day).transpose()?;
            let date = if on.is_empty() {
                None
            } else {
                Some(month_and_day(on).ok_or_else(unrecognised)?)
            };
            Self::Yearly { date, at }
        } else if let Some(rest) = text.strip_prefix("monthly") {
            let (on, clock) = on_and_clock(rest.trim());
            let at = clock.map(time_of_day).transpose()?;
            if on.is_empty() {
                Self::Monthly { day: None, at }
            } else if let Some(day) = day_of_month(on) {
                Self::Monthly { day: Some(day), at }
            } else {
                let (nth, weekday) = weekday_of_month(on).ok_or_else(unrecognised)?;
                Self::MonthlyWeekday { nth, weekday, at }
            }
        } else if let Some(clock) = weekdays_at {
            Self::Weekdays(time_of_day(clock)?)
        } else if let Some(clock) = daily_at {
            Self::Daily(time_of_day(clock)?)
        } else {
            let (text, at) = match text.split_once(" at ") {
                Some((every, clock)) => (every.to_owned(), Some(time_of_day(clock)?)),
                None => (text, None),
            };
            let (count, unit) = match text.as_str() {
                "hourly" => ("1", "h"),
                "daily" => ("1", "d"),
                "weekly" => ("1", "w"),
                _ => {
                    let rest = text.strip_prefix("every").ok_or_else(unrecognised)?.trim();
                    let digits = rest
                        .find(|c: char| !c.is_ascii_digit())
                        .unwrap_or(rest.len());
                    let (count, unit) = rest.split_at(digits);
                    (if count.is_empty() { "1" } else { count }, unit.trim())
                }
            };
            let count: u32 = count.parse().map_err(|_| RecurrenceError::TooRare)?;
            let unit = match unit {
                "m" | "min" | "mins" | "minute" | "minutes" => Unit::Minutes,
                "h" | "hr" | "hrs" | "hour" | "hours" => Unit::Hours,
                "d" | "day" | "days" => Unit::Days,
                "w" | "wk" | "wks" | "week" | "weeks" => Unit::Weeks,
                _ => return Err(unrecognised()),
            };
            if at.is_some() && !matches!(unit, Unit::Days | Unit::Weeks) {
                return Err(unrecognised());
            }
            Self::Every { count, unit, at }
        };
        match rule.minutes() {
            m if m < MIN_MINUTES => Err(RecurrenceError::TooOften),
            m if m > MAX_MINUTES => Err(RecurrenceError::TooRare),
            _ => Ok(rule),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono_tz::Europe::Berlin;

    use super::*;
    use crate::test_support::utc;

    fn rule(text: &str) -> Recurrence {
        text.parse().unwrap()
    }

    #[test]
    fn member_wording_reads_into_the_stored_form() {
        let cases = [
            ("every 90 minutes", "every 90m"),
            ("every 2h", "every 2h"),
            ("Every 3 Days", "every 3d"),
            ("every day", "every 1d"),
            ("every week", "every 1w"),
            ("every 2 weeks", "every 2w"),
            ("hourly", "every 1h"),
            ("daily", "every 1d"),
            ("weekly", "every 1w"),
            ("every 5m", "every 5m"),
            ("daily at 9:00", "daily 09:00"),
            ("daily 09:00", "daily 09:00"),
            ("every day at 9pm", "daily 21:00"),
            ("daily at 07:15:30", "daily 07:15:30"),
            ("every 2 days at 9:00", "every 2d at 09:00"),
            ("weekly at 6:30pm", "every 1w at 18:30"),
            ("every 1d at 02:30:15", "every 1d at 02:30:15"),
            ("weekdays at 9:00", "weekdays 09:00"),
            ("monthly", "monthly"),
            ("monthly on the 31st", "monthly on day 31"),
            ("Monthly on the 2nd at 6pm", "monthly on day 2 at 18:00"),
            ("monthly at 9:00", "monthly at 09:00"),
            ("monthly on day 15 at 09:00", "monthly on day 15 at 09:00"),
            ("yearly", "yearly"),
            ("every year", "yearly"),
            ("annually at 9:00", "yearly at 09:00"),
            ("yearly on 12-24 at 18:00", "yearly on 12-24 at 18:00"),
            ("every 2nd Tuesday", "monthly on the 2nd tuesday"),
            (
                "every second tue at 9:00",
                "monthly on the 2nd tuesday at 09:00",
            ),
            ("last friday of the month", "monthly on the last friday"),
            (
                "Last Friday of the month at 17:00",
                "monthly on the last friday at 17:00",
            ),
            (
                "monthly on the 1st monday at 8am",
                "monthly on the 1st monday at 08:00",
            ),
        ];
        for (input, stored) in cases {
            let parsed = rule(input);
            assert_eq!(parsed.to_string(), stored, "{input}");
            assert_eq!(rule(stored), parsed, "{stored} reads back");
        }
    }

    #[test]
    fn refusals_say_what_is_wrong() {
        let cases = [
            ("every 4 minutes", RecurrenceError::TooOften),
            ("every 0h", RecurrenceError::TooOften),
            ("every 300 weeks", RecurrenceError::TooRare),
            ("every 99999999999 days", RecurrenceError::TooRare),
            (
                "daily at 25:00",
                RecurrenceError::NoSuchTime("25:00".into()),
            ),
            (
                "sometimes",
                RecurrenceError::Unrecognised("sometimes".into()),
            ),
            (
                "every fortnight",
                RecurrenceError::Unrecognised("every fortnight".into()),
            ),
            (
                "daily at noon",
                RecurrenceError::Unrecognised("daily at noon".into()),
            ),
            (
                "every 2h at 9:00",
                RecurrenceError::Unrecognised("every 2h at 9:00".into()),
            ),
            (
                "monthly on the 32nd",
                RecurrenceError::Unrecognised("monthly on the 32nd".into()),
            ),
            ("weekdays", RecurrenceError::Unrecognised("weekdays".into())),
            (
                "yearly on 13-01",
                RecurrenceError::Unrecognised("yearly on 13-01".into()),
            ),
            (
                "every 5th friday",
                RecurrenceError::Unrecognised("every 5th friday".into()),
            ),
            (
                "monthly on the last funday",
                RecurrenceError::Unrecognised("monthly on the last funday".into()),
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(input.parse::<Recurrence>(), Err(expected), "{input}");
        }
    }

    #[test]
    fn fixed_spans_are_real_time_and_skip_what_was_missed() {
        let every_90m = rule("every 90m");
        let prev = utc(2027, 3, 28, 0, 0);
        assert_eq!(
            every_90m.next_after(Berlin, prev, prev),
            Some(utc(2027, 3, 28, 1, 30))
        );
        // Down from 00:00 to 05:00: the next is 06:00, still on the 90-minute grid.
        assert_eq!(
            every_90m.next_after(Berlin, prev, utc(2027, 3, 28, 5, 0)),
            Some(utc(2027, 3, 28, 6, 0))
        );
        assert_eq!(
            every_90m.next_after(Berlin, prev, utc(2027, 3, 28, 4, 30)),
            Some(utc(2027, 3, 28, 6, 0))
        );
    }

    #[test]
    fn days_and_weeks_keep_the_wall_time_across_dst() {
        // 18:00 CET on Friday 2027-03-26, then 18:00 CEST on the 27th and on 2 April.
        let prev = utc(2027, 3, 26, 17, 0);
        assert_eq!(
            rule("every 1d").next_after(Berlin, prev, prev),
            Some(utc(2027, 3, 27, 17, 0))
        );
        assert_eq!(
            rule("every 2d").next_after(Berlin, prev, prev),
            Some(utc(2027, 3, 28, 16, 0))
        );
        assert_eq!(
            rule("every 1w").next_after(Berlin, prev, prev),
            Some(utc(2027, 4, 2, 16, 0))
        );
        // Missed for ten days: the next is the first of the series after the outage.
        assert_eq!(
            rule("every 1w").next_after(Berlin, prev, utc(2027, 4, 5, 0, 0)),
            Some(utc(2027, 4, 9, 16, 0))
        );
    }

    #[test]
    fn daily_stays_at_nine_local_through_both_changes() {
        let daily = rule("daily 09:00");
        let mut due = utc(2027, 3, 26, 8, 0); // 09:00 CET
        let mut seen = Vec::new();
        for _ in 0..4 {
            due = daily.next_after(Berlin, due, due).unwrap();
            seen.push(due);
        }
        assert_eq!(
            seen,
            [
                utc(2027, 3, 27, 8, 0),
                utc(2027, 3, 28, 7, 0),
                utc(2027, 3, 29, 7, 0),
                utc(2027, 3, 30, 7, 0)
            ]
        );
        let oct = utc(2027, 10, 30, 7, 0); // 09:00 CEST
        assert_eq!(
            daily.next_after(Berlin, oct, oct),
            Some(utc(2027, 10, 31, 8, 0))
        );
        // First of a new series: the next 09:00 after now.
        let now = utc(2027, 10, 31, 8, 30);
        assert_eq!(
            daily.next_after(Berlin, now, now),
            Some(utc(2027, 11, 1, 8, 0))
        );
    }

    /// `count` occurrences of `rule` anchored at `first`, each from the one before.
    fn series(
        rule: Recurrence,
        zone: Tz,
        first: DateTime<Utc>,
        count: usize,
    ) -> Vec<DateTime<Utc>> {
        let mut due = first;
        let mut seen = vec![first];
        for _ in 1..count {
            due = rule.next_after(zone, due, due).unwrap();
            seen.push(due);
        }
        seen
    }

    #[test]
    fn days_and_weeks_anchored_at_creation_keep_their_wall_time_after_a_gap() {
        use chrono_tz::America::New_York;
        // Berlin springs forward on 2027-03-28 (02:00 -> 03:00): 02:30 does not exist that day.
        let first = utc(2027, 3, 27, 1, 30); // 02:30 CET
        let daily = rule("every 1d").anchored(Berlin, first);
        assert_eq!(daily.to_string(), "every 1d at 02:30");
        assert_eq!(
            series(daily, Berlin, first, 3),
            [first, utc(2027, 3, 28, 1, 30), utc(2027, 3, 29, 0, 30)],
            "03:30 on the gap day only, then 02:30 again"
        );
        assert_eq!(
            series(rule("every 1d"), Berlin, first, 3)[2],
            utc(2027, 3, 29, 1, 30),
            "unanchored (stored before): stays at 03:30, as documented"
        );
        // New York springs forward on 2027-03-14, falls back on 2027-11-07.
        let first = utc(2027, 3, 7, 7, 30); // Sunday 02:30 EST
        let weekly = rule("weekly").anchored(New_York, first);
        assert_eq!(
            series(weekly, New_York, first, 3),
            [first, utc(2027, 3, 14, 7, 30), utc(2027, 3, 21, 6, 30)]
        );
        // In the repeated hour of a fall-back the earlier (summer-time) 01:30 is taken.
        let first = utc(2027, 10, 31, 5, 30); // Sunday 01:30 EDT
        let weekly = rule("every 1w").anchored(New_York, first);
        assert_eq!(
            series(weekly, New_York, first, 3),
            [first, utc(2027, 11, 7, 5, 30), utc(2027, 11, 14, 6, 30)]
        );
    }

    #[test]
    fn monthly_on_the_31st_falls_on_each_shorter_months_last_day_for_a_year() {
        // 09:00 in Berlin: 08:00 UTC in winter, 07:00 UTC in summer time.
        let first = utc(2027, 1, 31, 8, 0);
        let monthly = rule("monthly").anchored(Berlin, first);
        assert_eq!(monthly.to_string(), "monthly on day 31 at 09:00");
        let days: Vec<(u32, u32, u32)> = series(monthly, Berlin, first, 13)
            .iter()
            .map(|t| (t.month(), t.day(), t.hour()))
            .collect();
        assert_eq!(
            days,
            [
                (1, 31, 8),
                (2, 28, 8),
                (3, 31, 7),
                (4, 30, 7),
                (5, 31, 7),
                (6, 30, 7),
                (7, 31, 7),
                (8, 31, 7),
                (9, 30, 7),
                (10, 31, 8),
                (11, 30, 8),
                (12, 31, 8),
                (1, 31, 8)
            ]
        );
        // A leap year's February has a 29th.
        let leap = utc(2028, 1, 31, 8, 0);
        assert_eq!(
            monthly.next_after(Berlin, leap, leap),
            Some(utc(2028, 2, 29, 8, 0))
        );
        // Missed for three months: the next is the first after now, on its day.
        assert_eq!(
            monthly.next_after(Berlin, first, utc(2027, 5, 1, 0, 0)),
            Some(utc(2027, 5, 31, 7, 0))
        );
    }

    #[test]
    fn the_2nd_tuesday_and_the_last_friday_of_each_month_in_new_york() {
        use chrono_tz::America::New_York;
        let dates = |rule: Recurrence, first| -> Vec<(u32, u32, u32)> {
            series(rule, New_York, first, 5)
                .iter()
                .map(|t| {
                    let local = t.with_timezone(&New_York);
                    (local.month(), local.day(), local.hour())
                })
                .collect()
        };
        // Tuesday 2027-01-12 09:00 EST; the March one is after the change, still 09:00.
        let second_tuesday = rule("every 2nd tuesday at 9:00");
        assert_eq!(
            dates(second_tuesday, utc(2027, 1, 12, 14, 0)),
            [(1, 12, 9), (2, 9, 9), (3, 9, 9), (4, 13, 9), (5, 11, 9)]
        );
        // Friday 2027-01-29 17:00 EST; months of four and five Fridays alike.
        let last_friday = rule("last friday of the month at 17:00");
        assert_eq!(
            dates(last_friday, utc(2027, 1, 29, 22, 0)),
            [
                (1, 29, 17),
                (2, 26, 17),
                (3, 26, 17),
                (4, 30, 17),
                (5, 28, 17)
            ]
        );
        // Anchored at creation: the time of the first reminder.
        assert_eq!(
            rule("every 2nd tuesday")
                .anchored(New_York, utc(2027, 1, 12, 14, 0))
                .to_string(),
            "monthly on the 2nd tuesday at 09:00"
        );
    }

    #[test]
    fn yearly_on_the_29th_of_february_falls_on_the_28th_in_other_years() {
        let first = utc(2028, 2, 29, 8, 0); // 09:00 CET
        let yearly = rule("yearly").anchored(Berlin, first);
        assert_eq!(yearly.to_string(), "yearly on 02-29 at 09:00");
        let dates: Vec<(i32, u32, u32)> = series(yearly, Berlin, first, 5)
            .iter()
            .map(|t| (t.year(), t.month(), t.day()))
            .collect();
        assert_eq!(
            dates,
            [
                (2028, 2, 29),
                (2029, 2, 28),
                (2030, 2, 28),
                (2031, 2, 28),
                (2032, 2, 29)
            ]
        );
        // In summer time the same wall time is an hour earlier in UTC.
        let summer = utc(2027, 7, 1, 7, 0); // 09:00 CEST
        assert_eq!(
            rule("yearly")
                .anchored(Berlin, summer)
                .next_after(Berlin, summer, summer),
            Some(utc(2028, 7, 1, 7, 0))
        );
    }

    #[test]
    fn weekdays_skip_weekends_and_keep_nine_local_across_both_changes() {
        use chrono_tz::America::New_York;
        let weekdays = rule("weekdays at 9:00");
        // New York springs forward on Sunday 2027-03-14: Friday 09:00 EST, Monday 09:00 EDT.
        let friday = utc(2027, 3, 12, 14, 0);
        assert_eq!(
            series(weekdays, New_York, friday, 3),
            [friday, utc(2027, 3, 15, 13, 0), utc(2027, 3, 16, 13, 0)]
        );
        // Berlin falls back on Sunday 2027-10-31: Friday 09:00 CEST, Monday 09:00 CET.
        let friday = utc(2027, 10, 29, 7, 0);
        assert_eq!(
            series(weekdays, Berlin, friday, 2),
            [friday, utc(2027, 11, 1, 8, 0)]
        );
        // Set on a Saturday: the first is Monday.
        let saturday = utc(2027, 3, 20, 12, 0);
        assert_eq!(
            weekdays.next_after(New_York, saturday, saturday),
            Some(utc(2027, 3, 22, 13, 0))
        );
    }

    #[test]
    fn anchoring_leaves_fixed_spans_and_daily_times_alone() {
        let first = utc(2027, 3, 27, 1, 30);
        for text in [
            "every 2h",
            "every 90m",
            "daily 09:00",
            "every 2d at 09:00",
            "weekdays 09:00",
            "monthly on day 2 at 18:00",
        ] {
            assert_eq!(rule(text).anchored(Berlin, first), rule(text), "{text}");
        }
    }

    #[test]
    fn daily_in_a_gap_moves_forward_that_day_only() {
        let daily = rule("daily 02:30");
        let prev = utc(2027, 3, 27, 1, 30); // 02:30 CET
        let gap_day = daily.next_after(Berlin, prev, prev).unwrap();
        assert_eq!(gap_day, utc(2027, 3, 28, 1, 30)); // 03:30 CEST
        assert_eq!(
            daily.next_after(Berlin, gap_day, gap_day),
            Some(utc(2027, 3, 29, 0, 30))
        );
    }
}
