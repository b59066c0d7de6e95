#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| cobox_fuzz_targets::heads_note(data));
