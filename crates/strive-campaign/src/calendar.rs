//! The campaign's calendar. The speech is a Chinese prefecture's, so dates
//! are China Standard Time (UTC+8, no daylight saving): a fixed offset keeps
//! the simulation free of any time-zone database.

use jiff::Timestamp;
use jiff::tz::{Offset, TimeZone};

/// UTC+8.
pub(crate) fn china() -> TimeZone {
    TimeZone::fixed(Offset::constant(8))
}

/// Minutes since the simulation's epoch, 2026-05-01 00:00 China time. The
/// plan works in whole minutes so that times sort and add as integers.
pub(crate) type Minute = i64;

/// 2026-05-01T00:00:00+08:00 in Unix seconds.
const EPOCH_SECONDS: i64 = 1_777_564_800;

pub(crate) const DAY: Minute = 24 * 60;
pub(crate) const HOUR: Minute = 60;

/// The timestamp of a plan minute.
pub(crate) fn timestamp(minute: Minute) -> Timestamp {
    Timestamp::from_second(EPOCH_SECONDS + minute * 60).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// A plan minute as RFC 3339 with the China offset, for payloads.
pub(crate) fn rfc3339(minute: Minute) -> String {
    timestamp(minute)
        .to_zoned_datetime(china())
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

/// A time for people: `2026-06-01 00:00`, China time.
pub(crate) fn display(at: Timestamp) -> String {
    at.to_zoned_datetime(china())
        .strftime("%Y-%m-%d %H:%M")
        .to_string()
}

/// A date for people: `2026-06-01`, China time.
pub(crate) fn display_date(at: Timestamp) -> String {
    at.to_zoned_datetime(china())
        .strftime("%Y-%m-%d")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_epoch_is_the_first_of_may_in_china() {
        assert_eq!(rfc3339(0), "2026-05-01T00:00:00+08:00");
        assert_eq!(
            rfc3339(30 * DAY + 23 * HOUR + 59),
            "2026-05-31T23:59:00+08:00"
        );
        assert_eq!(display(timestamp(31 * DAY)), "2026-06-01 00:00");
    }
}
