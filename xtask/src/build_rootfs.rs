//! `cargo xtask build-rootfs [--kernel bzImage]`: run the rootfs stage (mkosi → erofs →
//! dm-verity) and, given a kernel, the disk stage (ESP + GPT), copying the results to
//! `out/rootfs/`. `build-image` is to call the same two stage functions once the kernel stage
//! feeds the disk stage.

use crate::flags::BuildRootfsFlags;
use crate::stages::{disk, rootfs};
use crate::{install, tools};
use anyhow::{Context, Result};
use xshell::Shell;

pub fn run(sh: &Shell, flags: &BuildRootfsFlags) -> Result<()> {
    if !flags.no_install {
        install::install_rootfs(sh)?;
    }
    let root = tools::workspace_root();
    let inputs = rootfs::RootfsInputs::from_repo(&root)?;
    let r = rootfs::build(sh, &inputs)?;
    let out = root.join("out/rootfs");
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    for (from, name) in [
        (&r.erofs, "rootfs.erofs"),
        (&r.verity, "rootfs.verity"),
        (&r.manifest, "rootfs.manifest.json"),
    ] {
        let bytes = std::fs::read(from).with_context(|| format!("reading {}", from.display()))?;
        tools::write_atomic(&out.join(name), &bytes)?;
    }
    let summary = r.erofs.with_file_name("rootfs.json");
    tools::write_atomic(
        &out.join("rootfs.json"),
        &std::fs::read(&summary).with_context(|| format!("reading {}", summary.display()))?,
    )?;
    if let Some(kernel) = &flags.kernel {
        let d = disk::build(&disk::DiskInputs {
            kernel,
            rootfs: &r,
            source_date_epoch: inputs.source_date_epoch,
            out_dir: &out,
        })?;
        eprintln!(
            "    disk {} sha256 {}",
            d.disk.display(),
            tools::sha256_file(&d.disk)?
        );
        eprintln!(
            "    ESP {}, disk GUID {}",
            d.esp.display(),
            d.layout.disk_guid
        );
    }
    eprintln!(
        "==> build-rootfs: root hash {} salt {} -> {}",
        r.root_hash,
        r.salt,
        out.display()
    );
    eprintln!(
        "    kernel cmdline: dm-mod.create=\"{}\" root=/dev/dm-0 rootfstype=erofs ro",
        r.dm_mod_create
    );
    Ok(())
}
