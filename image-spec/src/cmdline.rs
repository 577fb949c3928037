//! The kernel command-line template of `[kernel].cmdline`: literal text with `{placeholder}`s
//! filled in by the build once the root file system exists; `{{` and `}}` write literal braces.

/// Placeholders a template may use.
pub const PLACEHOLDERS: &[&str] = &["verity_roothash", "verity_salt", "dm_table"];

/// Values for every placeholder of [`PLACEHOLDERS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdlineValues {
    /// dm-verity root hash, lowercase hex.
    pub verity_roothash: String,
    /// dm-verity salt, lowercase hex.
    pub verity_salt: String,
    /// The `dm-mod.create=` table.
    pub dm_table: String,
}

impl CmdlineValues {
    fn get(&self, name: &str) -> Option<&str> {
        match name {
            "verity_roothash" => Some(&self.verity_roothash),
            "verity_salt" => Some(&self.verity_salt),
            "dm_table" => Some(&self.dm_table),
            _ => None,
        }
    }
}

/// Why a template is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unknown placeholder {{{name}}} (known: {})", known())]
    Unknown { name: String },
    #[error("unmatched `{brace}` at byte {offset} (write `{brace}{brace}` for a literal brace)")]
    Unmatched { brace: char, offset: usize },
}

fn known() -> String {
    PLACEHOLDERS
        .iter()
        .map(|p| format!("{{{p}}}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Debug, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    Brace(char),
    Placeholder(&'a str),
}

fn pieces(template: &str) -> Result<Vec<Piece<'_>>, TemplateError> {
    let mut out = Vec::new();
    let mut rest = template;
    let mut offset = 0;
    while let Some(i) = rest.find(['{', '}']) {
        out.push(Piece::Text(&rest[..i]));
        let brace = rest.as_bytes()[i] as char;
        let after = &rest[i + 1..];
        let consumed = if after.starts_with(brace) {
            out.push(Piece::Brace(brace));
            i + 2
        } else if brace == '{' {
            let end = after.find('}').ok_or(TemplateError::Unmatched {
                brace,
                offset: offset + i,
            })?;
            let name = &after[..end];
            if !PLACEHOLDERS.contains(&name) {
                return Err(TemplateError::Unknown {
                    name: name.to_string(),
                });
            }
            out.push(Piece::Placeholder(name));
            i + 2 + end
        } else {
            return Err(TemplateError::Unmatched {
                brace,
                offset: offset + i,
            });
        };
        rest = &rest[consumed..];
        offset += consumed;
    }
    out.push(Piece::Text(rest));
    Ok(out)
}

/// Check a template without filling it.
pub fn check(template: &str) -> Result<(), TemplateError> {
    pieces(template).map(|_| ())
}

/// The placeholders a template uses, in order of appearance (with repeats).
pub fn used(template: &str) -> Result<Vec<&str>, TemplateError> {
    Ok(pieces(template)?
        .into_iter()
        .filter_map(|p| match p {
            Piece::Placeholder(n) => Some(n),
            _ => None,
        })
        .collect())
}

/// The command line with every placeholder replaced.
pub fn render(template: &str, values: &CmdlineValues) -> Result<String, TemplateError> {
    let mut s = String::new();
    for p in pieces(template)? {
        match p {
            Piece::Text(t) => s.push_str(t),
            Piece::Brace(b) => s.push(b),
            Piece::Placeholder(n) => s.push_str(
                values
                    .get(n)
                    .expect("pieces() admits only known placeholders"),
            ),
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> CmdlineValues {
        CmdlineValues {
            verity_roothash: "ab".into(),
            verity_salt: "cd".into(),
            dm_table: "root,,,ro,0 8 verity".into(),
        }
    }

    #[test]
    fn renders_placeholders_and_escapes() {
        let t = "ro dm-mod.create=\"{dm_table}\" h={verity_roothash} {{x}} s={verity_salt}";
        assert_eq!(
            render(t, &values()).unwrap(),
            "ro dm-mod.create=\"root,,,ro,0 8 verity\" h=ab {x} s=cd"
        );
        assert_eq!(
            used(t).unwrap(),
            ["dm_table", "verity_roothash", "verity_salt"]
        );
    }

    #[test]
    fn refuses_unknown_and_unmatched() {
        assert_eq!(
            check("a {rootfs} b"),
            Err(TemplateError::Unknown {
                name: "rootfs".into()
            })
        );
        assert_eq!(
            check("a {dm_table"),
            Err(TemplateError::Unmatched {
                brace: '{',
                offset: 2
            })
        );
        assert_eq!(
            check("a } b"),
            Err(TemplateError::Unmatched {
                brace: '}',
                offset: 2
            })
        );
        assert!(check("console=ttyS0").is_ok());
    }
}
