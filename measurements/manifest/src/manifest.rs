//! `Manifest`: what an image build produced and the measurements predicted for it, written as
//! canonical JSON (`manifest.json`). Versioned by `schema_version`; no clock time (only an optional
//! `source_date_epoch`), no absolute paths, no host names, keys sorted.

use crate::canonical;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// The schema this crate writes. History:
/// - 1: first version.
/// - 2: `vtpm.boot` (how the vTPM prediction's VM boots: absent = direct kernel boot,
///   `uefi-disk` = the firmware boots the `disk` artefact by the `uefi-vars` boot option).
///
/// Version 1 documents are read too (a subset); any other version is refused.
pub const SCHEMA_VERSION: u32 = 2;
/// The oldest schema this crate reads.
pub const OLDEST_READABLE_SCHEMA_VERSION: u32 = 1;
/// The manifest's file name in the output directory (also its in-toto subject name).
pub const FILE_NAME: &str = "manifest.json";
/// [`VtpmMeasurements::boot`] of a UEFI boot of the disk.
pub const VTPM_BOOT_UEFI_DISK: &str = "uefi-disk";

/// Well-known artefact roles. A build may add others (`kernel-config`, `ovmf-tdx-vars`, ...):
/// a role is `[a-z0-9][a-z0-9._-]*`, unique in a manifest.
pub mod role {
    pub const KERNEL: &str = "kernel";
    pub const INITRD: &str = "initrd";
    pub const OVMF_TDX: &str = "ovmf-tdx";
    pub const OVMF_SNP: &str = "ovmf-snp";
    pub const OVMF_VTPM: &str = "ovmf-vtpm";
    pub const ROOTFS: &str = "rootfs";
    pub const VERITY: &str = "verity";
    pub const DISK: &str = "disk";
    /// The `ovmf-vtpm` variable store (pflash unit 1) whose boot option boots `disk` by UEFI
    /// with the image's command line.
    pub const UEFI_VARS: &str = "uefi-vars";
    /// The code part of `ovmf-vtpm` (pflash unit 0).
    pub const OVMF_VTPM_CODE: &str = "ovmf-vtpm-code";
}

/// The measurement manifest of one image build.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    pub image: ImageInfo,
    /// `SOURCE_DATE_EPOCH` of the build, if set: the only time in a manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_date_epoch: Option<u64>,
    /// Build outputs; paths relative to the manifest's directory. Sorted by role when written.
    pub artefacts: Vec<Artefact>,
    /// Pinned build inputs (source packages, tarballs, fixtures). Sorted by name when written.
    #[serde(default)]
    pub inputs: Vec<Input>,
    /// Versions of the programs the build ran (`mkosi` → `25.3`), for reproduction.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tools: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verity: Option<Verity>,
    /// The kernel command line exactly as measured.
    pub cmdline: String,
    /// Digests of the initdata document, algorithm → lowercase hex (`sha256`, `sha384`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub initdata_digest: BTreeMap<String, String>,
    /// Predicted measurements, one entry per VM shape of the spec.
    #[serde(default)]
    pub shapes: Vec<ShapeMeasurements>,
    /// Predicted vTPM PCRs of the image: the same for every shape (they depend on firmware,
    /// kernel, initrd and command line only), so once per manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vtpm: Option<VtpmMeasurements>,
}

/// vTPM PCRs predicted for QEMU + OVMF (`cvm-measure vtpm`), with the events behind them, so a
/// verifier can name the measurement that moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VtpmMeasurements {
    /// Role of the firmware artefact the prediction is for (`ovmf-vtpm`).
    pub firmware_role: String,
    /// How the VM boots: [`VTPM_BOOT_UEFI_DISK`] (the firmware boots the `disk` artefact by
    /// the boot option in the `uefi-vars` artefact), or absent for a direct kernel boot
    /// (`-kernel` with the manifest's command line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<String>,
    /// Bank (`sha256`, `sha384`) → PCR index (decimal, `"4"`) → lowercase hex value.
    pub pcrs: BTreeMap<String, BTreeMap<String, String>>,
    /// The events that extend those PCRs, in log order.
    #[serde(default)]
    pub events: Vec<VtpmEvent>,
}

/// One predicted TCG event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VtpmEvent {
    pub pcr: u32,
    /// TCG PC Client event type name (`EV_EFI_ACTION`).
    pub event_type: String,
    /// Bank → lowercase hex digest.
    pub digests: BTreeMap<String, String>,
    /// What was measured, for people.
    pub description: String,
}

/// Digest size of a vTPM bank this schema knows.
pub fn vtpm_bank_size(bank: &str) -> Option<usize> {
    match bank {
        "sha256" => Some(32),
        "sha384" => Some(48),
        _ => None,
    }
}

impl VtpmMeasurements {
    /// Banks and hex well-formed, PCR keys `0`..`23` in decimal, every event's digests in the
    /// banks of `pcrs`, and replaying the events from zero gives `pcrs` exactly.
    fn check(&self, artefacts: &[Artefact]) -> Result<(), ManifestError> {
        if !artefacts.iter().any(|a| a.role == self.firmware_role) {
            return Err(field_err(
                "vtpm.firmware_role",
                format!("no artefact has role {:?}", self.firmware_role),
            ));
        }
        match self.boot.as_deref() {
            None => {}
            Some(VTPM_BOOT_UEFI_DISK) => {
                for r in [role::UEFI_VARS, role::DISK] {
                    if !artefacts.iter().any(|a| a.role == r) {
                        return Err(field_err(
                            "vtpm.boot",
                            format!("{VTPM_BOOT_UEFI_DISK:?} needs an artefact with role {r:?}"),
                        ));
                    }
                }
            }
            Some(other) => {
                return Err(field_err(
                    "vtpm.boot",
                    format!("{other:?} is not {VTPM_BOOT_UEFI_DISK:?} (or absent: direct boot)"),
                ))
            }
        }
        if self.pcrs.is_empty() {
            return Err(field_err("vtpm.pcrs", "has no bank"));
        }
        for (bank, values) in &self.pcrs {
            let size = vtpm_bank_size(bank).ok_or_else(|| {
                field_err("vtpm.pcrs", format!("{bank:?} is not sha256 or sha384"))
            })?;
            for (pcr, v) in values {
                let f = format!("vtpm.pcrs.{bank}.{pcr}");
                if pcr_index(pcr).is_none() {
                    return Err(field_err(f, "is not a PCR index 0..23 in decimal"));
                }
                if !is_hex(v, size) {
                    return Err(field_err(
                        f,
                        format!("{v:?} is not {size} bytes of lowercase hex"),
                    ));
                }
            }
        }
        let mut replayed: BTreeMap<&str, BTreeMap<u32, Vec<u8>>> = BTreeMap::new();
        for (i, e) in self.events.iter().enumerate() {
            let f = |k: &str| format!("vtpm.events[{i}].{k}");
            if e.pcr > 23 {
                return Err(field_err(f("pcr"), format!("{} is not 0..23", e.pcr)));
            }
            if e.event_type.is_empty() {
                return Err(field_err(f("event_type"), "is empty"));
            }
            if !e.digests.keys().eq(self.pcrs.keys()) {
                return Err(field_err(
                    f("digests"),
                    format!(
                        "banks {:?} are not those of vtpm.pcrs",
                        e.digests.keys().collect::<Vec<_>>()
                    ),
                ));
            }
            for (bank, d) in &e.digests {
                let size = vtpm_bank_size(bank).unwrap_or(0);
                let bytes = hex::decode(d)
                    .ok()
                    .filter(|b| b.len() == size && is_hex(d, size))
                    .ok_or_else(|| {
                        field_err(
                            f(&format!("digests.{bank}")),
                            format!("{d:?} is not {size} bytes of lowercase hex"),
                        )
                    })?;
                let reg = replayed
                    .entry(bank.as_str())
                    .or_default()
                    .entry(e.pcr)
                    .or_insert_with(|| vec![0; size]);
                *reg = extend(bank, reg, &bytes);
            }
        }
        if !self.events.is_empty() {
            for (bank, values) in &self.pcrs {
                for (pcr, v) in values {
                    let got = replayed
                        .get(bank.as_str())
                        .and_then(|r| r.get(&pcr_index(pcr).unwrap_or(u32::MAX)))
                        .map(hex::encode);
                    if got.as_deref() != Some(v.as_str()) {
                        return Err(field_err(
                            format!("vtpm.pcrs.{bank}.{pcr}"),
                            format!(
                                "is not what vtpm.events replay to ({})",
                                got.unwrap_or_else(|| "no event".into())
                            ),
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// `"0"`..`"23"` without leading zeros.
fn pcr_index(s: &str) -> Option<u32> {
    s.parse::<u32>()
        .ok()
        .filter(|n| *n < 24 && n.to_string() == s)
}

/// `H(reg ‖ digest)` in `bank`.
fn extend(bank: &str, reg: &[u8], digest: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    match bank {
        "sha256" => sha2::Sha256::new()
            .chain_update(reg)
            .chain_update(digest)
            .finalize()
            .to_vec(),
        _ => sha2::Sha384::new()
            .chain_update(reg)
            .chain_update(digest)
            .finalize()
            .to_vec(),
    }
}

/// Identity of the image (from the spec's `[image]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageInfo {
    pub name: String,
    pub version: String,
    /// A test image may contain mock TEE parts; a verifier for production must refuse it.
    pub test_image: bool,
}

/// One output file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Artefact {
    /// See [`role`].
    pub role: String,
    /// `/`-separated, relative to the manifest's directory, inside it.
    pub path: String,
    /// Lowercase hex.
    pub sha256: String,
    /// Bytes.
    pub size: u64,
}

/// One pinned input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// What it is (`linux-source-6.12_6.12.117-1~deb12u1_all.deb`).
    pub name: String,
    /// Lowercase hex.
    pub sha256: String,
    /// Package version, when the input is a package.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// dm-verity parameters of the root file system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verity {
    /// Root hash, lowercase hex.
    pub root_hash: String,
    /// Salt, lowercase hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
}

/// Predicted measurements for one VM shape. The per-TEE values are open JSON objects (or arrays
/// of objects, one per vCPU count) that the TDX, SNP and vTPM code fill:
/// `tdx: {mrtd, rtmr0..rtmr3}`, `snp: [{vcpus, vcpu_sig, guest_features, policy,
/// launch_digest}]`, `vtpm: {pcrs: {"4": "<hex>"}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShapeMeasurements {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tdx: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snp: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vtpm: Option<Value>,
}

/// Why a manifest is not acceptable; `field` is a JSON path (`artefacts[2].sha256`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    #[error("manifest is not valid JSON of schema {SCHEMA_VERSION}: {0}")]
    Json(String),
    #[error("manifest {field}: {problem}")]
    Field { field: String, problem: String },
}

fn field_err(field: impl Into<String>, problem: impl Into<String>) -> ManifestError {
    ManifestError::Field {
        field: field.into(),
        problem: problem.into(),
    }
}

/// Lowercase hex of exactly `len` bytes?
pub(crate) fn is_hex(s: &str, len: usize) -> bool {
    s.len() == 2 * len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn check_sha256(field: String, s: &str) -> Result<(), ManifestError> {
    if is_hex(s, 32) {
        Ok(())
    } else {
        Err(field_err(
            field,
            format!("{s:?} is not 64 lowercase hex digits"),
        ))
    }
}

fn is_name(s: &str) -> bool {
    s.bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

/// A relative `/`-separated path with no `.`, `..` or empty component.
pub(crate) fn is_clean_relative(p: &str) -> bool {
    !p.is_empty()
        && !p.contains('\\')
        && p.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
}

impl Manifest {
    /// A manifest with no artefacts or measurements yet.
    pub fn new(image: ImageInfo, cmdline: String) -> Manifest {
        Manifest {
            schema_version: SCHEMA_VERSION,
            image,
            source_date_epoch: None,
            artefacts: Vec::new(),
            inputs: Vec::new(),
            tools: BTreeMap::new(),
            verity: None,
            cmdline,
            initdata_digest: BTreeMap::new(),
            shapes: Vec::new(),
            vtpm: None,
        }
    }

    /// The artefact with role `role`.
    pub fn artefact(&self, role: &str) -> Option<&Artefact> {
        self.artefacts.iter().find(|a| a.role == role)
    }

    /// Check the invariants a written or read manifest must hold.
    pub fn check(&self) -> Result<(), ManifestError> {
        if !(OLDEST_READABLE_SCHEMA_VERSION..=SCHEMA_VERSION).contains(&self.schema_version) {
            return Err(field_err(
                "schema_version",
                format!(
                    "{} is not supported (this build reads {OLDEST_READABLE_SCHEMA_VERSION} to {SCHEMA_VERSION})",
                    self.schema_version
                ),
            ));
        }
        if self.schema_version < 2 && self.vtpm.as_ref().is_some_and(|v| v.boot.is_some()) {
            return Err(field_err(
                "vtpm.boot",
                format!("appeared in schema 2, the manifest says {}", self.schema_version),
            ));
        }
        if self.image.name.is_empty() {
            return Err(field_err("image.name", "is empty"));
        }
        for (i, a) in self.artefacts.iter().enumerate() {
            let f = |k: &str| format!("artefacts[{i}].{k}");
            if !is_name(&a.role) {
                return Err(field_err(
                    f("role"),
                    format!("{:?} is not [a-z0-9][a-z0-9._-]*", a.role),
                ));
            }
            if self.artefacts[..i].iter().any(|b| b.role == a.role) {
                return Err(field_err(f("role"), format!("{:?} appears twice", a.role)));
            }
            if !is_clean_relative(&a.path) {
                return Err(field_err(
                    f("path"),
                    format!(
                        "{:?} is not a relative path inside the output directory",
                        a.path
                    ),
                ));
            }
            check_sha256(f("sha256"), &a.sha256)?;
        }
        for (i, input) in self.inputs.iter().enumerate() {
            check_sha256(format!("inputs[{i}].sha256"), &input.sha256)?;
        }
        if let Some(v) = &self.verity {
            if !is_hex(&v.root_hash, v.root_hash.len() / 2) || v.root_hash.is_empty() {
                return Err(field_err(
                    "verity.root_hash",
                    format!("{:?} is not lowercase hex", v.root_hash),
                ));
            }
        }
        for (alg, d) in &self.initdata_digest {
            if d.is_empty() || !is_hex(d, d.len() / 2) {
                return Err(field_err(
                    format!("initdata_digest.{alg}"),
                    format!("{d:?} is not lowercase hex"),
                ));
            }
        }
        for (i, s) in self.shapes.iter().enumerate() {
            if !is_name(&s.name) {
                return Err(field_err(
                    format!("shapes[{i}].name"),
                    format!("{:?} is not [a-z0-9][a-z0-9._-]*", s.name),
                ));
            }
            if self.shapes[..i].iter().any(|t| t.name == s.name) {
                return Err(field_err(
                    format!("shapes[{i}].name"),
                    format!("{:?} appears twice", s.name),
                ));
            }
            for (tee, v) in [("tdx", &s.tdx), ("snp", &s.snp), ("vtpm", &s.vtpm)] {
                let ok = match v {
                    None | Some(Value::Object(_)) => true,
                    Some(Value::Array(a)) => a.iter().all(Value::is_object),
                    Some(_) => false,
                };
                if !ok {
                    return Err(field_err(
                        format!("shapes[{i}].{tee}"),
                        "must be an object or an array of objects",
                    ));
                }
            }
        }
        if let Some(v) = &self.vtpm {
            v.check(&self.artefacts)?;
        }
        Ok(())
    }

    /// The manifest as canonical JSON (pretty, trailing newline), artefacts sorted by role and
    /// inputs by name, after [`Manifest::check`]. These bytes are what gets signed.
    pub fn to_bytes(&self) -> Result<Vec<u8>, ManifestError> {
        self.check()?;
        let mut m = self.clone();
        m.artefacts.sort_by(|a, b| a.role.cmp(&b.role));
        m.inputs
            .sort_by(|a, b| (&a.name, &a.sha256).cmp(&(&b.name, &b.sha256)));
        canonical::to_pretty(&m).map_err(|e| ManifestError::Json(e.to_string()))
    }

    /// Parse and check manifest bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let m: Manifest =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::Json(e.to_string()))?;
        m.check()?;
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn sample() -> Manifest {
        let mut m = Manifest::new(
            ImageInfo {
                name: "cvm-test".into(),
                version: "0.1.0".into(),
                test_image: true,
            },
            "console=ttyS0 ro".into(),
        );
        m.source_date_epoch = Some(1_700_000_000);
        m.artefacts.push(Artefact {
            role: role::ROOTFS.into(),
            path: "rootfs.erofs".into(),
            sha256: "11".repeat(32),
            size: 4096,
        });
        m.artefacts.push(Artefact {
            role: role::KERNEL.into(),
            path: "kernel/bzImage".into(),
            sha256: "22".repeat(32),
            size: 10,
        });
        m.inputs.push(Input {
            name: "edk2.orig.tar.xz".into(),
            sha256: "33".repeat(32),
            version: Some("2025.02".into()),
        });
        m.verity = Some(Verity {
            root_hash: "44".repeat(32),
            salt: None,
        });
        m.initdata_digest.insert("sha384".into(), "55".repeat(48));
        m.shapes.push(ShapeMeasurements {
            name: "milan-1c-2g".into(),
            tdx: Some(json!({"rtmr0": "aa", "mrtd": "bb"})),
            snp: Some(json!([{"vcpus": 1, "launch_digest": "cc"}])),
            vtpm: Some(json!({"pcrs": {"4": "dd"}})),
        });
        m
    }

    #[test]
    fn bytes_are_canonical_and_round_trip() {
        let m = sample();
        let bytes = m.to_bytes().unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        // Sorted artefacts and keys: "kernel" before "rootfs", "mrtd" before "rtmr0".
        assert!(
            text.find("\"kernel\"").unwrap() < text.find("\"rootfs\"").unwrap(),
            "{text}"
        );
        assert!(
            text.find("\"mrtd\"").unwrap() < text.find("\"rtmr0\"").unwrap(),
            "{text}"
        );
        assert!(
            text.starts_with("{\n  \"artefacts\": [") && text.ends_with("}\n"),
            "{text}"
        );
        let back = Manifest::from_bytes(&bytes).unwrap();
        assert_eq!(back.to_bytes().unwrap(), bytes);
        assert_eq!(back.artefact(role::KERNEL).unwrap().size, 10);
    }

    /// `sample()` with an `ovmf-vtpm` artefact and a vTPM block: two events in PCR 4 and one
    /// in PCR 9, both banks, PCR values replayed from them.
    fn sample_with_vtpm() -> Manifest {
        let mut m = sample();
        m.artefacts.push(Artefact {
            role: role::OVMF_VTPM.into(),
            path: "firmware/ovmf-vtpm/OVMF.fd".into(),
            sha256: "66".repeat(32),
            size: 4 << 20,
        });
        let events: Vec<VtpmEvent> = [(4, 1u8), (4, 2), (9, 3)]
            .iter()
            .map(|&(pcr, b)| VtpmEvent {
                pcr,
                event_type: "EV_EFI_ACTION".into(),
                digests: [("sha256", 32), ("sha384", 48)]
                    .iter()
                    .map(|&(k, n)| (k.to_owned(), hex::encode(vec![b; n])))
                    .collect(),
                description: format!("event {b}"),
            })
            .collect();
        let mut pcrs = BTreeMap::new();
        for (bank, n) in [("sha256", 32), ("sha384", 48)] {
            let mut values = BTreeMap::new();
            for pcr in [4u32, 9] {
                let mut reg = vec![0u8; n];
                for e in events.iter().filter(|e| e.pcr == pcr) {
                    reg = extend(bank, &reg, &hex::decode(&e.digests[bank]).unwrap());
                }
                values.insert(pcr.to_string(), hex::encode(reg));
            }
            pcrs.insert(bank.to_owned(), values);
        }
        m.vtpm = Some(VtpmMeasurements {
            firmware_role: role::OVMF_VTPM.into(),
            boot: None,
            pcrs,
            events,
        });
        m
    }

    #[test]
    fn vtpm_block_round_trips_and_must_replay_to_its_pcrs() {
        let m = sample_with_vtpm();
        let bytes = m.to_bytes().unwrap();
        let back = Manifest::from_bytes(&bytes).unwrap();
        assert_eq!(back.vtpm, m.vtpm);
        assert_eq!(back.to_bytes().unwrap(), bytes);
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.contains("\"firmware_role\": \"ovmf-vtpm\""), "{text}");
        // A manifest without the block still reads (and writes no `vtpm` key).
        let plain = sample().to_bytes().unwrap();
        let v: Value = serde_json::from_slice(&plain).unwrap();
        assert!(v.get("vtpm").is_none(), "{v}");
        assert_eq!(Manifest::from_bytes(&plain).unwrap().vtpm, None);
        // A schema 1 manifest (no `vtpm.boot`) still reads; one that uses `boot` does not.
        let mut v1 = m.clone();
        v1.schema_version = 1;
        assert!(Manifest::from_bytes(&v1.to_bytes().unwrap()).is_ok());
        let mut v1_boot = v1.clone();
        v1_boot.artefacts.push(Artefact {
            role: role::UEFI_VARS.into(),
            path: "disk/uefi-vars.fd".into(),
            sha256: "ab".repeat(32),
            size: 1,
        });
        v1_boot.artefacts.push(Artefact {
            role: role::DISK.into(),
            path: "disk/disk.raw".into(),
            sha256: "cd".repeat(32),
            size: 1,
        });
        v1_boot.vtpm.as_mut().unwrap().boot = Some(VTPM_BOOT_UEFI_DISK.into());
        let e = v1_boot.check().unwrap_err();
        assert!(e.to_string().contains("vtpm.boot"), "{e}");
        v1_boot.schema_version = 2;
        v1_boot.check().unwrap();

        type Edit = Box<dyn Fn(&mut VtpmMeasurements)>;
        let cases: Vec<(Edit, &str)> = vec![
            (
                Box::new(|v| v.firmware_role = "ovmf-tdx".into()),
                "vtpm.firmware_role",
            ),
            // The sample has no `uefi-vars` artefact to boot with.
            (
                Box::new(|v| v.boot = Some(VTPM_BOOT_UEFI_DISK.into())),
                "vtpm.boot",
            ),
            (Box::new(|v| v.boot = Some("pxe".into())), "vtpm.boot"),
            (
                Box::new(|v| {
                    let x = v.pcrs["sha256"]["4"].to_uppercase();
                    v.pcrs.get_mut("sha256").unwrap().insert("4".into(), x);
                }),
                "vtpm.pcrs.sha256.4",
            ),
            (
                Box::new(|v| {
                    let x = v.pcrs["sha256"]["4"].clone();
                    v.pcrs.get_mut("sha256").unwrap().insert("04".into(), x);
                }),
                "vtpm.pcrs.sha256.04",
            ),
            (
                Box::new(|v| {
                    let x = v.pcrs.remove("sha384").unwrap();
                    v.pcrs.insert("sha1".into(), x);
                }),
                "vtpm.pcrs",
            ),
            (Box::new(|v| v.events[2].pcr = 24), "vtpm.events[2].pcr"),
            (
                Box::new(|v| {
                    v.events[1].digests.remove("sha384");
                }),
                "vtpm.events[1].digests",
            ),
            (
                Box::new(|v| {
                    v.events[0].digests.insert("sha256".into(), "ab".into());
                }),
                "vtpm.events[0].digests.sha256",
            ),
            // A changed event no longer replays to the recorded PCR.
            (Box::new(|v| v.events.swap(0, 1)), "vtpm.pcrs.sha256.4"),
            (
                Box::new(|v| {
                    v.events.pop();
                }),
                "vtpm.pcrs.sha256.9",
            ),
        ];
        for (edit, field) in cases {
            let mut m = sample_with_vtpm();
            edit(m.vtpm.as_mut().unwrap());
            let e = m.to_bytes().unwrap_err();
            assert!(
                matches!(&e, ManifestError::Field { field: f, .. } if f == field),
                "{field}: {e}"
            );
        }
    }

    #[test]
    fn refuses_bad_manifests() {
        let cases: Vec<(Box<dyn Fn(&mut Manifest)>, &str)> = vec![
            (Box::new(|m| m.schema_version = 3), "schema_version"),
            (Box::new(|m| m.schema_version = 0), "schema_version"),
            (
                Box::new(|m| m.artefacts[0].path = "/abs/rootfs".into()),
                "artefacts[0].path",
            ),
            (
                Box::new(|m| m.artefacts[1].path = "../x".into()),
                "artefacts[1].path",
            ),
            (
                Box::new(|m| m.artefacts[1].role = "rootfs".into()),
                "artefacts[1].role",
            ),
            (
                Box::new(|m| m.artefacts[0].sha256 = "AB".repeat(32)),
                "artefacts[0].sha256",
            ),
            (
                Box::new(|m| m.inputs[0].sha256.pop().map(|_| ()).unwrap()),
                "inputs[0].sha256",
            ),
            (
                Box::new(|m| m.shapes.push(m.shapes[0].clone())),
                "shapes[1].name",
            ),
            (
                Box::new(|m| m.shapes[0].tdx = Some(json!("x"))),
                "shapes[0].tdx",
            ),
            (
                Box::new(|m| m.verity.as_mut().unwrap().root_hash = "xyz".into()),
                "verity.root_hash",
            ),
        ];
        for (edit, field) in cases {
            let mut m = sample();
            edit(&mut m);
            let e = m.to_bytes().unwrap_err();
            assert!(
                matches!(&e, ManifestError::Field { field: f, .. } if f == field),
                "{field}: {e}"
            );
        }
        let unknown = br#"{"schema_version":1,"image":{"name":"a","version":"1","test_image":true},"artefacts":[],"cmdline":"","when":"now"}"#;
        assert!(
            matches!(Manifest::from_bytes(unknown), Err(ManifestError::Json(e)) if e.contains("when"))
        );
    }
}
