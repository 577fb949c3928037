//! Reading input files (firmware, kernel, initrd, logs): one place for every subcommand.
//!
//! A large regular file is mapped read-only with `MAP_POPULATE`: its page-cache pages become
//! the input bytes, with no copy and no fresh memory. Fresh anonymous memory is what made reading
//! expensive on the reference VM: every new page is zeroed by the kernel (and first touched on
//! the host), about 0.3 ms per MiB. For `cvm-measure tdx` (16 MiB of inputs) that was 5 ms of
//! a 27 ms process, for `snp` about 1.5 ms of 9 (docs/benchmarks.md). Small files and anything
//! that is not a regular file (pipes, `/proc`, `/sys/firmware/acpi/tables/data/CCEL`) are read
//! into a `Vec`.
//!
//! This is the workspace's one `unsafe` block. See [`map`] for why it is sound enough here.

use anyhow::{Context, Result};
use std::fs::File;
use std::io::Read;
use std::ops::Deref;
use std::path::Path;

/// Regular files from this size on are mapped.
const MAP_FROM: u64 = 1 << 20;

/// The bytes of one input file.
pub enum Input {
    Heap(Vec<u8>),
    Mapped(memmap2::Mmap),
}

impl Deref for Input {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Input::Heap(v) => v,
            Input::Mapped(m) => m,
        }
    }
}

/// Read `path` whole; errors name `what` and the path.
pub fn read(path: &Path, what: &str) -> Result<Input> {
    let ctx = || format!("reading {what} {}", path.display());
    let mut file = File::open(path).with_context(ctx)?;
    let meta = file.metadata().with_context(ctx)?;
    if !meta.is_file() || meta.len() < MAP_FROM {
        let mut v = Vec::new();
        file.read_to_end(&mut v).with_context(ctx)?;
        return Ok(Input::Heap(v));
    }
    usize::try_from(meta.len()).with_context(ctx)?;
    let m = map(&file).with_context(ctx)?;
    if m.len() as u64 != meta.len() {
        anyhow::bail!("{what} {} changed size while being read", path.display());
    }
    Ok(Input::Mapped(m))
}

/// Map `file` read-only and populated.
///
/// `Mmap::map` is `unsafe` because another process could change or truncate the file while it
/// is mapped: the bytes behind our `&[u8]` would change, or a read past a truncation would
/// raise SIGBUS. `cvm-measure` reads inputs that the caller owns and hashes each byte range
/// once; a file rewritten during a run gives a meaningless digest (as it would with `read`,
/// which is not atomic either) or kills the process, and never an out-of-bounds access. The
/// mapping is private and read-only, so nothing we do writes through it.
#[allow(unsafe_code)]
fn map(file: &File) -> std::io::Result<memmap2::Mmap> {
    // SAFETY: see above; the map lives as long as the `Input` that owns it.
    unsafe {
        memmap2::MmapOptions::new()
            .populate()
            .map_copy_read_only(file)
    }
}
