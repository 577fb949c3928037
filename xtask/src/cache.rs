//! The content-addressed stage cache: `<cache_dir>/<stage>/<key>/`.
//!
//! A stage computes its key *before* it runs, as sha256 over every labelled input (source
//! archive digests, patch and fragment contents, tool versions, flags, a recipe version),
//! never from timestamps. An entry is built in a temporary sibling directory and renamed into
//! place, so a present entry is always complete; `inputs.json` in the entry lists what went
//! into the key, to answer "why did this rebuild?".

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Collects the labelled inputs of one stage and hashes them into a [`Key`].
pub struct KeyBuilder {
    inputs: Vec<(String, String)>,
}

/// A finished cache key: the hex digest and the inputs it was computed from.
#[derive(Debug, Clone)]
pub struct Key {
    pub hex: String,
    pub inputs: Vec<(String, String)>,
}

impl KeyBuilder {
    /// Start a key for `stage`; `recipe` is bumped by hand when the build steps change.
    pub fn new(stage: &str, recipe: u32) -> KeyBuilder {
        KeyBuilder { inputs: vec![("stage".into(), stage.into()), ("recipe".into(), recipe.to_string())] }
    }

    /// A short textual input (a version string, a flag), hashed as is.
    pub fn text(mut self, label: &str, value: &str) -> KeyBuilder {
        self.inputs.push((label.into(), value.into()));
        self
    }

    /// A binary or long input, recorded by its sha256.
    pub fn bytes(mut self, label: &str, value: &[u8]) -> KeyBuilder {
        self.inputs.push((label.into(), format!("sha256:{}", hex::encode(Sha256::digest(value)))));
        self
    }

    /// A file's contents, recorded by its sha256.
    pub fn file(self, label: &str, path: &Path) -> Result<KeyBuilder> {
        let bytes = std::fs::read(path).with_context(|| format!("reading cache input {}", path.display()))?;
        Ok(self.bytes(label, &bytes))
    }

    pub fn finish(self) -> Key {
        let mut h = Sha256::new();
        for (label, value) in &self.inputs {
            // Length-prefixed so that no two different input lists hash alike.
            h.update((label.len() as u64).to_le_bytes());
            h.update(label.as_bytes());
            h.update((value.len() as u64).to_le_bytes());
            h.update(value.as_bytes());
        }
        Key { hex: hex::encode(h.finalize()), inputs: self.inputs }
    }
}

/// Whether an entry came from the cache or was just built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Hit,
    Built,
}

/// A cache rooted at one directory.
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    /// The user's cache (`tools::cache_dir()`).
    pub fn open() -> Result<Cache> {
        Ok(Cache { root: crate::tools::cache_dir()? })
    }

    #[cfg(test)]
    pub fn at(root: &Path) -> Cache {
        Cache { root: root.to_path_buf() }
    }

    pub fn entry_dir(&self, stage: &str, key: &Key) -> PathBuf {
        self.root.join(stage).join(&key.hex)
    }

    /// The complete entry for `key`, if there is one (never builds).
    pub fn lookup(&self, stage: &str, key: &Key) -> Option<PathBuf> {
        Some(self.entry_dir(stage, key)).filter(|d| d.is_dir())
    }

    /// Return the entry for `key`, building it with `build(tmp_dir)` on a miss (or always when
    /// `rebuild`). Prints hit/miss. With `rebuild` and an existing entry, the new output
    /// replaces it and every file that differs is reported (a reproducibility check).
    pub fn get_or_build(
        &self,
        stage: &str,
        key: &Key,
        rebuild: bool,
        build: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<(PathBuf, Outcome)> {
        let dir = self.entry_dir(stage, key);
        let short = &key.hex[..16];
        if dir.is_dir() && !rebuild {
            eprintln!("    cache hit: {stage} {short} ({})", dir.display());
            return Ok((dir, Outcome::Hit));
        }
        if rebuild {
            eprintln!("    cache bypassed (--no-cache): {stage} {short}, rebuilding");
        } else {
            eprintln!("    cache miss: {stage} {short}, building");
        }
        let parent = self.root.join(stage);
        std::fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
        let tmp = parent.join(format!(".tmp-{}-{}", key.hex, std::process::id()));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).with_context(|| format!("removing stale {}", tmp.display()))?;
        }
        std::fs::create_dir(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        if let Err(e) = build(&tmp) {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        let inputs: serde_json::Map<String, serde_json::Value> =
            key.inputs.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect();
        let json = serde_json::to_vec_pretty(&serde_json::json!({ "key": key.hex, "inputs": inputs }))?;
        std::fs::write(tmp.join("inputs.json"), json).with_context(|| format!("writing {}/inputs.json", tmp.display()))?;
        if dir.is_dir() {
            for line in compare_dirs(&dir, &tmp)? {
                eprintln!("    {line}");
            }
            let old = parent.join(format!(".old-{}-{}", key.hex, std::process::id()));
            std::fs::rename(&dir, &old).with_context(|| format!("moving aside {}", dir.display()))?;
            std::fs::rename(&tmp, &dir).with_context(|| format!("renaming {} to {}", tmp.display(), dir.display()))?;
            std::fs::remove_dir_all(&old).with_context(|| format!("removing {}", old.display()))?;
        } else {
            std::fs::rename(&tmp, &dir).with_context(|| format!("renaming {} to {}", tmp.display(), dir.display()))?;
        }
        eprintln!("    cached: {}", dir.display());
        Ok((dir, Outcome::Built))
    }
}

/// Compare the regular files of two entry directories by sha256 (`inputs.json` excluded):
/// one line per file, `identical` or `DIFFERS`.
pub fn compare_dirs(old: &Path, new: &Path) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(new)
        .with_context(|| format!("listing {}", new.display()))?
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n != "inputs.json")
        .collect();
    names.sort();
    for n in names {
        let (a, b) = (old.join(&n), new.join(&n));
        if !b.is_file() {
            continue;
        }
        let nb = crate::tools::sha256_file(&b)?;
        let verdict = match a.is_file().then(|| crate::tools::sha256_file(&a)).transpose()? {
            Some(na) if na == nb => format!("reproducible: {} identical to the cached entry ({})", n.to_string_lossy(), &nb[..16]),
            Some(na) => format!("NOT reproducible: {} differs from the cached entry ({} vs {})", n.to_string_lossy(), &na[..16], &nb[..16]),
            None => format!("new file {} ({})", n.to_string_lossy(), &nb[..16]),
        };
        lines.push(verdict);
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("xtask-cache-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn key_depends_on_every_input_and_its_label() {
        let k = |a: &str, b: &[u8]| KeyBuilder::new("s", 1).text("a", a).bytes("b", b).finish().hex;
        assert_eq!(k("x", b"y"), k("x", b"y"));
        assert_ne!(k("x", b"y"), k("x", b"z"));
        assert_ne!(k("x", b"y"), k("X", b"y"));
        let relabelled = KeyBuilder::new("s", 1).text("A", "x").bytes("b", b"y").finish().hex;
        assert_ne!(k("x", b"y"), relabelled);
        assert_ne!(KeyBuilder::new("s", 1).finish().hex, KeyBuilder::new("s", 2).finish().hex);
        // Concatenation ambiguity: ("ab","c") vs ("a","bc").
        let k1 = KeyBuilder::new("s", 1).text("ab", "c").finish().hex;
        let k2 = KeyBuilder::new("s", 1).text("a", "bc").finish().hex;
        assert_ne!(k1, k2);
    }

    #[test]
    fn miss_then_hit_and_failed_build_leaves_nothing() {
        let root = tmpdir("hit");
        let cache = Cache::at(&root);
        let key = KeyBuilder::new("t", 1).text("x", "1").finish();
        let failed = cache.get_or_build("t", &key, false, |d| {
            std::fs::write(d.join("half"), b"x")?;
            anyhow::bail!("tool failed")
        });
        assert!(failed.is_err());
        assert!(!cache.entry_dir("t", &key).exists(), "a failed build must not leave an entry");
        let mut runs = 0;
        let (dir, o) = cache
            .get_or_build("t", &key, false, |d| {
                runs += 1;
                std::fs::write(d.join("out"), b"artefact").map_err(Into::into)
            })
            .unwrap();
        assert_eq!(o, Outcome::Built);
        assert_eq!(std::fs::read(dir.join("out")).unwrap(), b"artefact");
        assert!(dir.join("inputs.json").is_file());
        let (dir2, o2) = cache.get_or_build("t", &key, false, |_| panic!("must not rebuild on a hit")).unwrap();
        assert_eq!((dir2, o2), (dir.clone(), Outcome::Hit));
        assert_eq!(runs, 1);
        // A forced rebuild replaces the entry.
        let (_, o3) = cache.get_or_build("t", &key, true, |d| std::fs::write(d.join("out"), b"v2").map_err(Into::into)).unwrap();
        assert_eq!(o3, Outcome::Built);
        assert_eq!(std::fs::read(dir.join("out")).unwrap(), b"v2");
        let leftovers: Vec<_> = std::fs::read_dir(root.join("t")).unwrap().flatten().filter(|e| e.file_name().to_string_lossy().starts_with('.')).collect();
        assert!(leftovers.is_empty(), "temp dirs left behind");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn compare_dirs_reports_differences() {
        let root = tmpdir("cmp");
        let (a, b) = (root.join("a"), root.join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(a.join("same"), b"1").unwrap();
        std::fs::write(b.join("same"), b"1").unwrap();
        std::fs::write(a.join("diff"), b"1").unwrap();
        std::fs::write(b.join("diff"), b"2").unwrap();
        let lines = compare_dirs(&a, &b).unwrap();
        assert!(lines[0].starts_with("NOT reproducible: diff"), "{lines:?}");
        assert!(lines[1].starts_with("reproducible: same"), "{lines:?}");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
