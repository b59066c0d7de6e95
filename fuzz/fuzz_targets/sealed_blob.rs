#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| cobox_fuzz_targets::sealed_blob(data));
