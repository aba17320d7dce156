//! The compression study for format 2's event blocks (issue #10): real
//! events (the seeded campaign demo, written through the library and read
//! back with `Engine::events`, so each is its canonical stored bytes) cut
//! into blocks of consecutive global sequence numbers, as a commit group
//! would write them, and compressed with lz4_flex and zstd (levels 1 and
//! 3, with and without a dictionary trained on a sample of events).
//! Single-threaded. Every block is decompressed and compared with its
//! input, since the hashes must stay over the exact canonical bytes.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use strive_store::{Durability, Engine, ManualClock, Options};

use crate::Fallible;
use crate::report::{Report, format_count, format_value};

/// The block sizes measured, in events.
pub const BLOCK_SIZES: [usize; 6] = [1, 8, 16, 32, 64, 128];

/// The size of the trained dictionaries, in bytes.
pub const DICTIONARY_SIZES: [usize; 2] = [16 << 10, 64 << 10];

/// Events of the bench workflow the foreign dictionary learns from.
const FOREIGN_EVENTS: usize = 5_000;

/// What a dictionary was trained on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trained {
    /// The first events of the same demo, of a size in bytes.
    Own(usize),
    /// Events of another workflow (the bench cycle), 16 KiB: what a
    /// dictionary built into strive, not trained per store, would do.
    Foreign,
}

/// The share of the events the dictionaries are trained on (the first
/// ones); the blocks are cut from the rest, so that no codec is measured
/// on the text it learnt from.
const TRAINING_SHARE: usize = 5;

/// A codec under study.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// lz4_flex's block format (pure Rust).
    Lz4,
    /// zstd at a level, with no dictionary.
    Zstd(i32),
    /// zstd at a level, with the dictionary of a size (bytes).
    ZstdDictionary(i32, Trained),
}

impl Codec {
    /// A short stable name, for row keys.
    pub fn key(self) -> String {
        match self {
            Codec::Lz4 => "lz4".to_owned(),
            Codec::Zstd(level) => format!("zstd{level}"),
            Codec::ZstdDictionary(level, Trained::Own(size)) => {
                format!("zstd{level}d{}k", size >> 10)
            }
            Codec::ZstdDictionary(level, Trained::Foreign) => format!("zstd{level}foreign"),
        }
    }

    /// The name for people.
    pub fn name(self) -> String {
        match self {
            Codec::Lz4 => "lz4_flex block".to_owned(),
            Codec::Zstd(level) => format!("zstd -{level}"),
            Codec::ZstdDictionary(level, Trained::Own(size)) => {
                format!("zstd -{level}, {} KiB dictionary", size >> 10)
            }
            Codec::ZstdDictionary(level, Trained::Foreign) => {
                format!("zstd -{level}, 16 KiB dictionary of another workflow")
            }
        }
    }
}

/// The codecs measured.
pub fn codecs() -> Vec<Codec> {
    let mut codecs = vec![Codec::Lz4, Codec::Zstd(1), Codec::Zstd(3)];
    for size in DICTIONARY_SIZES {
        codecs.push(Codec::ZstdDictionary(1, Trained::Own(size)));
        codecs.push(Codec::ZstdDictionary(3, Trained::Own(size)));
    }
    codecs.push(Codec::ZstdDictionary(1, Trained::Foreign));
    codecs
}

/// The events of a demo run: each event's canonical bytes, in global order.
pub struct Sample {
    pub events: Vec<Vec<u8>>,
}

impl Sample {
    /// Runs the seeded campaign demo at `organisations` / `members` on a
    /// fresh store at `path` (buffered: durability does not change the
    /// events), reads every event back, and removes the store.
    pub fn demo(path: &Path, organisations: usize, members: usize) -> Fallible<Sample> {
        let clock = Arc::new(ManualClock::new(strive_campaign::demo_start()));
        let engine = Engine::open(
            path,
            Options {
                clock: clock.clone(),
                durability: Durability::Buffered,
                ..Options::default()
            },
        )?;
        strive_campaign::run_demo(
            &engine,
            &clock,
            &strive_campaign::DemoOptions::new(organisations, members),
            |_| {},
        )?;
        Sample::read_back(engine, path)
    }

    /// About `events` events of the bench workflow (`scale::fill`: a
    /// start and nine fires per instance), read back; removes the store.
    pub fn bench(path: &Path, events: usize) -> Fallible<Sample> {
        crate::scale::fill(path, events, 1)?;
        let engine = Engine::open(path, Options::default())?;
        Sample::read_back(engine, path)
    }

    /// Every event of the store `engine` has open at `path`, then closes
    /// and removes the store.
    fn read_back(engine: Engine, path: &Path) -> Fallible<Sample> {
        let events = engine
            .events(1)
            .map(|item| item.map(|stored| stored.bytes))
            .collect::<Result<Vec<_>, _>>()?;
        drop(engine);
        std::fs::remove_dir_all(path)?;
        Ok(Sample { events })
    }

    /// The events the dictionaries learn from, and the events measured.
    fn split(&self) -> (&[Vec<u8>], &[Vec<u8>]) {
        self.events.split_at(self.events.len() / TRAINING_SHARE)
    }

    /// Canonical bytes of the events measured.
    pub fn measured_bytes(&self) -> usize {
        self.split().1.iter().map(Vec::len).sum()
    }

    /// How many events are measured.
    pub fn measured_events(&self) -> usize {
        self.split().1.len()
    }
}

/// The events of a block, framed as a block would hold them: each event's
/// length (4 bytes, little-endian) and then its bytes.
fn frame(events: &[Vec<u8>]) -> Vec<u8> {
    let mut block = Vec::with_capacity(events.iter().map(|e| e.len() + 4).sum());
    for event in events {
        let length = u32::try_from(event.len()).unwrap_or(u32::MAX);
        block.extend_from_slice(&length.to_le_bytes());
        block.extend_from_slice(event);
    }
    block
}

/// What one codec did at one block size.
#[derive(Debug, Clone)]
pub struct Measured {
    /// Compressed bytes over the canonical event bytes (framing excluded
    /// from the denominator, included in what was compressed).
    pub ratio: f64,
    /// Canonical event bytes compressed per CPU second, in MB.
    pub compress_mb_s: f64,
    /// Canonical event bytes recovered per CPU second, in MB.
    pub decompress_mb_s: f64,
    /// The mean and the largest compressed block, in bytes.
    pub mean_block: f64,
    pub max_block: usize,
}

/// One codec's compressor and decompressor, set up once (dictionary
/// loaded), used for every block.
struct Coder {
    compressor: Option<zstd::bulk::Compressor<'static>>,
    decompressor: Option<zstd::bulk::Decompressor<'static>>,
}

impl Coder {
    fn new(codec: Codec, dictionaries: &[(Trained, Vec<u8>)]) -> Fallible<Coder> {
        let (compressor, decompressor) = match codec {
            Codec::Lz4 => (None, None),
            Codec::Zstd(level) => (
                Some(zstd::bulk::Compressor::new(level)?),
                Some(zstd::bulk::Decompressor::new()?),
            ),
            Codec::ZstdDictionary(level, trained) => {
                let dictionary = dictionaries
                    .iter()
                    .find(|(t, _)| *t == trained)
                    .map(|(_, d)| d.as_slice())
                    .ok_or("no dictionary of that size was trained")?;
                (
                    Some(zstd::bulk::Compressor::with_dictionary(level, dictionary)?),
                    Some(zstd::bulk::Decompressor::with_dictionary(dictionary)?),
                )
            }
        };
        Ok(Coder {
            compressor,
            decompressor,
        })
    }

    fn compress(&mut self, block: &[u8]) -> Fallible<Vec<u8>> {
        match &mut self.compressor {
            Some(zstd) => Ok(zstd.compress(block)?),
            None => Ok(lz4_flex::block::compress(block)),
        }
    }

    fn decompress(&mut self, compressed: &[u8], length: usize) -> Fallible<Vec<u8>> {
        match &mut self.decompressor {
            Some(zstd) => Ok(zstd.decompress(compressed, length)?),
            None => Ok(lz4_flex::block::decompress(compressed, length)?),
        }
    }
}

/// Trains one zstd dictionary per size in [`DICTIONARY_SIZES`] on the
/// sample's training events (each event one sample), and the foreign one
/// on `foreign` events.
pub fn train(sample: &Sample, foreign: &Sample) -> Fallible<Vec<(Trained, Vec<u8>)>> {
    let (training, _) = sample.split();
    let mut dictionaries = DICTIONARY_SIZES
        .iter()
        .map(|&size| {
            Ok((
                Trained::Own(size),
                zstd::dict::from_samples(training, size)?,
            ))
        })
        .collect::<Fallible<Vec<_>>>()?;
    dictionaries.push((
        Trained::Foreign,
        zstd::dict::from_samples(&foreign.events, 16 << 10)?,
    ));
    Ok(dictionaries)
}

/// Measures `codec` at `block_events` events per block over the sample's
/// measured events: every block compressed, then every block decompressed
/// and compared, each pass repeated until `budget` has passed.
pub fn measure(
    sample: &Sample,
    dictionaries: &[(Trained, Vec<u8>)],
    codec: Codec,
    block_events: usize,
    budget: Duration,
) -> Fallible<Measured> {
    let (_, measured) = sample.split();
    let blocks: Vec<Vec<u8>> = measured.chunks(block_events).map(frame).collect();
    let raw = sample.measured_bytes() as f64;
    let mut coder = Coder::new(codec, dictionaries)?;

    let mut compressed = Vec::new();
    let compress_mb_s = timed(budget, raw, || {
        compressed = blocks
            .iter()
            .map(|block| coder.compress(block))
            .collect::<Fallible<Vec<_>>>()?;
        Ok(())
    })?;
    let mut recovered = Vec::new();
    let decompress_mb_s = timed(budget, raw, || {
        recovered = compressed
            .iter()
            .zip(&blocks)
            .map(|(packed, block)| coder.decompress(packed, block.len()))
            .collect::<Fallible<Vec<_>>>()?;
        Ok(())
    })?;
    if recovered != blocks {
        return Err(format!("{}: a block did not decompress to its input", codec.name()).into());
    }
    let total: usize = compressed.iter().map(Vec::len).sum();
    Ok(Measured {
        ratio: total as f64 / raw,
        compress_mb_s,
        decompress_mb_s,
        mean_block: total as f64 / compressed.len().max(1) as f64,
        max_block: compressed.iter().map(Vec::len).max().unwrap_or(0),
    })
}

/// Runs `pass` at least once and until `budget` has passed; returns
/// `bytes` per pass in MB per second of this thread's CPU time (wall time
/// where the kernel does not say), so that a shared machine's load does
/// not halve the figure.
fn timed(budget: Duration, bytes: f64, mut pass: impl FnMut() -> Fallible<()>) -> Fallible<f64> {
    let start = Instant::now();
    let cpu = thread_cpu_ns();
    let mut passes = 0u32;
    loop {
        pass()?;
        passes += 1;
        let elapsed = start.elapsed();
        if elapsed >= budget {
            let seconds = match (cpu, thread_cpu_ns()) {
                (Some(before), Some(after)) if after > before => (after - before) as f64 / 1e9,
                _ => elapsed.as_secs_f64(),
            };
            return Ok(bytes * f64::from(passes) / 1e6 / seconds);
        }
    }
}

/// Nanoseconds this thread has run on a CPU (the first field of Linux's
/// `/proc/thread-self/schedstat`).
fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The compression section of the table: one row per codec and block
/// size (compressed / canonical bytes), the speeds and block sizes in the
/// note. `demo` is the demo's (organisations, members); `budget` how long
/// each compression or decompression pass repeats.
pub fn section(
    report: &mut Report,
    dir: &Path,
    demo: (usize, usize),
    budget: Duration,
) -> Fallible<()> {
    let s = "compression";
    let sample = Sample::demo(&dir.join("compression-demo"), demo.0, demo.1)?;
    let foreign = Sample::bench(&dir.join("compression-bench"), FOREIGN_EVENTS)?;
    let dictionaries = train(&sample, &foreign)?;
    let measured_events = sample.measured_events();
    let mean = sample.measured_bytes() as f64 / measured_events.max(1) as f64;
    for codec in codecs() {
        for block_events in BLOCK_SIZES {
            let m = measure(&sample, &dictionaries, codec, block_events, budget)?;
            report.add(
                &format!("compression.{}.b{block_events}", codec.key()),
                s,
                &format!("{}, {block_events} events/block", codec.name()),
                "x",
                vec![m.ratio],
            );
            report.note(format!(
                "compress {} MB/s, decompress {} MB/s (per CPU second), block mean {} B, max {} B",
                format_value(m.compress_mb_s),
                format_value(m.decompress_mb_s),
                format_value(m.mean_block),
                format_count(m.max_block)
            ));
        }
    }
    if let Some(row) = report.rows.last_mut() {
        let note = row.note.take().unwrap_or_default();
        row.note = Some(format!(
            "{note}; over {measured_events} demo events ({demo_o} organisations / \
             {demo_m} members, mean {mean:.0} B), dictionaries trained on the {trained} before them",
            demo_o = demo.0,
            demo_m = demo.1,
            trained = sample.events.len() - measured_events,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Sample {
        let events = (0..200)
            .map(|n| {
                format!(r#"{{"v":1,"gseq":{n},"instance":"member-{:05}","event":"submit","payload":{{"score":{}}}}}"#, n % 17, n * 7 % 101)
                    .into_bytes()
            })
            .collect();
        Sample { events }
    }

    #[test]
    fn every_codec_round_trips_and_larger_blocks_compress_better() {
        let sample = sample();
        let dictionaries: Vec<(Trained, Vec<u8>)> = Vec::new();
        for codec in [Codec::Lz4, Codec::Zstd(1), Codec::Zstd(3)] {
            let one = measure(&sample, &dictionaries, codec, 1, Duration::ZERO)
                .unwrap_or_else(|e| panic!("{}: {e}", codec.name()));
            let many = measure(&sample, &dictionaries, codec, 64, Duration::ZERO)
                .unwrap_or_else(|e| panic!("{}: {e}", codec.name()));
            assert!(one.compress_mb_s > 0.0 && one.decompress_mb_s > 0.0);
            assert!(
                many.ratio < one.ratio,
                "{}: 64 events per block ({:.3}) should beat 1 ({:.3})",
                codec.name(),
                many.ratio,
                one.ratio
            );
            assert!(many.max_block as f64 >= many.mean_block);
        }
    }

    #[test]
    fn frames_carry_each_length() {
        let block = frame(&[b"ab".to_vec(), b"c".to_vec()]);
        assert_eq!(block, [2, 0, 0, 0, b'a', b'b', 1, 0, 0, 0, b'c']);
    }

    #[test]
    fn keys_name_level_and_dictionary() {
        assert_eq!(Codec::Lz4.key(), "lz4");
        assert_eq!(Codec::Zstd(3).key(), "zstd3");
        assert_eq!(
            Codec::ZstdDictionary(1, Trained::Own(16 << 10)).key(),
            "zstd1d16k"
        );
        assert_eq!(
            Codec::ZstdDictionary(1, Trained::Foreign).key(),
            "zstd1foreign"
        );
        assert_eq!(codecs().len(), 8);
    }
}
