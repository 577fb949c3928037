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

impl AcpiBlobs<'_> {
    /// `(fw_cfg name, bytes)` in the order TDVF measures them.
    pub fn in_order(&self) -> [(&'static str, &[u8]); 3] {
        [
            (FW_CFG_TABLE_LOADER, self.table_loader),
            (FW_CFG_ACPI_RSDP, self.rsdp),
            (FW_CFG_ACPI_TABLES, self.tables),
        ]
    }
}
