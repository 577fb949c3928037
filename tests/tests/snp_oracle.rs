//! Differential test of the AMD launch digests against sev-snp-measure 0.0.13 (PyPI), called
//! in-process: ONE Python process imports `sevsnpmeasure.guest` and evaluates a JSON list of
//! cases, and each case's result (digest or exception) is compared with `cvm_measurements`.
//!
//! The grid is seeded (override with `CVM_SNP_ORACLE_SEED`) and covers every mode, vCPUs
//! 0..=512, every named CPU type, random signatures and family/model/stepping triples, random
//! guest features, the three VMM types, `--snp-ovmf-hash` seeds, and kernel/initrd/cmdline. It
//! runs on O1, O2, O3 and on every path in `CVM_EXTRA_OVMF` (colon-separated). Debian's OVMF
//! has no kernel-hashes support, so kernel cases there must fail the same way in both tools.

use cvm_measurements::snp::{self, cpu_sig, LaunchParams, SevFirmware, SevHashTable, SevMode, SnpPrepared, VmmType, CPU_TYPES};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The Python side: reads `[case, ...]` as JSON on stdin, prints one JSON result per case.
const DRIVER: &str = r#"
import json, sys, traceback
from sevsnpmeasure import guest, vcpu_types
from sevsnpmeasure.sev_mode import SevMode
from sevsnpmeasure.vmm_types import VMMType
out = []
for c in json.load(sys.stdin):
    try:
        if c["mode"] == "snp:ovmf-hash":
            ld = guest.calc_snp_ovmf_hash(c["ovmf"])
        else:
            sig = c.get("sig")
            if c.get("cpu") is not None:
                sig = vcpu_types.CPU_SIGS[c["cpu"]]
            if c.get("fms") is not None:
                sig = vcpu_types.cpu_sig(*c["fms"])
            ld = guest.calc_launch_digest(SevMode.from_str(c["mode"]), c["vcpus"], sig, c["ovmf"],
                c.get("kernel"), c.get("initrd"), c.get("append"), c["gf"], c.get("seed") or "",
                VMMType[c["vmm"]])
        out.append({"ok": ld.hex()})
    except Exception as e:
        out.append({"err": type(e).__name__, "msg": str(e)})
json.dump(out, sys.stdout)
"#;

/// SplitMix64: a small seeded generator, so a failing case can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

#[derive(Debug, Clone)]
struct Case {
    mode: &'static str,
    ovmf: PathBuf,
    vcpus: u32,
    cpu: Option<&'static str>,
    sig: Option<u64>,
    fms: Option<(u32, u32, u32)>,
    gf: u64,
    vmm: VmmType,
    kernel: Option<PathBuf>,
    initrd: Option<PathBuf>,
    append: Option<String>,
    seed: Option<String>,
}

/// A JSON string literal (hand-written: the tests crate has no serde).
fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

impl Case {
    fn to_json(&self) -> String {
        let path = |p: &Option<PathBuf>| p.as_ref().map_or("null".into(), |p| json_str(&p.to_string_lossy()));
        format!(
            "{{\"mode\":{},\"ovmf\":{},\"vcpus\":{},\"cpu\":{},\"sig\":{},\"fms\":{},\"gf\":{},\"vmm\":{},\"kernel\":{},\"initrd\":{},\"append\":{},\"seed\":{}}}",
            json_str(self.mode),
            json_str(&self.ovmf.to_string_lossy()),
            self.vcpus,
            self.cpu.map_or("null".into(), json_str),
            self.sig.map_or("null".into(), |s| s.to_string()),
            self.fms.map_or("null".into(), |(f, m, s)| format!("[{f},{m},{s}]")),
            self.gf,
            json_str(self.vmm.name()),
            path(&self.kernel),
            path(&self.initrd),
            self.append.as_deref().map_or("null".into(), json_str),
            self.seed.as_deref().map_or("null".into(), json_str),
        )
    }

    /// The same case through the Rust library: `Ok(hex)` or `Err(message)`.
    fn rust(&self, fw_bytes: &[u8]) -> Result<String, String> {
        let fw = SevFirmware::parse(fw_bytes).map_err(|e| e.to_string())?;
        if self.mode == "snp:ovmf-hash" {
            return fw.snp_ovmf_hash().map(hex::encode).map_err(|e| e.to_string());
        }
        let vcpu_sig = match (self.cpu, self.fms, self.sig) {
            (Some(c), _, _) => u64::from(snp::cpu_type(c).expect("known CPU type").sig()),
            (_, Some((f, m, s)), _) => u64::from(cpu_sig(f, m, s)),
            (_, _, s) => s.unwrap_or(0),
        };
        let hashes = match &self.kernel {
            None => None,
            Some(k) => {
                let kernel = std::fs::read(k).unwrap();
                let initrd = self.initrd.as_ref().map(|p| std::fs::read(p).unwrap());
                Some(SevHashTable::from_blobs(&kernel, initrd.as_deref(), self.append.as_deref().map(str::as_bytes)))
            }
        };
        let p = LaunchParams {
            mode: match self.mode {
                "snp" => SevMode::Snp,
                "seves" => SevMode::SevEs,
                _ => SevMode::Sev,
            },
            vcpus: self.vcpus,
            vcpu_sig,
            guest_features: self.gf,
            vmm: self.vmm,
            hashes,
            snp_ovmf_hash: self.seed.as_ref().map(|s| hex::decode(s).unwrap().try_into().unwrap()),
        };
        let res = snp::launch_digest(&fw, &p).map(hex::encode).map_err(|e| e.to_string());
        // The sweep API must agree with the one-shot path.
        if let (Ok(h), SevMode::Snp, Some(seed)) = (&res, p.mode, p.snp_ovmf_hash.or_else(|| fw.snp_ovmf_hash().ok())) {
            if p.vcpus > 0 {
                let prep = SnpPrepared::new(&fw, seed, p.hashes.as_ref(), p.vmm).unwrap();
                let table = prep.sweep(p.vcpus, p.vcpu_sig, p.guest_features).unwrap();
                assert_eq!(&hex::encode(table[p.vcpus as usize - 1]), h, "sweep disagrees with launch_digest: {self:?}");
            }
        }
        res
    }
}

fn firmware_paths() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = ["O1", "O2", "O3"].into_iter().map(cvm_tests::fixture).collect();
    if let Some(extra) = std::env::var_os("CVM_EXTRA_OVMF") {
        v.extend(std::env::split_paths(&extra).filter(|p| !p.as_os_str().is_empty()));
    }
    v
}

/// Small kernel/initrd files in a fresh temp dir (K1 is used for a few cases: it is 11 MB).
fn blobs(dir: &Path, rng: &mut Rng) -> Vec<PathBuf> {
    (0..3)
        .map(|i| {
            let p = dir.join(format!("blob{i}"));
            let len = rng.below(20_000) as usize;
            let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            std::fs::write(&p, data).unwrap();
            p
        })
        .collect()
}

fn random_case(rng: &mut Rng, fws: &[PathBuf], blobs: &[PathBuf], k1: &Path) -> Case {
    let mode = match rng.below(100) {
        0..=59 => "snp",
        60..=84 => "seves",
        85..=96 => "sev",
        _ => "snp:ovmf-hash",
    };
    let vcpus = match rng.below(10) {
        0 => 0,
        1..=5 => 1 + rng.below(8) as u32,
        _ => 1 + rng.below(512) as u32,
    };
    let vmm = [VmmType::Qemu, VmmType::Ec2, VmmType::Gce][rng.below(3) as usize];
    let (mut cpu, mut sig, mut fms) = (None, None, None);
    match rng.below(4) {
        0 | 1 => cpu = Some(CPU_TYPES[rng.below(CPU_TYPES.len() as u64) as usize].name),
        2 => sig = Some(rng.next() & 0xFFFF_FFFF),
        _ => fms = Some((rng.below(0x40) as u32, rng.below(0x100) as u32, rng.below(0x20) as u32)),
    }
    if vmm != VmmType::Qemu && rng.chance(30) {
        (cpu, sig, fms) = (None, None, None);
    }
    let gf = match rng.below(4) {
        0 => 0x1,
        1 => 0x21,
        2 => rng.next() & 0xFFFF,
        _ => rng.next(),
    };
    let (mut kernel, mut initrd, mut append) = (None, None, None);
    if rng.chance(25) {
        kernel = Some(if rng.chance(5) { k1.to_path_buf() } else { blobs[rng.below(3) as usize].clone() });
        if rng.chance(50) {
            initrd = Some(blobs[rng.below(3) as usize].clone());
        }
        if rng.chance(70) {
            append = Some(format!("console=ttyS0 root=/dev/vda{} quiet", rng.below(1000)));
        }
    }
    let seed = (mode == "snp" && rng.chance(15)).then(|| hex::encode((0..48).map(|_| rng.next() as u8).collect::<Vec<_>>()));
    Case { mode, ovmf: fws[rng.below(fws.len() as u64) as usize].clone(), vcpus, cpu, sig, fms, gf, vmm, kernel, initrd, append, seed }
}

/// Run the Python driver over `cases`; one `(ok, err_type, msg)` per case.
fn python(cases: &[Case]) -> Vec<Result<String, (String, String)>> {
    let py = cvm_tests::oracle("python3");
    let mut child = Command::new(&py)
        .args(["-c", DRIVER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", py.display()));
    let input = format!("[{}]", cases.iter().map(Case::to_json).collect::<Vec<_>>().join(","));
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python driver failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    parse_results(&text)
}

/// Parse the driver's output: a list of `{"ok": hex}` / `{"err": T, "msg": M}` objects.
fn parse_results(text: &str) -> Vec<Result<String, (String, String)>> {
    // Minimal JSON reading for this fixed shape (strings only, escapes as json.dump writes).
    let mut res = Vec::new();
    let mut strings = Vec::new();
    let mut chars = text.chars().peekable();
    let mut depth_objects = Vec::new();
    while let Some(c) = chars.next() {
        match c {
            '{' => strings.clear(),
            '"' => {
                let mut s = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => match chars.next() {
                            Some('n') => s.push('\n'),
                            Some('t') => s.push('\t'),
                            Some('u') => {
                                let h: String = chars.by_ref().take(4).collect();
                                s.push(char::from_u32(u32::from_str_radix(&h, 16).unwrap()).unwrap_or('?'));
                            }
                            Some(o) => s.push(o),
                            None => break,
                        },
                        o => s.push(o),
                    }
                }
                strings.push(s);
            }
            '}' => {
                depth_objects.push(strings.clone());
            }
            _ => {}
        }
    }
    for kv in depth_objects {
        match kv.as_slice() {
            [k, v] if k == "ok" => res.push(Ok(v.clone())),
            [k, t, m, msg] if k == "err" && m == "msg" => res.push(Err((t.clone(), msg.clone()))),
            other => panic!("unexpected driver output object {other:?}"),
        }
    }
    res
}

#[test]
fn random_grid_matches_sev_snp_measure() {
    let seed = std::env::var("CVM_SNP_ORACLE_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5EED_0013);
    let n: usize = std::env::var("CVM_SNP_ORACLE_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(400);
    let mut rng = Rng(seed);
    let dir = std::env::temp_dir().join(format!("cvm-snp-oracle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fws = firmware_paths();
    let blobs = blobs(&dir, &mut rng);
    let k1 = cvm_tests::fixture("K1");
    let cases: Vec<Case> = (0..n).map(|_| random_case(&mut rng, &fws, &blobs, &k1)).collect();
    let py = python(&cases);
    assert_eq!(py.len(), cases.len());
    let fw_bytes: Vec<(PathBuf, Vec<u8>)> = fws.iter().map(|p| (p.clone(), std::fs::read(p).unwrap())).collect();
    let (mut agree_ok, mut agree_err, mut failures) = (0, 0, Vec::new());
    for (i, (c, want)) in cases.iter().zip(&py).enumerate() {
        let bytes = &fw_bytes.iter().find(|(p, _)| *p == c.ovmf).unwrap().1;
        let got = c.rust(bytes);
        match (&got, want) {
            (Ok(g), Ok(w)) if g == w => agree_ok += 1,
            // sev-snp-measure's RuntimeErrors are user-facing: the message must match too.
            (Err(g), Err((t, m))) if t != "RuntimeError" || g == m => agree_err += 1,
            _ => failures.push(format!("case {i} {c:?}\n  rust:   {got:?}\n  python: {want:?}")),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("seed {seed:#x}: {agree_ok} digests and {agree_err} refusals agree over {} firmware files", fws.len());
    assert!(failures.is_empty(), "{} of {n} cases differ (seed {seed:#x}):\n{}", failures.len(), failures.join("\n"));
    // The grid must exercise both outcomes, or it proves little.
    assert!(agree_ok > n / 2 && agree_err > 0, "grid degenerate: {agree_ok} ok, {agree_err} errors");
}
