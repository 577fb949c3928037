//! The UEFI variable store OVMF carries at the start of a unified `OVMF.fd` (the NV firmware
//! volume, `gEfiSystemNvDataFvGuid`): just enough to list the variables it holds, so that a
//! prediction can refuse firmware with enrolled Secure Boot keys instead of assuming empty ones.
//!
//! Layout (edk2 `MdeModulePkg/Include/Guid/VariableFormat.h`, PI spec vol. 3 §3.2.1):
//! `EFI_FIRMWARE_VOLUME_HEADER` (`_FVH` at 0x28, `HeaderLength` at 0x30), then
//! `VARIABLE_STORE_HEADER` (signature GUID, size, format 0x5A, state 0xFE, 8 reserved bytes),
//! then 4-byte aligned variables, each `StartId` 0x55AA, `State`, header, name (UTF-16LE, NUL
//! included) and data.

use super::Error;
use crate::guid::EfiGuid;

/// `gEfiSystemNvDataFvGuid`: the file-system GUID of the NV variable firmware volume.
pub const SYSTEM_NV_DATA_FV_GUID: EfiGuid =
    EfiGuid::from_str_const("fff12b8d-7696-4c8b-a985-2747075b4f50");
/// `gEfiAuthenticatedVariableGuid`: a store of `AUTHENTICATED_VARIABLE_HEADER`s.
pub const AUTHENTICATED_VARIABLE_GUID: EfiGuid =
    EfiGuid::from_str_const("aaf32c78-947b-439a-a180-2e144ec37792");
/// `gEfiVariableGuid`: a store of plain `VARIABLE_HEADER`s.
pub const VARIABLE_GUID: EfiGuid = EfiGuid::from_str_const("ddcf3616-3275-4164-98b6-fe85707ffe7d");

const VARIABLE_START_ID: u16 = 0x55AA;
/// `VAR_ADDED`, and `VAR_ADDED & VAR_IN_DELETED_TRANSITION`: the states of a live variable.
const LIVE_STATES: [u8; 2] = [0x3F, 0x3E];

/// One live variable of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredVariable {
    pub vendor: EfiGuid,
    pub name: String,
    pub data: Vec<u8>,
}

fn le(b: &[u8]) -> u64 {
    b.iter().rev().fold(0, |a, &x| (a << 8) | u64::from(x))
}

/// The first live Secure Boot key variable (PK, KEK, db or dbx) of the store at the start of
/// `nv`: predictions model Secure Boot off (empty variables) and refuse firmware that enrolls
/// keys, whose measurements (and image verification events) they do not model.
pub fn enrolled_secure_boot_key(nv: &[u8]) -> Result<Option<StoredVariable>, Error> {
    let keys = crate::uefi::variable::secure_boot_variables_empty();
    Ok(variables(nv)?.into_iter().find(|s| {
        keys.iter().any(|k| k.variable_name == s.vendor && k.unicode_name == s.name)
    }))
}

/// The live variables of the store at the start of `firmware`, in store order.
pub fn variables(firmware: &[u8]) -> Result<Vec<StoredVariable>, Error> {
    let bad = |offset: usize, problem: String| Error::Varstore { offset, problem };
    let get = |off: usize, n: usize, what: &str| {
        off.checked_add(n)
            .and_then(|e| firmware.get(off..e))
            .ok_or_else(|| {
                bad(
                    off,
                    format!(
                        "{what} needs {n} bytes, the firmware has {}",
                        firmware.len()
                    ),
                )
            })
    };
    if get(0x10, 16, "FV FileSystemGuid")? != SYSTEM_NV_DATA_FV_GUID.as_bytes()
        || get(0x28, 4, "FV signature")? != b"_FVH"
    {
        return Err(bad(
            0,
            "no NV variable firmware volume (gEfiSystemNvDataFvGuid, _FVH) at the start: not a unified OVMF.fd".into(),
        ));
    }
    let store = le(get(0x30, 2, "FV HeaderLength")?) as usize;
    let sig = get(store, 16, "VARIABLE_STORE_HEADER.Signature")?;
    let header_len = if sig == AUTHENTICATED_VARIABLE_GUID.as_bytes() {
        60
    } else if sig == VARIABLE_GUID.as_bytes() {
        32
    } else {
        return Err(bad(store, "unknown variable store signature".into()));
    };
    let size = le(get(store + 16, 4, "VARIABLE_STORE_HEADER.Size")?) as usize;
    let end = store.saturating_add(size);
    if end > firmware.len() {
        return Err(bad(
            store + 16,
            format!(
                "a store of {size:#x} bytes does not fit in the {}-byte firmware",
                firmware.len()
            ),
        ));
    }
    let mut off = store + 28;
    let mut out = Vec::new();
    while off + header_len <= end && le(get(off, 2, "StartId")?) == u64::from(VARIABLE_START_ID) {
        let state = get(off + 2, 1, "State")?[0];
        // NameSize, DataSize and VendorGuid are the last 24 bytes of either header.
        let name_size = le(get(off + header_len - 24, 4, "NameSize")?) as usize;
        let data_size = le(get(off + header_len - 20, 4, "DataSize")?) as usize;
        let vendor = EfiGuid(
            get(off + header_len - 16, 16, "VendorGuid")?
                .try_into()
                .unwrap(),
        );
        let name_at = off + header_len;
        let name = get(name_at, name_size, "variable name")?;
        let data = get(name_at + name_size, data_size, "variable data")?;
        let units: Vec<u16> = name
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|&u| u != 0)
            .collect();
        let name = String::from_utf16(&units)
            .map_err(|_| bad(name_at, "variable name is not UTF-16".into()))?;
        if LIVE_STATES.contains(&state) {
            out.push(StoredVariable {
                vendor,
                name,
                data: data.to_vec(),
            });
        }
        off = (name_at + name_size + data_size + 3) & !3;
    }
    Ok(out)
}

/// The length of the NV variable firmware volume at the start of a unified `OVMF.fd`
/// (`FvLength`: the variable store, the fault-tolerant-write working block and its spare
/// area, 0x84000 bytes in the 4 MiB builds). Splitting `OVMF.fd` there gives the
/// `OVMF_VARS.fd` / `OVMF_CODE.fd` pair that QEMU takes as two pflash drives.
pub fn nv_volume_len(firmware: &[u8]) -> Result<usize, Error> {
    variables(firmware)?;
    let len = le(&firmware[0x20..0x28]);
    if len == 0 || len >= firmware.len() as u64 || len % 0x1000 != 0 {
        return Err(Error::Varstore {
            offset: 0x20,
            problem: format!(
                "FvLength {len:#x} of the NV volume is not a 4 KiB multiple below the firmware size {:#x}",
                firmware.len()
            ),
        });
    }
    Ok(len as usize)
}

/// `EFI_VARIABLE_NON_VOLATILE | EFI_VARIABLE_BOOTSERVICE_ACCESS | EFI_VARIABLE_RUNTIME_ACCESS`:
/// the attributes of `Boot####` and `BootOrder`.
pub const NV_BS_RT: u32 = 0x7;

/// A variable to add to a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewVariable {
    pub vendor: EfiGuid,
    pub name: String,
    pub attributes: u32,
    pub data: Vec<u8>,
}

/// A copy of the variable store `nv` (an NV volume as [`variables`] reads it, e.g. an
/// `OVMF_VARS.fd`) with `vars` appended as live (`VAR_ADDED`) authenticated variables, in
/// order: what the firmware's variable driver would have written, without time stamps or
/// monotonic counts (both 0, as edk2 writes for variables without time-based
/// authentication). Refuses a store that is not authenticated, a variable that already exists
/// (it would have to be deleted first) and a store too small; never writes outside the store.
pub fn with_variables(nv: &[u8], vars: &[NewVariable]) -> Result<Vec<u8>, Error> {
    let existing = variables(nv)?;
    let bad = |offset: usize, problem: String| Error::Varstore { offset, problem };
    let store = le(&nv[0x30..0x32]) as usize;
    if nv[store..store + 16] != *AUTHENTICATED_VARIABLE_GUID.as_bytes() {
        return Err(bad(
            store,
            "not an authenticated variable store: adding variables is not modelled".into(),
        ));
    }
    let end = store + le(&nv[store + 16..store + 20]) as usize;
    // The first free byte: after the last record (live or not) of the store.
    let mut off = store + 28;
    while off + 60 <= end && le(&nv[off..off + 2]) == u64::from(VARIABLE_START_ID) {
        let name_size = le(&nv[off + 36..off + 40]) as usize;
        let data_size = le(&nv[off + 40..off + 44]) as usize;
        off = (off + 60 + name_size + data_size + 3) & !3;
    }
    let mut out = nv.to_vec();
    for v in vars {
        if existing
            .iter()
            .any(|e| e.vendor == v.vendor && e.name == v.name)
        {
            return Err(bad(
                off,
                format!("the store already holds {} ({})", v.name, v.vendor),
            ));
        }
        let name = crate::uefi::utf16le(&v.name, true);
        let mut rec = vec![0u8; 60];
        rec[..2].copy_from_slice(&VARIABLE_START_ID.to_le_bytes());
        rec[2] = LIVE_STATES[0];
        rec[4..8].copy_from_slice(&v.attributes.to_le_bytes());
        rec[36..40].copy_from_slice(&(name.len() as u32).to_le_bytes());
        rec[40..44].copy_from_slice(&(v.data.len() as u32).to_le_bytes());
        rec[44..60].copy_from_slice(v.vendor.as_bytes());
        rec.extend_from_slice(&name);
        rec.extend_from_slice(&v.data);
        let next = (off + rec.len() + 3) & !3;
        if next > end {
            return Err(bad(
                off,
                format!(
                    "no room for {} ({} bytes) in the {:#x}-byte store",
                    v.name,
                    rec.len(),
                    end - store
                ),
            ));
        }
        if out[off..next].iter().any(|&b| b != 0xFF) {
            return Err(bad(off, "the free space of the store is not erased (0xFF)".into()));
        }
        out[off..off + rec.len()].copy_from_slice(&rec);
        off = next;
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A 4 KiB NV volume with an authenticated store holding `vars` (state, vendor, name, data).
    pub(crate) fn nv_volume(vars: &[(u8, EfiGuid, &str, &[u8])]) -> Vec<u8> {
        let mut fw = vec![0xFFu8; 4096];
        fw[0x10..0x20].copy_from_slice(SYSTEM_NV_DATA_FV_GUID.as_bytes());
        fw[0x28..0x2C].copy_from_slice(b"_FVH");
        fw[0x30..0x32].copy_from_slice(&72u16.to_le_bytes());
        fw[72..88].copy_from_slice(AUTHENTICATED_VARIABLE_GUID.as_bytes());
        fw[88..92].copy_from_slice(&(4096u32 - 72).to_le_bytes());
        let mut off = 100;
        for (state, vendor, name, data) in vars {
            let n = crate::uefi::utf16le(name, true);
            let mut h = vec![0u8; 60];
            h[..2].copy_from_slice(&VARIABLE_START_ID.to_le_bytes());
            h[2] = *state;
            h[36..40].copy_from_slice(&(n.len() as u32).to_le_bytes());
            h[40..44].copy_from_slice(&(data.len() as u32).to_le_bytes());
            h[44..60].copy_from_slice(vendor.as_bytes());
            let rec = [h, n, data.to_vec()].concat();
            fw[off..off + rec.len()].copy_from_slice(&rec);
            off = (off + rec.len() + 3) & !3;
        }
        fw
    }

    #[test]
    fn lists_live_variables_only() {
        let g = crate::uefi::variable::EFI_GLOBAL_VARIABLE;
        let fw = nv_volume(&[
            (0x3F, g, "PK", b"key"),
            (0x3C, g, "KEK", b"old"),
            (0x3F, g, "X", b""),
        ]);
        let v = variables(&fw).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(
            (v[0].name.as_str(), v[0].data.as_slice()),
            ("PK", &b"key"[..])
        );
        assert_eq!(v[1].name, "X");
        assert!(variables(&nv_volume(&[])).unwrap().is_empty());
    }

    /// Seeded mutation test, always run: flipped bytes and truncations of a store give `Ok` or
    /// a typed error, never a panic.
    #[test]
    fn mutated_stores_never_panic() {
        let g = crate::uefi::variable::EFI_GLOBAL_VARIABLE;
        let base = nv_volume(&[(0x3F, g, "PK", b"key"), (0x3F, g, "KEK", &[7; 40])]);
        let mut state = 0x5EED_u64;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let mut fw = base.clone();
            for k in 0..(state % 4 + 1) {
                let at = ((state >> (8 * k)) as usize).wrapping_mul(31) % 300;
                fw[at] = (state >> (16 + k)) as u8;
            }
            let _ = variables(&fw[..(state as usize >> 20) % fw.len()]);
            let _ = variables(&fw);
        }
    }

    #[test]
    fn added_variables_read_back_and_duplicates_are_refused() {
        let g = crate::uefi::variable::EFI_GLOBAL_VARIABLE;
        let base = nv_volume(&[(0x3F, g, "PK", b"key"), (0x3C, g, "Old", b"gone")]);
        let new = |name: &str, data: &[u8]| NewVariable {
            vendor: g,
            name: name.into(),
            attributes: NV_BS_RT,
            data: data.to_vec(),
        };
        let out = with_variables(&base, &[new("Boot0001", b"abcde"), new("BootOrder", &[1, 0])]).unwrap();
        assert_eq!(out.len(), base.len());
        let v = variables(&out).unwrap();
        let names: Vec<&str> = v.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["PK", "Boot0001", "BootOrder"]);
        assert_eq!(v[1].data, b"abcde");
        // The reader's own test store writes records the same way: identical bytes.
        let same = nv_volume(&[
            (0x3F, g, "PK", b"key"),
            (0x3C, g, "Old", b"gone"),
            (0x3F, g, "Boot0001", b"abcde"),
            (0x3F, g, "BootOrder", &[1, 0]),
        ]);
        // nv_volume leaves the attributes 0.
        let mut ours = out.clone();
        let mut off = 100;
        while ours[off..off + 2] == VARIABLE_START_ID.to_le_bytes() {
            ours[off + 4..off + 8].copy_from_slice(&[0; 4]);
            let n = le(&ours[off + 36..off + 40]) as usize + le(&ours[off + 40..off + 44]) as usize;
            off = (off + 60 + n + 3) & !3;
        }
        assert_eq!(ours, same);
        assert!(with_variables(&out, &[new("BootOrder", &[2, 0])])
            .unwrap_err()
            .to_string()
            .contains("already holds BootOrder"));
        assert!(with_variables(&base, &[new("Big", &[0; 5000])])
            .unwrap_err()
            .to_string()
            .contains("no room for Big"));
    }

    #[test]
    fn refuses_what_is_not_a_varstore() {
        assert!(matches!(
            variables(&[0u8; 64]),
            Err(Error::Varstore { offset: 0, .. })
        ));
        let mut fw = nv_volume(&[]);
        fw[72] ^= 1;
        assert!(matches!(
            variables(&fw),
            Err(Error::Varstore { offset: 72, .. })
        ));
        let fw = nv_volume(&[(0x3F, VARIABLE_GUID, "name", b"data")]);
        for n in [0, 0x30, 80, 120, 160] {
            assert!(variables(&fw[..n]).is_err(), "{n}");
        }
    }
}
