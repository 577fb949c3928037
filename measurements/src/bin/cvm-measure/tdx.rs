//! `cvm-measure tdx` (not implemented yet).

#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<i32> {
    anyhow::bail!("cvm-measure tdx is not implemented yet")
}
