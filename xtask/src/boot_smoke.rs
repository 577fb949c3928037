//! `cargo xtask boot-smoke [--firmware ROLE]`: boot the cached kernel (bzImage) under QEMU
//! with cached firmware (default `ovmf-vtpm` = OvmfPkgX64; `ovmf-tdx` also boots a non-TD
//! VM), `-bios OVMF.fd`, direct kernel boot, and a tiny
//! initramfs, and require the marker its `/init` prints. KVM if detected, else TCG.
//!
//! The artefacts are looked up in the cache by the keys of the current inputs; when they are
//! missing the task fails naming `cargo xtask build-image` (it never passes silently).
//! The initramfs is built here, deterministically: an uncompressed newc cpio (all mtimes 0,
//! uid/gid 0, inode numbers in order) holding Debian busybox-static's `/bin/busybox`,
//! `/bin/sh` → busybox, `/dev/console` and an `/init` script that prints the marker and
//! whether the kernel booted through EFI, then powers off.

use crate::flags::BootSmokeFlags;
use crate::stages::{firmware, kernel};
use crate::tools::{self, qemu};
use anyhow::{Context, Result};
/// The newc writer, moved to `cvm_rootfs::cpio` (still reachable here as `boot_smoke::Cpio`).
pub use cvm_rootfs::cpio::Writer as Cpio;
use std::time::Instant;
use xshell::Shell;

/// Printed by the initramfs `/init`; the boot passes only if the serial output has it.
pub const MARKER: &str = "CVM-BOOT-SMOKE-OK";

const BUSYBOX: &str = "/bin/busybox";

const INIT: &str = "#!/bin/sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
if [ -d /sys/firmware/efi ]; then efi=yes; else efi=no; fi
echo \"CVM-BOOT-SMOKE-OK efi=$efi kernel=$(/bin/busybox uname -r)\"
/bin/busybox poweroff -f
";

pub fn run(sh: &Shell, flags: &BootSmokeFlags) -> Result<()> {
    let start = Instant::now();
    let root = tools::workspace_root();
    let kdir = kernel::cached(sh, &kernel::KernelInputs::from_repo(&root)?)?;
    let fwdir = firmware::cached(sh, &firmware::FirmwareInputs::from_repo(&root)?, &flags.firmware)?;
    let work = std::path::Path::new(crate::stages::BUILD_ROOT).join("boot-smoke");
    let busybox = std::fs::read(BUSYBOX).with_context(|| format!("reading {BUSYBOX} (install busybox-static: `cargo xtask install build`)"))?;
    let cpio = smoke_initramfs(&busybox);
    let initrd = work.join("initramfs.cpio");
    tools::write_atomic(&initrd, &cpio)?;
    eprintln!("    initramfs {} ({} bytes, sha256 {})", initrd.display(), cpio.len(), tools::sha256_file(&initrd)?);
    let boot = qemu::Boot {
        kernel: Some(kdir.join("bzImage")),
        initrd: Some(initrd),
        firmware: Some(fwdir.join("OVMF.fd")),
        pflash: None,
        append: "console=ttyS0 panic=-1 quiet".into(),
        memory_mib: 512,
        timeout_secs: 300,
        extra: vec![],
    };
    let out = qemu::boot(sh, &boot, &work.join("serial.log"))?;
    let line = out.lines().find(|l| l.contains(MARKER)).with_context(|| {
        format!("the guest never printed {MARKER}; serial output:\n{}", tools::log_tail(&work.join("serial.log"), 30))
    })?;
    anyhow::ensure!(line.contains("efi=yes"), "the kernel did not boot through EFI: {line}");
    eprintln!("==> boot-smoke: OK in {}: {}", crate::progress::fmt_duration(start.elapsed()), line.trim());
    Ok(())
}

/// The smoke-test initramfs: busybox, `/bin/sh`, `/dev/console`, `/init`.
pub fn smoke_initramfs(busybox: &[u8]) -> Vec<u8> {
    let mut c = Cpio::default();
    for d in ["bin", "dev", "proc", "sys"] {
        c.entry(d, 0o040755, b"", (0, 0));
    }
    c.entry("bin/busybox", 0o100755, busybox, (0, 0));
    c.entry("bin/sh", 0o120777, b"busybox", (0, 0));
    c.entry("dev/console", 0o020600, b"", (5, 1));
    c.entry("init", 0o100755, INIT.as_bytes(), (0, 0));
    c.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;

    #[test]
    fn initramfs_is_deterministic_and_has_what_boot_needs() {
        let a = smoke_initramfs(b"\x7fELF fake busybox");
        assert_eq!(a, smoke_initramfs(b"\x7fELF fake busybox"));
        assert_ne!(a, smoke_initramfs(b"\x7fELF other busybox"));
        let text = String::from_utf8_lossy(&a);
        for name in ["bin/busybox\0", "bin/sh\0", "dev/console\0", "init\0", "TRAILER!!!\0"] {
            assert!(text.contains(name), "missing {name}");
        }
        assert!(INIT.contains(MARKER));
        let entries = cvm_rootfs::cpio::parse(&a).expect("the smoke initramfs is a valid newc archive");
        let names: Vec<&str> = entries.iter().map(|e| e.name).collect();
        assert_eq!(names, ["bin", "dev", "proc", "sys", "bin/busybox", "bin/sh", "dev/console", "init"]);
        assert_eq!(entries[7].data, INIT.as_bytes());
        assert!(INIT.starts_with("#!/bin/sh\n"));
        // The bytes the writer produced before it moved to cvm_rootfs::cpio.
        let sha = sha2::Sha256::digest(&a);
        assert_eq!(hex::encode(sha), "d27bbdd67b0a65ed5563a98600b7c4f7e8e5af6bfea7a2d571919d6f8b84a762");
    }
}
