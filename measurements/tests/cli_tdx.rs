//! `cvm-measure tdx` as a process: the design note §5.2 vectors (O1 = Debian trixie OVMF.fd,
//! K1 = Debian 6.12.107 cloud vmlinuz, 1 MiB zero initrd, the s1m2048 ACPI capture), memory
//! spellings, exit 2 on unreadable inputs, `--event-log-out` → `tdx replay` and `explain`.
//!
//! Lives in the `cvm-measure` package so that cargo builds the binary for it. Needs
//! `CVM_FIXTURES`, as set by `cargo xtask test`.

use std::path::PathBuf;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_cvm-measure");
const ACPI_S1M2048: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/vectors/acpi/s1m2048"
);
const CMDLINE: &str = "console=ttyS0 root=/dev/vda1 ro";

// §5.2, trixie OVMF.fd, 1 vCPU, 2 GiB, QEMU 9.x (setup-header patch) model.
const MRTD: &str = "bdc6fb145880f06f30c8b346b8dce2a99d9351b56892df22f80fcf6574caa9f9c31df8e8576d53b4d0cd1c3f28910e11";
const RTMR0: &str = "6f8dbf0f6df2bfb5cb33a71b1488a1fd4004dfc7546bb70450e0a65cec85e64c5c0f5e8e51705886885a185e798d4e65";
const RTMR1: &str = "97a4f58113dea6e39c3121f409b15bf0773a39496ad3de25f904610075486e888a92f5e3a62bd72bdbe15558b7a5c440";
const RTMR2: &str = "3efe59620d09ec4ba38cab9dc7f7b33a0f9497cb6258ecf8ece5f5891e10c5a3c1942749df3716f06e8e30bc24816919";

fn fixture(id: &str) -> String {
    let dir = std::env::var_os("CVM_FIXTURES").unwrap_or_else(|| {
        panic!("CVM_FIXTURES is not set: run the suite with `cargo xtask test`")
    });
    let p = PathBuf::from(dir).join(id);
    assert!(
        p.exists(),
        "fixture {id} missing at {}: run `cargo xtask fixtures`",
        p.display()
    );
    p.to_string_lossy().into_owned()
}

/// A per-test scratch directory under the target dir.
fn scratch(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("cli_tdx-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The §5.2 initrd: 1 MiB of zero bytes.
fn zero_initrd(dir: &std::path::Path) -> String {
    let p = dir.join("initrd");
    std::fs::write(&p, vec![0u8; 1 << 20]).unwrap();
    p.to_string_lossy().into_owned()
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("spawning cvm-measure")
}

fn measure(memory: &str, firmware: &str, initrd: &str, cmdline: &str, extra: &[&str]) -> Output {
    let k1 = fixture("K1");
    let mut argv = vec![
        "tdx",
        "--firmware",
        firmware,
        "--cpus",
        "1",
        "--memory",
        memory,
        "--kernel",
        &k1,
        "--initrd",
        initrd,
        "--cmdline",
        cmdline,
        "--acpi-dir",
        ACPI_S1M2048,
        // The §5.2 vectors are the setup-header patch model: QEMU 9.x, which has no
        // etc/boot/kernel (a later --qemu-version in `extra` overrides it).
        "--qemu-version",
        "9.2",
    ];
    argv.extend_from_slice(extra);
    run(&argv)
}

/// Debian sid's edk2-stable202608 `OVMF.fd` (kept with the vTPM vector that booted it),
/// decompressed into `dir`.
fn sid_firmware(dir: &std::path::Path) -> String {
    let xz = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/vtpm/debian-sid-ovmf-2026.08/OVMF.fd.xz"
    ))
    .unwrap();
    let mut fw = Vec::new();
    lzma_rs::xz_decompress(&mut &xz[..], &mut fw).unwrap();
    let path = dir.join("sid-OVMF.fd");
    std::fs::write(&path, &fw).unwrap();
    path.to_str().unwrap().to_string()
}

/// `cvm-measure tdx` on the §5.2 inputs with `firmware`, QEMU 9.2 unless `extra` says
/// otherwise, and its cache in `cache` (XDG_CACHE_HOME).
fn measure_cached(cache: &std::path::Path, firmware: &str, initrd: &str, extra: &[&str]) -> Output {
    let k1 = fixture("K1");
    Command::new(BIN)
        .args(["tdx", "--firmware", firmware, "--cpus", "1", "--memory", "2G", "--kernel", &k1])
        .args(["--initrd", initrd, "--cmdline", CMDLINE, "--acpi-dir", ACPI_S1M2048, "--json"])
        .args(["--qemu-version", "9.2"])
        .args(extra)
        .env("XDG_CACHE_HOME", cache)
        .output()
        .expect("spawning cvm-measure")
}

fn ok_stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "cvm-measure failed ({:?}): {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn json_matches_design_note_vectors_and_memory_spellings_agree() {
    let dir = scratch("json");
    let initrd = zero_initrd(&dir);
    let o1 = fixture("O1");
    let out = ok_stdout(&measure("2048M", &o1, &initrd, CMDLINE, &["--json"]));
    let v: serde_json::Value =
        serde_json::from_str(out.trim()).expect("--json prints one JSON object");
    assert_eq!(v["mrtd"], MRTD);
    assert_eq!(v["rtmr0"], RTMR0);
    assert_eq!(v["rtmr1"], RTMR1);
    assert_eq!(v["rtmr2"], RTMR2);
    assert_eq!(v["rtmr3"], "0".repeat(96));
    let out_2g = ok_stdout(&measure("2G", &o1, &initrd, CMDLINE, &["--json"]));
    assert_eq!(
        out, out_2g,
        "--memory 2048M and 2G must give the same output"
    );
}

#[test]
fn truncated_or_missing_firmware_exits_2_with_a_message() {
    let dir = scratch("bad");
    let initrd = zero_initrd(&dir);
    let full = std::fs::read(fixture("O1")).unwrap();
    let truncated = dir.join("OVMF-truncated.fd");
    std::fs::write(&truncated, &full[..full.len() / 3]).unwrap();
    let o = measure(
        "2G",
        truncated.to_str().unwrap(),
        &initrd,
        CMDLINE,
        &["--json"],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "truncated firmware: stderr {err}");
    assert!(o.stdout.is_empty(), "nothing on stdout on failure");
    assert!(
        err.starts_with("Error: ") && err.trim().len() > "Error: ".len() + 10,
        "unclear message: {err}"
    );

    let missing = dir.join("does-not-exist.fd");
    let o = measure(
        "2G",
        missing.to_str().unwrap(),
        &initrd,
        CMDLINE,
        &["--json"],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "missing firmware: stderr {err}");
    assert!(o.stdout.is_empty());
    assert!(
        err.contains("does-not-exist.fd"),
        "message must name the missing file: {err}"
    );
}

#[test]
fn event_log_replays_and_explain_names_rtmr2() {
    let dir = scratch("log");
    let initrd = zero_initrd(&dir);
    let o1 = fixture("O1");
    let log_a = dir.join("a.ccel");
    let log_b = dir.join("b.ccel");
    let pred = ok_stdout(&measure(
        "2G",
        &o1,
        &initrd,
        CMDLINE,
        &["--json", "--event-log-out", log_a.to_str().unwrap()],
    ));
    let pred: serde_json::Value = serde_json::from_str(pred.trim()).unwrap();

    let replay = ok_stdout(&run(&[
        "tdx",
        "replay",
        "--event-log",
        log_a.to_str().unwrap(),
        "--json",
    ]));
    let replay: serde_json::Value = serde_json::from_str(&replay).expect("replay --json");
    for i in 0..4 {
        assert_eq!(
            replay["rtmr"][i],
            pred[format!("rtmr{i}")],
            "replayed RTMR{i} differs from the prediction"
        );
    }

    ok_stdout(&measure(
        "2G",
        &o1,
        &initrd,
        "console=ttyS0 root=/dev/vda2 ro",
        &["--event-log-out", log_b.to_str().unwrap()],
    ));
    let o = run(&["explain", log_a.to_str().unwrap(), log_b.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(1),
        "logs differ: explain must exit 1; stdout {text}"
    );
    assert!(
        text.lines().any(|l| l == "RTMR2: DIFFERENT"),
        "explain must name RTMR2 as different: {text}"
    );
    for r in ["RTMR0", "RTMR1", "RTMR3"] {
        assert!(
            !text.lines().any(|l| l == format!("{r}: DIFFERENT")),
            "only RTMR2 should differ: {text}"
        );
    }
}

/// The QEMU the vectors in shared/vectors/acpi were captured with (README there).
const VECTOR_QEMU: &str = "QEMU emulator version 10.0.13 (Debian 1:10.0.13+ds-0+deb13u1)";

fn find_qemu() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("qemu-system-x86_64"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("qemu-system-x86_64 not on PATH: run `cargo xtask install test` (qemu-system-x86 from trixie)")
        })
}

/// `tdx --json` for the §5.2 s1m2048 shape (1 vCPU, 2 GiB) and payload (`k1`, the zero
/// `initrd`, CMDLINE), its ACPI tables captured by `qemu`.
fn qemu_argv<'a>(o1: &'a str, k1: &'a str, initrd: &'a str, qemu: &'a str) -> Vec<&'a str> {
    vec![
        "tdx",
        "--firmware",
        o1,
        "--cpus",
        "1",
        "--memory",
        "2048M",
        "--kernel",
        k1,
        "--initrd",
        initrd,
        "--cmdline",
        CMDLINE,
        "--qemu",
        qemu,
        "--json",
    ]
}

#[test]
fn qemu_capture_matches_vectors_and_is_cached() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("qemu");
    let initrd = zero_initrd(&dir);
    let real = find_qemu();
    // A wrapper that logs every invocation, so the test can tell whether a VM was started.
    let log = dir.join("qemu-invocations.log");
    let wrapper = dir.join("qemu-wrapper");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\nexec '{}' \"$@\"\n",
            log.display(),
            real.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cache = dir.join("xdg-cache");
    let _ = std::fs::remove_dir_all(&cache);
    let (k1, o1) = (fixture("K1"), fixture("O1"));
    let argv = qemu_argv(&o1, &k1, &initrd, wrapper.to_str().unwrap());
    let run_cached = || {
        Command::new(BIN)
            .args(&argv)
            .env("XDG_CACHE_HOME", &cache)
            .output()
            .unwrap()
    };

    let first = run_cached();
    let out1 = ok_stdout(&first);
    let v: serde_json::Value = serde_json::from_str(out1.trim()).unwrap();
    let vm_starts = |log: &str| log.lines().filter(|l| !l.contains("--version")).count();
    let log1 = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        vm_starts(&log1),
        1,
        "first run must start QEMU once: {log1}"
    );

    // The capture directory: one entry under cvm-image/acpi, with argv.json beside the blobs.
    let root = cache.join("cvm-image/acpi");
    let entries: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let cap = &entries[0];
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cap.join("argv.json")).unwrap()).unwrap();
    let version = meta["version"].as_str().unwrap().to_string();
    let vec_dir = PathBuf::from(ACPI_S1M2048);
    let read = |d: &std::path::Path, f: &str| std::fs::read(d.join(f)).unwrap();
    if version == VECTOR_QEMU {
        for f in ["table-loader", "rsdp", "tables"] {
            assert!(
                read(cap, f) == read(&vec_dir, f),
                "{f} differs from shared/vectors/acpi/s1m2048"
            );
        }
        assert_eq!(v["rtmr0"], RTMR0);
    } else {
        // Another QEMU: the blobs may legitimately differ; check only their shape.
        eprintln!("installed {version} is not the vectors' {VECTOR_QEMU}: comparing shapes only");
        assert_eq!(read(cap, "table-loader").len(), 4096);
        assert_eq!(&read(cap, "rsdp")[..8], b"RSD PTR ");
        assert!(v["rtmr0"].as_str().is_some_and(|r| r.len() == 96));
    }
    assert_eq!(v["mrtd"], MRTD);

    let second = run_cached();
    assert_eq!(
        ok_stdout(&second),
        out1,
        "cached capture must give the same output"
    );
    let log2 = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        vm_starts(&log2),
        1,
        "second run must not start QEMU (only `--version`): {log2}"
    );
    assert!(String::from_utf8_lossy(&second.stderr).contains("ACPI capture: cached"));

    // An entry made before the SMBIOS files were captured is captured again, in place.
    std::fs::remove_file(cap.join("smbios-tables")).unwrap();
    let third = run_cached();
    assert_eq!(ok_stdout(&third), out1);
    assert_eq!(vm_starts(&std::fs::read_to_string(&log).unwrap()), 2, "recaptured once");
    assert!(cap.join("smbios-tables").is_file());
}

/// The other §5.2 ACPI shapes (sha256 of table-loader, rsdp, tables as listed in the design
/// note; captured there with Debian QEMU 10.0.13): our `--qemu` capture of each shape must give
/// the same bytes, so the 2-vCPU and 3/4 GiB shapes are covered by the capture path too.
#[test]
fn qemu_capture_of_other_shapes_matches_the_design_note_hashes() {
    use sha2::{Digest, Sha256};
    const LOADER_1: &str = "544863f3252833eeb36821f29dea77a3b23cc7a2005c1cd8e61828528ef914f6";
    const RSDP_1: &str = "1b03c16d9cb00c405ceeb96e6babc8cd2757d7ab94ff0341d12c196f727d4024";
    const LOADER_2: &str = "ddb65b6661617101902ceef5ea3e7aacd64fb4d3c7ba1fe1e706e05e3e875520";
    const RSDP_2: &str = "65e02049cc669e634bb7156bf647a238e11c9bbfaf83f109ad246b50bbba6de8";
    let shapes = [
        ("1", "1G", LOADER_1, RSDP_1, "16f07559b05b338d110b7f3faa3bf42481ddee0b55a9c93b0a5467ac641be82c"),
        ("1", "3G", LOADER_1, RSDP_1, "e544dbcface94b6d09f77c477e4d70ce436d7e4834f5cd0343d65b3048c4aae9"),
        ("1", "4G", LOADER_1, RSDP_1, "d924eacb7219e0c63c61be0ae104b63a9ef812c7f2afaa8b7050394ac5d0dcf5"),
        ("2", "2G", LOADER_2, RSDP_2, "c27173ffc280e60241e230f97de35a34a4ce07a3b548b515a27583ad5f50d9c1"),
        ("2", "4G", LOADER_2, RSDP_2, "3a54379a675a7d116f2bdc533876775323520f836183e033e1d5c7344bd1cd56"),
    ];
    let dir = scratch("qemu-shapes");
    let initrd = zero_initrd(&dir);
    let (k1, o1, qemu) = (fixture("K1"), fixture("O1"), find_qemu());
    let sha = |p: &std::path::Path| hex::encode(Sha256::digest(std::fs::read(p).unwrap()));
    for (cpus, mem, loader, rsdp, tables) in shapes {
        let cache = dir.join(format!("cache-{cpus}-{mem}"));
        let _ = std::fs::remove_dir_all(&cache);
        let out = Command::new(BIN)
            .args(["tdx", "--firmware", &o1, "--cpus", cpus, "--memory", mem, "--kernel", &k1, "--initrd", &initrd])
            .args(["--cmdline", CMDLINE, "--qemu", qemu.to_str().unwrap(), "--json"])
            .env("XDG_CACHE_HOME", &cache)
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(ok_stdout(&out).trim()).unwrap();
        assert_eq!(v["mrtd"], MRTD);
        let cap = std::fs::read_dir(cache.join("cvm-image/acpi")).unwrap().next().unwrap().unwrap().path();
        let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(cap.join("argv.json")).unwrap()).unwrap();
        if meta["version"].as_str() != Some(VECTOR_QEMU) {
            eprintln!("installed {} is not the vectors' {VECTOR_QEMU}: skipping the hash comparison for s{cpus} {mem}", meta["version"]);
            continue;
        }
        let got = (sha(&cap.join("table-loader")), sha(&cap.join("rsdp")), sha(&cap.join("tables")));
        assert_eq!(got, (loader.into(), rsdp.into(), tables.into()), "ACPI capture for {cpus} vCPU, {mem}");
    }
}

/// `--machine` is the capture's `-machine` argument: the default, implicit or spelt out, is the
/// §5.2 shape (one cache entry, the s1m2048 vector on the vectors' QEMU); `hpet=on` is another
/// capture whose tables gain an HPET, so RTMR0 differs while MRTD and RTMR1-3 do not.
#[test]
fn qemu_capture_follows_machine() {
    let dir = scratch("machine");
    let initrd = zero_initrd(&dir);
    let (k1, o1, qemu) = (fixture("K1"), fixture("O1"), find_qemu());
    let cache = dir.join("xdg");
    let _ = std::fs::remove_dir_all(&cache);
    let measure_with = |machine: Option<&str>| {
        let mut c = Command::new(BIN);
        c.args(qemu_argv(&o1, &k1, &initrd, qemu.to_str().unwrap()))
            .env("XDG_CACHE_HOME", &cache);
        if let Some(m) = machine {
            c.args(["--machine", m]);
        }
        let o = c.output().unwrap();
        let v: serde_json::Value = serde_json::from_str(ok_stdout(&o).trim()).unwrap();
        (v, String::from_utf8_lossy(&o.stderr).into_owned())
    };
    // The capture directory whose argv.json has this -machine argument, and its QEMU version.
    let capture_of = |machine: &str| {
        let root = cache.join("cvm-image/acpi");
        let found: Vec<(PathBuf, String)> = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter_map(|d| {
                let meta: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(d.join("argv.json")).ok()?).ok()?;
                (meta["argv"][0] == "-machine" && meta["argv"][1] == machine)
                    .then(|| (d, meta["version"].as_str().unwrap().to_string()))
            })
            .collect();
        assert_eq!(
            found.len(),
            1,
            "one capture for -machine {machine} in {}",
            root.display()
        );
        found.into_iter().next().unwrap()
    };
    let has_hpet = |d: &std::path::Path| {
        std::fs::read(d.join("tables"))
            .unwrap()
            .windows(4)
            .any(|w| w == b"HPET")
    };

    let (default, _) = measure_with(None);
    let (spelt, err) = measure_with(Some("q35,smm=off,pic=off,hpet=off"));
    assert_eq!(
        spelt, default,
        "--machine spelling out the default changes nothing"
    );
    assert!(
        err.contains("ACPI capture: cached"),
        "the default's cache entry is reused: {err}"
    );
    let (hpet, err) = measure_with(Some("q35,smm=off,pic=off,hpet=on"));
    assert!(
        err.contains("ACPI capture: ran"),
        "hpet=on is a new capture: {err}"
    );

    let (off_dir, version) = capture_of("q35,smm=off,pic=off,hpet=off");
    let (on_dir, _) = capture_of("q35,smm=off,pic=off,hpet=on");
    assert!(!has_hpet(&off_dir), "hpet=off tables have no HPET");
    assert!(
        has_hpet(&on_dir),
        "hpet=on tables have an HPET: the flag reached QEMU"
    );
    assert_ne!(
        std::fs::read(off_dir.join("tables")).unwrap(),
        std::fs::read(on_dir.join("tables")).unwrap()
    );
    assert_ne!(
        hpet["rtmr0"], default["rtmr0"],
        "other ACPI tables, other RTMR0"
    );
    for r in ["mrtd", "rtmr1", "rtmr2", "rtmr3"] {
        assert_eq!(hpet[r], default[r], "{r} does not depend on ACPI");
    }
    assert_eq!(default["mrtd"], MRTD);
    if version == VECTOR_QEMU {
        assert_eq!(
            default["rtmr0"], RTMR0,
            "the default is the §5.2 s1m2048 shape"
        );
        for f in ["table-loader", "rsdp", "tables"] {
            assert!(
                std::fs::read(off_dir.join(f)).unwrap()
                    == std::fs::read(PathBuf::from(ACPI_S1M2048).join(f)).unwrap(),
                "{f} differs from shared/vectors/acpi/s1m2048"
            );
        }
    } else {
        eprintln!(
            "installed {version} is not the vectors' {VECTOR_QEMU}: not comparing with s1m2048"
        );
    }
}

/// Invalid `--machine` values are refused by argument parsing (exit 2, the message names
/// `--machine` and the reason) before any input is read or QEMU runs; `--machine` with
/// `--acpi-dir` is refused too (it would be ignored).
#[test]
fn invalid_machine_is_refused_naming_the_flag() {
    let base = [
        "tdx",
        "--firmware",
        "/nonexistent/OVMF.fd",
        "--cpus",
        "1",
        "--memory",
        "2G",
        "--kernel",
        "/nonexistent/bzImage",
        "--json",
    ];
    for (bad, why) in [
        ("", "empty"),
        ("q35 hpet=on", "whitespace"),
        ("q35,accel=kvm", "TCG"),
        ("q35,,hpet=on", "empty option"),
        ("q35,hpet", "KEY=VALUE"),
        ("pc,hpet=off", "not q35"),
        ("q35,confidential-guest-support=tdx0", "TDX object"),
    ] {
        let mut argv = base.to_vec();
        argv.extend(["--qemu", "/nonexistent/qemu", "--machine", bad]);
        let o = run(&argv);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "--machine {bad:?}: {err}");
        assert!(o.stdout.is_empty());
        assert!(
            err.contains("--machine") && err.contains(why),
            "--machine {bad:?}: {err}"
        );
        assert!(
            !err.contains("nonexistent"),
            "refused before reading inputs: {err}"
        );
    }
    let mut argv = base.to_vec();
    argv.extend(["--acpi-dir", ACPI_S1M2048, "--machine", "q35,hpet=on"]);
    let o = run(&argv);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--machine") && err.contains("--acpi-dir"),
        "{err}"
    );
}

/// QEMU 10.0: the firmware probe (does O1 read `etc/boot/kernel`? yes) decides RTMR1, and its
/// answer is cached per firmware sha256: the first run writes "1" and gives 10.1's RTMR1; an
/// entry saying "0" is believed (and gives 9.2's patched RTMR1); a garbled one is re-probed.
#[test]
fn qemu_10_0_firmware_probe_is_cached_per_firmware() {
    let dir = scratch("probe");
    let initrd = zero_initrd(&dir);
    let o1 = fixture("O1");
    let cache = dir.join("xdg");
    let _ = std::fs::remove_dir_all(&cache);
    let rtmr1 = |version: &str| {
        let out = Command::new(BIN)
            .args(["tdx", "--firmware", &o1, "--cpus", "1", "--memory", "2G", "--kernel", &fixture("K1")])
            .args(["--initrd", &initrd, "--cmdline", CMDLINE, "--acpi-dir", ACPI_S1M2048, "--json"])
            .args(["--qemu-version", version])
            .env("XDG_CACHE_HOME", &cache)
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(ok_stdout(&out).trim()).unwrap();
        v["rtmr1"].as_str().unwrap().to_string()
    };
    let entry = cache
        .join("cvm-image/firmware-named-blobs")
        .join(format!("mrtd-{MRTD}"));
    let (patched, unpatched) = (rtmr1("9.2"), rtmr1("10.1"));
    assert_eq!(patched, RTMR1);
    assert_ne!(patched, unpatched);
    assert!(!entry.exists(), "no probe for 9.2 or 10.1");
    assert_eq!(rtmr1("10.0"), unpatched);
    assert_eq!(std::fs::read(&entry).unwrap(), b"1");
    std::fs::write(&entry, "0").unwrap();
    assert_eq!(rtmr1("10.0"), patched, "the cached answer is used");
    std::fs::write(&entry, "garbage").unwrap();
    assert_eq!(rtmr1("10.0"), unpatched);
    assert_eq!(std::fs::read(&entry).unwrap(), b"1", "a garbled entry is re-probed and rewritten");
}

/// The edk2 ≥ stable202505 model, on Debian sid's 2026.08 firmware: refused without the
/// SMBIOS digest when the ACPI directory has no SMBIOS files to derive it from; with it, MRTD and
/// RTMR1-3 are those of the pre-202505 model, and RTMR0 is the replay of the event list that a
/// public TDX measurement tool uses for these firmwares (its layout and its published
/// Boot0000/Boot0001 digests, rebuilt here by hand from our pre-202505 events), and the
/// predicted CCEL replays to the same registers.
#[test]
fn stable202505_model_needs_the_smbios_digest_and_follows_the_published_layout() {
    use sha2::{Digest, Sha384};
    let dir = scratch("s202505");
    let initrd = zero_initrd(&dir);
    let o1 = sid_firmware(&dir);
    let smbios = "ab".repeat(48);
    let out = measure("2G", &o1, &initrd, CMDLINE, &["--ovmf-model", "stable202505"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--smbios-digest"));
    let out = measure("2G", &o1, &initrd, CMDLINE, &["--smbios-digest", &smbios]);
    assert_eq!(out.status.code(), Some(2), "a digest for a model that does not use it");
    let out = measure("2G", &o1, &initrd, CMDLINE, &["--ovmf-model", "stable202505", "--smbios-digest", "abcd"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("48 bytes"));

    let old_log = dir.join("old.json");
    let old: serde_json::Value = serde_json::from_str(
        ok_stdout(&measure("2G", &o1, &initrd, CMDLINE, &["--json", "--event-log-json", old_log.to_str().unwrap()])).trim(),
    )
    .unwrap();
    let ccel = dir.join("new.ccel");
    let new: serde_json::Value = serde_json::from_str(
        ok_stdout(&measure(
            "2G",
            &o1,
            &initrd,
            CMDLINE,
            &["--json", "--ovmf-model", "stable202505", "--smbios-digest", &smbios, "--event-log-out", ccel.to_str().unwrap()],
        ))
        .trim(),
    )
    .unwrap();
    for r in ["mrtd", "rtmr1", "rtmr2", "rtmr3"] {
        assert_eq!(new[r], old[r], "{r}");
    }
    assert_ne!(new["rtmr0"], old["rtmr0"]);

    // RTMR0 by hand: HOB, CFV, fw_cfg BootMenu (00 00), fw_cfg bootorder, the 5 Secure Boot
    // variables, separator, 3 ACPI blobs (all but the fw_cfg ones taken from the old log),
    // SMBIOS, BootOrder 00 00 01 00, Boot0000, Boot0001.
    let old_events: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&old_log).unwrap()).unwrap();
    let rtmr0_old: Vec<Vec<u8>> = old_events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["rtmr"] == 0)
        .map(|e| hex::decode(e["digest"].as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(rtmr0_old.len(), 13);
    let mut digests: Vec<Vec<u8>> = rtmr0_old[..2].to_vec();
    digests.push(Sha384::digest([0u8, 0]).to_vec());
    digests.push(Sha384::digest(b"/rom@genroms/linuxboot_dma.bin\0").to_vec());
    digests.extend_from_slice(&rtmr0_old[2..11]);
    digests.push(hex::decode(&smbios).unwrap());
    digests.push(Sha384::digest([0u8, 0, 1, 0]).to_vec());
    digests.push(hex::decode("5068e6a9ded2a1c3a8ebb5d26004410ea8670742d8f444c5c3d161b76c66fa23a7b1d2fb3f9840570b675384b5818f2d").unwrap());
    digests.push(hex::decode("dd424f2eeb35f3e8a2c2f50f6cc87ff90b7577e92ce63e13a22869d07d104fd5ea9800e6e4f12c5058fc4eaa78374f20").unwrap());
    assert_eq!(digests.len(), 17);
    let mut rtmr0 = vec![0u8; 48];
    for d in &digests {
        let mut h = Sha384::new();
        h.update(&rtmr0);
        h.update(d);
        rtmr0 = h.finalize().to_vec();
    }
    assert_eq!(new["rtmr0"].as_str().unwrap(), hex::encode(rtmr0));

    let replay: serde_json::Value = serde_json::from_str(&ok_stdout(&run(&[
        "tdx",
        "replay",
        "--event-log",
        ccel.to_str().unwrap(),
        "--json",
    ])))
    .unwrap();
    for i in 0..4 {
        assert_eq!(replay["rtmr"][i], new[format!("rtmr{i}")], "rtmr{i}");
    }
}

/// `--ovmf-model auto` picks pre202505 for Debian trixie's 2025.02 firmware and stable202505
/// for Debian sid's 2026.08 one (it carries SmbiosMeasurementDxe), where it then needs the
/// SMBIOS digest; each answer is cached per firmware.
#[test]
fn auto_model_tells_the_two_generations_apart() {
    let dir = scratch("auto");
    let initrd = zero_initrd(&dir);
    let cache = dir.join("xdg");
    let _ = std::fs::remove_dir_all(&cache);
    let sid_path = sid_firmware(&dir);
    let o1 = fixture("O1");
    let smbios = "cd".repeat(48);
    let with_cache = |firmware: &str, extra: &[&str]| measure_cached(&cache, firmware, &initrd, extra);
    assert_eq!(
        ok_stdout(&with_cache(&o1, &["--ovmf-model", "auto"])),
        ok_stdout(&with_cache(&o1, &[])),
        "O1 is pre-202505"
    );
    let out = with_cache(&sid_path, &["--ovmf-model", "auto"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("SmbiosMeasurementDxe") && err.contains("--smbios-digest"), "{err}");
    assert_eq!(
        ok_stdout(&with_cache(&sid_path, &["--ovmf-model", "auto", "--smbios-digest", &smbios])),
        ok_stdout(&with_cache(&sid_path, &["--ovmf-model", "stable202505", "--smbios-digest", &smbios])),
    );
    let cached = std::fs::read_dir(cache.join("cvm-image/firmware-measures-smbios")).unwrap().count();
    assert_eq!(cached, 2, "one answer per firmware");
}

/// The TDX models' boot options are constants; read from real firmware they are the same:
/// Boot0000 is what `BmRegisterBootManagerMenu` derives (the volume holding the application
/// and its user-interface name), UiApp for Debian trixie 2025.02 (fixture O1) and this
/// project's IntelTdx build, BootManagerMenuApp for Debian sid 2026.08; the 2026.08 Boot0001
/// ("EFI Firmware Setup", named by PlatformBootManagerLib) points at UiApp in the same volume.
#[test]
fn boot_options_of_the_models_are_those_the_firmware_yields() {
    use cvm_measurements::ovmf::fv::OvmfMemFvs;
    use cvm_measurements::uefi::load_option::{
        EfiLoadOption, BOOT_MANAGER_MENU_APP_FILE_GUID, UI_APP_FILE_GUID,
    };
    let dir = scratch("bootopts");
    let sid = std::fs::read(sid_firmware(&dir)).unwrap();
    let built = std::env::var_os("CVM_BUILT_OUT")
        .map(|d| std::path::PathBuf::from(d).join("firmware/ovmf-tdx/OVMF.fd"))
        .expect("CVM_BUILT_OUT is not set: run the suite with `cargo xtask test`");
    let pre = EfiLoadOption::ovmf_ui_app();
    // The default SMBIOS Type 0 strings (SmbiosPlatformDxe): Debian's PCDs, and for our own
    // build the dsc's vendor with edk2's substitutes for the empty version and date PCDs.
    let type0 = |v: &str, ver: &str, date: &str| cvm_measurements::smbios::OvmfType0 {
        vendor: v.into(),
        version: ver.into(),
        release_date: date.into(),
    };
    let debian = "Debian distribution of EDK II";
    for (what, fw, strings) in [
        ("O1", std::fs::read(fixture("O1")).unwrap(), type0(debian, "2025.02-8+deb13u1", "11/08/2025")),
        ("built ovmf-tdx", std::fs::read(&built).unwrap(), type0("EDK II", "unknown", "02/02/2022")),
    ] {
        let fvs = OvmfMemFvs::parse(&fw).unwrap();
        let got = fvs.boot_manager_menu_option(pre.attributes, &UI_APP_FILE_GUID).unwrap();
        assert_eq!(got.as_ref(), Some(&pre), "{what}: Boot0000");
        assert!(!fvs.measures_smbios().unwrap(), "{what} is pre-202505");
        assert_eq!(fvs.smbios_type0().unwrap(), Some(strings), "{what}: Type 0 strings");
    }
    let fvs = OvmfMemFvs::parse(&sid).unwrap();
    assert!(fvs.measures_smbios().unwrap());
    assert_eq!(fvs.smbios_type0().unwrap(), Some(type0(debian, "2026.08+ds-2", "09/26/2026")));
    let menu = EfiLoadOption::ovmf_boot_manager_menu_app();
    let got = fvs.boot_manager_menu_option(menu.attributes, &BOOT_MANAGER_MENU_APP_FILE_GUID).unwrap();
    assert_eq!(got.as_ref(), Some(&menu), "2026.08 Boot0000");
    let setup = EfiLoadOption::ovmf_firmware_setup();
    let ui = fvs.boot_manager_menu_option(setup.attributes, &UI_APP_FILE_GUID).unwrap().unwrap();
    assert_eq!(ui.file_path_list, setup.file_path_list, "2026.08 Boot0001's device path");
}

/// The boot options come from the firmware (cached per model and firmware): a cache entry
/// naming another option moves RTMR0 and nothing else, and a garbled one is derived again.
#[test]
fn boot_options_are_derived_from_the_firmware_and_cached() {
    use cvm_measurements::uefi::load_option::EfiLoadOption;
    let dir = scratch("bootcache");
    let initrd = zero_initrd(&dir);
    let cache = dir.join("xdg");
    let _ = std::fs::remove_dir_all(&cache);
    let o1 = fixture("O1");
    let run = || -> serde_json::Value {
        serde_json::from_str(ok_stdout(&measure_cached(&cache, &o1, &initrd, &[])).trim()).unwrap()
    };
    let first = run();
    assert_eq!(first["rtmr0"], RTMR0);
    let entry = cache
        .join("cvm-image/firmware-boot-options")
        .join(format!("pre202505-mrtd-{MRTD}"));
    let stored = std::fs::read_to_string(&entry).unwrap();
    assert_eq!(stored, hex::encode(EfiLoadOption::ovmf_ui_app().to_bytes()) + "\n");
    let mut other = EfiLoadOption::ovmf_ui_app();
    other.description = "Other".into();
    std::fs::write(&entry, hex::encode(other.to_bytes()) + "\n").unwrap();
    let moved = run();
    assert_ne!(moved["rtmr0"], first["rtmr0"]);
    for r in ["mrtd", "rtmr1", "rtmr2", "rtmr3"] {
        assert_eq!(moved[r], first[r], "{r}");
    }
    std::fs::write(&entry, "garbage").unwrap();
    assert_eq!(run()["rtmr0"], RTMR0);
    assert_eq!(std::fs::read_to_string(&entry).unwrap(), stored, "re-derived and rewritten");
}

/// The stable202505 SMBIOS event end to end: `--qemu` captures QEMU's SMBIOS files for the shape
/// of the real sid 2026.08 vTPM boot (q35, `-cpu max`, 1 vCPU, 512 MiB), the CLI derives the
/// digest with the firmware's own Type 0 strings, and the predicted RTMR0 event carries the
/// digest that boot logged for the SMBIOS table (its SHA-384 bank). Its QEMU must be the one of
/// that boot; the capture files kept beside the vector are compared too.
#[test]
fn stable202505_smbios_event_is_derived_from_the_qemu_capture() {
    let vector = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/vtpm/debian-sid-ovmf-2026.08");
    const LOGGED: &str = "5dfcf5ec20217a1d169ba1a38cb1f477bc6947464d0d6da13c7ba9441343c0c4d5dd260e0698bd13af4bfbef6f2512a4";
    let dir = scratch("smbios-derived");
    let initrd = zero_initrd(&dir);
    let sid = sid_firmware(&dir);
    let qemu = find_qemu();
    let version = Command::new(&qemu).arg("--version").output().unwrap();
    if !String::from_utf8_lossy(&version.stdout).starts_with(VECTOR_QEMU) {
        eprintln!("SKIP: {} is not {VECTOR_QEMU}, the QEMU of the sid vTPM boot", qemu.display());
        return;
    }
    let cache = dir.join("xdg");
    let _ = std::fs::remove_dir_all(&cache);
    let log = dir.join("log.json");
    let k1 = fixture("K1");
    let record = dir.join("capture.json");
    let out = Command::new(BIN)
        .args(out_args(&sid, &k1, &initrd, &qemu))
        .args(["--event-log-json", log.to_str().unwrap(), "--capture-json", record.to_str().unwrap()])
        .env("XDG_CACHE_HOME", &cache)
        .output()
        .unwrap();
    ok_stdout(&out);
    let events: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&log).unwrap()).unwrap();
    let smbios: Vec<_> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event_type"] == 0x8000_0009u32)
        .collect();
    assert_eq!(smbios.len(), 1, "{events}");
    assert_eq!(smbios[0]["rtmr"], 0);
    assert_eq!(smbios[0]["digest"].as_str(), Some(LOGGED));
    let captured = std::fs::read_dir(cache.join("cvm-image/acpi")).unwrap().next().unwrap().unwrap().path();
    for f in ["smbios-tables", "smbios-anchor"] {
        assert_eq!(std::fs::read(captured.join(f)).unwrap(), std::fs::read(format!("{vector}/{f}")).unwrap(), "{f}");
    }
    // --capture-json records the capture (for the manifest): QEMU version, shape argv, files.
    use sha2::Digest;
    let rec: serde_json::Value = serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    assert_eq!(rec["source"], "qemu");
    assert_eq!(rec["qemu_version"], VECTOR_QEMU);
    assert_eq!(rec["argv"], serde_json::json!(["-machine", "q35", "-cpu", "max", "-smp", "1", "-m", "512", "-nodefaults"]));
    let tables = std::fs::read(format!("{vector}/smbios-tables")).unwrap();
    assert_eq!(rec["files"]["smbios-tables"].as_str(), Some(hex::encode(sha2::Sha256::digest(&tables)).as_str()));
    assert_eq!(rec["files"].as_object().unwrap().len(), 5);
    ok_stdout(&measure("2G", &fixture("O1"), &initrd, CMDLINE, &["--capture-json", record.to_str().unwrap()]));
    let rec: serde_json::Value = serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    assert_eq!(rec["source"], "acpi-dir");
    assert_eq!(rec["files"].as_object().unwrap().len(), 3, "{rec}");
    assert!(rec.get("argv").is_none());

    // The Type 0 strings are cached per firmware; a garbled entry is derived again.
    let type0_dir = cache.join("cvm-image/firmware-smbios-type0");
    let entry = std::fs::read_dir(&type0_dir).unwrap().next().unwrap().unwrap().path();
    assert_eq!(std::fs::read_to_string(&entry).unwrap(), "Debian distribution of EDK II\n2026.08+ds-2\n09/26/2026\n");
    std::fs::write(&entry, "garbled").unwrap();
    let again = Command::new(BIN).args(out_args(&sid, &k1, &initrd, &qemu)).env("XDG_CACHE_HOME", &cache).output().unwrap();
    assert_eq!(ok_stdout(&again), ok_stdout(&out));
    assert!(std::fs::read_to_string(&entry).unwrap().starts_with("Debian"));
}

fn out_args(sid: &str, k1: &str, initrd: &str, qemu: &std::path::Path) -> Vec<String> {
    let q = qemu.to_str().unwrap();
    ["tdx", "--firmware", sid, "--cpus", "1", "--memory", "512M", "--kernel", k1, "--initrd", initrd]
        .into_iter()
        .chain(["--cmdline", CMDLINE, "--json", "--ovmf-model", "auto", "--qemu", q])
        .chain(["--machine", "q35", "--cpu-model", "max"])
        .map(String::from)
        .collect()
}

/// The Secure Boot events are those of empty variables: a firmware whose variable store (the
/// CFV) enrolls a key, as Debian's `OVMF.inteltdx.ms.fd` does, is refused naming the variable,
/// not measured as if Secure Boot were off.
#[test]
fn firmware_with_enrolled_secure_boot_keys_is_refused() {
    use cvm_measurements::uefi::variable::EFI_IMAGE_SECURITY_DATABASE_GUID;
    use cvm_measurements::vtpm::varstore::{nv_volume_len, with_variables, NewVariable};
    let dir = scratch("enrolled");
    let initrd = zero_initrd(&dir);
    let o1 = std::fs::read(fixture("O1")).unwrap();
    let nv = nv_volume_len(&o1).unwrap();
    let db = NewVariable {
        vendor: EFI_IMAGE_SECURITY_DATABASE_GUID,
        name: "db".into(),
        attributes: 0x27,
        data: b"cert".to_vec(),
    };
    let mut fw = with_variables(&o1[..nv], &[db]).unwrap();
    fw.extend_from_slice(&o1[nv..]);
    let path = dir.join("enrolled-OVMF.fd");
    std::fs::write(&path, &fw).unwrap();
    let out = measure("2G", path.to_str().unwrap(), &initrd, CMDLINE, &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("holds db (4 bytes)") && err.contains("enrolled"), "{err}");
    // The unmodified firmware measures.
    ok_stdout(&measure("2G", &fixture("O1"), &initrd, CMDLINE, &[]));
}
