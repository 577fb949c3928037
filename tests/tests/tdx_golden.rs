//! TDX golden vectors: MRTD, TD HOB, CFV, RTMR0 (with its per-event ladder), RTMR1 and RTMR2
//! for Debian OVMF + the Debian 6.12 cloud kernel, from `shared/design/tdx-measure.md` §5.2
//! (tinfoilsh/tdx-measure @ 33a8526, confirmed by an independent re-implementation). ACPI blobs
//! are the QEMU 10.0.13 captures in `shared/vectors/acpi/`.

use cvm_measurements::eventlog::EventLog;
use cvm_measurements::ovmf::tdvf::{TdvfDescriptor, TdvfSectionType};
use cvm_measurements::tdx::rtmr::{self, measure, rtmrs_from_ccel, TdxBoot};
use cvm_measurements::tdx::{mrtd, sha384, AcpiBlobs, OvmfEventModel, PageAddOrder, QemuModel};
use cvm_tests::fixture;
use sha2::{Digest, Sha256};

const GIB: u64 = 1 << 30;
const CMDLINE: &str = "console=ttyS0 root=/dev/vda1 ro";

fn read(id: &str) -> Vec<u8> {
    let p = fixture(id);
    std::fs::read(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

struct Acpi {
    table_loader: Vec<u8>,
    rsdp: Vec<u8>,
    tables: Vec<u8>,
}

fn acpi(shape: &str) -> Acpi {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/vectors/acpi")
        .join(shape);
    let r = |f: &str| {
        std::fs::read(dir.join(f)).unwrap_or_else(|e| panic!("reading {}/{f}: {e}", dir.display()))
    };
    Acpi {
        table_loader: r("table-loader"),
        rsdp: r("rsdp"),
        tables: r("tables"),
    }
}

impl Acpi {
    fn blobs(&self) -> AcpiBlobs<'_> {
        AcpiBlobs {
            table_loader: &self.table_loader,
            rsdp: &self.rsdp,
            tables: &self.tables,
        }
    }
}

fn hex48(d: &[u8; 48]) -> String {
    hex::encode(d)
}

fn boot<'a>(
    fw: &'a [u8],
    kernel: &'a [u8],
    initrd: &'a [u8],
    acpi: &'a Acpi,
    mem: u64,
) -> TdxBoot<'a> {
    TdxBoot {
        firmware: fw,
        memory_bytes: mem,
        acpi: acpi.blobs(),
        kernel,
        initrd: Some(initrd),
        cmdline: CMDLINE,
        // §5.2 is the setup-header patch model (QEMU 9.x: no etc/boot/kernel).
        qemu: QemuModel::for_version(9, 2),
        ovmf: OvmfEventModel::Pre202505,
        boot_options: None,
        firmware_reads_named_blobs: None,
    }
}

#[test]
fn acpi_fixtures_are_the_pinned_captures() {
    let sha = |b: &[u8]| hex::encode(Sha256::digest(b));
    let a = acpi("s1m1024");
    assert_eq!(
        sha(&a.table_loader),
        "544863f3252833eeb36821f29dea77a3b23cc7a2005c1cd8e61828528ef914f6"
    );
    assert_eq!(
        sha(&a.rsdp),
        "1b03c16d9cb00c405ceeb96e6babc8cd2757d7ab94ff0341d12c196f727d4024"
    );
    assert_eq!(
        sha(&a.tables),
        "16f07559b05b338d110b7f3faa3bf42481ddee0b55a9c93b0a5467ac641be82c"
    );
    assert_eq!(
        sha(&acpi("s1m2048").tables),
        "15916c1d398b4f341b12206b53fb57ad7632583ba404c2c8351e6fc3c0dd6410"
    );
    // The MADT walk that checks --cpus against a capture.
    assert_eq!(a.blobs().madt_cpu_count(), Some(1));
    let mut no_madt = a.tables.clone();
    no_madt[8458..8462].copy_from_slice(b"XXXX");
    assert_eq!(AcpiBlobs { tables: &no_madt, ..a.blobs() }.madt_cpu_count(), None);
}

/// §2.1 parsed layouts.
#[test]
fn tdvf_layouts_of_debian_firmware() {
    let fw = read("O1");
    let d = TdvfDescriptor::parse(&fw).unwrap();
    assert_eq!(fw.len() as u64 - d.descriptor_offset, 0x9c0);
    let rows: Vec<_> = d
        .sections
        .iter()
        .map(|s| {
            (
                s.section_type,
                s.data_offset,
                s.raw_data_size,
                s.memory_address,
                s.memory_data_size,
                s.attributes,
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            (
                TdvfSectionType::Bfv,
                0x84000,
                0x37c000,
                0xffc8_4000,
                0x37c000,
                1
            ),
            (TdvfSectionType::Cfv, 0, 0x84000, 0xffc0_0000, 0x84000, 0),
            (TdvfSectionType::TempMem, 0, 0, 0x81_1000, 0xf000, 0),
            (TdvfSectionType::TempMem, 0, 0, 0x80_b000, 0x2000, 0),
            (TdvfSectionType::TdHob, 0, 0, 0x80_9000, 0x2000, 0),
            (TdvfSectionType::TempMem, 0, 0, 0x80_0000, 0x6000, 0),
        ]
    );
    let old = read("O3");
    let d = TdvfDescriptor::parse(&old).unwrap();
    assert_eq!(old.len() as u64 - d.descriptor_offset, 0x840);
    let bfv = d.section(TdvfSectionType::Bfv).unwrap();
    assert_eq!(
        (bfv.data_offset, bfv.raw_data_size, bfv.memory_address),
        (0x20000, 0x1e0000, 0xffe2_0000)
    );
    // OVMF_CODE_4M.fd carries the unified image's metadata: its BFV lies beyond the file (P8).
    let err = TdvfDescriptor::parse(&read("O2")).unwrap_err();
    assert!(err.to_string().contains("TDVF section raw data"), "{err}");
}

#[test]
fn mrtd_single_pass() {
    for (id, expect) in [
        ("O1", "bdc6fb145880f06f30c8b346b8dce2a99d9351b56892df22f80fcf6574caa9f9c31df8e8576d53b4d0cd1c3f28910e11"),
        ("O3", "4c7206f0f483c524f12c366c711e9049030a8d47c471ee5aa9c4999a08de4057fb887fed0744d5631a212967fb231c47"),
    ] {
        let fw = read(id);
        let d = TdvfDescriptor::parse(&fw).unwrap();
        assert_eq!(hex48(&mrtd(&fw, &d, PageAddOrder::SinglePass).unwrap()), expect, "{id}");
        assert_ne!(hex48(&mrtd(&fw, &d, PageAddOrder::TwoPass).unwrap()), expect, "{id} two-pass");
    }
}

#[test]
fn td_hob_and_cfv_digests() {
    let fw = read("O1");
    let d = TdvfDescriptor::parse(&fw).unwrap();
    for (mem, expect) in [
        (GIB, "2b630fa1d8fa9b6e8c6507d2256803ed227888f7d1f62ca5cfbddfe495338b1c6a0fc339ea64700f0835c0897a662789"),
        (2 * GIB, "0e35f1b315ba6c912cf791e5c79dd9d3a2b8704516aa27d4e5aa78fb09ede04aef2bbd02ac7a8734c48562b9c26ba35d"),
    ] {
        assert_eq!(hex48(&rtmr::td_hob_event(&d, mem).unwrap().digest), expect, "{mem:#x}");
    }
    assert_eq!(
        rtmr::cfv_event(&fw, &d).unwrap().digest,
        sha384(&fw[..0x84000])
    );
    let old = read("O3");
    let od = TdvfDescriptor::parse(&old).unwrap();
    assert!(hex48(&rtmr::cfv_event(&old, &od).unwrap().digest)
        .starts_with("f87302177b059d54a2cf0c5f13340dba"));
}

/// RTMR0 per-event ladder, trixie, 1 vCPU, 2 GiB.
#[test]
fn rtmr0_event_ladder_trixie_2g() {
    let (fw, kernel) = (read("O1"), read("K1"));
    let initrd = vec![0u8; 1 << 20];
    let a = acpi("s1m2048");
    let m = measure(&boot(&fw, &kernel, &initrd, &a, 2 * GIB)).unwrap();
    let r0: Vec<_> = m.events.iter().filter(|e| e.rtmr == 0).collect();
    assert_eq!(r0.len(), 13);
    assert_eq!(hex48(&r0[0].digest), "0e35f1b315ba6c912cf791e5c79dd9d3a2b8704516aa27d4e5aa78fb09ede04aef2bbd02ac7a8734c48562b9c26ba35d");
    assert_eq!(r0[1].digest, sha384(&fw[..0x84000]));
    assert!(hex48(&r0[7].digest).starts_with("394341b7"));
    assert_eq!(hex48(&r0[8].digest), "b6c53b129a3dd6a5726d613fdf0b5adf7bd052268fbf13ef96bf17a55c7ccf237b6778596b70be8e23a04f4be6662cc0");
    assert_eq!(hex48(&r0[9].digest), "9144a412cdc3ec350e851c8833138dbc6e79afab40fe8cccc12377eef9c7d013a00d5dfeb4077616b7de12d4748f6c51");
    assert_eq!(hex48(&r0[10].digest), "cbaf9c410edd03f3eb6f1f4923cdd041d59b2fec66f6f85a11e6238d0d32e1acdee3f27e1362fcd41ca09728f0c20c07");
    assert_eq!(r0[11].digest, sha384(&[0, 0]));
    assert!(hex48(&r0[12].digest).starts_with("23ada07f"));
    assert_eq!(hex48(&m.rtmr[0]), "6f8dbf0f6df2bfb5cb33a71b1488a1fd4004dfc7546bb70450e0a65cec85e64c5c0f5e8e51705886885a185e798d4e65");
}

#[test]
fn registers_trixie_1g_and_2g() {
    let (fw, kernel) = (read("O1"), read("K1"));
    let initrd = vec![0u8; 1 << 20];
    for (shape, mem, r0, kernel_hash, r1) in [
        (
            "s1m1024",
            GIB,
            "141ce0e97ac1dc07f4abfa53b3cfae67062e9424ec72de88bd3bf8043263d91ab168115c2279264b9ec1c80bbded2ed0",
            "62b30328bd7043e91905455873865874c640f2663e734eaa6b6314bb45824fd51d85dcd2257dfbb1b7a0d648059d2d79",
            "023d0f91c1fecff1b3cb420470e0cacb81a208203590a251c04ad983f13a590de3cce4bd9ec113c29351333c0914766f",
        ),
        (
            "s1m2048",
            2 * GIB,
            "6f8dbf0f6df2bfb5cb33a71b1488a1fd4004dfc7546bb70450e0a65cec85e64c5c0f5e8e51705886885a185e798d4e65",
            "a7ae10793255e8962aaf7631922a58d6e33bfc19de6842a9548dba8b9f7f28b8c66b4db97d9d3662158a95cb04ac96fe",
            "97a4f58113dea6e39c3121f409b15bf0773a39496ad3de25f904610075486e888a92f5e3a62bd72bdbe15558b7a5c440",
        ),
    ] {
        let a = acpi(shape);
        let m = measure(&boot(&fw, &kernel, &initrd, &a, mem)).unwrap();
        assert_eq!(hex48(&m.mrtd), "bdc6fb145880f06f30c8b346b8dce2a99d9351b56892df22f80fcf6574caa9f9c31df8e8576d53b4d0cd1c3f28910e11");
        assert_eq!(hex48(&m.rtmr[0]), r0, "{shape} rtmr0");
        let k = m.events.iter().find(|e| e.rtmr == 1).unwrap();
        assert_eq!(hex48(&k.digest), kernel_hash, "{shape} kernel");
        assert_eq!(hex48(&m.rtmr[1]), r1, "{shape} rtmr1");
        assert_eq!(hex48(&m.rtmr[2]), "3efe59620d09ec4ba38cab9dc7f7b33a0f9497cb6258ecf8ece5f5891e10c5a3c1942749df3716f06e8e30bc24816919");
        assert_eq!(m.rtmr[3], [0; 48]);
        // The predicted CCEL log round-trips through parse + replay.
        let log = EventLog::parse(&m.to_ccel().to_bytes()).unwrap();
        assert_eq!(rtmrs_from_ccel(&log).unwrap(), m.rtmr);
    }
}

/// RTMR1's kernel hash depends on memory only through QEMU's initrd placement (< 10.1).
#[test]
fn kernel_authenticode_by_memory() {
    let kernel = read("K1");
    let h = |mem| {
        hex48(
            &rtmr::kernel_event(&kernel, mem, Some(1 << 20), true)
                .unwrap()
                .digest,
        )
    };
    let two = "a7ae10793255e8962aaf7631922a58d6e33bfc19de6842a9548dba8b9f7f28b8c66b4db97d9d3662158a95cb04ac96fe";
    assert_eq!(h(3 * GIB), two);
    assert_eq!(h(4 * GIB), two);
    assert_eq!(h(5 * GIB / 2), "3ad95bff382713807da8bc5f1e34a14dd9a9666c1391d6991079c64fa9eec537eae52a2c06365915a1a286826a66df26");
    // Unpatched (QEMU >= 10.1, or 10.0 with firmware reading etc/boot/kernel): the file's
    // own Authenticode, whatever the memory.
    let u1 = rtmr::kernel_event(&kernel, GIB, Some(1 << 20), false)
        .unwrap()
        .digest;
    assert_eq!(
        u1,
        rtmr::kernel_event(&kernel, 4 * GIB, None, false)
            .unwrap()
            .digest
    );
    assert_eq!(u1, cvm_measurements::pe::authenticode_sha384(&kernel).unwrap());
    assert_ne!(hex48(&u1), two);
}

/// Which kernel blob the firmware measures on QEMU 10.0 (which offers both the patched
/// traditional blob and the unpatched `etc/boot/kernel`): trixie's OVMF (edk2 2025.02) reads
/// the named blob, so RTMR1 holds the file's hash (as the vTPM captures on QEMU 10.0.13 show
/// for PCR 4); bookworm's (2022.11) does not, so it gets the patched header.
#[test]
fn qemu_10_0_kernel_blob_depends_on_the_firmware() {
    use cvm_measurements::ovmf::fv::OvmfMemFvs;
    let (kernel, initrd) = (read("K1"), vec![0u8; 1 << 20]);
    let reads = |fw: &[u8]| OvmfMemFvs::parse(fw).unwrap().reads_qemu_named_blobs().unwrap();
    assert!(reads(&read("O1")));
    assert!(reads(&read("O2")));
    assert!(!reads(&read("O3")));
    let q100 = QemuModel::for_version(10, 0);
    assert_eq!(q100.kernel_patched(|| Ok::<_, ()>(reads(&read("O1")))), Ok(false));
    assert_eq!(q100.kernel_patched(|| Ok::<_, ()>(reads(&read("O3")))), Ok(true));
    // Through measure(): O1 on QEMU 10.0 gives the unpatched kernel event and RTMR1 of 10.1.
    let fw = read("O1");
    let a = acpi("s1m2048");
    let with = |q| {
        let mut b = boot(&fw, &kernel, &initrd, &a, 2 * GIB);
        b.qemu = q;
        measure(&b).unwrap()
    };
    let (m100, m101, m92) = (with(q100), with(QemuModel::for_version(10, 1)), with(QemuModel::for_version(9, 2)));
    let k = |m: &cvm_measurements::tdx::TdxMeasurement| m.events.iter().find(|e| e.rtmr == 1).unwrap().digest;
    assert_eq!(k(&m100), cvm_measurements::pe::authenticode_sha384(&kernel).unwrap());
    assert_eq!(m100.rtmr[1], m101.rtmr[1]);
    assert_ne!(m100.rtmr[1], m92.rtmr[1]);
    assert_eq!((m100.mrtd, m100.rtmr[0], m100.rtmr[2]), (m92.mrtd, m92.rtmr[0], m92.rtmr[2]));
}

/// Bookworm OVMF, 1 vCPU, 2 GiB: the oracle hard-codes the 4 MiB CFV digest (P6). Substituting
/// it reproduces the oracle's RTMR0, which checks every other event for the 2 MiB layout.
#[test]
fn rtmr0_bookworm_model_with_oracle_cfv() {
    let (fw, old, kernel) = (read("O1"), read("O3"), read("K1"));
    let initrd = vec![0u8; 1 << 20];
    let a = acpi("s1m2048");
    let mut m = measure(&boot(&old, &kernel, &initrd, &a, 2 * GIB)).unwrap();
    assert_eq!(m.events[1].digest, sha384(&old[..0x20000]));
    m.events[1].digest = sha384(&fw[..0x84000]);
    let r = rtmr::replay_events(&m.events);
    assert_eq!(hex48(&r[0]), "02be814aafee6f200430a2aac43faaf0a6aada3c89b05e4dd7c1f0104b050b6f8f442f9032fe5fac882461c0e5d42ced");
}

/// A small deterministic PRNG (xorshift64*), so the robustness tests are reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// `base` with a few random byte changes and a random truncation.
    fn mutate(&mut self, base: &[u8]) -> Vec<u8> {
        let mut v = base.to_vec();
        for _ in 0..1 + self.below(4) {
            let i = self.below(v.len());
            v[i] = self.next() as u8;
        }
        v.truncate(self.below(v.len() + 1));
        v
    }
}

/// Random and mutated inputs never panic the event-log, quote, PE and TDVF parsers (the
/// stable stand-in for the `fuzz/` targets `tdx_eventlog`, `tdx_quote` and `pe`).
#[test]
fn parsers_never_panic_on_random_or_mutated_input() {
    use cvm_measurements::pe::authenticode_sha384;
    use cvm_measurements::tdx::qemu::patch_kernel_setup_header;
    use cvm_measurements::tdx::quote::TdxQuote;

    let (fw, kernel) = (read("O1"), read("K1"));
    let initrd = vec![0u8; 4096];
    let a = acpi("s1m1024");
    let m = measure(&boot(&fw, &kernel, &initrd, &a, GIB)).unwrap();
    let log = m.to_ccel().to_bytes();
    let header = &kernel[..0x2000];
    let mut quote = vec![0u8; 48 + 584 + 4];
    quote[0] = 4;
    quote[4] = 0x81;
    assert!(TdxQuote::parse(&quote).is_ok());
    let fw_tail = &fw[fw.len() - 0x1000..];

    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..3000 {
        let n = rng.below(1024);
        let random: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
        let _ = EventLog::parse(&random);
        let _ = TdxQuote::parse(&random);
        let _ = authenticode_sha384(&random);
        let _ = TdvfDescriptor::parse(&random);

        if let Ok(l) = EventLog::parse(&rng.mutate(&log)) {
            let _ = rtmrs_from_ccel(&l);
            assert_eq!(EventLog::parse(&l.to_bytes()).ok(), Some(l));
        }
        let _ = TdxQuote::parse(&rng.mutate(&quote));
        let h = rng.mutate(header);
        let _ = authenticode_sha384(&h);
        let _ = patch_kernel_setup_header(&h, GIB, Some(1 << 20));
        let _ = TdvfDescriptor::parse(&rng.mutate(fw_tail));
    }
}

/// Truncated logs and quotes give errors that say what is missing where.
#[test]
fn truncated_log_and_quote_errors_are_clear() {
    use cvm_measurements::tdx::quote::TdxQuote;
    let (fw, kernel) = (read("O1"), read("K1"));
    let initrd = vec![0u8; 4096];
    let a = acpi("s1m1024");
    let log = measure(&boot(&fw, &kernel, &initrd, &a, GIB))
        .unwrap()
        .to_ccel()
        .to_bytes();
    let err = EventLog::parse(&log[..log.len() - 3])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("truncated") && err.contains("TCG_PCR_EVENT2.event"),
        "{err}"
    );
    let err = TdxQuote::parse(&[4, 0, 2, 0, 0x81, 0, 0, 0])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("quote truncated") && err.contains("qe_svn"),
        "{err}"
    );
}
