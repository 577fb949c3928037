//! PCR 0 of QEMU (q35) + OVMF (OvmfPkgX64 with TPM2): what `SecurityPkg/Tcg/Tcg2Pei` measures,
//! derived from the firmware file alone.
//!
//! | event | data | digest of |
//! |---|---|---|
//! | `EV_S_CRTM_VERSION` | `PcdFirmwareVersionString` (UCS-2, NUL included) | the event data |
//! | `EV_EFI_PLATFORM_FIRMWARE_BLOB` | PEIFV base, length (`u64` each) | PEIFV as in RAM when measured |
//! | `EV_EFI_PLATFORM_FIRMWARE_BLOB` | DXEFV base, length | DXEFV as decompressed |
//! | `EV_SEPARATOR` (at ReadyToBoot) | `00000000` | the event data |
//!
//! Found by matching the captures of two independent builds (ours and Debian's 2025.02-8+deb13u1,
//! `measurements/tests/vectors/vtpm/`) and a RAM dump of the PEIFV after boot:
//!
//! - SEC decompresses `FVMAIN_COMPACT` ([`OvmfMemFvs`]) and copies PEIFV to
//!   `PcdOvmfPeiMemFvBase` (0x820000) and DXEFV to `PcdOvmfDxeMemFvBase` (right after it,
//!   0x900000). The digests cover `FvLength` bytes of each.
//! - DXEFV is hashed exactly as decompressed.
//! - PEIFV is **not**: PeiCore executes in place from it, and its `BaseAcpiTimerLib`
//!   constructor stores the ACPI PM timer port into the static `mAcpiTimerIoAddr` inside
//!   PeiCore's `.data`, i.e. inside the PEIFV, before Tcg2Pei hashes it. On q35 that is ICH9
//!   `PMBASE` 0x600 + 8 = 0x608 (on i440fx it would be 0xB008: not modelled). Upstream edk2
//!   removed the global from PEI later (PR 12743, `BaseRomAcpiTimerLib` in PEI). The slot is
//!   found through the code that reads it, `InternalAcpiGetTimerTick` (`push rbp; mov ecx,
//!   [rip+slot]; mov rbp, rsp; sub rsp, 0x20; call IoRead32; leave; ret`, the same bytes in
//!   both builds); a PeiCore without exactly one such function is refused, not guessed.
//! - The bases: PEIFV's is PeiCore's link address (`ImageBase`) minus the image's offset in
//!   the volume (PEI modules are linked to run in place); DXEFV follows PEIFV (OVMF's
//!   `FD.MEMFD` layout).
//! - The S-CRTM version is the `FixedAtBuild` `PcdFirmwareVersionString` compiled into
//!   Tcg2Pei (file `A0C98B77-CBA5-4BB8-993B-4AF6CE33ECE4`): the one printable UCS-2 string whose
//!   address Tcg2Pei's code takes (a RIP-relative `lea`) in its read-only sections; none means
//!   the empty string (our build: `L""`, digest = H(00 00)), more than one is refused. A
//!   one-character version among others cannot be told from data, hence "printable, read-only,
//!   address taken" as the filter; a wrong reading shows as a PCR 0 event 1 mismatch, never as
//!   an accepted foreign firmware (the volume digests do not depend on it).

use super::{Bank, Error, VtpmEvent, BANKS};
use crate::eventlog::event_type::{EV_EFI_PLATFORM_FIRMWARE_BLOB, EV_S_CRTM_VERSION};
use crate::eventlog::events::Measured;
use crate::guid::EfiGuid;
use crate::ovmf::fv::{FirmwareVolume, OvmfMemFvs, FV_FILETYPE_PEI_CORE, SECTION_PE32, SECTION_TE};

/// FILE_GUID of `SecurityPkg/Tcg/Tcg2Pei/Tcg2Pei.inf`.
pub const TCG2_PEI_FILE_GUID: EfiGuid =
    EfiGuid::from_str_const("a0c98b77-cba5-4bb8-993b-4af6ce33ece4");
/// What PeiCore's `AcpiTimerLibConstructor` caches on q35: ICH9 `PMBASE` (0x600) +
/// `ACPI_TIMER_OFFSET` (8).
pub const Q35_ACPI_TIMER_IO_ADDR: u32 = 0x608;

const IMAGE_SCN_CNT_CODE: u32 = 0x20;
const IMAGE_SCN_MEM_DISCARDABLE: u32 = 0x0200_0000;
const IMAGE_SCN_MEM_EXECUTE: u32 = 0x2000_0000;
const IMAGE_SCN_MEM_WRITE: u32 = 0x8000_0000;

/// The firmware-derived facts behind PCR 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OvmfPcr0 {
    /// `PcdFirmwareVersionString` as Tcg2Pei carries it (without the NUL).
    pub crtm_version: String,
    pub peifv_base: u64,
    /// PEIFV as measured (with PeiCore's timer port written in).
    pub peifv: Vec<u8>,
    /// Offset in PEIFV of PeiCore's `mAcpiTimerIoAddr`.
    pub timer_slot: usize,
    pub dxefv_base: u64,
    mem: OvmfMemFvs,
}

impl OvmfPcr0 {
    /// DXEFV as measured.
    pub fn dxefv(&self) -> &[u8] {
        self.mem.dxefv()
    }

    /// Read everything PCR 0 depends on from a unified `OVMF.fd`.
    pub fn from_firmware(firmware: &[u8]) -> Result<OvmfPcr0, Error> {
        let mem = OvmfMemFvs::parse(firmware)?;
        let pei_bytes = mem.peifv();
        let pei = FirmwareVolume::parse(pei_bytes, 0).map_err(|e| within_pei(e, &mem))?;

        let core = one(
            pei.files_of_type(FV_FILETYPE_PEI_CORE),
            "PEI_CORE file in PEIFV",
        )?;
        let (core_at, core_pe) =
            pe32_of(core.sections().map_err(|e| within_pei(e, &mem))?, "PeiCore")?;
        let image_base = core_pe.image_base;
        let peifv_base = image_base.checked_sub(core_at as u64).ok_or_else(|| {
            Error::Unsupported(format!(
                "PeiCore's ImageBase {image_base:#x} is below its offset {core_at:#x} in PEIFV: \
                 not linked to run in place"
            ))
        })?;
        let slot_in_image = core_pe.timer_slot()?;
        let timer_slot = core_at + slot_in_image;
        let mut peifv = pei_bytes.to_vec();
        peifv[timer_slot..timer_slot + 4].copy_from_slice(&Q35_ACPI_TIMER_IO_ADDR.to_le_bytes());

        let tcg2 = pei.file(&TCG2_PEI_FILE_GUID).ok_or_else(|| {
            Error::Unsupported(format!(
                "PEIFV has no Tcg2Pei ({TCG2_PEI_FILE_GUID}): not a TPM2 build"
            ))
        })?;
        let (_, tcg2_pe) = pe32_of(tcg2.sections().map_err(|e| within_pei(e, &mem))?, "Tcg2Pei")?;
        let crtm_version = tcg2_pe.firmware_version_string()?;

        let dxefv_base = peifv_base
            .checked_add(pei_bytes.len() as u64)
            .ok_or_else(|| {
                Error::Unsupported(format!("PEIFV at {peifv_base:#x} ends past 2^64"))
            })?;
        Ok(OvmfPcr0 {
            crtm_version,
            peifv_base,
            peifv,
            timer_slot,
            dxefv_base,
            mem,
        })
    }

    /// PCR 0's events in log order (the separator is logged later, at ReadyToBoot).
    pub fn events(&self) -> Vec<VtpmEvent> {
        let version = crate::uefi::utf16le(&self.crtm_version, true);
        let mut out = vec![from_data(
            EV_S_CRTM_VERSION,
            version,
            format!(
                "S-CRTM version {:?} (PcdFirmwareVersionString)",
                self.crtm_version
            ),
        )];
        for (what, base, fv) in [
            ("PEIFV", self.peifv_base, self.peifv.as_slice()),
            ("DXEFV", self.dxefv_base, self.dxefv()),
        ] {
            let mut data = base.to_le_bytes().to_vec();
            data.extend_from_slice(&(fv.len() as u64).to_le_bytes());
            let note = if what == "PEIFV" {
                format!(
                    ", PeiCore's ACPI timer port {Q35_ACPI_TIMER_IO_ADDR:#x} at +{:#x}",
                    self.timer_slot
                )
            } else {
                String::new()
            };
            out.push(VtpmEvent {
                pcr: 0,
                event_type: EV_EFI_PLATFORM_FIRMWARE_BLOB,
                digests: hash_both(fv),
                event_data: data,
                description: format!(
                    "{what} at {base:#x}, {:#x} bytes (decompressed from FVMAIN_COMPACT{note})",
                    fv.len()
                ),
            });
        }
        out
    }
}

fn hash_both(data: &[u8]) -> Vec<(Bank, Vec<u8>)> {
    use sha2::{Digest, Sha256, Sha384};
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| Sha256::digest(data).to_vec());
        let b = Sha384::digest(data).to_vec();
        (a.join().unwrap_or_else(|p| std::panic::resume_unwind(p)), b)
    });
    BANKS
        .iter()
        .map(|&bank| {
            (
                bank,
                match bank {
                    Bank::Sha256 => a.clone(),
                    Bank::Sha384 => b.clone(),
                },
            )
        })
        .collect()
}

fn from_data(event_type: u32, data: Vec<u8>, description: String) -> VtpmEvent {
    VtpmEvent::from_measured(
        0,
        Measured::new(event_type, data.clone(), data, description),
    )
}

fn within_pei(e: crate::ovmf::Error, mem: &OvmfMemFvs) -> Error {
    Error::Firmware(crate::ovmf::Error::Within {
        context: format!(
            "in PEIFV (at {:#x} of the LZMA section decompressed from offset {:#x})",
            mem.peifv.start, mem.compressed_at
        ),
        source: Box::new(e),
    })
}

fn one<'a, T: 'a>(mut it: impl Iterator<Item = &'a T>, what: &str) -> Result<&'a T, Error> {
    match (it.next(), it.next()) {
        (Some(x), None) => Ok(x),
        (None, _) => Err(Error::Unsupported(format!("no {what}"))),
        (Some(_), Some(_)) => Err(Error::Unsupported(format!("more than one {what}"))),
    }
}

/// The one PE32 section of a module: (offset of the image in the volume, parsed image).
fn pe32_of<'a>(
    sections: Vec<crate::ovmf::fv::Section<'a>>,
    module: &str,
) -> Result<(usize, Pe<'a>), Error> {
    if sections.iter().any(|s| s.section_type == SECTION_TE) {
        return Err(Error::Unsupported(format!(
            "{module} is a TE image: not modelled"
        )));
    }
    let s = one(
        sections.iter().filter(|s| s.section_type == SECTION_PE32),
        &format!("PE32 section in {module}"),
    )?;
    let at = s.offset + s.header_len;
    let pe = Pe::parse(s.body).map_err(|e| {
        Error::Unsupported(format!("{module}'s PE32 image (at PEIFV+{at:#x}): {e}"))
    })?;
    Ok((at, pe))
}

/// A PE32+ image, as much as this module needs: `ImageBase` and the section table.
struct Pe<'a> {
    image: &'a [u8],
    image_base: u64,
    sections: Vec<PeSection>,
}

struct PeSection {
    rva: u32,
    virtual_size: u32,
    raw: std::ops::Range<usize>,
    characteristics: u32,
}

impl<'a> Pe<'a> {
    fn parse(image: &'a [u8]) -> Result<Pe<'a>, crate::pe::Error> {
        let rd = |o: usize, n: usize, what: &'static str| {
            o.checked_add(n)
                .and_then(|e| image.get(o..e))
                .ok_or(crate::pe::Error::Truncated {
                    what,
                    offset: o as u64,
                    need: n as u64,
                    have: image.len() as u64,
                })
        };
        let u16_at = |o, w| rd(o, 2, w).map(|b| u16::from_le_bytes([b[0], b[1]]));
        let u32_at = |o, w| rd(o, 4, w).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        let bad = |field, offset: usize, problem: &str| crate::pe::Error::Invalid {
            field,
            offset: offset as u64,
            problem: problem.into(),
        };
        if rd(0, 2, "DOS header")? != b"MZ" {
            return Err(bad("e_magic", 0, "not \"MZ\""));
        }
        let pe = u32_at(0x3c, "e_lfanew")? as usize;
        if rd(pe, 4, "PE signature")? != b"PE\0\0" {
            return Err(bad("PE signature", pe, "not \"PE\\0\\0\""));
        }
        let n = usize::from(u16_at(pe + 6, "NumberOfSections")?);
        let opt_size = usize::from(u16_at(pe + 20, "SizeOfOptionalHeader")?);
        let opt = pe + 24;
        if u16_at(opt, "OptionalHeader.Magic")? != crate::pe::PE32_PLUS_MAGIC {
            return Err(bad("OptionalHeader.Magic", opt, "not PE32+ (X64)"));
        }
        let b = rd(opt + 24, 8, "OptionalHeader.ImageBase")?;
        let image_base = u64::from_le_bytes(b.try_into().expect("8 bytes"));
        let mut sections = Vec::with_capacity(n);
        for i in 0..n {
            let h = opt + opt_size + 40 * i;
            let virtual_size = u32_at(h + 8, "section VirtualSize")?;
            let rva = u32_at(h + 12, "section VirtualAddress")?;
            let raw_size = u32_at(h + 16, "section SizeOfRawData")? as usize;
            let ptr = u32_at(h + 20, "section PointerToRawData")? as usize;
            let characteristics = u32_at(h + 36, "section Characteristics")?;
            rd(ptr, raw_size, "section raw data")?;
            sections.push(PeSection {
                rva,
                virtual_size,
                raw: ptr..ptr + raw_size,
                characteristics,
            });
        }
        Ok(Pe {
            image,
            image_base,
            sections,
        })
    }

    /// The section holding `len` bytes at `rva`, and their file offset.
    fn locate(&self, rva: u64, len: usize) -> Option<(&PeSection, usize)> {
        self.sections.iter().find_map(|s| {
            let start = u64::from(s.rva);
            let mapped = u64::from(s.virtual_size).min(s.raw.len() as u64);
            (rva >= start
                && rva
                    .checked_add(len as u64)
                    .is_some_and(|e| e <= start + mapped))
            .then(|| (s, s.raw.start + (rva - start) as usize))
        })
    }

    fn code_sections(&self) -> impl Iterator<Item = &PeSection> {
        self.sections
            .iter()
            .filter(|s| s.characteristics & (IMAGE_SCN_CNT_CODE | IMAGE_SCN_MEM_EXECUTE) != 0)
    }

    /// File offset of `mAcpiTimerIoAddr`: the slot `InternalAcpiGetTimerTick` reads.
    fn timer_slot(&self) -> Result<usize, Error> {
        // push rbp; mov ecx, [rip+d32]; mov rbp, rsp; sub rsp, 0x20; call r32; leave; ret
        const SHAPE: [Option<u8>; 21] = {
            let mut s = [None; 21];
            let fixed: [(usize, u8); 13] = [
                (0, 0x55),
                (1, 0x8B),
                (2, 0x0D),
                (7, 0x48),
                (8, 0x89),
                (9, 0xE5),
                (10, 0x48),
                (11, 0x83),
                (12, 0xEC),
                (13, 0x20),
                (14, 0xE8),
                (19, 0xC9),
                (20, 0xC3),
            ];
            let mut i = 0;
            while i < fixed.len() {
                s[fixed[i].0] = Some(fixed[i].1);
                i += 1;
            }
            s
        };
        let mut hits = Vec::new();
        for sec in self.code_sections() {
            let code = &self.image[sec.raw.clone()];
            for (i, w) in code.windows(SHAPE.len()).enumerate() {
                if SHAPE.iter().zip(w).all(|(p, b)| p.is_none_or(|p| p == *b)) {
                    let disp = i32::from_le_bytes([w[3], w[4], w[5], w[6]]);
                    let next = u64::from(sec.rva) + (i + 7) as u64;
                    hits.push(next.wrapping_add_signed(i64::from(disp)));
                }
            }
        }
        let not_modelled = |why: String| {
            Error::Unsupported(format!(
                "PeiCore: {why}; the PEIFV measurement includes PeiCore's cached ACPI timer \
                 port (BaseAcpiTimerLib mAcpiTimerIoAddr) and this build is not modelled"
            ))
        };
        let rva = match hits.as_slice() {
            [one] => *one,
            [] => return Err(not_modelled("no InternalAcpiGetTimerTick found".into())),
            more => {
                return Err(not_modelled(format!(
                    "{} candidates for InternalAcpiGetTimerTick",
                    more.len()
                )))
            }
        };
        let (sec, off) = self.locate(rva, 4).ok_or_else(|| {
            not_modelled(format!(
                "the timer slot RVA {rva:#x} is outside the image's sections"
            ))
        })?;
        if sec.characteristics & IMAGE_SCN_MEM_WRITE == 0 {
            return Err(not_modelled(format!(
                "the timer slot RVA {rva:#x} is not in a writable section"
            )));
        }
        if self.image[off..off + 4] != [0; 4] {
            return Err(not_modelled(format!(
                "the timer slot RVA {rva:#x} is not zero in the file"
            )));
        }
        Ok(off)
    }

    /// `PcdFirmwareVersionString` (see the module doc).
    fn firmware_version_string(&self) -> Result<String, Error> {
        let mut found: Vec<(u64, String)> = Vec::new();
        for sec in self.code_sections() {
            let code = &self.image[sec.raw.clone()];
            for i in 0..code.len().saturating_sub(6) {
                // lea r64, [rip+d32]: REX.W (48 or 4C), 8D, ModRM with mod=00 rm=101.
                if !matches!(code[i], 0x48 | 0x4C)
                    || code[i + 1] != 0x8D
                    || code[i + 2] & 0xC7 != 0x05
                {
                    continue;
                }
                let disp = i32::from_le_bytes([code[i + 3], code[i + 4], code[i + 5], code[i + 6]]);
                let target =
                    (u64::from(sec.rva) + (i + 7) as u64).wrapping_add_signed(i64::from(disp));
                let Some((tsec, off)) = self.locate(target, 2) else {
                    continue;
                };
                if tsec.characteristics & (IMAGE_SCN_MEM_WRITE | IMAGE_SCN_MEM_DISCARDABLE) != 0 {
                    continue;
                }
                let end = tsec.raw.end;
                let mut units = Vec::new();
                let mut o = off;
                let ok = loop {
                    if o + 2 > end {
                        break false;
                    }
                    let u = u16::from_le_bytes([self.image[o], self.image[o + 1]]);
                    if u == 0 {
                        break !units.is_empty();
                    }
                    if !(0x20..0x7F).contains(&u) {
                        break false;
                    }
                    units.push(u as u8 as char);
                    o += 2;
                };
                if ok && !found.iter().any(|(t, _)| *t == target) {
                    found.push((target, units.into_iter().collect()));
                }
            }
        }
        match found.len() {
            0 => Ok(String::new()),
            1 => Ok(found.remove(0).1),
            _ => Err(Error::Unsupported(format!(
                "Tcg2Pei references {} UCS-2 strings ({}): which is PcdFirmwareVersionString \
                 (the S-CRTM version) is not known",
                found.len(),
                found
                    .iter()
                    .map(|(t, s)| format!("{s:?} at RVA {t:#x}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Code at 0x200 (0x40 bytes), data at 0x240 (16 zero bytes, writable), read-only data at
    /// 0x250: RVA = file offset.
    const CODE: usize = 0x200;
    const DATA: usize = 0x240;
    const RODATA: usize = 0x250;

    /// A minimal PE32+ image with `code` (at most 0x40 bytes) and `rodata`.
    fn tiny_pe(base: u64, code: &[u8], rodata: &[u8]) -> Vec<u8> {
        assert!(code.len() <= DATA - CODE);
        let mut img = vec![0u8; RODATA + rodata.len()];
        img[..2].copy_from_slice(b"MZ");
        img[0x3c..0x40].copy_from_slice(&0x40u32.to_le_bytes());
        img[0x40..0x44].copy_from_slice(b"PE\0\0");
        img[0x46..0x48].copy_from_slice(&3u16.to_le_bytes());
        img[0x54..0x56].copy_from_slice(&0xF0u16.to_le_bytes());
        img[0x58..0x5a].copy_from_slice(&crate::pe::PE32_PLUS_MAGIC.to_le_bytes());
        img[0x58 + 24..0x58 + 32].copy_from_slice(&base.to_le_bytes());
        let table = 0x58 + 0xF0;
        for (i, (at, len, ch)) in [
            (CODE, DATA - CODE, 0x6000_0020u32),
            (DATA, RODATA - DATA, 0xC000_0040),
            (RODATA, rodata.len(), 0x4000_0040),
        ]
        .into_iter()
        .enumerate()
        {
            let h = table + 40 * i;
            img[h + 8..h + 12].copy_from_slice(&(len as u32).to_le_bytes());
            img[h + 12..h + 16].copy_from_slice(&(at as u32).to_le_bytes());
            img[h + 16..h + 20].copy_from_slice(&(len as u32).to_le_bytes());
            img[h + 20..h + 24].copy_from_slice(&(at as u32).to_le_bytes());
            img[h + 36..h + 40].copy_from_slice(&ch.to_le_bytes());
        }
        img[CODE..CODE + code.len()].copy_from_slice(code);
        img[RODATA..].copy_from_slice(rodata);
        img
    }

    /// `InternalAcpiGetTimerTick` at `at` (offset in the code) reading RVA `slot`.
    fn getter(at: usize, slot: usize) -> Vec<u8> {
        let disp = slot as i32 - (CODE + at + 7) as i32;
        let mut g = vec![0x55, 0x8B, 0x0D];
        g.extend_from_slice(&disp.to_le_bytes());
        g.extend_from_slice(&[
            0x48, 0x89, 0xE5, 0x48, 0x83, 0xEC, 0x20, 0xE8, 0, 0, 0, 0, 0xC9, 0xC3,
        ]);
        g
    }

    /// `lea rax, [rip+...]` at `at` (offset in the code) taking RVA `target`.
    fn lea(at: usize, target: usize) -> Vec<u8> {
        let disp = target as i32 - (CODE + at + 7) as i32;
        let mut v = vec![0x48, 0x8D, 0x05];
        v.extend_from_slice(&disp.to_le_bytes());
        v
    }

    #[test]
    fn timer_slot_is_what_the_getter_reads() {
        let img = tiny_pe(0x820000, &getter(0, DATA + 4), b"\0\0");
        assert_eq!(Pe::parse(&img).unwrap().timer_slot().unwrap(), DATA + 4);
        // Two getters: refused.
        let two = [getter(0, DATA), getter(21, DATA + 8)].concat();
        let e = Pe::parse(&tiny_pe(0, &two, b""))
            .unwrap()
            .timer_slot()
            .unwrap_err();
        assert!(e.to_string().contains("2 candidates"), "{e}");
        // None: refused.
        let e = Pe::parse(&tiny_pe(0, &[0x90; 8], b""))
            .unwrap()
            .timer_slot()
            .unwrap_err();
        assert!(e.to_string().contains("no InternalAcpiGetTimerTick"), "{e}");
        // Reading the read-only section, or outside the image: refused.
        let e = Pe::parse(&tiny_pe(0, &getter(0, RODATA), &[0; 8]))
            .unwrap()
            .timer_slot()
            .unwrap_err();
        assert!(e.to_string().contains("not in a writable section"), "{e}");
        let e = Pe::parse(&tiny_pe(0, &getter(0, 0x10_0000), &[0; 8]))
            .unwrap()
            .timer_slot()
            .unwrap_err();
        assert!(e.to_string().contains("outside"), "{e}");
    }

    #[test]
    fn version_string_is_the_one_referenced_read_only_ucs2_string() {
        let v = crate::uefi::utf16le("2025.02-8+deb13u1", true);
        let img = tiny_pe(0, &lea(0, RODATA), &v);
        assert_eq!(
            Pe::parse(&img).unwrap().firmware_version_string().unwrap(),
            "2025.02-8+deb13u1"
        );
        // Not referenced: the empty string (as in a build with PcdFirmwareVersionString L"").
        let img = tiny_pe(0, &[0x90; 8], &v);
        assert_eq!(
            Pe::parse(&img).unwrap().firmware_version_string().unwrap(),
            ""
        );
        // A writable global that reads as " " (a notify descriptor's flags 0x20): ignored.
        let mut img = tiny_pe(0, &lea(0, DATA), &v);
        img[DATA] = 0x20;
        assert_eq!(
            Pe::parse(&img).unwrap().firmware_version_string().unwrap(),
            ""
        );
        // Referenced twice: still one string.
        let code = [lea(0, RODATA), lea(7, RODATA)].concat();
        assert_eq!(
            Pe::parse(&tiny_pe(0, &code, &v))
                .unwrap()
                .firmware_version_string()
                .unwrap(),
            "2025.02-8+deb13u1"
        );
        // Two strings: refused, naming both.
        let w = [v.clone(), crate::uefi::utf16le("other", true)].concat();
        let code = [lea(0, RODATA), lea(7, RODATA + v.len())].concat();
        let e = Pe::parse(&tiny_pe(0, &code, &w))
            .unwrap()
            .firmware_version_string()
            .unwrap_err();
        assert!(e.to_string().contains("\"other\""), "{e}");
        // Not NUL-terminated inside the section, or not printable: not a string.
        let img = tiny_pe(0, &lea(0, RODATA), &v[..v.len() - 2]);
        assert_eq!(
            Pe::parse(&img).unwrap().firmware_version_string().unwrap(),
            ""
        );
        let img = tiny_pe(0, &lea(0, RODATA), &[0x01, 0x00, 0, 0]);
        assert_eq!(
            Pe::parse(&img).unwrap().firmware_version_string().unwrap(),
            ""
        );
    }

    #[test]
    fn pe_parse_refuses_what_it_cannot_read() {
        let img = tiny_pe(0, &[0x90], b"x");
        for n in [0, 0x3c, 0x44, 0x60, 0x150, 0x200, 0x250] {
            assert!(Pe::parse(&img[..n]).is_err(), "{n}");
        }
        let mut pe32 = img.clone();
        pe32[0x58..0x5a].copy_from_slice(&crate::pe::PE32_MAGIC.to_le_bytes());
        assert!(Pe::parse(&pe32).is_err());
    }
}
