//! `cvm_rootfs`: the disk side of a confidential-VM image, computed in Rust without external
//! tools, bit-reproducibly:
//!
//! - [`verity`]: the dm-verity hash tree (format version 1, as `veritysetup format` writes it),
//!   its root hash, the deterministic salt, the optional superblock, and the
//!   `dm-mod.create=` table for the kernel command line;
//! - [`esp`]: an EFI system partition (FAT) holding `EFI/BOOT/BOOTX64.EFI`;
//! - [`disk`]: a GPT disk with discoverable-partition type GUIDs (ESP, root, root-verity),
//!   every GUID derived from the contents; [`gpt_read`] reads such a disk's table back, strictly;
//! - [`cpio`]: newc archives (the initramfs format): a deterministic writer and a strict reader.
//!
//! **Invariant:** this library runs no program and reads no clock or random source. It works
//! on `Read`/`Write`/`Seek` streams the caller opens; `xtask` owns files and tools.
//! The real `veritysetup`, `sgdisk`, `fdisk`, `fsck.vfat` and mtools check it in
//! `tests/tests/verity_oracle.rs` and `tests/tests/disk_oracle.rs`; GNU cpio, `sgdisk` and
//! `sfdisk` check the readers and the cpio writer in `rootfs/image/tests/`. The readers take
//! untrusted bytes: they answer with typed errors, never panic, and have fuzz targets (`fuzz/`).

pub mod cpio;
pub mod disk;
pub mod esp;
pub mod gpt_read;
pub mod verity;
