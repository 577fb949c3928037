//! QEMU (`qemu-system-x86` 1:10.0.x from trixie, installed by `cargo xtask install build`):
//! accelerator detection, and boots of a q35 VM (direct kernel boot with `-kernel/-initrd/-append`,
//! or UEFI boot from disk with OVMF as pflash code + variable store) with the serial console
//! streamed to a log file. Used by `cargo xtask boot-smoke` and `boot-test`.
//!
//! KVM is used only when detected: `/dev/kvm` opens read-write AND a stopped probe VM
//! (`-machine q35,accel=kvm -cpu host -S`) starts and quits. Otherwise TCG (`-cpu max`). `CVM_QEMU_ACCEL=kvm|tcg`
//! overrides the detection.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use xshell::{cmd, Shell};

pub const QEMU: &str = "qemu-system-x86_64";

/// The accelerator a VM runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }

    /// The `-cpu` model that goes with it.
    pub fn cpu(self) -> &'static str {
        match self {
            Accel::Kvm => "host",
            Accel::Tcg => "max",
        }
    }
}

/// Detect (once per process) whether KVM is usable; prints the decision and why.
pub fn accel(sh: &Shell) -> Accel {
    static ACCEL: OnceLock<Accel> = OnceLock::new();
    *ACCEL.get_or_init(|| {
        let (a, why) = detect(sh);
        eprintln!("    qemu accelerator: {} ({why})", a.name());
        a
    })
}

fn detect(sh: &Shell) -> (Accel, String) {
    match std::env::var("CVM_QEMU_ACCEL").as_deref() {
        Ok("kvm") => return (Accel::Kvm, "CVM_QEMU_ACCEL=kvm".into()),
        Ok("tcg") => return (Accel::Tcg, "CVM_QEMU_ACCEL=tcg".into()),
        _ => {}
    }
    if let Err(e) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm") {
        return (Accel::Tcg, format!("/dev/kvm does not open: {e}"));
    }
    // The real machine and CPU model, stopped (-S), quit at once. `-machine none` is not
    // enough: on the reference build machine /dev/kvm opens and a machine-less VM starts,
    // but resetting a q35 vCPU aborts ("failed to set MSR 0x10a"), which this catches.
    let probe = cmd!(sh, "timeout 20 {QEMU} -machine q35,accel=kvm -cpu host -S -nodefaults -display none -monitor stdio")
        .stdin("quit\n")
        .ignore_stdout()
        .quiet()
        .output();
    match probe {
        Ok(o) if o.status.success() => (Accel::Kvm, "/dev/kvm opens and a stopped q35 KVM probe VM started and quit".into()),
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            (Accel::Tcg, format!("KVM probe failed: {}", err.lines().next().unwrap_or("no message")))
        }
        Err(e) => (Accel::Tcg, format!("KVM probe failed: {e}")),
    }
}

/// A boot of a q35 VM with the serial console on stdout: direct kernel boot (`kernel`), or a
/// UEFI boot from the attached disks (`kernel` `None`, firmware as `pflash`).
#[derive(Debug, Clone)]
pub struct Boot {
    /// `-kernel` (with `initrd` and `append`); `None`: the firmware boots from a disk.
    pub kernel: Option<PathBuf>,
    pub initrd: Option<PathBuf>,
    /// `-bios` image (a combined OVMF.fd); `None` = SeaBIOS (or `pflash`).
    pub firmware: Option<PathBuf>,
    /// OVMF as two pflash drives: code (read-only) and a variable store the guest may write
    /// (give it a copy).
    pub pflash: Option<(PathBuf, PathBuf)>,
    pub append: String,
    pub memory_mib: u32,
    /// Killed (and reported as failure) after this long.
    pub timeout_secs: u32,
    /// Extra QEMU arguments (devices, drives).
    pub extra: Vec<String>,
}

/// The command line of `b` with the serial console going to `serial` (`stdio` or
/// `file:PATH`), wrapped in `timeout` so that a hung guest is killed after `timeout_secs`.
fn command<'a>(sh: &'a Shell, b: &Boot, serial: &str) -> xshell::Cmd<'a> {
    let a = accel(sh);
    let machine = format!("q35,accel={}", a.name());
    let cpu = a.cpu();
    let mem = b.memory_mib.to_string();
    let t = b.timeout_secs.to_string();
    let mut args: Vec<String> = Vec::new();
    if let Some(fw) = &b.firmware {
        args.extend(["-bios".into(), fw.display().to_string()]);
    }
    if let Some((code, vars)) = &b.pflash {
        args.extend([
            "-drive".into(),
            format!("if=pflash,format=raw,unit=0,readonly=on,file={}", code.display()),
            "-drive".into(),
            format!("if=pflash,format=raw,unit=1,file={}", vars.display()),
        ]);
    }
    if let Some(k) = &b.kernel {
        args.extend(["-kernel".into(), k.display().to_string(), "-append".into(), b.append.clone()]);
        if let Some(i) = &b.initrd {
            args.extend(["-initrd".into(), i.display().to_string()]);
        }
    }
    args.extend(b.extra.iter().cloned());
    cmd!(
        sh,
        "timeout -k 5 {t} {QEMU} -machine {machine} -cpu {cpu} -smp 1 -m {mem} -nodefaults -display none -serial {serial} -no-reboot {args...}"
    )
}

/// Boot and wait for QEMU to exit (`-no-reboot`, so a guest poweroff/panic ends it). Returns
/// the serial output; the full command line and output are in `log`.
pub fn boot(sh: &Shell, b: &Boot, log: &Path) -> Result<String> {
    let res = super::run_logged(command(sh, b, "stdio"), log, None);
    let out = std::fs::read(log).map(|b| String::from_utf8_lossy(&b).into_owned()).with_context(|| format!("reading {}", log.display()))?;
    res.with_context(|| format!("QEMU boot failed or timed out after {}s (exit 124 = timeout)", b.timeout_secs))?;
    Ok(out)
}

/// Start a VM in the background, its serial console written to `serial_log` and QEMU's own
/// messages to `serial_log` + `.qemu`. The caller talks to the guest and waits for the child
/// (which `timeout` kills after `timeout_secs`).
pub fn spawn(sh: &Shell, b: &Boot, serial_log: &Path) -> Result<std::process::Child> {
    let _ = std::fs::remove_file(serial_log);
    let c = command(sh, b, &format!("file:{}", serial_log.display()));
    let line = c.to_string();
    eprintln!("$ {line}");
    let qemu_log = serial_log.with_extension("qemu.log");
    let f = std::fs::File::create(&qemu_log).with_context(|| format!("creating {}", qemu_log.display()))?;
    let mut c: std::process::Command = c.into();
    c.stdin(std::process::Stdio::null())
        .stdout(f.try_clone().with_context(|| format!("cloning {}", qemu_log.display()))?)
        .stderr(f);
    c.spawn().with_context(|| format!("starting `{line}`"))
}
