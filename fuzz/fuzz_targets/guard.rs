//! Guard expressions (compile, walk, evaluate) on arbitrary JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    strive_core::fuzz_guard(data);
});
