//! The SHA-384 used on the hot paths (SNP page hashes, MRTD, Authenticode of the kernel).
//!
//! Most of a `cvm-measure snp` or `tdx` process is SHA-384 compression (docs/benchmarks.md).
//! With the default `openssl` feature, [`Sha384`] is the system libcrypto's (OpenSSL 3.5's
//! AVX2/BMI2 assembly reaches ~870 MB/s per core on the reference machine, `sha2` ~610 MB/s).
//! Without it (`--no-default-features`), it is RustCrypto's `sha2`, and the crate is pure
//! Rust. Either way it implements RustCrypto's [`Digest`](sha2::Digest), so generic code such
//! as [`crate::pe::authenticode`] takes it unchanged. The unit tests here compare the two.
//!
//! [`sha384_each`] hashes many equal-length messages at once in SIMD lanes (`lanes.rs`): the
//! SNP launch digest hashes every 4 KiB firmware page separately, which is where it pays.

mod lanes;
pub use lanes::sha384_each;

#[cfg(not(feature = "openssl"))]
pub use sha2::Sha384;

#[cfg(feature = "openssl")]
pub use self::libcrypto::Sha384;

/// Which implementation [`Sha384`] is, for `--version`-style reports and benchmarks.
pub const SHA384_BACKEND: &str = if cfg!(feature = "openssl") {
    "openssl (system libcrypto)"
} else {
    "sha2 (pure Rust)"
};

#[cfg(feature = "openssl")]
mod libcrypto {
    use sha2::digest::{consts::U48, FixedOutput, HashMarker, Output, OutputSizeUser, Update};

    /// libcrypto's SHA-384 behind RustCrypto's traits (`Digest` comes from the blanket impl).
    #[derive(Clone)]
    pub struct Sha384(openssl::sha::Sha384);

    impl Default for Sha384 {
        fn default() -> Self {
            Sha384(openssl::sha::Sha384::new())
        }
    }

    impl HashMarker for Sha384 {}

    impl OutputSizeUser for Sha384 {
        type OutputSize = U48;
    }

    impl Update for Sha384 {
        fn update(&mut self, data: &[u8]) {
            self.0.update(data);
        }
    }

    impl FixedOutput for Sha384 {
        fn finalize_into(self, out: &mut Output<Self>) {
            out.copy_from_slice(&self.0.finish());
        }
    }
}

#[cfg(test)]
mod tests {
    use sha2::Digest;

    /// Differential check of the backend against `sha2` (an independent implementation when
    /// the `openssl` feature is on): every length around the 128-byte block boundaries, and
    /// the same data fed in uneven pieces.
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
    }
}
