//! `cargo xtask install [test|all]`: install what the tasks need, saying what it does.

use crate::flags::InstallFlags;
use crate::tools::{self, apt, python};
use anyhow::{bail, Result};
use xshell::Shell;

/// Debian packages for the test suite's oracles (bookworm unless noted).
const TEST_PACKAGES: &[&str] = &["python3-venv", "pesign", "cryptsetup-bin", "gdisk", "dosfstools", "mtools", "fdisk", "binutils", "swtpm", "swtpm-tools", "tpm2-tools"];
/// `verify-repro` explains a differing output with diffoscope (bookworm 240; the minimal
/// package, without its ~70 recommended format tools).
const REPRO_PACKAGES: &[&str] = &["diffoscope-minimal"];
/// Publishing oracles (bookworm): protoc for the cvm-publish codegen staleness test,
/// docker-registry 2.8 for the OCI push test.
const PUBLISH_TEST_PACKAGES: &[&str] = &["protobuf-compiler", "docker-registry"];
/// Publishing oracles only in trixie: oras 1.2.
const PUBLISH_TEST_PACKAGES_TRIXIE: &[&str] = &["oras"];

pub fn run(sh: &Shell, flags: &InstallFlags) -> Result<()> {
    match flags.set.as_str() {
        "test" => install_test(sh),
        "build" => install_build(sh),
        "all" => install_test(sh).and_then(|()| install_build(sh)),
        "rootfs" => install_rootfs(sh),
        "repro" => install_repro(sh),
        other => bail!("unknown tool set {other:?}: use `test`, `build`, `rootfs`, `repro` or `all`"),
    }
}

/// TDX ACPI capture (`cvm-measure tdx --qemu`, measurements/tests/cli_tdx.rs): the Debian QEMU
/// the shared/vectors/acpi blobs were captured with (10.0.13, trixie).
const TDX_TEST_PACKAGES_TRIXIE: &[&str] = &["qemu-system-x86"];

/// Signing oracle only in trixie: cosign 2.5 (verify-blob, verify-blob-attestation).
const SIGNING_TEST_PACKAGES_TRIXIE: &[&str] = &["cosign"];

pub fn install_test(sh: &Shell) -> Result<()> {
    tools::stage("install: apt suites and pins (trixie, bookworm-backports at priority 100)");
    apt::ensure_suites(sh)?;
    tools::stage("install: Debian packages for the test oracles");
    apt::install(sh, None, TEST_PACKAGES)?;
    apt::install(sh, None, PUBLISH_TEST_PACKAGES)?;
    apt::install(sh, None, REPRO_PACKAGES)?;
    apt::install(sh, Some("trixie"), PUBLISH_TEST_PACKAGES_TRIXIE)?;
    tools::stage("install: Python venv with sev-snp-measure (PyPI)");
    python::ensure_venv(sh)?;
    tools::stage("install: cosign (trixie) for the signature oracle");
    apt::install(sh, Some("trixie"), SIGNING_TEST_PACKAGES_TRIXIE)?;
    tools::stage("install: qemu-system-x86 (trixie) for the TDX ACPI capture test");
    apt::install(sh, Some("trixie"), TDX_TEST_PACKAGES_TRIXIE)?;
    Ok(())
}

/// From trixie: mkosi 25 (bookworm has 14) and erofs-utils 1.8 (`--all-time`); mkosi pulls
/// systemd-repart, cryptsetup-bin, apt 3 and python3 3.13 from trixie with it.
const ROOTFS_PACKAGES_TRIXIE: &[&str] = &["mkosi", "erofs-utils", "cryptsetup-bin", "debian-archive-keyring"];

/// Install what the rootfs and disk stages need (mkosi, mkfs.erofs, veritysetup).
pub fn install_rootfs(sh: &Shell) -> Result<()> {
    tools::stage("install: apt suites and pins (trixie, bookworm-backports at priority 100)");
    apt::ensure_suites(sh)?;
    tools::stage("install: mkosi 25 and erofs-utils 1.8 from trixie");
    apt::install(sh, Some("trixie"), ROOTFS_PACKAGES_TRIXIE)?;
    Ok(())
}

/// Debian (bookworm) packages for the kernel and edk2 builds and the boot smoke test.
const BUILD_PACKAGES: &[&str] = &[
    "build-essential", "bc", "flex", "bison", "libelf-dev", "libssl-dev", "cpio", "xz-utils", "patch",
    "nasm", "acpica-tools", "uuid-dev", "python3", "busybox-static",
];
/// From trixie (pinned at priority 100, so installed by name with `-t trixie`).
const BUILD_PACKAGES_TRIXIE: &[&str] = &["qemu-system-x86"];

/// Install what `cargo xtask build-image` and `boot-smoke` need (kernel + edk2 toolchains, QEMU).
pub fn install_build(sh: &Shell) -> Result<()> {
    tools::stage("install: apt suites and pins (trixie, bookworm-backports at priority 100)");
    apt::ensure_suites(sh)?;
    tools::stage("install: Debian packages for kernel and firmware builds");
    apt::install(sh, None, BUILD_PACKAGES)?;
    apt::install(sh, Some("trixie"), BUILD_PACKAGES_TRIXIE)?;
    Ok(())
}

/// What `verify-repro` needs: the build tools (build B runs with `--no-install`) and diffoscope.
pub fn install_repro(sh: &Shell) -> Result<()> {
    install_build(sh)?;
    install_rootfs(sh)?;
    tools::stage("install: diffoscope (minimal) for verify-repro");
    apt::install(sh, None, REPRO_PACKAGES)
}
