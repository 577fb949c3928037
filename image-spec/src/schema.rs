//! The typed spec: one struct per TOML table, field names = TOML keys, unknown keys refused.
//! `image-spec/example.toml` documents every key; `validate.rs` holds the rules beyond types.

use crate::memory::Memory;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::path::{Path, PathBuf};

/// `[image]`: identity of the image and the TEEs it is measured for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Image {
    /// `[a-z0-9][a-z0-9._-]*`: output directory `out/<name>/` and manifest name.
    pub name: String,
    pub version: String,
    /// Test images may contain mock TEE parts (`tees` entry `mock`) and an SNP debug policy;
    /// a production image (`false`) with them is refused.
    #[serde(default)]
    pub test_image: bool,
    pub tees: Vec<Tee>,
}

/// A trusted execution environment the image is measured for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tee {
    /// Intel TDX: MRTD and RTMR0-3.
    Tdx,
    /// AMD SEV-SNP: launch digest.
    Snp,
    /// A virtual TPM (swtpm): PCRs 0-15.
    Vtpm,
    /// Software stand-in for a TEE (simulated TSM reports and event log): test images only.
    Mock,
}

impl Tee {
    /// The TOML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Tee::Tdx => "tdx",
            Tee::Snp => "snp",
            Tee::Vtpm => "vtpm",
            Tee::Mock => "mock",
        }
    }
}

/// `[[shape]]`: one VM shape the measurements are predicted for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shape {
    /// `[a-z0-9][a-z0-9._-]*`, unique among shapes.
    pub name: String,
    /// vCPU counts: `vcpus = 2` or `vcpus = [1, 2, 4]` (one measurement per count).
    pub vcpus: Vcpus,
    pub memory: Memory,
    /// QEMU CPU model (`EPYC-Milan`, `EPYC-Genoa-v1`, ...). SNP needs it or `cpu_signature`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    /// CPUID(1).EAX of the vCPUs, instead of a model name (`cpu_signature = 0x00A00F11`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_signature: Option<u32>,
    #[serde(default)]
    pub vmm: Vmm,
    /// `MAJOR.MINOR` of QEMU (`"10.0"`); required for `vmm = "qemu"`, refused otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qemu_version: Option<String>,
    /// QEMU machine type.
    #[serde(default = "default_machine")]
    pub machine: String,
    /// `-machine` options after the type (`smm=off`, `kernel-irqchip=split`), in order.
    #[serde(default)]
    pub machine_flags: Vec<String>,
    /// SEV_FEATURES of the VMSA (SNP); bit 0 (SNPActive) must be set.
    #[serde(default = "default_guest_features")]
    pub guest_features: u64,
    /// SNP guest policy (ABI spec table "Guest policy"); bit 17 must be set.
    #[serde(default = "default_snp_policy")]
    pub snp_policy: u64,
    /// TDX page-add order of the host; absent = predict both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tdx_page_order: Option<PageOrder>,
}

fn default_machine() -> String {
    "q35".to_string()
}
/// sev-snp-measure's default (0.0.10 and later): SNPActive only.
pub const DEFAULT_GUEST_FEATURES: u64 = 0x1;
/// SMT allowed, reserved bit 17 set, no debug, no migration agent.
pub const DEFAULT_SNP_POLICY: u64 = 0x30000;
fn default_guest_features() -> u64 {
    DEFAULT_GUEST_FEATURES
}
fn default_snp_policy() -> u64 {
    DEFAULT_SNP_POLICY
}

/// QEMU CPU models known to SNP measurement, with their CPUID(1).EAX signature
/// (from `shared/design/snp-measure.md`, as sev-snp-measure 0.0.13's `vcpu_types.py`).
pub const CPU_MODELS: &[(&str, u32)] = &[
    ("EPYC", 0x0080_0F12),
    ("EPYC-v1", 0x0080_0F12),
    ("EPYC-v2", 0x0080_0F12),
    ("EPYC-v3", 0x0080_0F12),
    ("EPYC-v4", 0x0080_0F12),
    ("EPYC-IBPB", 0x0080_0F12),
    ("EPYC-Rome", 0x0083_0F10),
    ("EPYC-Rome-v1", 0x0083_0F10),
    ("EPYC-Rome-v2", 0x0083_0F10),
    ("EPYC-Rome-v3", 0x0083_0F10),
    ("EPYC-Milan", 0x00A0_0F11),
    ("EPYC-Milan-v1", 0x00A0_0F11),
    ("EPYC-Milan-v2", 0x00A0_0F11),
    ("EPYC-Genoa", 0x00A1_0F10),
    ("EPYC-Genoa-v1", 0x00A1_0F10),
    ("EPYC-Turin", 0x00B0_0F00),
    ("EPYC-Turin-v1", 0x00B0_0F00),
];

impl Shape {
    /// The vCPU signature: `cpu_signature`, else the signature of the `cpu` model.
    pub fn vcpu_signature(&self) -> Option<u32> {
        self.cpu_signature.or_else(|| {
            let cpu = self.cpu.as_deref()?;
            CPU_MODELS.iter().find(|(m, _)| *m == cpu).map(|(_, s)| *s)
        })
    }
}

/// vCPU counts of a shape. TOML: an integer or an array of integers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Vcpus(pub Vec<u32>);

impl<'de> Deserialize<'de> for Vcpus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Vcpus, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged, expecting = "a vCPU count or an array of vCPU counts")]
        enum Raw {
            One(u32),
            Many(Vec<u32>),
        }
        Ok(Vcpus(match Raw::deserialize(d)? {
            Raw::One(n) => vec![n],
            Raw::Many(v) => v,
        }))
    }
}

/// Which VMM builds the initial vCPU state (SNP VMSAs differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Vmm {
    #[default]
    Qemu,
    Ec2,
    Gce,
}

/// TDX `TDH.MEM.PAGE.ADD` order (see `shared/design/tdx-measure.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PageOrder {
    TwoPass,
    SinglePass,
}

/// `[kernel]`: Linux source pin, config fragments and command line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kernel {
    pub source: DebianSource,
    /// Config fragments merged in order, paths under `kernel-config/`.
    pub fragments: Vec<RepoPath>,
    /// Kernel command line with placeholders (see [`crate::cmdline`]).
    pub cmdline: String,
}

/// `[kernel.source]`: a Debian package pinned by version and sha256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DebianSource {
    pub package: String,
    pub version: String,
    /// Lowercase hex sha256 of the file named by `kind`.
    pub sha256: String,
    #[serde(default)]
    pub kind: SourceKind,
}

/// Which file of a Debian source `sha256` pins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    /// The binary package (`apt-get download NAME=VERSION`), e.g. `linux-source-6.12`.
    #[default]
    Deb,
    /// The upstream tarball of a source package (`apt-get source --download-only`).
    OrigTarball,
}

/// `[firmware]`: the edk2 source pin and the OVMF builds made from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Firmware {
    pub source: Edk2Source,
    pub variants: Vec<FirmwareVariant>,
    /// Which events the `intel-tdx` build measures into RTMR0 (`cvm-measure tdx
    /// --ovmf-model`); absent = detected from the firmware.
    #[serde(default, skip_serializing_if = "TdxEventModel::is_auto")]
    pub tdx_event_model: TdxEventModel,
}

/// The TDVF event layout of an edk2 generation (`docs/tdx-ovmf-202505.md`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TdxEventModel {
    /// stable202505 if the firmware carries SmbiosMeasurementDxe, else pre202505.
    #[default]
    Auto,
    /// edk2 after `efaf893` and before stable202505 (Debian trixie 2025.02).
    Pre202505,
    /// edk2 before `efaf893`: the ReadyToBoot separator in RTMR0.
    LegacySeparatorInRtmr0,
    /// edk2-stable202505 and later: fw_cfg, SMBIOS and two boot option events.
    Stable202505,
}

impl TdxEventModel {
    pub fn is_auto(&self) -> bool {
        *self == TdxEventModel::Auto
    }
    /// The `cvm-measure tdx --ovmf-model` value.
    pub fn as_str(self) -> &'static str {
        match self {
            TdxEventModel::Auto => "auto",
            TdxEventModel::Pre202505 => "pre202505",
            TdxEventModel::LegacySeparatorInRtmr0 => "legacy-separator-in-rtmr0",
            TdxEventModel::Stable202505 => "stable202505",
        }
    }
}

/// `[firmware.source]`: a Debian source package, pinned by its tarballs' sha256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Edk2Source {
    pub package: String,
    pub version: String,
    /// sha256 of `<package>_<upstream>.orig.tar.xz`.
    pub orig_sha256: String,
    /// sha256 of `<package>_<version>.debian.tar.xz`.
    pub debian_sha256: String,
    /// sha256 of the `.dsc` as the Sources index lists it (the file itself may not download).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dsc_sha256: Option<String>,
}

/// An OVMF build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FirmwareVariant {
    /// `OvmfPkg/IntelTdx/IntelTdxX64.dsc` (TDVF).
    IntelTdx,
    /// `OvmfPkg/AmdSev/AmdSevX64.dsc` (measured direct boot for SNP).
    AmdSev,
    /// `OvmfPkg/OvmfPkgX64.dsc` with TPM2 support (vTPM measured boot).
    OvmfVtpm,
}

impl FirmwareVariant {
    /// The TOML spelling (also the artefact role suffix: `ovmf-<variant>`).
    pub fn as_str(self) -> &'static str {
        match self {
            FirmwareVariant::IntelTdx => "intel-tdx",
            FirmwareVariant::AmdSev => "amd-sev",
            FirmwareVariant::OvmfVtpm => "ovmf-vtpm",
        }
    }

    /// The variant a TEE boots with (`None` for the mock TEE, which boots any).
    pub fn for_tee(tee: Tee) -> Option<FirmwareVariant> {
        match tee {
            Tee::Tdx => Some(FirmwareVariant::IntelTdx),
            Tee::Snp => Some(FirmwareVariant::AmdSev),
            Tee::Vtpm => Some(FirmwareVariant::OvmfVtpm),
            Tee::Mock => None,
        }
    }
}

/// `[rootfs]`: the root file system (dm-verity protected).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rootfs {
    /// Debian suite (`trixie`).
    pub suite: String,
    #[serde(default)]
    pub packages: Vec<String>,
    /// `true` = the workspace's `cvm-agent`; a string names another crate; `false` = none.
    #[serde(default)]
    pub agent: Agent,
    #[serde(default)]
    pub extra_files: Vec<ExtraFile>,
    pub filesystem: Filesystem,
    /// Largest allowed root file system image.
    pub size_limit: Memory,
}

/// The guest agent crate built into the root file system.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Agent {
    #[default]
    None,
    Crate(String),
}

/// The workspace's guest agent crate (`agent = true`).
pub const DEFAULT_AGENT: &str = "cvm-agent";

impl Serialize for Agent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Agent::None => s.serialize_bool(false),
            Agent::Crate(c) => s.serialize_str(c),
        }
    }
}

impl<'de> Deserialize<'de> for Agent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Agent, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged, expecting = "true, false or a crate name")]
        enum Raw {
            Flag(bool),
            Crate(String),
        }
        Ok(match Raw::deserialize(d)? {
            Raw::Flag(false) => Agent::None,
            Raw::Flag(true) => Agent::Crate(DEFAULT_AGENT.to_string()),
            Raw::Crate(c) => Agent::Crate(c),
        })
    }
}

/// `[[rootfs.extra_files]]`: a file of the repository copied into the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtraFile {
    pub source: RepoPath,
    /// Absolute path in the guest.
    pub destination: String,
    /// Permission bits (`0o644`).
    #[serde(default = "default_mode")]
    pub mode: u32,
}

fn default_mode() -> u32 {
    0o644
}

/// Root file system format (read-only, under dm-verity).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Filesystem {
    Erofs,
    Squashfs,
}

/// `[initdata]`: the CoCo initdata document bound into the measurements.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Initdata {
    /// An initdata TOML file (CoCo initdata spec).
    pub file: RepoPath,
}

/// `[signing]`: the manifest signing key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signing {
    /// PKCS#8 PEM ECDSA P-256 private key (`cargo xtask keygen`).
    pub key: RepoPath,
}

/// `[publish]`: where the signed manifest goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Publish {
    /// Trustee RVPS gRPC endpoint (`http://host:50003`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rvps_url: Option<String>,
    /// OCI reference the manifest is pushed to (`registry.example/guest/refvals:v1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oci: Option<String>,
}

/// A path relative to the repository root, `/`-separated, that stays inside the repository
/// (checked by validation).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RepoPath(pub String);

impl RepoPath {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path under `repo_root`.
    pub fn resolve(&self, repo_root: &Path) -> PathBuf {
        repo_root.join(&self.0)
    }

    /// Why this path is not a clean in-repository path, if it is not.
    pub fn problem(&self) -> Option<&'static str> {
        let p = self.0.as_str();
        if p.is_empty() {
            return Some("path is empty");
        }
        if p.starts_with('/') || p.contains('\\') || p.contains(':') {
            return Some("path must be relative to the repository root, with `/` separators");
        }
        let mut depth: i32 = 0;
        for c in p.split('/') {
            match c {
                ".." => depth -= 1,
                "" | "." => {}
                _ => depth += 1,
            }
            if depth < 0 {
                return Some("path escapes the repository");
            }
        }
        if depth == 0 {
            return Some("path names the repository root itself");
        }
        None
    }
}
