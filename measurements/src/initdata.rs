//! CoCo initdata binding (trustee `kbs/docs/initdata.md`; `shared/design/reference-values.md`
//! §1.8): the digest of the exact bytes of an initdata TOML document, with the algorithm the
//! document names, fitted to TDX `MRCONFIGID` (48 bytes) or SNP `HOSTDATA` (32 bytes) by
//! zero-padding at the end or truncating.

use sha2::{Digest, Sha256, Sha384, Sha512};

/// Errors from reading an initdata document.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    #[error("initdata is not valid TOML: {0}")]
    Toml(String),
    #[error("initdata field `{field}`: {problem}")]
    Invalid {
        field: &'static str,
        problem: String,
    },
}

/// Hash algorithms initdata may name (`virtee/kbs-types` `HashAlgorithm`, lowercase).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InitdataAlgorithm {
    Sha256,
    Sha384,
    Sha512,
}

/// The digest of an initdata document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitdataDigest {
    pub algorithm: InitdataAlgorithm,
    pub digest: Vec<u8>,
}

impl InitdataDigest {
    /// Digest `document` (its exact bytes) with the `algorithm` it declares.
    pub fn of_document(document: &[u8]) -> Result<InitdataDigest, Error> {
        let text = std::str::from_utf8(document).map_err(|e| Error::Toml(e.to_string()))?;
        let value: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| Error::Toml(e.to_string()))?;
        let alg = value
            .get("algorithm")
            .and_then(|v| v.as_str())
            .ok_or(Error::Invalid {
                field: "algorithm",
                problem: "missing or not a string".into(),
            })?;
        let algorithm = match alg {
            "sha256" => InitdataAlgorithm::Sha256,
            "sha384" => InitdataAlgorithm::Sha384,
            "sha512" => InitdataAlgorithm::Sha512,
            o => {
                return Err(Error::Invalid {
                    field: "algorithm",
                    problem: format!("{o:?} is not sha256, sha384 or sha512"),
                })
            }
        };
        if value.get("version").and_then(|v| v.as_str()).is_none() {
            return Err(Error::Invalid {
                field: "version",
                problem: "missing or not a string".into(),
            });
        }
        let digest = match algorithm {
            InitdataAlgorithm::Sha256 => Sha256::digest(document).to_vec(),
            InitdataAlgorithm::Sha384 => Sha384::digest(document).to_vec(),
            InitdataAlgorithm::Sha512 => Sha512::digest(document).to_vec(),
        };
        Ok(InitdataDigest { algorithm, digest })
    }

    /// TDX `MRCONFIGID`: the digest zero-padded (or truncated) to 48 bytes.
    pub fn mr_config_id(&self) -> [u8; 48] {
        fit(&self.digest)
    }

    /// SNP `HOSTDATA`: the digest zero-padded (or truncated) to 32 bytes.
    pub fn host_data(&self) -> [u8; 32] {
        fit(&self.digest)
    }
}

fn fit<const N: usize>(d: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    let n = d.len().min(N);
    out[..n].copy_from_slice(&d[..n]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "version = \"0.1.0\"\nalgorithm = \"sha256\"\n\n[data]\n\"aa.toml\" = \"\"\n";

    #[test]
    fn sha256_pads_mrconfigid_and_fills_hostdata() {
        let d = InitdataDigest::of_document(DOC.as_bytes()).unwrap();
        let expect = Sha256::digest(DOC.as_bytes());
        assert_eq!(&d.mr_config_id()[..32], expect.as_slice());
        assert_eq!(d.mr_config_id()[32..], [0u8; 16]);
        assert_eq!(d.host_data(), expect.as_slice());
    }

    #[test]
    fn sha512_truncates_and_bytes_matter() {
        let doc = DOC.replace("sha256", "sha512");
        let d = InitdataDigest::of_document(doc.as_bytes()).unwrap();
        assert_eq!(d.mr_config_id(), Sha512::digest(doc.as_bytes())[..48]);
        // A comment changes the digest: no canonical form.
        let d2 = InitdataDigest::of_document(format!("# c\n{doc}").as_bytes()).unwrap();
        assert_ne!(d.digest, d2.digest);
        assert!(InitdataDigest::of_document(b"algorithm = \"md5\"\nversion = \"0.1.0\"").is_err());
        assert!(InitdataDigest::of_document(b"not toml [").is_err());
    }
}
