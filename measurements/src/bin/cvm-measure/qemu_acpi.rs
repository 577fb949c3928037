//! `cvm-measure tdx --qemu PATH`: capture QEMU's fw_cfg ACPI files (`etc/table-loader`,
//! `etc/acpi/rsdp`, `etc/acpi/tables`) for a VM shape, as design note §6 step 3 describes: start
//! QEMU paused under TCG with a QMP socket and a generic `loader` device holding fw_cfg DMA
//! descriptors, program through HMP `o` what OVMF programs (PCIEXBAR, PMBASE, ACPI enable) before
//! the first ACPI file is selected, kick the DMAs through port 0x514/0x518 and read the buffers
//! back with `pmemsave`. No firmware runs, and no KVM, TDX or qtest is needed.
//!
//! The shape argv is `-machine MACHINE -cpu qemu64 -smp N -m M -nodefaults`, where MACHINE is
//! `--machine` (the whole `-machine` argument: a q35 type and its options, default
//! [`DEFAULT_MACHINE`]); the capture itself adds `-S -accel tcg`, the display, QMP and the
//! `loader` device. Machine options such as `hpet=on` change the ACPI tables (and RTMR0).
//!
//! Captures are cached by (QEMU version, shape argv) in
//! `$XDG_CACHE_HOME/cvm-image/acpi/<sha256>/` (`table-loader`, `rsdp`, `tables`, `argv.json`), a
//! directory usable as `--acpi-dir`. A cache hit runs only `QEMU --version`, never a VM.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Guest-physical layout of the capture: descriptors, directory buffer, one buffer per file key.
const DESC_BASE: u64 = 0x10_0000;
const DIR_BUF: u64 = 0x20_0000;
const DIR_BUF_LEN: u32 = 0x1_0000;
const FILE_BUF_BASE: u64 = 0x30_0000;
const FILE_BUF_LEN: u32 = 0x4_0000;
/// fw_cfg file directory key, and the candidate file keys (FW_CFG_FILE_FIRST .. +0x40).
const KEY_FILE_DIR: u16 = 0x19;
const FILE_KEYS: std::ops::Range<u16> = 0x20..0x60;
/// fw_cfg DMA control: SELECT (0x08) | READ (0x02), with the key in the top 16 bits.
const DMA_SELECT_READ: u32 = 0x0A;
/// The fw_cfg files read, and their names in the capture directory. The SMBIOS pair is what
/// OVMF's SmbiosPlatformDxe installs (edk2 >= stable202505 measures the result into RTMR0).
const FILES: [(&str, &str); 5] = [
    ("etc/table-loader", "table-loader"),
    ("etc/acpi/rsdp", "rsdp"),
    ("etc/acpi/tables", "tables"),
    ("etc/smbios/smbios-anchor", "smbios-anchor"),
    ("etc/smbios/smbios-tables", "smbios-tables"),
];

/// The default `--machine`: q35 with SMM, PIC and HPET off, the shape of the design note §5.2
/// vectors (and the only machine the capture used before `--machine` existed, so cache entries
/// made then are still hit).
pub const DEFAULT_MACHINE: &str = "q35,smm=off,pic=off,hpet=off";

/// Clap value parser for `--machine`: a whole `-machine` argument, `TYPE[,KEY=VALUE...]` (or
/// `type=TYPE,...`). Refused: empty values or options, whitespace, a machine type other than q35
/// (the capture programs the Q35 MCH/ICH9 and the model assumes q35's RAM layout), `accel=` (the
/// capture runs under TCG itself) and `confidential-guest-support=` (no TDX object exists under
/// TCG, and the capture needs only the options that shape ACPI, such as `hpet=`).
pub fn parse_machine(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("empty: expected a -machine argument like q35,smm=off,pic=off,hpet=off".into());
    }
    if s.chars().any(char::is_whitespace) {
        return Err(
            "contains whitespace: give one -machine argument, options separated by commas".into(),
        );
    }
    let mut ty = None;
    for (i, opt) in s.split(',').enumerate() {
        if opt.is_empty() {
            return Err(format!("empty option in {s:?} (`,,` is not allowed)"));
        }
        let (key, value) = match opt.split_once('=') {
            None if i == 0 => {
                ty = Some(opt);
                continue;
            }
            Some((k, v)) if !k.is_empty() && !v.is_empty() => (k, v),
            _ => return Err(format!("option {opt:?} is not KEY=VALUE")),
        };
        match key {
            "type" => ty = Some(value),
            "accel" => {
                return Err(format!(
                    "{opt:?}: the ACPI capture always runs under TCG (-accel tcg); leave accel= out"
                ))
            }
            "confidential-guest-support" => {
                return Err(format!(
                    "{opt:?}: the ACPI capture runs under TCG without a TDX object; leave it out \
                     (the capture needs the options that shape ACPI, such as hpet=)"
                ))
            }
            _ => {}
        }
    }
    match ty {
        Some(t) if t == "q35" || t.starts_with("pc-q35-") => Ok(s.to_string()),
        Some(t) => Err(format!(
            "machine type {t:?} is not q35 (q35 or pc-q35-X.Y): TDX and the capture need q35"
        )),
        None => Err(format!(
            "{s:?} names no machine type: start with q35 (or pc-q35-X.Y)"
        )),
    }
}

/// The default `--cpu-model` of the capture.
pub const DEFAULT_CPU: &str = "qemu64";

/// Clap value parser for `--cpu-model`: one QEMU `-cpu` value (a model name and its
/// `,feature=...` options), no whitespace; `host` is refused (the capture runs under TCG).
pub fn parse_cpu(s: &str) -> Result<String, String> {
    if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{s:?}: expected one -cpu value such as qemu64, max or SapphireRapids"));
    }
    if s == "host" || s.starts_with("host,") {
        return Err("-cpu host needs KVM; the capture runs under TCG: name the host's CPU model \
                    (e.g. SapphireRapids) or capture on the host and pass --acpi-dir"
            .into());
    }
    Ok(s.to_string())
}

/// The argv that determines the ACPI and SMBIOS tables (design note §5.2): the `-machine`
/// argument (already checked by [`parse_machine`]), CPU model (SMBIOS type 4 carries its CPUID
/// signature), vCPU count and memory.
fn shape_argv(machine: &str, cpu: &str, cpus: u32, memory_mib: u64) -> Vec<String> {
    [
        "-machine",
        machine,
        "-cpu",
        cpu,
        "-smp",
        &cpus.to_string(),
        "-m",
        &memory_mib.to_string(),
        "-nodefaults",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn qemu_version(qemu: &Path) -> Result<String> {
    let out = Command::new(qemu)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {} --version", qemu.display()))?;
    if !out.status.success() {
        bail!(
            "{} --version failed: {}",
            qemu.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().next().unwrap_or("").trim().to_string();
    if !line.starts_with("QEMU emulator version") {
        bail!(
            "{} --version printed {line:?}, not a QEMU version",
            qemu.display()
        );
    }
    Ok(line)
}

fn cache_root() -> Result<PathBuf> {
    Ok(crate::cache::base()?.join("acpi"))
}

/// The cache directory for (version, argv): sha256 over the version line and each argv element,
/// NUL-terminated.
fn cache_key(version: &str, argv: &[String]) -> String {
    let mut h = Sha256::new();
    for s in std::iter::once(version).chain(argv.iter().map(String::as_str)) {
        h.update(s.as_bytes());
        h.update([0u8]);
    }
    hex::encode(h.finalize())
}

/// Return a directory holding `table-loader`, `rsdp`, `tables`, `smbios-anchor` and
/// `smbios-tables` for this shape, capturing it with `qemu` on a cache miss (an entry made before
/// the SMBIOS files were captured is captured again). `machine` is the `-machine` argument
/// ([`parse_machine`]), `cpu` the `-cpu` one ([`parse_cpu`]).
pub fn acpi_dir(qemu: &Path, machine: &str, cpu: &str, cpus: u32, memory_bytes: u64) -> Result<PathBuf> {
    const MIB: u64 = 1 << 20;
    if !memory_bytes.is_multiple_of(MIB) || memory_bytes < 64 * MIB {
        bail!("--qemu capture needs --memory as a whole number of MiB, at least 64M (got {memory_bytes} bytes)");
    }
    let version = qemu_version(qemu)?;
    let argv = shape_argv(machine, cpu, cpus, memory_bytes / MIB);
    let root = cache_root()?;
    let dir = root.join(cache_key(&version, &argv));
    if FILES.iter().all(|(_, f)| dir.join(f).is_file()) && dir.join("argv.json").is_file() {
        eprintln!("ACPI capture: cached {}", dir.display());
        return Ok(dir);
    }
    let blobs = capture(qemu, &argv)?;
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let tmp = root.join(format!(".tmp-{}-{}", std::process::id(), nanos()));
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    for ((_, f), data) in FILES.iter().zip(&blobs) {
        std::fs::write(tmp.join(f), data)
            .with_context(|| format!("writing {}/{f}", tmp.display()))?;
    }
    let meta = json!({ "qemu": qemu.to_string_lossy(), "version": version, "argv": argv });
    std::fs::write(
        tmp.join("argv.json"),
        serde_json::to_string_pretty(&meta)? + "\n",
    )?;
    if dir.is_dir() && !FILES.iter().all(|(_, f)| dir.join(f).is_file()) {
        // An entry from before a file was added to the capture (or a partial one): replace it.
        let _ = std::fs::remove_dir_all(&dir);
    }
    if let Err(e) = std::fs::rename(&tmp, &dir) {
        // Another process may have filled the same key concurrently: keep theirs.
        let _ = std::fs::remove_dir_all(&tmp);
        if !FILES.iter().all(|(_, f)| dir.join(f).is_file()) {
            return Err(e).with_context(|| format!("moving the capture into {}", dir.display()));
        }
    }
    eprintln!(
        "ACPI capture: ran {} ({version}), cached {}",
        qemu.display(),
        dir.display()
    );
    Ok(dir)
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Descriptor table for the `loader` device: index 0 reads the file directory, index 1 + i reads
/// file key 0x20 + i. Each is 16 bytes, big-endian: control, length, guest address.
fn descriptors() -> Vec<u8> {
    let mut out = Vec::new();
    let mut push = |key: u16, len: u32, addr: u64| {
        out.extend_from_slice(&((u32::from(key) << 16) | DMA_SELECT_READ).to_be_bytes());
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&addr.to_be_bytes());
    };
    push(KEY_FILE_DIR, DIR_BUF_LEN, DIR_BUF);
    for (i, key) in FILE_KEYS.enumerate() {
        push(
            key,
            FILE_BUF_LEN,
            FILE_BUF_BASE + i as u64 * u64::from(FILE_BUF_LEN),
        );
    }
    out
}

fn desc_index(key: u16) -> u64 {
    if key == KEY_FILE_DIR {
        0
    } else {
        1 + u64::from(key - FILE_KEYS.start)
    }
}

/// Kills QEMU and removes the scratch directory however the capture ends.
struct Session {
    child: Child,
    scratch: PathBuf,
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    fn connect(sock: &Path, child: &mut Child) -> Result<Self> {
        let start = Instant::now();
        let stream = loop {
            match UnixStream::connect(sock) {
                Ok(s) => break s,
                Err(e) => {
                    if let Some(st) = child.try_wait()? {
                        let mut err = String::new();
                        if let Some(mut e) = child.stderr.take() {
                            let _ = std::io::Read::read_to_string(&mut e, &mut err);
                        }
                        bail!(
                            "QEMU exited ({st}) before its QMP socket was ready: {}",
                            err.trim()
                        );
                    }
                    if start.elapsed() > Duration::from_secs(30) {
                        return Err(e).context("QEMU's QMP socket did not come up within 30 s");
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        };
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        let mut q = Qmp {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        };
        let greeting = q.read()?;
        if greeting.get("QMP").is_none() {
            bail!("unexpected QMP greeting {greeting}");
        }
        q.execute("qmp_capabilities", json!({}))?;
        Ok(q)
    }

    fn read(&mut self) -> Result<Value> {
        let mut line = String::new();
        if self.reader.read_line(&mut line).context("reading QMP")? == 0 {
            bail!("QMP connection closed");
        }
        serde_json::from_str(&line).with_context(|| format!("QMP sent {line:?}"))
    }

    fn execute(&mut self, cmd: &str, args: Value) -> Result<Value> {
        let msg = json!({ "execute": cmd, "arguments": args });
        self.writer.write_all((msg.to_string() + "\n").as_bytes())?;
        loop {
            let v = self.read()?;
            if let Some(r) = v.get("return") {
                return Ok(r.clone());
            }
            if let Some(e) = v.get("error") {
                bail!("QMP {cmd} failed: {e}");
            }
            // An asynchronous event: keep reading.
        }
    }

    fn hmp(&mut self, line: &str) -> Result<()> {
        let r = self.execute("human-monitor-command", json!({ "command-line": line }))?;
        let text = r.as_str().unwrap_or("").trim();
        if !text.is_empty() {
            bail!("HMP `{line}` printed {text:?}");
        }
        Ok(())
    }

    fn outl(&mut self, port: u16, val: u32) -> Result<()> {
        self.hmp(&format!("o /w {port:#x} {val:#x}"))
    }

    fn pci_write32(&mut self, dev: u32, func: u32, reg: u32, val: u32) -> Result<()> {
        self.outl(0xcf8, 0x8000_0000 | dev << 11 | func << 8 | reg)?;
        self.outl(0xcfc, val)
    }

    fn pmem(&mut self, addr: u64, len: u32, scratch: &Path, name: &str) -> Result<Vec<u8>> {
        let path = scratch.join(name);
        self.execute(
            "pmemsave",
            json!({ "val": addr, "size": len, "filename": path.to_string_lossy() }),
        )?;
        let data = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        if data.len() != len as usize {
            bail!("pmemsave wrote {} bytes, expected {len}", data.len());
        }
        Ok(data)
    }

    /// Start one fw_cfg DMA: high half 0, then the byte-swapped low half (the register is
    /// big-endian); the transfer completes within the port write.
    fn dma(&mut self, desc_addr: u64) -> Result<()> {
        self.outl(0x514, 0)?;
        self.outl(0x518, (desc_addr as u32).swap_bytes())
    }
}

/// Run QEMU for `argv` and return the files in `FILES` order.
fn capture(qemu: &Path, argv: &[String]) -> Result<Vec<Vec<u8>>> {
    let scratch = std::env::temp_dir().join(format!(
        "cvm-measure-acpi-{}-{}",
        std::process::id(),
        nanos()
    ));
    std::fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    let desc_file = scratch.join("dma-descriptors.bin");
    std::fs::write(&desc_file, descriptors())?;
    let sock = scratch.join("qmp.sock");
    let child = Command::new(qemu)
        .args(argv)
        .args(["-S", "-accel", "tcg", "-display", "none", "-qmp"])
        .arg(format!("unix:{},server=on,wait=off", sock.display()))
        .arg("-device")
        .arg(format!(
            "loader,file={},addr={DESC_BASE:#x},force-raw=on",
            desc_file.display()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", qemu.display()));
    let child = match child {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&scratch);
            return Err(e);
        }
    };
    let mut s = Session { child, scratch };
    let mut q = Qmp::connect(&sock, &mut s.child)?;

    // What OVMF programs before it reads ACPI (QEMU rebuilds the tables on the first select):
    // PCIEXBAR 0xE0000000 + enable, ICH9 PMBASE 0x600, ACPI enable.
    q.pci_write32(0, 0, 0x64, 0)?;
    q.pci_write32(0, 0, 0x60, 0xE000_0001)?;
    q.pci_write32(0x1f, 0, 0x40, 0x600)?;
    q.outl(0xcf8, 0x8000_0000 | 0x1f << 11 | 0x44)?;
    q.hmp("o /b 0xcfc 0x80")?;

    q.dma(DESC_BASE)?;
    let dir = q.pmem(DIR_BUF, DIR_BUF_LEN, &s.scratch, "file-dir")?;
    let count = u32::from_be_bytes(dir[0..4].try_into().unwrap()) as usize;
    if 4 + count * 64 > dir.len() {
        bail!("fw_cfg file directory claims {count} entries");
    }
    let mut out = Vec::new();
    for (name, short) in FILES {
        let entry = dir[4..4 + count * 64].chunks_exact(64).find(|e| {
            let n = &e[8..64];
            let end = n.iter().position(|&b| b == 0).unwrap_or(n.len());
            &n[..end] == name.as_bytes()
        });
        let Some(e) = entry else {
            bail!(
                "QEMU's fw_cfg has no {name} with -machine {}: ACPI or SMBIOS turned off?",
                argv[1]
            );
        };
        let size = u32::from_be_bytes(e[0..4].try_into().unwrap());
        let key = u16::from_be_bytes(e[4..6].try_into().unwrap());
        if !FILE_KEYS.contains(&key) || size > FILE_BUF_LEN {
            bail!("fw_cfg {name}: key {key:#x}, {size} bytes is outside what the capture reads");
        }
        q.dma(DESC_BASE + 16 * desc_index(key))?;
        let i = u64::from(key - FILE_KEYS.start);
        out.push(q.pmem(
            FILE_BUF_BASE + i * u64::from(FILE_BUF_LEN),
            size,
            &s.scratch,
            short,
        )?);
    }
    let _ = q.execute("quit", json!({}));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_layout() {
        let d = descriptors();
        assert_eq!(d.len(), 16 * 65);
        assert_eq!(&d[0..4], &[0x00, 0x19, 0x00, 0x0A]);
        assert_eq!(&d[8..16], &DIR_BUF.to_be_bytes());
        assert_eq!(&d[16..20], &[0x00, 0x20, 0x00, 0x0A]);
        assert_eq!(desc_index(0x21), 2);
    }

    #[test]
    fn cache_key_depends_on_version_and_argv() {
        let a = shape_argv(DEFAULT_MACHINE, DEFAULT_CPU, 1, 2048);
        // The argv (hence the cache key) of the default is what it was before --machine.
        assert_eq!(
            a.join(" "),
            "-machine q35,smm=off,pic=off,hpet=off -cpu qemu64 -smp 1 -m 2048 -nodefaults"
        );
        assert_ne!(cache_key("v1", &a), cache_key("v2", &a));
        assert_ne!(
            cache_key("v1", &a),
            cache_key("v1", &shape_argv(DEFAULT_MACHINE, DEFAULT_CPU, 1, 1024))
        );
        let hpet = shape_argv("q35,smm=off,pic=off,hpet=on", DEFAULT_CPU, 1, 2048);
        assert_ne!(cache_key("v1", &a), cache_key("v1", &hpet));
        let max = shape_argv(DEFAULT_MACHINE, "max", 1, 2048);
        assert_ne!(cache_key("v1", &a), cache_key("v1", &max));
    }

    #[test]
    fn cpu_values() {
        for ok in ["qemu64", "max", "SapphireRapids", "SapphireRapids,-avx512f"] {
            assert_eq!(parse_cpu(ok).as_deref(), Ok(ok));
        }
        for (bad, why) in [("", "expected"), ("max ", "expected"), ("host", "TCG"), ("host,+x", "TCG")] {
            let e = parse_cpu(bad).expect_err(bad);
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn machine_values() {
        for ok in [
            DEFAULT_MACHINE,
            "q35",
            "pc-q35-10.0,smm=off",
            "type=q35,hpet=on",
            "q35,smm=off,pic=off,hpet=off,kernel-irqchip=split",
        ] {
            assert_eq!(parse_machine(ok).as_deref(), Ok(ok));
        }
        for (bad, why) in [
            ("", "empty"),
            ("q35, hpet=on", "whitespace"),
            ("q35,hpet=on\n", "whitespace"),
            ("q35,,hpet=on", "empty option"),
            ("q35,hpet", "KEY=VALUE"),
            ("q35,=on", "KEY=VALUE"),
            ("q35,accel=kvm", "TCG"),
            ("q35,confidential-guest-support=tdx0", "TDX object"),
            ("pc,hpet=off", "not q35"),
            ("hpet=off", "no machine type"),
        ] {
            let e = parse_machine(bad).expect_err(bad);
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }
}
