//! A reader's place in a store of P partitions, each with its own log
//! numbered 1, 2, ... (docs/storage.md, "Partitions"): one position per
//! partition. `GET /v1/events` and the event stream take and give it as
//! text (docs/http.md, "Reading the log"):
//!
//! - with one partition, a plain number, as before partitions existed:
//!   `from=17`, `Last-Event-ID: 16`;
//! - with any number, `partition:position` pairs separated by commas,
//!   `from=0:17,3:4`; a partition not named is at its start.
//!
//! `from` names the next event to read in each partition; an event id (and
//! so `Last-Event-ID`) names the last event received in each, as an SSE
//! id must.

use crate::problem::Problem;

/// The next position to read in each partition, by partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cursor {
    next: Vec<u64>,
}

impl Cursor {
    /// Every partition at its start.
    pub(crate) fn start(partitions: u32) -> Cursor {
        Cursor {
            next: vec![1; partitions.max(1) as usize],
        }
    }

    /// A `from` parameter: the next event to read in each partition.
    pub(crate) fn parse_from(text: &str, partitions: u32) -> Result<Cursor, Problem> {
        let mut cursor = Cursor::start(partitions);
        for (partition, position) in pairs(text, partitions, "from")? {
            cursor.next[partition] = position.max(1);
        }
        Ok(cursor)
    }

    /// A `Last-Event-ID` header: the last event received in each
    /// partition, so reading resumes after it.
    pub(crate) fn parse_last_event_id(text: &str, partitions: u32) -> Result<Cursor, Problem> {
        let mut cursor = Cursor::start(partitions);
        for (partition, last) in pairs(text, partitions, "Last-Event-ID")? {
            cursor.next[partition] = last.saturating_add(1);
        }
        Ok(cursor)
    }

    /// How many partitions the cursor covers.
    pub(crate) fn partitions(&self) -> u32 {
        self.next.len() as u32
    }

    /// The next position to read in `partition`.
    pub(crate) fn next(&self, partition: u32) -> u64 {
        self.next.get(partition as usize).copied().unwrap_or(1)
    }

    /// Records that the event at `position` of `partition` was read.
    pub(crate) fn read(&mut self, partition: u32, position: u64) {
        if let Some(next) = self.next.get_mut(partition as usize) {
            *next = position.saturating_add(1);
        }
    }

    /// The cursor as a `from` parameter.
    pub(crate) fn to_from(&self) -> String {
        self.text(|next| next)
    }

    /// The cursor as an event id: the last event read in each partition.
    pub(crate) fn to_event_id(&self) -> String {
        self.text(|next| next.saturating_sub(1))
    }

    /// With one partition its number alone; with more, the pairs of the
    /// partitions that have moved from their start.
    fn text(&self, shown: impl Fn(u64) -> u64) -> String {
        if let [next] = self.next.as_slice() {
            return shown(*next).to_string();
        }
        let pairs: Vec<String> = (0u32..)
            .zip(&self.next)
            .filter(|(_, next)| **next > 1)
            .map(|(partition, next)| format!("{partition}:{}", shown(*next)))
            .collect();
        pairs.join(",")
    }
}

/// The `partition:position` pairs of `text`, checked against the store's
/// partitions; a plain number stands for partition 0 in a store of one.
fn pairs(text: &str, partitions: u32, name: &str) -> Result<Vec<(usize, u64)>, Problem> {
    let text = text.trim();
    let form = |detail: String| {
        Problem::bad_request(format!(
            "{name} {detail}; give `partition:position` pairs separated by commas \
             (partitions 0 to {}), e.g. `0:1,1:1`",
            partitions.max(1) - 1
        ))
    };
    if text.is_empty() {
        return Ok(Vec::new());
    }
    if !text.contains(':') {
        let position = text
            .parse::<u64>()
            .map_err(|_| form(format!("`{text}` is not a position")))?;
        if partitions > 1 {
            return Err(form(format!(
                "`{text}` names no partition, and this store has {partitions}"
            )));
        }
        return Ok(vec![(0, position)]);
    }
    let mut seen = vec![false; partitions.max(1) as usize];
    let mut out = Vec::new();
    for pair in text.split(',') {
        let parsed = pair.split_once(':').and_then(|(p, n)| {
            Some((p.trim().parse::<u32>().ok()?, n.trim().parse::<u64>().ok()?))
        });
        let Some((partition, position)) = parsed else {
            return Err(form(format!(
                "has `{pair}`, which is not `partition:position`"
            )));
        };
        let Some(flag) = seen.get_mut(partition as usize) else {
            return Err(form(format!(
                "names partition {partition}, and this store has {partitions}"
            )));
        };
        if std::mem::replace(flag, true) {
            return Err(form(format!("names partition {partition} twice")));
        }
        out.push((partition as usize, position));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_partition_keeps_plain_numbers() {
        let cursor = Cursor::parse_from("17", 1).expect("a number");
        assert_eq!((cursor.next(0), cursor.to_from()), (17, "17".to_owned()));
        let resumed = Cursor::parse_last_event_id("16", 1).expect("a number");
        assert_eq!(resumed, cursor);
        assert_eq!(resumed.to_event_id(), "16");
        assert_eq!(Cursor::parse_from("0:17", 1).expect("a pair"), cursor);
        assert_eq!(Cursor::parse_from("0", 1).expect("zero").next(0), 1);
    }

    #[test]
    fn several_partitions_take_and_give_pairs() {
        let mut cursor = Cursor::parse_from("0:5, 3:2", 4).expect("pairs");
        assert_eq!(
            (0..4).map(|p| cursor.next(p)).collect::<Vec<_>>(),
            [5, 1, 1, 2]
        );
        cursor.read(1, 1);
        assert_eq!(cursor.to_from(), "0:5,1:2,3:2");
        assert_eq!(cursor.to_event_id(), "0:4,1:1,3:1");
        let resumed = Cursor::parse_last_event_id(&cursor.to_event_id(), 4).expect("an id");
        assert_eq!(resumed, cursor);
        assert_eq!(Cursor::start(4).to_from(), "");
        assert_eq!(Cursor::parse_from("", 4).expect("empty"), Cursor::start(4));
    }

    #[test]
    fn malformed_cursors_are_refused_with_the_form() {
        for (text, partitions, says) in [
            ("17", 4, "names no partition, and this store has 4"),
            ("4:1", 4, "names partition 4, and this store has 4"),
            ("1:1,1:2", 4, "names partition 1 twice"),
            ("1:x", 4, "which is not `partition:position`"),
            ("x", 1, "is not a position"),
            ("-1", 1, "is not a position"),
        ] {
            let problem = Cursor::parse_from(text, partitions).expect_err(text);
            let detail = problem.detail().to_owned();
            assert!(detail.contains(says), "{text}: {detail}");
            assert!(detail.contains("`partition:position`"), "{text}: {detail}");
        }
    }
}
