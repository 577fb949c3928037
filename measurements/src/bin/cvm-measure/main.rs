//! `cvm-measure`: command-line front end of `cvm_measurements`. One file per subcommand.
//!
//! Exit codes: 0 success, 1 a verification found a mismatch, 2 the value could not be computed
//! (bad input, missing file, unsupported firmware).

mod cache;
mod explain;
mod input;
mod output;
mod qemu_acpi;
mod snp;
mod tdx;
mod verify;
mod vtpm;

use clap::Parser;

#[derive(Parser)]
#[command(name = "cvm-measure", version, about = "Predict confidential-VM launch measurements")]
enum Cli {
    /// AMD SEV / SEV-ES / SEV-SNP launch digest (same flags and output as sev-snp-measure 0.0.13)
    Snp(snp::Args),
    /// Intel TDX MRTD and RTMR0-3; `tdx replay` replays a CCEL event log
    Tdx(tdx::Args),
    /// Event-by-event diff of two CCEL event logs (exit 1 when they differ)
    Explain(explain::Args),
    /// Verify a signed measurement manifest and optionally its artefacts (exit 1 on mismatch)
    Verify(verify::Args),
    /// vTPM PCRs 0, 4, 5, 7, 9 (sha256, sha384) of QEMU + OVMF direct boot; --check-log compares a boot's log (exit 1 on mismatch)
    Vtpm(vtpm::Args),
}

fn main() {
    let res = match Cli::parse() {
        Cli::Snp(a) => snp::run(a),
        Cli::Tdx(a) => tdx::run(a),
        Cli::Explain(a) => explain::run(a),
        Cli::Verify(a) => verify::run(a),
        Cli::Vtpm(a) => vtpm::run(a),
    };
    match res {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("Error: {e:#}");
            std::process::exit(2);
        }
    }
}
