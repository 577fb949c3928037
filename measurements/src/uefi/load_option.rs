//! `EFI_LOAD_OPTION` (UEFI spec 2.10, §3.1.3): the data of a `Boot####` variable, and the boot
//! options OVMF creates by itself (edk2 `MdeModulePkg` `BdsBootManagerLib` /
//! `OvmfPkg/Library/PlatformBootManagerLib`).

use super::device_path::{device_path_bytes, DevicePathNode};
use super::{utf16le, Error};
use crate::guid::EfiGuid;

/// `LOAD_OPTION_ACTIVE`.
pub const LOAD_OPTION_ACTIVE: u32 = 0x0000_0001;
/// `LOAD_OPTION_HIDDEN`.
pub const LOAD_OPTION_HIDDEN: u32 = 0x0000_0008;
/// `LOAD_OPTION_CATEGORY_APP`.
pub const LOAD_OPTION_CATEGORY_APP: u32 = 0x0000_0100;

/// Name GUID of OVMF's DXE firmware volume (`OvmfPkg/OvmfPkgX64.fdf`, `FV = DXEFV`).
pub const OVMF_DXEFV_NAME_GUID: EfiGuid =
    EfiGuid::from_str_const("7cb8bdc9-f8eb-4f34-aaea-3ee4af6516a1");
/// `FILE_GUID` of `MdeModulePkg/Application/UiApp/UiApp.inf`.
pub const UI_APP_FILE_GUID: EfiGuid =
    EfiGuid::from_str_const("462caa21-7614-4503-836e-8ab6f4662331");
/// `FILE_GUID` of `MdeModulePkg/Application/BootManagerMenuApp/BootManagerMenuApp.inf`.
pub const BOOT_MANAGER_MENU_APP_FILE_GUID: EfiGuid =
    EfiGuid::from_str_const("eec25bdc-67f2-4d95-b1d5-f81b2039d11d");

/// `EFI_LOAD_OPTION`: `u32 Attributes`, `u16 FilePathListLength`, `CHAR16 Description[]`
/// (NUL-terminated), `EFI_DEVICE_PATH_PROTOCOL FilePathList[]`, `u8 OptionalData[]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[doc(alias = "EFI_LOAD_OPTION")]
pub struct EfiLoadOption {
    pub attributes: u32,
    pub description: String,
    /// The serialized device paths, end node included.
    pub file_path_list: Vec<u8>,
    pub optional_data: Vec<u8>,
}

impl EfiLoadOption {
    /// A boot option for an application in OVMF's DXE FV, as `BdsBootManagerLib`
    /// (`BmRegisterBootManagerMenu`) and `PlatformBootManagerLib` register `UiApp` and friends.
    pub fn fv_application(attributes: u32, description: &str, file: EfiGuid) -> EfiLoadOption {
        Self::fv_application_in(OVMF_DXEFV_NAME_GUID, attributes, description, file)
    }

    /// [`EfiLoadOption::fv_application`] for an application in the firmware volume `fv`.
    pub fn fv_application_in(fv: EfiGuid, attributes: u32, description: &str, file: EfiGuid) -> EfiLoadOption {
        let path = device_path_bytes(&[
            DevicePathNode::fv(fv),
            DevicePathNode::fv_file(file),
            DevicePathNode::end(),
        ]);
        EfiLoadOption {
            attributes,
            description: description.to_owned(),
            file_path_list: path,
            optional_data: Vec::new(),
        }
    }

    /// Boot0000 of an edk2 < stable202505 OVMF without boot devices other than the kernel:
    /// "UiApp", `ACTIVE | HIDDEN | CATEGORY_APP`.
    pub fn ovmf_ui_app() -> EfiLoadOption {
        Self::fv_application(
            LOAD_OPTION_ACTIVE | LOAD_OPTION_HIDDEN | LOAD_OPTION_CATEGORY_APP,
            "UiApp",
            UI_APP_FILE_GUID,
        )
    }

    /// Boot0000 of an edk2 ≥ stable202505 OVMF (commit `9d9e3a2ba`: BootManagerMenuApp is
    /// the boot manager menu), registered by `BmRegisterBootManagerMenu`.
    pub fn ovmf_boot_manager_menu_app() -> EfiLoadOption {
        Self::fv_application(
            LOAD_OPTION_ACTIVE | LOAD_OPTION_HIDDEN | LOAD_OPTION_CATEGORY_APP,
            "BootManagerMenuApp",
            BOOT_MANAGER_MENU_APP_FILE_GUID,
        )
    }

    /// Boot0001 of an edk2 ≥ stable202505 OVMF: UiApp as "EFI Firmware Setup", not hidden
    /// (`PlatformRegisterFvBootOption`, commits `d433b4c8e4` and `dd5cce3e53`). QEMU's
    /// `-fw_cfg name=opt/org.tianocore/FirmwareSetupSupport,string=no` removes it.
    pub fn ovmf_firmware_setup() -> EfiLoadOption {
        Self::fv_application(
            LOAD_OPTION_ACTIVE | LOAD_OPTION_CATEGORY_APP,
            "EFI Firmware Setup",
            UI_APP_FILE_GUID,
        )
    }

    /// The variable data, as measured in `EV_EFI_VARIABLE_BOOT`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let desc = utf16le(&self.description, true);
        let mut out = Vec::with_capacity(
            6 + desc.len() + self.file_path_list.len() + self.optional_data.len(),
        );
        out.extend_from_slice(&self.attributes.to_le_bytes());
        out.extend_from_slice(&(self.file_path_list.len() as u16).to_le_bytes());
        out.extend_from_slice(&desc);
        out.extend_from_slice(&self.file_path_list);
        out.extend_from_slice(&self.optional_data);
        out
    }

    /// Parse variable data (the inverse of [`EfiLoadOption::to_bytes`]).
    pub fn parse(data: &[u8]) -> Result<EfiLoadOption, Error> {
        let trunc = |what, offset, need| Error::Truncated {
            what,
            offset,
            need,
            have: data.len(),
        };
        let head = data.get(..6).ok_or(trunc("EFI_LOAD_OPTION header", 0, 6))?;
        let attributes = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let path_len = u16::from_le_bytes([head[4], head[5]]) as usize;
        let mut units = Vec::new();
        let mut off = 6;
        loop {
            let c = data
                .get(off..off + 2)
                .ok_or(trunc("EFI_LOAD_OPTION.Description", off, 2))?;
            off += 2;
            let u = u16::from_le_bytes([c[0], c[1]]);
            if u == 0 {
                break;
            }
            units.push(u);
        }
        let description = String::from_utf16(&units).map_err(|_| Error::Invalid {
            field: "EFI_LOAD_OPTION.Description",
            offset: 6,
            problem: "not valid UTF-16".into(),
        })?;
        let file_path_list = data
            .get(off..off + path_len)
            .ok_or(trunc("EFI_LOAD_OPTION.FilePathList", off, path_len))?
            .to_vec();
        let optional_data = data[off + path_len..].to_vec();
        Ok(EfiLoadOption {
            attributes,
            description,
            file_path_list,
            optional_data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256, Sha384};

    /// tdx-measure.md §2.3 / §5.2: the UiApp Boot0000 is 62 bytes, SHA-384 `23ada07f…c298`,
    /// SHA-256 `3197be1e…2a93`.
    #[test]
    fn ui_app_boot0000_known_answer() {
        let b = EfiLoadOption::ovmf_ui_app().to_bytes();
        assert_eq!(b.len(), 62);
        assert_eq!(u16::from_le_bytes([b[4], b[5]]), 44);
        assert_eq!(
            hex::encode(Sha256::digest(&b)),
            "3197be1e300fa1600d1884c3a4bd4a90a15405bfb546cf2e6cf6095f8c362a93"
        );
        let h = hex::encode(Sha384::digest(&b));
        assert!(h.starts_with("23ada07f") && h.ends_with("c298"), "{h}");
        assert_eq!(
            EfiLoadOption::parse(&b).unwrap(),
            EfiLoadOption::ovmf_ui_app()
        );
    }

    /// The edk2 ≥ stable202505 boot options against the digests another project publishes
    /// for them (constants in a public TDX measurement tool that replays real 202505+ logs:
    /// `NEW_BOOT_0000_HASH`, `EFI_FIRMWARE_BOOT_HASH`).
    #[test]
    fn stable202505_boot_options_match_published_digests() {
        let menu = EfiLoadOption::ovmf_boot_manager_menu_app().to_bytes();
        let setup = EfiLoadOption::ovmf_firmware_setup().to_bytes();
        assert_eq!((menu.len(), setup.len()), (88, 88));
        assert_eq!(
            hex::encode(Sha384::digest(&menu)),
            "5068e6a9ded2a1c3a8ebb5d26004410ea8670742d8f444c5c3d161b76c66fa23a7b1d2fb3f9840570b675384b5818f2d"
        );
        assert_eq!(
            hex::encode(Sha384::digest(&setup)),
            "dd424f2eeb35f3e8a2c2f50f6cc87ff90b7577e92ce63e13a22869d07d104fd5ea9800e6e4f12c5058fc4eaa78374f20"
        );
    }

    #[test]
    fn truncated_option_is_an_error() {
        let b = EfiLoadOption::ovmf_ui_app().to_bytes();
        for n in [0, 5, 9, 30, 61] {
            assert!(
                matches!(EfiLoadOption::parse(&b[..n]), Err(Error::Truncated { .. })),
                "{n}"
            );
        }
    }
}
