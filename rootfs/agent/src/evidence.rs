//! Evidence collection: what the guest can say about how it booted.
//!
//! Sources (feasibility study §4-5): `/sys/class/tpm/tpm0/pcr-sha256/N` (and `pcr-sha384`),
//! `/sys/kernel/security/tpm0/binary_bios_measurements`, `/proc/cmdline`, `/sys/block/dm-*/dm/`
//! plus `veritysetup status`, and configfs-tsm at `/sys/kernel/config/tsm/report`.
//! Parsing is pure ([`parse_pcr_text`], [`pcr_map_hex`]); [`collect`] does the reads and records
//! every unreadable source in `Evidence::problems` instead of dropping it.

use crate::protocol::{DmDevice, Evidence, QuoteEvidence, TsmReport};
use crate::tpm::commands::{PcrSelection, TPM_ALG_SHA256};
use crate::tpm::transport::Transport;
use crate::tpm::Tpm;
use base64::Engine;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where to read from; `root` is `/` in the guest and a fake tree in tests.
#[derive(Debug, Clone)]
pub struct Sources {
    pub root: PathBuf,
    /// Read PCRs through the TPM instead of sysfs (swtpm on the host has no sysfs).
    pub pcrs_from_tpm: bool,
    /// `veritysetup` to ask for dm-verity status; `None` to skip.
    pub veritysetup: Option<PathBuf>,
}

/// PCRs the agent quotes and reports: sha256 bank, 0..=9.
pub fn quoted_selection() -> PcrSelection {
    PcrSelection::sha256_0_to_9()
}

/// Parses a sysfs `pcr-<alg>/N` file: hex digits, case-insensitive, optional trailing newline.
pub fn parse_pcr_text(text: &str, expected_bytes: usize) -> Result<String, String> {
    let t = text.trim();
    let bytes = hex::decode(t).map_err(|e| format!("not hex ({e})"))?;
    if bytes.len() != expected_bytes {
        return Err(format!("{} bytes, expected {expected_bytes}", bytes.len()));
    }
    Ok(hex::encode(bytes))
}

/// Hex-encodes a PCR map read through the TPM.
pub fn pcr_map_hex(values: &BTreeMap<u32, Vec<u8>>) -> BTreeMap<u32, String> {
    values.iter().map(|(k, v)| (*k, hex::encode(v))).collect()
}

fn read_sysfs_bank(
    root: &Path,
    alg: &str,
    bytes: usize,
    problems: &mut Vec<String>,
) -> BTreeMap<u32, String> {
    let dir = root.join(format!("sys/class/tpm/tpm0/pcr-{alg}"));
    let mut out = BTreeMap::new();
    if !dir.is_dir() {
        problems.push(format!("{}: not present", dir.display()));
        return out;
    }
    for idx in 0..24u32 {
        let path = dir.join(idx.to_string());
        match std::fs::read_to_string(&path) {
            Ok(t) => match parse_pcr_text(&t, bytes) {
                Ok(h) => {
                    out.insert(idx, h);
                }
                Err(e) => problems.push(format!("{}: {e}", path.display())),
            },
            Err(e) => problems.push(format!("{}: {e}", path.display())),
        }
    }
    out
}

fn dm_devices(
    src: &Sources,
    problems: &mut Vec<String>,
    log: &mut dyn FnMut(String),
) -> Vec<DmDevice> {
    let block = src.root.join("sys/block");
    let mut devs = Vec::new();
    let entries = match std::fs::read_dir(&block) {
        Ok(e) => e,
        Err(e) => {
            problems.push(format!("{}: {e}", block.display()));
            return devs;
        }
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for dev in names.into_iter().filter(|n| n.starts_with("dm-")) {
        let read = |f: &str| {
            std::fs::read_to_string(block.join(&dev).join("dm").join(f))
                .map(|s| s.trim().to_string())
        };
        let name = read("name")
            .map_err(|e| problems.push(format!("{dev}/dm/name: {e}")))
            .ok();
        let uuid = read("uuid")
            .map_err(|e| problems.push(format!("{dev}/dm/uuid: {e}")))
            .ok();
        // The whole read first, so that the status reports what it found (a block whose hash
        // does not match makes dm-verity say `corrupted`).
        let node = src.root.join("dev").join(&dev);
        log(format!("reading all of {} (dm-verity checks every block)", node.display()));
        let read_check = Some(match read_whole(&node) {
            Ok(n) => format!("ok: read {n} bytes"),
            Err(e) => {
                problems.push(e.clone());
                format!("error: {e}")
            }
        });
        let mut verity_status = None;
        if let (Some(vs), Some(n)) = (&src.veritysetup, &name) {
            log(format!("running: {} status {n}", vs.display()));
            match std::process::Command::new(vs).arg("status").arg(n).output() {
                Ok(o) if o.status.success() => {
                    verity_status = Some(String::from_utf8_lossy(&o.stdout).into_owned())
                }
                Ok(o) => problems.push(format!(
                    "veritysetup status {n}: {} {}",
                    o.status,
                    String::from_utf8_lossy(&o.stderr).trim()
                )),
                Err(e) => problems.push(format!("veritysetup status {n}: {e}")),
            }
        }
        devs.push(DmDevice {
            dev,
            name,
            uuid,
            verity_status,
            read_check,
        });
    }
    devs
}

/// Reads `path` to the end and returns its length. Through dm-verity every block is checked
/// against the hash tree as it is read, so a corrupted block surfaces as an I/O error here.
fn read_whole(path: &Path) -> Result<u64, String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| format!("opening {}: {e}", path.display()))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        match f.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => total += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("{}: read error at byte {total}: {e}", path.display())),
        }
    }
}

/// configfs-tsm: create a report entry, write the nonce (zero-padded to 64 bytes) as `inblob`,
/// read `provider` and `outblob`, remove the entry.
fn tsm_report(root: &Path, nonce: &[u8]) -> TsmReport {
    let base = root.join("sys/kernel/config/tsm/report");
    if !base.is_dir() {
        return TsmReport::Unavailable {
            reason: format!("{} not present", base.display()),
        };
    }
    let entry = base.join(format!("cvm-agent-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir(&entry) {
        return TsmReport::Unavailable {
            reason: format!("mkdir {}: {e}", entry.display()),
        };
    }
    let mut inblob = [0u8; 64];
    inblob[..nonce.len().min(64)].copy_from_slice(&nonce[..nonce.len().min(64)]);
    let result = (|| {
        std::fs::write(entry.join("inblob"), inblob).map_err(|e| format!("write inblob: {e}"))?;
        let provider = std::fs::read_to_string(entry.join("provider"))
            .map_err(|e| format!("read provider: {e}"))?;
        let outblob =
            std::fs::read(entry.join("outblob")).map_err(|e| format!("read outblob: {e}"))?;
        Ok::<_, String>(TsmReport::Available {
            provider: provider.trim().to_string(),
            outblob: base64::engine::general_purpose::STANDARD.encode(outblob),
        })
    })();
    let _ = std::fs::remove_dir(&entry);
    result.unwrap_or_else(|reason| TsmReport::Unavailable { reason })
}

/// Reads every source and quotes PCRs over `nonce` with `tpm` (if any).
pub fn collect<T: Transport>(
    src: &Sources,
    tpm: Option<&mut Tpm<T>>,
    nonce: &[u8],
    log: &mut dyn FnMut(String),
) -> Evidence {
    let mut ev = Evidence::default();
    let mut problems = Vec::new();

    let mut tpm = tpm;
    if src.pcrs_from_tpm {
        match tpm.as_deref_mut() {
            Some(t) => match t.pcr_read(TPM_ALG_SHA256, &(0..24).collect::<Vec<u8>>()) {
                Ok(m) => {
                    log(format!("read {} sha256 PCRs with TPM2_PCR_Read", m.len()));
                    ev.pcrs.insert("sha256".into(), pcr_map_hex(&m));
                }
                Err(e) => problems.push(format!("TPM2_PCR_Read: {e}")),
            },
            None => problems.push("PCRs from TPM requested but no TPM is configured".into()),
        }
    } else {
        for (alg, bytes) in [("sha256", 32), ("sha384", 48)] {
            let bank = read_sysfs_bank(&src.root, alg, bytes, &mut problems);
            log(format!("read {} {alg} PCRs from sysfs", bank.len()));
            if !bank.is_empty() {
                ev.pcrs.insert(alg.into(), bank);
            }
        }
    }

    let log_path = src
        .root
        .join("sys/kernel/security/tpm0/binary_bios_measurements");
    match std::fs::read(&log_path) {
        Ok(b) => {
            log(format!(
                "read event log {} ({} bytes)",
                log_path.display(),
                b.len()
            ));
            ev.event_log = Some(base64::engine::general_purpose::STANDARD.encode(b));
        }
        Err(e) => problems.push(format!("{}: {e}", log_path.display())),
    }

    match tpm {
        Some(t) => match t.quote(nonce, &[quoted_selection()]) {
            Ok(q) => {
                log(format!(
                    "TPM2_Quote over sha256:0-9 with a {}-byte nonce: attest {} bytes, AK {} bytes",
                    nonce.len(),
                    q.attest.len(),
                    q.ak_public.len()
                ));
                ev.quote = Some(QuoteEvidence {
                    attest: hex::encode(q.attest),
                    signature: hex::encode(q.signature),
                    ak_public: hex::encode(q.ak_public),
                });
            }
            Err(e) => problems.push(format!("TPM quote: {e}")),
        },
        None => problems.push("no TPM: quote not produced".into()),
    }

    let cmdline_path = src.root.join("proc/cmdline");
    match std::fs::read_to_string(&cmdline_path) {
        Ok(c) => {
            log(format!("read {}", cmdline_path.display()));
            ev.cmdline = Some(c.trim_end_matches('\n').to_string());
        }
        Err(e) => problems.push(format!("{}: {e}", cmdline_path.display())),
    }

    ev.dm_devices = dm_devices(src, &mut problems, log);
    log(format!(
        "found {} device-mapper devices",
        ev.dm_devices.len()
    ));

    ev.tsm_report = tsm_report(&src.root, nonce);
    log(format!("configfs-tsm: {:?}", ev.tsm_report)
        .chars()
        .take(200)
        .collect());

    for p in &problems {
        log(format!("could not read: {p}"));
    }
    ev.problems = problems;
    ev
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tpm::transport::StreamTransport;

    #[test]
    fn pcr_text_parsing() {
        assert_eq!(
            parse_pcr_text(&"AB".repeat(32), 32).unwrap(),
            "ab".repeat(32)
        );
        assert_eq!(
            parse_pcr_text(&format!("{}\n", "00".repeat(32)), 32).unwrap(),
            "00".repeat(32)
        );
        assert!(parse_pcr_text("00", 32).is_err());
        assert!(parse_pcr_text("xyz", 32).is_err());
    }

    #[test]
    fn collect_from_fake_tree_reports_what_is_missing() {
        let root = std::env::temp_dir().join(format!("cvm-agent-ev-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let pcr_dir = root.join("sys/class/tpm/tpm0/pcr-sha256");
        std::fs::create_dir_all(&pcr_dir).unwrap();
        for i in 0..24 {
            std::fs::write(
                pcr_dir.join(i.to_string()),
                format!("{}\n", format!("{i:02X}").repeat(32)),
            )
            .unwrap();
        }
        std::fs::create_dir_all(root.join("proc")).unwrap();
        std::fs::write(root.join("proc/cmdline"), "console=ttyS0 root=/dev/dm-0\n").unwrap();
        std::fs::create_dir_all(root.join("sys/block/dm-0/dm")).unwrap();
        std::fs::write(root.join("sys/block/dm-0/dm/name"), "vroot\n").unwrap();
        std::fs::create_dir_all(root.join("sys/block/vda")).unwrap();
        std::fs::create_dir_all(root.join("dev")).unwrap();
        std::fs::write(root.join("dev/dm-0"), vec![7u8; (1 << 20) + 5]).unwrap();

        let src = Sources {
            root: root.clone(),
            pcrs_from_tpm: false,
            veritysetup: None,
        };
        let mut logs = Vec::new();
        let ev = collect::<StreamTransport<std::net::TcpStream>>(&src, None, &[1; 32], &mut |l| {
            logs.push(l)
        });
        std::fs::remove_dir_all(&root).unwrap();

        assert_eq!(ev.pcrs["sha256"][&10], "0a".repeat(32));
        assert!(!ev.pcrs.contains_key("sha384"));
        assert_eq!(ev.cmdline.as_deref(), Some("console=ttyS0 root=/dev/dm-0"));
        assert_eq!(ev.dm_devices.len(), 1);
        assert_eq!(ev.dm_devices[0].name.as_deref(), Some("vroot"));
        assert_eq!(ev.dm_devices[0].read_check.as_deref(), Some("ok: read 1048581 bytes"));
        assert!(ev.quote.is_none());
        assert!(matches!(ev.tsm_report, TsmReport::Unavailable { .. }));
        for missing in [
            "pcr-sha384",
            "binary_bios_measurements",
            "no TPM",
            "dm-0/dm/uuid",
        ] {
            assert!(
                ev.problems.iter().any(|p| p.contains(missing)),
                "{missing} not in {:?}",
                ev.problems
            );
        }
        assert!(logs.iter().any(|l| l.contains("read 24 sha256 PCRs")));
    }
}
