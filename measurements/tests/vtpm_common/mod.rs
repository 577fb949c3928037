//! Shared by `vtpm_vectors.rs` and `cli_vtpm.rs`: where the vTPM vectors and their inputs are.

use std::path::{Path, PathBuf};

/// `tests/vectors/vtpm/`.
pub const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/vtpm");

/// The directory an environment variable names; `cargo xtask test` sets it (`how` says why).
pub fn env_dir(var: &str, how: &str) -> PathBuf {
    PathBuf::from(std::env::var_os(var).unwrap_or_else(|| {
        panic!("{var} is not set: run the suite with `cargo xtask test` ({how})")
    }))
}

/// An input as capture.json names it: `built:REL` (the built image), `fixture:ID` (the pinned
/// fixtures) or a file of the vectors directory.
pub fn source_path(src: &str) -> PathBuf {
    if let Some(rel) = src.strip_prefix("built:") {
        env_dir("CVM_BUILT_OUT", "it builds the image first").join(rel)
    } else if let Some(id) = src.strip_prefix("fixture:") {
        env_dir("CVM_FIXTURES", "it fetches the pinned fixtures").join(id)
    } else {
        Path::new(VECTORS).join(src)
    }
}

/// The bytes of a capture input: the file [`source_path`] names, xz-decompressed when it ends
/// in `.xz` (the firmware a capture booted is kept here compressed: edk2 builds of the same
/// inputs have not always been bit-identical, see docs/reproducibility.md, so a rebuilt
/// firmware must not make the vectors stale).
#[allow(dead_code)] // cli_vtpm.rs includes this module but reads fixtures only
pub fn read_source(src: &str) -> Result<Vec<u8>, String> {
    let path = source_path(src);
    let raw = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    if path.extension().is_some_and(|e| e == "xz") {
        let mut out = Vec::new();
        lzma_rs::xz_decompress(&mut &raw[..], &mut out)
            .map_err(|e| format!("{}: xz: {e}", path.display()))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}
