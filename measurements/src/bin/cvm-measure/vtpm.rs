//! `cvm-measure vtpm`: predict the vTPM PCRs 0, 4, 5, 7 and 9 (sha256 and sha384 banks) of a
//! QEMU + OVMF boot and the events behind them: a direct kernel boot (`--kernel`, `--initrd`,
//! `--cmdline`), or with `--vars` and `--disk` a UEFI boot of the disk by the first boot option
//! of that variable store (the command line is the option's data). With `--check-log`, compare
//! a booted VM's TCG2 event log (and the PCRs its TPM reported) with the prediction, exit 1
//! naming the PCR and the event that differ.

use crate::input::read;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use cvm_measurements::eventlog::{event_type, EventLog};
use cvm_measurements::vtpm::{
    self, Bank, PcrValues, VtpmBoot, VtpmDiskBoot, VtpmMeasurement, BANKS,
};
use serde_json::{json, Map, Value};

#[derive(clap::Args)]
pub struct Args {
    /// Unified OVMF.fd with TPM2 support (`-bios`), e.g. the built ovmf-vtpm firmware
    #[arg(long, value_name = "FILE")]
    firmware: PathBuf,
    /// Kernel bzImage (`-kernel`); with --disk: the EFI application the boot option starts
    /// (the kernel on the ESP)
    #[arg(long, value_name = "FILE")]
    kernel: PathBuf,
    /// Initrd (`-initrd`)
    #[arg(long, value_name = "FILE", conflicts_with = "vars")]
    initrd: Option<PathBuf>,
    /// Kernel command line (`-append`); OVMF appends ` initrd=initrd` when an initrd is given
    #[arg(long, value_name = "STRING", default_value = "", conflicts_with = "vars")]
    cmdline: String,
    /// UEFI disk boot: the image's OVMF_VARS.fd (pflash unit 1); its first BootOrder entry is
    /// what boots, its optional data the command line
    #[arg(long, value_name = "FILE", requires = "disk")]
    vars: Option<PathBuf>,
    /// UEFI disk boot: the GPT disk image booted from (only its first MiB is read)
    #[arg(long, value_name = "FILE", requires = "vars")]
    disk: Option<PathBuf>,
    /// Print {"sha256":{"4":hex,...},"sha384":{...},"events":[...]} (lowercase hex)
    #[arg(long)]
    json: bool,
    /// Write the predicted events as a TCG2 crypto-agile log (sha256 + sha384)
    #[arg(long, value_name = "FILE")]
    event_log_out: Option<PathBuf>,
    /// Compare this event log of a booted VM (binary_bios_measurements) with the prediction
    #[arg(long, value_name = "FILE")]
    check_log: Option<PathBuf>,
    /// With --check-log: the PCRs the TPM reported, {"sha256":{"0":hex,...},"sha384":{...}};
    /// without it the log's own replay stands in for them
    #[arg(long, value_name = "FILE", requires = "check_log")]
    pcrs: Option<PathBuf>,
}


pub fn run(a: Args) -> Result<i32> {
    let firmware = read(&a.firmware, "firmware")?;
    let kernel = read(&a.kernel, "kernel")?;
    let m = match (&a.vars, &a.disk) {
        (Some(vars), Some(disk)) => {
            let varstore = read(vars, "variable store")?;
            let prefix = disk_prefix(disk)?;
            vtpm::measure_disk(&VtpmDiskBoot {
                firmware: &firmware,
                varstore: &varstore,
                loader: &kernel,
                disk_prefix: &prefix,
            })
            .with_context(|| {
                format!(
                    "computing vTPM PCRs of a UEFI boot of {} with {}",
                    disk.display(),
                    vars.display()
                )
            })?
        }
        _ => {
            let initrd = a.initrd.as_deref().map(|p| read(p, "initrd")).transpose()?;
            vtpm::measure(&VtpmBoot {
                firmware: &firmware,
                kernel: &kernel,
                initrd: initrd.as_deref(),
                cmdline: &a.cmdline,
            })
            .context("computing vTPM PCRs")?
        }
    };
    if let Some(p) = &a.event_log_out {
        crate::output::write(p, &m.to_event_log().to_bytes())?;
    }
    if let Some(log) = &a.check_log {
        return check(&m, log, a.pcrs.as_deref(), a.json);
    }
    if a.json {
        println!("{}", serde_json::to_string(&prediction_json(&m))?);
    } else {
        for bank in BANKS {
            for (pcr, v) in &m.pcrs[&bank] {
                println!("{} PCR{pcr}: {}", bank.name(), hex::encode(v));
            }
        }
    }
    Ok(0)
}

/// The first MiB of a disk image: its protective MBR, GPT header and (where GPT tools put
/// it) the partition entry array.
fn disk_prefix(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(path).with_context(|| format!("opening disk {}", path.display()))?;
    let mut buf = Vec::with_capacity(1 << 20);
    f.take(1 << 20)
        .read_to_end(&mut buf)
        .with_context(|| format!("reading disk {}", path.display()))?;
    Ok(buf)
}

/// `{"sha256": {"4": hex, ...}, "sha384": {...}, "events": [...]}`; the events have the
/// manifest's `vtpm.events` form (`cvm_manifest::VtpmEvent`).
pub fn prediction_json(m: &VtpmMeasurement) -> Value {
    let mut doc = Map::new();
    for bank in BANKS {
        let values: Map<String, Value> = m.pcrs[&bank]
            .iter()
            .map(|(p, v)| (p.to_string(), json!(hex::encode(v))))
            .collect();
        doc.insert(bank.name().into(), Value::Object(values));
    }
    let events: Vec<cvm_manifest::VtpmEvent> = m
        .events
        .iter()
        .map(|e| cvm_manifest::VtpmEvent {
            pcr: e.pcr,
            event_type: event_type::name(e.event_type)
                .map_or_else(|| format!("{:#x}", e.event_type), str::to_owned),
            digests: e
                .digests
                .iter()
                .map(|(b, d)| (b.name().to_owned(), hex::encode(d)))
                .collect(),
            description: e.description.clone(),
        })
        .collect();
    doc.insert("events".into(), json!(events));
    Value::Object(doc)
}

/// Read `{"sha256": {"0": hex, ...}, ...}` (the layout of the vTPM test vectors' pcrs.json).
fn read_pcrs(path: &Path) -> Result<BTreeMap<Bank, PcrValues>> {
    let doc: BTreeMap<String, BTreeMap<String, String>> =
        serde_json::from_slice(&read(path, "PCR values")?).with_context(|| {
            format!(
                "{}: expected {{\"sha256\": {{\"0\": hex, ...}}}}",
                path.display()
            )
        })?;
    let mut out = BTreeMap::new();
    for (bank, values) in doc {
        let Some(b) = Bank::from_name(&bank) else {
            bail!("{}: unknown bank {bank:?} (sha256, sha384)", path.display());
        };
        let mut v = PcrValues::new();
        for (pcr, hex_value) in values {
            let n: u32 = pcr
                .parse()
                .with_context(|| format!("{}: PCR index {pcr:?}", path.display()))?;
            let bytes = hex::decode(&hex_value)
                .ok()
                .filter(|d| d.len() == b.size())
                .with_context(|| {
                    format!(
                        "{}: {bank} PCR {pcr} is not {} bytes of hex",
                        path.display(),
                        b.size()
                    )
                })?;
            v.insert(n, bytes);
        }
        out.insert(b, v);
    }
    Ok(out)
}

fn check(m: &VtpmMeasurement, log_path: &Path, pcrs: Option<&Path>, as_json: bool) -> Result<i32> {
    let log = EventLog::parse(&read(log_path, "event log")?)
        .with_context(|| format!("parsing event log {}", log_path.display()))?;
    let reported = match pcrs {
        Some(p) => read_pcrs(p)?,
        // The log's own replay, with the PCRs it never extends at zero.
        None => BANKS
            .iter()
            .map(|&b| {
                let mut v: PcrValues = (0..24).map(|i| (i, vec![0; b.size()])).collect();
                v.extend(vtpm::replay_log(&log, b)?);
                Ok((b, v))
            })
            .collect::<Result<_, cvm_measurements::eventlog::Error>>()?,
    };
    let c = vtpm::check_log(m, &log, &reported).context("replaying the event log")?;
    if as_json {
        let strings = |v: Vec<String>| json!(v);
        println!(
            "{}",
            json!({
                "match": c.is_ok(),
                "replay": strings(c.replay.iter().map(ToString::to_string).collect()),
                "pcrs": strings(c.pcrs.iter().map(ToString::to_string).collect()),
                "events": strings(c.events.iter().map(ToString::to_string).collect()),
            })
        );
    } else {
        print!("{c}");
        if c.is_ok() {
            println!();
        }
    }
    Ok(if c.is_ok() { 0 } else { 1 })
}
