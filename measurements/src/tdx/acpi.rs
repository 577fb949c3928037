//! The QEMU fw_cfg ACPI blobs TDVF measures into RTMR0 (tdx-measure.md §2.3 events 9-11,
//! §2.8): `etc/table-loader`, `etc/acpi/rsdp` and `etc/acpi/tables`, hashed raw, before the
//! loader patches pointers and checksums. They depend on the QEMU version, machine flags,
//! devices, vCPU count and memory size, so they come from a capture for the declared VM shape;
//! never from the guest's own event log (P12).

/// The three measured fw_cfg files, borrowed from the caller.
#[derive(Debug, Clone, Copy)]
pub struct AcpiBlobs<'a> {
    /// `etc/table-loader` (4096 bytes with QEMU 10.0).
    pub table_loader: &'a [u8],
    /// `etc/acpi/rsdp` (20 bytes, RSDP revision 0).
    pub rsdp: &'a [u8],
    /// `etc/acpi/tables`, the whole file including its zero padding.
    pub tables: &'a [u8],
}

/// fw_cfg file names, in measurement order.
pub const FW_CFG_TABLE_LOADER: &str = "etc/table-loader";
pub const FW_CFG_ACPI_RSDP: &str = "etc/acpi/rsdp";
pub const FW_CFG_ACPI_TABLES: &str = "etc/acpi/tables";

/// ACPI table signature of the MADT.
const MADT_SIGNATURE: &[u8; 4] = b"APIC";
/// MADT interrupt-controller structure types that describe one CPU each: processor local APIC
/// (0) and processor local x2APIC (9) (ACPI 6.5 §5.2.12).
const MADT_LOCAL_APIC: u8 = 0;
const MADT_LOCAL_X2APIC: u8 = 9;

impl AcpiBlobs<'_> {
    /// The number of CPUs the captured MADT describes, found by walking the tables blob (tables
    /// are laid out back to back, each starting with its 4-byte signature and `u32` length).
    /// `None` when the blob has no MADT or is malformed. Used to check that a capture matches
    /// the declared vCPU count.
    pub fn madt_cpu_count(&self) -> Option<usize> {
        let t = self.tables;
        let mut off = 0usize;
        while let Some(h) = t.get(off..off + 8) {
            let len = u32::from_le_bytes([h[4], h[5], h[6], h[7]]) as usize;
            if len < 8 || h[..4].iter().all(|&b| b == 0) {
                return None;
            }
            if &h[..4] == MADT_SIGNATURE {
                // 36-byte header, u32 local APIC address, u32 flags, then structures.
                let body = t.get(off + 44..off + len)?;
                let mut n = 0;
                let mut p = 0;
                while let Some(s) = body.get(p..p + 2) {
                    let (ty, l) = (s[0], s[1]);
                    if l < 2 {
                        return None;
                    }
                    if ty == MADT_LOCAL_APIC || ty == MADT_LOCAL_X2APIC {
                        n += 1;
                    }
                    p += l as usize;
                }
                return Some(n);
            }
            off += len;
        }
        None
    }

    /// `(fw_cfg name, bytes)` in the order TDVF measures them.
    pub fn in_order(&self) -> [(&'static str, &[u8]); 3] {
        [
            (FW_CFG_TABLE_LOADER, self.table_loader),
            (FW_CFG_ACPI_RSDP, self.rsdp),
            (FW_CFG_ACPI_TABLES, self.tables),
        ]
    }
}
