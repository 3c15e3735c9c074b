//! Repeating reminders: the rule, its text form in `reminders.recurrence`, and the next
//! occurrence after a delivery.
//!
//! Rules and their stored text (`Display` writes it, `FromStr` reads it back and also reads
//! what members type):
//! - `every 90m`, `every 2h`: a fixed span of real time (at least 5 minutes), so "every 2h"
//!   stays two hours apart across DST changes.
//! - `every 3d`, `every 1w`: the same wall-clock time every N days or weeks in the reminder's
//!   zone. The wall time is taken from the previous occurrence, so one that a DST gap pushed
//!   from 02:30 to 03:30 stays at 03:30 from then on.
//! - `daily 09:00`: 09:00 on the wall clock every day, whatever the offset; gaps and repeated
//!   hours resolve as in `parse.rs` ([`super::parse::resolve_local`]).
//!
//! Occurrences missed while the bot was down are not replayed: the next one is the first of the
//! series after both the previous due time and `after` (usually now). The first occurrence of a
//! new series is `next_after(zone, now, now)`.
//!
//! Not here: the end of a series (`recurrence_end`, applied in `delivery.rs`) and storage.

use std::{fmt, str::FromStr};

use chrono::{DateTime, Days, Duration, NaiveTime, Timelike, Utc};
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
    },
    /// Every day at this wall-clock time in the reminder's zone.
    Daily(NaiveTime),
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
        "I can't read \"{0}\" as a repeat. Try \"every 2h\", \"every 3 days\", \"weekly\" or \
         \"daily at 09:00\"."
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
    /// The first occurrence after `prev` (the due time just delivered) that is also after
    /// `after`; `None` only if it would not fit in a date.
    pub fn next_after(
        &self,
        zone: Tz,
        prev: DateTime<Utc>,
        after: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        match *self {
            Self::Every { count, unit } => match unit {
                Unit::Minutes | Unit::Hours => {
                    let step = i64::from(count) * if unit == Unit::Hours { 3600 } else { 60 };
                    let behind = (after - prev).num_seconds().max(0);
                    let steps = behind / step + 1;
                    prev.checked_add_signed(Duration::try_seconds(steps.checked_mul(step)?)?)
                }
                Unit::Days | Unit::Weeks => {
                    let days = u64::from(count) * if unit == Unit::Weeks { 7 } else { 1 };
                    let wall = prev.with_timezone(&zone).naive_local();
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
            Self::Daily(time) => {
                let from = prev.max(after);
                let mut day = from.with_timezone(&zone).date_naive();
                loop {
                    let next = resolve_local(zone, day.and_time(time));
                    if next > from {
                        return Some(next);
                    }
                    day = day.succ_opt()?;
                }
            }
        }
    }

    fn minutes(&self) -> u64 {
        match *self {
            Self::Every { count, unit } => {
                u64::from(count)
                    * match unit {
                        Unit::Minutes => 1,
                        Unit::Hours => 60,
                        Unit::Days => 24 * 60,
                        Unit::Weeks => 7 * 24 * 60,
                    }
            }
            Self::Daily(_) => 24 * 60,
        }
    }
}

impl fmt::Display for Recurrence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Every { count, unit } => {
                let unit = match unit {
                    Unit::Minutes => 'm',
                    Unit::Hours => 'h',
                    Unit::Days => 'd',
                    Unit::Weeks => 'w',
                };
                write!(f, "every {count}{unit}")
            }
            Self::Daily(time) if time.second() == 0 => write!(f, "daily {}", time.format("%H:%M")),
            Self::Daily(time) => write!(f, "daily {}", time.format("%H:%M:%S")),
        }
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
        let daily_at = text
            .strip_prefix("daily")
            .or_else(|| text.strip_prefix("every day"))
            .map(|rest| rest.trim_start().strip_prefix("at").unwrap_or(rest).trim())
            .filter(|rest| !rest.is_empty());
        let rule = if let Some(clock) = daily_at {
            let time = parse::time_of_day(clock)
                .map_err(|e| match e {
                    ParseError::NoSuchTime(t) => RecurrenceError::NoSuchTime(t),
                    _ => unrecognised(),
                })?
                .ok_or_else(unrecognised)?;
            Self::Daily(time)
        } else {
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
            Self::Every { count, unit }
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
    use chrono::TimeZone;
    use chrono_tz::Europe::Berlin;

    use super::*;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

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
