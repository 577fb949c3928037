//! The TD HOB as QEMU `hw/i386/tdvf-hob.c` builds it and TDVF hashes it into RTMR0 as
//! `EV_EFI_HANDOFF_TABLES2` (tdx-measure.md §2.4): a PHIT HOB (`EFI_HOB_HANDOFF_INFO_TABLE`,
//! PI spec vol. 3 §5.3) and one `EFI_HOB_RESOURCE_DESCRIPTOR` per RAM range, with the TD_HOB and
//! TempMem / PermMem sections carved out as accepted memory. The measured bytes exclude the
//! 8-byte END HOB.

use super::qemu::ram_ranges;
use super::Error;
use crate::ovmf::tdvf::{TdvfDescriptor, TdvfSectionType};

/// `EFI_HOB_TYPE_HANDOFF`.
pub const EFI_HOB_TYPE_HANDOFF: u16 = 0x0001;
/// `EFI_HOB_TYPE_RESOURCE_DESCRIPTOR`.
pub const EFI_HOB_TYPE_RESOURCE_DESCRIPTOR: u16 = 0x0003;
/// `EFI_HOB_HANDOFF_TABLE_VERSION`.
pub const EFI_HOB_HANDOFF_TABLE_VERSION: u32 = 9;
/// `EFI_RESOURCE_SYSTEM_MEMORY`.
pub const EFI_RESOURCE_SYSTEM_MEMORY: u32 = 0;
/// `EFI_RESOURCE_MEMORY_UNACCEPTED` (PI 1.8).
pub const EFI_RESOURCE_MEMORY_UNACCEPTED: u32 = 7;
/// `PRESENT | INITIALIZED | TESTED`, what QEMU sets on every range.
pub const RESOURCE_ATTRIBUTES: u32 = 0x7;

const PHIT_BYTES: u64 = 56;
const RESOURCE_BYTES: u64 = 48;
const END_HOB_BYTES: u64 = 8;

/// One `EFI_HOB_RESOURCE_DESCRIPTOR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[doc(alias = "EFI_HOB_RESOURCE_DESCRIPTOR")]
pub struct ResourceDescriptor {
    pub resource_type: u32,
    pub physical_start: u64,
    pub resource_length: u64,
}

/// The TD HOB: where it lives and its resource descriptors, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TdHob {
    /// GPA of the TD_HOB section (for `EfiEndOfHobList`).
    pub hob_gpa: u64,
    pub resources: Vec<ResourceDescriptor>,
}

impl TdHob {
    /// The HOB QEMU builds for a q35 TD with `memory_bytes` of RAM and this firmware.
    pub fn for_q35(desc: &TdvfDescriptor, memory_bytes: u64) -> Result<TdHob, Error> {
        let hob = desc
            .section(TdvfSectionType::TdHob)
            .ok_or(crate::ovmf::Error::Missing("TDVF TD_HOB section"))?;
        // Accepted ranges: the sections TDVF uses as memory before it accepts the rest.
        let mut accepted: Vec<(u64, u64)> = desc
            .sections
            .iter()
            .filter(|s| {
                matches!(
                    s.section_type,
                    TdvfSectionType::TdHob | TdvfSectionType::TempMem | TdvfSectionType::PermMem
                )
            })
            .map(|s| (s.memory_address, s.memory_address + s.memory_data_size))
            .collect();
        accepted.sort();
        let mut resources = Vec::new();
        for (start, end) in ram_ranges(memory_bytes) {
            let mut cur = start;
            for &(a, b) in &accepted {
                if b <= cur || a >= end {
                    continue;
                }
                if a < cur || b > end {
                    return Err(Error::Memory(memory_bytes));
                }
                if a > cur {
                    resources.push(ResourceDescriptor {
                        resource_type: EFI_RESOURCE_MEMORY_UNACCEPTED,
                        physical_start: cur,
                        resource_length: a - cur,
                    });
                }
                resources.push(ResourceDescriptor {
                    resource_type: EFI_RESOURCE_SYSTEM_MEMORY,
                    physical_start: a,
                    resource_length: b - a,
                });
                cur = b;
            }
            if cur < end {
                resources.push(ResourceDescriptor {
                    resource_type: EFI_RESOURCE_MEMORY_UNACCEPTED,
                    physical_start: cur,
                    resource_length: end - cur,
                });
            }
        }
        let covered: u64 = accepted.iter().map(|(a, b)| b - a).sum();
        let in_ram: u64 = resources
            .iter()
            .filter(|r| r.resource_type == EFI_RESOURCE_SYSTEM_MEMORY)
            .map(|r| r.resource_length)
            .sum();
        if covered != in_ram {
            return Err(Error::Memory(memory_bytes));
        }
        Ok(TdHob {
            hob_gpa: hob.memory_address,
            resources,
        })
    }

    /// The measured bytes: PHIT + resource descriptors, without the END HOB.
    pub fn to_bytes(&self) -> Vec<u8> {
        let n = self.resources.len() as u64;
        let mut out = Vec::with_capacity((PHIT_BYTES + RESOURCE_BYTES * n) as usize);
        // EFI_HOB_HANDOFF_INFO_TABLE
        out.extend_from_slice(&EFI_HOB_TYPE_HANDOFF.to_le_bytes());
        out.extend_from_slice(&(PHIT_BYTES as u16).to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&EFI_HOB_HANDOFF_TABLE_VERSION.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes()); // BootMode
        out.extend_from_slice(&[0; 32]); // EfiMemoryTop/Bottom, EfiFreeMemoryTop/Bottom
        let end_of_list = self.hob_gpa + PHIT_BYTES + RESOURCE_BYTES * n + END_HOB_BYTES;
        out.extend_from_slice(&end_of_list.to_le_bytes());
        for r in &self.resources {
            out.extend_from_slice(&EFI_HOB_TYPE_RESOURCE_DESCRIPTOR.to_le_bytes());
            out.extend_from_slice(&(RESOURCE_BYTES as u16).to_le_bytes());
            out.extend_from_slice(&[0; 4]);
            out.extend_from_slice(&[0; 16]); // Owner
            out.extend_from_slice(&r.resource_type.to_le_bytes());
            out.extend_from_slice(&RESOURCE_ATTRIBUTES.to_le_bytes());
            out.extend_from_slice(&r.physical_start.to_le_bytes());
            out.extend_from_slice(&r.resource_length.to_le_bytes());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ovmf::tdvf::tests::{sec, synth};

    /// Trixie OVMF.fd's memory sections (tdx-measure.md §2.1), 1 GiB: 4 accepted ranges, 5
    /// unaccepted gaps/tails → 8 descriptors, 56 + 48·8 = 440 bytes.
    #[test]
    fn trixie_layout_sizes() {
        let secs = [
            sec(0, 0, 0x81_1000, 0xf000, TdvfSectionType::TempMem, 0),
            sec(0, 0, 0x80_b000, 0x2000, TdvfSectionType::TempMem, 0),
            sec(0, 0, 0x80_9000, 0x2000, TdvfSectionType::TdHob, 0),
            sec(0, 0, 0x80_0000, 0x6000, TdvfSectionType::TempMem, 0),
        ];
        let d = TdvfDescriptor::parse(&synth(&secs, 0x4000)).unwrap();
        let hob = TdHob::for_q35(&d, 1 << 30).unwrap();
        assert_eq!(hob.to_bytes().len(), 440);
        assert_eq!(
            hob.resources[0],
            ResourceDescriptor {
                resource_type: 7,
                physical_start: 0,
                resource_length: 0x80_0000
            }
        );
        assert_eq!(hob.resources[1].resource_type, 0);
        // Adjacent accepted ranges are not merged.
        assert_eq!(
            hob.resources[2],
            ResourceDescriptor {
                resource_type: 7,
                physical_start: 0x80_6000,
                resource_length: 0x3000
            }
        );
        assert_eq!(TdHob::for_q35(&d, 3 << 30).unwrap().to_bytes().len(), 488);
        assert!(TdHob::for_q35(&d, 0x80_0000).is_err());
    }
}
