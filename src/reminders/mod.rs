//! Reminders: what members ask to be reminded of, when, and how it repeats.
//!
//! - `parse.rs`: "in 2h", "tomorrow 9:00", … in the member's zone, into a UTC instant.
//! - `recurrence.rs`: repeating rules, their stored text and the next occurrence.
//!
//! Not here: anything Discord (the bot turns its input into these plain values).

pub mod parse;
pub mod recurrence;

pub use parse::{parse_when, ParseError};
pub use recurrence::{Recurrence, RecurrenceError, Unit};
