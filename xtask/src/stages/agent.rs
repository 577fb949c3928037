//! Agent stage: the guest agent binary and the extra tree copied over the root file system.
//!
//! The extra tree is `rootfs/mkosi/extra/` (PID 1 `/usr/lib/cvm/init`) plus the agent crate's
//! release binary at `/usr/bin/<crate>`, staged in `BUILD_ROOT/agent/extra-tree` with modes
//! normalised (0755 for directories and executables, 0644 otherwise), so the checkout's umask
//! never reaches the image. The rootfs stage's cache key covers the staged tree's contents.
//!
//! Reproducibility of the binary: built in its own target directory at a fixed path with
//! `--remap-path-prefix` for the checkout and `$CARGO_HOME` (panic locations would otherwise
//! embed absolute paths) and without debug info. The toolchain is whatever `cargo` resolves
//! (`rust-toolchain.toml` if present); its version changes the binary and so the cache key.

use crate::tools;
use anyhow::{Context, Result};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use xshell::{cmd, Shell};

/// Build `crate_name` and stage the extra tree; returns the tree's directory.
pub fn extra_tree(sh: &Shell, root: &Path, crate_name: &str) -> Result<PathBuf> {
    let _lock = super::lock("agent")?;
    let base = Path::new(super::BUILD_ROOT).join("agent");
    let target = base.join("target");
    tools::stage(&format!("agent: cargo build --release -p {crate_name} (target {})", target.display()));
    let cargo_home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|_| std::env::var("HOME").map(|h| Path::new(&h).join(".cargo")))
        .context("neither CARGO_HOME nor HOME is set")?;
    let rustflags = format!(
        "--remap-path-prefix={}=/cvm-src --remap-path-prefix={}=/cargo -C strip=debuginfo",
        root.display(),
        cargo_home.display()
    );
    let _dir = sh.push_dir(root);
    cmd!(sh, "cargo build --release --locked -p {crate_name} --target-dir {target}")
        .env("RUSTFLAGS", &rustflags)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .run()
        .with_context(|| format!("building the guest agent crate {crate_name}"))?;
    let binary = target.join("release").join(crate_name);

    let tree = base.join("extra-tree");
    if tree.exists() {
        std::fs::remove_dir_all(&tree).with_context(|| format!("removing {}", tree.display()))?;
    }
    copy_normalised(&root.join("rootfs/mkosi/extra"), &tree)?;
    let dest = tree.join("usr/bin").join(crate_name);
    mkdir(dest.parent().expect("has a parent"))?;
    std::fs::copy(&binary, &dest)
        .with_context(|| format!("copying {} to {}", binary.display(), dest.display()))?;
    set_mode(&dest, 0o755)?;
    eprintln!(
        "    {} ({} KiB, sha256 {})",
        dest.display(),
        std::fs::metadata(&dest)?.len() >> 10,
        tools::sha256_file(&dest)?
    );
    Ok(tree)
}

/// Copy the tree `from` to `to`: directories 0755, files 0755 if any execute bit is set,
/// else 0644; symlinks as they are.
fn copy_normalised(from: &Path, to: &Path) -> Result<()> {
    mkdir(to)?;
    let mut entries: Vec<_> = std::fs::read_dir(from)
        .with_context(|| format!("listing {}", from.display()))?
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("listing {}", from.display()))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let md = std::fs::symlink_metadata(&src).with_context(|| format!("stat {}", src.display()))?;
        if md.file_type().is_symlink() {
            let t = std::fs::read_link(&src).with_context(|| format!("readlink {}", src.display()))?;
            std::os::unix::fs::symlink(&t, &dst).with_context(|| format!("symlink {}", dst.display()))?;
        } else if md.is_dir() {
            copy_normalised(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst)
                .with_context(|| format!("copying {} to {}", src.display(), dst.display()))?;
            set_mode(&dst, if md.permissions().mode() & 0o111 != 0 { 0o755 } else { 0o644 })?;
        }
    }
    Ok(())
}

fn mkdir(d: &Path) -> Result<()> {
    std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    set_mode(d, 0o755)
}

fn set_mode(p: &Path, mode: u32) -> Result<()> {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {mode:o} {}", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_normalises_modes() {
        let base = std::env::temp_dir().join(format!("cvm-agent-tree-{}", std::process::id()));
        let (src, dst) = (base.join("src"), base.join("dst"));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(src.join("usr/lib")).unwrap();
        std::fs::write(src.join("usr/lib/init"), "#!/bin/sh\n").unwrap();
        std::fs::write(src.join("usr/lib/data"), "x").unwrap();
        std::fs::set_permissions(src.join("usr/lib/init"), std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::set_permissions(src.join("usr/lib/data"), std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::set_permissions(src.join("usr"), std::fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::symlink("init", src.join("usr/lib/link")).unwrap();
        copy_normalised(&src, &dst).unwrap();
        let mode = |p: &str| std::fs::symlink_metadata(dst.join(p)).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode("usr"), 0o755);
        assert_eq!(mode("usr/lib/init"), 0o755);
        assert_eq!(mode("usr/lib/data"), 0o644);
        assert_eq!(std::fs::read_link(dst.join("usr/lib/link")).unwrap(), Path::new("init"));
        std::fs::remove_dir_all(&base).unwrap();
    }
}
