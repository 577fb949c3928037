//! `cargo xtask fixtures`: fetch the pinned public inputs the golden tests use (Debian
//! packages at exact versions), check every sha256, and unpack them into the cache.
//! The pins come from `../shared/design/snp-measure.md` §7 and are listed in
//! `tests/fixtures/pins.json`.

use crate::tools::{self, apt};
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::path::PathBuf;
use xshell::Shell;

#[derive(Deserialize)]
struct Pin {
    /// Short id used by the tests (`O1`, `K1`, ...).
    id: String,
    package: String,
    version: String,
    /// Path of the file inside the package.
    file: String,
    sha256: String,
}

/// Download and check every pinned input; returns the fixture directory (one file per id).
pub fn run(sh: &Shell) -> Result<PathBuf> {
    let pins_path = tools::workspace_root().join("tests/fixtures/pins.json");
    let pins: Vec<Pin> = serde_json::from_str(&std::fs::read_to_string(&pins_path)?)
        .with_context(|| format!("parsing {}", pins_path.display()))?;
    let cache = tools::cache_dir()?;
    let out = cache.join("fixtures");
    std::fs::create_dir_all(&out)?;
    for pin in &pins {
        let dest = out.join(&pin.id);
        if dest.exists() && tools::sha256_file(&dest)? == pin.sha256 {
            continue;
        }
        tools::stage(&format!("fixtures: {} = {} {} {}", pin.id, pin.package, pin.version, pin.file));
        let debs = cache.join("debs");
        let deb = apt::download(sh, &debs, &pin.package, &pin.version)?;
        let tmp = cache.join("extract").join(&pin.id);
        let _ = std::fs::remove_dir_all(&tmp);
        apt::extract(sh, &deb, &tmp)?;
        let src = tmp.join(pin.file.trim_start_matches('/'));
        let got = tools::sha256_file(&src)?;
        if got != pin.sha256 {
            bail!(
                "{}: {} in {} {} has sha256 {got}, pinned {} (tests/fixtures/pins.json)",
                pin.id, pin.file, pin.package, pin.version, pin.sha256
            );
        }
        std::fs::copy(&src, &dest)?;
        std::fs::remove_dir_all(&tmp)?;
    }
    Ok(out)
}
