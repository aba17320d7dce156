//! The one reader of times people give strive: `--now`, `--at`, `--as-of`,
//! timestamps in payloads and initial data (issue #17). An RFC 3339 time
//! with an offset that exists (at most 23:59 either way), inside the range
//! strive stores; a message that says which of these failed.

use std::fmt;

use jiff::Timestamp;

/// Why a text is not an acceptable time.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimeError {
    /// Not an RFC 3339 time at all.
    Syntax {
        /// The text, shortened.
        text: String,
    },
    /// An offset hour above 23 or minute above 59.
    Offset {
        /// The text, shortened.
        text: String,
    },
    /// A well-formed time outside the supported range.
    Range {
        /// The text, shortened.
        text: String,
    },
}

impl fmt::Display for TimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimeError::Syntax { text } => write!(
                f,
                "{text:?} is not an RFC 3339 time; write e.g. 2026-05-31T23:59:59+08:00"
            ),
            TimeError::Offset { text } => write!(
                f,
                "{text:?} has an offset that does not exist; offsets run from -23:59 to +23:59"
            ),
            TimeError::Range { text } => write!(
                f,
                "{text:?} is outside the supported range of times, {} to {}",
                Timestamp::MIN,
                Timestamp::MAX
            ),
        }
    }
}

impl std::error::Error for TimeError {}

/// Parses `text` as an RFC 3339 time.
///
/// ```
/// use strive_core::time::{TimeError, parse};
/// assert!(parse("2026-05-31T23:59:59+08:00").is_ok());
/// assert!(matches!(parse("2026-05-31T23:59:59+25:00"), Err(TimeError::Offset { .. })));
/// assert!(matches!(parse("9999-12-31T23:59:59-05:00"), Err(TimeError::Range { .. })));
/// ```
pub fn parse(text: &str) -> Result<Timestamp, TimeError> {
    let shown: String = text.chars().take(64).collect();
    let (civil, offset) = split_offset(text).ok_or_else(|| TimeError::Syntax {
        text: shown.clone(),
    })?;
    if let Some(offset) = offset
        && !offset_exists(offset)
    {
        return Err(TimeError::Offset { text: shown });
    }
    match text.parse::<Timestamp>() {
        Ok(time) => Ok(time),
        Err(_) if in_civil_range(civil) => Err(TimeError::Range { text: shown }),
        Err(_) => Err(TimeError::Syntax { text: shown }),
    }
}

/// Splits `YYYY-MM-DDTHH:MM:SS[.f]` from its offset (`None` for `Z`).
fn split_offset(text: &str) -> Option<(&str, Option<&str>)> {
    if let Some(civil) = text.strip_suffix(['Z', 'z']) {
        return Some((civil, None));
    }
    let time_start = text.find(['T', 't', ' '])?;
    let sign = text[time_start..].rfind(['+', '-'])? + time_start;
    Some((&text[..sign], Some(&text[sign + 1..])))
}

/// Whether `HH:MM` is an offset of RFC 3339 (hours 00-23, minutes 00-59).
fn offset_exists(offset: &str) -> bool {
    let Some((hours, minutes)) = offset.split_once(':') else {
        return false;
    };
    let two_digits = |part: &str, max: u32| {
        part.len() == 2 && part.parse::<u32>().is_ok_and(|value| value <= max)
    };
    two_digits(hours, 23) && two_digits(minutes, 59)
}

/// Whether the date and time part is well formed, so that a failure to
/// make a timestamp of it is a matter of range: a year of more than four
/// digits, or one at the edge of the range once the offset is applied.
fn in_civil_range(civil: &str) -> bool {
    let Some((year, rest)) = civil
        .rsplit_once('T')
        .map(|(date, _)| date)
        .and_then(|date| {
            let digits = date.trim_start_matches(['+', '-']);
            digits.split_once('-')
        })
    else {
        return false;
    };
    let long_year = year.len() > 4 && year.bytes().all(|b| b.is_ascii_digit());
    long_year || civil.parse::<jiff::civil::DateTime>().is_ok() && !rest.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_says_which_rule_it_broke() {
        for (text, expected) in [
            ("2026-05-31T23:59:59+08:00", None),
            ("2026-05-31T23:59:59Z", None),
            ("2026-05-31T23:59:59.123456-03:30", None),
            ("2026-05-31T23:59:59+25:00", Some("offset")),
            ("2026-05-31T23:59:59+08:60", Some("offset")),
            ("9999-12-31T23:59:59-05:00", Some("range")),
            ("+10000-01-01T00:00:00Z", Some("range")),
            ("2026-13-01T00:00:00Z", Some("syntax")),
            ("yesterday", Some("syntax")),
            ("", Some("syntax")),
        ] {
            let found = match parse(text) {
                Ok(_) => None,
                Err(TimeError::Offset { .. }) => Some("offset"),
                Err(TimeError::Range { .. }) => Some("range"),
                Err(TimeError::Syntax { .. }) => Some("syntax"),
            };
            assert_eq!(found, expected, "{text}");
        }
    }

    #[test]
    fn the_range_message_names_the_range() {
        let message = parse("+10000-01-01T00:00:00Z").map_err(|e| e.to_string());
        let (min, max) = (Timestamp::MIN.to_string(), Timestamp::MAX.to_string());
        assert!(
            message.is_err_and(|m| m.contains(&min) && m.contains(&max)),
            "{min} {max}"
        );
    }
}
