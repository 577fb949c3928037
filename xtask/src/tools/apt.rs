//! Debian's apt: suites, pins, package installs and `apt-get download` of pinned packages.
//!
//! Newer tools (mkosi 25, QEMU 10, OVMF 2025.02, swtpm, cosign) come from `trixie` and
//! `bookworm-backports`, added with a low pin priority (100) so that nothing from them is
//! installed unless asked for by name (`-t trixie`).

use anyhow::{Context, Result};
use std::path::Path;
use xshell::{cmd, Shell};

const SOURCES_FILE: &str = "/etc/apt/sources.list.d/cvm-trixie.sources";
const PINS_FILE: &str = "/etc/apt/preferences.d/cvm-pins";

const SOURCES: &str = "\
Types: deb deb-src
URIs: http://deb.debian.org/debian
Suites: trixie trixie-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb deb-src
URIs: http://deb.debian.org/debian-security
Suites: trixie-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
";

const PINS: &str = "\
Package: *
Pin: release n=trixie
Pin-Priority: 100

Package: *
Pin: release n=trixie-security
Pin-Priority: 100

Package: *
Pin: release n=trixie-updates
Pin-Priority: 100
";

/// Add the trixie and bookworm-backports suites with pins, and `apt-get update` if anything
/// changed or the lists are missing.
pub fn ensure_suites(sh: &Shell) -> Result<()> {
    let mut changed = false;
    for (path, text) in [(SOURCES_FILE, SOURCES), (PINS_FILE, PINS)] {
        if std::fs::read_to_string(path).ok().as_deref() != Some(text) {
            eprintln!("    adding {path}");
            std::fs::write(path, text).with_context(|| format!("writing {path} (run as root)"))?;
            changed = true;
        }
    }
    let have_lists = std::fs::read_dir("/var/lib/apt/lists")
        .map(|d| d.flatten().any(|e| e.file_name().to_string_lossy().contains("trixie")))
        .unwrap_or(false);
    if changed || !have_lists {
        cmd!(sh, "apt-get update -qq").run()?;
    }
    Ok(())
}

/// Install packages that are not installed yet. `suite` = `Some("trixie")` installs with
/// `-t trixie`.
pub fn install(sh: &Shell, suite: Option<&str>, packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages.iter().copied().filter(|p| !is_installed(sh, p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("    installing {}", missing.join(" "));
    let target: Vec<String> = suite.map(|s| vec!["-t".into(), s.into()]).unwrap_or_default();
    cmd!(sh, "apt-get install -y -qq --no-install-recommends {target...} {missing...}")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .run()?;
    Ok(())
}

fn is_installed(sh: &Shell, package: &str) -> bool {
    let format = "-f=${Status}";
    cmd!(sh, "dpkg-query -W {format} {package}")
        .quiet()
        .ignore_stderr()
        .read()
        .map(|s| s.contains("install ok installed"))
        .unwrap_or(false)
}

/// `apt-get download NAME=VERSION` into `dir`, returning the .deb path.
pub fn download(sh: &Shell, dir: &Path, name: &str, version: &str) -> Result<std::path::PathBuf> {
    std::fs::create_dir_all(dir)?;
    if let Some(p) = find_deb(dir, name, version)? {
        return Ok(p);
    }
    let _d = sh.push_dir(dir);
    let spec = format!("{name}={version}");
    cmd!(sh, "apt-get download -qq {spec}").run().with_context(|| format!("apt-get download {spec}"))?;
    find_deb(dir, name, version)?
        .with_context(|| format!("apt-get download {spec} left no .deb in {}", dir.display()))
}

fn find_deb(dir: &Path, name: &str, version: &str) -> Result<Option<std::path::PathBuf>> {
    let want = format!("{name}_{}_", version.replace(':', "%3a"));
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let f = e.file_name().to_string_lossy().to_string();
        if f.starts_with(&want) && f.ends_with(".deb") {
            return Ok(Some(e.path()));
        }
    }
    Ok(None)
}

/// `dpkg-deb -x DEB DIR`.
pub fn extract(sh: &Shell, deb: &Path, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    cmd!(sh, "dpkg-deb -x {deb} {dir}").run()?;
    Ok(())
}
