//! Fuzz target `pe`: arbitrary bytes as a PE/COFF image through the Authenticode hash and the
//! QEMU < 10.1 setup-header patch (kernel images are untrusted input to a verifier). Any panic
//! is a bug.

#![no_main]

use cvm_measurements::pe::authenticode_sha384;
use cvm_measurements::tdx::qemu::patch_kernel_setup_header;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = authenticode_sha384(data);
    let mem = 1u64 << (28 + data.first().copied().unwrap_or(0) % 8);
    if let Ok(k) = patch_kernel_setup_header(data, mem, Some(data.len() as u64)) {
        let _ = authenticode_sha384(&k);
    }
});
