//! Fuzz target `tdx_quote`: arbitrary bytes as a TDX quote (v4/v5 header + TD report body).
//! Any panic is a bug: the parser must answer with a typed error.

#![no_main]

use cvm_measurements::tdx::quote::TdxQuote;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = TdxQuote::parse(data);
});
