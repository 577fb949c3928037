//! Every task and flag of `cargo xtask`, declared once (`cargo xtask --help` lists them).

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Build, measure, test and publish confidential-VM images")]
pub struct Xtask {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Install the Debian packages and Python tools a task needs (adds trixie/backports with pins)
    Install(InstallFlags),
    /// Download the pinned test inputs (Debian OVMF and kernel packages) and check their sha256
    Fixtures,
    /// Run the whole test suite: unit tests, golden vectors, third-party oracles (installs tools)
    Test(TestFlags),
    /// Build the dm-verity root file system (mkosi + erofs + Rust verity) and, with --kernel, the GPT disk
    BuildRootfs(BuildRootfsFlags),
}

#[derive(Args)]
pub struct InstallFlags {
    /// Which tool set: `test` (oracles) or `all`
    #[arg(default_value = "test")]
    pub set: String,
}

#[derive(Args)]
pub struct TestFlags {
    /// Skip installing packages (assume `cargo xtask install` ran)
    #[arg(long)]
    pub no_install: bool,
}

#[derive(Args)]
pub struct BuildRootfsFlags {
    /// Kernel (bzImage with EFI stub) for the ESP; without it only the rootfs stage runs
    #[arg(long)]
    pub kernel: Option<std::path::PathBuf>,
    /// Skip installing packages (assume `cargo xtask install rootfs` ran)
    #[arg(long)]
    pub no_install: bool,
}
