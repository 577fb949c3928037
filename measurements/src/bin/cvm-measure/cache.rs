//! The per-user cache of `cvm-measure` (`$XDG_CACHE_HOME/cvm-image`, else
//! `~/.cache/cvm-image`; safe to delete): ACPI captures (`acpi/`, [`crate::qemu_acpi`]) and
//! the firmware probes of the QEMU 10.0 kernel model (`firmware-named-blobs/`) and of
//! `--ovmf-model auto` (`firmware-measures-smbios/`), the firmware's boot options
//! (`firmware-boot-options/`) and its default SMBIOS Type 0 strings (`firmware-smbios-type0/`).

use anyhow::{Context, Result};
use cvm_measurements::smbios::OvmfType0;
use cvm_measurements::tdx::OvmfEventModel;
use cvm_measurements::uefi::load_option::EfiLoadOption;
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
/// `$XDG_CACHE_HOME/cvm-image/firmware-named-blobs/<key>` ("1" or "0"): the probe
/// decompresses FVMAIN_COMPACT, about 280 ms. An unreadable or malformed entry is ignored and
/// rewritten. `key` names the firmware's code: `cvm-measure tdx` uses `mrtd-<MRTD>`.
pub fn firmware_reads_named_blobs(firmware: &[u8], key: &str) -> Result<bool> {
    firmware_answer("firmware-named-blobs", key, || {
        cvm_measurements::ovmf::fv::OvmfMemFvs::parse(firmware)
            .and_then(|m| m.reads_qemu_named_blobs())
            .context("telling whether the firmware reads QEMU's etc/boot/kernel (QEMU 10.0 kernel model)")
    })
}

/// Whether `firmware` measures the SMBIOS table (it carries SmbiosMeasurementDxe: edk2 ≥
/// stable202505, `OvmfMemFvs::measures_smbios`), cached like [`firmware_reads_named_blobs`]
/// in `firmware-measures-smbios/`.
pub fn firmware_measures_smbios(firmware: &[u8]) -> Result<bool> {
    firmware_answer("firmware-measures-smbios", &firmware_key(firmware), || {
        cvm_measurements::ovmf::fv::OvmfMemFvs::parse(firmware)
            .and_then(|m| m.measures_smbios())
            .context("telling the firmware's event model (--ovmf-model auto)")
    })
}

/// The boot options OVMF creates for a `-kernel` boot under `model`, derived from the
/// firmware (`OvmfEventModel::boot_options_of`), cached per (model generation, firmware
/// code) in `firmware-boot-options/<model>-<key>` as one hex `EFI_LOAD_OPTION` per line.
pub fn firmware_boot_options(firmware: &[u8], key: &str, model: OvmfEventModel) -> Result<Vec<EfiLoadOption>> {
    let dir = base()?.join("firmware-boot-options");
    let entry = dir.join(format!("{}-{key}", model.name()));
    let parse = |text: &str| -> Option<Vec<EfiLoadOption>> {
        text.lines().map(|l| EfiLoadOption::parse(&hex::decode(l).ok()?).ok()).collect()
    };
    if let Some(o) = std::fs::read_to_string(&entry).ok().as_deref().and_then(parse).filter(|o| !o.is_empty()) {
        return Ok(o);
    }
    let options = cvm_measurements::ovmf::fv::OvmfMemFvs::parse(firmware)
        .map_err(cvm_measurements::tdx::Error::from)
        .and_then(|fvs| model.boot_options_of(&fvs))
        .context("deriving the firmware's boot options (Boot####, RTMR0)")?;
    let text: String = options.iter().map(|o| hex::encode(o.to_bytes()) + "\n").collect();
    write_entry(&dir, &entry, text.as_bytes());
    Ok(options)
}

/// The default SMBIOS Type 0 strings of `firmware` (`OvmfMemFvs::smbios_type0`), cached in
/// `firmware-smbios-type0/<key>` as three lines (vendor, version, date); `key` names the
/// firmware's code (`cvm-measure tdx` uses `mrtd-<MRTD>`).
pub fn firmware_smbios_type0(firmware: &[u8], key: &str) -> Result<OvmfType0> {
    let dir = base()?.join("firmware-smbios-type0");
    let entry = dir.join(key);
    if let Ok(text) = std::fs::read_to_string(&entry) {
        if let [vendor, version, release_date] = text.lines().collect::<Vec<_>>()[..] {
            let t = OvmfType0 { vendor: vendor.into(), version: version.into(), release_date: release_date.into() };
            return Ok(t);
        }
    }
    let type0 = cvm_measurements::ovmf::fv::OvmfMemFvs::parse(firmware)
        .and_then(|m| m.smbios_type0())
        .context("reading the firmware's default SMBIOS Type 0 strings (SmbiosPlatformDxe)")?
        .context("the firmware has no SmbiosPlatformDxe, so no SMBIOS table to measure")?;
    let text = format!("{}\n{}\n{}\n", type0.vendor, type0.version, type0.release_date);
    write_entry(&dir, &entry, text.as_bytes());
    Ok(type0)
}

/// The cache key of a TDX firmware's code, after measuring: its MRTD covers every byte of the
/// measured volumes, where the cached facts (boot options, Type 0 strings, etc/boot/kernel) come
/// from.
pub fn mrtd_key(mrtd: &[u8; 48]) -> String {
    format!("mrtd-{}", hex::encode(mrtd))
}

/// The cache key of a whole firmware image: its sha256 (hex).
fn firmware_key(firmware: &[u8]) -> String {
    hex::encode(Sha256::digest(firmware))
}

/// A yes/no fact about a firmware image, computed by `probe` once per firmware sha256.
fn firmware_answer(dir: &str, key: &str, probe: impl FnOnce() -> Result<bool>) -> Result<bool> {
    let dir = base()?.join(dir);
    let entry = dir.join(key);
    match std::fs::read(&entry).as_deref() {
        Ok(b"1") => return Ok(true),
        Ok(b"0") => return Ok(false),
        _ => {}
    }
    let answer = probe()?;
    write_entry(&dir, &entry, if answer { b"1" } else { b"0" });
    Ok(answer)
}

/// Best effort: a cache that cannot be written only costs the probe next time.
fn write_entry(dir: &std::path::Path, entry: &std::path::Path, bytes: &[u8]) {
    let tmp = entry.with_extension(format!("tmp{}", std::process::id()));
    if std::fs::create_dir_all(dir).is_ok() && std::fs::write(&tmp, bytes).is_ok() {
        let _ = std::fs::rename(&tmp, entry);
    }
}
