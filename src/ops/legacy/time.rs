//! The legacy database's mixed time formats, turned into the unix seconds (UTC) the per-guild
//! schema stores. Accepted, as legacy-format.md lists them: ISO 8601 / RFC 3339 with `Z` or an
//! offset, `YYYY-MM-DD HH:MM:SS` taken as UTC, and unix milliseconds written as digits.
//! Anything else is `None`; what to do with such a row is the caller's decision.
//!
//! Not here: relative phrases ("tomorrow"); the legacy bot stored those unresolved, so the
//! moment they meant is lost and guessing one would invent data.

use std::sync::LazyLock;

use chrono::{
    format::{parse, Item, Parsed, StrftimeItems},
    DateTime,
};

/// The `strftime` formats tried after RFC 3339, compiled once: a million-row import parses
/// a time in most rows, and compiling a format string on every attempt was a visible part of
/// the import's profile. `true` where the format carries its own offset.
static FORMATS: LazyLock<Vec<(Vec<Item<'static>>, bool)>> = LazyLock::new(|| {
    [
        // ISO 8601 without seconds ("2024-05-01T09:30+02:00"), which JavaScript's Date also
        // wrote.
        ("%Y-%m-%dT%H:%M%:z", true),
        ("%Y-%m-%dT%H:%M%:z", false),
        ("%Y-%m-%dT%H:%MZ", false),
        // SQLite's CURRENT_TIMESTAMP form, which is UTC; fractional seconds are accepted too.
        ("%Y-%m-%d %H:%M:%S%.f", false),
        ("%Y-%m-%d %H:%M:%S", false),
    ]
    .map(|(format, with_offset)| {
        let items = StrftimeItems::new(format)
            .parse_to_owned()
            .expect("a valid strftime format");
        (items, with_offset)
    })
    .into()
});

/// Unix seconds for a legacy time text, or `None` when it is none of the accepted formats.
pub fn parse_legacy_time(raw: &str) -> Option<i64> {
    let text = raw.trim();
    if text.is_empty() {
        return None;
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        // Unix milliseconds. More than 15 digits is past the year 33000: not a time.
        return (text.len() <= 15)
            .then(|| text.parse::<i64>().ok())
            .flatten()
            .map(|ms| ms.div_euclid(1000));
    }
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.timestamp());
    }
    FORMATS.iter().find_map(|(items, with_offset)| {
        let mut parsed = Parsed::new();
        parse(&mut parsed, text, items.iter()).ok()?;
        if *with_offset {
            parsed.to_datetime().ok().map(|at| at.timestamp())
        } else {
            parsed
                .to_naive_datetime_with_offset(0)
                .ok()
                .map(|at| at.and_utc().timestamp())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::parse_legacy_time;

    #[test]
    fn every_documented_format_parses_to_the_same_instant() {
        let expected = Some(1_714_555_800); // 2024-05-01 09:30:00 UTC
        assert_eq!(parse_legacy_time("2024-05-01T09:30:00Z"), expected);
        assert_eq!(parse_legacy_time("2024-05-01T09:30:00.000Z"), expected);
        assert_eq!(parse_legacy_time("2024-05-01T11:30:00+02:00"), expected);
        assert_eq!(parse_legacy_time("2024-05-01T11:30+02:00"), expected);
        assert_eq!(parse_legacy_time("2024-05-01 09:30:00"), expected);
        assert_eq!(parse_legacy_time("1714555800000"), expected);
        assert_eq!(parse_legacy_time("1714555800999"), expected);
    }

    #[test]
    fn anything_else_is_refused() {
        for raw in [
            "",
            "  ",
            "tomorrow",
            "in 2h",
            "2024-05-01",
            "2024-13-01 00:00:00",
            "1e12",
        ] {
            assert_eq!(parse_legacy_time(raw), None, "{raw:?}");
        }
        assert_eq!(parse_legacy_time("1234567890123456"), None);
    }
}
