//! The per-user cache of `cvm-measure` (`$XDG_CACHE_HOME/cvm-image`, else
//! `~/.cache/cvm-image`; safe to delete): ACPI captures (`acpi/`, [`crate::qemu_acpi`]) and
//! the firmware probes of the QEMU 10.0 kernel model (`firmware-named-blobs/`) and of
//! `--ovmf-model auto` (`firmware-measures-smbios/`).

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::path::PathBuf;

/// `$XDG_CACHE_HOME/cvm-image` (else `~/.cache/cvm-image`).
pub fn base() -> Result<PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(
            std::env::var_os("HOME").context("neither XDG_CACHE_HOME nor HOME is set")?,
        )
        .join(".cache"),
    };
    Ok(base.join("cvm-image"))
}

/// Whether `firmware` reads QEMU's named `etc/boot/*` blobs
/// (`OvmfMemFvs::reads_qemu_named_blobs`), cached per firmware sha256 in
/// `$XDG_CACHE_HOME/cvm-image/firmware-named-blobs/<sha256>` ("1" or "0"): the probe
/// decompresses FVMAIN_COMPACT, about 280 ms, the lookup a sha256 of the file. An unreadable
/// or malformed entry is ignored and rewritten.
pub fn firmware_reads_named_blobs(firmware: &[u8]) -> Result<bool> {
    firmware_answer("firmware-named-blobs", firmware, || {
        cvm_measurements::ovmf::fv::OvmfMemFvs::parse(firmware)
            .and_then(|m| m.reads_qemu_named_blobs())
            .context("telling whether the firmware reads QEMU's etc/boot/kernel (QEMU 10.0 kernel model)")
    })
}

/// Whether `firmware` measures the SMBIOS table (it carries SmbiosMeasurementDxe: edk2 ≥
/// stable202505, `OvmfMemFvs::measures_smbios`), cached like [`firmware_reads_named_blobs`]
/// in `firmware-measures-smbios/`.
pub fn firmware_measures_smbios(firmware: &[u8]) -> Result<bool> {
    firmware_answer("firmware-measures-smbios", firmware, || {
        cvm_measurements::ovmf::fv::OvmfMemFvs::parse(firmware)
            .and_then(|m| m.measures_smbios())
            .context("telling the firmware's event model (--ovmf-model auto)")
    })
}

/// A yes/no fact about a firmware image, computed by `probe` once per firmware sha256.
fn firmware_answer(dir: &str, firmware: &[u8], probe: impl FnOnce() -> Result<bool>) -> Result<bool> {
    let dir = base()?.join(dir);
    let entry = dir.join(hex::encode(Sha256::digest(firmware)));
    match std::fs::read(&entry).as_deref() {
        Ok(b"1") => return Ok(true),
        Ok(b"0") => return Ok(false),
        _ => {}
    }
    let answer = probe()?;
    // Best effort: a cache that cannot be written only costs the probe next time.
    let tmp = entry.with_extension(format!("tmp{}", std::process::id()));
    if std::fs::create_dir_all(&dir).is_ok() && std::fs::write(&tmp, if answer { "1" } else { "0" }).is_ok() {
        let _ = std::fs::rename(&tmp, &entry);
    }
    Ok(answer)
}
