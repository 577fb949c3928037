//! Rootfs stage: `rootfs/mkosi/` → Debian trixie tree (mkosi, `Format=directory`) → erofs
//! image (mkfs.erofs) → dm-verity hash device, root hash, salt and `dm-mod.create=` table
//! (computed in Rust by `cvm_rootfs::verity`, then checked with `veritysetup verify`).
//!
//! Outputs, in `<cache>/rootfs/out/` (written atomically): `rootfs.erofs`, `rootfs.verity`
//! (hash device with superblock), `rootfs.manifest.json` (mkosi's package manifest: every
//! installed Debian package and version), `rootfs.debs.json` (the sha256 of every .deb
//! installed, from mkosi's package cache: name, version, architecture, sha256, sorted by
//! name), `rootfs.json` (root hash, salt, sizes, dm table).
//!
//! Determinism: the salt is `verity::Salt::derive(sha256(rootfs.erofs))`, the erofs UUID and
//! the verity superblock UUID are derived, mkosi clamps mtimes to SOURCE_DATE_EPOCH. What can
//! still change a rebuild is the Debian archive moving (see `rootfs/mkosi/mkosi.conf`).
//!
//! Cached ([`crate::cache`], stage `rootfs`): the key covers every file under the mkosi
//! config directory and every extra tree (relative path + contents, sorted), the mkosi and
//! mkfs.erofs versions, SOURCE_DATE_EPOCH, the verity device names and [`RECIPE`].
//! NOT covered: the Debian archive. Packages are resolved against the live archive at build
//! time, so a moved archive (new package versions) does not change the key and a hit returns
//! the tree built from the older archive state. `cargo xtask build-image --no-cache`
//! rebuilds (and reports whether the outputs are identical to the cached entry).

use crate::cache::{Cache, Key, KeyBuilder, Outcome};
use crate::tools::{self, erofs, mkosi, veritysetup};
use anyhow::{Context, Result};
use cvm_rootfs::verity::{self, HashLayout, Salt, Verity};
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use xshell::Shell;

/// Bump when the steps below change in a way that changes outputs.
const RECIPE: u32 = 4;

/// Image id in `rootfs/mkosi/mkosi.conf` (`ImageId=`).
pub const IMAGE_ID: &str = "cvm-rootfs";
/// Warn above this erofs size (the target).
pub const TARGET_EROFS_BYTES: u64 = 64 << 20;
/// dm device name in `dm-mod.create=` (the root appears as `/dev/dm-0`).
pub const DM_NAME: &str = "vroot";

/// The inputs of the rootfs stage.
#[derive(Debug, Clone)]
pub struct RootfsInputs {
    /// Directory with `mkosi.conf`.
    pub mkosi_dir: PathBuf,
    /// Debian packages installed on top of mkosi's base (`--package`; the spec's
    /// `[rootfs].packages`).
    pub packages: Vec<String>,
    /// Trees copied over the image (`--extra-tree`): the guest agent and PID 1, staged by
    /// [`super::agent::extra_tree`].
    pub extra_trees: Vec<PathBuf>,
    pub source_date_epoch: u64,
    /// Kernel names of the verity data and hash devices as the guest sees the disk of
    /// `stages::disk` (ESP = 1, root = 2, root-verity = 3 on one virtio disk).
    pub data_dev: String,
    pub hash_dev: String,
}

impl RootfsInputs {
    /// The in-repo defaults: `rootfs/mkosi/`, no extra trees, the epoch of `mkosi.conf`,
    /// devices `/dev/vda2` and `/dev/vda3`.
    pub fn from_repo(root: &Path) -> Result<RootfsInputs> {
        let mkosi_dir = root.join("rootfs/mkosi");
        let conf_path = mkosi_dir.join("mkosi.conf");
        let conf = std::fs::read_to_string(&conf_path)
            .with_context(|| format!("reading {}", conf_path.display()))?;
        let epoch = conf
            .lines()
            .find_map(|l| l.trim().strip_prefix("SourceDateEpoch="))
            .with_context(|| format!("{}: no SourceDateEpoch= line", conf_path.display()))?;
        let source_date_epoch = epoch.trim().parse().with_context(|| {
            format!(
                "{}: SourceDateEpoch={epoch} is not a number",
                conf_path.display()
            )
        })?;
        Ok(RootfsInputs {
            mkosi_dir,
            packages: Vec::new(),
            extra_trees: Vec::new(),
            source_date_epoch,
            data_dev: "/dev/vda2".into(),
            hash_dev: "/dev/vda3".into(),
        })
    }
}

impl RootfsInputs {
    /// The inputs for a spec's `[rootfs]`: [`Self::from_repo`] plus its packages and, when
    /// it names an agent crate, the agent stage's extra tree (this builds the agent).
    pub fn for_spec(sh: &Shell, root: &Path, spec: &cvm_image_spec::Rootfs) -> Result<RootfsInputs> {
        let mut inputs = Self::from_repo(root)?;
        inputs.packages = spec.packages.clone();
        if let cvm_image_spec::Agent::Crate(name) = &spec.agent {
            inputs.extra_trees.push(super::agent::extra_tree(sh, root, name)?);
        }
        Ok(inputs)
    }
}

/// What the rootfs stage produced.
#[derive(Debug, Clone)]
pub struct RootfsOutputs {
    pub erofs: PathBuf,
    pub verity: PathBuf,
    /// mkosi's JSON manifest of installed packages.
    pub manifest: PathBuf,
    /// `rootfs.debs.json`: the .deb file of every installed package by sha256.
    pub debs: PathBuf,
    pub root_hash: String,
    pub salt: String,
    /// The value of `dm-mod.create=` (without the parameter name and quotes).
    pub dm_mod_create: String,
    /// Everything the verity tree is: blocks, UUID, layout.
    pub tree: Verity,
    /// Whether the outputs came from the cache.
    pub outcome: Outcome,
}

/// The rootfs stage's cache key (computed before anything is built). Does not cover the
/// Debian archive (see the module documentation).
pub fn cache_key(sh: &Shell, inputs: &RootfsInputs) -> Result<Key> {
    let mut kb = KeyBuilder::new("rootfs", RECIPE)
        .text("tool mkosi", &mkosi::version(sh)?)
        .text("tool mkfs.erofs", &erofs::version(sh)?)
        .text("SOURCE_DATE_EPOCH", &inputs.source_date_epoch.to_string())
        .text("data_dev", &inputs.data_dev)
        .text("hash_dev", &inputs.hash_dev)
        .text("packages", &inputs.packages.join(","));
    for (rel, value) in tree_inputs(&inputs.mkosi_dir)? {
        kb = kb.text(&format!("mkosi {rel}"), &value);
    }
    for (i, t) in inputs.extra_trees.iter().enumerate() {
        for (rel, value) in tree_inputs(t)? {
            kb = kb.text(&format!("extra-tree {i} {rel}"), &value);
        }
    }
    Ok(kb.finish())
}

/// Every entry under `dir` as (relative path, description), sorted by relative path: files
/// by execute bit and sha256 of contents, symlinks by target. Other mode bits are left out:
/// they come from the checkout's umask, and the agent stage normalises them.
fn tree_inputs(dir: &Path) -> Result<Vec<(String, String)>> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("listing {}", d.display()))? {
            let p = e
                .with_context(|| format!("listing {}", d.display()))?
                .path();
            let md =
                std::fs::symlink_metadata(&p).with_context(|| format!("stat {}", p.display()))?;
            let rel = p
                .strip_prefix(dir)
                .expect("under dir")
                .to_string_lossy()
                .into_owned();
            let exec = if md.permissions().mode() & 0o111 != 0 { "x" } else { "-" };
            let value = if md.file_type().is_symlink() {
                let t =
                    std::fs::read_link(&p).with_context(|| format!("readlink {}", p.display()))?;
                format!("symlink {}", t.display())
            } else if md.is_dir() {
                todo.push(p.clone());
                "dir".to_string()
            } else {
                format!("file {exec} sha256:{}", tools::sha256_file(&p)?)
            };
            out.push((rel, value));
        }
    }
    out.sort();
    Ok(out)
}

/// Run the stage, or take its outputs from the cache (`rebuild`: always run, `--no-cache`).
pub fn build_cached(sh: &Shell, inputs: &RootfsInputs, rebuild: bool) -> Result<RootfsOutputs> {
    tools::stage("rootfs: cache key");
    let key = cache_key(sh, inputs)?;
    let (dir, outcome) = Cache::open()?.get_or_build("rootfs", &key, rebuild, |out| {
        build(sh, inputs)?;
        let src = tools::cache_dir()?.join("rootfs/out");
        for f in [
            "rootfs.erofs",
            "rootfs.verity",
            "rootfs.manifest.json",
            "rootfs.debs.json",
            "rootfs.json",
        ] {
            super::copy(&src.join(f), &out.join(f))?;
        }
        Ok(())
    })?;
    let erofs_path = dir.join("rootfs.erofs");
    let summary_path = dir.join("rootfs.json");
    let summary: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&summary_path)
            .with_context(|| format!("reading {}", summary_path.display()))?,
    )
    .with_context(|| format!("parsing {}", summary_path.display()))?;
    // Recompute the verity description from the cached erofs (deterministic: the salt is
    // derived from the erofs digest) and check it against the entry.
    let digest: [u8; 32] = hex::decode(tools::sha256_file(&erofs_path)?)?
        .try_into()
        .expect("sha256 is 32 bytes");
    if summary["erofs_sha256"].as_str() != Some(hex::encode(digest).as_str()) {
        anyhow::bail!(
            "{}: erofs_sha256 does not match {} (a damaged cache entry: remove {} or use --no-cache)",
            summary_path.display(),
            erofs_path.display(),
            dir.display()
        );
    }
    let salt = Salt::derive(&digest);
    let data =
        File::open(&erofs_path).with_context(|| format!("opening {}", erofs_path.display()))?;
    let tree = verity::format(data, std::io::sink(), &salt, HashLayout::Superblock)
        .with_context(|| format!("dm-verity of {}", erofs_path.display()))?;
    if summary["root_hash"].as_str() != Some(tree.root_hash_hex().as_str()) {
        anyhow::bail!(
            "{}: root_hash does not match the recomputed one (remove {} or use --no-cache)",
            summary_path.display(),
            dir.display()
        );
    }
    if outcome == Outcome::Hit {
        eprintln!("    root hash {}", tree.root_hash_hex());
    }
    Ok(RootfsOutputs {
        verity: dir.join("rootfs.verity"),
        manifest: dir.join("rootfs.manifest.json"),
        debs: dir.join("rootfs.debs.json"),
        root_hash: tree.root_hash_hex(),
        salt: salt.to_hex(),
        dm_mod_create: tree.dm_mod_create(DM_NAME, &inputs.data_dev, &inputs.hash_dev),
        erofs: erofs_path,
        tree,
        outcome,
    })
}

/// Run the stage without the cache (outputs in `<cache>/rootfs/out/`).
pub fn build(sh: &Shell, inputs: &RootfsInputs) -> Result<RootfsOutputs> {
    let base = tools::cache_dir()?.join("rootfs");
    let out = base.join("out");
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;

    tools::stage(&format!("rootfs: mkosi build ({})", mkosi::version(sh)?));
    let m = mkosi::MkosiBuild {
        config_dir: inputs.mkosi_dir.clone(),
        output_dir: base.join("mkosi-out"),
        package_cache_dir: base.join("mkosi-packages"),
        workspace_dir: base.join("mkosi-workspace"),
        packages: inputs.packages.clone(),
        extra_trees: inputs.extra_trees.clone(),
        source_date_epoch: inputs.source_date_epoch,
    };
    mkosi::build(sh, &m)?;
    let (tree, mkosi_manifest) = mkosi::outputs(&m.output_dir, IMAGE_ID);

    tools::stage(&format!("rootfs: mkfs.erofs ({})", erofs::version(sh)?));
    let erofs_path = out.join("rootfs.erofs");
    let tmp = out.join(".rootfs.erofs.tmp");
    let _ = std::fs::remove_file(&tmp);
    let erofs_uuid =
        cvm_rootfs::disk::derive_uuid("cvm-image erofs uuid v1", &[IMAGE_ID.as_bytes()]);
    erofs::mkfs(
        sh,
        &tree,
        &tmp,
        &erofs_uuid.hyphenated().to_string(),
        inputs.source_date_epoch,
    )?;
    rename(&tmp, &erofs_path)?;
    let erofs_bytes = std::fs::metadata(&erofs_path)
        .with_context(|| format!("stat {}", erofs_path.display()))?
        .len();
    eprintln!(
        "    {}: {:.1} MiB",
        erofs_path.display(),
        erofs_bytes as f64 / (1 << 20) as f64
    );
    if erofs_bytes > TARGET_EROFS_BYTES {
        eprintln!(
            "    warning: erofs is above the {} MiB target",
            TARGET_EROFS_BYTES >> 20
        );
    }

    tools::stage(&format!(
        "rootfs: dm-verity hash tree (cvm_rootfs::verity, checked by {})",
        veritysetup::version(sh)?
    ));
    let digest: [u8; 32] = hex::decode(tools::sha256_file(&erofs_path)?)?
        .try_into()
        .expect("sha256 is 32 bytes");
    let salt = Salt::derive(&digest);
    let verity_path = out.join("rootfs.verity");
    let tmp = out.join(".rootfs.verity.tmp");
    let data =
        File::open(&erofs_path).with_context(|| format!("opening {}", erofs_path.display()))?;
    let hash_out =
        BufWriter::new(File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?);
    let tree_info =
        verity::format(data, hash_out, &salt, HashLayout::Superblock).with_context(|| {
            format!(
                "dm-verity of {} into {}",
                erofs_path.display(),
                tmp.display()
            )
        })?;
    rename(&tmp, &verity_path)?;
    veritysetup::verify(sh, &erofs_path, &verity_path, &tree_info.root_hash_hex())?;

    let manifest = out.join("rootfs.manifest.json");
    let m_bytes = std::fs::read(&mkosi_manifest)
        .with_context(|| format!("reading mkosi manifest {}", mkosi_manifest.display()))?;
    tools::write_atomic(&manifest, &m_bytes)?;
    let debs = out.join("rootfs.debs.json");
    let archives = m.package_cache_dir.join("cache/apt/archives");
    tools::write_atomic(&debs, &installed_debs(&m_bytes, &archives)?)?;

    let dm_mod_create = tree_info.dm_mod_create(DM_NAME, &inputs.data_dev, &inputs.hash_dev);
    let summary = serde_json::json!({
        "root_hash": tree_info.root_hash_hex(),
        "salt": salt.to_hex(),
        "data_blocks": tree_info.data_blocks,
        "hash_bytes": tree_info.hash_bytes,
        "superblock_uuid": tree_info.uuid_string(),
        "erofs_bytes": erofs_bytes,
        "erofs_sha256": hex::encode(digest),
        "dm_mod_create": dm_mod_create,
        "kernel_cmdline": tree_info.cmdline_arg(DM_NAME, &inputs.data_dev, &inputs.hash_dev),
    });
    tools::write_atomic(
        &out.join("rootfs.json"),
        format!("{}\n", serde_json::to_string_pretty(&summary)?).as_bytes(),
    )?;
    eprintln!("    root hash {}", tree_info.root_hash_hex());
    Ok(RootfsOutputs {
        erofs: erofs_path,
        verity: verity_path,
        manifest,
        debs,
        root_hash: tree_info.root_hash_hex(),
        salt: salt.to_hex(),
        dm_mod_create,
        tree: tree_info,
        outcome: Outcome::Built,
    })
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to)
        .with_context(|| format!("renaming {} to {}", from.display(), to.display()))
}

/// `rootfs.debs.json`: for every package of mkosi's manifest (`packages[]`: name, version,
/// architecture), the sha256 of the .deb apt installed it from, found in apt's archive cache
/// as `<name>_<version, ':' as %3a>_<arch>.deb`. Sorted by name; a missing .deb is an error
/// (the package could not be pinned).
fn installed_debs(mkosi_manifest: &[u8], archives: &Path) -> Result<Vec<u8>> {
    let m: serde_json::Value =
        serde_json::from_slice(mkosi_manifest).context("parsing mkosi's package manifest")?;
    let mut out = Vec::new();
    for p in m["packages"].as_array().context("mkosi manifest: no `packages`")? {
        let field = |k: &str| {
            p[k].as_str()
                .with_context(|| format!("mkosi manifest: a package without `{k}`: {p}"))
        };
        let (name, version, arch) = (field("name")?, field("version")?, field("architecture")?);
        let file = archives.join(format!("{name}_{}_{arch}.deb", version.replace(':', "%3a")));
        let sha256 = tools::sha256_file(&file).with_context(|| {
            format!("pinning {name} {version}: its .deb is not in apt's archive cache {}", archives.display())
        })?;
        out.push(serde_json::json!({"name": name, "version": version, "architecture": arch, "sha256": sha256}));
    }
    out.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    let mut bytes = serde_json::to_vec_pretty(&out)?;
    bytes.push(b'\n');
    Ok(bytes)
}
