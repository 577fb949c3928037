//! Fuzz target `cpio`: arbitrary bytes as a newc archive through `cvm_rootfs::cpio::parse` (an
//! initramfs from elsewhere is untrusted input). Any panic is a bug: the reader must answer with
//! a typed error. An archive that parses is written again with `cpio::Writer` and must parse
//! back to the same names, modes, device numbers and contents.

#![no_main]

use cvm_rootfs::cpio;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(entries) = cpio::parse(data) else { return };
    let mut w = cpio::Writer::default();
    for e in &entries {
        w.entry(e.name, e.mode, e.data, e.rdev);
    }
    let again = w.finish();
    let back = cpio::parse(&again).expect("the writer's archive parses");
    let key = |e: &cpio::Entry| (e.name.to_string(), e.mode, e.rdev, e.data.to_vec());
    assert_eq!(back.iter().map(key).collect::<Vec<_>>(), entries.iter().map(key).collect::<Vec<_>>());
});
