//! `EFI_DEVICE_PATH_PROTOCOL` nodes (UEFI spec 2.10, §10.3): the few node kinds OVMF's boot
//! options use. Each node is `u8 Type`, `u8 SubType`, `u16 Length` (including the 4-byte
//! header), then node data.

use crate::guid::EfiGuid;

/// `MEDIA_DEVICE_PATH`.
pub const MEDIA_DEVICE_PATH: u8 = 0x04;
/// `MEDIA_HARDDRIVE_DP`: a partition of a disk (UEFI spec 2.10, §10.3.5.1).
pub const MEDIA_HARDDRIVE_DP: u8 = 0x01;
/// `MEDIA_VENDOR_DP`.
pub const MEDIA_VENDOR_DP: u8 = 0x03;
/// `MEDIA_FILEPATH_DP`: a file by path on the file system of the preceding node.
pub const MEDIA_FILEPATH_DP: u8 = 0x04;
/// `MEDIA_PIWG_FW_FILE_DP` (PI spec vol. 2, §8.3): firmware file by GUID.
pub const MEDIA_PIWG_FW_FILE_DP: u8 = 0x06;
/// `MEDIA_PIWG_FW_VOL_DP`: firmware volume by name GUID.
pub const MEDIA_PIWG_FW_VOL_DP: u8 = 0x07;
/// `END_DEVICE_PATH_TYPE`.
pub const END_DEVICE_PATH_TYPE: u8 = 0x7f;
/// `END_ENTIRE_DEVICE_PATH_SUBTYPE`.
pub const END_ENTIRE_DEVICE_PATH_SUBTYPE: u8 = 0xff;

/// One device-path node.
#[derive(Debug, Clone, PartialEq, Eq)]
#[doc(alias = "EFI_DEVICE_PATH_PROTOCOL")]
pub struct DevicePathNode {
    pub node_type: u8,
    pub sub_type: u8,
    pub data: Vec<u8>,
}

impl DevicePathNode {
    /// `MEDIA_FW_VOL_DEVICE_PATH`: a firmware volume by its FV name GUID.
    pub fn fv(name: EfiGuid) -> DevicePathNode {
        DevicePathNode {
            node_type: MEDIA_DEVICE_PATH,
            sub_type: MEDIA_PIWG_FW_VOL_DP,
            data: name.as_bytes().to_vec(),
        }
    }
    /// `MEDIA_FW_VOL_FILEPATH_DEVICE_PATH`: a file in a firmware volume by FILE_GUID.
    pub fn fv_file(file: EfiGuid) -> DevicePathNode {
        DevicePathNode {
            node_type: MEDIA_DEVICE_PATH,
            sub_type: MEDIA_PIWG_FW_FILE_DP,
            data: file.as_bytes().to_vec(),
        }
    }
    /// `HARDDRIVE_DEVICE_PATH` of a GPT partition: `u32 PartitionNumber` (1-based entry
    /// index), `u64 PartitionStart` and `u64 PartitionSize` (in logical blocks), the unique
    /// partition GUID as `Signature`, `MBRType` 0x02 (GPT), `SignatureType` 0x02 (GUID). A
    /// device path that starts with this node is a "short-form" path: the firmware finds the
    /// disk by the partition GUID.
    pub fn hard_drive_gpt(
        partition_number: u32,
        start_lba: u64,
        size_lba: u64,
        partition_guid: EfiGuid,
    ) -> DevicePathNode {
        let mut data = Vec::with_capacity(38);
        data.extend_from_slice(&partition_number.to_le_bytes());
        data.extend_from_slice(&start_lba.to_le_bytes());
        data.extend_from_slice(&size_lba.to_le_bytes());
        data.extend_from_slice(partition_guid.as_bytes());
        data.extend_from_slice(&[0x02, 0x02]);
        DevicePathNode {
            node_type: MEDIA_DEVICE_PATH,
            sub_type: MEDIA_HARDDRIVE_DP,
            data,
        }
    }
    /// `FILEPATH_DEVICE_PATH`: `path` (backslash-separated) as NUL-terminated UTF-16LE.
    pub fn file_path(path: &str) -> DevicePathNode {
        DevicePathNode {
            node_type: MEDIA_DEVICE_PATH,
            sub_type: MEDIA_FILEPATH_DP,
            data: super::utf16le(path, true),
        }
    }
    /// `END_ENTIRE_DEVICE_PATH`.
    pub fn end() -> DevicePathNode {
        DevicePathNode {
            node_type: END_DEVICE_PATH_TYPE,
            sub_type: END_ENTIRE_DEVICE_PATH_SUBTYPE,
            data: Vec::new(),
        }
    }

    /// The node as stored.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![self.node_type, self.sub_type];
        out.extend_from_slice(&((4 + self.data.len()) as u16).to_le_bytes());
        out.extend_from_slice(&self.data);
        out
    }
}

/// Serialize a whole device path (the caller includes the end node).
pub fn device_path_bytes(nodes: &[DevicePathNode]) -> Vec<u8> {
    nodes.iter().flat_map(DevicePathNode::to_bytes).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_layout() {
        let g = EfiGuid::from_str_const("7cb8bdc9-f8eb-4f34-aaea-3ee4af6516a1");
        let b = device_path_bytes(&[DevicePathNode::fv(g), DevicePathNode::end()]);
        assert_eq!(&b[..4], [4, 7, 20, 0]);
        assert_eq!(&b[4..20], g.as_bytes());
        assert_eq!(&b[20..], [0x7f, 0xff, 4, 0]);
    }
}
