//! UEFI structures that firmware measures (UEFI spec 2.10; TCG PC Client Platform Firmware
//! Profile 1.05): variables as `UEFI_VARIABLE_DATA`, `EFI_LOAD_OPTION`s and device paths.
//! Built from first principles so that RTMR0 / PCR 1 and 7 never rely on captured digests.
//! Shared by the TDX RTMR and the vTPM PCR models.

pub mod device_path;
pub mod load_option;
pub mod variable;

pub use device_path::DevicePathNode;
pub use load_option::EfiLoadOption;
pub use variable::UefiVariableData;

/// Errors from parsing UEFI structures.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    #[error("{what} truncated: needs {need} bytes at offset {offset}, have {have}")]
    Truncated {
        what: &'static str,
        offset: usize,
        need: usize,
        have: usize,
    },
    #[error("{field} at offset {offset}: {problem}")]
    Invalid {
        field: &'static str,
        offset: usize,
        problem: String,
    },
}

/// UTF-16LE encoding of `s`, optionally with a terminating `CHAR16` NUL.
pub fn utf16le(s: &str, nul: bool) -> Vec<u8> {
    let mut out: Vec<u8> = s.encode_utf16().flat_map(u16::to_le_bytes).collect();
    if nul {
        out.extend_from_slice(&[0, 0]);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn utf16le_encodes_with_and_without_nul() {
        assert_eq!(super::utf16le("Ab", false), b"A\0b\0");
        assert_eq!(super::utf16le("Ab", true), b"A\0b\0\0\0");
    }
}
