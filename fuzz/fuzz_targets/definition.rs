//! The definition loader, validator, compiler, renderers and transition
//! function on arbitrary bytes: nothing may panic or overflow the stack.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    strive_core::fuzz_definition(data);
});
