//! `cvm-measure snp`: AMD SEV / SEV-ES / SEV-SNP launch digest with the flags, defaults,
//! checks and stdout of sev-snp-measure 0.0.13 (`sevsnpmeasure/cli.py`), plus `--json`.
//!
//! Differences, all on inputs sev-snp-measure crashes on or silently wraps: a missing
//! `--vcpu-model`/`--vcpu-stepping` with `--vcpu-family` and negative or >64-bit integers are
//! clear errors. In `snp:svsm` mode a missing `--svsm`, `--vmm-type` other than QEMU, a file
//! that fails to read and an SVSM placed below GPA 0 are errors with a message (tracebacks
//! there); `--kernel`/`--initrd`/`--append` and `--guest-features`, which that mode ignores as
//! sev-snp-measure does, get a warning on stderr. Errors exit with 2.

use crate::input::read;
use anyhow::{bail, Context, Result};
use cvm_measurements::snp::{self, LaunchParams, SevFirmware, SevHashTable, SevMode, SvsmImage, SvsmPrepared, VmmType};

/// Guest mode names as sev-snp-measure spells them.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    #[value(name = "sev")]
    Sev,
    #[value(name = "seves")]
    Seves,
    #[value(name = "snp")]
    Snp,
    #[value(name = "snp:ovmf-hash")]
    SnpOvmfHash,
    #[value(name = "snp:svsm")]
    SnpSvsm,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Sev => "sev",
            Mode::Seves => "seves",
            Mode::Snp => "snp",
            Mode::SnpOvmfHash => "snp:ovmf-hash",
            Mode::SnpSvsm => "snp:svsm",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Hex,
    Base64,
}

#[derive(clap::Args)]
pub struct Args {
    /// Print `Calculated <MODE> guest measurement: ` before the value
    #[arg(short, long)]
    verbose: bool,
    /// Guest mode
    #[arg(long, value_enum)]
    mode: Mode,
    /// Number of guest vcpus
    #[arg(long, value_name = "N")]
    vcpus: Option<u32>,
    /// Type of guest vcpu (EPYC, EPYC-v1..v4, EPYC-IBPB, EPYC-Rome*, EPYC-Milan*, EPYC-Genoa*, EPYC-Turin)
    #[arg(long, value_name = "CPUTYPE", value_parser = parse_cpu_type)]
    vcpu_type: Option<String>,
    /// Guest vcpu signature value (CPUID(1).EAX; 0x prefix for hex)
    #[arg(long, value_name = "VALUE", value_parser = parse_py_int)]
    vcpu_sig: Option<u64>,
    /// Guest vcpu family
    #[arg(long, value_name = "FAMILY")]
    vcpu_family: Option<u32>,
    /// Guest vcpu model
    #[arg(long, value_name = "MODEL")]
    vcpu_model: Option<u32>,
    /// Guest vcpu stepping
    #[arg(long, value_name = "STEPPING")]
    vcpu_stepping: Option<u32>,
    /// Type of guest vmm (QEMU, ec2, gce)
    #[arg(long, value_name = "VMMTYPE", default_value = "QEMU")]
    vmm_type: String,
    /// OVMF file to calculate hash from
    #[arg(long, value_name = "PATH")]
    ovmf: std::path::PathBuf,
    /// Kernel file to calculate hash from
    #[arg(long, value_name = "PATH")]
    kernel: Option<std::path::PathBuf>,
    /// Initrd file to calculate hash from (use with --kernel)
    #[arg(long, value_name = "PATH")]
    initrd: Option<std::path::PathBuf>,
    /// Kernel command line to calculate hash from (use with --kernel)
    #[arg(long, value_name = "CMDLINE", allow_hyphen_values = true)]
    append: Option<String>,
    /// Guest SEV features (SNP), e.g. 0x21 for DebugSwap (defaults to 0x1)
    #[arg(long, value_name = "VALUE", value_parser = parse_py_int, default_value = "0x1")]
    guest_features: u64,
    /// Measurement output format
    #[arg(long, value_enum, default_value = "hex")]
    output_format: OutputFormat,
    /// Precalculated hash of the OVMF binary (hex string, from --mode snp:ovmf-hash)
    #[arg(long, value_name = "HASH")]
    snp_ovmf_hash: Option<String>,
    /// Write measured VMSAs to vmsa<N>.bin (seves, snp and snp:svsm modes only)
    #[arg(long)]
    dump_vmsa: bool,
    /// Print a JSON object (lowercase hex, named fields) instead of the bare value
    #[arg(long)]
    json: bool,
    /// SVSM binary (snp:svsm mode)
    #[arg(long, value_name = "PATH")]
    svsm: Option<std::path::PathBuf>,
    /// Size of the OVMF_VARS file in bytes (snp:svsm mode; conflicts with --vars-file)
    #[arg(long, value_name = "SIZE", conflicts_with = "vars_file")]
    vars_size: Option<u64>,
    /// OVMF_VARS file, only its size is used (snp:svsm mode; conflicts with --vars-size)
    #[arg(long, value_name = "PATH")]
    vars_file: Option<std::path::PathBuf>,
}

/// Python's `int(s, 0)`: optional sign, `0x`/`0o`/`0b` prefixes, `_` between digits, no
/// leading zeros on decimals. Negative values are refused (they have no 64-bit meaning here).
fn parse_py_int(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let t = t.strip_prefix('+').unwrap_or(t);
    let err = || format!("invalid int value: '{s}'");
    if t.starts_with('-') {
        return Err(format!("negative value '{s}' is not supported"));
    }
    let lower = t.to_ascii_lowercase();
    let (radix, digits) = match lower.get(..2) {
        Some("0x") => (16, &lower[2..]),
        Some("0o") => (8, &lower[2..]),
        Some("0b") => (2, &lower[2..]),
        _ => (10, lower.as_str()),
    };
    let digits = if radix != 10 { digits.strip_prefix('_').unwrap_or(digits) } else { digits };
    if digits.is_empty() || digits.starts_with('_') || digits.ends_with('_') || digits.contains("__") {
        return Err(err());
    }
    let clean: String = digits.chars().filter(|&c| c != '_').collect();
    if radix == 10 && clean.len() > 1 && clean.starts_with('0') && clean.chars().any(|c| c != '0') {
        return Err(err());
    }
    u64::from_str_radix(&clean, radix).map_err(|e| format!("{}: {e}", err()))
}

fn parse_cpu_type(s: &str) -> Result<String, String> {
    match snp::cpu_type(s) {
        Some(_) => Ok(s.to_string()),
        None => {
            let names: Vec<_> = snp::CPU_TYPES.iter().map(|c| c.name).collect();
            Err(format!("invalid choice: '{s}' (choose from {})", names.join(", ")))
        }
    }
}

/// Standard base64 with padding (RFC 4648 §4), as Python's `base64.b64encode`.
fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16) | (u32::from(*c.get(1).unwrap_or(&0)) << 8) | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 0x3F) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}


/// The vCPU signature as sev-snp-measure 0.0.13 picks it: family/model/stepping, then
/// `--vcpu-sig`, then `--vcpu-type`; 0 counts as absent (its truthiness test).
fn vcpu_sig(a: &Args, vmm: VmmType) -> Result<u64> {
    if a.mode == Mode::Sev {
        return Ok(0);
    }
    if let Some(family) = a.vcpu_family.filter(|&f| f != 0) {
        let (Some(model), Some(stepping)) = (a.vcpu_model, a.vcpu_stepping) else {
            bail!("--vcpu-family needs --vcpu-model and --vcpu-stepping");
        };
        return Ok(u64::from(snp::cpu_sig(family, model, stepping)));
    }
    if let Some(sig) = a.vcpu_sig.filter(|&s| s != 0) {
        return Ok(sig);
    }
    if let Some(t) = a.vcpu_type.as_deref().and_then(snp::cpu_type) {
        return Ok(u64::from(t.sig()));
    }
    if vmm == VmmType::Qemu {
        bail!("missing --vcpu-type or --vcpu-sig or --vcpu-family in guest mode '{}'", a.mode.name());
    }
    // EC2 and GCE put 0x600 in RDX whatever the signature.
    Ok(0)
}

fn parse_seed(s: &str) -> Result<snp::LaunchDigest> {
    let bytes = hex::decode(s.trim()).with_context(|| format!("--snp-ovmf-hash {s:?} is not hex"))?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| anyhow::anyhow!("--snp-ovmf-hash must be 48 bytes (96 hex digits), got {}", b.len()))
}

pub fn run(a: Args) -> Result<i32> {
    let fw_bytes = read(&a.ovmf, "OVMF")?;
    let fw = SevFirmware::parse(&fw_bytes).with_context(|| format!("parsing OVMF {}", a.ovmf.display()))?;

    if a.mode == Mode::SnpOvmfHash {
        let ld = fw.snp_ovmf_hash()?;
        if a.json {
            println!("{}", serde_json::json!({"mode": a.mode.name(), "measurement": hex::encode(ld)}));
        } else {
            // sev-snp-measure prints this mode in hex whatever --output-format says.
            println!("{}", hex::encode(ld));
        }
        return Ok(0);
    }
    let kernel = a.kernel.as_ref().filter(|p| !p.as_os_str().is_empty());
    let initrd = a.initrd.as_ref().filter(|p| !p.as_os_str().is_empty());
    let append = a.append.as_deref().filter(|s| !s.is_empty());
    if initrd.is_some() && kernel.is_none() {
        bail!("--kernel required when using --initrd");
    }
    if append.is_some() && kernel.is_none() {
        bail!("--kernel required when using --append");
    }
    if a.mode != Mode::Sev && a.vcpus.is_none() {
        bail!("missing --vcpus N in guest mode '{}'", a.mode.name());
    }
    let Some(vmm) = VmmType::from_name(&a.vmm_type) else {
        bail!("unknown VMM type '{}'", a.vmm_type);
    };
    let sig = vcpu_sig(&a, vmm)?;
    let mode = match a.mode {
        Mode::Sev => SevMode::Sev,
        Mode::Seves => SevMode::SevEs,
        Mode::Snp => SevMode::Snp,
        Mode::SnpSvsm => return run_svsm(&a, &fw, sig, vmm),
        Mode::SnpOvmfHash => unreachable!("handled above"),
    };
    if a.dump_vmsa && mode == SevMode::Sev {
        bail!("--dump-vmsa is not available in the selected mode");
    }
    let snp_ovmf_hash = match a.snp_ovmf_hash.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(_) if mode != SevMode::Snp => bail!("SNP OVMF hash only works with SNP"),
        Some(s) => Some(parse_seed(s)?),
    };
    let hashes = match kernel {
        None => None,
        Some(k) => {
            let kernel = read(k, "kernel")?;
            let initrd = initrd.map(|p| read(p, "initrd")).transpose()?;
            Some(SevHashTable::from_blobs(&kernel, initrd.as_deref(), append.map(str::as_bytes)))
        }
    };
    let vcpus = a.vcpus.unwrap_or(0);
    let params = LaunchParams {
        mode,
        vcpus,
        vcpu_sig: sig,
        guest_features: a.guest_features,
        vmm,
        hashes,
        snp_ovmf_hash,
    };
    let ld = snp::launch_digest(&fw, &params)?;

    if a.dump_vmsa {
        let features = if mode == SevMode::Snp { a.guest_features } else { 0 };
        dump_vmsas(snp::vmsas(fw.info().sev_es_reset_eip, vcpus, features, sig, vmm)?.iter().map(|v| v.to_page()))?;
    }

    if a.json {
        let mut j = serde_json::json!({
            "mode": a.mode.name(),
            "measurement": hex::encode(&ld),
            "vmm_type": vmm.name(),
        });
        if mode != SevMode::Sev {
            j["vcpus"] = vcpus.into();
            j["vcpu_sig"] = format!("{sig:#x}").into();
            j["ap_eip"] = fw.info().sev_es_reset_eip.map(|e| format!("{e:#x}")).into();
        }
        if mode == SevMode::Snp {
            j["guest_features"] = format!("{:#x}", a.guest_features).into();
        }
        if let Some(h) = &params.hashes {
            j["kernel_hashes"] = serde_json::json!({
                "kernel_sha256": hex::encode(h.kernel),
                "initrd_sha256": hex::encode(h.initrd),
                "cmdline_sha256": hex::encode(h.cmdline),
            });
        }
        println!("{j}");
    } else {
        let name = match mode {
            SevMode::Sev => "SEV",
            SevMode::SevEs => "SEV_ES",
            _ => "SEV_SNP",
        };
        print_measurement(&a, name, &ld);
    }
    Ok(0)
}

/// sev-snp-measure's `print_measurement`: the value in `--output-format`, after
/// `Calculated <name> guest measurement: ` with `--verbose`.
fn print_measurement(a: &Args, name: &str, ld: &[u8]) {
    let value = match a.output_format {
        OutputFormat::Hex => hex::encode(ld),
        OutputFormat::Base64 => base64(ld),
    };
    if a.verbose {
        println!("Calculated {name} guest measurement: {value}");
    } else {
        println!("{value}");
    }
}

/// Write one `vmsa<i>.bin` per measured VMSA page, as `--dump-vmsa` does.
fn dump_vmsas(pages: impl Iterator<Item = [u8; 4096]>) -> Result<()> {
    for (i, page) in pages.enumerate() {
        let path = format!("vmsa{i}.bin");
        std::fs::write(&path, page).with_context(|| format!("writing {path}"))?;
    }
    Ok(())
}

/// `--mode snp:svsm` (sev-snp-measure `svsm_calc_launch_digest`), after the checks every mode
/// shares. The checks below run in cli.py's order, with its messages.
fn run_svsm(a: &Args, fw: &SevFirmware<'_>, sig: u64, vmm: VmmType) -> Result<i32> {
    // cli.py tests truthiness: --vars-size 0 counts as absent, so a size of 0 can only come
    // from an empty --vars-file. (An empty path, also absent there, is refused by clap.)
    let vars_size = match (a.vars_file.as_ref(), a.vars_size) {
        (Some(p), _) => std::fs::metadata(p).with_context(|| format!("reading OVMF_VARS {}", p.display()))?.len(),
        (None, Some(n)) if n != 0 => n,
        (None, Some(_)) => bail!(
            "snp:svsm mode requires --vars-size or --vars-file (--vars-size 0 counts as absent, as in sev-snp-measure; \
             for a size of 0 give --vars-file an empty file)"
        ),
        (None, None) => bail!("snp:svsm mode requires --vars-size or --vars-file"),
    };
    if a.snp_ovmf_hash.as_deref().is_some_and(|s| !s.is_empty()) {
        bail!("SNP OVMF hash only works with SNP");
    }
    if vmm != VmmType::Qemu {
        bail!("SVSM mode is only implemented for Qemu.");
    }
    let Some(svsm_path) = a.svsm.as_ref() else {
        bail!("snp:svsm mode requires --svsm");
    };
    if a.kernel.as_ref().is_some_and(|p| !p.as_os_str().is_empty()) {
        eprintln!("warning: snp:svsm mode does not measure --kernel, --initrd or --append (sev-snp-measure ignores them too)");
    }
    if a.guest_features != snp::SVSM_SEV_FEATURES {
        eprintln!(
            "warning: snp:svsm mode ignores --guest-features: every VMSA has SEV features {:#x} (as in sev-snp-measure)",
            snp::SVSM_SEV_FEATURES
        );
    }
    let svsm_bytes = read(svsm_path, "SVSM")?;
    let svsm = SvsmImage::parse(&svsm_bytes).with_context(|| format!("parsing SVSM {}", svsm_path.display()))?;
    let prep = SvsmPrepared::new(fw, &svsm, vars_size)?;
    let vcpus = a.vcpus.unwrap_or(0);
    let ld = prep.launch_digest(vcpus, sig);
    if a.dump_vmsa {
        let page = prep.vmsa(sig).to_page();
        dump_vmsas((0..vcpus).map(|_| page))?;
    }
    if a.json {
        let placement = prep.placement();
        let j = serde_json::json!({
            "mode": a.mode.name(),
            "measurement": hex::encode(ld),
            "vmm_type": vmm.name(),
            "vcpus": vcpus,
            "vcpu_sig": format!("{sig:#x}"),
            "guest_features": format!("{:#x}", snp::SVSM_SEV_FEATURES),
            "vars_size": vars_size,
            "svsm_gpa": format!("{:#x}", placement.gpa),
            "svsm_eip": format!("{:#x}", placement.reset_eip),
        });
        println!("{j}");
    } else {
        print_measurement(a, "SEV_SNP_SVSM", &ld);
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn py_int_accepts_what_python_int_base0_accepts() {
        assert_eq!(parse_py_int("0x21"), Ok(0x21));
        assert_eq!(parse_py_int("0X_a00_f11"), Ok(0xa00f11));
        assert_eq!(parse_py_int("33"), Ok(33));
        assert_eq!(parse_py_int("0"), Ok(0));
        assert_eq!(parse_py_int("0b101"), Ok(5));
        assert!(parse_py_int("021").is_err());
        assert!(parse_py_int("0x").is_err());
        assert!(parse_py_int("1__0").is_err());
        assert!(parse_py_int("-1").is_err());
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foobar", "Zm9vYmFy")] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }
}
