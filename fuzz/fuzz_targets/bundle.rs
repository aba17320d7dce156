//! The offline bundle verifier on arbitrary bytes, against a fixed trusted
//! checkpoint: the part of an audit system that attackers aim at.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../common/bundle.rs"]
mod bundle;

fuzz_target!(|data: &[u8]| {
    bundle::fuzz_bundle(data);
});
