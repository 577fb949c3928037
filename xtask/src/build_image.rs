//! `cargo xtask build-image [--spec FILE] [--json]`: run the build stages (for now kernel
//! and firmware), copy their outputs to `out/<spec name>/` and write a partial
//! `manifest.json` listing the artefacts by role with relative path and sha256.
//!
//! Inputs come from the in-repo data (`kernel-config/`, `ovmf/`) until the image spec's
//! `[kernel]`/`[firmware]` sections are wired into [`stages::kernel::KernelInputs`] and
//! [`stages::firmware::FirmwareInputs`]; from the spec only its name is read so far.

use crate::flags::BuildImageFlags;
use crate::stages::{firmware, kernel};
use crate::{install, tools};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::time::Instant;
use xshell::Shell;

/// One output artefact: role, path relative to the output directory, sha256.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Artefact {
    pub role: String,
    pub path: String,
    pub sha256: String,
}

pub fn run(sh: &Shell, flags: &BuildImageFlags) -> Result<()> {
    let start = Instant::now();
    let root = tools::workspace_root();
    let name = spec_name(flags.spec.as_deref())?;
    if !flags.no_install {
        install::install_build(sh)?;
    }
    let out = root.join("out").join(&name);
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let mut artefacts = Vec::new();
    let mut summary = Vec::new();
    let want = |s: &str| flags.only.is_empty() || flags.only.iter().any(|o| o == s);

    if want("kernel") {
        let k = kernel::build(sh, &kernel::KernelInputs::from_repo(&root)?, flags.no_cache)?;
        summary.push(format!("kernel: {:?} {}", k.outcome, k.dir.display()));
        artefacts.push(place(&out, "kernel", &k.bz_image, "kernel/bzImage")?);
        artefacts.push(place(&out, "kernel-config", &k.config, "kernel/config")?);
    }
    if want("firmware") {
        let inputs = firmware::FirmwareInputs::from_repo(&root)?;
        for fw in firmware::build(sh, &inputs, &flags.variant, flags.no_cache)? {
            summary.push(format!("{}: {:?} {}", fw.role, fw.outcome, fw.dir.display()));
            for (i, f) in fw.files.iter().enumerate() {
                // OVMF.fd takes the variant's role; OVMF_CODE.fd -> `<role>-code`, OVMF_VARS.fd -> `<role>-vars`.
                let role = if i == 0 { fw.role.clone() } else { format!("{}-{}", fw.role, f.trim_end_matches(".fd").trim_start_matches("OVMF_").to_lowercase()) };
                artefacts.push(place(&out, &role, &fw.dir.join(f), &format!("firmware/{}/{f}", fw.role))?);
            }
        }
    }
    let manifest = write_manifest(&out, &name, &artefacts)?;
    for s in &summary {
        eprintln!("    {s}");
    }
    eprintln!("==> build-image {name}: done in {} -> {}", crate::progress::fmt_duration(start.elapsed()), out.join("manifest.json").display());
    if flags.json {
        println!("{manifest}");
    }
    Ok(())
}

/// The spec's name (`name = ...` at top level or in `[image]`), else `default`.
fn spec_name(spec: Option<&Path>) -> Result<String> {
    let Some(p) = spec else { return Ok("default".into()) };
    let text = std::fs::read_to_string(p).with_context(|| format!("reading spec {}", p.display()))?;
    let v: toml::Value = toml::from_str(&text).with_context(|| format!("parsing spec {}", p.display()))?;
    let name = v.get("name").or_else(|| v.get("image").and_then(|i| i.get("name"))).and_then(|n| n.as_str());
    let name = match name {
        Some(n) => n.to_string(),
        None => p.file_stem().unwrap_or_default().to_string_lossy().to_string(),
    };
    anyhow::ensure!(!name.is_empty() && !name.contains('/') && !name.starts_with('.'), "spec {}: bad image name {name:?}", p.display());
    Ok(name)
}

/// Copy `from` into `out/rel` atomically and describe it.
fn place(out: &Path, role: &str, from: &Path, rel: &str) -> Result<Artefact> {
    let to: PathBuf = out.join(rel);
    let bytes = std::fs::read(from).with_context(|| format!("reading {}", from.display()))?;
    tools::write_atomic(&to, &bytes)?;
    Ok(Artefact { role: role.into(), path: rel.into(), sha256: tools::sha256_file(&to)? })
}

/// The partial manifest (to be replaced by the manifest crate's writer): artefacts by role.
fn write_manifest(out: &Path, name: &str, artefacts: &[Artefact]) -> Result<String> {
    let json = serde_json::to_string_pretty(&serde_json::json!({ "name": name, "artefacts": artefacts }))?;
    tools::write_atomic(&out.join("manifest.json"), format!("{json}\n").as_bytes())?;
    Ok(json)
}
