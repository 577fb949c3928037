//! Fuzz target `gpt`: arbitrary bytes as a disk through `cvm_rootfs::gpt_read::read` and
//! `Gpt::layout`, and as the disk prefix `cvm-measure vtpm --disk` reads through
//! `cvm_measurements::vtpm::disk_boot::gpt_event` (a disk image handed to a verifier is
//! untrusted input). Any panic is a bug.
//!
//! Two passes per input:
//! 1. the bytes as the whole disk;
//! 2. a constructed disk, so that small inputs reach the checks behind the CRCs and the
//!    backup copy: byte 0 selects the mode, byte 1 adds sectors to the smallest disk
//!    (67 sectors), the rest fills the disk from LBA 0 (MBR, primary header, entry array);
//!    when bit 0 of the mode is set the primary header and array are mirrored into a backup at
//!    the end (MyLBA/AlternateLBA swapped, array just before it), and when bit 1 is clear both
//!    copies get their array and header CRC32 recomputed.
//!
//! Seeds: see `make_seeds.sh` (a small sgdisk-made table in the pass-2 layout).

#![no_main]

use cvm_measurements::vtpm::disk_boot::gpt_event;
use cvm_rootfs::gpt_read::{self, crc32, MIN_DISK_SECTORS};
use libfuzzer_sys::fuzz_target;
use std::io::Cursor;

const S: usize = 512;

fn le32(b: &[u8], at: usize) -> usize {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// Recomputes the array CRC (when the array lies inside the disk) and the header CRC of the
/// header at byte `h`.
fn reseal(d: &mut [u8], h: usize) {
    let array = le64(d, h + 72)
        .checked_mul(S as u64)
        .and_then(|a| usize::try_from(a).ok());
    let bytes = le32(d, h + 80).saturating_mul(le32(d, h + 84));
    if let Some(a) = array {
        if let Some(end) = a.checked_add(bytes).filter(|&e| e <= d.len()) {
            let c = crc32(&d[a..end]);
            d[h + 88..h + 92].copy_from_slice(&c.to_le_bytes());
        }
    }
    let size = le32(d, h + 12).clamp(92, S);
    d[h + 16..h + 20].fill(0);
    let c = crc32(&d[h..h + size]);
    d[h + 16..h + 20].copy_from_slice(&c.to_le_bytes());
}

fuzz_target!(|data: &[u8]| {
    let _ = gpt_read::read(&mut Cursor::new(data)).map(|g| g.layout());
    let _ = gpt_event(data);

    let (Some(&mode), Some(&extra)) = (data.first(), data.get(1)) else { return };
    let sectors = MIN_DISK_SECTORS as usize + usize::from(extra);
    let mut d = vec![0u8; sectors * S];
    let body = &data[2..];
    let n = body.len().min(d.len());
    d[..n].copy_from_slice(&body[..n]);
    let last = sectors - 1;
    if mode & 1 != 0 {
        // Backup: the primary's array (LBA 2..34) just before the last sector, then the header.
        let array = 32 * S;
        let start = (last - 32) * S;
        d.copy_within(2 * S..2 * S + array, start);
        d.copy_within(S..2 * S, last * S);
        let h = last * S;
        d[h + 24..h + 32].copy_from_slice(&(last as u64).to_le_bytes());
        d[h + 32..h + 40].copy_from_slice(&1u64.to_le_bytes());
        d[h + 72..h + 80].copy_from_slice(&((last - 32) as u64).to_le_bytes());
    }
    if mode & 2 == 0 {
        reseal(&mut d, S);
        reseal(&mut d, last * S);
    }
    let _ = gpt_read::read(&mut Cursor::new(&d)).map(|g| g.layout());
    let _ = gpt_event(&d);
});
