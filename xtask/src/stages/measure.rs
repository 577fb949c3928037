//! Measurement stage: predicted launch measurements for every `[[shape]]` of the image spec,
//! computed by the release `cvm-measure` binary (built with `cargo build --release -p
//! cvm-measure`) run as a subprocess:
//!
//! - SNP: `cvm-measure snp --mode snp --json` with the `ovmf-snp` firmware, kernel and command
//!   line, one entry per vCPU count: `{vcpus, vcpu_sig, guest_features, policy, launch_digest}`.
//! - TDX: `cvm-measure tdx --qemu ... --machine MACHINE [--cpu-model CPU] --ovmf-model MODEL
//!   --json` with the `ovmf-tdx` firmware (ACPI and SMBIOS captured by QEMU under TCG for the
//!   shape's `machine`, `machine_flags` and `cpu`, cached by cvm-measure; MODEL from
//!   `[firmware].tdx_event_model`), one entry per vCPU count:
//!   `{vcpus, mrtd, rtmr0..rtmr3, event_log, ovmf_model, acpi_capture}` (`acpi_capture`: QEMU
//!   version, shape argv and the sha256 of each fw_cfg file), the predicted CCEL event log written to
//!   `measurements/tdx-<shape>-<vcpus>.ccel` (an artefact, role `tdx-event-log.<shape>.<vcpus>`). A failed prediction is recorded as `{vcpus, error}` and
//!   does not fail the build.
//! - vTPM PCRs, once per image (they do not depend on vCPUs or memory): `cvm-measure vtpm
//!   --json` with the `ovmf-vtpm` firmware, the kernel, the image's UEFI variable store and
//!   disk (a UEFI boot of the disk; without a disk: direct boot with initrd and command line) → the manifest's
//!   top-level `vtpm: {firmware_role, pcrs: {sha256, sha384}, events}` (PCRs 0, 4, 5, 7, 9).
//!   A failure fails the build: the prediction is pure and must work for the built firmware.

use anyhow::{Context, Result};
use cvm_image_spec::{PageOrder, Shape, TdxEventModel, Vmm};
use cvm_manifest::{ShapeMeasurements, VtpmEvent, VtpmMeasurements};
use serde_json::{json, Value};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use xshell::{cmd, Shell};

/// The QEMU used to capture the ACPI tables of a TDX shape.
pub const QEMU: &str = "qemu-system-x86_64";

/// What the measurements are computed over.
pub struct MeasureInputs<'a> {
    pub kernel: &'a Path,
    pub initrd: Option<&'a Path>,
    pub cmdline: &'a str,
    /// `ovmf-snp` firmware, when built.
    pub ovmf_snp: Option<&'a Path>,
    /// `ovmf-tdx` firmware, when built.
    pub ovmf_tdx: Option<&'a Path>,
    /// `ovmf-vtpm` firmware, when built.
    pub ovmf_vtpm: Option<&'a Path>,
    /// The UEFI variable store and the disk it boots: the vTPM prediction is for that boot.
    pub uefi_disk: Option<(&'a Path, &'a Path)>,
    /// The image's output directory: predicted event logs go to `measurements/` in it.
    pub out_dir: &'a Path,
    /// `[firmware].tdx_event_model`: `cvm-measure tdx --ovmf-model`.
    pub tdx_event_model: TdxEventModel,
}

/// Where the predicted TDX event log (CCEL) of a shape and vCPU count goes, relative to the
/// output directory.
pub fn tdx_event_log_path(shape: &str, vcpus: u32) -> String {
    format!("measurements/tdx-{shape}-{vcpus}.ccel")
}

impl MeasureInputs<'_> {
    /// `--initrd PATH` when there is an initrd, for every `cvm-measure` subcommand.
    fn initrd_args(&self) -> Vec<&OsStr> {
        self.initrd
            .map_or_else(Vec::new, |p| vec![OsStr::new("--initrd"), p.as_os_str()])
    }
}

/// Build the release `cvm-measure` binary and return its path (as cargo reports it, so
/// `CARGO_TARGET_DIR` and cargo configuration are honoured).
pub fn cvm_measure(sh: &Shell, root: &Path) -> Result<PathBuf> {
    crate::tools::stage("measure: cargo build --release -p cvm-measure --bin cvm-measure");
    let _dir = sh.push_dir(root);
    let messages = cmd!(sh, "cargo build --release --quiet -p cvm-measure --bin cvm-measure --message-format=json-render-diagnostics")
        .read()
        .context("building cvm-measure")?;
    messages
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "cvm-measure")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .context("cargo reported no cvm-measure executable")
}

/// Measurements of every shape, in spec order.
pub fn shapes(
    sh: &Shell,
    bin: &Path,
    shapes: &[Shape],
    inputs: &MeasureInputs<'_>,
) -> Result<Vec<ShapeMeasurements>> {
    shapes.iter().map(|s| shape(sh, bin, s, inputs)).collect()
}

fn shape(
    sh: &Shell,
    bin: &Path,
    s: &Shape,
    inputs: &MeasureInputs<'_>,
) -> Result<ShapeMeasurements> {
    eprintln!(
        "    shape {}: vcpus {:?}, memory {}",
        s.name, s.vcpus.0, s.memory
    );
    let snp = match inputs.ovmf_snp {
        Some(fw) => Some(Value::Array(
            s.vcpus
                .0
                .iter()
                .map(|&n| snp(sh, bin, s, n, fw, inputs))
                .collect::<Result<_>>()?,
        )),
        None => None,
    };
    let tdx = inputs.ovmf_tdx.map(|fw| {
        Value::Array(
            s.vcpus
                .0
                .iter()
                .map(|&n| tdx(sh, bin, s, n, fw, inputs))
                .collect(),
        )
    });
    Ok(ShapeMeasurements {
        name: s.name.clone(),
        tdx,
        snp,
        vtpm: None,
    })
}

/// The vTPM prediction of the image, when the `ovmf-vtpm` firmware was built.
pub fn vtpm(
    sh: &Shell,
    bin: &Path,
    inputs: &MeasureInputs<'_>,
) -> Result<Option<VtpmMeasurements>> {
    let Some(fw) = inputs.ovmf_vtpm else {
        return Ok(None);
    };
    let (kernel, cmdline) = (inputs.kernel, inputs.cmdline);
    let initrd = inputs.initrd_args();
    let out = match inputs.uefi_disk {
        // The image's own boot: UEFI from the disk by the variable store's boot option.
        Some((vars, disk)) => cmd!(
            sh,
            "{bin} vtpm --firmware {fw} --kernel {kernel} --vars {vars} --disk {disk} --json"
        ),
        None => cmd!(
            sh,
            "{bin} vtpm --firmware {fw} --kernel {kernel} {initrd...} --cmdline {cmdline} --json"
        ),
    }
    .read()
    .context("vTPM PCR prediction (cvm-measure vtpm)")?;
    let mut v = vtpm_from_json(cvm_manifest::role::OVMF_VTPM, &out)?;
    if inputs.uefi_disk.is_some() {
        v.boot = Some(cvm_manifest::VTPM_BOOT_UEFI_DISK.into());
    }
    eprintln!(
        "    vtpm ({}): {}",
        v.firmware_role,
        v.pcrs["sha256"]
            .iter()
            .map(|(p, h)| format!("PCR{p} {}…", &h[..16]))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(Some(v))
}

/// The manifest's `vtpm` from `cvm-measure vtpm --json` output
/// (`{"sha256": {pcr: hex}, "sha384": {...}, "events": [...]}`).
fn vtpm_from_json(firmware_role: &str, out: &str) -> Result<VtpmMeasurements> {
    let mut v: serde_json::Map<String, Value> = serde_json::from_str(out)
        .with_context(|| format!("parsing cvm-measure vtpm output {out:?}"))?;
    let events: Vec<VtpmEvent> = serde_json::from_value(v.remove("events").unwrap_or_default())
        .context("cvm-measure vtpm: `events`")?;
    let pcrs = v
        .into_iter()
        .map(|(bank, values)| {
            let values = serde_json::from_value(values)
                .with_context(|| format!("cvm-measure vtpm: `{bank}` is not {{pcr: hex}}"))?;
            Ok((bank, values))
        })
        .collect::<Result<_>>()?;
    anyhow::ensure!(!events.is_empty(), "cvm-measure vtpm: no events in {out}");
    Ok(VtpmMeasurements {
        firmware_role: firmware_role.to_owned(),
        boot: None,
        pcrs,
        events,
    })
}

fn snp(
    sh: &Shell,
    bin: &Path,
    s: &Shape,
    vcpus: u32,
    fw: &Path,
    inputs: &MeasureInputs<'_>,
) -> Result<Value> {
    let sig = s
        .vcpu_signature()
        .with_context(|| format!("shape {}: no cpu model or cpu_signature for SNP", s.name))?;
    let (n, sig_s, feat) = (
        vcpus.to_string(),
        format!("{sig:#x}"),
        format!("{:#x}", s.guest_features),
    );
    let vmm = match s.vmm {
        Vmm::Qemu => "QEMU",
        Vmm::Ec2 => "ec2",
        Vmm::Gce => "gce",
    };
    let (kernel, append) = (inputs.kernel, inputs.cmdline);
    let initrd = inputs.initrd_args();
    let out = cmd!(
        sh,
        "{bin} snp --mode snp --vcpus {n} --vcpu-sig {sig_s} --vmm-type {vmm} --guest-features {feat} --ovmf {fw} --kernel {kernel} {initrd...} --append {append} --json"
    )
    .read()
    .with_context(|| format!("shape {}: SNP launch digest ({vcpus} vCPUs)", s.name))?;
    let v: Value = serde_json::from_str(&out)
        .with_context(|| format!("parsing cvm-measure snp output {out:?}"))?;
    let digest = v["measurement"]
        .as_str()
        .context("cvm-measure snp: no `measurement`")?;
    Ok(json!({
        "vcpus": vcpus,
        "vcpu_sig": sig_s,
        "guest_features": feat,
        "policy": format!("{:#x}", s.snp_policy),
        "launch_digest": digest,
    }))
}

fn tdx(
    sh: &Shell,
    bin: &Path,
    s: &Shape,
    vcpus: u32,
    fw: &Path,
    inputs: &MeasureInputs<'_>,
) -> Value {
    match tdx_values(sh, bin, s, vcpus, fw, inputs) {
        Ok(mut v) => {
            v["vcpus"] = json!(vcpus);
            v
        }
        Err(e) => {
            eprintln!(
                "    warning: shape {}: TDX prediction failed ({vcpus} vCPUs): {e:#}",
                s.name
            );
            json!({ "vcpus": vcpus, "error": format!("{e:#}") })
        }
    }
}

/// The shape's `-machine` argument for the ACPI capture: the type, then the flags in order
/// (`q35,smm=off,pic=off,hpet=off`).
fn machine_arg(s: &Shape) -> String {
    std::iter::once(s.machine.as_str())
        .chain(s.machine_flags.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(",")
}

fn tdx_values(
    sh: &Shell,
    bin: &Path,
    s: &Shape,
    vcpus: u32,
    fw: &Path,
    inputs: &MeasureInputs<'_>,
) -> Result<Value> {
    let (n, mem) = (vcpus.to_string(), format!("{}M", s.memory.bytes() >> 20));
    let qemu_version = s.qemu_version.clone().unwrap_or_else(|| "10.0".into());
    let (kernel, cmdline) = (inputs.kernel, inputs.cmdline);
    let initrd = inputs.initrd_args();
    let order: Vec<&str> = match s.tdx_page_order {
        None => vec![],
        Some(PageOrder::SinglePass) => vec!["--page-order", "single"],
        Some(PageOrder::TwoPass) => vec!["--page-order", "two-pass"],
    };
    let machine = machine_arg(s);
    let model = inputs.tdx_event_model.as_str();
    // The shape's CPU model goes into SMBIOS type 4, which edk2 >= stable202505 measures; the
    // ACPI tables do not depend on it.
    let cpu: Vec<&str> = s.cpu.iter().flat_map(|c| ["--cpu-model", c.as_str()]).collect();
    let rel = tdx_event_log_path(&s.name, vcpus);
    let log = inputs.out_dir.join(&rel);
    let capture_path = std::env::temp_dir().join(format!(
        "cvm-capture-{}-{}-{vcpus}.json",
        std::process::id(),
        s.name
    ));
    if let Some(d) = log.parent() {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let o = cmd!(
        sh,
        "{bin} tdx --firmware {fw} --cpus {n} --memory {mem} --kernel {kernel} {initrd...} --cmdline {cmdline} --qemu {QEMU} --machine {machine} {cpu...} --qemu-version {qemu_version} {order...} --ovmf-model {model} --json --event-log-out {log} --capture-json {capture_path}"
    )
    .ignore_status()
    .quiet()
    .output()
    .context("running cvm-measure tdx")?;
    let err = String::from_utf8_lossy(&o.stderr);
    anyhow::ensure!(
        o.status.success(),
        "cvm-measure tdx exited with {}: {}",
        o.status,
        err.trim()
    );
    let out = String::from_utf8_lossy(&o.stdout);
    let v: Value = serde_json::from_str(&out)
        .with_context(|| format!("parsing cvm-measure tdx output {out:?}"))?;
    anyhow::ensure!(
        v.get("mrtd").is_some_and(Value::is_string),
        "cvm-measure tdx: no `mrtd` in {out}"
    );
    let mut v = v;
    v["event_log"] = json!(rel);
    v["ovmf_model"] = json!(model);
    // The QEMU version, shape argv and sha256 of the fw_cfg ACPI/SMBIOS files predicted with.
    let record = std::fs::read(&capture_path).context("reading cvm-measure's --capture-json");
    let _ = std::fs::remove_file(&capture_path);
    let record = record?;
    v["acpi_capture"] = serde_json::from_slice(&record).context("parsing cvm-measure's --capture-json")?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_tdx_prediction_is_recorded_not_fatal() {
        let sh = Shell::new().unwrap();
        let spec = cvm_image_spec::ImageSpec::default_spec();
        let p = Path::new("/nonexistent/file");
        let inputs = MeasureInputs {
            kernel: p,
            initrd: None,
            cmdline: "console=ttyS0",
            ovmf_snp: None,
            ovmf_tdx: Some(p),
            ovmf_vtpm: None,
            uefi_disk: None,
            out_dir: p,
            tdx_event_model: TdxEventModel::Auto,
        };
        let m = shape(
            &sh,
            Path::new("/nonexistent/cvm-measure"),
            &spec.shapes[1],
            &inputs,
        )
        .unwrap();
        let tdx = m.tdx.unwrap();
        let entries = tdx.as_array().unwrap();
        assert_eq!(entries.len(), spec.shapes[1].vcpus.0.len());
        for (e, n) in entries.iter().zip(&spec.shapes[1].vcpus.0) {
            assert_eq!(e["vcpus"], json!(n));
            assert!(
                e["error"].as_str().unwrap().contains("cvm-measure tdx"),
                "{e}"
            );
            assert!(e.get("mrtd").is_none());
        }
        assert!(m.snp.is_none() && m.vtpm.is_none());
    }

    /// The default spec's shapes capture with cvm-measure's default machine (the §5.2 shape),
    /// and the flags follow the type in spec order.
    #[test]
    fn machine_arg_joins_type_and_flags() {
        let spec = cvm_image_spec::ImageSpec::default_spec();
        for s in &spec.shapes {
            assert_eq!(machine_arg(s), "q35,smm=off,pic=off,hpet=off", "{}", s.name);
        }
        let mut s = spec.shapes[0].clone();
        s.machine_flags = vec!["hpet=on".into(), "kernel-irqchip=split".into()];
        assert_eq!(machine_arg(&s), "q35,hpet=on,kernel-irqchip=split");
        s.machine_flags.clear();
        assert_eq!(machine_arg(&s), "q35");
    }

    /// `cvm-measure vtpm --json` output becomes a `vtpm` block that passes the manifest's checks
    /// (its events replay to its PCRs).
    #[test]
    fn vtpm_json_becomes_a_valid_manifest_block() {
        use sha2::{Digest, Sha256, Sha384};
        let (d256, d384) = ("11".repeat(32), "22".repeat(48));
        let p256 = Sha256::new()
            .chain_update([0u8; 32])
            .chain_update(hex::decode(&d256).unwrap())
            .finalize();
        let p384 = Sha384::new()
            .chain_update([0u8; 48])
            .chain_update(hex::decode(&d384).unwrap())
            .finalize();
        let out = json!({
            "sha256": {"9": hex::encode(p256)},
            "sha384": {"9": hex::encode(p384)},
            "events": [{"pcr": 9, "event_type": "EV_EVENT_TAG", "description": "LOADED_IMAGE::LoadOptions",
                        "digests": {"sha256": d256, "sha384": d384}}],
        });
        let v = vtpm_from_json("ovmf-vtpm", &out.to_string()).unwrap();
        assert_eq!(v.pcrs.keys().collect::<Vec<_>>(), ["sha256", "sha384"]);
        assert_eq!(v.events[0].description, "LOADED_IMAGE::LoadOptions");
        let mut m = cvm_manifest::Manifest::new(
            cvm_manifest::ImageInfo {
                name: "t".into(),
                version: "1".into(),
                test_image: true,
            },
            String::new(),
        );
        m.artefacts.push(cvm_manifest::Artefact {
            role: "ovmf-vtpm".into(),
            path: "firmware/ovmf-vtpm/OVMF.fd".into(),
            sha256: "00".repeat(32),
            size: 1,
        });
        m.vtpm = Some(v);
        m.to_bytes().unwrap();
        for bad in [
            r#"{"sha256": {"9": 1}, "events": []}"#,
            r#"{"sha256": {"9": "00"}, "events": []}"#,
            "not json",
        ] {
            assert!(vtpm_from_json("ovmf-vtpm", bad).is_err(), "{bad}");
        }
    }
}
