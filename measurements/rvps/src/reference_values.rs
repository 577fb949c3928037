//! Reference values: the per-shape measurements of a manifest, under the ids an attestation
//! policy looks up (`shared/design/reference-values.md` §1.6).
//!
//! Every id maps to an **array** of lowercase hex strings (the default EAR policy checks
//! `x in rv`), one entry per VM shape that produced a distinct value, so several vCPU counts or
//! image variants are allowed at once.
//!
//! | manifest field (per shape)                    | id                       | bytes  |
//! | --------------------------------------------- | ------------------------ | ------ |
//! | `tdx.mrtd`                                    | `mr_td`                  | 48     |
//! | `tdx.rtmr0` .. `tdx.rtmr3`                    | `rtmr_0` .. `rtmr_3`     | 48     |
//! | `snp.launch_digest`                           | `snp_launch_measurement` | 48     |
//! | `vtpm.pcrs.sha256.<n>` (top level)            | `tpm_pcr<n>`             | 32     |
//!
//! Manifest layout read here (aliases are accepted): shapes under `shapes` (an array, or an
//! object keyed by shape name), or a single shape at the top level; each platform entry may be
//! an object or an array of objects. The vTPM PCRs do not depend on the shape: `build-image`
//! writes them once, as the top-level `vtpm: {firmware_role, pcrs: {sha256: {"0": hex, ..},
//! sha384: {..}}, events}`, read whether or not `shapes` is present. `pcrs` is per bank; the
//! sha256 bank is published, as `tpm_pcr<n>` (what Trustee's default policy compares with
//! `input.tpm.pcr<n>`), the other banks (`sha1`, `sha384`, `sha512`) are checked as hex and not
//! published; a per-bank map without `sha256` is an error. A flat `{<n>: hex}` (one unnamed
//! bank, 32 or 48 bytes) is still accepted. Aliases: `mr_td`, `rtmr` (array of 4), `rtmr_0`..,
//! `launch_measurement`/`measurement`, `tpm` for `vtpm`.

use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// One platform's fields: (accepted manifest keys, policy id, allowed byte lengths).
type FieldTable = &'static [(&'static [&'static str], &'static str, &'static [usize])];

const TDX_FIELDS: FieldTable = &[
    (&["mrtd", "mr_td"], "mr_td", &[48]),
    (&["rtmr0", "rtmr_0"], "rtmr_0", &[48]),
    (&["rtmr1", "rtmr_1"], "rtmr_1", &[48]),
    (&["rtmr2", "rtmr_2"], "rtmr_2", &[48]),
    (&["rtmr3", "rtmr_3"], "rtmr_3", &[48]),
];
const SNP_FIELDS: FieldTable = &[(
    &["launch_digest", "launch_measurement", "measurement"],
    "snp_launch_measurement",
    &[48],
)];
const PCR_BYTES: &[usize] = &[32, 48];
/// The PCR bank published as `tpm_pcr<n>`.
pub const PUBLISHED_BANK: &str = "sha256";
/// Banks a manifest may carry: (name, digest bytes).
const BANKS: &[(&str, &[usize])] = &[
    ("sha1", &[20]),
    ("sha256", &[32]),
    ("sha384", &[48]),
    ("sha512", &[64]),
];

/// Reference values by policy id, each a sorted set of lowercase hex strings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReferenceValues {
    /// id → (platform: `tdx` | `snp` | `vtpm`, values)
    values: BTreeMap<String, (&'static str, BTreeSet<String>)>,
    /// Extra ids (`rvps:///…:<tag>`) aliasing a base id, see [`ReferenceValues::with_versioned_ids`].
    versioned: BTreeMap<String, String>,
}

/// Why reference values could not be taken from a manifest.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReferenceValuesError {
    #[error("manifest is not valid JSON ({0}): pass the manifest.json the build wrote")]
    NotJson(String),
    #[error("manifest `{path}`: expected {expected}, found {found}")]
    Shape {
        path: String,
        expected: &'static str,
        found: String,
    },
    #[error("manifest `{path}`: {value:?} is not lowercase hex of {bytes:?} bytes (no 0x prefix)")]
    BadHex {
        path: String,
        value: String,
        bytes: &'static [usize],
    },
    #[error("manifest has no measurements: looked for `tdx`, `snp`, `vtpm` under `shapes` and at the top level")]
    Empty,
    #[error("manifest `{path}`: PCRs per bank without a `sha256` bank (the one published as tpm_pcr<n>)")]
    NoSha256Bank { path: String },
    #[error("versioned id {what} {value:?} must be non-empty and contain no whitespace, `:` or leading/trailing `/`")]
    BadVersionedPart { what: &'static str, value: String },
}

type Result<T> = std::result::Result<T, ReferenceValuesError>;

impl ReferenceValues {
    /// Reads the per-shape measurements of a manifest (JSON bytes).
    pub fn from_manifest_bytes(manifest: &[u8]) -> Result<Self> {
        let v: Value = serde_json::from_slice(manifest)
            .map_err(|e| ReferenceValuesError::NotJson(e.to_string()))?;
        Self::from_manifest(&v)
    }

    /// Reads the per-shape measurements of a parsed manifest.
    pub fn from_manifest(manifest: &Value) -> Result<Self> {
        let root = as_object(manifest, "$")?;
        let mut rv = ReferenceValues::default();
        match root.get("shapes") {
            Some(Value::Array(shapes)) => {
                for (i, s) in shapes.iter().enumerate() {
                    rv.add_shape(s, &format!("shapes[{i}]"))?;
                }
            }
            Some(Value::Object(shapes)) => {
                for (name, s) in shapes {
                    rv.add_shape(s, &format!("shapes.{name}"))?;
                }
            }
            Some(other) => {
                return Err(shape_err("shapes", "an array or object of shapes", other));
            }
            None => rv.add_shape(manifest, "$")?,
        }
        // The image-wide vTPM PCRs beside the shapes (without `shapes`, add_shape read them).
        if root.contains_key("shapes") {
            for key in ["vtpm", "tpm"] {
                if let Some(v) = root.get(key) {
                    for_each_entry(v, &format!("$.{key}"), |e, ep| rv.add_pcrs(e, ep))?;
                }
            }
        }
        if rv.values.is_empty() {
            return Err(ReferenceValuesError::Empty);
        }
        Ok(rv)
    }

    fn add_shape(&mut self, shape: &Value, path: &str) -> Result<()> {
        let obj = as_object(shape, path)?;
        for (key, value) in obj {
            let p = format!("{path}.{key}");
            match key.as_str() {
                "tdx" => {
                    for_each_entry(value, &p, |e, ep| self.add_fields("tdx", TDX_FIELDS, e, ep))?
                }
                "snp" => {
                    for_each_entry(value, &p, |e, ep| self.add_fields("snp", SNP_FIELDS, e, ep))?
                }
                "vtpm" | "tpm" => for_each_entry(value, &p, |e, ep| self.add_pcrs(e, ep))?,
                _ => {}
            }
        }
        Ok(())
    }

    fn add_fields(
        &mut self,
        platform: &'static str,
        table: FieldTable,
        entry: &Value,
        path: &str,
    ) -> Result<()> {
        let obj = as_object(entry, path)?;
        for (keys, id, bytes) in table {
            for key in *keys {
                if let Some(v) = obj.get(*key) {
                    self.insert(platform, id, hex_value(v, &format!("{path}.{key}"), bytes)?);
                }
            }
        }
        // `rtmr: [r0, r1, r2, r3]`
        if platform == "tdx" {
            if let Some(v) = obj.get("rtmr") {
                let p = format!("{path}.rtmr");
                let arr = v
                    .as_array()
                    .filter(|a| a.len() == 4)
                    .ok_or_else(|| shape_err(&p, "an array of 4 RTMRs", v))?;
                for (i, r) in arr.iter().enumerate() {
                    self.insert(
                        platform,
                        &format!("rtmr_{i}"),
                        hex_value(r, &format!("{p}[{i}]"), &[48])?,
                    );
                }
            }
        }
        Ok(())
    }

    fn add_pcrs(&mut self, entry: &Value, path: &str) -> Result<()> {
        let obj = as_object(entry, path)?;
        let Some(pcrs) = obj.get("pcrs") else {
            return Ok(());
        };
        let p = format!("{path}.pcrs");
        let map = as_object(pcrs, &p)?;
        let per_bank = map.keys().any(|k| k.parse::<u8>().is_err());
        if !per_bank {
            return self.add_bank(map, &p, PCR_BYTES, true);
        }
        for (bank, values) in map {
            let bp = format!("{p}.{bank}");
            let Some((_, bytes)) = BANKS.iter().find(|(b, _)| b == bank) else {
                return Err(shape_err(
                    &p,
                    "PCR banks (sha1, sha256, sha384, sha512) as keys",
                    &Value::String(bank.clone()),
                ));
            };
            self.add_bank(as_object(values, &bp)?, &bp, bytes, bank == PUBLISHED_BANK)?;
        }
        if !map.contains_key(PUBLISHED_BANK) {
            return Err(ReferenceValuesError::NoSha256Bank { path: p });
        }
        Ok(())
    }

    /// One bank's `{<n>: hex}`: checked, and registered as `tpm_pcr<n>` when `publish`.
    fn add_bank(
        &mut self,
        pcrs: &Map<String, Value>,
        p: &str,
        bytes: &'static [usize],
        publish: bool,
    ) -> Result<()> {
        for (idx, v) in pcrs {
            let n: u8 = idx.parse().ok().filter(|n| *n < 24).ok_or_else(|| {
                shape_err(p, "PCR indices 0..23 as keys", &Value::String(idx.clone()))
            })?;
            let hex = hex_value(v, &format!("{p}.{idx}"), bytes)?;
            if publish {
                self.insert("vtpm", &format!("tpm_pcr{n}"), hex);
            }
        }
        Ok(())
    }

    fn insert(&mut self, platform: &'static str, id: &str, hex: String) {
        self.values
            .entry(id.to_string())
            .or_insert_with(|| (platform, BTreeSet::new()))
            .1
            .insert(hex);
    }

    /// Adds, for every id, the versioned URI id `rvps:///<prefix>/<platform>/<id>:<tag>` (the
    /// RVPS reference-value URI RFC), holding the same values, so a policy can pin a release.
    pub fn with_versioned_ids(mut self, prefix: &str, tag: &str) -> Result<Self> {
        let bad = |s: &str| s.is_empty() || s.contains(char::is_whitespace) || s.contains(':');
        if bad(prefix) || prefix.starts_with('/') || prefix.ends_with('/') {
            return Err(ReferenceValuesError::BadVersionedPart {
                what: "prefix",
                value: prefix.into(),
            });
        }
        if bad(tag) || tag.contains('/') {
            return Err(ReferenceValuesError::BadVersionedPart {
                what: "tag",
                value: tag.into(),
            });
        }
        for (id, (platform, _)) in &self.values {
            self.versioned.insert(
                format!("rvps:///{prefix}/{platform}/{id}:{tag}"),
                id.clone(),
            );
        }
        Ok(self)
    }

    /// Every id with its values as the JSON the RVPS stores (an array of strings), sorted by id.
    pub fn to_sample(&self) -> Map<String, Value> {
        let mut m = Map::new();
        for (id, (_, vals)) in &self.values {
            m.insert(
                id.clone(),
                Value::from(vals.iter().cloned().collect::<Vec<_>>()),
            );
        }
        for (vid, id) in &self.versioned {
            m.insert(vid.clone(), m[id.as_str()].clone());
        }
        m
    }

    /// Number of ids (base and versioned).
    pub fn len(&self) -> usize {
        self.values.len() + self.versioned.len()
    }

    /// Whether there are no ids (never true for a value built from a manifest).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn for_each_entry(
    v: &Value,
    path: &str,
    mut f: impl FnMut(&Value, &str) -> Result<()>,
) -> Result<()> {
    match v {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, e)| f(e, &format!("{path}[{i}]"))),
        _ => f(v, path),
    }
}

fn as_object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>> {
    v.as_object().ok_or_else(|| shape_err(path, "an object", v))
}

fn shape_err(path: &str, expected: &'static str, found: &Value) -> ReferenceValuesError {
    let mut found = found.to_string();
    if found.len() > 60 {
        found.truncate(57);
        found.push_str("...");
    }
    ReferenceValuesError::Shape {
        path: path.into(),
        expected,
        found,
    }
}

fn hex_value(v: &Value, path: &str, bytes: &'static [usize]) -> Result<String> {
    let s = v
        .as_str()
        .ok_or_else(|| shape_err(path, "a hex string", v))?;
    let ok = bytes.contains(&(s.len() / 2))
        && s.len() % 2 == 0
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !ok {
        return Err(ReferenceValuesError::BadHex {
            path: path.into(),
            value: s.into(),
            bytes,
        });
    }
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn h(b: u8, n: usize) -> String {
        hex::encode(vec![b; n])
    }

    #[test]
    fn shapes_merge_into_arrays_per_id() {
        let m = json!({"shapes": [
            {"tdx": {"mrtd": h(1, 48), "rtmr0": h(2, 48), "rtmr1": h(3, 48), "rtmr2": h(4, 48), "rtmr3": h(0, 48)},
             "vtpm": {"pcrs": {"4": h(5, 32), "11": h(6, 32)}}},
            {"snp": [{"vcpus": 1, "launch_digest": h(7, 48)}, {"vcpus": 2, "launch_digest": h(8, 48)}]},
            {"tdx": {"mr_td": h(1, 48), "rtmr": [h(2, 48), h(9, 48), h(4, 48), h(0, 48)]}}
        ]});
        let s = ReferenceValues::from_manifest(&m).unwrap().to_sample();
        assert_eq!(s["mr_td"], json!([h(1, 48)]), "equal values collapse");
        assert_eq!(s["rtmr_1"], json!([h(3, 48), h(9, 48)]));
        assert_eq!(s["snp_launch_measurement"], json!([h(7, 48), h(8, 48)]));
        assert_eq!(s["tpm_pcr11"], json!([h(6, 32)]));
        assert_eq!(s.len(), 8);
    }

    #[test]
    fn versioned_ids_alias_base_ids() {
        let m = json!({"tdx": {"mrtd": h(1, 48)}});
        let rv = ReferenceValues::from_manifest(&m)
            .unwrap()
            .with_versioned_ids("example.org/guest", "v0.1.0")
            .unwrap();
        let s = rv.to_sample();
        assert_eq!(
            s["rvps:///example.org/guest/tdx/mr_td:v0.1.0"],
            json!([h(1, 48)])
        );
        assert_eq!(rv.len(), 2);
        assert!(ReferenceValues::from_manifest(&m)
            .unwrap()
            .with_versioned_ids("a/", "v1")
            .is_err());
        assert!(ReferenceValues::from_manifest(&m)
            .unwrap()
            .with_versioned_ids("a", "v:1")
            .is_err());
    }

    #[test]
    fn bad_hex_names_the_field() {
        let upper = h(0xab, 48).to_uppercase();
        let e = ReferenceValues::from_manifest(&json!({"shapes": [{"tdx": {"mrtd": upper}}]}))
            .unwrap_err();
        assert!(e.to_string().contains("shapes[0].tdx.mrtd"), "{e}");
        let e = ReferenceValues::from_manifest(&json!({"snp": {"launch_digest": h(1, 32)}}))
            .unwrap_err();
        assert!(matches!(e, ReferenceValuesError::BadHex { .. }), "{e}");
        let e = ReferenceValues::from_manifest(&json!({"vtpm": {"pcrs": {"24": h(1, 32)}}}))
            .unwrap_err();
        assert!(e.to_string().contains("0..23"), "{e}");
    }

    /// The manifest `build-image` writes: shapes, and the vTPM PCRs per bank at the top level.
    #[test]
    fn top_level_vtpm_banks_beside_shapes() {
        let m = json!({
            "shapes": [{"name": "tdx", "tdx": {"mrtd": h(1, 48)}}],
            "vtpm": {"firmware_role": "ovmf-vtpm",
                     "pcrs": {"sha256": {"0": h(0x10, 32), "4": h(0x14, 32), "9": h(0x19, 32)},
                              "sha384": {"0": h(0x20, 48), "4": h(0x24, 48), "9": h(0x29, 48)}},
                     "events": [{"pcr": 0, "event_type": "EV_S_CRTM_VERSION"}]}
        });
        let s = ReferenceValues::from_manifest(&m).unwrap().to_sample();
        assert_eq!(s["tpm_pcr0"], json!([h(0x10, 32)]));
        assert_eq!(s["tpm_pcr4"], json!([h(0x14, 32)]));
        assert_eq!(s["tpm_pcr9"], json!([h(0x19, 32)]));
        assert_eq!(
            s.len(),
            4,
            "mr_td + 3 PCRs of the sha256 bank, sha384 not published: {s:?}"
        );
        // Without shapes: the same ids.
        let mut single = m.clone();
        single.as_object_mut().unwrap().remove("shapes");
        let s = ReferenceValues::from_manifest(&single).unwrap().to_sample();
        assert_eq!(
            s.keys().collect::<Vec<_>>(),
            ["tpm_pcr0", "tpm_pcr4", "tpm_pcr9"]
        );
        // Versioned ids under the vtpm platform.
        let rv = ReferenceValues::from_manifest(&m)
            .unwrap()
            .with_versioned_ids("o/i", "v1")
            .unwrap();
        assert_eq!(
            rv.to_sample()["rvps:///o/i/vtpm/tpm_pcr0:v1"],
            json!([h(0x10, 32)])
        );
    }

    #[test]
    fn bad_banks_are_named() {
        let bank = |pcrs: Value| {
            ReferenceValues::from_manifest(&json!({"shapes": [], "vtpm": {"pcrs": pcrs}}))
        };
        // A sha256 value of sha384 length, a sha384 value of sha256 length.
        let e = bank(json!({"sha256": {"0": h(1, 48)}})).unwrap_err();
        assert!(e.to_string().contains("$.vtpm.pcrs.sha256.0"), "{e}");
        let e = bank(json!({"sha256": {"0": h(1, 32)}, "sha384": {"0": h(1, 32)}})).unwrap_err();
        assert!(e.to_string().contains("$.vtpm.pcrs.sha384.0"), "{e}");
        let e = bank(json!({"sha384": {"0": h(1, 48)}})).unwrap_err();
        assert!(
            matches!(e, ReferenceValuesError::NoSha256Bank { .. }),
            "{e}"
        );
        let e = bank(json!({"md5": {"0": h(1, 16)}})).unwrap_err();
        assert!(e.to_string().contains("PCR banks"), "{e}");
        let e = bank(json!({"sha256": {"x": h(1, 32)}})).unwrap_err();
        assert!(e.to_string().contains("0..23"), "{e}");
    }

    #[test]
    fn empty_manifest_is_an_error() {
        let e = ReferenceValues::from_manifest(&json!({"shapes": []})).unwrap_err();
        assert!(matches!(e, ReferenceValuesError::Empty));
        assert!(ReferenceValues::from_manifest_bytes(b"not json").is_err());
    }
}
