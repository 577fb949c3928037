//! mkosi: Debian package `mkosi` 25.3-7 from trixie (tested with 25.3), installed by
//! `install::install_rootfs`. Builds the root file-system tree from `rootfs/mkosi/`
//! (`Format=directory`); everything after that (erofs, dm-verity, disk) is done by xtask and
//! the `cvm-rootfs` crate. Runs as root (user and mount namespaces, no loop devices needed).
//!
//! Reproducibility: mkosi runs under `umask 022` (through `sh -c`, as kbuild in [`super::make`]).
//! Files mkosi writes itself take the process umask: it rewrites `/usr/lib/os-release` (adding
//! `IMAGE_ID`) with a plain `open("w")`, which under umask 077 made it 0600 in the image and
//! changed the erofs (found by `cargo xtask verify-repro`).

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use xshell::{cmd, Shell};

/// One `mkosi build`.
#[derive(Debug, Clone)]
pub struct MkosiBuild {
    /// Directory holding `mkosi.conf` (`-C`).
    pub config_dir: PathBuf,
    /// `--output-directory`: receives `<ImageId>/` (the tree) and `<ImageId>.manifest`.
    pub output_dir: PathBuf,
    /// `--package-cache-directory`: downloaded .debs, reused across builds.
    pub package_cache_dir: PathBuf,
    /// `--workspace-directory`: mkosi's scratch space.
    pub workspace_dir: PathBuf,
    /// `--package=` (comma-separated), added to the config's `Packages=`.
    pub packages: Vec<String>,
    /// `--extra-tree` for each (copied over the image after packages; the guest agent hook).
    pub extra_trees: Vec<PathBuf>,
    /// `--source-date-epoch` and `SOURCE_DATE_EPOCH`.
    pub source_date_epoch: u64,
}

/// `mkosi --version`, e.g. `mkosi 25.3`.
pub fn version(sh: &Shell) -> Result<String> {
    Ok(cmd!(sh, "mkosi --version")
        .read()
        .context("running `mkosi --version` (run `cargo xtask install build`)")?
        .trim()
        .to_string())
}

/// Run `mkosi -f build` with the options of `b`, output streamed to the terminal.
pub fn build(sh: &Shell, b: &MkosiBuild) -> Result<()> {
    for d in [&b.output_dir, &b.package_cache_dir, &b.workspace_dir] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let (config, out, pkgs, ws) = (
        &b.config_dir,
        &b.output_dir,
        &b.package_cache_dir,
        &b.workspace_dir,
    );
    let epoch = b.source_date_epoch.to_string();
    let extra: Vec<String> = b
        .extra_trees
        .iter()
        .map(|t| format!("--extra-tree={}", t.display()))
        .collect();
    let packages: Vec<String> = (!b.packages.is_empty())
        .then(|| format!("--package={}", b.packages.join(",")))
        .into_iter()
        .collect();
    cmd!(
        sh,
        "sh -c 'umask 022 && exec \"$@\"' sh mkosi -C {config} --output-directory={out} --package-cache-directory={pkgs} --workspace-directory={ws} --source-date-epoch={epoch} {packages...} {extra...} -f build"
    )
    .env("SOURCE_DATE_EPOCH", &epoch)
    .run()
    .with_context(|| format!("mkosi build of {}", config.display()))?;
    Ok(())
}

/// The tree and manifest mkosi wrote for image id `image_id` in `output_dir`.
pub fn outputs(output_dir: &Path, image_id: &str) -> (PathBuf, PathBuf) {
    (
        output_dir.join(image_id),
        output_dir.join(format!("{image_id}.manifest")),
    )
}
