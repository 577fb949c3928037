//! Unpacking a pulled image's layers into a root file system directory, as container runtimes
//! do (OCI image-spec `layer.md`, "Applying changesets"), treating every layer as hostile.
//!
//! Layers are applied in manifest order into `<images>/<manifest hex>/rootfs.tmp` and the
//! directory is renamed to `rootfs` only when every layer applied: a failed unpack never leaves a
//! half-unpacked tree under the final name.
//!
//! Rules:
//! - media types: `application/vnd.oci.image.layer.v1.tar`, `...tar+gzip` and
//!   `application/vnd.docker.image.rootfs.diff.tar.gzip`; zstd and anything else are refused.
//! - paths: a leading `/` and `.` components are dropped; a `..` component is refused.
//! - no entry is written through a symlink: every parent of an entry must be a real directory
//!   (checked with `symlink_metadata`, component by component, missing ones are created); the
//!   entry itself replaces whatever was at its path (never opened through it).
//! - whiteouts `.wh.<name>` delete `<name>` of lower layers; `.wh..wh..opq` removes everything
//!   in its directory that this layer did not write. Neither is created.
//! - hard links must name a regular file inside the rootfs (same path rules).
//! - device nodes and fifos are skipped with a note; permission bits `0o777` are kept (no
//!   setuid/setgid/sticky); ownership and mtimes are not set.
//! - [`Limits`]: total file bytes and entry count across all layers (defaults
//!   [`MAX_UNPACKED_BYTES`], [`MAX_ENTRIES`]).

use crate::oci::Descriptor;
use std::collections::HashSet;
use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

pub const MEDIA_OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MEDIA_OCI_LAYER_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MEDIA_DOCKER_LAYER_TAR_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// Default cap on the bytes of file content written for one image.
pub const MAX_UNPACKED_BYTES: u64 = 4 << 30;
/// Default cap on the tar entries of one image (all layers).
pub const MAX_ENTRIES: u64 = 1_000_000;

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";

/// Caps against a hostile image, over all its layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_bytes: u64,
    pub max_entries: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: MAX_UNPACKED_BYTES,
            max_entries: MAX_ENTRIES,
        }
    }
}

/// An unpack failure, naming the layer and (when there is one) the entry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("layer {digest}: media type {media_type:?} is not supported (tar and tar+gzip only)")]
    MediaType { digest: String, media_type: String },
    #[error("layer {digest}: entry {path:?}: {msg}")]
    Entry {
        digest: String,
        path: String,
        msg: String,
    },
    #[error("layer {digest}: {msg}")]
    Layer { digest: String, msg: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What one layer (or a whole image) contributed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Regular files and hard links.
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub whiteouts: u64,
    /// Device nodes and fifos not created.
    pub skipped: u64,
}

/// Running totals checked against [`Limits`].
#[derive(Debug, Default)]
pub struct Budget {
    limits: Limits,
    bytes: u64,
    entries: u64,
}

impl Budget {
    pub fn new(limits: Limits) -> Self {
        Budget {
            limits,
            ..Default::default()
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

enum Compression {
    None,
    Gzip,
}

fn compression(layer: &Descriptor) -> Result<Compression, Error> {
    match layer.media_type.as_str() {
        MEDIA_OCI_LAYER_TAR => Ok(Compression::None),
        MEDIA_OCI_LAYER_TAR_GZIP | MEDIA_DOCKER_LAYER_TAR_GZIP => Ok(Compression::Gzip),
        other => Err(Error::MediaType {
            digest: layer.digest.clone(),
            media_type: other.into(),
        }),
    }
}

/// Unpacks `layers` (blobs read from `blobs/<hex>`, already digest-checked) into `rootfs`,
/// through `<rootfs>.tmp`, replacing an earlier `rootfs`. Logs one line per layer and one at
/// the end. Returns the totals.
pub fn unpack_image(
    blobs: &Path,
    layers: &[Descriptor],
    rootfs: &Path,
    limits: Limits,
    log: &mut dyn FnMut(String),
) -> Result<Counts, Error> {
    // Refuse unsupported layers before writing anything.
    for l in layers {
        compression(l)?;
    }
    let mut tmp = rootfs.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    remove_any(&tmp)?;
    let parent = rootfs.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    std::fs::create_dir(&tmp).map_err(io_err(&tmp))?;
    let res = (|| {
        let mut budget = Budget::new(limits);
        let mut total = Counts::default();
        for l in layers {
            let path = blobs.join(l.digest.strip_prefix("sha256:").unwrap_or(&l.digest));
            let f = std::fs::File::open(&path).map_err(io_err(&path))?;
            let c = apply_layer(&tmp, l, std::io::BufReader::new(f), &mut budget, log)?;
            log(format!(
                "layer {} unpacked: {} files, {} dirs, {} symlinks, {} whiteouts -> {}",
                l.digest,
                c.files,
                c.dirs,
                c.symlinks,
                c.whiteouts,
                rootfs.display()
            ));
            total.files += c.files;
            total.dirs += c.dirs;
            total.symlinks += c.symlinks;
            total.whiteouts += c.whiteouts;
            total.skipped += c.skipped;
        }
        Ok(total)
    })();
    let total = match res {
        Ok(t) => t,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    remove_any(rootfs)?;
    std::fs::rename(&tmp, rootfs).map_err(io_err(rootfs))?;
    log(format!(
        "image unpacked: {} layers -> {}",
        layers.len(),
        rootfs.display()
    ));
    Ok(total)
}

/// Applies one layer (`reader` yields the blob as stored: gzip or plain per its media type)
/// onto `root`, a directory this process owns.
pub fn apply_layer(
    root: &Path,
    layer: &Descriptor,
    reader: impl Read,
    budget: &mut Budget,
    log: &mut dyn FnMut(String),
) -> Result<Counts, Error> {
    let reader: Box<dyn Read + '_> = match compression(layer)? {
        Compression::None => Box::new(reader),
        Compression::Gzip => Box::new(flate2::read::GzDecoder::new(reader)),
    };
    let digest = layer.digest.as_str();
    let layer_err = |msg: String| Error::Layer {
        digest: digest.into(),
        msg,
    };
    let mut archive = tar::Archive::new(reader);
    let mut state = Layer {
        root,
        digest,
        written: HashSet::new(),
        counts: Counts::default(),
    };
    let entries = archive
        .entries()
        .map_err(|e| layer_err(format!("reading tar: {e}")))?;
    for entry in entries {
        let entry = entry.map_err(|e| layer_err(format!("reading tar: {e}")))?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        budget.entries += 1;
        if budget.entries > budget.limits.max_entries {
            return Err(state.entry_err(
                &raw,
                format!(
                    "more than {} entries in the image",
                    budget.limits.max_entries
                ),
            ));
        }
        state
            .apply_entry(entry, budget, log)
            .map_err(|msg| state.entry_err(&raw, msg))?;
    }
    Ok(state.counts)
}

struct Layer<'a> {
    root: &'a Path,
    digest: &'a str,
    /// Paths (relative) this layer wrote, including directories it created implicitly.
    written: HashSet<PathBuf>,
    counts: Counts,
}

/// `path` as relative components: a leading `/` and `.` dropped, `..` refused.
fn normalize(path: &[u8]) -> Result<PathBuf, String> {
    let mut out = PathBuf::new();
    for c in Path::new(OsStr::from_bytes(path)).components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir => return Err("path has a '..' component".into()),
            Component::Prefix(_) => return Err("path has a prefix".into()),
        }
    }
    Ok(out)
}

fn remove_any(path: &Path) -> Result<(), Error> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path).map_err(io_err(path)),
        Ok(_) => std::fs::remove_file(path).map_err(io_err(path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(path)(e)),
    }
}

fn mode_bits(header: &tar::Header) -> u32 {
    header.mode().unwrap_or(0o644) & 0o777
}

impl Layer<'_> {
    fn entry_err(&self, path: &str, msg: String) -> Error {
        Error::Entry {
            digest: self.digest.into(),
            path: path.into(),
            msg,
        }
    }

    /// Checks that every ancestor of `rel` below the root is a real directory (never a
    /// symlink). With `create`, missing ones are made (and recorded as written by this layer);
    /// without, returns `false` when one is missing.
    fn parents(&mut self, rel: &Path, create: bool) -> Result<bool, String> {
        let mut abs = self.root.to_path_buf();
        let mut r = PathBuf::new();
        let Some(parent) = rel.parent() else {
            return Ok(true);
        };
        for c in parent.components() {
            abs.push(c);
            r.push(c);
            if create {
                // Under an opaque whiteout, this layer's entries keep their parents.
                self.written.insert(r.clone());
            }
            match std::fs::symlink_metadata(&abs) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(format!("parent {} is a symlink", r.display()))
                }
                Ok(m) if m.is_dir() => {}
                Ok(_) => return Err(format!("parent {} is not a directory", r.display())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if !create {
                        return Ok(false);
                    }
                    std::fs::create_dir(&abs)
                        .map_err(|e| format!("creating parent {}: {e}", r.display()))?;
                    self.counts.dirs += 1;
                }
                Err(e) => return Err(format!("{}: {e}", r.display())),
            }
        }
        Ok(true)
    }

    fn apply_entry<R: Read>(
        &mut self,
        mut entry: tar::Entry<'_, R>,
        budget: &mut Budget,
        log: &mut dyn FnMut(String),
    ) -> Result<(), String> {
        let rel = normalize(&entry.path_bytes())?;
        let kind = entry.header().entry_type();
        let Some(name) = rel.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            // The root itself (`./`): nothing to create.
            return Ok(());
        };
        if name == OPAQUE_WHITEOUT {
            let dir = rel.parent().unwrap_or(Path::new("")).to_path_buf();
            self.parents(&rel, true)?;
            self.opaque(&self.root.join(&dir), &dir)
                .map_err(|e| format!("opaque whiteout: {e}"))?;
            self.counts.whiteouts += 1;
            return Ok(());
        }
        if let Some(target) = name.strip_prefix(WHITEOUT_PREFIX) {
            if target.is_empty() || target == "." || target == ".." || target.contains('/') {
                return Err(format!("whiteout of {target:?}"));
            }
            if self.parents(&rel, false)? {
                let victim = self.root.join(rel.with_file_name(target));
                remove_any(&victim).map_err(|e| format!("whiteout: {e}"))?;
            }
            self.counts.whiteouts += 1;
            return Ok(());
        }
        let abs = self.root.join(&rel);
        match kind {
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                log(format!(
                    "layer {}: {} {} not created (device nodes and fifos are skipped)",
                    self.digest,
                    if kind == tar::EntryType::Fifo {
                        "fifo"
                    } else {
                        "device"
                    },
                    rel.display()
                ));
                self.counts.skipped += 1;
                return Ok(());
            }
            tar::EntryType::XGlobalHeader => return Ok(()),
            _ => {}
        }
        self.parents(&rel, true)?;
        let mode = mode_bits(entry.header());
        let existing = std::fs::symlink_metadata(&abs).ok();
        match kind {
            tar::EntryType::Directory => {
                match existing {
                    Some(m) if m.is_dir() => {}
                    Some(_) => {
                        remove_any(&abs).map_err(|e| e.to_string())?;
                        std::fs::create_dir(&abs).map_err(|e| format!("mkdir: {e}"))?;
                    }
                    None => std::fs::create_dir(&abs).map_err(|e| format!("mkdir: {e}"))?,
                }
                std::fs::set_permissions(&abs, std::fs::Permissions::from_mode(mode))
                    .map_err(|e| format!("chmod: {e}"))?;
                self.counts.dirs += 1;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let size = entry.header().size().map_err(|e| format!("size: {e}"))?;
                budget.bytes = budget.bytes.saturating_add(size);
                if budget.bytes > budget.limits.max_bytes {
                    return Err(format!(
                        "more than {} bytes of files in the image",
                        budget.limits.max_bytes
                    ));
                }
                if existing.is_some() {
                    remove_any(&abs).map_err(|e| e.to_string())?;
                }
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&abs)
                    .map_err(|e| format!("create: {e}"))?;
                let n = std::io::copy(&mut (&mut entry).take(size), &mut f)
                    .map_err(|e| format!("write: {e}"))?;
                if n != size {
                    return Err(format!("truncated: {n} of {size} bytes"));
                }
                f.set_permissions(std::fs::Permissions::from_mode(mode))
                    .map_err(|e| format!("chmod: {e}"))?;
                self.counts.files += 1;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or("symlink without a target")?
                    .into_owned();
                if existing.is_some() {
                    remove_any(&abs).map_err(|e| e.to_string())?;
                }
                std::os::unix::fs::symlink(OsStr::from_bytes(&target), &abs)
                    .map_err(|e| format!("symlink: {e}"))?;
                self.counts.symlinks += 1;
            }
            tar::EntryType::Link => {
                let target = normalize(
                    &entry
                        .link_name_bytes()
                        .ok_or("hard link without a target")?,
                )
                .map_err(|e| format!("hard link target: {e}"))?;
                if target.as_os_str().is_empty() {
                    return Err("hard link to the root".into());
                }
                if !self.parents(&target, false)? {
                    return Err(format!(
                        "hard link target {} does not exist",
                        target.display()
                    ));
                }
                let src = self.root.join(&target);
                match std::fs::symlink_metadata(&src) {
                    Ok(m) if m.is_file() => {}
                    Ok(_) => {
                        return Err(format!(
                            "hard link target {} is not a regular file",
                            target.display()
                        ))
                    }
                    Err(e) => return Err(format!("hard link target {}: {e}", target.display())),
                }
                if existing.is_some() {
                    if src == abs {
                        return Err("hard link to itself".into());
                    }
                    remove_any(&abs).map_err(|e| e.to_string())?;
                }
                std::fs::hard_link(&src, &abs).map_err(|e| format!("hard link: {e}"))?;
                self.counts.files += 1;
            }
            other => return Err(format!("unsupported tar entry type {other:?}")),
        }
        self.written.insert(rel);
        Ok(())
    }

    /// Removes everything under `abs` (relative `rel`) this layer did not write; recurses into
    /// directories it did write (their lower content is hidden too).
    fn opaque(&self, abs: &Path, rel: &Path) -> Result<(), Error> {
        for child in std::fs::read_dir(abs).map_err(io_err(abs))? {
            let child = child.map_err(io_err(abs))?;
            let (cabs, crel) = (child.path(), rel.join(child.file_name()));
            if !self.written.contains(&crel) {
                remove_any(&cabs)?;
            } else if child.file_type().map_err(io_err(&cabs))?.is_dir() {
                self.opaque(&cabs, &crel)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::MetadataExt;

    /// One tar entry for [`tar_of`].
    enum E<'a> {
        Dir(&'a str),
        File(&'a str, &'a [u8]),
        Symlink(&'a str, &'a str),
        Hardlink(&'a str, &'a str),
        Fifo(&'a str),
    }

    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h
    }

    /// Raw path bytes go in through `set_path`-free `append_data`-like calls: names with `..` or
    /// a leading `/` are written into the header bytes directly, as a hostile producer would.
    fn set_raw_name(h: &mut tar::Header, name: &str) {
        let gnu = h.as_gnu_mut().unwrap();
        gnu.name = [0; 100];
        gnu.name[..name.len()].copy_from_slice(name.as_bytes());
    }

    fn tar_of(entries: &[E]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for e in entries {
            let (mut h, name, link, data): (_, _, Option<&str>, &[u8]) = match *e {
                E::Dir(n) => (header(tar::EntryType::Directory, 0o755, 0), n, None, b""),
                E::File(n, d) => (
                    header(tar::EntryType::Regular, 0o4755, d.len() as u64),
                    n,
                    None,
                    d,
                ),
                E::Symlink(n, t) => (header(tar::EntryType::Symlink, 0o777, 0), n, Some(t), b""),
                E::Hardlink(n, t) => (header(tar::EntryType::Link, 0o644, 0), n, Some(t), b""),
                E::Fifo(n) => (header(tar::EntryType::Fifo, 0o644, 0), n, None, b""),
            };
            set_raw_name(&mut h, name);
            if let Some(t) = link {
                let gnu = h.as_gnu_mut().unwrap();
                gnu.linkname = [0; 100];
                gnu.linkname[..t.len()].copy_from_slice(t.as_bytes());
            }
            h.set_cksum();
            b.append(&h, data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut g = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        g.write_all(bytes).unwrap();
        g.finish().unwrap()
    }

    /// An image on disk: blobs under `<dir>/blobs`, descriptors in order.
    struct Image {
        dir: tempfile::TempDir,
        layers: Vec<Descriptor>,
    }

    fn image(layers: &[(&str, Vec<u8>)]) -> Image {
        let dir = tempfile::tempdir().unwrap();
        let blobs = dir.path().join("blobs");
        std::fs::create_dir_all(&blobs).unwrap();
        let layers = layers
            .iter()
            .map(|(media_type, bytes)| {
                let digest = crate::oci::sha256_digest(bytes);
                std::fs::write(blobs.join(&digest[7..]), bytes).unwrap();
                Descriptor {
                    media_type: media_type.to_string(),
                    digest,
                    size: bytes.len() as u64,
                    annotations: Default::default(),
                }
            })
            .collect();
        Image { dir, layers }
    }

    impl Image {
        fn rootfs(&self) -> PathBuf {
            self.dir.path().join("img/rootfs")
        }
        fn unpack(&self, limits: Limits) -> (Result<Counts, Error>, Vec<String>) {
            let mut logs = Vec::new();
            let r = unpack_image(
                &self.dir.path().join("blobs"),
                &self.layers,
                &self.rootfs(),
                limits,
                &mut |l| logs.push(l),
            );
            (r, logs)
        }
        /// Nothing but `blobs/` and (when unpacked) `img/rootfs` exists in the test dir.
        fn assert_only_rootfs(&self, unpacked: bool) {
            let mut top: Vec<_> = std::fs::read_dir(self.dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            top.sort();
            assert_eq!(top[0], "blobs");
            assert!(
                top[1..] == ["img"] || (top.len() == 1 && !unpacked),
                "{top:?}"
            );
            let img: Vec<_> = std::fs::read_dir(self.dir.path().join("img"))
                .into_iter()
                .flatten()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            let want: &[&str] = if unpacked { &["rootfs"] } else { &[] };
            assert_eq!(img, want);
        }
    }

    fn read(p: PathBuf) -> String {
        std::fs::read_to_string(p).unwrap()
    }

    #[test]
    fn two_layers_gzip_and_plain() {
        let l1 = tar_of(&[
            E::Dir("./"),
            E::Dir("./etc/"),
            E::File("./etc/os-release", b"ID=test\n"),
            E::File("/usr/bin/tool", b"v1"),
            E::Symlink("bin", "usr/bin"),
            E::Fifo("dev/fifo"),
        ]);
        let l2 = tar_of(&[
            E::File("usr/bin/tool", b"v2"),
            E::Hardlink("usr/bin/tool2", "/usr/bin/tool"),
        ]);
        let img = image(&[
            (MEDIA_OCI_LAYER_TAR_GZIP, gzip(&l1)),
            (MEDIA_OCI_LAYER_TAR, l2),
        ]);
        let (r, logs) = img.unpack(Limits::default());
        let c = r.unwrap();
        let root = img.rootfs();
        assert_eq!(read(root.join("etc/os-release")), "ID=test\n");
        assert_eq!(read(root.join("usr/bin/tool")), "v2");
        assert_eq!(read(root.join("usr/bin/tool2")), "v2");
        assert_eq!(
            std::fs::read_link(root.join("bin")).unwrap(),
            Path::new("usr/bin")
        );
        assert!(!root.join("dev/fifo").exists());
        // setuid dropped, permission bits kept
        let mode = std::fs::metadata(root.join("etc/os-release"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o755);
        assert_eq!(
            c,
            Counts {
                files: 4,
                dirs: 3,
                symlinks: 1,
                whiteouts: 0,
                skipped: 1
            },
            "etc, usr, usr/bin (implicit); 3 files + 1 hard link; no dev/ for the skipped fifo"
        );
        let d1 = &img.layers[0].digest;
        assert!(
            logs.contains(&format!(
                "layer {d1} unpacked: 2 files, 3 dirs, 1 symlinks, 0 whiteouts -> {}",
                root.display()
            )),
            "{logs:#?}"
        );
        assert!(
            logs.iter().any(|l| l.contains("fifo dev/fifo not created")),
            "{logs:#?}"
        );
        assert_eq!(
            logs.last().unwrap(),
            &format!("image unpacked: 2 layers -> {}", root.display())
        );
        img.assert_only_rootfs(true);
        // A second unpack replaces the first.
        img.unpack(Limits::default()).0.unwrap();
        img.assert_only_rootfs(true);
    }

    #[test]
    fn whiteouts_across_layers() {
        let l1 = tar_of(&[
            E::File("a/keep", b"k"),
            E::File("a/gone", b"g"),
            E::File("a/sub/deep", b"d"),
            E::File("o/old1", b"1"),
            E::File("o/sub/old2", b"2"),
            E::File("o/sub/old3", b"3"),
        ]);
        let l2 = tar_of(&[
            E::File("a/.wh.gone", b""),
            E::File("a/.wh.sub", b""),
            E::File("o/sub/new", b"n"),
            E::File("o/.wh..wh..opq", b""),
            E::File("o/new2", b"n2"),
        ]);
        let img = image(&[
            (MEDIA_OCI_LAYER_TAR, l1),
            (MEDIA_DOCKER_LAYER_TAR_GZIP, gzip(&l2)),
        ]);
        let (r, logs) = img.unpack(Limits::default());
        r.unwrap();
        let root = img.rootfs();
        assert!(root.join("a/keep").exists());
        assert!(!root.join("a/gone").exists() && !root.join("a/.wh.gone").exists());
        assert!(!root.join("a/sub").exists());
        assert!(!root.join("o/old1").exists(), "opaque: lower file removed");
        assert!(
            !root.join("o/sub/old2").exists(),
            "opaque: lower content of a dir this layer wrote into removed"
        );
        assert_eq!(
            read(root.join("o/sub/new")),
            "n",
            "opaque: this layer's earlier entry kept"
        );
        assert_eq!(read(root.join("o/new2")), "n2");
        assert!(!root.join("o/.wh..wh..opq").exists());
        assert!(logs[1].contains("3 whiteouts"), "{logs:#?}");
    }

    fn unpack_err(entries: &[E]) -> (Image, String) {
        let img = image(&[(MEDIA_OCI_LAYER_TAR, tar_of(entries))]);
        let e = img.unpack(Limits::default()).0.unwrap_err().to_string();
        assert!(e.contains(&img.layers[0].digest), "{e}");
        img.assert_only_rootfs(false);
        (img, e)
    }

    #[test]
    fn traversal_rejected() {
        let (_, e) = unpack_err(&[E::File("a/../../escape", b"x")]);
        assert!(e.contains("\"a/../../escape\"") && e.contains(".."), "{e}");
        let (_, e) = unpack_err(&[E::File("ok", b"x"), E::Hardlink("h", "../outside")]);
        assert!(e.contains("\"h\"") && e.contains(".."), "{e}");
        let (_, e) = unpack_err(&[E::File(".wh...", b"")]);
        assert!(e.contains("whiteout"), "{e}");
    }

    #[test]
    fn nothing_written_through_a_symlink() {
        let outside = tempfile::tempdir().unwrap();
        let o = outside.path().to_str().unwrap();
        // absolute symlink, then an entry through it (same layer)
        let (_, e) = unpack_err(&[E::Symlink("evil", o), E::File("evil/pwned", b"x")]);
        assert!(e.contains("\"evil/pwned\"") && e.contains("symlink"), "{e}");
        // relative symlink in one layer, entry through it in the next
        let img = image(&[
            (
                MEDIA_OCI_LAYER_TAR,
                tar_of(&[E::Symlink("up", "../../../../../../../..")]),
            ),
            (
                MEDIA_OCI_LAYER_TAR,
                tar_of(&[E::File(&format!("up{o}/pwned"), b"x")]),
            ),
        ]);
        let e = img.unpack(Limits::default()).0.unwrap_err().to_string();
        assert!(
            e.contains(&img.layers[1].digest) && e.contains("symlink"),
            "{e}"
        );
        img.assert_only_rootfs(false);
        // a symlink as the entry's own path is replaced, not written through
        let img = image(&[
            (
                MEDIA_OCI_LAYER_TAR,
                tar_of(&[E::Symlink("f", &format!("{o}/target"))]),
            ),
            (MEDIA_OCI_LAYER_TAR, tar_of(&[E::File("f", b"inside")])),
        ]);
        img.unpack(Limits::default()).0.unwrap();
        assert_eq!(read(img.rootfs().join("f")), "inside");
        // a whiteout through a symlink deletes nothing outside
        std::fs::write(outside.path().join("victim"), "v").unwrap();
        let (_, e) = unpack_err(&[E::Symlink("d", o), E::File("d/.wh.victim", b"")]);
        assert!(e.contains("symlink"), "{e}");
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 1);
        assert!(outside.path().join("victim").exists());
    }

    #[test]
    fn hard_links_stay_inside() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "s").unwrap();
        let o = outside.path().to_str().unwrap();
        // an absolute target is taken relative to the rootfs: it does not exist there
        let (_, e) = unpack_err(&[E::Hardlink("h", &format!("{o}/secret"))]);
        assert!(e.contains("does not exist"), "{e}");
        // a target through a symlink
        let (_, e) = unpack_err(&[E::Symlink("l", o), E::Hardlink("h", "l/secret")]);
        assert!(e.contains("symlink"), "{e}");
        // a target that is itself a symlink
        let (_, e) = unpack_err(&[
            E::Symlink("l", &format!("{o}/secret")),
            E::Hardlink("h", "l"),
        ]);
        assert!(e.contains("not a regular file"), "{e}");
        assert_eq!(
            std::fs::metadata(outside.path().join("secret"))
                .unwrap()
                .nlink(),
            1
        );
    }

    #[test]
    fn limits() {
        let entries: Vec<_> = (0..10).map(|i| format!("f{i}")).collect();
        let es: Vec<_> = entries.iter().map(|n| E::File(n, b"12345")).collect();
        let img = image(&[(MEDIA_OCI_LAYER_TAR, tar_of(&es))]);
        assert!(img
            .unpack(Limits {
                max_bytes: 50,
                max_entries: 10
            })
            .0
            .is_ok());
        let e = img
            .unpack(Limits {
                max_bytes: 50,
                max_entries: 9,
            })
            .0
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("more than 9 entries") && e.contains("\"f9\""),
            "{e}"
        );
        let e = img
            .unpack(Limits {
                max_bytes: 49,
                max_entries: 10,
            })
            .0
            .unwrap_err()
            .to_string();
        assert!(e.contains("more than 49 bytes"), "{e}");
        // a failed re-unpack removed the earlier rootfs too? No: it stays until a complete one replaces it.
        assert!(img.rootfs().join("f0").exists());
    }

    #[test]
    fn unsupported_media_types_refused() {
        for mt in [
            "application/vnd.oci.image.layer.v1.tar+zstd",
            "application/vnd.oci.image.config.v1+json",
        ] {
            let img = image(&[
                (MEDIA_OCI_LAYER_TAR, tar_of(&[E::File("a", b"a")])),
                (mt, b"x".to_vec()),
            ]);
            let e = img.unpack(Limits::default()).0.unwrap_err().to_string();
            assert!(e.contains(mt) && e.contains(&img.layers[1].digest), "{e}");
            img.assert_only_rootfs(false);
        }
        // plain tar labelled gzip
        let img = image(&[(MEDIA_OCI_LAYER_TAR_GZIP, tar_of(&[E::File("a", b"a")]))]);
        assert!(img.unpack(Limits::default()).0.is_err());
        img.assert_only_rootfs(false);
    }

    #[test]
    fn failure_mid_way_leaves_no_rootfs() {
        let good = tar_of(&[E::File("a/1", b"1"), E::File("a/2", b"2")]);
        let mut truncated = tar_of(&[E::File("b/1", b"1"), E::File("b/2", &[7u8; 4096])]);
        truncated.truncate(2048);
        let img = image(&[
            (MEDIA_OCI_LAYER_TAR, good),
            (MEDIA_OCI_LAYER_TAR, truncated),
        ]);
        let (r, logs) = img.unpack(Limits::default());
        let e = r.unwrap_err().to_string();
        assert!(e.contains(&img.layers[1].digest), "{e}");
        assert_eq!(
            logs.len(),
            1,
            "first layer logged, no 'image unpacked': {logs:#?}"
        );
        img.assert_only_rootfs(false);
    }
}
