//! Helpers shared by the cross-crate tests in `tests/tests/`: where the pinned fixtures and the
//! oracle tools are. `cargo xtask test` sets both; running these tests without it fails with a
//! message saying so (an oracle is never skipped silently).

use std::path::PathBuf;

/// Path of a pinned fixture (`O1`, `K1`, ...; see `tests/fixtures/pins.json`).
pub fn fixture(id: &str) -> PathBuf {
    let dir = std::env::var_os("CVM_FIXTURES")
        .expect("CVM_FIXTURES is not set: run the suite with `cargo xtask test` (it fetches the pinned fixtures)");
    let p = PathBuf::from(dir).join(id);
    assert!(p.exists(), "fixture {id} missing at {}: run `cargo xtask fixtures`", p.display());
    p
}

/// Path of an oracle program in the test venv (`sev-snp-measure`, ...).
pub fn oracle(name: &str) -> PathBuf {
    let dir = std::env::var_os("CVM_ORACLE_BIN")
        .expect("CVM_ORACLE_BIN is not set: run the suite with `cargo xtask test` (it installs the oracles)");
    let p = PathBuf::from(dir).join(name);
    assert!(p.exists(), "oracle {name} missing at {}: run `cargo xtask install test`", p.display());
    p
}

/// Path of an artefact of the image built by `cargo xtask build-image` (relative to
/// `out/<name>/`). `cargo xtask test` builds the image first and sets `CVM_BUILT_OUT`.
pub fn built(rel: &str) -> PathBuf {
    let dir = std::env::var_os("CVM_BUILT_OUT")
        .expect("CVM_BUILT_OUT is not set: run the suite with `cargo xtask test` (it builds the image first)");
    let p = PathBuf::from(dir).join(rel);
    assert!(p.exists(), "built artefact {rel} missing at {}: run `cargo xtask build-image`", p.display());
    p
}
