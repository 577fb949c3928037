//! Fuzz target `agent_protocol`: the guest agent's parsers of untrusted input (crate
//! `cvm_agent`), chosen by the first byte (mod 3), the rest being the input:
//!
//! - 0: host → agent wire protocol: `protocol::decode` of the bytes as one line, and
//!   `protocol::read_message` over them as a stream (every message until the end or an error).
//!   A decoded message must encode and decode again to itself.
//! - 1: registry answers: `oci::Manifest::parse` (OCI / Docker schema 2 manifest JSON), and the
//!   bytes as UTF-8 through `oci::ImageRef::parse` and `oci::verify_digest`.
//! - 2: TPM responses: `tpm::commands::{split_response, check_success, parse_create_primary,
//!   parse_quote, parse_pcr_read}` and `tpm::attest::{Attest, EccPublic, EcdsaSignature}::parse`.
//!
//! Any panic is a bug: each parser must answer with a typed error.

#![no_main]

use cvm_agent::oci::{self, ImageRef, Manifest};
use cvm_agent::protocol;
use cvm_agent::tpm::attest::{Attest, EccPublic, EcdsaSignature};
use cvm_agent::tpm::commands;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, input)) = data.split_first() else { return };
    match sel % 3 {
        0 => {
            if let Ok(msg) = protocol::decode(input) {
                if let Ok(line) = protocol::encode(&msg) {
                    assert_eq!(protocol::decode(&line).expect("an encoded message decodes"), msg);
                }
            }
            let mut r = std::io::Cursor::new(input);
            while let Ok(Some(_)) = protocol::read_message(&mut r) {}
        }
        1 => {
            let _ = Manifest::parse(input);
            if let Ok(s) = std::str::from_utf8(input) {
                let _ = ImageRef::parse(s);
                let _ = oci::verify_digest("fuzz", s, input);
            }
        }
        _ => {
            let _ = commands::split_response(input);
            let _ = commands::check_success(commands::TPM_CC_QUOTE, input);
            let _ = commands::parse_create_primary(input);
            let _ = commands::parse_quote(input);
            let _ = commands::parse_pcr_read(input);
            let _ = Attest::parse(input);
            let _ = EccPublic::parse(input);
            let _ = EcdsaSignature::parse(input);
        }
    }
});
