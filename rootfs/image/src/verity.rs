//! dm-verity hash trees in the on-disk format that `veritysetup format` (cryptsetup 2.x) writes
//! and the Linux `dm-verity` target reads: format version 1, sha256, 4096-byte data and hash
//! blocks, each hash `sha256(salt ‖ block)`, 128 hashes per hash block, zero padded.
//!
//! Layout of the hash device, as cryptsetup's `lib/verity/verity_hash.c` and the kernel's
//! `drivers/md/dm-verity-target.c` define it:
//!
//! - with a superblock (the default of `veritysetup format`): the 512-byte [`Superblock`] at
//!   offset 0, zero padded to one 4096-byte block, so the tree starts at hash block 1
//!   (`VERITY_hash_offset_block`: `(sizeof(sb) + block - 1) / block`);
//! - with `--no-superblock`: the tree starts at hash block 0.
//!
//! The tree is written top level first: the single top block, then each lower level, the
//! level hashing the data blocks last. Level `i` (0 = hashes of data blocks) has
//! `ceil(data_blocks / 128^(i+1))` blocks; there are as many levels as needed to reach one
//! block, so a 1-block data device has no hash blocks at all and its root hash is the hash of
//! that data block.
//!
//! **Salt.** `veritysetup` picks 32 random bytes; this crate never does. [`Salt::derive`] hashes
//! a domain-separation string and the sha256 of the data (see its docs), so the same data
//! always gets the same salt and tree, and different data gets an unrelated salt.
//!
//! **Superblock UUID.** Derived from the root hash ([`superblock_uuid`]), like systemd-repart
//! derives partition UUIDs from it. It is not covered by the root hash.
//!
//! [`format`] streams the data (memory: a few 4 MiB chunks plus the tree, 1/128 of the data):
//! a reader thread fills chunks, one persistent worker per core hashes them; the result does
//! not depend on the number of threads.

use sha2::{Digest, Sha256};
use std::io::{self, Read, Write};
use std::sync::{mpsc, Mutex};

/// Size of a data block and of a hash block, in bytes (`--data-block-size`, `--hash-block-size`).
pub const BLOCK_BYTES: u32 = 4096;
/// Bytes of one sha256 digest.
pub const DIGEST_BYTES: usize = 32;
/// Hashes per hash block: `BLOCK_BYTES / DIGEST_BYTES` (a power of two, so no padding per hash).
pub const HASHES_PER_BLOCK: u64 = (BLOCK_BYTES as u64) / DIGEST_BYTES as u64;
/// Size of the on-disk superblock (`struct verity_sb`), in bytes.
pub const SUPERBLOCK_BYTES: usize = 512;
/// `verity_sb.signature`.
pub const SUPERBLOCK_SIGNATURE: [u8; 8] = *b"verity\0\0";
/// Domain-separation prefix of [`Salt::derive`]. Changing it changes every root hash.
pub const SALT_DOMAIN: &[u8] = b"cvm-image dm-verity salt v1\0";
/// Domain-separation prefix of [`superblock_uuid`].
pub const UUID_DOMAIN: &[u8] = b"cvm-image dm-verity superblock uuid v1\0";

const BLOCK: usize = BLOCK_BYTES as usize;
/// Data read per step of [`format`]: 1024 blocks (4 MiB).
const CHUNK_BLOCKS: usize = 1024;

/// Errors of this module. Callers add the file names (`with_context`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("reading data at byte offset {offset}: {source}")]
    Read { offset: u64, source: io::Error },
    #[error("writing hash device: {source}")]
    Write { source: io::Error },
    #[error("data is {bytes} bytes, not a multiple of the {BLOCK_BYTES}-byte data block size")]
    DataNotBlockAligned { bytes: u64 },
    #[error("data is empty: dm-verity needs at least one data block")]
    EmptyData,
    #[error("verity superblock: {field}: {problem}")]
    Superblock {
        field: &'static str,
        problem: String,
    },
}

/// The dm-verity salt: 32 bytes, as `veritysetup`'s default salt size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Salt(pub [u8; 32]);

impl Salt {
    /// The deterministic salt of a data device whose contents have sha256 `data_sha256`:
    /// `sha256(SALT_DOMAIN ‖ data_sha256)`.
    ///
    /// Why the data digest and not, say, the image name: the salt exists so that hash trees of
    /// different images share no precomputable structure; a salt derived from the contents
    /// gives that, costs one extra sequential read, and needs no input besides the data.
    pub fn derive(data_sha256: &[u8; 32]) -> Salt {
        let mut h = Sha256::new();
        h.update(SALT_DOMAIN);
        h.update(data_sha256);
        Salt(h.finalize().into())
    }

    /// Lowercase hex, as `veritysetup --salt` takes it.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// Whether the hash device starts with a [`Superblock`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashLayout {
    /// `veritysetup format` default: superblock in hash block 0, tree from hash block 1.
    Superblock,
    /// `veritysetup format --no-superblock`: tree from hash block 0.
    NoSuperblock,
}

impl HashLayout {
    /// The hash block where the tree starts (`<hash_start_block>` in the dm table).
    pub fn hash_start_block(self) -> u64 {
        match self {
            HashLayout::Superblock => 1,
            HashLayout::NoSuperblock => 0,
        }
    }
}

/// What [`format`] computed: everything a dm-verity table and a verifier need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verity {
    pub root_hash: [u8; 32],
    pub salt: Salt,
    /// Number of 4096-byte data blocks hashed.
    pub data_blocks: u64,
    pub layout: HashLayout,
    /// Superblock UUID ([`superblock_uuid`] of the root hash); also set for
    /// [`HashLayout::NoSuperblock`], where it is written nowhere.
    pub uuid: [u8; 16],
    /// Bytes written to the hash device (superblock block plus tree).
    pub hash_bytes: u64,
}

impl Verity {
    /// Root hash as lowercase hex (`veritysetup verify DATA HASH <root>`).
    pub fn root_hash_hex(&self) -> String {
        hex::encode(self.root_hash)
    }

    /// `uuid` in the canonical 8-4-4-4-12 form (`veritysetup format --uuid`).
    pub fn uuid_string(&self) -> String {
        uuid::Uuid::from_bytes(self.uuid).hyphenated().to_string()
    }

    /// Size of the data device in 512-byte sectors (the dm table's length).
    pub fn data_sectors(&self) -> u64 {
        self.data_blocks * u64::from(BLOCK_BYTES / 512)
    }

    /// The `verity` target line of a device-mapper table covering the whole data device:
    /// `0 <sectors> verity 1 <data_dev> <hash_dev> 4096 4096 <data_blocks> <hash_start> sha256
    /// <root> <salt>` (kernel `Documentation/admin-guide/device-mapper/verity.rst`).
    pub fn dm_table(&self, data_dev: &str, hash_dev: &str) -> String {
        format!(
            "0 {sectors} verity 1 {data_dev} {hash_dev} {BLOCK_BYTES} {BLOCK_BYTES} {blocks} {start} sha256 {root} {salt}",
            sectors = self.data_sectors(),
            blocks = self.data_blocks,
            start = self.layout.hash_start_block(),
            root = self.root_hash_hex(),
            salt = self.salt.to_hex(),
        )
    }

    /// The value of the kernel parameter `dm-mod.create=` (CONFIG_DM_INIT,
    /// `Documentation/admin-guide/device-mapper/dm-init.rst`):
    /// `<name>,<uuid>,<minor>,<flags>,<table>` with the [`Verity::dm_uuid`], an empty minor and
    /// flags `ro`. The device appears as `/dev/dm-0` when it is the first one; no initramfs is
    /// needed.
    pub fn dm_mod_create(&self, name: &str, data_dev: &str, hash_dev: &str) -> String {
        format!("{name},{},,ro,{}", self.dm_uuid(name), self.dm_table(data_dev, hash_dev))
    }

    /// The device-mapper UUID cryptsetup gives a verity device it opens,
    /// `CRYPT-VERITY-<uuid, 32 hex digits>-<name>` (libcryptsetup `dm_prepare_uuid`): with it
    /// `veritysetup status <name>` in the guest recognises the device that the kernel created
    /// from the command line (without it: "not a VERITY device"). The UUID is the superblock's.
    pub fn dm_uuid(&self, name: &str) -> String {
        format!("CRYPT-VERITY-{}-{name}", hex::encode(self.uuid))
    }

    /// The whole kernel command-line argument, quoted because the table contains spaces:
    /// `dm-mod.create="<dm_mod_create>"`.
    pub fn cmdline_arg(&self, name: &str, data_dev: &str, hash_dev: &str) -> String {
        format!(
            "dm-mod.create=\"{}\"",
            self.dm_mod_create(name, data_dev, hash_dev)
        )
    }
}

/// The superblock UUID this crate writes for a tree with root hash `root_hash`: the first 16
/// bytes of `sha256(UUID_DOMAIN ‖ root_hash)`, with the RFC 9562 version 4 and variant bits
/// set so that tools parsing it as a random UUID accept it.
pub fn superblock_uuid(root_hash: &[u8; 32]) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(UUID_DOMAIN);
    h.update(root_hash);
    let d = h.finalize();
    let mut u = [0u8; 16];
    u.copy_from_slice(&d[..16]);
    u[6] = (u[6] & 0x0f) | 0x40;
    u[8] = (u[8] & 0x3f) | 0x80;
    u
}

/// Number of hash blocks of each tree level, lowest level (hashes of data blocks) first.
/// Empty for a single data block.
pub fn level_blocks(data_blocks: u64) -> Vec<u64> {
    let mut levels = Vec::new();
    let mut n = data_blocks;
    while n > 1 {
        n = n.div_ceil(HASHES_PER_BLOCK);
        levels.push(n);
    }
    levels
}

/// Bytes of the hash device for `data_blocks` data blocks: the superblock block (if any) plus
/// every tree level.
pub fn hash_device_bytes(data_blocks: u64, layout: HashLayout) -> u64 {
    (layout.hash_start_block() + level_blocks(data_blocks).iter().sum::<u64>())
        * u64::from(BLOCK_BYTES)
}

/// Compute the hash tree of `data` (read to its end; its length must be a non-zero multiple
/// of 4096) with `salt`, and write the hash device to `hash_out`: superblock block (for
/// [`HashLayout::Superblock`]) then the tree, top level first. Nothing is written before the
/// data has been read in full, so a read error leaves `hash_out` untouched.
pub fn format(
    data: impl Read + Send,
    hash_out: impl Write,
    salt: &Salt,
    layout: HashLayout,
) -> Result<Verity, Error> {
    let leaves = hash_data_blocks(data, salt)?;
    let data_blocks = (leaves.len() / DIGEST_BYTES) as u64;
    let (levels, root_hash) = build_levels(leaves, salt);
    let uuid = superblock_uuid(&root_hash);
    let verity = Verity {
        root_hash,
        salt: *salt,
        data_blocks,
        layout,
        uuid,
        hash_bytes: hash_device_bytes(data_blocks, layout),
    };
    write_hash_device(hash_out, &verity, &levels).map_err(|source| Error::Write { source })?;
    Ok(verity)
}

/// Read `data` in chunks and return the concatenated level-0 hashes (32 bytes per data block),
/// hashing on all cores.
fn hash_data_blocks(data: impl Read + Send, salt: &Salt) -> Result<Vec<u8>, Error> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    hash_data_blocks_with(data, salt, workers)
}

/// The pipeline of [`hash_data_blocks`]: one reader thread fills 4 MiB chunks; `workers`
/// persistent threads each hash whole chunks; this thread puts the chunk hashes back in
/// order and returns the buffers to the reader. `workers + 2` buffers circulate.
fn hash_data_blocks_with(
    data: impl Read + Send,
    salt: &Salt,
    workers: usize,
) -> Result<Vec<u8>, Error> {
    let workers = workers.max(1);
    let (work_tx, work_rx) = mpsc::sync_channel::<(usize, Vec<u8>, usize)>(workers);
    let work_rx = Mutex::new(work_rx);
    let (done_tx, done_rx) = mpsc::channel::<(usize, Vec<u8>, Vec<u8>)>();
    let (empty_tx, empty_rx) = mpsc::channel::<Vec<u8>>();
    for _ in 0..workers + 2 {
        empty_tx
            .send(vec![0u8; CHUNK_BLOCKS * BLOCK])
            .expect("receiver is alive");
    }
    std::thread::scope(|s| {
        let reader = s.spawn(move || -> Result<(), Error> {
            let mut data = data;
            let mut offset = 0u64;
            for index in 0.. {
                let Ok(mut buf) = empty_rx.recv() else { break };
                let filled = read_full(&mut data, &mut buf)
                    .map_err(|source| Error::Read { offset, source })?;
                offset += filled as u64;
                if filled % BLOCK != 0 {
                    return Err(Error::DataNotBlockAligned { bytes: offset });
                }
                let last = filled < buf.len();
                if work_tx.send((index, buf, filled)).is_err() || last {
                    break;
                }
            }
            Ok(())
        });
        for _ in 0..workers {
            let (done_tx, work_rx) = (done_tx.clone(), &work_rx);
            s.spawn(move || loop {
                let job = work_rx
                    .lock()
                    .expect("no worker panics holding the lock")
                    .recv();
                let Ok((index, buf, filled)) = job else { break };
                let mut leaves = vec![0u8; filled / BLOCK * DIGEST_BYTES];
                hash_blocks(salt, &buf[..filled], &mut leaves);
                if done_tx.send((index, buf, leaves)).is_err() {
                    break;
                }
            });
        }
        drop(done_tx);
        let mut leaves = Vec::new();
        let mut pending = std::collections::BTreeMap::new();
        for (index, buf, chunk_leaves) in done_rx.iter() {
            let _ = empty_tx.send(buf);
            pending.insert(index, chunk_leaves);
            while let Some(next) = pending
                .first_entry()
                .filter(|e| *e.key() == leaves.len() / (CHUNK_BLOCKS * DIGEST_BYTES))
            {
                leaves.extend_from_slice(&next.remove());
            }
        }
        reader.join().expect("verity reader thread panicked")?;
        if leaves.is_empty() {
            return Err(Error::EmptyData);
        }
        Ok(leaves)
    })
}

/// Fill `buf` from `r` unless it ends first; returns bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// `out[32*i..32*(i+1)] = sha256(salt ‖ blocks[4096*i..4096*(i+1)])`.
fn hash_blocks(salt: &Salt, blocks: &[u8], out: &mut [u8]) {
    for (b, o) in blocks
        .chunks_exact(BLOCK)
        .zip(out.chunks_exact_mut(DIGEST_BYTES))
    {
        o.copy_from_slice(&hash_block(salt, b));
    }
}

fn hash_block(salt: &Salt, block: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(salt.0);
    h.update(block);
    h.finalize().into()
}

/// From the level-0 hashes, build every level as whole zero-padded hash blocks (lowest first)
/// and the root hash.
fn build_levels(leaves: Vec<u8>, salt: &Salt) -> (Vec<Vec<u8>>, [u8; 32]) {
    if leaves.len() == DIGEST_BYTES {
        // One data block: no hash blocks, the root is the data block's hash.
        let mut root = [0u8; 32];
        root.copy_from_slice(&leaves);
        return (Vec::new(), root);
    }
    let mut levels: Vec<Vec<u8>> = Vec::new();
    let mut hashes = leaves;
    loop {
        let mut level = hashes;
        level.resize(level.len().div_ceil(BLOCK) * BLOCK, 0);
        let n_blocks = level.len() / BLOCK;
        let mut next = vec![0u8; n_blocks * DIGEST_BYTES];
        hash_blocks(salt, &level, &mut next);
        levels.push(level);
        if n_blocks == 1 {
            let mut root = [0u8; 32];
            root.copy_from_slice(&next);
            return (levels, root);
        }
        hashes = next;
    }
}

fn write_hash_device(mut out: impl Write, verity: &Verity, levels: &[Vec<u8>]) -> io::Result<()> {
    if verity.layout == HashLayout::Superblock {
        let mut block = vec![0u8; BLOCK];
        block[..SUPERBLOCK_BYTES].copy_from_slice(&Superblock::of(verity).to_bytes());
        out.write_all(&block)?;
    }
    for level in levels.iter().rev() {
        out.write_all(level)?;
    }
    out.flush()
}

/// The dm-verity superblock, `struct verity_sb` of cryptsetup `lib/verity/verity.c`
/// (512 bytes, little endian, at offset 0 of the hash device).
#[doc(alias = "verity_sb")]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Superblock {
    /// `version`: superblock version, 1.
    pub version: u32,
    /// `hash_type`: 0 = Chrome OS (salt appended), 1 = normal (salt prepended).
    pub hash_type: u32,
    /// `uuid`: identifies the hash device (`veritysetup format --uuid`).
    pub uuid: [u8; 16],
    /// `algorithm`: NUL-padded hash name, e.g. `sha256`.
    pub algorithm: String,
    pub data_block_size: u32,
    pub hash_block_size: u32,
    pub data_blocks: u64,
    /// `salt[salt_size]` (at most 256 bytes).
    pub salt: Vec<u8>,
}

impl Superblock {
    /// The superblock [`format`] writes for `verity`.
    pub fn of(verity: &Verity) -> Superblock {
        Superblock {
            version: 1,
            hash_type: 1,
            uuid: verity.uuid,
            algorithm: "sha256".to_string(),
            data_block_size: BLOCK_BYTES,
            hash_block_size: BLOCK_BYTES,
            data_blocks: verity.data_blocks,
            salt: verity.salt.0.to_vec(),
        }
    }

    /// Serialise as the 512-byte `struct verity_sb`.
    ///
    /// # Panics
    /// If `algorithm` is longer than 31 bytes or `salt` longer than 256 bytes (never for
    /// [`Superblock::of`] or a [`Superblock::parse`] result).
    pub fn to_bytes(&self) -> [u8; SUPERBLOCK_BYTES] {
        assert!(
            self.algorithm.len() < 32 && self.salt.len() <= 256,
            "superblock field too long"
        );
        let mut b = [0u8; SUPERBLOCK_BYTES];
        b[0..8].copy_from_slice(&SUPERBLOCK_SIGNATURE);
        b[8..12].copy_from_slice(&self.version.to_le_bytes());
        b[12..16].copy_from_slice(&self.hash_type.to_le_bytes());
        b[16..32].copy_from_slice(&self.uuid);
        b[32..32 + self.algorithm.len()].copy_from_slice(self.algorithm.as_bytes());
        b[64..68].copy_from_slice(&self.data_block_size.to_le_bytes());
        b[68..72].copy_from_slice(&self.hash_block_size.to_le_bytes());
        b[72..80].copy_from_slice(&self.data_blocks.to_le_bytes());
        b[80..82].copy_from_slice(&(self.salt.len() as u16).to_le_bytes());
        // 82..88: _pad1
        b[88..88 + self.salt.len()].copy_from_slice(&self.salt);
        // 344..512: _pad2
        b
    }

    /// Parse a superblock from the start of a hash device (untrusted input: never panics).
    /// Checks what cryptsetup's `VERITY_read_sb` checks: signature, version 1, hash type 0 or
    /// 1, salt size at most 256, block sizes powers of two from 512 to 512 KiB, a
    /// NUL-terminated ASCII algorithm name.
    pub fn parse(bytes: &[u8]) -> Result<Superblock, Error> {
        let bad = |field: &'static str, problem: String| Error::Superblock { field, problem };
        let b = bytes.get(..SUPERBLOCK_BYTES).ok_or_else(|| {
            bad(
                "length",
                format!("{} bytes, need {SUPERBLOCK_BYTES}", bytes.len()),
            )
        })?;
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        if b[0..8] != SUPERBLOCK_SIGNATURE {
            return Err(bad(
                "signature",
                format!("{:02x?}, expected \"verity\\0\\0\"", &b[0..8]),
            ));
        }
        let version = u32_at(8);
        if version != 1 {
            return Err(bad("version", format!("{version}, only 1 is defined")));
        }
        let hash_type = u32_at(12);
        if hash_type > 1 {
            return Err(bad("hash_type", format!("{hash_type}, expected 0 or 1")));
        }
        let alg = &b[32..64];
        let alg_len = alg.iter().position(|&c| c == 0).ok_or_else(|| {
            bad(
                "algorithm",
                "not NUL-terminated within 32 bytes".to_string(),
            )
        })?;
        let algorithm = std::str::from_utf8(&alg[..alg_len])
            .ok()
            .filter(|s| s.bytes().all(|c| c.is_ascii_graphic()))
            .ok_or_else(|| {
                bad(
                    "algorithm",
                    format!("{:02x?} is not an ASCII name", &alg[..alg_len]),
                )
            })?
            .to_string();
        let block_size = |field: &'static str, v: u32| {
            if v.is_power_of_two() && (512..=512 * 1024).contains(&v) {
                Ok(v)
            } else {
                Err(bad(
                    field,
                    format!("{v} is not a power of two from 512 to 524288"),
                ))
            }
        };
        let data_block_size = block_size("data_block_size", u32_at(64))?;
        let hash_block_size = block_size("hash_block_size", u32_at(68))?;
        let data_blocks = u64::from(u32_at(72)) | (u64::from(u32_at(76)) << 32);
        let salt_size = usize::from(u16::from_le_bytes([b[80], b[81]]));
        if salt_size > 256 {
            return Err(bad("salt_size", format!("{salt_size}, at most 256")));
        }
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&b[16..32]);
        Ok(Superblock {
            version,
            hash_type,
            uuid,
            algorithm,
            data_block_size,
            hash_block_size,
            data_blocks,
            salt: b[88..88 + salt_size].to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(blocks: usize) -> Vec<u8> {
        (0..blocks * BLOCK)
            .map(|i| (i as u32).wrapping_mul(2654435761).to_le_bytes()[3])
            .collect()
    }

    fn run(blocks: usize, layout: HashLayout) -> (Verity, Vec<u8>) {
        let mut out = Vec::new();
        let v = format(&data(blocks)[..], &mut out, &Salt([7; 32]), layout).unwrap();
        (v, out)
    }

    #[test]
    fn level_sizes_match_cryptsetup_formula() {
        // cryptsetup: levels while (blocks - 1) >> (7 * levels) != 0; size ceil(n / 128^(i+1)).
        for n in [1u64, 2, 127, 128, 129, 16384, 16385, 2_000_000] {
            let mut levels = 0;
            while (n - 1) >> (7 * levels) != 0 {
                levels += 1;
            }
            let want: Vec<u64> = (0..levels)
                .map(|i| n.div_ceil(1 << (7 * (i + 1))))
                .collect();
            assert_eq!(level_blocks(n), want, "n = {n}");
        }
        assert_eq!(level_blocks(128), vec![1]);
        assert_eq!(level_blocks(129), vec![2, 1]);
    }

    #[test]
    fn one_block_root_is_the_block_hash() {
        let (v, out) = run(1, HashLayout::NoSuperblock);
        assert_eq!(v.root_hash, hash_block(&Salt([7; 32]), &data(1)));
        assert!(out.is_empty());
        assert_eq!(v.hash_bytes, 0);
    }

    #[test]
    fn two_level_tree_by_hand() {
        let salt = Salt([7; 32]);
        let d = data(129);
        let (v, out) = run(129, HashLayout::Superblock);
        assert_eq!(out.len() as u64, v.hash_bytes);
        assert_eq!(out.len(), 4 * BLOCK); // superblock + top + 2 leaves
                                          // Level 0 (blocks 2 and 3 of the device): hash of every data block.
        let mut l0 = vec![0u8; 2 * BLOCK];
        for (i, b) in d.chunks(BLOCK).enumerate() {
            l0[i * 32..(i + 1) * 32].copy_from_slice(&hash_block(&salt, b));
        }
        assert_eq!(&out[2 * BLOCK..], &l0[..]);
        let mut top = vec![0u8; BLOCK];
        top[..32].copy_from_slice(&hash_block(&salt, &l0[..BLOCK]));
        top[32..64].copy_from_slice(&hash_block(&salt, &l0[BLOCK..]));
        assert_eq!(&out[BLOCK..2 * BLOCK], &top[..]);
        assert_eq!(v.root_hash, hash_block(&salt, &top));
        assert_eq!(Superblock::parse(&out).unwrap(), Superblock::of(&v));
        assert!(out[SUPERBLOCK_BYTES..BLOCK].iter().all(|&b| b == 0));
    }

    #[test]
    fn threads_and_chunks_do_not_change_the_tree() {
        let d = data(CHUNK_BLOCKS + 300);
        let salt = Salt([1; 32]);
        let mut whole = vec![0u8; (CHUNK_BLOCKS + 300) * 32];
        hash_blocks(&salt, &d, &mut whole);
        let mut out = Vec::new();
        // A reader that returns odd-sized pieces.
        struct Dribble<'a>(&'a [u8]);
        impl Read for Dribble<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = self.0.len().min(buf.len()).min(1000);
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let v = format(Dribble(&d), &mut out, &salt, HashLayout::NoSuperblock).unwrap();
        let (_, root) = build_levels(whole, &salt);
        assert_eq!(v.root_hash, root);
        let mut want = vec![0u8; (CHUNK_BLOCKS * 2 + 300) * 32];
        let d = data(CHUNK_BLOCKS * 2 + 300);
        hash_blocks(&salt, &d, &mut want);
        for workers in 1..5 {
            let got = hash_data_blocks_with(Dribble(&d), &salt, workers).unwrap();
            assert!(got == want, "workers = {workers}");
        }
    }

    #[test]
    fn read_error_is_reported_not_hung() {
        // Fails after three full chunks, while workers are busy.
        struct Failing(u64);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 >= 3 * (CHUNK_BLOCKS * BLOCK) as u64 {
                    return Err(io::Error::other("disk on fire"));
                }
                let n = buf.len().min(BLOCK);
                buf[..n].fill(1);
                self.0 += n as u64;
                Ok(n)
            }
        }
        for workers in 1..4 {
            let e = hash_data_blocks_with(Failing(0), &Salt([0; 32]), workers).unwrap_err();
            assert!(
                matches!(e, Error::Read { offset, .. } if offset == 3 * (CHUNK_BLOCKS * BLOCK) as u64),
                "{e}"
            );
        }
    }

    #[test]
    fn layouts_share_the_tree() {
        let (a, sa) = run(300, HashLayout::Superblock);
        let (b, sb) = run(300, HashLayout::NoSuperblock);
        assert_eq!(a.root_hash, b.root_hash);
        assert_eq!(&sa[BLOCK..], &sb[..]);
    }

    #[test]
    fn bad_data_lengths() {
        let salt = Salt([0; 32]);
        let e = format(&[0u8; 4097][..], Vec::new(), &salt, HashLayout::Superblock).unwrap_err();
        assert!(
            matches!(e, Error::DataNotBlockAligned { bytes: 4097 }),
            "{e}"
        );
        let e = format(&[][..], Vec::new(), &salt, HashLayout::Superblock).unwrap_err();
        assert!(matches!(e, Error::EmptyData), "{e}");
    }

    #[test]
    fn dm_table_and_cmdline() {
        let (v, _) = run(129, HashLayout::Superblock);
        let t = v.dm_table("/dev/vda2", "/dev/vda3");
        assert_eq!(
            t,
            format!(
                "0 1032 verity 1 /dev/vda2 /dev/vda3 4096 4096 129 1 sha256 {} {}",
                v.root_hash_hex(),
                "07".repeat(32)
            )
        );
        assert_eq!(
            v.cmdline_arg("root", "/dev/vda2", "/dev/vda3"),
            format!("dm-mod.create=\"root,CRYPT-VERITY-{}-root,,ro,{t}\"", hex::encode(v.uuid))
        );
    }

    #[test]
    fn salt_and_uuid_are_derived() {
        let a = Salt::derive(&[0; 32]);
        assert_ne!(a, Salt::derive(&[1; 32]));
        assert_eq!(a, Salt::derive(&[0; 32]));
        let mut h = Sha256::new();
        h.update(b"cvm-image dm-verity salt v1\0");
        h.update([0u8; 32]);
        assert_eq!(a.0, <[u8; 32]>::from(h.finalize()));
        let u = uuid::Uuid::from_bytes(superblock_uuid(&[3; 32]));
        assert_eq!(u.get_version_num(), 4);
        assert_eq!(u.get_variant(), uuid::Variant::RFC4122);
    }

    #[test]
    fn superblock_round_trip_and_rejections() {
        let (v, out) = run(2, HashLayout::Superblock);
        let sb = Superblock::parse(&out).unwrap();
        assert_eq!(sb.to_bytes()[..], out[..SUPERBLOCK_BYTES]);
        assert_eq!(sb.data_blocks, 2);
        assert_eq!(sb.uuid, v.uuid);
        let mut bad = out[..SUPERBLOCK_BYTES].to_vec();
        bad[80] = 0x01;
        bad[81] = 0x01; // salt_size 257
        assert!(matches!(
            Superblock::parse(&bad),
            Err(Error::Superblock {
                field: "salt_size",
                ..
            })
        ));
        let mut bad = out[..SUPERBLOCK_BYTES].to_vec();
        bad[64] = 3;
        assert!(matches!(
            Superblock::parse(&bad),
            Err(Error::Superblock {
                field: "data_block_size",
                ..
            })
        ));
        assert!(matches!(
            Superblock::parse(&out[..511]),
            Err(Error::Superblock {
                field: "length",
                ..
            })
        ));
    }

    /// Random bytes (fixed-seed xorshift, so the test is stable) never make the parser panic,
    /// also when they start with a valid signature and version.
    #[test]
    fn superblock_parse_never_panics() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for i in 0..20_000 {
            let len = (next() % 700) as usize;
            let mut b: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if i % 2 == 0 && len >= 16 {
                b[..8].copy_from_slice(&SUPERBLOCK_SIGNATURE);
                b[8..16].copy_from_slice(&[1, 0, 0, 0, (i % 3) as u8, 0, 0, 0]);
            }
            let _ = Superblock::parse(&b);
        }
    }
}
