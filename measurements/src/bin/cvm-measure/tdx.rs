//! `cvm-measure tdx`: predict MRTD and RTMR0-3 of a QEMU + TDVF direct-boot TD, and emit the
//! predicted event log (CCEL binary and JSON); `cvm-measure tdx replay` replays a CCEL log and
//! optionally compares it with a TDX quote (exit 1 naming the register that differs).

use crate::input::read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use cvm_measurements::eventlog::alg::TPM_ALG_SHA384;
use cvm_measurements::eventlog::{ccel, event_type, EventLog, TcgPcrEvent2};
use cvm_measurements::tdx::quote::TdxQuote;
use cvm_measurements::tdx::rtmr::{measure, rtmrs_from_ccel, TdxBoot, TdxEvent, TdxMeasurement};
use cvm_measurements::smbios::EntryPoint;
use cvm_measurements::tdx::{AcpiBlobs, OvmfEventModel, PageAddOrder, QemuModel};
use serde_json::{json, Value};

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    measure: MeasureArgs,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Replay a CCEL event log: print every event and RTMR0-3; with --quote compare (exit 1 on mismatch)
    Replay(ReplayArgs),
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum PageOrder {
    /// Per page: PAGE.ADD then its extends (KVM upstream, QEMU >= 9)
    Single,
    /// Per section: all PAGE.ADDs, then all extends (QEMU 8.x, Canonical 8.2.2)
    TwoPass,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum OvmfModel {
    /// edk2 after efaf893 and before stable202505 (Debian/Ubuntu 2025.02)
    Pre202505,
    /// edk2 before efaf893: ReadyToBoot separator in RTMR0
    LegacySeparatorInRtmr0,
    /// edk2-stable202505 and later: SMBIOS event derived from the capture (docs/tdx-ovmf-202505.md)
    Stable202505,
    /// stable202505 if the firmware carries SmbiosMeasurementDxe, else pre202505 (the
    /// separator placement of older builds is not detected)
    Auto,
}

#[derive(clap::Args)]
struct MeasureArgs {
    /// Unified TDVF/OVMF image (`-bios`), e.g. Debian's /usr/share/ovmf/OVMF.fd
    #[arg(long, value_name = "FILE", required = true)]
    firmware: Option<PathBuf>,
    /// Number of vCPUs (`-smp`); checked against the MADT of the ACPI capture
    #[arg(long, value_name = "N", required = true)]
    cpus: Option<u32>,
    /// Guest memory (`-m`): bytes with a K/M/G/T suffix (2048M, 4G); a bare number is MiB
    #[arg(long, value_name = "SIZE", required = true, value_parser = parse_memory)]
    memory: Option<u64>,
    /// Kernel bzImage (`-kernel`)
    #[arg(long, value_name = "FILE", required = true)]
    kernel: Option<PathBuf>,
    /// Initrd (`-initrd`)
    #[arg(long, value_name = "FILE")]
    initrd: Option<PathBuf>,
    /// Kernel command line (`-append`); OVMF appends ` initrd=initrd` when an initrd is given
    #[arg(long, value_name = "STRING", default_value = "")]
    cmdline: String,
    /// Directory with the fw_cfg ACPI capture for this VM shape: table-loader, rsdp, tables
    #[arg(long, value_name = "DIR", required_unless_present = "qemu")]
    acpi_dir: Option<PathBuf>,
    /// Capture ACPI by running this QEMU paused under TCG (design note §6), cached in
    /// $XDG_CACHE_HOME/cvm-image/acpi/<sha256 of version+argv>/
    #[arg(long, value_name = "PATH", conflicts_with = "acpi_dir")]
    qemu: Option<PathBuf>,
    /// With --qemu: the whole `-machine` argument of the capture, a q35 type and its options
    /// (they change the ACPI tables, hence RTMR0); no accel= (the capture runs under TCG)
    #[arg(long, value_name = "TYPE,OPTS", default_value = crate::qemu_acpi::DEFAULT_MACHINE,
          value_parser = crate::qemu_acpi::parse_machine, conflicts_with = "acpi_dir")]
    machine: String,
    /// With --qemu: the `-cpu` model of the capture. SMBIOS type 4 carries its CPUID signature,
    /// which edk2 >= stable202505 measures into RTMR0: name the host's model for such firmware
    #[arg(long, value_name = "MODEL", default_value = crate::qemu_acpi::DEFAULT_CPU,
          value_parser = crate::qemu_acpi::parse_cpu, conflicts_with = "acpi_dir")]
    cpu_model: String,
    /// Page-add order of the host (default: from --qemu-version, >= 9 single, 8.x two-pass)
    #[arg(long, value_enum)]
    page_order: Option<PageOrder>,
    /// QEMU version X.Y of the host: < 10.0 measures the kernel with QEMU's setup-header
    /// patches, >= 10.1 without; 10.0 without when the firmware reads etc/boot/kernel (RTMR1)
    #[arg(long, value_name = "X.Y", default_value = "10.0", value_parser = parse_version)]
    qemu_version: (u32, u32),
    /// The firmware's event model (which events TDVF measures, and where)
    #[arg(long, value_enum, default_value = "pre202505")]
    ovmf_model: OvmfModel,
    /// With --ovmf-model stable202505: SHA-384 (96 hex digits) of the SMBIOS table event
    /// (EV_EFI_HANDOFF_TABLES in RTMR0), e.g. from a reference boot's log. Without it the digest
    /// is derived from the capture's smbios-tables/smbios-anchor and the firmware's Type 0
    /// strings; it depends on memory, vCPUs, CPU model and QEMU machine version
    #[arg(long, value_name = "HEX", value_parser = parse_digest48)]
    smbios_digest: Option<[u8; 48]>,
    /// Write what the ACPI and SMBIOS inputs were, as JSON: the capture's QEMU version and
    /// shape argv (when the directory is a --qemu capture) and the sha256 of each file used
    #[arg(long, value_name = "FILE")]
    capture_json: Option<PathBuf>,
    /// Print {"mrtd":…,"rtmr0":…,…,"rtmr3":…} (lowercase hex)
    #[arg(long)]
    json: bool,
    /// Write the predicted event log as a CCEL (TCG2 crypto-agile, SHA-384) binary
    #[arg(long, value_name = "FILE")]
    event_log_out: Option<PathBuf>,
    /// Write the predicted event log as JSON
    #[arg(long, value_name = "FILE")]
    event_log_json: Option<PathBuf>,
}

#[derive(clap::Args)]
struct ReplayArgs {
    /// CCEL event log (binary, e.g. /sys/firmware/acpi/tables/data/CCEL or --event-log-out)
    #[arg(long, value_name = "FILE")]
    event_log: PathBuf,
    /// TDX quote (v4/v5) to compare RTMR0-3 with
    #[arg(long, value_name = "FILE")]
    quote: Option<PathBuf>,
    /// Print JSON instead of text
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<i32> {
    match args.command {
        Some(Command::Replay(r)) => replay(r),
        None => run_measure(args.measure),
    }
}

fn run_measure(a: MeasureArgs) -> Result<i32> {
    let (Some(fw_path), Some(cpus), Some(memory), Some(kernel_path)) =
        (&a.firmware, a.cpus, a.memory, &a.kernel)
    else {
        bail!("--firmware, --cpus, --memory and --kernel are required");
    };
    let firmware = read(fw_path, "firmware")?;
    let kernel = read(kernel_path, "kernel")?;
    let initrd = a.initrd.as_deref().map(|p| read(p, "initrd")).transpose()?;
    let dir = match (&a.acpi_dir, &a.qemu) {
        (Some(d), _) => d.clone(),
        (None, Some(q)) => crate::qemu_acpi::acpi_dir(q, &a.machine, &a.cpu_model, cpus, memory)?,
        (None, None) => bail!("one of --acpi-dir or --qemu is required"),
    };
    let dir = &dir;
    let loader = read(&dir.join("table-loader"), "ACPI table-loader")?;
    let rsdp = read(&dir.join("rsdp"), "ACPI rsdp")?;
    let tables = read(&dir.join("tables"), "ACPI tables")?;
    let acpi = AcpiBlobs {
        table_loader: &loader,
        rsdp: &rsdp,
        tables: &tables,
    };
    match acpi.madt_cpu_count() {
        Some(n) if n as u32 != cpus => bail!("--cpus {cpus} but the MADT in {}/tables describes {n} CPUs: capture ACPI for this shape", dir.display()),
        Some(_) => {}
        None => bail!("{}/tables has no readable MADT: not a QEMU etc/acpi/tables capture", dir.display()),
    }
    let mut qemu = QemuModel::for_version(a.qemu_version.0, a.qemu_version.1);
    if let Some(o) = a.page_order {
        qemu.page_add_order = match o {
            PageOrder::Single => PageAddOrder::SinglePass,
            PageOrder::TwoPass => PageAddOrder::TwoPass,
        };
    }
    let model = match a.ovmf_model {
        OvmfModel::Auto if crate::cache::firmware_measures_smbios(&firmware)? => OvmfModel::Stable202505,
        OvmfModel::Auto => OvmfModel::Pre202505,
        m => m,
    };
    if a.smbios_digest.is_some() && model != OvmfModel::Stable202505 {
        bail!("--smbios-digest only applies to --ovmf-model stable202505 (older OVMF does not measure SMBIOS)");
    }
    let mut smbios_files = None;
    let ovmf = match model {
        OvmfModel::Pre202505 => OvmfEventModel::Pre202505,
        OvmfModel::LegacySeparatorInRtmr0 => OvmfEventModel::LegacySeparatorInRtmr0,
        OvmfModel::Auto => unreachable!("resolved above"),
        OvmfModel::Stable202505 => {
            if a.qemu.is_some() && a.smbios_digest.is_none() && a.cpu_model == crate::qemu_acpi::DEFAULT_CPU {
                eprintln!(
                    "warning: the SMBIOS event (RTMR0) is derived for -cpu {}: a TD reports its \
                     host's CPU signature in SMBIOS type 4, so give --cpu-model with the host's model",
                    a.cpu_model
                );
            }
            let (model, files) = smbios_model(dir, a.smbios_digest)?;
            smbios_files = files;
            model
        }
    };
    let boot = TdxBoot {
        firmware_reads_named_blobs: None,
        firmware: &firmware,
        memory_bytes: memory,
        acpi,
        kernel: &kernel,
        initrd: initrd.as_deref(),
        cmdline: &a.cmdline,
        qemu,
        ovmf,
        boot_options: None,
    };
    let mut m = measure_checked(boot)?;
    if let Some(files) = &smbios_files {
        derive_smbios_digest(&mut m, &firmware, files)?;
    }
    if let Some(p) = &a.capture_json {
        let doc = serde_json::to_string_pretty(&capture_record(dir, a.qemu.is_some())?)?;
        crate::output::write(p, (doc + "\n").as_bytes())?;
    }

    if let Some(p) = &a.event_log_out {
        crate::output::write(p, &m.to_ccel().to_bytes())?;
    }
    if let Some(p) = &a.event_log_json {
        let events: Vec<Value> = m
            .events
            .iter()
            .enumerate()
            .map(|(i, e)| predicted_event_json(i + 1, e))
            .collect();
        let doc = serde_json::to_string_pretty(
            &json!({ "events": events, "registers": registers_json(&m.mrtd, &m.rtmr) }),
        )?;
        crate::output::write(p, (doc + "\n").as_bytes())?;
    }
    if a.json {
        println!(
            "{}",
            serde_json::to_string(&registers_json(&m.mrtd, &m.rtmr))?
        );
    } else {
        println!("MRTD:  {}", hex::encode(m.mrtd));
        for (i, r) in m.rtmr.iter().enumerate() {
            println!("RTMR{i}: {}", hex::encode(r));
        }
    }
    Ok(0)
}

/// What `--capture-json` writes: where the fw_cfg files came from (`qemu`: captured by this run
/// or its cache, with the QEMU version and shape argv of `argv.json`; `acpi-dir`: given by the
/// user) and the sha256 of each file present. No paths, so the record is reproducible.
fn capture_record(dir: &Path, captured: bool) -> Result<Value> {
    use sha2::{Digest, Sha256};
    let mut files = serde_json::Map::new();
    for f in ["table-loader", "rsdp", "tables", "smbios-anchor", "smbios-tables"] {
        if let Ok(data) = std::fs::read(dir.join(f)) {
            files.insert(f.into(), json!(hex::encode(Sha256::digest(&data))));
        }
    }
    let mut v = json!({ "source": if captured { "qemu" } else { "acpi-dir" }, "files": files });
    if captured {
        let path = dir.join("argv.json");
        let meta: Value = serde_json::from_slice(&read(&path, "capture argv.json")?)
            .with_context(|| format!("parsing {}", path.display()))?;
        v["qemu_version"] = meta["version"].clone();
        v["argv"] = meta["argv"].clone();
    }
    Ok(v)
}

/// The stable202505 model for this shape: with the SMBIOS digest given, complete; otherwise
/// with a placeholder digest and the capture directory's `smbios-tables` and `smbios-anchor`
/// (QEMU's fw_cfg files), from which [`derive_smbios_digest`] sets it after measuring.
fn smbios_model(dir: &Path, given: Option<[u8; 48]>) -> Result<(OvmfEventModel, Option<SmbiosFiles>)> {
    let tables_path = dir.join("smbios-tables");
    let anchor_path = dir.join("smbios-anchor");
    let anchor = std::fs::read(&anchor_path).ok();
    let smbios3 = match &anchor {
        Some(a) => EntryPoint::parse(a).with_context(|| format!("{}", anchor_path.display()))?.is_64_bit,
        None => false,
    };
    if let Some(smbios_digest) = given {
        return Ok((OvmfEventModel::Stable202505 { smbios_digest, smbios3 }, None));
    }
    let (Some(anchor), true) = (anchor, tables_path.is_file()) else {
        bail!(
            "this firmware (edk2 >= stable202505: SmbiosMeasurementDxe) measures the SMBIOS table into RTMR0, and {} has \
             no smbios-tables and smbios-anchor (QEMU's fw_cfg etc/smbios/* files) to derive it \
             from: capture the shape with --qemu, add those files, or pass --smbios-digest",
            dir.display()
        );
    };
    let tables = read(&tables_path, "SMBIOS tables")?.to_vec();
    let model = OvmfEventModel::Stable202505 { smbios_digest: [0; 48], smbios3 };
    Ok((model, Some(SmbiosFiles { dir: dir.to_path_buf(), tables, anchor })))
}

/// QEMU's SMBIOS fw_cfg files of the shape.
struct SmbiosFiles {
    dir: PathBuf,
    tables: Vec<u8>,
    anchor: Vec<u8>,
}

/// Set the SMBIOS event of `m` from QEMU's files and the firmware's default Type 0 strings,
/// cached by the MRTD just computed (it covers SmbiosPlatformDxe, in the measured volumes), so
/// a run with a warm cache does not hash the firmware again.
fn derive_smbios_digest(m: &mut TdxMeasurement, firmware: &[u8], files: &SmbiosFiles) -> Result<()> {
    let key = crate::cache::mrtd_key(&m.mrtd);
    let type0 = crate::cache::firmware_smbios_type0(firmware, &key)?;
    let (_, bytes) = cvm_measurements::smbios::measured_table(&files.tables, &files.anchor, &type0)
        .with_context(|| format!("deriving the SMBIOS event from {}", files.dir.display()))?;
    m.set_smbios_digest(cvm_measurements::tdx::sha384(&bytes))?;
    Ok(())
}

/// Measure with the answers of current OVMF builds, then check them against the two facts
/// that come from the firmware itself, cached per firmware: under QEMU 10.0, whether it reads
/// QEMU's `etc/boot/*` blobs (then the kernel is measured unpatched: every OVMF since 2024
/// does), and the boot options it creates (Boot####, derived from its volumes). If either
/// differs from the guess, the measurement is redone with the firmware's answer. The cache key
/// is the MRTD just computed: it covers every byte of the firmware's measured volumes, where
/// both facts come from, so no extra hash of the file is needed.
fn measure_checked(boot: TdxBoot<'_>) -> Result<TdxMeasurement> {
    let depends = boot.qemu.depends_on_firmware();
    let guess = measure(&TdxBoot {
        firmware_reads_named_blobs: depends.then_some(true),
        ..boot
    })
    .context("computing TDX measurements")?;
    let key = crate::cache::mrtd_key(&guess.mrtd);
    let reads = match depends {
        true => Some(crate::cache::firmware_reads_named_blobs(boot.firmware, &key)?),
        false => None,
    };
    let options = crate::cache::firmware_boot_options(boot.firmware, &key, boot.ovmf)?;
    if reads.unwrap_or(true) && options == boot.ovmf.boot_options() {
        return Ok(guess);
    }
    measure(&TdxBoot {
        firmware_reads_named_blobs: reads,
        boot_options: Some(&options),
        ..boot
    })
    .context("computing TDX measurements")
}

fn registers_json(mrtd: &[u8; 48], rtmr: &[[u8; 48]; 4]) -> Value {
    json!({
        "mrtd": hex::encode(mrtd),
        "rtmr0": hex::encode(rtmr[0]),
        "rtmr1": hex::encode(rtmr[1]),
        "rtmr2": hex::encode(rtmr[2]),
        "rtmr3": hex::encode(rtmr[3]),
    })
}

fn predicted_event_json(index: usize, e: &TdxEvent) -> Value {
    let mut v = event_json(index, &e.to_pcr_event2());
    v["description"] = json!(e.description);
    v
}

/// One CCEL event as JSON (shared with `explain`).
pub fn event_json(index: usize, e: &TcgPcrEvent2) -> Value {
    json!({
        "index": index,
        "mr_index": e.pcr_index,
        "rtmr": ccel::rtmr_of_mr_index(e.pcr_index),
        "event_type": e.event_type,
        "event_type_name": event_type::name(e.event_type),
        "digest": e.digest(TPM_ALG_SHA384).map(hex::encode),
        "event_data": hex::encode(&e.event),
    })
}

/// Read and parse a CCEL binary log.
pub fn read_ccel(path: &Path) -> Result<EventLog> {
    let bytes = read(path, "event log")?;
    EventLog::parse(&bytes).with_context(|| format!("parsing event log {}", path.display()))
}

/// A one-line summary of an event for text output.
pub fn event_line(index: usize, e: &TcgPcrEvent2) -> String {
    let reg = ccel::rtmr_of_mr_index(e.pcr_index)
        .map_or(format!("MR{}", e.pcr_index), |r| format!("RTMR{r}"));
    let ty = event_type::name(e.event_type).map_or(format!("{:#x}", e.event_type), str::to_owned);
    let digest = e
        .digest(TPM_ALG_SHA384)
        .map_or("(no sha384)".to_owned(), hex::encode);
    format!("{index:3} {reg:5} {ty:34} {digest}")
}

fn replay(a: ReplayArgs) -> Result<i32> {
    let log = read_ccel(&a.event_log)?;
    let rtmr =
        rtmrs_from_ccel(&log).with_context(|| format!("replaying {}", a.event_log.display()))?;
    let quote = a
        .quote
        .as_deref()
        .map(|p| -> Result<TdxQuote> {
            TdxQuote::parse(&read(p, "quote")?)
                .with_context(|| format!("parsing quote {}", p.display()))
        })
        .transpose()?;
    let mismatches: Vec<usize> = quote.as_ref().map_or(Vec::new(), |q| {
        (0..4).filter(|&i| q.body.rtmr[i] != rtmr[i]).collect()
    });
    if a.json {
        let events: Vec<Value> = log
            .events
            .iter()
            .enumerate()
            .map(|(i, e)| event_json(i + 1, e))
            .collect();
        let mut doc =
            json!({ "events": events, "rtmr": rtmr.iter().map(hex::encode).collect::<Vec<_>>() });
        if let Some(q) = &quote {
            doc["quote"] = json!({ "mrtd": hex::encode(q.body.mr_td), "rtmr": q.body.rtmr.iter().map(hex::encode).collect::<Vec<_>>() });
            doc["mismatches"] = json!(mismatches
                .iter()
                .map(|i| format!("rtmr{i}"))
                .collect::<Vec<_>>());
        }
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        for (i, e) in log.events.iter().enumerate() {
            println!("{}", event_line(i + 1, e));
        }
        for (i, r) in rtmr.iter().enumerate() {
            println!("RTMR{i}: {}", hex::encode(r));
        }
        if let Some(q) = &quote {
            println!("quote MRTD: {}", hex::encode(q.body.mr_td));
        }
    }
    if let Some(q) = &quote {
        for &i in &mismatches {
            eprintln!(
                "RTMR{i} mismatch: event log replays to {}, quote has {}",
                hex::encode(rtmr[i]),
                hex::encode(q.body.rtmr[i])
            );
        }
        if !mismatches.is_empty() {
            return Ok(1);
        }
        eprintln!("RTMR0-3 match the quote");
    }
    Ok(0)
}

/// `2048M`, `4G`, `1073741824B`, `512K`, or a bare number of MiB (as QEMU's `-m`).
fn parse_memory(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_uppercase() {
                'B' => 1u64,
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => return Err(format!("unknown size suffix {c:?} (use K, M, G or T)")),
            };
            (&s[..i], m)
        }
        _ => (s, 1 << 20),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size like 2048M or 4G"))?;
    let bytes = n
        .checked_mul(mult)
        .ok_or_else(|| format!("{s:?} overflows"))?;
    if bytes == 0 || bytes % 4096 != 0 {
        return Err(format!("{s:?} is not a positive multiple of 4 KiB"));
    }
    Ok(bytes)
}

fn parse_digest48(s: &str) -> Result<[u8; 48], String> {
    let b = hex::decode(s.trim()).map_err(|e| format!("not hex: {e}"))?;
    b.try_into()
        .map_err(|b: Vec<u8>| format!("a SHA-384 digest has 48 bytes, this has {}", b.len()))
}

fn parse_version(s: &str) -> Result<(u32, u32), String> {
    let mut it = s.split('.');
    let major = it.next().and_then(|x| x.parse().ok());
    let minor = it.next().map_or(Some(0), |x| x.parse().ok());
    match (major, minor) {
        (Some(a), Some(b)) => Ok((a, b)),
        _ => Err(format!("{s:?} is not a QEMU version like 10.0 or 8.2")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_memory("2048M"), Ok(2 << 30));
        assert_eq!(parse_memory("4G"), Ok(4 << 30));
        assert_eq!(parse_memory("1024"), Ok(1 << 30));
        assert!(parse_memory("4X").is_err());
        assert!(parse_memory("0").is_err());
        assert!(parse_memory("").is_err());
        assert_eq!(parse_version("8.2.2"), Ok((8, 2)));
        assert!(parse_version("x").is_err());
    }
}
