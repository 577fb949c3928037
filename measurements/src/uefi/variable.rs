//! `UEFI_VARIABLE_DATA` (TCG PC Client Platform Firmware Profile 1.05, §10.4.7 / Table 16): the
//! event data (and, for `EV_EFI_VARIABLE_DRIVER_CONFIG`, the digest preimage) of a measured UEFI
//! variable, plus the vendor GUIDs of the variables OVMF measures.

use super::utf16le;
use crate::guid::EfiGuid;

/// `EFI_GLOBAL_VARIABLE`: SecureBoot, PK, KEK, BootOrder, Boot####.
pub const EFI_GLOBAL_VARIABLE: EfiGuid =
    EfiGuid::from_str_const("8be4df61-93ca-11d2-aa0d-00e098032b8c");
/// `EFI_IMAGE_SECURITY_DATABASE_GUID`: db, dbx.
pub const EFI_IMAGE_SECURITY_DATABASE_GUID: EfiGuid =
    EfiGuid::from_str_const("d719b2cb-3d3a-4596-a3bc-dad00e67656f");

/// `UEFI_VARIABLE_DATA`: `VariableName` (the vendor GUID), `UnicodeNameLength` (CHAR16s, no
/// NUL), `VariableDataLength`, `UnicodeName` (UTF-16LE, no NUL), `VariableData`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[doc(alias = "UEFI_VARIABLE_DATA")]
pub struct UefiVariableData {
    pub variable_name: EfiGuid,
    pub unicode_name: String,
    pub variable_data: Vec<u8>,
}

impl UefiVariableData {
    pub fn new(vendor: EfiGuid, name: &str, data: &[u8]) -> UefiVariableData {
        UefiVariableData {
            variable_name: vendor,
            unicode_name: name.to_owned(),
            variable_data: data.to_vec(),
        }
    }

    /// The serialized structure, as measured.
    pub fn to_bytes(&self) -> Vec<u8> {
        let name = utf16le(&self.unicode_name, false);
        let mut out = Vec::with_capacity(32 + name.len() + self.variable_data.len());
        out.extend_from_slice(self.variable_name.as_bytes());
        out.extend_from_slice(&((name.len() / 2) as u64).to_le_bytes());
        out.extend_from_slice(&(self.variable_data.len() as u64).to_le_bytes());
        out.extend_from_slice(&name);
        out.extend_from_slice(&self.variable_data);
        out
    }
}

/// The five Secure Boot configuration variables TDVF / OVMF measure in this order
/// (edk2 `SecurityPkg` `mVariableType` in `TdTcg2Dxe`/`Tcg2Dxe`), with empty data: what an
/// OVMF without enrolled keys reports. Keys enrolled in the CFV change the data.
pub fn secure_boot_variables_empty() -> [UefiVariableData; 5] {
    [
        UefiVariableData::new(EFI_GLOBAL_VARIABLE, "SecureBoot", &[]),
        UefiVariableData::new(EFI_GLOBAL_VARIABLE, "PK", &[]),
        UefiVariableData::new(EFI_GLOBAL_VARIABLE, "KEK", &[]),
        UefiVariableData::new(EFI_IMAGE_SECURITY_DATABASE_GUID, "db", &[]),
        UefiVariableData::new(EFI_IMAGE_SECURITY_DATABASE_GUID, "dbx", &[]),
    ]
}

/// The data of the `BootOrder` variable: the option numbers as `u16` LE.
pub fn boot_order_data(order: &[u16]) -> Vec<u8> {
    order.iter().flat_map(|n| n.to_le_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secure_boot_variable_layout() {
        let v = UefiVariableData::new(EFI_GLOBAL_VARIABLE, "PK", &[0xAA]);
        let b = v.to_bytes();
        assert_eq!(&b[..16], EFI_GLOBAL_VARIABLE.as_bytes());
        assert_eq!(u64::from_le_bytes(b[16..24].try_into().unwrap()), 2);
        assert_eq!(u64::from_le_bytes(b[24..32].try_into().unwrap()), 1);
        assert_eq!(&b[32..], b"P\0K\0\xAA");
        assert_eq!(boot_order_data(&[0, 1]), [0, 0, 1, 0]);
    }
}
