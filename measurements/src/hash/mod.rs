//! The SHA-384 used on the hot paths (the TDX kernel Authenticode and MRTD streams, the SNP
//! firmware pages).
//!
//! Most of a `cvm-measure snp` or `tdx` process is SHA-384 compression (docs/benchmarks.md).
//! Two accelerations, each tested against RustCrypto's `sha2` (an independent implementation):
//! - [`Sha384`], for long single streams: the system libcrypto's SHA-384 (OpenSSL's AVX2/BMI2
//!   assembly, ~870 MB/s per core on the reference machine against `sha2`'s ~610 MB/s), loaded
//!   on first use (`libcrypto.rs`, default feature `libcrypto`), and `sha2` when libcrypto is
//!   missing, fails its self-test, or the feature is off. Loading costs ~1 ms, so code that
//!   only hashes small things uses `sha2::Sha384` directly and never loads it.
//! - [`sha384_each`], for many equal-length messages: 4 or 8 SIMD lanes (`lanes.rs`): the SNP
//!   launch digest hashes every 4 KiB firmware page separately, which is where it pays.
//!
//! Both implement RustCrypto's [`Digest`](sha2::Digest) interface or take plain slices, so
//! generic code such as [`crate::pe::authenticode`] takes them unchanged.
//!
//! Like `input.rs` in the CLI, this is a deliberate exception to the library's purity: loading
//! libcrypto reads a shared object, and `CVM_SHA384=sha2` in the environment turns it off (for
//! benchmarks and for comparing the two).

mod lanes;
#[cfg(feature = "libcrypto")]
mod libcrypto;
pub use lanes::sha384_each;

use sha2::digest::{consts::U48, FixedOutput, HashMarker, Output, OutputSizeUser, Update};

/// SHA-384 for long streams: libcrypto's when it could be loaded, else `sha2`'s.
#[derive(Clone)]
pub struct Sha384(Backend);

#[derive(Clone)]
#[allow(clippy::large_enum_variant)] // one per hash computation; boxing `sha2`'s buys nothing
enum Backend {
    #[cfg(feature = "libcrypto")]
    Libcrypto(libcrypto::Context),
    Rust(sha2::Sha384),
}

/// Which implementation [`Sha384`] uses in this process.
pub fn sha384_backend() -> &'static str {
    match Sha384::default().0 {
        #[cfg(feature = "libcrypto")]
        Backend::Libcrypto(_) => "libcrypto (system OpenSSL, loaded at run time)",
        Backend::Rust(_) => "sha2 (pure Rust)",
    }
}

impl Default for Sha384 {
    fn default() -> Self {
        #[cfg(feature = "libcrypto")]
        if let Some(c) = libcrypto::Context::new() {
            return Sha384(Backend::Libcrypto(c));
        }
        Sha384(Backend::Rust(sha2::Sha384::default()))
    }
}

impl HashMarker for Sha384 {}

impl OutputSizeUser for Sha384 {
    type OutputSize = U48;
}

impl Update for Sha384 {
    fn update(&mut self, data: &[u8]) {
        match &mut self.0 {
            #[cfg(feature = "libcrypto")]
            Backend::Libcrypto(c) => c.update(data),
            Backend::Rust(h) => Update::update(h, data),
        }
    }
}

impl FixedOutput for Sha384 {
    fn finalize_into(self, out: &mut Output<Self>) {
        match self.0 {
            #[cfg(feature = "libcrypto")]
            Backend::Libcrypto(c) => out.copy_from_slice(&c.finish()),
            Backend::Rust(h) => out.copy_from_slice(&h.finalize_fixed()),
        }
    }
}

#[cfg(test)]
mod tests {
    use sha2::Digest;

    /// Differential check of the backend against `sha2` (an independent implementation when
    /// libcrypto is loaded): every length around the 128-byte block boundaries, and the same
    /// data fed in uneven pieces.
    #[test]
    fn backend_agrees_with_sha2() {
        let data: Vec<u8> = (0..5000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        for len in (0..300).chain([1023, 1024, 4096, 4999]) {
            let ours = super::Sha384::digest(&data[..len]);
            let theirs = sha2::Sha384::digest(&data[..len]);
            assert_eq!(ours.as_slice(), theirs.as_slice(), "length {len}");
        }
        let mut h = super::Sha384::new();
        for piece in data.chunks(77) {
            h.update(piece);
        }
        let split = h.clone().finalize();
        assert_eq!(split.as_slice(), sha2::Sha384::digest(&data).as_slice());
        assert_eq!(h.finalize(), split, "a clone finalizes like the original");
        eprintln!("Sha384 backend here: {}", super::sha384_backend());
        #[cfg(feature = "libcrypto")]
        if std::path::Path::new("/usr/lib/x86_64-linux-gnu/libcrypto.so.3").exists()
            && std::env::var_os("CVM_SHA384").is_none()
        {
            assert!(
                super::sha384_backend().starts_with("libcrypto"),
                "libcrypto.so.3 is installed but was not used"
            );
        }
    }
}
