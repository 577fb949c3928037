//! The spec crate at its boundary: the shipped specs parse, every kind of error names file, line
//! and key, and a spec survives a round trip through TOML.

use cvm_image_spec::*;
use std::collections::BTreeSet;

const FILE: &str = "image-spec/default.toml";

/// `DEFAULT` with `from` (which must occur exactly once) replaced by `to`.
fn edit(from: &str, to: &str) -> String {
    assert_eq!(
        DEFAULT.matches(from).count(),
        1,
        "{from:?} must occur once in default.toml"
    );
    DEFAULT.replace(from, to)
}

/// 1-based line of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in text"))
        + 1
}

/// The rendered diagnostics of a spec that must fail.
fn errors(text: &str) -> Vec<String> {
    match ImageSpec::parse(text, FILE) {
        Ok(_) => panic!("spec parsed but should have failed"),
        Err(e) => e.0.iter().map(|d| d.to_string()).collect(),
    }
}

fn assert_one_error(text: &str, needle: &str, key: &str, message_part: &str) {
    let errs = errors(text);
    let want = format!("{FILE}:{}: {key}: ", line_of(text, needle));
    assert!(
        errs.iter()
            .any(|e| e.starts_with(&want) && e.contains(message_part)),
        "want an error starting {want:?} containing {message_part:?}, got {errs:#?}"
    );
}

#[test]
fn default_spec_parses_and_validates() {
    let spec = ImageSpec::default_spec();
    assert_eq!(spec.image.name, "cvm-test");
    assert!(spec.image.test_image);
    assert_eq!(spec.image.tees, [Tee::Tdx, Tee::Snp, Tee::Vtpm]);
    assert_eq!(spec.shapes.len(), 2);
    assert_eq!(spec.shapes[0].memory, Memory(2048 * MIB));
    assert_eq!(spec.shapes[0].vcpus, Vcpus(vec![1]));
    assert_eq!(spec.shapes[0].vcpu_signature(), Some(0x00A0_0F11));
    assert_eq!(spec.shapes[1].vcpus, Vcpus(vec![2, 4]));
    assert_eq!(spec.shapes[1].memory.bytes(), 4 << 30);
    assert_eq!(spec.kernel.source.package, "linux-source-6.12");
    let names: Vec<&str> = spec.kernel.fragments.iter().map(|f| f.as_str()).collect();
    // Exactly what the kernel stage merges, in its order (base, then fragments sorted).
    assert_eq!(
        names,
        [
            "kernel-config/base.config",
            "kernel-config/fragments/dm.config",
            "kernel-config/fragments/efi.config",
            "kernel-config/fragments/fs.config",
            "kernel-config/fragments/snp-guest.config",
            "kernel-config/fragments/tdx-guest.config",
            "kernel-config/fragments/tpm.config",
            "kernel-config/fragments/virtio.config",
        ]
    );
    assert_eq!(
        spec.firmware.variants,
        [
            FirmwareVariant::IntelTdx,
            FirmwareVariant::AmdSev,
            FirmwareVariant::OvmfVtpm
        ]
    );
    assert_eq!(spec.rootfs.agent, Agent::Crate(DEFAULT_AGENT.into()));
    assert!(spec.validate().is_empty());
}

#[test]
fn default_cmdline_renders() {
    let spec = ImageSpec::default_spec();
    let v = cmdline::CmdlineValues {
        verity_roothash: "aa".into(),
        verity_salt: "bb".into(),
        dm_table: "T".into(),
    };
    let c = spec.cmdline(&v).unwrap();
    assert!(c.contains("dm-mod.create=\"T\""), "{c}");
    assert!(!c.contains('{'), "{c}");
}

#[test]
fn example_parses_and_sets_every_key() {
    let spec =
        ImageSpec::parse(EXAMPLE, "image-spec/example.toml").unwrap_or_else(|e| panic!("{e}"));
    // Every optional key is given somewhere, so the example documents it.
    assert!(spec.shapes.iter().any(|s| s.cpu.is_some()));
    assert!(spec.shapes.iter().any(|s| s.cpu_signature.is_some()));
    assert!(spec.shapes.iter().any(|s| s.tdx_page_order.is_some()));
    assert!(spec.shapes.iter().any(|s| s.vmm != Vmm::Qemu));
    assert!(spec.firmware.source.dsc_sha256.is_some());
    assert!(!spec.rootfs.extra_files.is_empty());
    assert!(spec.initdata.is_some() && spec.signing.is_some());
    let p = spec.publish.as_ref().unwrap();
    assert!(p.rvps_url.is_some() && p.oci.is_some());
    // Every key the schema serializes appears in the example, and the example has no other key.
    let keys = |text: &str| {
        let mut out = BTreeSet::new();
        collect_keys("", &text.parse::<toml::Table>().unwrap(), &mut out);
        out
    };
    assert_eq!(keys(&spec.to_toml()), keys(EXAMPLE));
}

fn collect_keys(prefix: &str, t: &toml::Table, out: &mut BTreeSet<String>) {
    for (k, v) in t {
        let p = format!("{prefix}{k}");
        let tables: Vec<&toml::Table> = match v {
            toml::Value::Table(t) => vec![t],
            toml::Value::Array(a) => a.iter().filter_map(|e| e.as_table()).collect(),
            _ => vec![],
        };
        for t in tables {
            collect_keys(&format!("{p}."), t, out);
        }
        out.insert(p);
    }
}

#[test]
fn round_trip_through_toml() {
    for (text, name) in [(DEFAULT, "default.toml"), (EXAMPLE, "example.toml")] {
        let a = ImageSpec::parse(text, name).unwrap();
        let written = a.to_toml();
        let b =
            ImageSpec::parse(&written, "written.toml").unwrap_or_else(|e| panic!("{e}\n{written}"));
        assert_eq!(a, b);
        assert_eq!(written, b.to_toml(), "serialization is stable");
    }
    // Equality sees every table: a changed value is a different spec.
    let a = ImageSpec::default_spec();
    let mut b = a.clone();
    b.rootfs.size_limit = Memory(1024 * MIB);
    assert_ne!(a, b);
}

#[test]
fn unknown_key_names_file_line_key() {
    let text = edit("[kernel]\n", "[kernel]\nfragmnets = []\n");
    assert_one_error(
        &text,
        "fragmnets",
        "[kernel].fragmnets",
        "unknown field `fragmnets`",
    );
    let text = edit("vcpus = [2, 4]\n", "vcpus = [2, 4]\ncpus = 2\n");
    assert_one_error(
        &text,
        "cpus = 2",
        "[[shape]][1].cpus",
        "unknown field `cpus`",
    );
    let text = edit("[rootfs]\n", "[rootfs]\nmode = 1\n");
    assert_one_error(&text, "mode = 1", "[rootfs].mode", "unknown field");
    let text = format!("{DEFAULT}\n[extra]\nx = 1\n");
    assert_one_error(&text, "[extra]", "[extra]", "unknown field `extra`");
}

#[test]
fn wrong_type_names_file_line_key() {
    let text = edit("vcpus = 1\n", "vcpus = \"one\"\n");
    assert_one_error(&text, "vcpus = \"one\"", "[[shape]][0].vcpus", "vCPU count");
    let text = edit("test_image = true", "test_image = \"yes\"");
    assert_one_error(&text, "test_image", "[image].test_image", "invalid type");
    let text = edit("\"kernel-config/fragments/dm.config\",", "7,");
    assert_one_error(&text, "    7,", "[kernel].fragments[1]", "invalid type");
}

#[test]
fn bad_value_names_file_line_key() {
    let text = edit("memory = \"2048M\"", "memory = \"2048\"");
    assert_one_error(
        &text,
        "memory = \"2048\"",
        "[[shape]][0].memory",
        "invalid size \"2048\"",
    );
    let text = edit(
        "tees = [\"tdx\", \"snp\", \"vtpm\"]",
        "tees = [\"tdx\", \"sgx\"]",
    );
    assert_one_error(&text, "tees =", "[image].tees[1]", "unknown variant `sgx`");
    let text = edit("filesystem = \"erofs\"", "filesystem = \"ext4\"");
    assert_one_error(
        &text,
        "filesystem",
        "[rootfs].filesystem",
        "unknown variant `ext4`",
    );
    let text = edit("kind = \"deb\"", "kind = \"rpm\"");
    assert_one_error(
        &text,
        "kind = ",
        "[kernel.source].kind",
        "unknown variant `rpm`",
    );
}

#[test]
fn syntax_error_names_line() {
    let text = edit("[rootfs]\n", "[rootfs\n");
    let errs = errors(&text);
    let want = format!(
        "{FILE}:{}: (document): TOML syntax",
        line_of(&text, "[rootfs")
    );
    assert!(errs.len() == 1 && errs[0].starts_with(&want), "{errs:#?}");
}

#[test]
fn missing_table_is_reported() {
    let cut = DEFAULT.find("[rootfs]").unwrap();
    let errs = errors(&DEFAULT[..cut]);
    assert!(
        errs.len() == 1 && errs[0].contains("missing field `rootfs`"),
        "{errs:#?}"
    );
}

#[test]
fn semantic_problems_are_all_reported_with_lines() {
    let text = DEFAULT
        .replace("name = \"genoa-4g\"", "name = \"milan-1c-2g\"")
        .replace("vcpus = [2, 4]", "vcpus = []")
        .replace("memory = \"4G\"", "memory = \"64M\"")
        .replace("e849faf31ca3555757f3a8877cb01af92122f744f75d1f3102734651c4e14703", "E849")
        .replace("kernel-config/fragments/tpm.config", "kernel-config/../../etc/passwd")
        .replace("test_image = true", "test_image = false")
        .replace("tees = [\"tdx\", \"snp\", \"vtpm\"]", "tees = [\"tdx\", \"snp\", \"vtpm\", \"mock\"]")
        .replace("{dm_table}", "{roothash}")
        .replace("cpu = \"EPYC-Genoa\"", "cpu = \"EPYC-Bergamo\"")
        .replace("qemu_version = \"10.0\"\nmachine = \"q35\"\nmachine_flags = [\"smm=off\", \"pic=off\", \"hpet=off\"]\nguest_features = 0x1\nsnp_policy = 0x30000\n\n[kernel]",
                 "qemu_version = \"ten\"\nmachine = \"pc-i440fx-9.2\"\nmachine_flags = [\"smm=off\", \"accel=kvm\", \"hpet\"]\nguest_features = 0x1\nsnp_policy = 0x30000\n\n[kernel]")
        .replace("variants = [\"intel-tdx\", \"amd-sev\", \"ovmf-vtpm\"]", "variants = [\"intel-tdx\", \"amd-sev\"]");
    let errs = errors(&text);
    let at = |needle: &str, key: &str, msg: &str| {
        let want = format!("{FILE}:{}: {key}: ", line_of(&text, needle));
        assert!(
            errs.iter().any(|e| e.starts_with(&want) && e.contains(msg)),
            "want {want:?} .. {msg:?} in {errs:#?}"
        );
    };
    at("vcpus = []", "[[shape]][1].vcpus", "empty vCPU list");
    at("memory = \"64M\"", "[[shape]][1].memory", "outside 128M");
    at("EPYC-Bergamo", "[[shape]][1].cpu", "unknown CPU model");
    at(
        "qemu_version = \"ten\"",
        "[[shape]][1].qemu_version",
        "not a QEMU version",
    );
    at(
        "machine = \"pc-i440fx-9.2\"",
        "[[shape]][1].machine",
        "TDX shapes are modelled on q35",
    );
    at(
        "\"accel=kvm\"",
        "[[shape]][1].machine_flags[1]",
        "not part of a shape",
    );
    at(
        "\"accel=kvm\"",
        "[[shape]][1].machine_flags[2]",
        "one `key=value` per entry",
    );
    at(
        "tees =",
        "[image].tees[3]",
        "mock TEE is allowed only in a test image",
    );
    at(
        "sha256 = \"E849\"",
        "[kernel.source].sha256",
        "not a sha256",
    );
    at(
        "etc/passwd",
        "[kernel].fragments[6]",
        "escapes the repository",
    );
    at(
        "cmdline =",
        "[kernel].cmdline",
        "unknown placeholder {roothash}",
    );
    at("variants =", "[firmware].variants", "\"ovmf-vtpm\"");
    // The duplicate is reported at the second shape's name.
    let second = text
        .match_indices("name = \"milan-1c-2g\"")
        .nth(1)
        .unwrap()
        .0;
    let line = text[..second].lines().count() + 1;
    assert!(
        errs.iter().any(|e| e.starts_with(&format!(
            "{FILE}:{line}: [[shape]][1].name: duplicate shape name"
        ))),
        "{errs:#?}"
    );
    // A production image must be signed; there is no [signing] line to point at.
    assert!(
        errs.iter()
            .any(|e| e.starts_with(&format!("{FILE}: [signing]: a production image"))),
        "{errs:#?}"
    );
    assert_eq!(errs.len(), 14, "{errs:#?}");
}

#[test]
fn production_spec_with_snp_debug_policy_is_refused() {
    let text = edit("test_image = true", "test_image = false").replacen(
        "snp_policy = 0x30000",
        "snp_policy = 0xB0000",
        1,
    ) + "\n[signing]\nkey = \"keys/signing.pem\"\n";
    let errs = errors(&text);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].contains("[[shape]][0].snp_policy: 0xb0000: the debug bit (19)"),
        "{errs:#?}"
    );
    // The same policy is fine in a test image.
    let text = DEFAULT.replacen("snp_policy = 0x30000", "snp_policy = 0xB0000", 1);
    assert!(ImageSpec::parse(&text, FILE).is_ok());
}

#[test]
fn publish_values_are_checked() {
    let ok = format!("{DEFAULT}\n[publish]\nrvps_url = \"https://rvps.example:50003\"\noci = \"registry.example:5000/guest/img:v1\"\n");
    assert!(ImageSpec::parse(&ok, FILE).is_ok());
    let bad =
        format!("{DEFAULT}\n[publish]\nrvps_url = \"ftp://x\"\noci = \"https://registry/Guest\"\n");
    let errs = errors(&bad);
    assert!(
        errs.iter().any(|e| e.contains("[publish].rvps_url")),
        "{errs:#?}"
    );
    assert!(
        errs.iter().any(|e| e.contains("[publish].oci")),
        "{errs:#?}"
    );
}

#[test]
fn load_reads_a_file_and_names_it() {
    let dir = std::env::temp_dir().join(format!("cvm-image-spec-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("spec.toml");
    std::fs::write(&p, edit("memory = \"4G\"", "memory = \"4X\"")).unwrap();
    let e = ImageSpec::load(&p).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("{}:", p.display())) && e.contains("[[shape]][1].memory"),
        "{e}"
    );
    let missing = ImageSpec::load(&dir.join("nope.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        missing.contains("nope.toml") && missing.contains("cannot read"),
        "{missing}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn repeated_list_entries_are_reported_at_the_repeat() {
    let text = edit(
        "tees = [\"tdx\", \"snp\", \"vtpm\"]",
        "tees = [\"tdx\", \"snp\", \"tdx\"]",
    )
    .replace("vcpus = [2, 4]", "vcpus = [2, 4, 2]")
    .replace("\"e2fsprogs\"]", "\"e2fsprogs\", \"cryptsetup-bin\"]");
    let errs = errors(&text);
    let at = |needle: &str, key: &str, msg: &str| {
        let want = format!("{FILE}:{}: {key}: {msg}", line_of(&text, needle));
        assert!(errs.contains(&want), "want {want:?} in {errs:#?}");
    };
    at("tees =", "[image].tees[2]", "\"tdx\" is listed twice");
    at(
        "vcpus = [2, 4, 2]",
        "[[shape]][1].vcpus[2]",
        "2 is listed twice",
    );
    at(
        "packages =",
        "[rootfs].packages[4]",
        "\"cryptsetup-bin\" is listed twice",
    );
    assert_eq!(errs.len(), 3, "{errs:#?}");
}

#[test]
fn tdx_event_model_is_parsed_and_needs_tdx() {
    let variants = "variants = [\"intel-tdx\", \"amd-sev\", \"ovmf-vtpm\"]";
    let text = edit(variants, &format!("{variants}\ntdx_event_model = \"stable202505\""));
    let spec = ImageSpec::parse(&text, FILE).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(spec.firmware.tdx_event_model, TdxEventModel::Stable202505);
    assert_eq!(ImageSpec::default_spec().firmware.tdx_event_model, TdxEventModel::Auto);
    let bad = edit(variants, &format!("{variants}\ntdx_event_model = \"202505\""));
    assert!(errors(&bad).iter().any(|e| e.contains("tdx_event_model")), "{:#?}", errors(&bad));
    let no_tdx = text.replace("tees = [\"tdx\", \"snp\", \"vtpm\"]", "tees = [\"snp\", \"vtpm\"]");
    assert_one_error(&no_tdx, "tdx_event_model", "[firmware].tdx_event_model", "\"tdx\" is not in");
}
