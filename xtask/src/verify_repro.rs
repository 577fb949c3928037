//! `cargo xtask verify-repro [--twice] [--spec FILE] [--work-dir DIR] [--jobs N]`: build the
//! image again from scratch in another directory and in another environment, and compare
//! every output byte for byte with the normal build.
//!
//! - **Build A** is `out/<name>/` of this checkout, as `build-image` makes it (from the user's
//!   content-addressed cache, whose entries were built from scratch earlier). With `--twice`,
//!   A is built from scratch too (empty cache under the work directory).
//! - **Build B** runs in a copy of the working tree (tracked files plus untracked, not ignored
//!   ones, so local edits are tested) at `<work>/b/checkout`, written as a fresh clone under
//!   umask 077 would be, with an empty cache (`CVM_CACHE_DIR`, `XDG_CACHE_HOME`), its own cargo
//!   target directory, umask 077 (A: 022), `TZ` UTC+12:45 (A: UTC), `LC_ALL`/`LANG` C.UTF-8
//!   (A: C), `CVM_JOBS` one more than A's make/edk2 parallelism, and a later wall clock. The
//!   unpacked kernel and edk2 trees at the fixed paths under `/var/tmp/cvm-build/` are
//!   unpacked, patched and (BaseTools) built again for each from-scratch build.
//! - **Compare**: every file under both output directories (`repro-report.json` aside; a file
//!   only in A that A's manifest does not list is stale and reported as ignored), the
//!   artefact list of both manifests (role, path, sha256), `manifest.json` byte for byte and,
//!   when it differs, which JSON fields do. A differing file is named with its first differing
//!   byte offset, both sizes and sha256s; diffoscope explains it when installed. The report
//!   goes to `out/<name>/repro-report.json` (no times in it: equal results give equal
//!   reports); a difference is an error.
//!
//! One run at a time (`/var/tmp/cvm-build/verify-repro.lock`). The kernel and edk2 build at
//! fixed paths by design; their per-stage locks keep a concurrent `build-image` correct, but
//! it would wait for B's builds, and build A is snapshotted at the start so a concurrent
//! `build-image` of this checkout cannot change what B is compared with.

use crate::flags::VerifyReproFlags;
use crate::progress::{fmt_duration, Stage};
use crate::stages::BUILD_ROOT;
use crate::tools::{self, diffoscope, git, make};
use anyhow::{Context, Result};
use cvm_manifest::{Artefact, Manifest};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};
use xshell::{cmd, Shell};

/// The report, next to the manifest of build A.
pub const REPORT: &str = "repro-report.json";
/// Exit status when `--time-limit` ran out before build B finished (nothing was compared).
pub const EXIT_TIME_LIMIT: i32 = 3;
/// Default scratch directory (outside the checkout; deleted and refilled by each run, except
/// build B's cargo target directory, which is kept to save compiling the dependencies again).
pub const DEFAULT_WORK_DIR: &str = "/var/tmp/cvm-verify-repro";
/// diffoscope runs on at most this many differing files, each at most this long.
const DIFFOSCOPE_FILES: usize = 4;
const DIFFOSCOPE_SECONDS: u32 = 600;
/// Lines of each diffoscope report shown on stderr (the whole report stays in the work dir).
const DIFFOSCOPE_LINES: usize = 60;
/// Differing manifest fields listed at most.
const FIELD_LIMIT: usize = 40;

/// The environment one build runs in: what verify-repro varies between A and B.
#[derive(Debug, Clone, Serialize)]
pub struct BuildEnv {
    /// Checkout the build runs in.
    pub checkout: PathBuf,
    /// `CVM_CACHE_DIR`, or `None` for the user's cache (build A without `--twice`).
    pub cache: Option<PathBuf>,
    pub from_scratch: bool,
    /// Octal, e.g. `022`.
    pub umask: String,
    #[serde(rename = "TZ")]
    pub tz: String,
    /// `LC_ALL` and `LANG`.
    pub locale: String,
    /// `CVM_JOBS`: make -j and edk2 -n.
    pub jobs: usize,
}

/// Build A's environment (the reference: what the stages pin anyway).
fn env_a(checkout: &Path, cache: Option<PathBuf>, jobs: usize) -> BuildEnv {
    BuildEnv {
        checkout: checkout.to_path_buf(),
        from_scratch: cache.is_some(),
        cache,
        umask: "022".into(),
        tz: "UTC".into(),
        locale: "C".into(),
        jobs,
    }
}

/// Build B's environment: everything that may vary on a builder's machine, varied.
fn env_b(checkout: &Path, cache: PathBuf, jobs: usize) -> BuildEnv {
    BuildEnv {
        checkout: checkout.to_path_buf(),
        cache: Some(cache),
        from_scratch: true,
        umask: "077".into(),
        // POSIX form (UTC+12:45, Chatham Islands): valid without tzdata.
        tz: "CHAST-12:45".into(),
        locale: "C.UTF-8".into(),
        jobs,
    }
}

pub fn run(sh: &Shell, flags: &VerifyReproFlags) -> Result<()> {
    let total = Instant::now();
    let root = tools::workspace_root();
    let spec_rel = spec_in_checkout(&root, flags.spec.as_deref())?;
    let spec = cvm_image_spec::ImageSpec::load(&root.join(&spec_rel)).map_err(|e| anyhow::anyhow!("{e}"))?;
    let name = spec.image.name.clone();
    // The same signing key for both builds (an untracked key would not be in B's copy).
    let key = spec.signing.as_ref().map(|s| s.key.resolve(&root)).filter(|p| p.exists());
    let work = flags.work_dir.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_WORK_DIR));
    let mut st = Stage::new(&format!("verify-repro {name}"), 6);

    st.step("lock and tools");
    let _lock = lock()?;
    if !flags.no_install {
        crate::install::install_repro(sh)?;
    }
    let jobs_a = make::jobs();
    let jobs_b = flags.jobs.unwrap_or(jobs_a + 1);
    if jobs_b == jobs_a {
        eprintln!("    warning: --jobs {jobs_b} equals build A's parallelism: parallelism is not varied");
    }

    st.step("prepare build B's checkout copy and empty caches");
    let t = Instant::now();
    let b_checkout = work.join("b/checkout");
    for d in ["a/cache", "a/xdg-cache", "a/out", "b/cache", "b/xdg-cache", "diffoscope"] {
        remove_dir_if_exists(&work.join(d))?;
    }
    let a = env_a(&root, flags.twice.then(|| work.join("a/cache")), jobs_a);
    let b = env_b(&b_checkout, work.join("b/cache"), jobs_b);
    let n = copy_checkout(sh, &root, &b_checkout, 0o077)?;
    eprintln!("    copied {n} files of {} to {} ({})", root.display(), b_checkout.display(), fmt_duration(t.elapsed()));

    st.step(if flags.twice { "build A from scratch (this checkout, empty cache)" } else { "build A (this checkout, the user's cache)" });
    let a_start = unix_now();
    let t = Instant::now();
    if flags.twice {
        forget_unpacked_trees()?;
    }
    print_env("A", &a);
    let xtask = std::env::current_exe().context("locating the xtask binary")?;
    let spec_a = root.join(&spec_rel);
    let key_args: Vec<String> = key.iter().flat_map(|k| ["--key".to_string(), k.display().to_string()]).collect();
    let key_args_a = key_args.clone();
    let c = cmd!(sh, "sh -c 'umask 022 && exec \"$@\"' sh {xtask} build-image --no-install --spec {spec_a} {key_args_a...}");
    with_env(c, &a, &work.join("a/xdg-cache")).run().context("build A failed")?;
    let a_out = work.join("a/out");
    snapshot(&root.join("out").join(&name), &a_out)?;
    let a_took = t.elapsed();
    eprintln!("    build A took {} (started at unix time {a_start})", fmt_duration(a_took));

    st.step("build B from scratch (copy, empty cache, umask 077, other TZ, locale and -j)");
    let b_start = unix_now();
    let t = Instant::now();
    forget_unpacked_trees()?;
    print_env("B", &b);
    let deadline = flags.time_limit.map(|m| total + Duration::from_secs(m * 60));
    {
        let _d = sh.push_dir(&b_checkout);
        let xdg = work.join("b/xdg-cache");
        tools::stage("verify-repro: build B: cargo build --release -p xtask -p cvm-measure (target dir in the copy)");
        let c = cmd!(sh, "sh -c 'umask 077 && exec \"$@\"' sh cargo build --release -p xtask -p cvm-measure");
        let tc = Instant::now();
        run_until(sh, with_env(c, &b, &xdg), deadline, "compiling xtask in build B's checkout")?;
        eprintln!("    compiled in {}", fmt_duration(tc.elapsed()));
        let spec_b = b_checkout.join(&spec_rel);
        let c = cmd!(sh, "sh -c 'umask 077 && exec \"$@\"' sh cargo xtask build-image --no-install --spec {spec_b} {key_args...}");
        run_until(sh, with_env(c, &b, &xdg), deadline, "build B")?;
    }
    let b_took = t.elapsed();
    eprintln!(
        "    build B took {} (started at unix time {b_start}, {} after A)",
        fmt_duration(b_took),
        fmt_duration(std::time::Duration::from_secs(b_start.saturating_sub(a_start)))
    );

    st.step("compare every file and both manifests byte for byte");
    let t = Instant::now();
    let b_out = b_checkout.join("out").join(&name);
    let mut report = compare_outputs(&a_out, &b_out)?;
    report.image = name.clone();
    report.mode = if flags.twice { "twice" } else { "a-from-cache" };
    report.builds = BTreeMap::from([("a".to_string(), a), ("b".to_string(), b)]);
    print_differences(&report);
    explain_with_diffoscope(sh, &report, &a_out, &b_out, &work.join("diffoscope"), deadline)?;
    eprintln!("    compared in {}", fmt_duration(t.elapsed()));

    st.step("report");
    let bytes = serde_json::to_vec_pretty(&report)?;
    let report_path = root.join("out").join(&name).join(REPORT);
    tools::write_atomic(&report_path, &bytes)?;
    tools::write_atomic(&work.join(REPORT), &bytes)?;
    let verdict = format!(
        "{}: {} files compared, {} differ, {} ignored; build A {}, build B {}, total {} -> {}",
        report.result,
        report.files.len(),
        report.files.iter().filter(|f| f.status != FileStatus::Identical).count(),
        report.ignored.len(),
        fmt_duration(a_took),
        fmt_duration(b_took),
        fmt_duration(total.elapsed()),
        report_path.display()
    );
    st.done(&verdict);
    anyhow::ensure!(
        report.result == "identical",
        "verify-repro: the two builds differ (see above and {})",
        report_path.display()
    );
    Ok(())
}

/// The spec as a path relative to the checkout (it is copied with it).
fn spec_in_checkout(root: &Path, spec: Option<&Path>) -> Result<PathBuf> {
    let Some(p) = spec else {
        return Ok(PathBuf::from(cvm_image_spec::DEFAULT_FILE));
    };
    let abs = std::fs::canonicalize(p).with_context(|| format!("spec {}", p.display()))?;
    let root = std::fs::canonicalize(root).with_context(|| format!("checkout {}", root.display()))?;
    abs.strip_prefix(&root).map(Path::to_path_buf).map_err(|_| {
        anyhow::anyhow!("the spec {} is outside the checkout {}: verify-repro copies the checkout, so the spec must be in it", p.display(), root.display())
    })
}

/// Run one command of build B; at `deadline`, stop it and its children (its own process group)
/// and exit with [`EXIT_TIME_LIMIT`]. The kernel and edk2 trees it leaves half-built are unpacked
/// again by the next from-scratch build (their stamps were removed before B started).
fn run_until(sh: &Shell, c: xshell::Cmd<'_>, deadline: Option<Instant>, what: &str) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let mut command = std::process::Command::from(c);
    command.process_group(0);
    let mut child = command.spawn().with_context(|| format!("starting {what}"))?;
    loop {
        if let Some(status) = child.try_wait()? {
            anyhow::ensure!(status.success(), "{what} failed ({status})");
            return Ok(());
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let group = format!("-{}", child.id());
            eprintln!("    verify-repro: TIME LIMIT reached during {what}: stopping process group {group}");
            let _ = cmd!(sh, "kill -TERM -- {group}").quiet().run();
            for _ in 0..20 {
                if child.try_wait()?.is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            let _ = cmd!(sh, "kill -KILL -- {group}").quiet().ignore_stderr().run();
            let _ = child.wait();
            eprintln!("    verify-repro: INCOMPLETE: build B did not finish within the time limit; nothing was compared");
            std::process::exit(EXIT_TIME_LIMIT);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Exclusive `BUILD_ROOT/verify-repro.lock` for the whole run (a second run fails at once).
fn lock() -> Result<std::fs::File> {
    let dir = Path::new(BUILD_ROOT);
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("verify-repro.lock");
    let f = std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    f.try_lock().map_err(|_| anyhow::anyhow!("another verify-repro holds {}", path.display()))?;
    eprintln!(
        "    holding {}; a build-image running meanwhile waits for the kernel and edk2 stages (they build at fixed paths under {BUILD_ROOT})",
        path.display()
    );
    Ok(f)
}

/// Remove the stamps of the unpacked kernel and edk2 trees (under each stage's lock), so the
/// next build unpacks, patches and builds BaseTools again: part of "from scratch".
fn forget_unpacked_trees() -> Result<()> {
    for stage in ["kernel", "edk2"] {
        let _l = crate::stages::lock(stage)?;
        let stamp = Path::new(BUILD_ROOT).join(stage).join("src.stamp");
        if stamp.exists() {
            std::fs::remove_file(&stamp).with_context(|| format!("removing {}", stamp.display()))?;
            eprintln!("    removed {}: the {stage} sources are unpacked again", stamp.display());
        }
    }
    Ok(())
}

fn print_env(label: &str, e: &BuildEnv) {
    let cache = e.cache.as_ref().map_or_else(|| "the user's cache".to_string(), |c| c.display().to_string());
    eprintln!(
        "    build {label}: checkout {}, cache {cache}, umask {}, TZ={}, LC_ALL=LANG={}, CVM_JOBS={}",
        e.checkout.display(),
        e.umask,
        e.tz,
        e.locale,
        e.jobs
    );
}

/// The variables of `e` on `c` (the umask is set by the `sh -c` wrapper).
fn with_env<'a>(c: xshell::Cmd<'a>, e: &BuildEnv, xdg: &Path) -> xshell::Cmd<'a> {
    let c = c
        .env("TZ", &e.tz)
        .env("LC_ALL", &e.locale)
        .env("LANG", &e.locale)
        .env("CVM_JOBS", e.jobs.to_string())
        // Each checkout its own target/ (build B compiles everything again).
        .env_remove("CARGO_TARGET_DIR");
    match &e.cache {
        Some(cache) => c.env("CVM_CACHE_DIR", cache).env("XDG_CACHE_HOME", xdg),
        None => c,
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn remove_dir_if_exists(d: &Path) -> Result<()> {
    if d.exists() {
        std::fs::remove_dir_all(d).with_context(|| format!("removing {}", d.display()))?;
    }
    Ok(())
}

/// Mode of a checked-out file, as git writes it under `umask`: 0777 or 0666 by the executable bit.
pub fn checkout_mode(executable: bool, umask: u32) -> u32 {
    (if executable { 0o777 } else { 0o666 }) & !umask
}

/// Refill `dest` with the working-tree files of `root` (see [`git::worktree_files`]), modes as a
/// fresh checkout under `umask` gets them. `dest/target` (cargo's) is kept. Returns the count.
fn copy_checkout(sh: &Shell, root: &Path, dest: &Path, umask: u32) -> Result<usize> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let files = git::worktree_files(sh, root)?;
    if dest.exists() {
        for e in std::fs::read_dir(dest).with_context(|| format!("listing {}", dest.display()))? {
            let p = e.with_context(|| format!("listing {}", dest.display()))?.path();
            if p.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            if p.symlink_metadata().is_ok_and(|m| m.is_dir()) {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            }
            .with_context(|| format!("removing {}", p.display()))?;
        }
    }
    let mut dirs = std::fs::DirBuilder::new();
    dirs.recursive(true).mode(checkout_mode(true, umask));
    dirs.create(dest).with_context(|| format!("creating {}", dest.display()))?;
    for rel in &files {
        let (from, to) = (root.join(rel), dest.join(rel));
        if let Some(parent) = to.parent() {
            dirs.create(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        let md = from.symlink_metadata().with_context(|| format!("stat {}", from.display()))?;
        if md.file_type().is_symlink() {
            let target = std::fs::read_link(&from).with_context(|| format!("readlink {}", from.display()))?;
            std::os::unix::fs::symlink(&target, &to).with_context(|| format!("creating symlink {}", to.display()))?;
        } else if md.is_file() {
            std::fs::copy(&from, &to).with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
            let mode = checkout_mode(md.permissions().mode() & 0o100 != 0, umask);
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(mode))
                .with_context(|| format!("chmod {}", to.display()))?;
        } else {
            anyhow::bail!("{}: neither a file nor a symlink (a submodule?); verify-repro cannot copy it", from.display());
        }
    }
    Ok(files.len())
}

/// Copy the regular files of `from` into a fresh `to` (build A as it was when it finished).
fn snapshot(from: &Path, to: &Path) -> Result<()> {
    remove_dir_if_exists(to)?;
    for rel in list_files(from)?.keys() {
        let dst = to.join(rel);
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::copy(from.join(rel), &dst).with_context(|| format!("copying {} to {}", from.join(rel).display(), dst.display()))?;
    }
    Ok(())
}

// ---- comparison (pure parts first, then the file-system walk) ----

/// Offset of the first byte where two streams differ; when one is a prefix of the other, the
/// shorter one's length. `None` when they are equal.
pub fn first_difference(a: impl Read, b: impl Read) -> std::io::Result<Option<u64>> {
    let mut ra = BufReader::with_capacity(1 << 16, a);
    let mut rb = BufReader::with_capacity(1 << 16, b);
    let mut offset = 0u64;
    loop {
        let (ba, bb) = (ra.fill_buf()?, rb.fill_buf()?);
        if ba.is_empty() || bb.is_empty() {
            return Ok((ba.len() != bb.len()).then_some(offset));
        }
        let n = ba.len().min(bb.len());
        if let Some(i) = ba[..n].iter().zip(&bb[..n]).position(|(x, y)| x != y) {
            return Ok(Some(offset + i as u64));
        }
        ra.consume(n);
        rb.consume(n);
        offset += n as u64;
    }
}

/// How a path compares between the two output directories.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileStatus {
    Identical,
    Differs,
    OnlyInA,
    OnlyInB,
}

/// One compared file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileResult {
    pub path: String,
    pub status: FileStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_difference: Option<u64>,
    pub size_a: Option<u64>,
    pub size_b: Option<u64>,
    pub sha256_a: Option<String>,
    pub sha256_b: Option<String>,
}

/// A file left out of the verdict, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ignored {
    pub path: String,
    pub reason: String,
}

/// One manifest role in A and B.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArtefactResult {
    pub role: String,
    pub identical: bool,
    pub a: Option<Artefact>,
    pub b: Option<Artefact>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ManifestResult {
    pub identical: bool,
    pub sha256_a: Option<String>,
    pub sha256_b: Option<String>,
    /// JSON paths whose values differ (at most [`FIELD_LIMIT`]).
    pub differing_fields: Vec<String>,
}

/// `repro-report.json`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub image: String,
    /// `a-from-cache` or `twice`.
    pub mode: &'static str,
    /// `identical` or `differs`.
    pub result: &'static str,
    pub builds: BTreeMap<String, BuildEnv>,
    pub manifest: ManifestResult,
    pub artefacts: Vec<ArtefactResult>,
    pub files: Vec<FileResult>,
    pub ignored: Vec<Ignored>,
    /// Package version changes between the rootfs package lists (the Debian archive moving).
    pub rootfs_package_changes: Vec<String>,
}

/// Pair the artefacts of two manifests by role (sorted by role).
pub fn compare_artefacts(a: &[Artefact], b: &[Artefact]) -> Vec<ArtefactResult> {
    let by_role = |v: &[Artefact]| -> BTreeMap<String, Artefact> { v.iter().map(|x| (x.role.clone(), x.clone())).collect() };
    let (ma, mb) = (by_role(a), by_role(b));
    let roles: BTreeSet<&String> = ma.keys().chain(mb.keys()).collect();
    roles
        .into_iter()
        .map(|r| {
            let (x, y) = (ma.get(r).cloned(), mb.get(r).cloned());
            ArtefactResult { role: r.clone(), identical: x.is_some() && x == y, a: x, b: y }
        })
        .collect()
}

/// JSON paths (`shapes[0].snp`, `verity.root_hash`) where `a` and `b` differ, depth first,
/// at most `limit`.
pub fn json_diff(a: &Value, b: &Value, limit: usize) -> Vec<String> {
    fn walk(a: &Value, b: &Value, path: &str, out: &mut Vec<String>, limit: usize) {
        if out.len() >= limit || a == b {
            return;
        }
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                for k in keys {
                    let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                    walk(x.get(k).unwrap_or(&Value::Null), y.get(k).unwrap_or(&Value::Null), &p, out, limit);
                }
            }
            (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
                for (i, (u, v)) in x.iter().zip(y).enumerate() {
                    walk(u, v, &format!("{path}[{i}]"), out, limit);
                }
            }
            _ => out.push(if path.is_empty() { "(root)".into() } else { path.into() }),
        }
    }
    let mut out = Vec::new();
    walk(a, b, "", &mut out, limit);
    out
}

/// Changes between two mkosi package manifests (`packages: [{name, version}]`):
/// `name: va -> vb`, `+name vb`, `-name va`.
pub fn package_changes(a: &Value, b: &Value) -> Vec<String> {
    let list = |m: &Value| -> BTreeMap<String, String> {
        m["packages"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .filter_map(|p| Some((p["name"].as_str()?.to_string(), p["version"].as_str().unwrap_or("?").to_string())))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (la, lb) = (list(a), list(b));
    let names: BTreeSet<&String> = la.keys().chain(lb.keys()).collect();
    names
        .into_iter()
        .filter_map(|n| match (la.get(n), lb.get(n)) {
            (Some(x), Some(y)) if x != y => Some(format!("{n}: {x} -> {y}")),
            (Some(x), None) => Some(format!("-{n} {x}")),
            (None, Some(y)) => Some(format!("+{n} {y}")),
            _ => None,
        })
        .collect()
}

/// Size and sha256 of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    pub size: u64,
    pub sha256: String,
}

/// Regular files under `dir`, by `/`-separated relative path. Other file types are an error.
pub fn list_files(dir: &Path) -> Result<BTreeMap<String, FileInfo>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("listing {}", d.display()))? {
            let p = e.with_context(|| format!("listing {}", d.display()))?.path();
            let md = p.symlink_metadata().with_context(|| format!("stat {}", p.display()))?;
            if md.is_dir() {
                todo.push(p);
                continue;
            }
            anyhow::ensure!(md.is_file(), "{}: not a regular file (build outputs are plain files)", p.display());
            let rel = p.strip_prefix(dir).expect("under dir").to_string_lossy().replace('\\', "/");
            out.insert(rel, FileInfo { size: md.len(), sha256: tools::sha256_file(&p)? });
        }
    }
    Ok(out)
}

/// Compare the output directories of two builds (times and build environments left empty).
pub fn compare_outputs(a_dir: &Path, b_dir: &Path) -> Result<Report> {
    let read_manifest = |d: &Path| -> Result<(Vec<u8>, Manifest)> {
        let p = d.join(cvm_manifest::FILE_NAME);
        let bytes = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
        let m = Manifest::from_bytes(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
        Ok((bytes, m))
    };
    let (a_bytes, a_manifest) = read_manifest(a_dir)?;
    let (b_bytes, b_manifest) = read_manifest(b_dir)?;
    let mut report = Report::default();
    let (va, vb): (Value, Value) = (serde_json::from_slice(&a_bytes)?, serde_json::from_slice(&b_bytes)?);
    report.manifest = ManifestResult {
        identical: a_bytes == b_bytes,
        sha256_a: Some(sha256_hex(&a_bytes)),
        sha256_b: Some(sha256_hex(&b_bytes)),
        differing_fields: json_diff(&va, &vb, FIELD_LIMIT),
    };
    report.artefacts = compare_artefacts(&a_manifest.artefacts, &b_manifest.artefacts);

    let (la, lb) = (list_files(a_dir)?, list_files(b_dir)?);
    let listed_in_a: BTreeSet<&str> = a_manifest
        .artefacts
        .iter()
        .map(|x| x.path.as_str())
        .chain([cvm_manifest::FILE_NAME, crate::build_image::ENVELOPE])
        .collect();
    let paths: BTreeSet<&String> = la.keys().chain(lb.keys()).filter(|p| p.as_str() != REPORT).collect();
    for p in paths {
        let (x, y) = (la.get(p), lb.get(p));
        let status = match (x, y) {
            (Some(_), None) if !listed_in_a.contains(p.as_str()) => {
                report.ignored.push(Ignored { path: p.clone(), reason: "only in A and not in A's manifest (stale from an earlier build)".into() });
                continue;
            }
            (Some(_), None) => FileStatus::OnlyInA,
            (None, _) => FileStatus::OnlyInB,
            (Some(x), Some(y)) if x == y => FileStatus::Identical,
            _ => FileStatus::Differs,
        };
        let first_difference = if status == FileStatus::Differs {
            let open = |d: &Path| std::fs::File::open(d.join(p)).with_context(|| format!("opening {}", d.join(p).display()));
            first_difference(open(a_dir)?, open(b_dir)?).with_context(|| format!("comparing {p}"))?
        } else {
            None
        };
        report.files.push(FileResult {
            path: p.clone(),
            status,
            first_difference,
            size_a: x.map(|i| i.size),
            size_b: y.map(|i| i.size),
            sha256_a: x.map(|i| i.sha256.clone()),
            sha256_b: y.map(|i| i.sha256.clone()),
        });
    }
    if let (Some(pa), Some(pb)) = (a_manifest.artefact("rootfs-packages"), b_manifest.artefact("rootfs-packages")) {
        if pa.sha256 != pb.sha256 {
            let read = |d: &Path, rel: &str| -> Result<Value> {
                let p = d.join(rel);
                serde_json::from_slice(&std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?)
                    .with_context(|| format!("parsing {}", p.display()))
            };
            report.rootfs_package_changes = package_changes(&read(a_dir, &pa.path)?, &read(b_dir, &pb.path)?);
        }
    }
    let same = report.manifest.identical
        && report.artefacts.iter().all(|x| x.identical)
        && report.files.iter().all(|f| f.status == FileStatus::Identical);
    report.result = if same { "identical" } else { "differs" };
    Ok(report)
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// One line per compared file, details for every difference.
fn print_differences(r: &Report) {
    for f in &r.files {
        let short = |s: &Option<String>| s.as_deref().map_or("-".to_string(), |s| s[..16].to_string());
        match f.status {
            FileStatus::Identical => eprintln!("    identical  {} ({} bytes, {})", f.path, f.size_a.unwrap_or(0), short(&f.sha256_a)),
            FileStatus::Differs => eprintln!(
                "    DIFFERS    {}: first difference at byte {} (0x{:x}); sizes A {} B {}; sha256 A {} B {}",
                f.path,
                f.first_difference.unwrap_or(0),
                f.first_difference.unwrap_or(0),
                f.size_a.unwrap_or(0),
                f.size_b.unwrap_or(0),
                short(&f.sha256_a),
                short(&f.sha256_b)
            ),
            FileStatus::OnlyInA => eprintln!("    ONLY IN A  {} (build B did not write it)", f.path),
            FileStatus::OnlyInB => eprintln!("    ONLY IN B  {} (build A has no such file)", f.path),
        }
    }
    for i in &r.ignored {
        eprintln!("    ignored    {}: {}", i.path, i.reason);
    }
    for x in r.artefacts.iter().filter(|x| !x.identical) {
        let show = |v: &Option<Artefact>| v.as_ref().map_or("absent".to_string(), |v| format!("{} {}", v.path, &v.sha256[..16]));
        eprintln!("    manifest role {}: A {} / B {}", x.role, show(&x.a), show(&x.b));
    }
    if !r.manifest.identical {
        eprintln!("    manifest.json differs in: {}", r.manifest.differing_fields.join(", "));
    }
    if !r.rootfs_package_changes.is_empty() {
        eprintln!(
            "    the rootfs package lists differ ({} changes): the Debian archive moved between the builds (not pinned yet, docs/reproducibility.md):\n      {}",
            r.rootfs_package_changes.len(),
            r.rootfs_package_changes.join("\n      ")
        );
    }
}

/// diffoscope on the smallest differing files, when installed (full reports in `dir`).
/// diffoscope on the smallest differing files; each run gets at most the time left before
/// `deadline` (and [`DIFFOSCOPE_SECONDS`]), none once it has passed.
fn explain_with_diffoscope(sh: &Shell, r: &Report, a_dir: &Path, b_dir: &Path, dir: &Path, deadline: Option<Instant>) -> Result<()> {
    // Smallest first: a manifest or package list explains more per line than a disk image.
    let mut differing: Vec<&FileResult> = r.files.iter().filter(|f| f.status == FileStatus::Differs).collect();
    differing.sort_by_key(|f| (f.size_a.unwrap_or(0).max(f.size_b.unwrap_or(0)), f.path.clone()));
    if differing.is_empty() {
        return Ok(());
    }
    if !diffoscope::available(sh) {
        eprintln!("    diffoscope is not installed (`cargo xtask install test`): only the offsets above");
        return Ok(());
    }
    for f in differing.iter().take(DIFFOSCOPE_FILES) {
        let left = deadline.map_or(u64::MAX, |d| d.saturating_duration_since(Instant::now()).as_secs());
        let seconds = u32::try_from(left).unwrap_or(u32::MAX).min(DIFFOSCOPE_SECONDS);
        if seconds < 10 {
            eprintln!("    diffoscope skipped for {} and later files: the time limit is (nearly) reached", f.path);
            break;
        }
        let text = dir.join(format!("{}.txt", f.path.replace('/', "_")));
        let verdict = diffoscope::compare(sh, &a_dir.join(&f.path), &b_dir.join(&f.path), &text, seconds, 4 << 20)?;
        let body = std::fs::read(&text).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
        eprintln!("    diffoscope {} ({verdict:?}; full report {}):", f.path, text.display());
        for line in body.lines().take(DIFFOSCOPE_LINES) {
            eprintln!("      {line}");
        }
        if body.lines().count() > DIFFOSCOPE_LINES {
            eprintln!("      ... ({} lines in all)", body.lines().count());
        }
    }
    if differing.len() > DIFFOSCOPE_FILES {
        eprintln!("    (diffoscope ran on the smallest {DIFFOSCOPE_FILES} of {} differing files)", differing.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that returns at most `n` bytes per call (short reads at odd boundaries).
    struct Trickle<'a>(&'a [u8], usize);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.len().min(self.1).min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn first_difference_offsets() {
        let fd = |a: &[u8], b: &[u8]| first_difference(a, b).unwrap();
        assert_eq!(fd(b"", b""), None);
        assert_eq!(fd(b"abc", b"abc"), None);
        assert_eq!(fd(b"abc", b"xbc"), Some(0));
        assert_eq!(fd(b"abc", b"abd"), Some(2));
        assert_eq!(fd(b"abc", b"abcd"), Some(3), "a prefix differs at its length");
        assert_eq!(fd(b"abcd", b"ab"), Some(2));
        assert_eq!(fd(b"", b"a"), Some(0));
        // Beyond the 64 KiB buffer, with short reads of different sizes on each side.
        let a = vec![7u8; 200_000];
        let mut b = a.clone();
        assert_eq!(first_difference(Trickle(&a, 4093), Trickle(&b, 65_537)).unwrap(), None);
        b[150_001] = 8;
        assert_eq!(first_difference(Trickle(&a, 4093), Trickle(&b, 65_537)).unwrap(), Some(150_001));
        assert_eq!(first_difference(Trickle(&a, 1), Trickle(&b[..150_000], 3)).unwrap(), Some(150_000));
    }

    fn artefact(role: &str, sha: char) -> Artefact {
        Artefact { role: role.into(), path: format!("{role}/f"), sha256: sha.to_string().repeat(64), size: 1 }
    }

    #[test]
    fn artefacts_pair_by_role() {
        let a = [artefact("kernel", 'a'), artefact("disk", 'b'), artefact("esp", 'c')];
        let b = [artefact("disk", 'b'), artefact("kernel", 'f'), artefact("verity", 'd')];
        let r = compare_artefacts(&a, &b);
        let got: Vec<(&str, bool, bool, bool)> = r.iter().map(|x| (x.role.as_str(), x.identical, x.a.is_some(), x.b.is_some())).collect();
        assert_eq!(got, [("disk", true, true, true), ("esp", false, true, false), ("kernel", false, true, true), ("verity", false, false, true)]);
    }

    #[test]
    fn json_diff_names_paths() {
        let a = serde_json::json!({"cmdline": "x", "shapes": [{"snp": "1"}, {"snp": "2"}], "verity": {"root_hash": "aa"}, "n": [1]});
        let b = serde_json::json!({"cmdline": "x", "shapes": [{"snp": "1"}, {"snp": "3"}], "verity": {"root_hash": "bb", "salt": "s"}, "n": [1, 2]});
        assert_eq!(json_diff(&a, &b, 10), ["n", "shapes[1].snp", "verity.root_hash", "verity.salt"]);
        assert_eq!(json_diff(&a, &b, 2).len(), 2);
        assert!(json_diff(&a, &a, 10).is_empty());
        assert_eq!(json_diff(&serde_json::json!(1), &serde_json::json!(2), 10), ["(root)"]);
    }

    #[test]
    fn package_changes_lists_versions() {
        let a = serde_json::json!({"packages": [{"name": "bash", "version": "5.2-1"}, {"name": "old", "version": "1"}, {"name": "same", "version": "2"}]});
        let b = serde_json::json!({"packages": [{"name": "bash", "version": "5.2-2"}, {"name": "new", "version": "3"}, {"name": "same", "version": "2"}]});
        assert_eq!(package_changes(&a, &b), ["bash: 5.2-1 -> 5.2-2", "+new 3", "-old 1"]);
    }

    #[test]
    fn checkout_modes_follow_umask() {
        assert_eq!(checkout_mode(false, 0o022), 0o644);
        assert_eq!(checkout_mode(true, 0o022), 0o755);
        assert_eq!(checkout_mode(false, 0o077), 0o600);
        assert_eq!(checkout_mode(true, 0o077), 0o700);
    }

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("xtask-verify-repro-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// Write an output directory: files plus a manifest listing `listed` of them.
    fn out_dir(dir: &Path, files: &[(&str, &[u8])], listed: &[(&str, &str)]) {
        for (rel, bytes) in files {
            let p = dir.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, bytes).unwrap();
        }
        let mut m = Manifest::new(cvm_manifest::ImageInfo { name: "t".into(), version: "1".into(), test_image: true }, "c".into());
        for (role, rel) in listed {
            let bytes = std::fs::read(dir.join(rel)).unwrap();
            m.artefacts.push(Artefact { role: (*role).into(), path: (*rel).into(), sha256: sha256_hex(&bytes), size: bytes.len() as u64 });
        }
        std::fs::write(dir.join(cvm_manifest::FILE_NAME), m.to_bytes().unwrap()).unwrap();
    }

    #[test]
    fn outputs_identical_then_each_kind_of_difference() {
        let root = tmpdir("cmp");
        let (a, b) = (root.join("a"), root.join("b"));
        let files: &[(&str, &[u8])] = &[("kernel/bzImage", b"kernel"), ("disk/disk.raw", b"disk")];
        let listed = [("kernel", "kernel/bzImage"), ("disk", "disk/disk.raw")];
        out_dir(&a, files, &listed);
        out_dir(&b, files, &listed);
        std::fs::write(a.join(REPORT), b"old report").unwrap();
        let r = compare_outputs(&a, &b).unwrap();
        assert_eq!(r.result, "identical", "{r:?}");
        assert_eq!(r.files.len(), 3, "two artefacts and manifest.json; the report is not compared");

        // A stale file only in A is ignored; one only in B is a difference.
        std::fs::write(a.join("kernel/old-vmlinuz"), b"stale").unwrap();
        let r = compare_outputs(&a, &b).unwrap();
        assert_eq!((r.result, r.ignored.len()), ("identical", 1));
        std::fs::write(b.join("kernel/extra"), b"new").unwrap();
        let r = compare_outputs(&a, &b).unwrap();
        assert_eq!(r.result, "differs");
        assert!(r.files.iter().any(|f| f.path == "kernel/extra" && f.status == FileStatus::OnlyInB));
        std::fs::remove_file(b.join("kernel/extra")).unwrap();

        // A differing artefact: named with its offset, and in the manifest's fields and roles.
        out_dir(&b, &[("kernel/bzImage", b"kernEL")], &[("kernel", "kernel/bzImage"), ("disk", "disk/disk.raw")]);
        let r = compare_outputs(&a, &b).unwrap();
        assert_eq!(r.result, "differs");
        let k = r.files.iter().find(|f| f.path == "kernel/bzImage").unwrap();
        assert_eq!((&k.status, k.first_difference, k.size_a, k.size_b), (&FileStatus::Differs, Some(4), Some(6), Some(6)));
        assert!(!r.manifest.identical);
        assert_eq!(r.manifest.differing_fields, ["artefacts[1].sha256"]);
        assert_eq!(r.artefacts.iter().filter(|x| !x.identical).map(|x| x.role.as_str()).collect::<Vec<_>>(), ["kernel"]);

        // A listed artefact missing in B.
        out_dir(&b, &[("kernel/bzImage", b"kernel")], &[("kernel", "kernel/bzImage")]);
        std::fs::remove_file(b.join("disk/disk.raw")).unwrap();
        let r = compare_outputs(&a, &b).unwrap();
        assert!(r.files.iter().any(|f| f.path == "disk/disk.raw" && f.status == FileStatus::OnlyInA));
        assert!(r.artefacts.iter().any(|x| x.role == "disk" && x.b.is_none()));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
