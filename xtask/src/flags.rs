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
    /// Generate an ECDSA P-256 manifest signing key: DIR/signing.pem (PKCS#8, mode 0600) and DIR/signing.pub (SPKI)
    Keygen(KeygenFlags),
    /// Run the whole test suite: unit tests, golden vectors, third-party oracles (installs tools)
    Test(TestFlags),
    /// Build the image's kernel and firmware from pinned sources (cached) into out/<name>/
    BuildImage(BuildImageFlags),
    /// Boot the cached kernel + OvmfPkgX64 firmware under QEMU to an initramfs marker (run build-image first)
    BootSmoke(BootSmokeFlags),
    /// Boot the built image with the mock TEE (swtpm + test key broker): predicted = measured, tampering caught, LUKS key release
    BootTest(BootTestFlags),
    /// Publish a signed manifest: push it as an OCI artifact and/or register its reference values with an RVPS (loopback only)
    Publish(PublishFlags),
    /// Build the image again from scratch in another directory (umask, TZ, locale, -j varied) and compare every output byte for byte
    VerifyRepro(VerifyReproFlags),
}

#[derive(Args)]
pub struct InstallFlags {
    /// Which tool set: `test` (oracles) or `all`
    #[arg(default_value = "test")]
    pub set: String,
}

#[derive(Args)]
pub struct KeygenFlags {
    /// Directory for signing.pem and signing.pub (created; an existing key is never overwritten)
    #[arg(long, value_name = "DIR")]
    pub out: std::path::PathBuf,
}

#[derive(Args)]
pub struct TestFlags {
    /// Skip installing packages (assume `cargo xtask install` ran)
    #[arg(long)]
    pub no_install: bool,
    /// Run verify-repro whatever the time budget says (a second build from scratch, compared
    /// byte for byte: as long as a cold build)
    #[arg(long, conflicts_with = "no_repro")]
    pub repro: bool,
    /// Do not run verify-repro
    #[arg(long)]
    pub no_repro: bool,
    /// Minutes the whole test command may take (CI gives 90): verify-repro, the last phase, runs
    /// only when at least 35 of them are left, and gives up when they run out
    #[arg(long, value_name = "MINUTES", default_value_t = 75)]
    pub budget: u64,
}

#[derive(Args)]
pub struct PublishFlags {
    /// The measurement manifest (out/<name>/manifest.json)
    #[arg(long)]
    pub manifest: std::path::PathBuf,
    /// Its DSSE envelope (in-toto Statement whose subject is the manifest)
    #[arg(long)]
    pub envelope: std::path::PathBuf,
    /// Public key (SPKI PEM, P-256) that must have signed the envelope; without it the
    /// signature is not verified (a warning is printed)
    #[arg(long)]
    pub key: Option<std::path::PathBuf>,
    /// RVPS gRPC endpoint to register with, e.g. http://127.0.0.1:50003
    #[arg(long)]
    pub rvps: Option<String>,
    /// OCI reference to push to, e.g. 127.0.0.1:5000/guest/refvals:v0.1.0
    #[arg(long)]
    pub oci: Option<String>,
    /// Also register versioned ids rvps:///<RV_PREFIX>/<platform>/<id>:<RV_TAG>, e.g. example.org/guest
    #[arg(long, requires = "rv_tag")]
    pub rv_prefix: Option<String>,
    /// The tag of the versioned ids, e.g. v0.1.0
    #[arg(long, requires = "rv_prefix")]
    pub rv_tag: Option<String>,
}

#[derive(Args)]
pub struct BuildImageFlags {
    /// Image spec (TOML) (default: the embedded image-spec/default.toml)
    #[arg(long)]
    pub spec: Option<std::path::PathBuf>,
    /// Print a JSON summary (manifest sha256, artefacts, measurements) on stdout
    #[arg(long)]
    pub json: bool,
    /// Sign the manifest with this PKCS#8 PEM P-256 key (`cargo xtask keygen`) into
    /// manifest.dsse.json (default: the spec's `[signing] key`, if that file exists)
    #[arg(long, value_name = "FILE")]
    pub key: Option<std::path::PathBuf>,
    /// Rebuild every stage even on a cache hit, replacing the entry and reporting whether
    /// the new outputs are identical to the cached ones (a reproducibility check)
    #[arg(long)]
    pub no_cache: bool,
    /// Run only these stages: `kernel`, `firmware`, `rootfs`, `disk`, `measure` (repeatable; default: all)
    #[arg(long)]
    pub only: Vec<String>,
    /// Build only these firmware variants by role: `ovmf-tdx`, `ovmf-snp`, `ovmf-vtpm` (repeatable; default: all)
    #[arg(long)]
    pub variant: Vec<String>,
    /// Skip installing build dependencies (assume `cargo xtask install build` ran)
    #[arg(long)]
    pub no_install: bool,
}

#[derive(Args)]
pub struct BootSmokeFlags {
    /// Firmware variant (role in ovmf/variants.toml) to boot with: `ovmf-vtpm` or `ovmf-tdx` (ovmf-snp cannot boot outside SEV)
    #[arg(long, default_value = "ovmf-vtpm")]
    pub firmware: String,
}

#[derive(Args)]
pub struct VerifyReproFlags {
    /// Image spec (TOML) inside the checkout (default: image-spec/default.toml)
    #[arg(long)]
    pub spec: Option<std::path::PathBuf>,
    /// Build A from scratch too (empty cache), instead of taking out/<name>/ from the user's cache
    #[arg(long)]
    pub twice: bool,
    /// Scratch directory for build B's checkout copy, the empty caches and diffoscope reports
    /// (default: /var/tmp/cvm-verify-repro)
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<std::path::PathBuf>,
    /// make -j / edk2 -n of build B (default: build A's + 1)
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Skip installing build dependencies and diffoscope (assume `cargo xtask install` ran)
    #[arg(long)]
    pub no_install: bool,
    /// Give up (exit status 3, nothing compared) when build B has not finished after this many
    /// minutes from the start of verify-repro (`cargo xtask test` sets it from its time budget)
    #[arg(long, value_name = "MINUTES")]
    pub time_limit: Option<u64>,
}

#[derive(Args)]
pub struct BootTestFlags {
    /// The build output directory holding manifest.json (default: out/<default spec name>)
    #[arg(long, value_name = "DIR")]
    pub out: Option<std::path::PathBuf>,
    /// Run only these cases (repeatable): good, rootfs, cmdline, kernel, initrd, firmware, signature
    #[arg(long)]
    pub case: Vec<String>,
}
