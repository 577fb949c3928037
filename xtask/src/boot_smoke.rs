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
        kernel: kdir.join("bzImage"),
        initrd: Some(initrd),
        firmware: Some(fwdir.join("OVMF.fd")),
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

/// A deterministic cpio "newc" (SVR4 without CRC, magic `070701`) writer, as the kernel's
/// initramfs unpacker reads it (Documentation/driver-api/early-userspace/buffer-format.rst).
#[derive(Default)]
pub struct Cpio {
    buf: Vec<u8>,
    ino: u32,
}

impl Cpio {
    /// Append one entry: `mode` includes the file type bits; `rdev` = (major, minor) for
    /// device nodes; `data` is the file content or the symlink target.
    pub fn entry(&mut self, name: &str, mode: u32, data: &[u8], rdev: (u32, u32)) {
        self.ino += 1;
        let nlink = if mode & 0o170000 == 0o040000 { 2 } else { 1 };
        self.header(self.ino, mode, nlink, data.len() as u32, rdev, name);
        self.buf.extend_from_slice(data);
        self.pad();
    }

    fn header(&mut self, ino: u32, mode: u32, nlink: u32, size: u32, rdev: (u32, u32), name: &str) {
        let fields = [ino, mode, 0, 0, nlink, 0, size, 0, 0, rdev.0, rdev.1, name.len() as u32 + 1, 0];
        self.buf.extend_from_slice(b"070701");
        for f in fields {
            self.buf.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(0);
        self.pad();
    }

    fn pad(&mut self) {
        while self.buf.len() % 4 != 0 {
            self.buf.push(0);
        }
    }

    /// Append the `TRAILER!!!` entry and return the archive.
    pub fn finish(mut self) -> Vec<u8> {
        self.header(0, 0, 1, 0, (0, 0), "TRAILER!!!");
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newc_header_layout() {
        let mut c = Cpio::default();
        c.entry("init", 0o100755, b"abc", (0, 0));
        let b = c.finish();
        // 110-byte header, "init\0" (5) -> 115, padded to 116; data 3 -> 119, padded to 120.
        assert_eq!(&b[..6], b"070701");
        assert_eq!(&b[6..14], b"00000001", "ino");
        assert_eq!(&b[14..22], b"000081ed", "mode 0100755");
        assert_eq!(&b[54..62], b"00000003", "filesize");
        assert_eq!(&b[94..102], b"00000005", "namesize includes NUL");
        assert_eq!(&b[110..115], b"init\0");
        assert_eq!(&b[116..119], b"abc");
        assert_eq!(&b[120..126], b"070701");
        assert_eq!(&b[230..241], b"TRAILER!!!\0");
        assert_eq!(b.len() % 4, 0);
    }

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
        assert!(INIT.starts_with("#!/bin/sh\n"));
    }
}
