//! Fuzz target `agent_protocol`: the guest agent's parsers of untrusted input (crate
//! `cvm_agent`), chosen by the first byte (mod 3), the rest being the input:
//!
//! - 0: host → agent wire protocol: `protocol::decode` of the bytes as one line, and
//!   `protocol::read_message` over them as a stream (every message until the end or an error).
//!   A decoded message must encode and decode again to itself.
//! - 1: registry answers: `oci::Manifest::parse` (OCI / Docker schema 2 manifest JSON), the
//!   bytes as UTF-8 through `oci::ImageRef::parse` and `oci::verify_digest`, and the bytes as a
//!   layer blob (plain tar, then tar+gzip) through `unpack::apply_layer` into a fresh temp dir
//!   (small limits, so an input stays fast).
//! - 2: TPM responses: `tpm::commands::{split_response, check_success, parse_create_primary,
//!   parse_quote, parse_pcr_read}` and `tpm::attest::{Attest, EccPublic, EcdsaSignature}::parse`.
//!
//! Any panic is a bug: each parser must answer with a typed error.

#![no_main]

use cvm_agent::oci::{self, ImageRef, Manifest};
use cvm_agent::protocol;
use cvm_agent::unpack::{self, Budget, Limits};
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
            unpack_layer(input);
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

/// `input` as a plain and as a gzip'd layer, each into an empty directory of its own.
fn unpack_layer(input: &[u8]) {
    let root = std::env::temp_dir().join(format!("cvm-fuzz-unpack-{}", std::process::id()));
    for media_type in [unpack::MEDIA_OCI_LAYER_TAR, unpack::MEDIA_OCI_LAYER_TAR_GZIP] {
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("fuzz temp dir");
        let layer = oci::Descriptor {
            media_type: media_type.into(),
            digest: oci::sha256_digest(input),
            size: input.len() as u64,
            annotations: Default::default(),
        };
        let mut budget = Budget::new(Limits { max_bytes: 1 << 20, max_entries: 256 });
        let _ = unpack::apply_layer(&root, &layer, input, &mut budget, &mut |_| {});
    }
    let _ = std::fs::remove_dir_all(&root);
}
