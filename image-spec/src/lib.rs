//! `cvm-image-spec`: the declarative description of one image (TOML).
//!
//! A spec names the image and the TEEs it is measured for (`[image]`), the VM shapes to predict
//! measurements for (`[[shape]]`), the pinned kernel and firmware sources (`[kernel]`,
//! `[firmware]`), the root file system (`[rootfs]`) and optionally `[initdata]`, `[signing]` and
//! `[publish]`. `image-spec/example.toml` documents every key; `image-spec/default.toml` is the
//! image `cargo xtask build-image` builds without `--spec` ([`DEFAULT`]).
//!
//! [`ImageSpec::parse`] refuses unknown keys and wrong types (the first such error), then checks
//! the semantic rules and reports all of their problems at once; every [`Diagnostic`] names file,
//! line and dotted key: `image-spec/default.toml:12: [kernel].fragments[2]: ...`.
//! Paths in a spec are relative to the repository root and may not leave it.
//!
//! **Invariant:** pure: no process, network or clock; [`ImageSpec::load`] is the only file read.

pub mod cmdline;
mod diagnostic;
mod memory;
mod schema;
mod validate;

pub use diagnostic::{path, Diagnostic, KeyPath, Origin, Seg, SpecErrors};
pub use memory::{Memory, GIB, KIB, MIB, TIB};
pub use schema::*;

use serde::{Deserialize, Serialize};
use std::path::Path;

/// The default image spec (`image-spec/default.toml`): a test image for TDX, SNP and vTPM.
pub const DEFAULT: &str = include_str!("../default.toml");
/// The name [`ImageSpec::default_spec`] reports errors under.
pub const DEFAULT_FILE: &str = "image-spec/default.toml";
/// Every key documented (`image-spec/example.toml`).
pub const EXAMPLE: &str = include_str!("../example.toml");

/// One image, as declared in a spec file. Fields are the TOML tables.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSpec {
    pub image: Image,
    /// `[[shape]]` tables, in file order.
    #[serde(rename = "shape", default)]
    pub shapes: Vec<Shape>,
    pub kernel: Kernel,
    pub firmware: Firmware,
    pub rootfs: Rootfs,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initdata: Option<Initdata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing: Option<Signing>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish: Option<Publish>,
    /// Where the spec was read from (for line numbers); not part of the spec's value.
    #[serde(skip)]
    pub origin: Option<Origin>,
}

/// Two specs are equal when they declare the same image, wherever they were read from.
impl PartialEq for ImageSpec {
    fn eq(&self, o: &ImageSpec) -> bool {
        (
            &self.image,
            &self.shapes,
            &self.kernel,
            &self.firmware,
            &self.rootfs,
            &self.initdata,
            &self.signing,
            &self.publish,
        ) == (
            &o.image,
            &o.shapes,
            &o.kernel,
            &o.firmware,
            &o.rootfs,
            &o.initdata,
            &o.signing,
            &o.publish,
        )
    }
}
impl Eq for ImageSpec {}

impl ImageSpec {
    /// Read, parse and validate a spec file; errors name `path` as given.
    pub fn load(path: &Path) -> Result<ImageSpec, SpecErrors> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            SpecErrors(vec![Diagnostic {
                file: file.clone(),
                line: None,
                key: KeyPath::root(),
                message: format!("cannot read: {e}"),
            }])
        })?;
        ImageSpec::parse(&text, &file)
    }

    /// Parse and validate spec text; `file_name` is what diagnostics call the file.
    pub fn parse(text: &str, file_name: &str) -> Result<ImageSpec, SpecErrors> {
        let spec = ImageSpec::parse_unvalidated(text, file_name)?;
        let problems = spec.validate();
        if problems.is_empty() {
            Ok(spec)
        } else {
            Err(SpecErrors(problems))
        }
    }

    /// Parse without the semantic rules (syntax, unknown keys and types only).
    pub fn parse_unvalidated(text: &str, file_name: &str) -> Result<ImageSpec, SpecErrors> {
        let origin = Origin::new(file_name, text);
        let doc = toml_edit::ImDocument::parse(text).map_err(|e| {
            let line = e.span().and_then(|s| origin.line_of_offset(s.start));
            SpecErrors(vec![Diagnostic {
                file: file_name.to_string(),
                line,
                key: KeyPath::root(),
                message: format!("TOML syntax: {}", e.message().trim_end()),
            }])
        })?;
        let origin = origin.with_keys(doc.as_table());
        let mut spec: ImageSpec = toml::from_str(text).map_err(|e| {
            let (key, line) = match e.span() {
                Some(s) => (origin.key_at(s.start), origin.line_of_offset(s.start)),
                None => (KeyPath::root(), None),
            };
            SpecErrors(vec![Diagnostic {
                file: file_name.to_string(),
                line,
                key,
                message: e.message().trim_end().to_string(),
            }])
        })?;
        spec.origin = Some(origin);
        Ok(spec)
    }

    /// The embedded [`DEFAULT`] spec.
    pub fn default_spec() -> ImageSpec {
        ImageSpec::parse(DEFAULT, DEFAULT_FILE).expect("image-spec/default.toml is valid (tested)")
    }

    /// Every semantic problem of the spec (empty = valid), each with file, line and key when the
    /// spec was parsed from text.
    pub fn validate(&self) -> Vec<Diagnostic> {
        match &self.origin {
            Some(o) => validate::validate(self, o),
            None => validate::validate(self, &Origin::unnamed("(spec built in code)")),
        }
    }

    /// The spec as TOML (parses back to an equal spec).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("an ImageSpec always serializes to TOML")
    }

    /// The kernel command line with the placeholders filled in.
    pub fn cmdline(
        &self,
        values: &cmdline::CmdlineValues,
    ) -> Result<String, cmdline::TemplateError> {
        cmdline::render(&self.kernel.cmdline, values)
    }
}
