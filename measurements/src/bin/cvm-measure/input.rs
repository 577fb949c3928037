//! Reading input files (firmware, kernel, initrd, logs): one place for every subcommand.
//!
//! A large file is read into an anonymous mapping that the kernel populates in one go
//! (`MAP_POPULATE`), not into a fresh heap buffer whose pages fault in one at a time while
//! `read` copies into them: for a 4 MiB firmware that was about 1,000 page faults, roughly
//! half of a `cvm-measure snp` process's time on the reference VM (docs/benchmarks.md).
//! The mapping is private memory (no file is mapped), so no `unsafe` is involved.

use anyhow::{Context, Result};
use std::io::Read;
use std::ops::Deref;
use std::path::Path;

/// Files from this size on are read into a populated mapping.
const MAP_FROM: u64 = 1 << 20;

/// The bytes of one input file.
pub enum Input {
    Heap(Vec<u8>),
    Mapped { map: memmap2::MmapMut, len: usize },
}

impl Deref for Input {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Input::Heap(v) => v,
            Input::Mapped { map, len } => &map[..*len],
        }
    }
}

/// Read `path` whole; errors name `what` and the path.
pub fn read(path: &Path, what: &str) -> Result<Input> {
    let ctx = || format!("reading {what} {}", path.display());
    let mut file = std::fs::File::open(path).with_context(ctx)?;
    let meta = file.metadata().with_context(ctx)?;
    if !meta.is_file() || meta.len() < MAP_FROM {
        let mut v = Vec::new();
        file.read_to_end(&mut v).with_context(ctx)?;
        return Ok(Input::Heap(v));
    }
    let len = usize::try_from(meta.len()).with_context(ctx)?;
    let mut map = memmap2::MmapOptions::new().len(len).map_anon().with_context(ctx)?;
    #[cfg(target_os = "linux")]
    let _ = map.advise(memmap2::Advice::HugePage);
    file.read_exact(&mut map).with_context(ctx)?;
    // A file that grew after the stat is read to its size at the stat; one that shrank fails
    // read_exact above with "failed to fill whole buffer".
    Ok(Input::Mapped { map, len })
}
