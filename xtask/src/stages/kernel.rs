//! Kernel stage: Debian's pinned `linux-source-6.12` → `bzImage` (EFI stub) built from
//! `make tinyconfig` + `kernel-config/base.config` + `kernel-config/fragments/*.config`.
//!
//! Steps: download the .deb (`apt-get download`, sha256 checked against the pin), unpack the
//! tarball inside it to `/var/tmp/cvm-build/kernel/src` (reused while the pin is unchanged),
//! configure in a fresh `/var/tmp/cvm-build/kernel/build` (`tinyconfig`, `merge_config.sh -m`,
//! `olddefconfig`), check that every option the fragments ask for landed (merge_config
//! drops unmet options silently), build `bzImage` with the reproducible kbuild environment
//! of [`crate::tools::make`]. Cache entry: `bzImage`, `config`, `fragments.txt`.
//!
//! The cache key covers the .deb sha256, the contents and names of base + fragments, the
//! toolchain versions (gcc, make, ld, flex, bison), the kbuild environment and [`RECIPE`].

use crate::cache::{Cache, Key, KeyBuilder, Outcome};
use crate::progress::Stage;
use crate::tools::{apt, make, tar};
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use xshell::Shell;

/// Bump when the steps below change in a way that changes outputs.
const RECIPE: u32 = 1;

/// The pinned inputs of the kernel stage (the image spec's `[kernel]` section maps onto it).
#[derive(Debug, Clone)]
pub struct KernelInputs {
    /// Debian binary package carrying the source tarball, e.g. `linux-source-6.12`.
    pub deb_name: String,
    pub version: String,
    /// sha256 of the `.deb`.
    pub sha256: String,
    /// Config fragments merged in order after `tinyconfig` (base first).
    pub fragments: Vec<PathBuf>,
}

#[derive(serde::Deserialize)]
struct SourcePin {
    deb_name: String,
    version: String,
    sha256: String,
}

impl KernelInputs {
    /// The in-repo defaults: `kernel-config/source.toml`, `base.config`, then
    /// `fragments/*.config` in name order.
    pub fn from_repo(root: &Path) -> Result<KernelInputs> {
        let dir = root.join("kernel-config");
        let pin_path = dir.join("source.toml");
        let text = std::fs::read_to_string(&pin_path).with_context(|| format!("reading {}", pin_path.display()))?;
        let pin: SourcePin = toml::from_str(&text).with_context(|| format!("parsing {}", pin_path.display()))?;
        let mut fragments = vec![dir.join("base.config")];
        let fdir = dir.join("fragments");
        let mut more: Vec<PathBuf> = std::fs::read_dir(&fdir)
            .with_context(|| format!("listing {}", fdir.display()))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "config"))
            .collect();
        more.sort();
        fragments.extend(more);
        Ok(KernelInputs { deb_name: pin.deb_name, version: pin.version, sha256: pin.sha256, fragments })
    }
}

/// Where the built kernel is.
#[derive(Debug, Clone)]
pub struct KernelOutputs {
    pub dir: PathBuf,
    pub bz_image: PathBuf,
    pub config: PathBuf,
    pub outcome: Outcome,
}

/// Run the kernel stage (or take it from the cache).
pub fn build(sh: &Shell, inputs: &KernelInputs, rebuild: bool) -> Result<KernelOutputs> {
    let mut st = Stage::new("kernel", 5);
    st.step(&format!("fetch {}={}", inputs.deb_name, inputs.version));
    let deb = apt::download(sh, &super::downloads_dir()?, &inputs.deb_name, &inputs.version)?;
    super::check_sha256(&deb, &inputs.sha256)?;

    st.step("cache key");
    let key = cache_key(sh, inputs)?;
    let cache = Cache::open()?;
    let root = Path::new(super::BUILD_ROOT).join("kernel");
    let (dir, outcome) = cache.get_or_build("kernel", &key, rebuild, |out| {
        let _lock = super::lock("kernel")?;
        let src = root.join("src");
        st.step("unpack source");
        unpack(sh, &deb, &inputs.sha256, &root, &src)?;
        st.step("configure (tinyconfig + fragments + olddefconfig, then check)");
        let build = root.join("build");
        configure(sh, &src, &build, &inputs.fragments, &root.join("logs"))?;
        st.step(&format!("make bzImage -j{}", make::jobs()));
        make::kbuild(sh, &src, &build, &["bzImage"], &root.join("logs/bzImage.log"), true)?;
        super::copy(&build.join("arch/x86/boot/bzImage"), &out.join("bzImage"))?;
        super::copy(&build.join(".config"), &out.join("config"))?;
        let mut list = String::new();
        for f in &inputs.fragments {
            list += &format!("{}  {}\n", crate::tools::sha256_file(f)?, f.file_name().unwrap_or_default().to_string_lossy());
        }
        std::fs::write(out.join("fragments.txt"), list).with_context(|| format!("writing {}/fragments.txt", out.display()))?;
        Ok(())
    })?;
    let bz_image = dir.join("bzImage");
    st.done(&format!("{} ({})", bz_image.display(), &crate::tools::sha256_file(&bz_image)?[..16]));
    Ok(KernelOutputs { config: dir.join("config"), bz_image, dir, outcome })
}

/// The kernel stage's cache key (computed before anything is built).
pub fn cache_key(sh: &Shell, inputs: &KernelInputs) -> Result<Key> {
    let mut kb = KeyBuilder::new("kernel", RECIPE).text("deb", &format!("{}={} sha256:{}", inputs.deb_name, inputs.version, inputs.sha256));
    for f in &inputs.fragments {
        let name = f.file_name().unwrap_or_default().to_string_lossy().to_string();
        kb = kb.file(&format!("fragment {name}"), f)?;
    }
    for (prog, v) in make::toolchain_versions(sh)? {
        kb = kb.text(&format!("tool {prog}"), &v);
    }
    for (k, v) in make::KBUILD_ENV {
        kb = kb.text(&format!("env {k}"), v);
    }
    Ok(kb.finish())
}

/// The cached build for `inputs`, without building: `Err` naming `cargo xtask build-image`
/// when there is none.
pub fn cached(sh: &Shell, inputs: &KernelInputs) -> Result<PathBuf> {
    let key = cache_key(sh, inputs)?;
    Cache::open()?.lookup("kernel", &key).with_context(|| {
        format!("no kernel in the cache for the current kernel-config/ (key {}): run `cargo xtask build-image` first", &key.hex[..16])
    })
}

/// Unpack the source tarball from the .deb into `src`, unless `src` already holds this pin.
fn unpack(sh: &Shell, deb: &Path, sha256: &str, root: &Path, src: &Path) -> Result<()> {
    let stamp = root.join("src.stamp");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(sha256) && src.join("Makefile").is_file() {
        eprintln!("    source tree {} is current", src.display());
        return Ok(());
    }
    let _ = std::fs::remove_file(&stamp);
    for d in [src, &root.join("deb")] {
        if d.exists() {
            std::fs::remove_dir_all(d).with_context(|| format!("removing {}", d.display()))?;
        }
    }
    let debdir = root.join("deb");
    apt::extract(sh, deb, &debdir)?;
    let usr_src = debdir.join("usr/src");
    let tarball = std::fs::read_dir(&usr_src)
        .with_context(|| format!("listing {}", usr_src.display()))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".tar.xz"))
        .with_context(|| format!("no .tar.xz in {}", usr_src.display()))?;
    tar::extract(sh, &tarball, src, 1)?;
    std::fs::remove_dir_all(&debdir).with_context(|| format!("removing {}", debdir.display()))?;
    std::fs::write(&stamp, sha256).with_context(|| format!("writing {}", stamp.display()))?;
    Ok(())
}

/// tinyconfig + merge + olddefconfig in a fresh `build`, then [`unmet_options`] as a hard error.
fn configure(sh: &Shell, src: &Path, build: &Path, fragments: &[PathBuf], logs: &Path) -> Result<()> {
    if build.exists() {
        std::fs::remove_dir_all(build).with_context(|| format!("removing {}", build.display()))?;
    }
    std::fs::create_dir_all(build).with_context(|| format!("creating {}", build.display()))?;
    make::kbuild(sh, src, build, &["tinyconfig"], &logs.join("tinyconfig.log"), false)?;
    let frags: Vec<&Path> = fragments.iter().map(PathBuf::as_path).collect();
    make::merge_config(sh, src, build, &frags, &logs.join("merge_config.log"))?;
    make::kbuild(sh, src, build, &["olddefconfig"], &logs.join("olddefconfig.log"), false)?;
    let mut requested = Vec::new();
    for f in fragments {
        let text = std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        let name = f.file_name().unwrap_or_default().to_string_lossy().to_string();
        requested.extend(parse_fragment(&text).into_iter().map(|(o, w)| (o, w, name.clone())));
    }
    let cfg_path = build.join(".config");
    let config = std::fs::read_to_string(&cfg_path).with_context(|| format!("reading {}", cfg_path.display()))?;
    let unmet = unmet_options(&requested, &config);
    if !unmet.is_empty() {
        let list: Vec<String> = unmet.iter().map(ToString::to_string).collect();
        anyhow::bail!(
            "{} requested kernel option(s) did not land in {} (a dependency is missing or the option does not exist):\n  {}",
            unmet.len(),
            cfg_path.display(),
            list.join("\n  ")
        );
    }
    eprintln!("    all {} requested options landed in {}", requested.len(), cfg_path.display());
    Ok(())
}

/// What a fragment asks for one option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Want {
    /// `CONFIG_X=value` (`y`, `m`, a number or a quoted string, compared verbatim).
    Value(String),
    /// `# CONFIG_X is not set` (or `CONFIG_X=n`): absent or not set in `.config`.
    Unset,
}

/// An option that did not land.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmet {
    pub option: String,
    pub want: Want,
    /// The value in `.config`, `None` if not set.
    pub got: Option<String>,
    /// The fragment that asked for it (the last one, if several did).
    pub fragment: String,
}

impl std::fmt::Display for Unmet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let want = match &self.want {
            Want::Value(v) => format!("{}={v}", self.option),
            Want::Unset => format!("{} not set", self.option),
        };
        let got = self.got.as_deref().map(|v| format!("={v}")).unwrap_or_else(|| " not set".into());
        write!(f, "{want} (from {}), but .config has {}{got}", self.fragment, self.option)
    }
}

/// Parse a Kconfig fragment or `.config`: `CONFIG_X=v` and `# CONFIG_X is not set` lines, in
/// order; other lines (comments, blanks) are ignored. `=n` is read as [`Want::Unset`].
pub fn parse_fragment(text: &str) -> Vec<(String, Want)> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("# ").and_then(|r| r.strip_suffix(" is not set")) {
            if rest.starts_with("CONFIG_") && !rest.contains(' ') {
                out.push((rest.to_string(), Want::Unset));
            }
        } else if line.starts_with("CONFIG_") {
            if let Some((k, v)) = line.split_once('=') {
                let want = if v == "n" { Want::Unset } else { Want::Value(v.to_string()) };
                out.push((k.to_string(), want));
            }
        }
    }
    out
}

/// The options requested by fragments (`(option, want, fragment)`, in merge order; a later
/// request overrides an earlier one as in merge_config) that `.config` does not satisfy.
pub fn unmet_options(requested: &[(String, Want, String)], config: &str) -> Vec<Unmet> {
    let mut merged: BTreeMap<&str, (&Want, &str)> = BTreeMap::new();
    for (opt, want, frag) in requested {
        merged.insert(opt, (want, frag));
    }
    let set: BTreeMap<String, String> = parse_fragment(config)
        .into_iter()
        .filter_map(|(k, w)| match w {
            Want::Value(v) => Some((k, v)),
            Want::Unset => None,
        })
        .collect();
    let mut unmet = Vec::new();
    for (opt, (want, frag)) in merged {
        let got = set.get(opt).cloned();
        let ok = match want {
            Want::Value(v) => got.as_deref() == Some(v.as_str()),
            Want::Unset => got.is_none(),
        };
        if !ok {
            unmet.push(Unmet { option: opt.to_string(), want: want.clone(), got, fragment: frag.to_string() });
        }
    }
    unmet
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "\
#
# Automatically generated file; DO NOT EDIT.
CONFIG_64BIT=y
CONFIG_EROFS_FS=y
# CONFIG_MODULES is not set
CONFIG_NR_CPUS=64
CONFIG_CMDLINE=\"console=ttyS0\"
";

    fn req(frag: &str, text: &str) -> Vec<(String, Want, String)> {
        parse_fragment(text).into_iter().map(|(o, w)| (o, w, frag.to_string())).collect()
    }

    #[test]
    fn parses_values_unset_and_skips_comments() {
        let p = parse_fragment("# comment\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=n\nCONFIG_D=\"x y\"\n\n# CONFIG_E is something\n");
        assert_eq!(
            p,
            vec![
                ("CONFIG_A".into(), Want::Value("y".into())),
                ("CONFIG_B".into(), Want::Unset),
                ("CONFIG_C".into(), Want::Unset),
                ("CONFIG_D".into(), Want::Value("\"x y\"".into())),
            ]
        );
    }

    #[test]
    fn satisfied_requests_pass() {
        let r = req("a.config", "CONFIG_64BIT=y\n# CONFIG_MODULES is not set\nCONFIG_NR_CPUS=64\nCONFIG_CMDLINE=\"console=ttyS0\"\n# CONFIG_NEVER_MENTIONED is not set\n");
        assert_eq!(unmet_options(&r, CONFIG), vec![]);
    }

    #[test]
    fn a_dropped_option_is_caught() {
        // What merge_config.sh -m does silently: SQUASHFS without MISC_FILESYSTEMS never lands.
        let r = req("fs.config", "CONFIG_EROFS_FS=y\nCONFIG_SQUASHFS=y\n");
        let u = unmet_options(&r, CONFIG);
        assert_eq!(u.len(), 1);
        assert_eq!(u[0].option, "CONFIG_SQUASHFS");
        assert_eq!(u[0].got, None);
        assert_eq!(u[0].to_string(), "CONFIG_SQUASHFS=y (from fs.config), but .config has CONFIG_SQUASHFS not set");
    }

    #[test]
    fn wrong_values_and_unwanted_options_are_caught() {
        let r = req("x.config", "CONFIG_NR_CPUS=8\n# CONFIG_64BIT is not set\nCONFIG_MODULES=y\n");
        let u = unmet_options(&r, CONFIG);
        let names: Vec<&str> = u.iter().map(|u| u.option.as_str()).collect();
        assert_eq!(names, ["CONFIG_64BIT", "CONFIG_MODULES", "CONFIG_NR_CPUS"]);
        assert_eq!(u[2].got.as_deref(), Some("64"));
    }

    #[test]
    fn later_fragment_overrides_earlier_request() {
        let mut r = req("base.config", "CONFIG_NR_CPUS=8\n");
        r.extend(req("late.config", "CONFIG_NR_CPUS=64\n"));
        assert_eq!(unmet_options(&r, CONFIG), vec![]);
    }

    #[test]
    fn repo_fragments_parse_and_request_something() {
        let inputs = KernelInputs::from_repo(&crate::tools::workspace_root()).unwrap();
        assert_eq!(inputs.fragments[0].file_name().unwrap(), "base.config");
        assert!(inputs.fragments.len() >= 8, "base + 7 fragments, got {:?}", inputs.fragments);
        for f in &inputs.fragments {
            let text = std::fs::read_to_string(f).unwrap();
            assert!(text.starts_with("# "), "{} must open with a comment saying what it is for", f.display());
            assert!(!parse_fragment(&text).is_empty(), "{} requests nothing", f.display());
        }
    }
}
