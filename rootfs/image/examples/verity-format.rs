//! `cargo run --release -p cvm-rootfs --example verity-format -- DATA HASH [--no-superblock] [--salt=HEX]`:
//! the library's dm-verity `format` on files, for benchmarks against `veritysetup format`
//! (`docs/benchmarks.md`). Prints root hash, salt, times. Without `--salt` the salt is derived
//! as the build does (sha256 of the data first, timed separately).

use cvm_rootfs::verity::{self, HashLayout, Salt};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::BufWriter;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [data, hash, rest @ ..] = &args[..] else {
        eprintln!("usage: verity-format DATA HASH [--no-superblock] [--salt=HEX]");
        std::process::exit(2);
    };
    let layout = if rest.iter().any(|a| a == "--no-superblock") {
        HashLayout::NoSuperblock
    } else {
        HashLayout::Superblock
    };
    let t0 = Instant::now();
    let salt = match rest.iter().find_map(|a| a.strip_prefix("--salt=")) {
        Some(hex_salt) => {
            let bytes: [u8; 32] = hex::decode(hex_salt)
                .ok()
                .and_then(|b| b.try_into().ok())
                .expect("--salt: 64 hex digits");
            Salt(bytes)
        }
        None => {
            let mut h = Sha256::new();
            std::io::copy(&mut File::open(data).expect("open data"), &mut h).expect("read data");
            Salt::derive(&h.finalize().into())
        }
    };
    let t1 = Instant::now();
    let v = verity::format(
        File::open(data).expect("open data"),
        BufWriter::new(File::create(hash).expect("create hash")),
        &salt,
        layout,
    )
    .expect("verity format");
    let t2 = Instant::now();
    println!("Root hash:\t{}", v.root_hash_hex());
    println!("Salt:\t{}", salt.to_hex());
    println!("Data blocks:\t{}", v.data_blocks);
    println!(
        "salt: {:.3}s  tree: {:.3}s",
        (t1 - t0).as_secs_f64(),
        (t2 - t1).as_secs_f64()
    );
}
