//! `cargo xtask boot-test [--out DIR] [--case NAME]...`: boot the built image with the mock
//! TEE and check what the firmware measured against the manifest's predictions.
//!
//! The mock TEE (a test fixture: refused unless the manifest says `test_image`): swtpm
//! (sha256 + sha384 banks) attached to QEMU as a CRB TPM, the built `ovmf-vtpm` firmware as
//! two pflash drives (`ovmf-vtpm-code` read-only, a fresh copy of the image's variable store
//! `uefi-vars` per boot) and the built disk (`disk.raw`, read-only), which the firmware boots
//! by UEFI: the store's `Boot0001` starts the kernel on the ESP with the manifest's command
//! line as its `LoadOptions` (no `-kernel`). KVM when it works, TCG otherwise (`tools::qemu`). The guest's PID 1 runs `cvm-agent`, which talks to
//! this process over a virtio-serial port (a Unix socket here); this process plays the key
//! broker (`cvm_broker`, loopback/socket only): fresh nonce → evidence (PCRs, TCG event log,
//! TPM2 quote, command line, dm-verity read check) → the data-disk key only if the quote is
//! signed by the AK enrolled from this boot's swtpm before QEMU started (`tools::swtpm`),
//! verifies, and the PCRs equal the manifest's reference values.
//!
//! Cases (each its own verdict; the task fails if any case fails):
//! - `good`: two boots sharing a fresh data disk: the first formats it (LUKS2) and writes a
//!   marker, the second opens it with the released key and finds the marker; both pull a test
//!   image by digest from Debian's docker-registry on 127.0.0.1 (reached through QEMU user
//!   networking restricted to that one forward) onto the encrypted disk. Both must show:
//!   replayed event log = reported PCRs, predicted = measured for every PCR the manifest
//!   predicts, event by event, and the manifest's command line.
//! - `rootfs`: one flipped byte in the root partition: dm-verity must refuse the block.
//! - `cmdline`, `kernel`, `initrd`, `firmware`: a boot option with a changed command line; a
//!   disk whose ESP holds a different kernel (the built one with 4 KiB appended); an initrd
//!   added to the ESP and named by `initrd=` in the boot option; Debian's OVMF (pinned fixture
//!   O1, split into code and a variable store with the same boot option) instead of the built
//!   one: the key must be refused, naming the PCR; the data disk must stay unchanged.
//! - `signature`: a manifest envelope whose signature does not verify must be rejected
//!   before any reference value is taken from it.

use crate::flags::BootTestFlags;
use crate::tools::{self, qemu, swtpm::Swtpm};
use anyhow::{bail, Context, Result};
use cvm_broker::policy::ReferencePcrs;
use cvm_broker::session::{Broker, Outcome};
use cvm_manifest::{role, Manifest};
use cvm_measurements::eventlog::{self, EventLog};
use cvm_measurements::guid::EfiGuid;
use cvm_measurements::vtpm::disk_boot::{self, EspPartition};
use cvm_measurements::vtpm::varstore;
use cvm_rootfs::esp::{self, EspFile};
use std::collections::BTreeMap;
use std::io::BufReader;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use xshell::Shell;

/// Every case, in the order they run.
pub const CASES: &[&str] = &["good", "rootfs", "cmdline", "kernel", "initrd", "firmware", "signature"];

/// Guest memory (MiB): enough for the kernel, the agent and cryptsetup (pbkdf2, no argon2).
const MEMORY_MIB: u32 = 512;
/// A whole boot under TCG on a loaded 2-core machine stays far below this.
const BOOT_TIMEOUT_SECS: u32 = 600;
/// Size of the data disk the agent formats.
const DATA_DISK_BYTES: u64 = 64 << 20;
/// Where the guest reaches the test registry: an address in QEMU user networking's
/// 10.0.2.0/24 (the only non-loopback hosts the agent's HTTP client accepts), forwarded by
/// `guestfwd` to the host's loopback (10.0.2.2 itself cannot carry a `cmd:` forward).
const REGISTRY_GUEST_ADDR: &str = "10.0.2.100:5000";
/// Relays one guest connection to the registry (QEMU runs it per connection): Debian
/// busybox-static's `nc` (installed with the build tools).
const RELAY: &str = "/bin/busybox nc 127.0.0.1";

/// The image under test, from its manifest.
struct Image {
    dir: PathBuf,
    manifest: Manifest,
    kernel: PathBuf,
    /// The unified ovmf-vtpm `OVMF.fd` (its NV volume is the empty variable store).
    firmware: PathBuf,
    /// Its code part (pflash unit 0).
    code: PathBuf,
    /// The image's variable store (pflash unit 1) with the boot option.
    vars: PathBuf,
    disk: PathBuf,
    /// The disk's ESP, as the boot option names it.
    esp: EspPartition,
    /// PCR index → predicted value (sha256 bank).
    reference: ReferencePcrs,
    /// Predicted events (sha256 bank), in log order.
    predicted: Vec<PredictedEvent>,
}

/// One predicted event, as the manifest lists it.
#[derive(Debug, Clone)]
struct PredictedEvent {
    pcr: u32,
    digest: String,
    /// What the event measures (`kernel`, `cmdline`, ...), for mismatch reports.
    what: String,
}

/// What one boot looked like from the host.
struct BootResult {
    outcome: Outcome,
    serial: String,
    /// From starting QEMU to the agent's first message (the boot time that matters).
    first_report: Option<Duration>,
    took: Duration,
}

/// A reader that notes when its first byte arrived.
struct FirstByte<R> {
    inner: R,
    first: Option<Instant>,
}

impl<R: std::io::Read> std::io::Read for FirstByte<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 && self.first.is_none() {
            self.first = Some(Instant::now());
        }
        Ok(n)
    }
}

/// The inputs of one boot (what the tamper cases change).
#[derive(Clone)]
struct BootSetup {
    name: String,
    /// OVMF code (pflash unit 0, read-only).
    code: PathBuf,
    /// The variable store (pflash unit 1); each boot gets a fresh copy.
    vars: PathBuf,
    disk: PathBuf,
    data_disk: Option<PathBuf>,
    /// An image for the agent to pull after the key, and the host port of its registry.
    pull: Option<(cvm_agent::protocol::PullSpec, u16)>,
}

pub fn run(sh: &Shell, flags: &BootTestFlags) -> Result<()> {
    let start = Instant::now();
    let dir = match &flags.out {
        Some(d) => d.clone(),
        None => {
            let spec = cvm_image_spec::ImageSpec::default_spec();
            tools::workspace_root().join("out").join(&spec.image.name)
        }
    };
    let image = load_image(&dir)?;
    let cases: Vec<&str> = if flags.case.is_empty() {
        CASES.to_vec()
    } else {
        for c in &flags.case {
            anyhow::ensure!(CASES.contains(&c.as_str()), "unknown case {c:?}; the cases are {}", CASES.join(", "));
        }
        CASES.iter().copied().filter(|c| flags.case.iter().any(|f| f == c)).collect()
    };
    let work = Path::new(crate::stages::BUILD_ROOT).join("boot-test");
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let _lock = crate::stages::lock("boot-test")?;
    eprintln!(
        "==> boot-test {} ({} reference PCRs: {:?}), cases: {}",
        image.manifest.image.name,
        image.reference.len(),
        image.reference.keys().collect::<Vec<_>>(),
        cases.join(", ")
    );
    let mut verdicts = Vec::new();
    // The good case's data disk is LUKS-formatted; the tamper cases must leave it untouched.
    let data_disk = work.join("data.raw");
    for case in &cases {
        let t = Instant::now();
        tools::stage(&format!("boot-test: case {case}"));
        let res = run_case(sh, &image, case, &work, &data_disk);
        let took = t.elapsed();
        match &res {
            Ok(msg) => eprintln!("    PASS {case} ({:.1}s): {msg}", took.as_secs_f64()),
            Err(e) => eprintln!("    FAIL {case} ({:.1}s): {e:#}", took.as_secs_f64()),
        }
        verdicts.push((case.to_string(), res.map_err(|e| format!("{e:#}")), took));
    }
    eprintln!("==> boot-test summary ({:.0}s):", start.elapsed().as_secs_f64());
    for (case, res, took) in &verdicts {
        match res {
            Ok(m) => eprintln!("    PASS {case:<9} {:>6.1}s  {m}", took.as_secs_f64()),
            Err(e) => eprintln!("    FAIL {case:<9} {:>6.1}s  {}", took.as_secs_f64(), e.lines().next().unwrap_or("")),
        }
    }
    let failed: Vec<&str> = verdicts.iter().filter(|v| v.1.is_err()).map(|v| v.0.as_str()).collect();
    if !failed.is_empty() {
        bail!("boot-test: {} of {} cases failed: {}", failed.len(), verdicts.len(), failed.join(", "));
    }
    Ok(())
}

fn load_image(dir: &Path) -> Result<Image> {
    let path = dir.join(cvm_manifest::FILE_NAME);
    let bytes = std::fs::read(&path)
        .with_context(|| format!("reading {} (run `cargo xtask build-image` first)", path.display()))?;
    let manifest: Manifest =
        serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))?;
    anyhow::ensure!(
        manifest.image.test_image,
        "{}: image {} is not a test image (test_image = false): boot-test uses the mock TEE \
         (swtpm and a test key broker), which only a test image may be tested with",
        path.display(),
        manifest.image.name
    );
    let artefact = |r: &str| -> Result<PathBuf> {
        let a = manifest
            .artefact(r)
            .with_context(|| format!("{}: no artefact with role {r:?}", path.display()))?;
        Ok(dir.join(&a.path))
    };
    let (reference, predicted) = vtpm_prediction(&bytes)
        .with_context(|| format!("{}: the vTPM prediction (`vtpm`)", path.display()))?;
    let disk = artefact(role::DISK)?;
    Ok(Image {
        dir: dir.to_path_buf(),
        kernel: artefact(role::KERNEL)?,
        firmware: artefact(role::OVMF_VTPM)?,
        code: artefact(role::OVMF_VTPM_CODE)?,
        vars: artefact(role::UEFI_VARS)?,
        esp: esp_of(&disk)?,
        disk,
        manifest,
        reference,
        predicted,
    })
}

/// The manifest's vTPM prediction: sha256 PCR values and events.
fn vtpm_prediction(manifest: &[u8]) -> Result<(ReferencePcrs, Vec<PredictedEvent>)> {
    let v: serde_json::Value = serde_json::from_slice(manifest)?;
    let vtpm = v.get("vtpm").context("the manifest has no vTPM prediction")?;
    let pcrs = vtpm
        .pointer("/pcrs/sha256")
        .context("no pcrs.sha256")?;
    let reference = cvm_broker::policy::parse_reference(&pcrs.to_string())?;
    anyhow::ensure!(!reference.is_empty(), "no predicted PCRs");
    let mut predicted = Vec::new();
    for (i, e) in vtpm.get("events").and_then(|e| e.as_array()).into_iter().flatten().enumerate() {
        let pcr = e.get("pcr").and_then(|p| p.as_u64()).with_context(|| format!("events[{i}].pcr"))?;
        let digest = e
            .pointer("/digests/sha256")
            .and_then(|d| d.as_str())
            .with_context(|| format!("events[{i}].digests.sha256"))?;
        let what = ["what", "description", "event_type"]
            .iter()
            .find_map(|k| e.get(*k).and_then(|x| x.as_str()))
            .unwrap_or("?");
        predicted.push(PredictedEvent { pcr: pcr as u32, digest: digest.to_string(), what: what.to_string() });
    }
    Ok((reference, predicted))
}

fn run_case(sh: &Shell, image: &Image, case: &str, work: &Path, data_disk: &Path) -> Result<String> {
    let base = BootSetup {
        name: case.to_string(),
        code: image.code.clone(),
        vars: image.vars.clone(),
        disk: image.disk.clone(),
        data_disk: Some(data_disk.to_path_buf()),
        pull: None,
    };
    let dir = work.join(case);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    match case {
        "good" => {
            let registry = tools::registry::Registry::start(&dir.join("registry"))?;
            let pull = push_test_image(sh, &dir.join("oci"), &registry)?;
            good(sh, image, BootSetup { pull: Some(pull), ..base }, data_disk)
        }
        "rootfs" => {
            let disk = dir.join("disk.raw");
            let at = flip_root_byte(image, &disk)?;
            let r = boot(sh, image, &BootSetup { disk, ..base }, &dir)?;
            expect_verity_refusal(&r, at)
        }
        "cmdline" => {
            let cmdline = format!("{} cvm.tampered=1", image.manifest.cmdline);
            let vars = dir.join("uefi-vars.fd");
            write_vars(&std::fs::read(&image.firmware)?, &image.esp, &cmdline, &vars)?;
            tampered(sh, image, BootSetup { vars, ..base }, &dir, data_disk, "kernel command line")
        }
        "kernel" => {
            let mut k = std::fs::read(&image.kernel).with_context(|| format!("reading {}", image.kernel.display()))?;
            k.extend_from_slice(&[0x5a; 4096]);
            let disk = dir.join("disk.raw");
            disk_with_esp(image, &[EspFile { path: esp::BOOTX64_PATH, contents: &k }], &disk)?;
            tampered(sh, image, BootSetup { disk, ..base }, &dir, data_disk, "kernel")
        }
        "initrd" => {
            // The EFI stub loads `initrd=` files from the ESP: the attacker adds one and names it.
            let k = std::fs::read(&image.kernel).with_context(|| format!("reading {}", image.kernel.display()))?;
            let initrd = extra_initrd();
            let disk = dir.join("disk.raw");
            let files = [
                EspFile { path: esp::BOOTX64_PATH, contents: &k },
                EspFile { path: TAMPER_INITRD_PATH, contents: &initrd },
            ];
            disk_with_esp(image, &files, &disk)?;
            let cmdline = format!("{} initrd=\\{}", image.manifest.cmdline, TAMPER_INITRD_PATH.replace('/', "\\"));
            let vars = dir.join("uefi-vars.fd");
            write_vars(&std::fs::read(&image.firmware)?, &image.esp, &cmdline, &vars)?;
            tampered(sh, image, BootSetup { disk, vars, ..base }, &dir, data_disk, "initrd")
        }
        "firmware" => {
            // Debian trixie's OVMF.fd (pinned fixture O1), also a TPM2-enabled OvmfPkgX64,
            // split into code and a variable store with the image's boot option.
            let o1 = crate::fixtures::run(sh)?.join("O1");
            let fw = std::fs::read(&o1).with_context(|| format!("reading {}", o1.display()))?;
            anyhow::ensure!(
                fw != std::fs::read(&image.firmware)?,
                "{} is identical to the built firmware: not a different firmware",
                o1.display()
            );
            let nv = varstore::nv_volume_len(&fw).with_context(|| format!("{}: the NV volume", o1.display()))?;
            let (code, vars) = (dir.join("OVMF_CODE.fd"), dir.join("uefi-vars.fd"));
            tools::write_atomic(&code, &fw[nv..])?;
            write_vars(&fw, &image.esp, &image.manifest.cmdline, &vars)?;
            tampered(sh, image, BootSetup { code, vars, ..base }, &dir, data_disk, "firmware")
        }
        "signature" => signature_case(image, &dir),
        other => bail!("unknown case {other}"),
    }
}

/// Two boots sharing a fresh data disk: format + marker, then open + marker found.
fn good(sh: &Shell, image: &Image, setup: BootSetup, data_disk: &Path) -> Result<String> {
    let f = std::fs::File::create(data_disk).with_context(|| format!("creating {}", data_disk.display()))?;
    f.set_len(DATA_DISK_BYTES).with_context(|| format!("sizing {}", data_disk.display()))?;
    drop(f);
    let dir = Path::new(crate::stages::BUILD_ROOT).join("boot-test/good");
    let mut took = Vec::new();
    let digest = setup.pull.as_ref().and_then(|p| p.0.image.split_once('@')).map(|(_, d)| d.to_string());
    for (n, expect) in [(1, "luksFormat"), (2, "marker")] {
        let r = boot(sh, image, &BootSetup { name: format!("good boot {n}"), ..setup.clone() }, &dir)?;
        check_good(image, &r).with_context(|| format!("boot {n}"))?;
        let steps = r.outcome.agent_steps.join("\n");
        let wants = [Some(expect), digest.as_deref(), Some(TEST_LAYER_COUNTS), Some("image unpacked: 1 layers")];
        for want in wants.into_iter().flatten() {
            anyhow::ensure!(
                steps.contains(want),
                "boot {n}: the agent never reported a step with {want:?}; its steps:\n{steps}"
            );
        }
        took.push(format!(
            "boot {n}: agent's first report {:.1}s, done {:.1}s",
            r.first_report.map_or(f64::NAN, |d| d.as_secs_f64()),
            r.took.as_secs_f64()
        ));
    }
    Ok(format!(
        "key released twice; LUKS2 data disk formatted on boot 1 and reopened with its marker on boot 2; \
         test image {} pulled onto it from the loopback registry and its layer unpacked ({TEST_LAYER_COUNTS}); event log replays to the reported PCRs; \
         {} predicted PCRs and {} predicted events match ({})",
        digest.as_deref().unwrap_or("-"),
        image.reference.len(),
        image.predicted.len(),
        took.join(", ")
    ))
}

/// Everything a good boot must show.
fn check_good(image: &Image, r: &BootResult) -> Result<()> {
    let o = &r.outcome;
    let ev = o.evidence.as_ref().with_context(|| no_evidence(r))?;
    anyhow::ensure!(o.released, "the broker refused the key: {}", o.refusal.as_deref().unwrap_or("?"));
    anyhow::ensure!(o.agent_done == Some(true), "the agent did not finish ok; errors: {:?}", o.agent_errors);
    let log = parse_log(ev)?;
    check_replay(&log, ev)?;
    if let Some(diff) = first_difference(image, &log, ev) {
        bail!("predicted != measured: {diff}");
    }
    anyhow::ensure!(
        ev.cmdline.as_deref() == Some(image.manifest.cmdline.as_str()),
        "the guest's /proc/cmdline {:?} is not the manifest's {:?}",
        ev.cmdline,
        image.manifest.cmdline
    );
    let root = ev
        .dm_devices
        .iter()
        .find(|d| d.name.as_deref() == Some(crate::stages::rootfs::DM_NAME))
        .context("the agent reported no dm-verity root device")?;
    anyhow::ensure!(
        root.read_check.as_deref().is_some_and(|c| c.starts_with("ok")),
        "the root device did not read back cleanly: {:?}",
        root.read_check
    );
    // cryptsetup's own view (the dm UUID on the command line makes it a VERITY device to it).
    anyhow::ensure!(
        verity_state(root) == Some("verified"),
        "veritysetup status {} in the guest does not say `status: verified`: {:?}",
        crate::stages::rootfs::DM_NAME,
        root.verity_status
    );
    Ok(())
}

/// The `status:` line of `veritysetup status` (`verified`, `corrupted`, ...).
fn verity_state(d: &cvm_agent::protocol::DmDevice) -> Option<&str> {
    d.verity_status.as_deref()?.lines().find_map(|l| l.trim().strip_prefix("status:")).map(str::trim)
}

/// A tampered boot: the key must be refused (with a reason), the prediction must differ
/// from the measurement, and the data disk must stay as it was.
fn tampered(sh: &Shell, image: &Image, setup: BootSetup, dir: &Path, data_disk: &Path, input: &str) -> Result<String> {
    let before = data_disk.exists().then(|| tools::sha256_file(data_disk)).transpose()?;
    let r = boot(sh, image, &setup, dir)?;
    let after = data_disk.exists().then(|| tools::sha256_file(data_disk)).transpose()?;
    let o = &r.outcome;
    let ev = o.evidence.as_ref().with_context(|| no_evidence(&r))?;
    anyhow::ensure!(!o.released, "NOT CAUGHT: the broker released the key to an image with a tampered {input}");
    let refusal = o.refusal.clone().context("the key was not released, but no refusal reason was sent")?;
    anyhow::ensure!(before == after, "the data disk changed although no key was released");
    let log = parse_log(ev)?;
    check_replay(&log, ev)?;
    let diff = first_difference(image, &log, ev).unwrap_or_else(|| "no predicted event differs".into());
    Ok(format!("key refused ({refusal}); {diff}; data disk untouched"))
}

fn expect_verity_refusal(r: &BootResult, offset: u64) -> Result<String> {
    let o = &r.outcome;
    anyhow::ensure!(!o.released, "NOT CAUGHT: the broker released the key to an image with a corrupted root file system");
    let kernel_says = r.serial.lines().find(|l| l.contains("device-mapper: verity") && l.contains("corrupted"));
    let agent_says = o.evidence.iter().flat_map(|e| &e.dm_devices).find_map(|d| {
        let read = d.read_check.as_deref().filter(|c| c.starts_with("error"))?;
        Some(match verity_state(d) {
            Some(state) => format!("{read}; veritysetup status: {state}"),
            None => read.to_string(),
        })
    });
    anyhow::ensure!(
        kernel_says.is_some() || agent_says.is_some(),
        "flipped the byte at root partition offset {offset}, but neither the kernel nor the agent reported \
         dm-verity corruption; serial tail:\n{}",
        tail(&r.serial, 30)
    );
    Ok(format!(
        "flipped byte at root offset {offset}: {}{}; key {}",
        agent_says.map(|a| format!("agent: {a}; ")).unwrap_or_default(),
        kernel_says.map(|k| format!("kernel: {}", k.trim())).unwrap_or_default(),
        o.refusal.as_deref().map(|r| format!("refused ({r})")).unwrap_or_else(|| "never requested".into())
    ))
}

fn signature_case(image: &Image, dir: &Path) -> Result<String> {
    use cvm_manifest::sign::{self, SigningKey};
    let manifest = std::fs::read(image.dir.join(cvm_manifest::FILE_NAME))?;
    let key = SigningKey::generate();
    let vk = key.verifying_key();
    let good = sign::sign(&manifest, cvm_manifest::FILE_NAME, &key).context("signing the manifest")?;
    sign::verify(&good, &manifest, &vk).context("the untampered envelope does not verify")?;
    let mut bad: cvm_manifest::dsse::Envelope = serde_json::from_slice(&good)?;
    let mut sig = bad.signatures[0].sig.clone().into_bytes();
    let i = sig.len() / 2;
    sig[i] = if sig[i] == b'A' { b'B' } else { b'A' };
    bad.signatures[0].sig = String::from_utf8(sig).expect("base64 stays ASCII");
    let bad_bytes = serde_json::to_vec(&bad)?;
    tools::write_atomic(&dir.join("manifest.dsse.tampered.json"), &bad_bytes)?;
    match sign::verify(&bad_bytes, &manifest, &vk) {
        Ok(_) => bail!("NOT CAUGHT: an envelope with a changed signature verified"),
        Err(e) => Ok(format!("an envelope with one changed signature character is rejected: {e}")),
    }
}

/// Boot once with swtpm and serve the agent as the broker.
fn boot(sh: &Shell, image: &Image, s: &BootSetup, dir: &Path) -> Result<BootResult> {
    let start = Instant::now();
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tpm = Swtpm::start(&dir.join("tpm"))?;
    let sock = dir.join("agent.sock");
    let _ = std::fs::remove_file(&sock);
    let listener = UnixListener::bind(&sock).with_context(|| format!("binding {}", sock.display()))?;
    let mut extra = tpm.qemu_args();
    extra.extend([
        "-drive".into(),
        format!("file={},format=raw,if=virtio,readonly=on", s.disk.display()),
    ]);
    if let Some(d) = &s.data_disk {
        extra.extend(["-drive".into(), format!("file={},format=raw,if=virtio", d.display())]);
    }
    if let Some((_, port)) = &s.pull {
        // User networking restricted to one forward: the guest reaches only the registry.
        extra.extend([
            "-netdev".into(),
            format!("user,id=n0,restrict=on,guestfwd=tcp:{REGISTRY_GUEST_ADDR}-cmd:{RELAY} {port}"),
            "-device".into(),
            "virtio-net-pci,netdev=n0".into(),
        ]);
    }
    extra.extend([
        "-chardev".into(),
        format!("socket,id=agent,path={}", sock.display()),
        "-device".into(),
        "virtio-serial-pci,id=vser0".into(),
        "-device".into(),
        format!("virtserialport,bus=vser0.0,chardev=agent,name={}", cvm_agent::protocol::VIRTIO_PORT_NAME),
    ]);
    // A fresh variable store per boot: the firmware writes to it (boot options, console).
    let vars = dir.join("pflash-vars.fd");
    std::fs::copy(&s.vars, &vars).with_context(|| format!("copying {} to {}", s.vars.display(), vars.display()))?;
    let b = qemu::Boot {
        kernel: None,
        initrd: None,
        firmware: None,
        pflash: Some((s.code.clone(), vars)),
        append: String::new(),
        memory_mib: MEMORY_MIB,
        timeout_secs: BOOT_TIMEOUT_SECS,
        extra,
    };
    let serial_log = dir.join("serial.log");
    eprintln!("    {}: booting", s.name);
    let mut child = qemu::spawn(sh, &b, &serial_log)?;
    let broker = Broker {
        reference: image.reference.clone(),
        enrolled_ak: tpm.ak_public.clone(),
        key: data_key(),
        pull: s.pull.as_ref().map(|p| p.0.clone()),
    };
    let qemu_started = Instant::now();
    let served = serve(&listener, &mut child, &broker);
    let status = wait(&mut child, Duration::from_secs(BOOT_TIMEOUT_SECS as u64))?;
    drop(tpm);
    let serial = std::fs::read(&serial_log).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    let (outcome, first) = served.with_context(|| {
        format!("{}: QEMU {status}; serial tail:\n{}", s.name, tail(&serial, 30))
    })?;
    if let Some(ev) = &outcome.evidence {
        // Kept for inspection (and for recording a test vector): the guest's log and PCRs.
        tools::write_atomic(&dir.join("evidence.json"), &serde_json::to_vec_pretty(ev)?)?;
    }
    let first_report = first.map(|t| t.duration_since(qemu_started));
    let took = start.elapsed();
    eprintln!(
        "    {}: QEMU {status} after {:.1}s (agent's first report after {}); key {}",
        s.name,
        took.as_secs_f64(),
        first_report.map_or("-".into(), |d| format!("{:.1}s", d.as_secs_f64())),
        if outcome.released { "released" } else { "not released" }
    );
    Ok(BootResult { outcome, serial, first_report, took })
}

/// Accept the agent's connection (QEMU connects as soon as it starts) and run one broker
/// session; fails if QEMU exits first. Also returns when the agent's first byte arrived.
fn serve(listener: &UnixListener, child: &mut std::process::Child, broker: &Broker) -> Result<(Outcome, Option<Instant>)> {
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let stream = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if let Some(st) = child.try_wait()? {
                    bail!("QEMU exited ({st}) before connecting the agent channel");
                }
                anyhow::ensure!(Instant::now() < deadline, "QEMU did not connect the agent channel within 60 s");
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e).context("accepting the agent channel"),
        }
    };
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(BOOT_TIMEOUT_SECS as u64)))?;
    let mut w = stream.try_clone()?;
    let mut r = BufReader::new(FirstByte { inner: stream, first: None });
    let outcome = cvm_broker::session::serve(broker, &mut r, &mut w)?;
    Ok((outcome, r.get_ref().first))
}

fn wait(child: &mut std::process::Child, limit: Duration) -> Result<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait()? {
            return Ok(st);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Ok(child.wait()?);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What the agent must report unpacking from the test layer (`./` itself is not counted).
const TEST_LAYER_COUNTS: &str = "unpacked: 2 files, 2 dirs, 1 symlinks, 0 whiteouts";

/// Push a small test image (one ustar layer: two files, one in a subdirectory, and a symlink;
/// an OCI image config) to the registry; returns what the agent is asked to pull (by digest) and the registry's port.
fn push_test_image(sh: &Shell, dir: &Path, registry: &tools::registry::Registry) -> Result<(cvm_agent::protocol::PullSpec, u16)> {
    use sha2::{Digest, Sha256};
    let tree = dir.join("layer");
    std::fs::create_dir_all(&tree).with_context(|| format!("creating {}", tree.display()))?;
    std::fs::write(tree.join("hello.txt"), "hello from the cvm boot-test image\n")?;
    // A file in a subdirectory and a symlink, so the agent's unpack has something to do
    // (checked against its log line in `good`: TEST_LAYER_COUNTS).
    std::fs::create_dir_all(tree.join("srv/hello"))?;
    std::fs::write(tree.join("srv/hello/greeting.txt"), "greetings from a subdirectory\n")?;
    let link = tree.join("greeting.txt");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink("srv/hello/greeting.txt", &link)?;
    tools::tar::create(sh, &tree, &dir.join("layer.tar"))?;
    let diff_id = hex::encode(Sha256::digest(std::fs::read(dir.join("layer.tar"))?));
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["sha256:{diff_id}"]}}}}"#
    );
    std::fs::write(dir.join("config.json"), config)?;
    let manifest = tools::registry::oras_push(
        sh,
        dir,
        &format!("{}/cvm-test/hello:v1", registry.addr),
        ("config.json", "application/vnd.oci.image.config.v1+json"),
        ("layer.tar", "application/vnd.oci.image.layer.v1.tar"),
    )?;
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&manifest)));
    let port = registry.addr.rsplit_once(':').and_then(|(_, p)| p.parse().ok()).context("registry address has no port")?;
    Ok((
        cvm_agent::protocol::PullSpec {
            image: format!("{REGISTRY_GUEST_ADDR}/cvm-test/hello@{digest}"),
            registry_url: format!("http://{REGISTRY_GUEST_ADDR}"),
        },
        port,
    ))
}

/// The data-disk key the test broker releases (fixed: the second boot must open the disk).
fn data_key() -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(b"cvm boot-test data-disk key (TEST FIXTURE)").into()
}

fn no_evidence(r: &BootResult) -> String {
    format!(
        "the agent sent no evidence (errors: {:?}); serial tail:\n{}",
        r.outcome.agent_errors,
        tail(&r.serial, 30)
    )
}

fn parse_log(ev: &cvm_agent::protocol::Evidence) -> Result<EventLog> {
    use base64::Engine;
    let b64 = ev.event_log.as_deref().with_context(|| {
        format!("the agent sent no TCG event log (problems: {})", ev.problems.join("; "))
    })?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).context("event log is not base64")?;
    EventLog::parse(&bytes).context("parsing the guest's TCG event log")
}

/// Replaying the event log must give the PCR values the TPM reported (sha256 bank, and
/// sha384 when reported) for the static PCRs 0-15; 16-23 (debug, DRTM/locality) are not
/// extended by the firmware and 17-22 start at all-ones.
fn check_replay(log: &EventLog, ev: &cvm_agent::protocol::Evidence) -> Result<()> {
    use eventlog::alg::{TPM_ALG_SHA256, TPM_ALG_SHA384};
    let banks: [(&str, BTreeMap<u32, Vec<u8>>); 2] = [
        ("sha256", eventlog::replay::replay::<sha2::Sha256>(log, TPM_ALG_SHA256)?),
        ("sha384", eventlog::replay::replay::<sha2::Sha384>(log, TPM_ALG_SHA384)?),
    ];
    let mut checked = 0;
    for (bank, replayed) in &banks {
        let Some(reported) = ev.pcrs.get(*bank) else { continue };
        for (idx, value) in reported.range(0..=15) {
            let want = replayed.get(idx).map(hex::encode).unwrap_or_else(|| "00".repeat(value.len() / 2));
            anyhow::ensure!(
                *value == want,
                "{bank} PCR {idx}: the TPM reports {value}, the event log replays to {want}"
            );
            checked += 1;
        }
    }
    anyhow::ensure!(checked > 0, "the agent reported no PCRs");
    Ok(())
}

/// The first way the measurement differs from the prediction: a PCR value, then the first
/// predicted event (per PCR, in order) whose digest the log does not have at that position.
fn first_difference(image: &Image, log: &EventLog, ev: &cvm_agent::protocol::Evidence) -> Option<String> {
    use eventlog::alg::TPM_ALG_SHA256;
    let reported = ev.pcrs.get("sha256");
    let mut diffs = Vec::new();
    for (idx, want) in &image.reference {
        let got = reported.and_then(|r| r.get(idx));
        if got != Some(want) {
            diffs.push(format!("PCR {idx} is {} (predicted {want})", got.map(String::as_str).unwrap_or("missing")));
        }
    }
    for pcr in image.reference.keys() {
        let measured: Vec<_> = log
            .events
            .iter()
            .filter(|e| e.pcr_index == *pcr && e.event_type != eventlog::event_type::EV_NO_ACTION)
            .collect();
        let predicted: Vec<_> = image.predicted.iter().filter(|p| p.pcr == *pcr).collect();
        for (i, p) in predicted.iter().enumerate() {
            let m = measured.get(i);
            let got = m.and_then(|m| m.digest(TPM_ALG_SHA256)).map(hex::encode);
            if got.as_deref() != Some(p.digest.as_str()) {
                diffs.push(format!(
                    "first differing event: PCR {pcr} event #{} ({}): measured {} {}, predicted {}",
                    i + 1,
                    p.what,
                    m.map(|m| eventlog::event_type::name(m.event_type).unwrap_or("?")).unwrap_or("(none)"),
                    got.unwrap_or_else(|| "-".into()),
                    p.digest
                ));
                break;
            }
        }
        if !predicted.is_empty() && measured.len() != predicted.len() && !diffs.iter().any(|d| d.contains(&format!("PCR {pcr} event"))) {
            diffs.push(format!("PCR {pcr}: {} events measured, {} predicted", measured.len(), predicted.len()));
        }
    }
    (!diffs.is_empty()).then(|| diffs.join("; "))
}

/// Copy the disk and flip one byte in the middle of the root (erofs) partition; returns the
/// offset inside the partition.
fn flip_root_byte(image: &Image, out: &Path) -> Result<u64> {
    use std::io::{Read, Seek, SeekFrom, Write};
    std::fs::copy(&image.disk, out).with_context(|| format!("copying {} to {}", image.disk.display(), out.display()))?;
    let rootfs = image.manifest.artefact(role::ROOTFS).context("no rootfs artefact")?;
    let root_len = rootfs.size;
    // The root partition is partition 2 (cvm_rootfs::disk::verity_image_partitions); read its
    // start from the GPT entry array (LBA 2, 128-byte entries, first LBA at offset 32).
    let mut f = std::fs::OpenOptions::new().read(true).write(true).open(out)?;
    let mut entry = [0u8; 128];
    f.seek(SeekFrom::Start(2 * 512 + 128))?;
    f.read_exact(&mut entry)?;
    let first_lba = u64::from_le_bytes(entry[32..40].try_into().expect("8 bytes"));
    anyhow::ensure!(first_lba > 0, "{}: GPT entry 2 is empty", out.display());
    let offset = root_len / 2;
    let pos = first_lba * 512 + offset;
    let mut b = [0u8; 1];
    f.seek(SeekFrom::Start(pos))?;
    f.read_exact(&mut b)?;
    b[0] ^= 0x01;
    f.seek(SeekFrom::Start(pos))?;
    f.write_all(&b)?;
    Ok(offset)
}

/// Where the `initrd` case puts its initrd on the ESP.
const TAMPER_INITRD_PATH: &str = "EFI/BOOT/TAMPER.IMG";

/// The ESP of `disk` (read from its GPT), as a boot option's device path names it.
fn esp_of(disk: &Path) -> Result<EspPartition> {
    let mut f = std::fs::File::open(disk).with_context(|| format!("opening {}", disk.display()))?;
    let gpt = cvm_rootfs::gpt_read::read(&mut f).with_context(|| format!("reading the GPT of {}", disk.display()))?;
    let e = gpt
        .partitions
        .iter()
        .find(|p| p.type_guid == cvm_rootfs::disk::ESP_TYPE)
        .with_context(|| format!("{}: no EFI system partition", disk.display()))?;
    Ok(EspPartition {
        number: e.index,
        start_lba: e.first_lba,
        size_lba: e.last_lba - e.first_lba + 1,
        guid: EfiGuid(e.unique_guid.to_bytes_le()),
    })
}

/// A variable store from the NV volume of `firmware` with the boot option for `cmdline`.
fn write_vars(firmware: &[u8], esp_part: &EspPartition, cmdline: &str, out: &Path) -> Result<()> {
    let vars = disk_boot::image_varstore(firmware, esp_part, cmdline).context("writing the boot option")?;
    tools::write_atomic(out, &vars)
}

/// A copy of the image's disk whose ESP holds `files` instead (same size, same FAT serial
/// rules as the build).
fn disk_with_esp(image: &Image, files: &[EspFile<'_>], out: &Path) -> Result<()> {
    use std::io::{Seek, SeekFrom, Write};
    let bytes = image.esp.size_lba * 512;
    let config = esp::EspConfig { bytes, source_date_epoch: image.manifest.source_date_epoch.unwrap_or(0) };
    let img = esp::build(files, &config).context("building the tampered ESP")?;
    std::fs::copy(&image.disk, out).with_context(|| format!("copying {} to {}", image.disk.display(), out.display()))?;
    let mut f = std::fs::OpenOptions::new().write(true).open(out)?;
    f.seek(SeekFrom::Start(image.esp.start_lba * 512))?;
    f.write_all(&img).with_context(|| format!("writing the ESP into {}", out.display()))?;
    Ok(())
}

/// A small newc initrd with one harmless file and no `/init` (so the kernel still boots the
/// root file system): its only effect is to be measured.
fn extra_initrd() -> Vec<u8> {
    let mut c = cvm_rootfs::cpio::Writer::default();
    c.entry("cvm-tampered", 0o100644, b"an initrd the image does not have\n", (0, 0));
    c.finish()
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vtpm_prediction_is_read_from_the_manifest() {
        let m = serde_json::json!({"vtpm": {
            "pcrs": {"sha256": {"4": "aa".repeat(32), "9": "bb".repeat(32)}},
            "events": [{"pcr": 4, "digests": {"sha256": "cc".repeat(32)}, "what": "kernel"}]
        }});
        let (r, e) = vtpm_prediction(m.to_string().as_bytes()).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[&9], "bb".repeat(32));
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].what, "kernel");
        assert!(vtpm_prediction(b"{}").is_err());
    }

    #[test]
    fn extra_initrd_has_no_init() {
        let c = extra_initrd();
        let entries = cvm_rootfs::cpio::parse(&c).unwrap();
        assert!(!entries.iter().any(|e| e.name == "init"), "the kernel would run it instead of the rootfs");
        assert!(entries.iter().any(|e| e.name == "cvm-tampered"));
    }
}
