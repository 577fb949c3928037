//! Problems found in a spec, each naming file, line and dotted key
//! (`image-spec/default.toml:12: [kernel].fragments[2]: ...`), and the source map that finds the
//! line of a key in the TOML text (built from `toml_edit` spans).

use std::fmt;

/// One step of a key path: a table key or an index into an array (0-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A path to a value in the spec, in TOML names: `kernel.fragments[2]`, `shape[1].memory`.
///
/// `Display` writes the table part the way the file declares it:
/// `[kernel].fragments[2]`, `[kernel.source].sha256`, `[[shape]][1].memory` (index 0-based),
/// `[image]` for a table itself.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyPath(pub Vec<Seg>);

impl KeyPath {
    /// The empty path (the whole document).
    pub fn root() -> KeyPath {
        KeyPath(Vec::new())
    }

    /// This path plus a key.
    pub fn key(&self, k: &str) -> KeyPath {
        let mut v = self.0.clone();
        v.push(Seg::Key(k.to_string()));
        KeyPath(v)
    }

    /// This path plus an array index.
    pub fn index(&self, i: usize) -> KeyPath {
        let mut v = self.0.clone();
        v.push(Seg::Index(i));
        KeyPath(v)
    }

    /// The path without its last step (`None` for the root).
    pub fn parent(&self) -> Option<KeyPath> {
        let (_, rest) = self.0.split_last()?;
        Some(KeyPath(rest.to_vec()))
    }
}

/// Build a [`KeyPath`] from TOML key names: `path(&["kernel", "cmdline"])`.
pub fn path(keys: &[&str]) -> KeyPath {
    KeyPath(keys.iter().map(|k| Seg::Key(k.to_string())).collect())
}

fn write_segs(f: &mut fmt::Formatter<'_>, segs: &[Seg]) -> fmt::Result {
    for (i, s) in segs.iter().enumerate() {
        match s {
            Seg::Key(k) if i == 0 => write!(f, "{k}")?,
            Seg::Key(k) => write!(f, ".{k}")?,
            Seg::Index(n) => write!(f, "[{n}]")?,
        }
    }
    Ok(())
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let segs = &self.0;
        if segs.is_empty() {
            return f.write_str("(document)");
        }
        // The last key is the one inside a table; a path with one key (`image`, `shape[1]`)
        // is a top-level table, shown as its header.
        let last_key = segs
            .iter()
            .rposition(|s| matches!(s, Seg::Key(_)))
            .unwrap_or(0);
        let (table, tail) = if last_key == 0 {
            (&segs[..], &segs[..0])
        } else {
            segs.split_at(last_key)
        };
        // `[[a.b]][i]` when the table part is an element of an array of tables.
        match table.split_last() {
            Some((Seg::Index(i), keys)) if !keys.is_empty() => {
                f.write_str("[[")?;
                write_segs(f, keys)?;
                write!(f, "]][{i}]")?;
            }
            _ => {
                f.write_str("[")?;
                write_segs(f, table)?;
                f.write_str("]")?;
            }
        }
        match tail.first() {
            None => Ok(()),
            Some(Seg::Key(_)) => {
                f.write_str(".")?;
                write_segs(f, tail)
            }
            Some(Seg::Index(_)) => write_segs(f, tail),
        }
    }
}

/// One problem in a spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The spec file as the caller named it (`image-spec/default.toml`).
    pub file: String,
    /// 1-based line of the key (or of the nearest enclosing table), when known.
    pub line: Option<usize>,
    /// The key the problem is about.
    pub key: KeyPath,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: {}: {}", self.file, l, self.key, self.message),
            None => write!(f, "{}: {}: {}", self.file, self.key, self.message),
        }
    }
}

/// Every problem found in a spec (at least one), one per line in `Display`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SpecErrors(pub Vec<Diagnostic>);

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// Where the spec came from: file name and the byte offset at which each key starts.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub file: String,
    /// Every key, array element and table header with its start offset, in document order.
    starts: Vec<(KeyPath, usize)>,
    /// Offsets at which lines start.
    line_starts: Vec<usize>,
}

impl Origin {
    /// Lines of `text` (no keys yet: see [`Origin::with_keys`]).
    pub(crate) fn new(file: &str, text: &str) -> Origin {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Origin {
            file: file.to_string(),
            starts: Vec::new(),
            line_starts,
        }
    }

    /// Add the keys of `doc`, parsed from this origin's text.
    pub(crate) fn with_keys(mut self, doc: &toml_edit::Table) -> Origin {
        walk_table(&KeyPath::root(), doc, &mut self.starts);
        self
    }

    /// An origin with no source text (a spec built in code).
    pub(crate) fn unnamed(file: &str) -> Origin {
        Origin {
            file: file.to_string(),
            ..Origin::default()
        }
    }

    /// 1-based line of byte offset `offset`.
    pub fn line_of_offset(&self, offset: usize) -> Option<usize> {
        if self.line_starts.is_empty() {
            return None;
        }
        Some(self.line_starts.partition_point(|&s| s <= offset))
    }

    /// Line of `key`, or of its nearest ancestor that appears in the file.
    pub fn line_of(&self, key: &KeyPath) -> Option<usize> {
        let mut k = Some(key.clone());
        while let Some(p) = k {
            if let Some((_, off)) = self.starts.iter().find(|(q, _)| *q == p) {
                return self.line_of_offset(*off);
            }
            k = p.parent();
        }
        None
    }

    /// The key at byte offset `offset`: the deepest key whose start is the last at or before it.
    pub fn key_at(&self, offset: usize) -> KeyPath {
        let best = self
            .starts
            .iter()
            .filter(|(_, s)| *s <= offset)
            .max_by_key(|(p, s)| (*s, p.0.len()));
        best.map(|(p, _)| p.clone()).unwrap_or_default()
    }

    pub(crate) fn diagnostic(&self, key: KeyPath, message: String) -> Diagnostic {
        Diagnostic {
            file: self.file.clone(),
            line: self.line_of(&key),
            key,
            message,
        }
    }
}

fn walk_table(at: &KeyPath, table: &toml_edit::Table, out: &mut Vec<(KeyPath, usize)>) {
    for (k, item) in table.iter() {
        let p = at.key(k);
        if let Some(span) = table.key(k).and_then(|key| key.span()) {
            out.push((p.clone(), span.start));
        }
        walk_item(&p, item, out);
    }
}

fn walk_item(at: &KeyPath, item: &toml_edit::Item, out: &mut Vec<(KeyPath, usize)>) {
    match item {
        toml_edit::Item::Table(t) => {
            if let Some(span) = t.span() {
                out.push((at.clone(), span.start));
            }
            walk_table(at, t, out);
        }
        toml_edit::Item::ArrayOfTables(a) => {
            for (i, t) in a.iter().enumerate() {
                let p = at.index(i);
                if let Some(span) = t.span() {
                    out.push((p.clone(), span.start));
                }
                walk_table(&p, t, out);
            }
        }
        toml_edit::Item::Value(v) => walk_value(at, v, out),
        toml_edit::Item::None => {}
    }
}

fn walk_value(at: &KeyPath, v: &toml_edit::Value, out: &mut Vec<(KeyPath, usize)>) {
    match v {
        toml_edit::Value::Array(a) => {
            for (i, e) in a.iter().enumerate() {
                let p = at.index(i);
                if let Some(span) = e.span() {
                    out.push((p.clone(), span.start));
                }
                walk_value(&p, e, out);
            }
        }
        toml_edit::Value::InlineTable(t) => {
            for (k, e) in t.iter() {
                let p = at.key(k);
                if let Some(span) = t.key(k).and_then(|key| key.span()) {
                    out.push((p.clone(), span.start));
                }
                walk_value(&p, e, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_paths_display_like_toml_headers() {
        assert_eq!(
            path(&["kernel", "fragments"]).index(2).to_string(),
            "[kernel].fragments[2]"
        );
        assert_eq!(
            path(&["kernel", "source", "sha256"]).to_string(),
            "[kernel.source].sha256"
        );
        assert_eq!(
            path(&["shape"]).index(1).key("memory").to_string(),
            "[[shape]][1].memory"
        );
        assert_eq!(path(&["shape"]).index(1).to_string(), "[[shape]][1]");
        assert_eq!(path(&["image"]).to_string(), "[image]");
        assert_eq!(KeyPath::root().to_string(), "(document)");
    }

    #[test]
    fn lines_and_keys_from_offsets() {
        let text = "[a]\nx = 1\ny = [1,\n  2]\n\n[[b]]\nz = 3\n";
        let doc = toml_edit::ImDocument::parse(text).unwrap();
        let o = Origin::new("f.toml", text).with_keys(doc.as_table());
        assert_eq!(o.line_of(&path(&["a", "y"]).index(1)), Some(4));
        assert_eq!(o.line_of(&path(&["b"]).index(0).key("z")), Some(7));
        assert_eq!(o.line_of(&path(&["b"]).index(0).key("missing")), Some(6));
        assert_eq!(
            o.key_at(text.find("2]").unwrap()),
            path(&["a", "y"]).index(1)
        );
        assert_eq!(
            o.key_at(text.find("3").unwrap()),
            path(&["b"]).index(0).key("z")
        );
    }
}
