//! `cvm-measure`: command-line front end of `cvm_measurements`.

use clap::Parser;

#[derive(Parser)]
#[command(name = "cvm-measure", version, about = "Predict confidential-VM launch measurements")]
enum Cli {}

fn main() {
    let _ = Cli::parse();
}
