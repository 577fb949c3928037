//! Disk stage: kernel (EFI stub) + rootfs stage outputs → one GPT disk image, assembled in
//! Rust (`cvm_rootfs::{esp, disk}`): partition 1 ESP (FAT32 with `EFI/BOOT/BOOTX64.EFI`),
//! 2 root (the erofs, verity data), 3 root-verity (hash device). GUIDs, FAT serial and
//! timestamps derive from the contents and SOURCE_DATE_EPOCH, so equal inputs give a
//! bit-identical disk. Runs no program.
//!
//! [`uefi_vars`] then writes the variable store that boots the disk by UEFI
//! (`cvm_measurements::vtpm::disk_boot`): the firmware's empty store plus `Boot0001` =
//! `HD(<ESP>)/\EFI\BOOT\BOOTX64.EFI` with the command line as its data, and `BootOrder`.

use super::rootfs::RootfsOutputs;
use crate::tools;
use anyhow::{Context, Result};
use cvm_measurements::guid::EfiGuid;
use cvm_measurements::vtpm::disk_boot::{self, EspPartition};
use cvm_rootfs::disk;
use cvm_rootfs::esp::{self, EspConfig, EspFile};
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

/// The inputs of the disk stage.
#[derive(Debug, Clone)]
pub struct DiskInputs<'a> {
    /// The kernel bzImage (an EFI application through its EFI stub).
    pub kernel: &'a Path,
    pub rootfs: &'a RootfsOutputs,
    pub source_date_epoch: u64,
    /// Where `disk.raw` and `esp.img` go.
    pub out_dir: &'a Path,
}

/// What the disk stage produced.
#[derive(Debug, Clone)]
pub struct DiskOutputs {
    pub disk: PathBuf,
    pub esp: PathBuf,
    /// Where the ESP lies, as a boot option's device path names it.
    pub esp_partition: EspPartition,
}

/// Write `out` = the NV volume of `firmware` (a unified OVMF.fd) with the boot option that
/// starts the kernel on `esp` with `cmdline`.
pub fn uefi_vars(firmware: &Path, esp: &EspPartition, cmdline: &str, out: &Path) -> Result<()> {
    tools::stage("disk: UEFI variable store with the boot option (cvm_measurements)");
    let fw = std::fs::read(firmware).with_context(|| format!("reading {}", firmware.display()))?;
    let vars = disk_boot::image_varstore(&fw, esp, cmdline)
        .with_context(|| format!("adding Boot0001 to the variable store of {}", firmware.display()))?;
    tools::write_atomic(out, &vars)?;
    eprintln!(
        "    {}: Boot0001 = HD({},GPT,{},{:#x},{:#x})/{} + command line, BootOrder 0001",
        out.display(),
        esp.number,
        esp.guid,
        esp.start_lba,
        esp.size_lba,
        disk_boot::ESP_LOADER_PATH
    );
    Ok(())
}

/// Run the stage.
pub fn build(inputs: &DiskInputs<'_>) -> Result<DiskOutputs> {
    tools::stage("disk: ESP (FAT32) and GPT (cvm_rootfs)");
    let kernel = std::fs::read(inputs.kernel)
        .with_context(|| format!("reading kernel {}", inputs.kernel.display()))?;
    let files = [EspFile {
        path: esp::BOOTX64_PATH,
        contents: &kernel,
    }];
    let config = EspConfig {
        bytes: esp::recommended_bytes(&files),
        source_date_epoch: inputs.source_date_epoch,
    };
    let esp_img = esp::build(&files, &config)
        .with_context(|| format!("building the ESP with {}", inputs.kernel.display()))?;
    let esp_path = inputs.out_dir.join("esp.img");
    tools::write_atomic(&esp_path, &esp_img)?;

    let parts = disk::verity_image_partitions(&esp_img, &inputs.rootfs.tree);
    let layout =
        disk::layout(&parts, disk::disk_guid(&parts)).context("laying out the GPT disk")?;
    let (number, esp) = layout
        .partitions
        .iter()
        .enumerate()
        .find(|(_, p)| p.spec.kind == disk::PartitionKind::Esp)
        .context("the disk layout has no ESP")?;
    let esp_partition = EspPartition {
        number: number as u32 + 1,
        start_lba: esp.first_lba,
        size_lba: esp.last_lba - esp.first_lba + 1,
        guid: EfiGuid(esp.spec.uuid.to_bytes_le()),
    };
    let disk_path = inputs.out_dir.join("disk.raw");
    let tmp = inputs.out_dir.join(".disk.raw.tmp");
    let open = |p: &Path| {
        File::open(p)
            .map(BufReader::new)
            .with_context(|| format!("opening {}", p.display()))
    };
    let (mut root, mut hash) = (open(&inputs.rootfs.erofs)?, open(&inputs.rootfs.verity)?);
    let _ = std::fs::remove_file(&tmp);
    let dev = File::create_new(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    disk::write(dev, &layout, &mut [&mut &esp_img[..], &mut root, &mut hash])
        .with_context(|| {
            format!(
                "writing disk {} (ESP, {}, {})",
                tmp.display(),
                inputs.rootfs.erofs.display(),
                inputs.rootfs.verity.display()
            )
        })?
        .sync_all()
        .with_context(|| format!("syncing {}", tmp.display()))?;
    std::fs::rename(&tmp, &disk_path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), disk_path.display()))?;
    eprintln!(
        "    {}: {} MiB, disk GUID {}",
        disk_path.display(),
        layout.disk_bytes >> 20,
        layout.disk_guid
    );
    Ok(DiskOutputs {
        disk: disk_path,
        esp: esp_path,
        esp_partition,
    })
}
