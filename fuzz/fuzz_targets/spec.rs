//! Fuzz target `spec`: arbitrary UTF-8 as an image spec through
//! `cvm_image_spec::ImageSpec::parse` (TOML syntax, schema, semantic validation). Any panic is a
//! bug: a bad spec must come back as diagnostics. A spec that parses must serialize with
//! `to_toml` and parse back equal.

#![no_main]

use cvm_image_spec::ImageSpec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = ImageSpec::parse_unvalidated(text, "fuzz.toml");
    let Ok(spec) = ImageSpec::parse(text, "fuzz.toml") else { return };
    let again = spec.to_toml();
    let back = ImageSpec::parse(&again, "fuzz.toml").expect("to_toml of a valid spec parses");
    assert_eq!(back, spec);
});
