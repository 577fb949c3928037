//! `cargo xtask build-image [--spec FILE] [--json] [--key FILE]`: build the whole image of an
//! image spec (`--spec`, else the embedded `image-spec/default.toml`) into `out/<image name>/`:
//!
//! 1. kernel and firmware stages (cached);
//! 2. rootfs stage (mkosi → erofs → dm-verity, cached; the key does not cover the Debian
//!    archive, `--no-cache` rebuilds);
//! 3. disk stage (ESP + GPT);
//! 4. kernel command line from the spec template and the verity values;
//! 5. predicted measurements per `[[shape]]`, and the vTPM PCRs once ([`stages::measure`]);
//! 6. `manifest.json` (`cvm-manifest`, canonical JSON, atomic) and, with a signing key
//!    (`--key` or the spec's `[signing] key` when that file exists), `manifest.dsse.json`.
//!
//! The kernel stage merges the spec's `[kernel].fragments` in order. The kernel and edk2
//! source pins and the variant recipes still come from the in-repo data
//! (`kernel-config/source.toml`, `ovmf/`); [`check_kernel_spec`] and [`check_firmware_spec`]
//! refuse a spec whose pins or firmware variants differ from them.

use crate::flags::BuildImageFlags;
use crate::progress::Stage;
use crate::stages::{disk, firmware, kernel, measure, rootfs};
use crate::{install, tools};
use anyhow::{Context, Result};
use cvm_image_spec::{cmdline::CmdlineValues, ImageSpec};
use cvm_manifest::{role, sign, Artefact, ImageInfo, Input, Manifest, Verity};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;
use xshell::Shell;

/// Name of the DSSE envelope next to the manifest.
pub const ENVELOPE: &str = "manifest.dsse.json";

/// The loaded spec: its value, its bytes (for the input pin) and a repo-relative label.
struct LoadedSpec {
    spec: ImageSpec,
    bytes: Vec<u8>,
    label: String,
}

/// What the stages produced so far (paths inside the output directory).
#[derive(Default)]
struct Built {
    artefacts: Vec<Artefact>,
    inputs: Vec<Input>,
    kernel: Option<PathBuf>,
    firmware: BTreeMap<String, PathBuf>,
    rootfs: Option<rootfs::RootfsOutputs>,
    disk: Option<disk::DiskOutputs>,
    /// The variable store that boots `disk` by UEFI (role `uefi-vars`).
    uefi_vars: Option<PathBuf>,
    epoch: Option<u64>,
}

pub fn run(sh: &Shell, flags: &BuildImageFlags) -> Result<()> {
    let start = Instant::now();
    let root = tools::workspace_root();
    let loaded = load_spec(&root, flags.spec.as_deref())?;
    let name = loaded.spec.image.name.clone();
    if !flags.no_install {
        install::install_build(sh)?;
        install::install_rootfs(sh)?;
    }
    let out = root.join("out").join(&name);
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let want = |s: &str| flags.only.is_empty() || flags.only.iter().any(|o| o == s);
    let mut stage = Stage::new(&format!("build-image {name}"), 6);
    let mut b = Built::default();
    b.inputs.push(Input {
        name: format!("spec:{}", loaded.label),
        sha256: sha256_hex(&loaded.bytes),
        version: None,
    });

    stage.step("kernel");
    if want("kernel") {
        build_kernel(sh, &root, &out, &loaded, flags, &mut b)?;
    }
    stage.step("firmware");
    if want("firmware") {
        build_firmware(sh, &root, &out, &loaded, flags, &mut b)?;
    }
    stage.step("rootfs (mkosi, erofs, dm-verity)");
    if want("rootfs") {
        build_rootfs(sh, &root, &out, &loaded.spec, flags, &mut b)?;
    }
    stage.step("disk (ESP + GPT)");
    if want("disk") {
        build_disk(&out, &mut b)?;
    }
    let cmdline = kernel_cmdline(&loaded.spec, b.rootfs.as_ref())?;
    if want("disk") {
        uefi_vars(&out, &cmdline, &mut b)?;
    }
    stage.step("measurements per shape");
    let (shapes, vtpm) = match (&b.kernel, want("measure")) {
        (Some(k), true) => {
            // Event logs of shapes the spec no longer has must not linger among the outputs.
            let logs = out.join("measurements");
            if logs.exists() {
                std::fs::remove_dir_all(&logs).with_context(|| format!("removing {}", logs.display()))?;
            }
            let bin = measure::cvm_measure(sh, &root)?;
            let mi = measure::MeasureInputs {
                kernel: k,
                initrd: None,
                cmdline: &cmdline,
                ovmf_snp: b.firmware.get(role::OVMF_SNP).map(PathBuf::as_path),
                ovmf_tdx: b.firmware.get(role::OVMF_TDX).map(PathBuf::as_path),
                ovmf_vtpm: b.firmware.get(role::OVMF_VTPM).map(PathBuf::as_path),
                uefi_disk: b.uefi_vars.as_deref().zip(b.disk.as_ref().map(|d| d.disk.as_path())),
                out_dir: &out,
                tdx_event_model: loaded.spec.firmware.tdx_event_model,
            };
            (
                measure::shapes(sh, &bin, &loaded.spec.shapes, &mi)?,
                measure::vtpm(sh, &bin, &mi)?,
            )
        }
        _ => {
            eprintln!("    skipped (needs the kernel stage)");
            (Vec::new(), None)
        }
    };
    stage.step("manifest");
    record_tools(sh, &want, &mut b)?;
    // The predicted TDX event logs, one artefact per shape and vCPU count.
    for s in &shapes {
        for e in s.tdx.as_ref().and_then(serde_json::Value::as_array).into_iter().flatten() {
            if let (Some(rel), Some(n)) = (e["event_log"].as_str(), e["vcpus"].as_u64()) {
                let role = format!("tdx-event-log.{}.{n}", s.name);
                b.artefacts.push(describe(&out, &role, &out.join(rel))?);
            }
        }
    }
    let initdata = initdata_digest(&root, &loaded.spec, &mut b)?;
    let mut manifest = assemble(&loaded.spec, b, cmdline, shapes);
    manifest.vtpm = vtpm;
    manifest.initdata_digest = initdata;
    let bytes = manifest.to_bytes().context("the manifest is not valid")?;
    tools::write_atomic(&out.join(cvm_manifest::FILE_NAME), &bytes)?;
    let signed = sign_manifest(&root, &out, &loaded.spec, flags.key.as_deref(), &bytes)?;
    stage.done(&format!(
        "{} artefacts, {} shapes, signed: {signed}",
        manifest.artefacts.len(),
        manifest.shapes.len()
    ));
    eprintln!(
        "==> build-image {name}: done in {} -> {}",
        crate::progress::fmt_duration(start.elapsed()),
        out.join(cvm_manifest::FILE_NAME).display()
    );
    if flags.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&summary(&name, &manifest, &bytes, signed))?
        );
    }
    Ok(())
}

/// `--spec FILE` (errors as the spec crate formats them), else the embedded default.
fn load_spec(root: &Path, spec: Option<&Path>) -> Result<LoadedSpec> {
    let Some(p) = spec else {
        let spec = ImageSpec::default_spec();
        return Ok(LoadedSpec {
            spec,
            bytes: cvm_image_spec::DEFAULT.as_bytes().to_vec(),
            label: cvm_image_spec::DEFAULT_FILE.into(),
        });
    };
    let spec = ImageSpec::load(p).map_err(|e| anyhow::anyhow!("{e}"))?;
    let bytes = std::fs::read(p).with_context(|| format!("reading spec {}", p.display()))?;
    Ok(LoadedSpec {
        spec,
        bytes,
        label: repo_label(root, p),
    })
}

/// A path as recorded in the manifest: relative to the repository, else its file name only.
fn repo_label(root: &Path, p: &Path) -> String {
    let abs = std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    match abs.strip_prefix(&root) {
        Ok(rel) => rel.to_string_lossy().into_owned(),
        Err(_) => p
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned(),
    }
}

fn build_kernel(
    sh: &Shell,
    root: &Path,
    out: &Path,
    spec: &LoadedSpec,
    flags: &BuildImageFlags,
    b: &mut Built,
) -> Result<()> {
    let mut inputs = kernel::KernelInputs::from_repo(root)?;
    // The merge list is the spec's `[kernel].fragments`, in its order (validated to stay
    // inside the repository); the source pin is still kernel-config/source.toml, checked below.
    inputs.fragments = spec.spec.kernel.fragments.iter().map(|f| root.join(f.as_str())).collect();
    check_kernel_spec(spec, &inputs)?;
    let k = kernel::build(sh, &inputs, flags.no_cache)?;
    eprintln!("    kernel: {:?} {}", k.outcome, k.dir.display());
    b.artefacts
        .push(place(out, role::KERNEL, &k.bz_image, "kernel/bzImage")?);
    b.artefacts
        .push(place(out, "kernel-config", &k.config, "kernel/config")?);
    b.kernel = Some(out.join("kernel/bzImage"));
    b.inputs.push(Input {
        name: format!("kernel:{}", inputs.deb_name),
        sha256: inputs.sha256.to_lowercase(),
        version: Some(inputs.version),
    });
    for f in &inputs.fragments {
        b.inputs.push(Input {
            name: format!("kernel-fragment:{}", repo_label(root, f)),
            sha256: tools::sha256_file(f)?,
            version: None,
        });
    }
    Ok(())
}

fn build_firmware(
    sh: &Shell,
    root: &Path,
    out: &Path,
    spec: &LoadedSpec,
    flags: &BuildImageFlags,
    b: &mut Built,
) -> Result<()> {
    let inputs = firmware::FirmwareInputs::from_repo(root)?;
    check_firmware_spec(spec, &inputs)?;
    for fw in firmware::build(sh, &inputs, &flags.variant, flags.no_cache)? {
        eprintln!("    {}: {:?} {}", fw.role, fw.outcome, fw.dir.display());
        for (i, f) in fw.files.iter().enumerate() {
            // OVMF.fd takes the variant's role; OVMF_CODE.fd -> `<role>-code`, OVMF_VARS.fd -> `<role>-vars`.
            let role = if i == 0 {
                fw.role.clone()
            } else {
                format!(
                    "{}-{}",
                    fw.role,
                    f.trim_end_matches(".fd")
                        .trim_start_matches("OVMF_")
                        .to_lowercase()
                )
            };
            let rel = format!("firmware/{}/{f}", fw.role);
            b.artefacts.push(place(out, &role, &fw.dir.join(f), &rel)?);
            if i == 0 {
                b.firmware.insert(fw.role.clone(), out.join(&rel));
            }
        }
    }
    let src = &inputs.source;
    for t in [&src.orig, &src.debian] {
        b.inputs.push(Input {
            name: format!("edk2:{}", t.file),
            sha256: t.sha256.to_lowercase(),
            version: Some(src.version.clone()),
        });
    }
    Ok(())
}

/// Refuse a spec whose `[kernel.source]` pin differs from the one the kernel stage uses
/// (`kernel-config/source.toml`).
fn check_kernel_spec(spec: &LoadedSpec, used: &kernel::KernelInputs) -> Result<()> {
    let s = &spec.spec.kernel.source;
    let mut diffs = Vec::new();
    for (key, want, have) in [
        ("package", s.package.as_str(), used.deb_name.as_str()),
        ("version", s.version.as_str(), used.version.as_str()),
    ] {
        if want != have {
            diffs.push(format!(
                "[kernel.source].{key} = {want:?}, but the kernel stage uses {have:?}"
            ));
        }
    }
    if !s.sha256.eq_ignore_ascii_case(&used.sha256) {
        diffs.push(format!(
            "[kernel.source].sha256 = {:?}, but the kernel stage uses {:?}",
            s.sha256, used.sha256
        ));
    }
    if s.kind != cvm_image_spec::SourceKind::Deb {
        diffs.push(format!(
            "[kernel.source].kind = {:?}, but the kernel stage only takes a .deb",
            s.kind
        ));
    }
    if !diffs.is_empty() {
        anyhow::bail!(
            "{}: the spec's kernel pin differs from what the kernel stage builds (kernel-config/source.toml; \
             the stage does not read [kernel.source] yet):\n  {}",
            spec.label,
            diffs.join("\n  ")
        );
    }
    Ok(())
}

/// The `ovmf/variants.toml` role of a spec firmware variant.
fn firmware_role(v: cvm_image_spec::FirmwareVariant) -> &'static str {
    use cvm_image_spec::FirmwareVariant as V;
    match v {
        V::IntelTdx => role::OVMF_TDX,
        V::AmdSev => role::OVMF_SNP,
        V::OvmfVtpm => role::OVMF_VTPM,
    }
}

/// Refuse a spec whose `[firmware.source]` pin differs from `ovmf/edk2.toml`, or whose
/// `[firmware].variants` name a variant `ovmf/variants.toml` does not build.
fn check_firmware_spec(spec: &LoadedSpec, used: &firmware::FirmwareInputs) -> Result<()> {
    let s = &spec.spec.firmware.source;
    let u = &used.source;
    let mut diffs = Vec::new();
    if s.package != u.package {
        diffs.push(format!(
            "[firmware.source].package = {:?}, but the firmware stage uses {:?}",
            s.package, u.package
        ));
    }
    if s.version != u.version {
        diffs.push(format!(
            "[firmware.source].version = {:?}, but the firmware stage uses {:?}",
            s.version, u.version
        ));
    }
    if !s.orig_sha256.eq_ignore_ascii_case(&u.orig.sha256) {
        diffs.push(format!(
            "[firmware.source].orig_sha256 = {:?}, but the firmware stage uses {:?} ({})",
            s.orig_sha256, u.orig.sha256, u.orig.file
        ));
    }
    if !s.debian_sha256.eq_ignore_ascii_case(&u.debian.sha256) {
        diffs.push(format!(
            "[firmware.source].debian_sha256 = {:?}, but the firmware stage uses {:?} ({})",
            s.debian_sha256, u.debian.sha256, u.debian.file
        ));
    }
    for v in &spec.spec.firmware.variants {
        let r = firmware_role(*v);
        if !used.variants.iter().any(|x| x.role == r) {
            diffs.push(format!(
                "[firmware].variants lists {:?}, but ovmf/variants.toml has no variant with role {r:?}",
                v.as_str()
            ));
        }
    }
    if !diffs.is_empty() {
        anyhow::bail!(
            "{}: the spec's firmware section differs from what the firmware stage builds (ovmf/edk2.toml, \
             ovmf/variants.toml; the stage does not read [firmware] yet):\n  {}",
            spec.label,
            diffs.join("\n  ")
        );
    }
    Ok(())
}

fn build_rootfs(
    sh: &Shell,
    root: &Path,
    out: &Path,
    spec: &ImageSpec,
    flags: &BuildImageFlags,
    b: &mut Built,
) -> Result<()> {
    let inputs = rootfs::RootfsInputs::for_spec(sh, root, &spec.rootfs)?;
    let r = rootfs::build_cached(sh, &inputs, flags.no_cache)?;
    eprintln!("    rootfs: {:?}", r.outcome);
    b.artefacts
        .push(place(out, role::ROOTFS, &r.erofs, "rootfs/rootfs.erofs")?);
    b.artefacts
        .push(place(out, role::VERITY, &r.verity, "rootfs/rootfs.verity")?);
    b.artefacts.push(place(
        out,
        "rootfs-packages",
        &r.manifest,
        "rootfs/rootfs.manifest.json",
    )?);
    // Every installed Debian package, by the sha256 of its .deb.
    let debs: Vec<serde_json::Value> = serde_json::from_slice(
        &std::fs::read(&r.debs).with_context(|| format!("reading {}", r.debs.display()))?,
    )
    .with_context(|| format!("parsing {}", r.debs.display()))?;
    for d in &debs {
        let s = |k: &str| d[k].as_str().map(str::to_owned).with_context(|| format!("{}: {k} of {d}", r.debs.display()));
        b.inputs.push(Input {
            name: format!("deb:{}:{}", s("name")?, s("architecture")?),
            sha256: s("sha256")?,
            version: Some(s("version")?),
        });
    }
    let conf = inputs.mkosi_dir.join("mkosi.conf");
    b.inputs.push(Input {
        name: format!("mkosi:{}", repo_label(root, &conf)),
        sha256: tools::sha256_file(&conf)?,
        version: None,
    });
    b.epoch = Some(inputs.source_date_epoch);
    b.rootfs = Some(r);
    Ok(())
}

fn build_disk(out: &Path, b: &mut Built) -> Result<()> {
    let (Some(kernel), Some(r), Some(epoch)) = (&b.kernel, &b.rootfs, b.epoch) else {
        eprintln!("    skipped (needs the kernel and rootfs stages)");
        return Ok(());
    };
    let dir = out.join("disk");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let d = disk::build(&disk::DiskInputs {
        kernel,
        rootfs: r,
        source_date_epoch: epoch,
        out_dir: &dir,
    })?;
    b.artefacts.push(describe(out, role::DISK, &d.disk)?);
    b.artefacts.push(describe(out, "esp", &d.esp)?);
    b.disk = Some(d);
    Ok(())
}

/// The build tools of the stages that ran as inputs `tool:<name>`: the sha256 of the executable
/// and its version line (the same tools and versions that key the stage caches). The Rust
/// toolchain that builds the agent is `tool:rustc` (the real binary, not the rustup proxy).
fn record_tools(sh: &Shell, want: &dyn Fn(&str) -> bool, b: &mut Built) -> Result<()> {
    let mut tools_used: BTreeMap<String, String> = BTreeMap::new();
    if want("kernel") && b.kernel.is_some() {
        tools_used.extend(tools::make::toolchain_versions(sh)?);
    }
    if want("firmware") && !b.firmware.is_empty() {
        tools_used.extend(tools::edk2::toolchain_versions(sh)?);
    }
    if want("rootfs") && b.rootfs.is_some() {
        tools_used.insert("mkosi".into(), tools::mkosi::version(sh)?);
        tools_used.insert("mkfs.erofs".into(), tools::erofs::version(sh)?);
    }
    for (prog, version) in tools_used {
        // `/usr/bin/python3` (edk2's pinned interpreter) is named `python3`: no paths in names.
        let exe = tools::executable(&prog)?;
        let name = Path::new(&prog).file_name().map_or(prog.clone(), |n| n.to_string_lossy().into_owned());
        b.inputs.push(Input {
            name: format!("tool:{name}"),
            sha256: tools::sha256_file(&exe)?,
            // The first line: name and version (edk2's key joins three lines).
            version: Some(version.split(" / ").next().unwrap_or_default().to_string()),
        });
    }
    if want("rootfs") && b.rootfs.is_some() {
        let sysroot = xshell::cmd!(sh, "rustc --print sysroot").quiet().read().context("rustc --print sysroot")?;
        let rustc = PathBuf::from(sysroot.trim()).join("bin/rustc");
        let version = xshell::cmd!(sh, "rustc --version").quiet().read().context("rustc --version")?;
        b.inputs.push(Input {
            name: "tool:rustc".into(),
            sha256: tools::sha256_file(&rustc)?,
            version: Some(version.trim().to_string()),
        });
    }
    Ok(())
}

/// `disk/uefi-vars.fd`: the ovmf-vtpm variable store with the boot option of the disk.
fn uefi_vars(out: &Path, cmdline: &str, b: &mut Built) -> Result<()> {
    let (Some(d), Some(fw)) = (&b.disk, b.firmware.get(role::OVMF_VTPM)) else {
        eprintln!("    UEFI variable store skipped (needs the disk and the ovmf-vtpm firmware)");
        return Ok(());
    };
    let path = out.join("disk").join("uefi-vars.fd");
    disk::uefi_vars(fw, &d.esp_partition, cmdline, &path)?;
    b.artefacts.push(describe(out, role::UEFI_VARS, &path)?);
    b.uefi_vars = Some(path);
    Ok(())
}

/// The spec's command line template filled with the verity values (template as-is without rootfs).
fn kernel_cmdline(spec: &ImageSpec, r: Option<&rootfs::RootfsOutputs>) -> Result<String> {
    let Some(r) = r else {
        return Ok(spec.kernel.cmdline.clone());
    };
    let values = CmdlineValues {
        verity_roothash: r.root_hash.clone(),
        verity_salt: r.salt.clone(),
        dm_table: r.dm_mod_create.clone(),
    };
    spec.cmdline(&values)
        .map_err(|e| anyhow::anyhow!("kernel command line template: {e}"))
}

/// The spec's `[initdata]` document: pinned as an input, and its digest as bound at launch:
/// `<algorithm>` (the document's own), `tdx_mrconfigid` (48 bytes) and `snp_hostdata` (32).
fn initdata_digest(root: &Path, spec: &ImageSpec, b: &mut Built) -> Result<BTreeMap<String, String>> {
    use cvm_measurements::initdata::{InitdataAlgorithm, InitdataDigest};
    let Some(i) = &spec.initdata else {
        return Ok(BTreeMap::new());
    };
    let path = i.file.resolve(root);
    let doc = std::fs::read(&path).with_context(|| format!("reading [initdata] file {}", path.display()))?;
    let d = InitdataDigest::of_document(&doc).with_context(|| format!("{}", path.display()))?;
    b.inputs.push(Input {
        name: format!("initdata:{}", i.file.as_str()),
        sha256: sha256_hex(&doc),
        version: None,
    });
    let alg = match d.algorithm {
        InitdataAlgorithm::Sha256 => "sha256",
        InitdataAlgorithm::Sha384 => "sha384",
        InitdataAlgorithm::Sha512 => "sha512",
        other => anyhow::bail!("{}: unsupported initdata algorithm {other:?}", path.display()),
    };
    Ok(BTreeMap::from([
        (alg.to_string(), hex::encode(&d.digest)),
        ("tdx_mrconfigid".to_string(), hex::encode(d.mr_config_id())),
        ("snp_hostdata".to_string(), hex::encode(d.host_data())),
    ]))
}

fn assemble(
    spec: &ImageSpec,
    b: Built,
    cmdline: String,
    shapes: Vec<cvm_manifest::ShapeMeasurements>,
) -> Manifest {
    let image = ImageInfo {
        name: spec.image.name.clone(),
        version: spec.image.version.clone(),
        test_image: spec.image.test_image,
    };
    let mut m = Manifest::new(image, cmdline);
    m.source_date_epoch = b.epoch;
    m.artefacts = b.artefacts;
    m.inputs = b.inputs;
    m.verity = b.rootfs.map(|r| Verity {
        root_hash: r.root_hash,
        salt: Some(r.salt),
    });
    m.shapes = shapes;
    m
}

/// Sign with `--key`, else the spec's `[signing] key` if that file exists; returns whether it
/// signed. Without a key, a stale envelope from an earlier run is removed.
fn sign_manifest(
    root: &Path,
    out: &Path,
    spec: &ImageSpec,
    key: Option<&Path>,
    bytes: &[u8],
) -> Result<bool> {
    let from_spec = spec
        .signing
        .as_ref()
        .map(|s| s.key.resolve(root))
        .filter(|p| p.exists());
    let env_path = out.join(ENVELOPE);
    let Some(key_path) = key.map(Path::to_path_buf).or(from_spec) else {
        if env_path.exists() {
            std::fs::remove_file(&env_path)
                .with_context(|| format!("removing stale {}", env_path.display()))?;
        }
        return Ok(false);
    };
    let pem = std::fs::read_to_string(&key_path)
        .with_context(|| format!("reading signing key {}", key_path.display()))?;
    let key = sign::SigningKey::from_pkcs8_pem(&pem)
        .map_err(|e| anyhow::anyhow!("signing key {}: {e}", key_path.display()))?;
    let env = sign::sign(bytes, cvm_manifest::FILE_NAME, &key).context("signing the manifest")?;
    tools::write_atomic(&env_path, &env)?;
    eprintln!(
        "    signed with {} -> {}",
        key_path.display(),
        env_path.display()
    );
    Ok(true)
}

fn summary(name: &str, m: &Manifest, bytes: &[u8], signed: bool) -> serde_json::Value {
    let artefacts: BTreeMap<&str, &str> = m
        .artefacts
        .iter()
        .map(|a| (a.role.as_str(), a.sha256.as_str()))
        .collect();
    serde_json::json!({
        "image": name,
        "manifest": format!("out/{name}/{}", cvm_manifest::FILE_NAME),
        "manifest_sha256": sha256_hex(bytes),
        "signed": signed,
        "root_hash": m.verity.as_ref().map(|v| v.root_hash.clone()),
        "cmdline": m.cmdline,
        "artefacts": artefacts,
        "shapes": m.shapes,
    })
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Copy `from` into `out/rel` atomically (temp file + rename) and describe it.
fn place(out: &Path, role: &str, from: &Path, rel: &str) -> Result<Artefact> {
    let to: PathBuf = out.join(rel);
    let dir = to.parent().context("artefact path has no parent")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        to.file_name().unwrap_or_default().to_string_lossy()
    ));
    std::fs::copy(from, &tmp)
        .with_context(|| format!("copying {} to {}", from.display(), tmp.display()))?;
    std::fs::rename(&tmp, &to)
        .with_context(|| format!("renaming {} to {}", tmp.display(), to.display()))?;
    describe(out, role, &to)
}

/// An artefact already inside `out`.
fn describe(out: &Path, role: &str, path: &Path) -> Result<Artefact> {
    let rel = path
        .strip_prefix(out)
        .with_context(|| format!("{} is not under {}", path.display(), out.display()))?;
    let size = std::fs::metadata(path)
        .with_context(|| format!("stat {}", path.display()))?
        .len();
    Ok(Artefact {
        role: role.into(),
        path: rel.to_string_lossy().into_owned(),
        sha256: tools::sha256_file(path)?,
        size,
    })
}
