//! `cargo xtask`: orchestration of the image pipeline. This is the only crate that runs
//! external programs (through [`tools`]); the logic lives in the library crates.

mod boot_smoke;
mod boot_test;
mod build_image;
mod cache;
mod fixtures;
mod flags;
mod install;
mod keygen;
mod progress;
mod publish;
mod stages;
mod test;
mod tools;
mod verify_repro;

use anyhow::Result;
use clap::Parser;

fn main() -> Result<()> {
    let flags = flags::Xtask::parse();
    let sh = tools::shell()?;
    match flags.cmd {
        flags::Cmd::Install(f) => install::run(&sh, &f),
        flags::Cmd::Fixtures => fixtures::run(&sh).map(|_| ()),
        flags::Cmd::Keygen(f) => keygen::run(&f),
        flags::Cmd::Test(f) => test::run(&sh, &f),
        flags::Cmd::BuildImage(f) => build_image::run(&sh, &f),
        flags::Cmd::BootSmoke(f) => boot_smoke::run(&sh, &f),
        flags::Cmd::BootTest(f) => boot_test::run(&sh, &f),
        flags::Cmd::Publish(f) => publish::run(&f),
        flags::Cmd::VerifyRepro(f) => verify_repro::run(&sh, &f),
    }
}
