//! vTPM prediction for a UEFI boot of the built disk, the way the image boots on a vTPM
//! platform: QEMU with OVMF as two pflash drives (`OVMF_CODE.fd` read-only, the image's
//! `OVMF_VARS.fd`), the GPT disk as the only boot device, and no `-kernel`.
//!
//! The image's variable store holds one boot option the build writes ([`boot_variables`]):
//! `Boot0001` = `HD(<ESP>)/\EFI\BOOT\BOOTX64.EFI` (a short-form device path: the firmware
//! finds the disk by the ESP's unique partition GUID) whose optional data, the kernel's
//! `LoadOptions`, is the command line (UTF-16LE + NUL), and `BootOrder` = `0001`. OVMF's boot
//! manager starts it; the kernel's EFI stub reads its command line from `LoadOptions`.
//!
//! What is measured, in log order, beside PCR 0 and 7 (as for direct boot, [`super`]):
//!
//! | PCR | events |
//! |---|---|
//! | 4 | `EV_EFI_ACTION` "Calling EFI Application from Boot Option" (ReadyToBoot comes before the boot option is loaded); `EV_SEPARATOR`; `EV_EFI_BOOT_SERVICES_APPLICATION`: Authenticode of `BOOTX64.EFI` (the kernel) |
//! | 5 | `EV_SEPARATOR`; `EV_EFI_GPT_EVENT` (`UEFI_GPT_DATA` of the disk the image was loaded from, [`gpt_event`]); `EV_EFI_ACTION` "Exit Boot Services Invocation", "... Returned with Success" |
//! | 9 | `EV_EVENT_TAG` LoadOptions: the boot option's optional data, byte for byte |
//!
//! **`initrd=` is not measured.** Linux 6.12's EFI stub measures an initrd only when it comes
//! through the `LINUX_EFI_INITRD_MEDIA_GUID` LoadFile2 protocol; one it loads from the ESP
//! because the command line says `initrd=\path` is not measured (`efi_load_initrd` in
//! `drivers/firmware/efi/libstub/efi-stub-helper.c`). Only the LoadOptions naming it are, so
//! a replaced file behind an unchanged `initrd=` would go unnoticed: images booted this way
//! must not use `initrd=` (this one has no initrd; the `initrd` tamper case of boot-test is
//! caught by its changed LoadOptions).
//!
//! Sources: edk2 `MdeModulePkg/Library/UefiBootManagerLib/BmBoot.c` (`EfiBootManagerBoot`
//! signals ReadyToBoot, then `LoadImage`), `SecurityPkg/Library/DxeTpm2MeasureBootLib`
//! (`Tcg2MeasureGptTable`, then `Tcg2MeasurePeImage`), TCG PC Client PFP 1.05 §10.4.4
//! (`UEFI_GPT_DATA`); checked against real boots by `cargo xtask boot-test`.

use super::varstore::{self, NewVariable, NV_BS_RT};
use super::{Error, VtpmEvent, VtpmMeasurement, BANKS};
use crate::eventlog::event_type::{EV_EFI_BOOT_SERVICES_APPLICATION, EV_EFI_GPT_EVENT};
use crate::eventlog::events::{
    efi_action, image_load_event_data, separator, tagged_event, Measured,
    EFI_CALLING_EFI_APPLICATION, EFI_EXIT_BOOT_SERVICES_INVOCATION,
    EFI_EXIT_BOOT_SERVICES_SUCCEEDED, LOAD_OPTIONS_EVENT_TAG_ID,
};
use crate::guid::EfiGuid;
use crate::uefi::device_path::{device_path_bytes, DevicePathNode};
use crate::uefi::load_option::{EfiLoadOption, LOAD_OPTION_ACTIVE};
use crate::uefi::utf16le;
use crate::uefi::variable::{boot_order_data, EFI_GLOBAL_VARIABLE};

/// Where the kernel sits on the ESP (the removable-media path, so the disk also boots without
/// the boot option, though with an empty command line).
pub const ESP_LOADER_PATH: &str = "\\EFI\\BOOT\\BOOTX64.EFI";
/// The boot option's number (`Boot0001`) and description.
pub const BOOT_OPTION_NUMBER: u16 = 1;
pub const BOOT_OPTION_DESCRIPTION: &str = "cvm-image";
/// Logical block size the GPT is read with (virtio-blk's default).
pub const BLOCK_BYTES: usize = 512;
/// `sizeof (EFI_PARTITION_TABLE_HEADER)` (packed): what `UEFI_GPT_DATA` copies of LBA 1.
const GPT_HEADER_BYTES: usize = 92;

/// The ESP as a `HARDDRIVE_DEVICE_PATH` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EspPartition {
    /// 1-based index in the GPT entry array.
    pub number: u32,
    pub start_lba: u64,
    pub size_lba: u64,
    /// Unique partition GUID.
    pub guid: EfiGuid,
}

impl EspPartition {
    /// The partition a boot option's device path starts with: its first node must be a
    /// `HARDDRIVE_DEVICE_PATH` of a GPT partition, the form [`boot_option`] writes. This is how
    /// a verifier reads back which partition an image's `Boot####` names.
    pub fn of_boot_option(option: &EfiLoadOption) -> Result<EspPartition, Error> {
        use crate::uefi::device_path::{MEDIA_DEVICE_PATH, MEDIA_HARDDRIVE_DP};
        let p = &option.file_path_list;
        let refuse = |why: &str| {
            Error::Unsupported(format!(
                "boot option \"{}\": {why}; expected a GPT HARDDRIVE_DEVICE_PATH first",
                option.description
            ))
        };
        let Some(n) = p.get(..42) else {
            return Err(refuse(
                "its device path is shorter than one hard-drive node",
            ));
        };
        if n[0] != MEDIA_DEVICE_PATH || n[1] != MEDIA_HARDDRIVE_DP || n[2..4] != [42, 0] {
            return Err(refuse(&format!(
                "its first node is type {:#04x} subtype {:#04x} length {}",
                n[0],
                n[1],
                u16::from_le_bytes([n[2], n[3]])
            )));
        }
        if n[40..42] != [0x02, 0x02] {
            return Err(refuse("the partition is not a GPT partition named by GUID"));
        }
        let u64_at = |o: usize| u64::from_le_bytes(n[o..o + 8].try_into().expect("8 bytes"));
        Ok(EspPartition {
            number: u32::from_le_bytes(n[4..8].try_into().expect("4 bytes")),
            start_lba: u64_at(8),
            size_lba: u64_at(16),
            guid: EfiGuid(n[24..40].try_into().expect("16 bytes")),
        })
    }
}

/// The kernel's `LoadOptions`: the command line as UTF-16LE with a NUL, as OVMF passes it for
/// a direct boot too.
pub fn load_options(cmdline: &str) -> Vec<u8> {
    utf16le(cmdline, true)
}

/// `Boot0001`: the kernel on the ESP with the command line as optional data.
pub fn boot_option(esp: &EspPartition, cmdline: &str) -> EfiLoadOption {
    EfiLoadOption {
        attributes: LOAD_OPTION_ACTIVE,
        description: BOOT_OPTION_DESCRIPTION.into(),
        file_path_list: device_path_bytes(&[
            DevicePathNode::hard_drive_gpt(esp.number, esp.start_lba, esp.size_lba, esp.guid),
            DevicePathNode::file_path(ESP_LOADER_PATH),
            DevicePathNode::end(),
        ]),
        optional_data: load_options(cmdline),
    }
}

/// The variables the build adds to the firmware's empty store: `Boot0001`, `BootOrder`.
pub fn boot_variables(esp: &EspPartition, cmdline: &str) -> Vec<NewVariable> {
    let var = |name: String, data: Vec<u8>| NewVariable {
        vendor: EFI_GLOBAL_VARIABLE,
        name,
        attributes: NV_BS_RT,
        data,
    };
    vec![
        var(
            format!("Boot{BOOT_OPTION_NUMBER:04X}"),
            boot_option(esp, cmdline).to_bytes(),
        ),
        var("BootOrder".into(), boot_order_data(&[BOOT_OPTION_NUMBER])),
    ]
}

/// The image's `OVMF_VARS.fd`: the NV volume at the start of `firmware` (a unified
/// `OVMF.fd`) with [`boot_variables`] added.
pub fn image_varstore(
    firmware: &[u8],
    esp: &EspPartition,
    cmdline: &str,
) -> Result<Vec<u8>, Error> {
    let len = varstore::nv_volume_len(firmware)?;
    varstore::with_variables(&firmware[..len], &boot_variables(esp, cmdline))
}

/// The `LoadOptions` the firmware will pass: the optional data of the first `BootOrder` entry
/// of `varstore`.
pub fn first_boot_option(varstore_bytes: &[u8]) -> Result<EfiLoadOption, Error> {
    let vars = varstore::variables(varstore_bytes)?;
    let find = |name: &str| {
        vars.iter()
            .find(|v| v.vendor == EFI_GLOBAL_VARIABLE && v.name == name)
    };
    let unsupported = |m: String| Error::Unsupported(m);
    let order = find("BootOrder")
        .ok_or_else(|| unsupported("the variable store has no BootOrder".into()))?;
    let first = order
        .data
        .get(..2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .ok_or_else(|| unsupported("BootOrder is empty".into()))?;
    let name = format!("Boot{first:04X}");
    let option = find(&name).ok_or_else(|| {
        unsupported(format!(
            "BootOrder starts with {name}, which does not exist"
        ))
    })?;
    EfiLoadOption::parse(&option.data)
        .map_err(|e| unsupported(format!("{name} is no EFI_LOAD_OPTION: {e}")))
}

/// `EV_EFI_GPT_EVENT` of a disk, from its first bytes (at least up to the end of the primary
/// partition entry array, usually 34 blocks): `UEFI_GPT_DATA` = the 92-byte primary header
/// of LBA 1, `u64` count of the entries whose type GUID is not zero, those entries in array
/// order (`SizeOfPartitionEntry` bytes each). The digest is over that data.
pub fn gpt_event(disk_prefix: &[u8]) -> Result<VtpmEvent, Error> {
    let bad = |offset: usize, problem: String| Error::Gpt { offset, problem };
    let get = |off: usize, n: usize, what: &str| {
        disk_prefix.get(off..off + n).ok_or_else(|| {
            bad(
                off,
                format!(
                    "{what} needs {n} bytes, the disk prefix has {}",
                    disk_prefix.len()
                ),
            )
        })
    };
    let le = |b: &[u8]| b.iter().rev().fold(0u64, |a, &x| (a << 8) | u64::from(x));
    let h = BLOCK_BYTES;
    if get(h, 8, "GPT header signature")? != b"EFI PART" {
        return Err(bad(h, "no \"EFI PART\" signature at LBA 1".into()));
    }
    let header_size = le(get(h + 12, 4, "HeaderSize")?);
    if !(GPT_HEADER_BYTES as u64..=BLOCK_BYTES as u64).contains(&header_size) {
        return Err(bad(
            h + 12,
            format!("HeaderSize {header_size} is not 92..=512"),
        ));
    }
    let entry_lba = le(get(h + 72, 8, "PartitionEntryLBA")?);
    let count = le(get(h + 80, 4, "NumberOfPartitionEntries")?);
    let size = le(get(h + 84, 4, "SizeOfPartitionEntry")?);
    if size < 128 || size % 8 != 0 || count > 1024 {
        return Err(bad(
            h + 80,
            format!("{count} entries of {size} bytes: not a GPT entry array edk2 accepts"),
        ));
    }
    let start = entry_lba
        .checked_mul(BLOCK_BYTES as u64)
        .filter(|&s| s <= disk_prefix.len() as u64)
        .ok_or_else(|| {
            bad(
                h + 72,
                format!("PartitionEntryLBA {entry_lba} lies beyond the disk prefix"),
            )
        })? as usize;
    let array = get(start, (count * size) as usize, "partition entry array")?;
    // edk2's PartitionDxe only exposes partitions of a GPT whose CRCs hold (and would fall back
    // to the backup GPT otherwise): a prefix that fails them is refused, not predicted.
    let header = get(h, header_size as usize, "GPT header")?;
    let mut zeroed = header.to_vec();
    zeroed[16..20].fill(0);
    let stored = le(&header[16..20]) as u32;
    let computed = crc32fast::hash(&zeroed);
    if stored != computed {
        return Err(bad(
            h + 16,
            format!("HeaderCRC32 is {stored:#010x}, the header's CRC32 is {computed:#010x}"),
        ));
    }
    let my_lba = le(&header[24..32]);
    if my_lba != 1 {
        return Err(bad(
            h + 24,
            format!("MyLBA is {my_lba}, not 1 (primary header)"),
        ));
    }
    let stored = le(&header[88..92]) as u32;
    let computed = crc32fast::hash(array);
    if stored != computed {
        return Err(bad(
            h + 88,
            format!(
                "PartitionEntryArrayCRC32 is {stored:#010x}, the array's CRC32 is {computed:#010x}"
            ),
        ));
    }
    let used: Vec<&[u8]> = array
        .chunks_exact(size as usize)
        .filter(|e| e[..16].iter().any(|&b| b != 0))
        .collect();
    let mut data = get(h, GPT_HEADER_BYTES, "GPT header")?.to_vec();
    data.extend_from_slice(&(used.len() as u64).to_le_bytes());
    for e in &used {
        data.extend_from_slice(e);
    }
    let m = Measured::new(
        EV_EFI_GPT_EVENT,
        data.clone(),
        data,
        format!("GPT: header and {} partition entries", used.len()),
    );
    Ok(VtpmEvent::from_measured(5, m))
}

/// What determines PCRs 0, 4, 5, 7 and 9 of a UEFI disk boot.
#[derive(Debug, Clone, Copy)]
pub struct VtpmDiskBoot<'a> {
    /// The unified `OVMF.fd` (its code part is `OVMF_CODE.fd`): PCR 0.
    pub firmware: &'a [u8],
    /// The image's `OVMF_VARS.fd`: Secure Boot state (PCR 7) and the boot option (PCR 9).
    pub varstore: &'a [u8],
    /// The EFI application the boot option starts (the kernel with its EFI stub).
    pub loader: &'a [u8],
    /// The disk's first blocks (GPT header and entries): PCR 5.
    pub disk_prefix: &'a [u8],
}

/// The PCR 4 event of the loader: its Authenticode in both banks (event data with the boot
/// option's short-form device path; the firmware logs the expanded one, not compared).
fn loader_event(loader: &[u8], device_path: &[u8]) -> Result<VtpmEvent, Error> {
    let mut e = super::kernel_event(loader)?;
    e.event_data = image_load_event_data(0, loader.len() as u64, device_path);
    e.description = format!("kernel Authenticode ({ESP_LOADER_PATH} on the ESP)");
    debug_assert_eq!(e.event_type, EV_EFI_BOOT_SERVICES_APPLICATION);
    Ok(e)
}

/// Predict PCRs 0, 4, 5, 7, 9 and their events for a UEFI boot of the disk.
pub fn measure_disk(boot: &VtpmDiskBoot<'_>) -> Result<VtpmMeasurement, Error> {
    let pcr7 = super::secure_boot_events(boot.varstore)?;
    let option = first_boot_option(boot.varstore)?;
    let gpt = gpt_event(boot.disk_prefix)?;
    let (pcr0, loader) = std::thread::scope(|s| {
        let k = s.spawn(|| loader_event(boot.loader, &option.file_path_list));
        let f = super::firmware_events(boot.firmware);
        (f, k.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
    });
    let ev = VtpmEvent::from_measured;
    let mut events = pcr0?;
    events.extend(pcr7);
    events.push(ev(4, efi_action(EFI_CALLING_EFI_APPLICATION)));
    // ReadyToBoot: the separators of PCRs 0-7 (1, 2, 3, 6 are not predicted).
    events.push(ev(0, separator()));
    events.push(ev(4, separator()));
    events.push(ev(5, separator()));
    events.push(gpt);
    events.push(loader?);
    if !option.optional_data.is_empty() {
        events.push(ev(
            9,
            tagged_event(
                LOAD_OPTIONS_EVENT_TAG_ID,
                "LOADED_IMAGE::LoadOptions",
                option.optional_data.clone(),
            ),
        ));
    }
    for a in [
        EFI_EXIT_BOOT_SERVICES_INVOCATION,
        EFI_EXIT_BOOT_SERVICES_SUCCEEDED,
    ] {
        events.push(ev(5, efi_action(a)));
    }
    let pcrs = BANKS
        .iter()
        .map(|&b| (b, super::replay_events(&events, b)))
        .collect();
    Ok(VtpmMeasurement { events, pcrs })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vtpm::varstore::tests::nv_volume;
    use crate::vtpm::Bank;
    use sha2::{Sha256, Sha384};

    fn esp() -> EspPartition {
        EspPartition {
            number: 1,
            start_lba: 2048,
            size_lba: 0x10000,
            guid: EfiGuid::from_str_const("0c9a5c3e-3f54-4a26-9c3d-7a6f1b3c2d11"),
        }
    }

    /// The layout `efibootmgr -c -d /dev/vda -p 1 -l '\EFI\BOOT\BOOTX64.EFI' -L cvm-image`
    /// writes (UEFI spec 2.10 §3.1.3, §10.3.5.1, §10.3.5.4), decoded by hand.
    #[test]
    fn boot_option_layout() {
        let o = boot_option(&esp(), "ro");
        let b = o.to_bytes();
        assert_eq!(&b[..4], LOAD_OPTION_ACTIVE.to_le_bytes());
        let path_len = u16::from_le_bytes([b[4], b[5]]) as usize;
        // HD node 42 + file node 4 + 2*(21 chars + NUL) + end 4.
        assert_eq!(path_len, 42 + 4 + 44 + 4);
        let desc = utf16le(BOOT_OPTION_DESCRIPTION, true);
        assert_eq!(&b[6..6 + desc.len()], desc);
        let p = &b[6 + desc.len()..];
        assert_eq!(&p[..4], [4, 1, 42, 0]);
        assert_eq!(u32::from_le_bytes(p[4..8].try_into().unwrap()), 1);
        assert_eq!(u64::from_le_bytes(p[8..16].try_into().unwrap()), 2048);
        assert_eq!(u64::from_le_bytes(p[16..24].try_into().unwrap()), 0x10000);
        assert_eq!(&p[24..40], esp().guid.as_bytes());
        assert_eq!(&p[40..42], [2, 2]);
        assert_eq!(&p[42..46], [4, 4, 48, 0]);
        assert_eq!(&p[path_len - 4..path_len], [0x7f, 0xff, 4, 0]);
        assert_eq!(&p[path_len..], b"r\0o\0\0\0");
        assert_eq!(EfiLoadOption::parse(&b).unwrap(), o);
    }

    #[test]
    fn varstore_round_trip_gives_the_load_options() {
        // A 4 KiB NV volume followed by 4 KiB of "code".
        let mut fw = nv_volume(&[]);
        fw[0x20..0x28].copy_from_slice(&0x1000u64.to_le_bytes());
        fw.extend_from_slice(&[0xAA; 0x1000]);
        let vars = image_varstore(&fw, &esp(), "console=ttyS0").unwrap();
        assert_eq!(vars.len(), 0x1000);
        let o = first_boot_option(&vars).unwrap();
        assert_eq!(o.optional_data, load_options("console=ttyS0"));
        assert!(matches!(
            first_boot_option(&nv_volume(&[])),
            Err(Error::Unsupported(m)) if m.contains("no BootOrder")
        ));
    }

    /// A one-partition GPT as the `gpt` crate writes it (4 used entries of 128 would be the
    /// same): header at LBA 1, 128 entries at LBA 2.
    fn disk(types: &[[u8; 16]]) -> Vec<u8> {
        let mut d = vec![0u8; 34 * BLOCK_BYTES];
        let h = BLOCK_BYTES;
        d[h..h + 8].copy_from_slice(b"EFI PART");
        d[h + 8..h + 12].copy_from_slice(&0x10000u32.to_le_bytes());
        d[h + 12..h + 16].copy_from_slice(&92u32.to_le_bytes());
        d[h + 72..h + 80].copy_from_slice(&2u64.to_le_bytes());
        d[h + 80..h + 84].copy_from_slice(&128u32.to_le_bytes());
        d[h + 84..h + 88].copy_from_slice(&128u32.to_le_bytes());
        d[h + 24..h + 32].copy_from_slice(&1u64.to_le_bytes());
        for (i, t) in types.iter().enumerate() {
            let at = 2 * BLOCK_BYTES + 128 * i;
            d[at..at + 16].copy_from_slice(t);
            d[at + 16] = i as u8 + 1;
        }
        fix_crcs(&mut d);
        d
    }

    /// Recompute both CRC32s after an edit (bitwise CRC-32, independent of `crc32fast`).
    fn fix_crcs(d: &mut [u8]) {
        fn crc32(bytes: &[u8]) -> u32 {
            let mut c = !0u32;
            for &b in bytes {
                c ^= u32::from(b);
                for _ in 0..8 {
                    c = if c & 1 != 0 {
                        (c >> 1) ^ 0xedb8_8320
                    } else {
                        c >> 1
                    };
                }
            }
            !c
        }
        let h = BLOCK_BYTES;
        let array = crc32(&d[2 * BLOCK_BYTES..2 * BLOCK_BYTES + 128 * 128]);
        d[h + 88..h + 92].copy_from_slice(&array.to_le_bytes());
        d[h + 16..h + 20].fill(0);
        let header = crc32(&d[h..h + 92]);
        d[h + 16..h + 20].copy_from_slice(&header.to_le_bytes());
    }

    #[test]
    fn boot_option_names_its_partition() {
        let o = boot_option(&esp(), "console=ttyS0");
        assert_eq!(EspPartition::of_boot_option(&o).unwrap(), esp());
        let mut fv = o.clone();
        fv.file_path_list = EfiLoadOption::ovmf_ui_app().file_path_list;
        assert!(EspPartition::of_boot_option(&fv)
            .unwrap_err()
            .to_string()
            .contains("type 0x04 subtype 0x07"));
        let mut short = o.clone();
        short.file_path_list.truncate(20);
        assert!(EspPartition::of_boot_option(&short).is_err());
        let mut mbr = o;
        mbr.file_path_list[40] = 0x01;
        assert!(EspPartition::of_boot_option(&mbr).is_err());
    }

    #[test]
    fn gpt_event_data_and_refusals() {
        let d = disk(&[[1; 16], [0; 16], [2; 16]]);
        let e = gpt_event(&d).unwrap();
        assert_eq!(e.pcr, 5);
        assert_eq!(e.event_type, EV_EFI_GPT_EVENT);
        // Header, count 2 (the zero-type entry is skipped), entries 1 and 3.
        assert_eq!(e.event_data.len(), 92 + 8 + 2 * 128);
        assert_eq!(&e.event_data[..92], &d[512..604]);
        assert_eq!(&e.event_data[92..100], 2u64.to_le_bytes());
        assert_eq!(&e.event_data[100..228], &d[1024..1152]);
        assert_eq!(&e.event_data[228..], &d[1280..1408]);
        use sha2::Digest;
        assert_eq!(
            e.digest(Bank::Sha256).unwrap(),
            Sha256::digest(&e.event_data).as_slice()
        );
        assert_eq!(
            e.digest(Bank::Sha384).unwrap(),
            Sha384::digest(&e.event_data).as_slice()
        );
        assert!(gpt_event(&d[..600]).is_err());
        assert!(gpt_event(&d[..2000])
            .unwrap_err()
            .to_string()
            .contains("partition entry array"));
        let mut bad = d.clone();
        bad[512] = b'X';
        assert!(gpt_event(&bad)
            .unwrap_err()
            .to_string()
            .contains("EFI PART"));
        let mut bad = d.clone();
        bad[512 + 84] = 7;
        assert!(gpt_event(&bad).is_err());
        // A changed header byte or entry byte breaks a CRC: refused, naming the field.
        let mut bad = d.clone();
        bad[512 + 40] ^= 1;
        let e = gpt_event(&bad).unwrap_err().to_string();
        assert!(e.contains("HeaderCRC32") && e.contains("0x210"), "{e}");
        let mut bad = d.clone();
        bad[1024 + 40] ^= 1;
        let e = gpt_event(&bad).unwrap_err().to_string();
        assert!(e.contains("PartitionEntryArrayCRC32"), "{e}");
        // ... and accepted again once the CRCs are recomputed; MyLBA must say 1.
        fix_crcs(&mut bad);
        assert!(gpt_event(&bad).is_ok());
        let mut bad = d.clone();
        bad[512 + 24] = 33;
        fix_crcs(&mut bad);
        assert!(gpt_event(&bad).unwrap_err().to_string().contains("MyLBA"));
        // Never a panic on mutated prefixes.
        let mut state = 0x9E37_79B9_u64;
        for _ in 0..5000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let mut m = d.clone();
            let at = 512 + (state as usize % 100);
            m[at] = (state >> 32) as u8;
            let _ = gpt_event(&m[..(state as usize >> 40) % m.len()]);
            let _ = gpt_event(&m);
        }
    }
}
