//! Fuzz target `firmware`: arbitrary bytes as a firmware image through every parser of
//! `cvm_measurements::ovmf` that a verifier runs on untrusted input, and the SNP/SEV-ES
//! pipelines on top of them; the same bytes as a Coconut SVSM binary (`snp::SvsmImage`) and,
//! when both parse, the `snp:svsm` pipeline with the bytes as OVMF too. Any panic (index out
//! of bounds, overflow in debug, unwrap) is a bug: the library must answer with a typed error.
//!
//! TDVF parsing (`ovmf::tdvf`) joins here once it lands on main.

#![no_main]

use cvm_measurements::ovmf::{sev::OvmfSevInfo, FooterTable};
use cvm_measurements::snp::{svsm_launch_digest, LaunchParams, SevFirmware, SevHashTable, SevMode, SnpPrepared, SvsmImage, VmmType};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // A variable store handed to `cvm-measure vtpm --vars`, and the boot option in it.
    let _ = cvm_measurements::vtpm::disk_boot::first_boot_option(data);
    let _ = FooterTable::parse(data);
    let _ = OvmfSevInfo::parse(data);
    let svsm = SvsmImage::parse(data);
    let Ok(fw) = SevFirmware::parse(data) else { return };
    // The first byte picks the shape, so the fuzzer explores VMM types and kernel hashes.
    let sel = data.first().copied().unwrap_or(0);
    let vmm = [VmmType::Qemu, VmmType::Ec2, VmmType::Gce][usize::from(sel % 3)];
    let hashes = (sel & 0x4 != 0).then(|| SevHashTable::from_blobs(b"kernel", Some(b"initrd"), Some(b"cmdline")));
    if let Ok(prep) = SnpPrepared::new(&fw, [0; 48], hashes.as_ref(), vmm) {
        let _ = prep.sweep(u32::from(sel >> 5), 0x00A0_0F11, 1);
    }
    let p = LaunchParams {
        mode: if sel & 0x8 != 0 { SevMode::SevEs } else { SevMode::Sev },
        vcpus: 2,
        vcpu_sig: 0,
        guest_features: 1,
        vmm,
        hashes,
        snp_ovmf_hash: None,
    };
    let _ = cvm_measurements::snp::launch_digest(&fw, &p);
    if let Ok(svsm) = svsm {
        // vars sizes from 0 to past the OVMF's GPA (the underflow check).
        let _ = svsm_launch_digest(&fw, &svsm, u64::from(sel) << 24, u32::from(sel >> 5), 0x00A0_0F11);
    }
});
