//! What the QEMU version and the q35 machine change in TDX measurements (tdx-measure.md §2.2,
//! §2.4, §2.5, P1/P2/P9): the RAM layout below and above 4 GiB, the page-add order, and the
//! Linux setup-header patch QEMU < 10.1 applies to the kernel it hands to OVMF through fw_cfg
//! (`hw/i386/x86-common.c` `x86_load_linux`).
//!
//! Which kernel OVMF measures ([`QemuModel::kernel_patched`]): QEMU < 10.0 offers only the
//! patched traditional blob; QEMU ≥ 10.1 no longer patches; QEMU 10.0 offers both the patched
//! traditional blob and the unmodified file as the named blob `etc/boot/kernel`, and OVMF's
//! `QemuKernelLoaderFsDxe` from edk2-stable202502 on takes the named blob when there is one
//! ([`crate::ovmf::fv::OvmfMemFvs::reads_qemu_named_blobs`] tells from the firmware). The
//! design note's rule "< 10.1 patches" missed this; the evidence for 10.0 is the vTPM
//! captures (Debian QEMU 10.0.13 + edk2 2025.02: PCR 4 holds the unpatched kernel's hash, for
//! the same `QemuKernelLoaderFsDxe` that IntelTdx builds in).

use std::borrow::Cow;

use super::{Error, PageAddOrder};

/// 4 GiB: where q35 maps RAM above the PCI hole.
pub const FOUR_GIB: u64 = 1 << 32;
/// q35 `pc_q35_init`: guests with at least this much RAM get `lowmem = 2 GiB`, others 2.75 GiB.
pub const Q35_LOWMEM_THRESHOLD: u64 = 0xB000_0000;
/// QEMU `acpi_data_size` reserved below the top of low memory (`x86_load_linux`).
pub const ACPI_DATA_SIZE: u64 = 0x28000;

/// Bytes of RAM q35 maps below 4 GiB for a guest of `memory_bytes`.
pub fn below_4g_mem(memory_bytes: u64) -> u64 {
    let lowmem = if memory_bytes >= Q35_LOWMEM_THRESHOLD {
        0x8000_0000
    } else {
        Q35_LOWMEM_THRESHOLD
    };
    memory_bytes.min(lowmem)
}

/// The q35 RAM ranges `[start, end)`: low memory, and the rest above 4 GiB.
pub fn ram_ranges(memory_bytes: u64) -> Vec<(u64, u64)> {
    let low = below_4g_mem(memory_bytes);
    let mut r = vec![(0, low)];
    if memory_bytes > low {
        r.push((FOUR_GIB, FOUR_GIB + (memory_bytes - low)));
    }
    r
}

/// The QEMU behaviours that change TDX measurements, keyed by QEMU version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QemuModel {
    pub page_add_order: PageAddOrder,
    /// QEMU < 10.1 writes loader fields into the setup header of the traditional fw_cfg
    /// kernel blob (`FW_CFG_KERNEL_*`/`FW_CFG_SETUP_*`).
    pub patches_kernel_header: bool,
    /// QEMU ≥ 10.0 also publishes the kernel file unmodified as the named blob
    /// `etc/boot/kernel` (seen in Debian's 10.0.13), which OVMF ≥ edk2-stable202502 prefers.
    pub publishes_unpatched_kernel: bool,
}

impl QemuModel {
    /// The model for QEMU `major.minor`: 8.x adds pages in two passes (and Canonical's 8.2.2
    /// +tdx too), ≥ 9 per page; < 10.1 patches the kernel header (contrast PR #1991); ≥ 10.0
    /// publishes `etc/boot/kernel` (so 10.0 depends on the firmware: [`QemuModel::kernel_patched`]).
    pub fn for_version(major: u32, minor: u32) -> QemuModel {
        QemuModel {
            page_add_order: if major < 9 {
                PageAddOrder::TwoPass
            } else {
                PageAddOrder::SinglePass
            },
            patches_kernel_header: (major, minor) < (10, 1),
            publishes_unpatched_kernel: major >= 10,
        }
    }

    /// Whether the kernel OVMF loads (and measures) has the patched setup header. Only asks
    /// `firmware_reads_named_blobs` (an LZMA decompression of the firmware) when it matters:
    /// QEMU 10.0 offers both blobs.
    pub fn kernel_patched<E>(&self, firmware_reads_named_blobs: impl FnOnce() -> Result<bool, E>) -> Result<bool, E> {
        if self.depends_on_firmware() {
            Ok(!firmware_reads_named_blobs()?)
        } else {
            Ok(self.patches_kernel_header)
        }
    }

    /// QEMU offers both the patched and the unpatched kernel (10.0): which one is measured
    /// depends on the firmware, so [`QemuModel::kernel_patched`] needs the probe.
    pub fn depends_on_firmware(&self) -> bool {
        self.patches_kernel_header && self.publishes_unpatched_kernel
    }
}

/// Offsets in the Linux boot protocol setup header (`Documentation/arch/x86/boot.rst`).
mod hdr {
    pub const HEADER: usize = 0x202;
    pub const VERSION: usize = 0x206;
    pub const TYPE_OF_LOADER: usize = 0x210;
    pub const LOADFLAGS: usize = 0x211;
    pub const RAMDISK_IMAGE: usize = 0x218;
    pub const RAMDISK_SIZE: usize = 0x21c;
    pub const HEAP_END_PTR: usize = 0x224;
    pub const CMD_LINE_PTR: usize = 0x228;
    pub const INITRD_ADDR_MAX: usize = 0x22c;
    pub const XLOADFLAGS: usize = 0x236;
    pub const LOADED_HIGH: u8 = 0x01;
    pub const CAN_USE_HEAP: u8 = 0x80;
    /// `XLF_CAN_BE_LOADED_ABOVE_4G` as QEMU tests it (bit 1; P9).
    pub const XLF_CAN_BE_LOADED_ABOVE_4G: u16 = 0x02;
}

/// The kernel bytes as OVMF receives them from QEMU < 10.1: the setup header patched with the
/// loader type, heap end, command-line pointer and the initrd placement QEMU computes from the
/// memory size (tdx-measure.md §2.5). Without an initrd the ramdisk fields are left alone.
pub fn patch_kernel_setup_header(
    kernel: &[u8],
    memory_bytes: u64,
    initrd_size: Option<u64>,
) -> Result<Cow<'_, [u8]>, Error> {
    let get = |off: usize, n: usize, field: &'static str| {
        kernel.get(off..off + n).ok_or(Error::KernelHeader {
            field,
            offset: off as u64,
            problem: format!("kernel is only {} bytes", kernel.len()),
        })
    };
    if get(hdr::HEADER, 4, "header")? != b"HdrS" {
        return Err(Error::KernelHeader {
            field: "header",
            offset: hdr::HEADER as u64,
            problem: "no \"HdrS\" magic: not a bzImage".into(),
        });
    }
    let v = get(hdr::VERSION, 2, "version")?;
    let protocol = u16::from_le_bytes([v[0], v[1]]);
    let loadflags = get(hdr::LOADFLAGS, 1, "loadflags")?[0];
    if protocol < 0x202 || loadflags & hdr::LOADED_HIGH == 0 {
        return Err(Error::KernelHeader {
            field: "version",
            offset: hdr::VERSION as u64,
            problem: format!("boot protocol {protocol:#x} / loadflags {loadflags:#x}: only protocol >= 2.02 bzImages with LOADED_HIGH are modelled"),
        });
    }
    let x = get(hdr::XLOADFLAGS, 2, "xloadflags")?;
    let xloadflags = u16::from_le_bytes([x[0], x[1]]);
    let a = get(hdr::INITRD_ADDR_MAX, 4, "initrd_addr_max")?;
    let initrd_addr_max = u32::from_le_bytes([a[0], a[1], a[2], a[3]]) as u64;

    let mut k = kernel.to_vec();
    k[hdr::TYPE_OF_LOADER] = 0xB0;
    k[hdr::LOADFLAGS] |= hdr::CAN_USE_HEAP;
    k[hdr::HEAP_END_PTR..hdr::HEAP_END_PTR + 2].copy_from_slice(&0xFE00u16.to_le_bytes());
    k[hdr::CMD_LINE_PTR..hdr::CMD_LINE_PTR + 4].copy_from_slice(&0x20000u32.to_le_bytes());
    if let Some(size) = initrd_size {
        let mut initrd_max =
            if protocol >= 0x20c && xloadflags & hdr::XLF_CAN_BE_LOADED_ABOVE_4G != 0 {
                u32::MAX as u64
            } else if protocol >= 0x203 {
                initrd_addr_max
            } else {
                0x37FF_FFFF
            };
        let limit = below_4g_mem(memory_bytes).saturating_sub(ACPI_DATA_SIZE);
        if initrd_max >= limit {
            initrd_max = limit.saturating_sub(1);
        }
        if size > initrd_max {
            return Err(Error::KernelHeader {
                field: "ramdisk_size",
                offset: hdr::RAMDISK_SIZE as u64,
                problem: format!("initrd of {size} bytes does not fit below {initrd_max:#x}"),
            });
        }
        let image = (initrd_max - size) & !0xFFF;
        k[hdr::RAMDISK_IMAGE..hdr::RAMDISK_IMAGE + 4]
            .copy_from_slice(&(image as u32).to_le_bytes());
        k[hdr::RAMDISK_SIZE..hdr::RAMDISK_SIZE + 4].copy_from_slice(&(size as u32).to_le_bytes());
    }
    Ok(Cow::Owned(k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q35_layout() {
        assert_eq!(ram_ranges(1 << 30), vec![(0, 1 << 30)]);
        assert_eq!(below_4g_mem(0xA000_0000), 0xA000_0000);
        assert_eq!(
            ram_ranges(3 << 30),
            vec![(0, 2 << 30), (FOUR_GIB, FOUR_GIB + (1 << 30))]
        );
        assert_eq!(
            QemuModel::for_version(8, 2).page_add_order,
            PageAddOrder::TwoPass
        );
        assert!(QemuModel::for_version(10, 0).patches_kernel_header);
        assert!(!QemuModel::for_version(10, 1).patches_kernel_header);
        // Which kernel the firmware measures; the probe runs only for QEMU 10.0.
        let probe = |reads: bool| move || Ok::<bool, ()>(reads);
        let never = || -> Result<bool, ()> { panic!("firmware probed needlessly") };
        assert_eq!(QemuModel::for_version(9, 2).kernel_patched(never), Ok(true));
        assert_eq!(QemuModel::for_version(10, 1).kernel_patched(never), Ok(false));
        assert_eq!(QemuModel::for_version(10, 0).kernel_patched(probe(true)), Ok(false));
        assert_eq!(QemuModel::for_version(10, 0).kernel_patched(probe(false)), Ok(true));
        assert_eq!(QemuModel::for_version(10, 0).kernel_patched(|| Err(())), Err(()));
    }

    #[test]
    fn header_patch_fields() {
        let mut k = vec![0u8; 0x300];
        k[0x202..0x206].copy_from_slice(b"HdrS");
        k[0x206..0x208].copy_from_slice(&0x20fu16.to_le_bytes());
        k[0x211] = 1;
        k[0x236..0x238].copy_from_slice(&0x7fu16.to_le_bytes());
        let p = patch_kernel_setup_header(&k, 1 << 30, Some(0x100000)).unwrap();
        assert_eq!(p[0x210], 0xB0);
        assert_eq!(p[0x211], 0x81);
        // (1 GiB - 0x28000 - 1 - 1 MiB) & ~0xfff
        assert_eq!(
            u32::from_le_bytes(p[0x218..0x21c].try_into().unwrap()),
            0x3fed_7000
        );
        assert_eq!(
            u32::from_le_bytes(p[0x21c..0x220].try_into().unwrap()),
            0x100000
        );
        assert!(patch_kernel_setup_header(&k[..0x210], 1 << 30, None).is_err());
        k[0x202] = b'X';
        assert!(patch_kernel_setup_header(&k, 1 << 30, None).is_err());
    }
}
