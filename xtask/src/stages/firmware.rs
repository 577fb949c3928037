//! Firmware stage: OVMF/TDVF variants from Debian's pinned edk2 source package.
//!
//! Source (`ovmf/edk2.toml`): orig + debian tarballs fetched with `apt-get source
//! --download-only`, checked against their sha256 pins, unpacked to the FIXED path
//! `/var/tmp/cvm-build/edk2/src`, `debian/patches/series` applied with `patch -p1`, then
//! BaseTools built (all reused while the pins are unchanged). Each variant of
//! `ovmf/variants.toml` is one cache entry, built from a clean `Build/` with
//! `SOURCE_DATE_EPOCH` and the system Python. The absolute path is fixed because edk2's
//! output depends on it (PE debug record size), so the checkout location does not matter.
//!
//! Cache key per variant: both tarball pins, the variant (dsc, flags, grub placeholder,
//! outputs), tool versions (nasm, iasl, python3, gcc, make) and [`RECIPE`].

use crate::cache::{Cache, Key, KeyBuilder, Outcome};
use crate::progress::Stage;
use crate::tools::{edk2, tar};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use xshell::Shell;

/// Bump when the steps below change in a way that changes outputs. 2: AutoGen with one worker
/// (`tools::edk2::build`), so entries made by racing AutoGen workers are not reused.
const RECIPE: u32 = 2;

#[derive(Debug, Clone, serde::Deserialize)]
pub struct Tarball {
    pub file: String,
    pub sha256: String,
}

/// `ovmf/edk2.toml`: the pinned source package.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Edk2Source {
    pub package: String,
    pub version: String,
    pub orig: Tarball,
    pub debian: Tarball,
}

/// One `[[variant]]` of `ovmf/variants.toml`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// Artefact role in the manifest: `ovmf-tdx`, `ovmf-snp`, `ovmf-vtpm`.
    pub role: String,
    /// Platform description, relative to the edk2 tree.
    pub dsc: String,
    /// Extra `build` arguments (`-D...`, `--pcd ...`).
    #[serde(default)]
    pub flags: Vec<String>,
    /// Files copied from `Build/<platform>/RELEASE_GCC5/FV/`.
    pub outputs: Vec<String>,
    /// Place an empty, future-dated `OvmfPkg/AmdSev/Grub/grub.efi` (AmdSev without grub).
    #[serde(default)]
    pub grub_placeholder: bool,
}

#[derive(serde::Deserialize)]
struct VariantsFile {
    variant: Vec<Variant>,
}

/// The firmware stage's inputs (the image spec's `[firmware]` section maps onto it).
#[derive(Debug, Clone)]
pub struct FirmwareInputs {
    pub source: Edk2Source,
    pub variants: Vec<Variant>,
}

impl FirmwareInputs {
    /// `ovmf/edk2.toml` + `ovmf/variants.toml`.
    pub fn from_repo(root: &Path) -> Result<FirmwareInputs> {
        let read = |name: &str| -> Result<String> {
            let p = root.join("ovmf").join(name);
            std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))
        };
        let source: Edk2Source = toml::from_str(&read("edk2.toml")?).context("parsing ovmf/edk2.toml")?;
        let variants: VariantsFile = toml::from_str(&read("variants.toml")?).context("parsing ovmf/variants.toml")?;
        Ok(FirmwareInputs { source, variants: variants.variant })
    }
}

/// One built variant.
#[derive(Debug, Clone)]
pub struct FirmwareOutput {
    pub role: String,
    pub dir: PathBuf,
    /// Output file names inside `dir`, in `Variant::outputs` order.
    pub files: Vec<String>,
    pub outcome: Outcome,
}

/// Run the firmware stage for every variant whose role is in `roles` (all if empty).
pub fn build(sh: &Shell, inputs: &FirmwareInputs, roles: &[String], rebuild: bool) -> Result<Vec<FirmwareOutput>> {
    let variants: Vec<&Variant> = inputs.variants.iter().filter(|v| roles.is_empty() || roles.contains(&v.role)).collect();
    let mut st = Stage::new("firmware", 2 + variants.len());
    st.step(&format!("fetch {}={}", inputs.source.package, inputs.source.version));
    let (orig, debian) = fetch(sh, &inputs.source)?;
    st.step("cache keys");
    let tools = edk2::toolchain_versions(sh)?;
    let cache = Cache::open()?;
    let mut outs = Vec::new();
    for v in variants {
        st.step(&format!("{} ({})", v.role, v.dsc));
        let key = variant_key(&inputs.source, v, &tools);
        let (dir, outcome) = cache.get_or_build(&format!("firmware-{}", v.role), &key, rebuild, |out| {
            let _lock = super::lock("edk2")?;
            let root = Path::new(super::BUILD_ROOT).join("edk2");
            let src = prepare_source(sh, &inputs.source, &orig, &debian, &root)?;
            build_variant(sh, &src, v, &root.join("logs"), out)
        })?;
        for f in &v.outputs {
            eprintln!("    {} {f}: {}", v.role, crate::tools::sha256_file(&dir.join(f))?);
        }
        outs.push(FirmwareOutput { role: v.role.clone(), dir, files: v.outputs.clone(), outcome });
    }
    st.done(&format!("{} variant(s)", outs.len()));
    Ok(outs)
}

/// One variant's cache key, from the pins, the variant and the tool versions.
fn variant_key(source: &Edk2Source, v: &Variant, tools: &[(String, String)]) -> Key {
    let mut kb = KeyBuilder::new("firmware", RECIPE)
        .text("orig", &format!("{} sha256:{}", source.orig.file, source.orig.sha256))
        .text("debian", &format!("{} sha256:{}", source.debian.file, source.debian.sha256))
        .text("dsc", &v.dsc)
        .text("flags", &v.flags.join(" "))
        .text("outputs", &v.outputs.join(" "))
        .text("grub_placeholder", &v.grub_placeholder.to_string())
        .text("env SOURCE_DATE_EPOCH", crate::tools::make::SOURCE_DATE_EPOCH);
    for (prog, ver) in tools {
        kb = kb.text(&format!("tool {prog}"), ver);
    }
    kb.finish()
}

/// The cached build of the variant with `role`, without building: `Err` naming
/// `cargo xtask build-image` when there is none.
pub fn cached(sh: &Shell, inputs: &FirmwareInputs, role: &str) -> Result<PathBuf> {
    let v = inputs.variants.iter().find(|v| v.role == role).with_context(|| format!("no firmware variant with role {role} in ovmf/variants.toml"))?;
    let key = variant_key(&inputs.source, v, &edk2::toolchain_versions(sh)?);
    Cache::open()?.lookup(&format!("firmware-{role}"), &key).with_context(|| {
        format!("no {role} firmware in the cache for the current ovmf/ pins (key {}): run `cargo xtask build-image` first", &key.hex[..16])
    })
}

/// Download (if needed) and check both tarballs; returns their paths.
fn fetch(sh: &Shell, source: &Edk2Source) -> Result<(PathBuf, PathBuf)> {
    let dir = super::downloads_dir()?.join("edk2");
    let orig = dir.join(&source.orig.file);
    let debian = dir.join(&source.debian.file);
    if !(orig.is_file() && debian.is_file()) {
        edk2::download_source(sh, &dir, &source.version)?;
    }
    for (p, t) in [(&orig, &source.orig), (&debian, &source.debian)] {
        anyhow::ensure!(p.is_file(), "{} was not downloaded by apt-get source (is deb-src for trixie configured? run `cargo xtask install build`)", p.display());
        super::check_sha256(p, &t.sha256)?;
    }
    Ok((orig, debian))
}

/// Unpack + patch + BaseTools at `root/src`, unless the stamp says it is current.
fn prepare_source(sh: &Shell, source: &Edk2Source, orig: &Path, debian: &Path, root: &Path) -> Result<PathBuf> {
    let src = root.join("src");
    let stamp = root.join("src.stamp");
    let want = format!("{} {} basetools\n", source.orig.sha256, source.debian.sha256);
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(want.as_str()) && src.join("edksetup.sh").is_file() {
        eprintln!("    edk2 tree {} is current (patched, BaseTools built)", src.display());
        return Ok(src);
    }
    let _ = std::fs::remove_file(&stamp);
    if src.exists() {
        std::fs::remove_dir_all(&src).with_context(|| format!("removing {}", src.display()))?;
    }
    tar::extract(sh, orig, &src, 1)?;
    tar::extract(sh, debian, &src, 0)?;
    edk2::apply_series(sh, &src, &src.join("debian/patches"))?;
    edk2::build_basetools(sh, &src, &root.join("logs/basetools.log"))?;
    std::fs::write(&stamp, want).with_context(|| format!("writing {}", stamp.display()))?;
    Ok(src)
}

/// Clean `Build/`, build one variant, copy its outputs into `out`.
fn build_variant(sh: &Shell, src: &Path, v: &Variant, logs: &Path, out: &Path) -> Result<()> {
    let build_dir = src.join("Build");
    if build_dir.exists() {
        std::fs::remove_dir_all(&build_dir).with_context(|| format!("removing {}", build_dir.display()))?;
    }
    if v.grub_placeholder {
        let grub = src.join("OvmfPkg/AmdSev/Grub/grub.efi");
        let f = std::fs::File::create(&grub).with_context(|| format!("creating placeholder {}", grub.display()))?;
        // 2030-01-01: newer than grub.sh and grub.cfg, so grub.sh keeps the empty file.
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_893_456_000);
        f.set_modified(t).with_context(|| format!("setting mtime of {}", grub.display()))?;
    }
    edk2::build(sh, src, &v.dsc, &v.flags, &v.role, &logs.join(format!("{}.log", v.role)))?;
    let fv = find_fv_dir(&build_dir)?;
    for f in &v.outputs {
        super::copy(&fv.join(f), &out.join(f))?;
    }
    Ok(())
}

/// `Build/<platform>/RELEASE_GCC5/FV` (exactly one after a clean build).
fn find_fv_dir(build_dir: &Path) -> Result<PathBuf> {
    let mut found = Vec::new();
    for e in std::fs::read_dir(build_dir).with_context(|| format!("listing {}", build_dir.display()))?.flatten() {
        let fv = e.path().join("RELEASE_GCC5/FV");
        if fv.is_dir() {
            found.push(fv);
        }
    }
    anyhow::ensure!(found.len() == 1, "expected one Build/*/RELEASE_GCC5/FV under {}, found {found:?}", build_dir.display());
    Ok(found.remove(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_pins_and_variants_parse() {
        let i = FirmwareInputs::from_repo(&crate::tools::workspace_root()).unwrap();
        assert_eq!(i.source.version, "2025.02-8+deb13u1");
        for t in [&i.source.orig, &i.source.debian] {
            assert_eq!(t.sha256.len(), 64, "{} pin must be a sha256", t.file);
        }
        let roles: Vec<&str> = i.variants.iter().map(|v| v.role.as_str()).collect();
        assert_eq!(roles, ["ovmf-tdx", "ovmf-snp", "ovmf-vtpm"]);
        let snp = &i.variants[1];
        assert!(snp.grub_placeholder && snp.dsc.ends_with("AmdSevX64.dsc"));
        let vtpm = &i.variants[2];
        assert!(vtpm.flags.iter().any(|f| f == "-DTPM2_ENABLE=TRUE"));
        assert!(vtpm.outputs.iter().any(|f| f == "OVMF_CODE.fd") && vtpm.outputs.iter().any(|f| f == "OVMF_VARS.fd"));
    }
}
