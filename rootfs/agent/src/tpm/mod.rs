//! A minimal TPM 2.0 client: exactly the commands needed to quote PCRs with an attestation key.
//!
//! No TSS library: [`commands`] marshals the commands and parses the responses, [`attest`]
//! parses quote structures, [`transport`] moves bytes. [`Tpm`] strings them together.

pub mod attest;
pub mod commands;
pub mod marshal;
pub mod transport;

use commands::{PcrSelection, ResponseError};
use std::collections::BTreeMap;
use transport::Transport;

/// TPM client failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("TPM I/O during {step}: {source}")]
    Io {
        step: &'static str,
        source: std::io::Error,
    },
    #[error("TPM {step}: {source}")]
    Response {
        step: &'static str,
        source: ResponseError,
    },
}

/// A quote and what is needed to verify it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote {
    pub attest: Vec<u8>,
    pub signature: Vec<u8>,
    pub ak_public: Vec<u8>,
}

/// A TPM reached through a [`Transport`].
pub struct Tpm<T> {
    transport: T,
}

impl<T: Transport> Tpm<T> {
    pub fn new(transport: T) -> Self {
        Tpm { transport }
    }

    /// Sends `cmd`, resending it while the TPM answers a retryable warning
    /// (`TPM_RC_RETRY`, `TPM_RC_YIELDED`, `TPM_RC_TESTING`: Part 2 §6.6.3; swtpm answers
    /// RETRY to the first Quote after startup while it self-tests the algorithms).
    fn call(&mut self, step: &'static str, cmd: &[u8]) -> Result<Vec<u8>, Error> {
        const RETRYABLE: [u32; 3] = [0x922, 0x908, 0x90a];
        let mut attempt = 0;
        loop {
            let resp = self
                .transport
                .transact(cmd)
                .map_err(|source| Error::Io { step, source })?;
            let retry =
                matches!(commands::split_response(&resp), Ok((rc, _)) if RETRYABLE.contains(&rc));
            if !retry || attempt == 50 {
                return Ok(resp);
            }
            attempt += 1;
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// TPM2_Startup(CLEAR); "already initialised" counts as success. Returns true if this call
    /// started the TPM.
    pub fn startup(&mut self) -> Result<bool, Error> {
        let resp = self.call("startup", &commands::startup())?;
        let (rc, _) = commands::split_response(&resp).map_err(|source| Error::Response {
            step: "startup",
            source,
        })?;
        match rc {
            commands::TPM_RC_SUCCESS => Ok(true),
            commands::TPM_RC_INITIALIZE => Ok(false),
            rc => Err(Error::Response {
                step: "startup",
                source: ResponseError::Code {
                    command: commands::TPM_CC_STARTUP,
                    rc,
                },
            }),
        }
    }

    /// Extends `digest` into sha256 PCR `pcr`.
    pub fn pcr_extend_sha256(&mut self, pcr: u32, digest: &[u8; 32]) -> Result<(), Error> {
        let resp = self.call("PCR_Extend", &commands::pcr_extend_sha256(pcr, digest))?;
        commands::check_success(commands::TPM_CC_PCR_EXTEND, &resp).map_err(|source| {
            Error::Response {
                step: "PCR_Extend",
                source,
            }
        })
    }

    /// Reads the given PCRs of one bank (in chunks of 8, the TPM's per-call limit).
    pub fn pcr_read(&mut self, hash: u16, pcrs: &[u8]) -> Result<BTreeMap<u32, Vec<u8>>, Error> {
        let mut out = BTreeMap::new();
        for chunk in pcrs.chunks(8) {
            let sel = PcrSelection {
                hash,
                pcrs: chunk.to_vec(),
            };
            let resp = self.call("PCR_Read", &commands::pcr_read(&sel))?;
            let (got_sel, digests) =
                commands::parse_pcr_read(&resp).map_err(|source| Error::Response {
                    step: "PCR_Read",
                    source,
                })?;
            let got: Vec<u8> = got_sel
                .iter()
                .filter(|s| s.hash == hash)
                .flat_map(|s| s.pcrs.clone())
                .collect();
            for (idx, d) in got.into_iter().zip(digests) {
                out.insert(idx as u32, d);
            }
        }
        Ok(out)
    }

    /// Creates the AK under `hierarchy`, quotes `sels` with `nonce`, and flushes the AK
    /// (also when the quote fails).
    pub fn quote(
        &mut self,
        hierarchy: u32,
        nonce: &[u8],
        sels: &[PcrSelection],
    ) -> Result<Quote, Error> {
        let resp = self.call("CreatePrimary", &commands::create_primary_ak(hierarchy))?;
        let (handle, ak_public) =
            commands::parse_create_primary(&resp).map_err(|source| Error::Response {
                step: "CreatePrimary",
                source,
            })?;
        let quoted = self
            .call("Quote", &commands::quote(handle, nonce, sels))
            .and_then(|resp| {
                commands::parse_quote(&resp).map_err(|source| Error::Response {
                    step: "Quote",
                    source,
                })
            });
        let flushed = self
            .call("FlushContext", &commands::flush_context(handle))
            .and_then(|resp| {
                commands::check_success(commands::TPM_CC_FLUSH_CONTEXT, &resp).map_err(|source| {
                    Error::Response {
                        step: "FlushContext",
                        source,
                    }
                })
            });
        let (attest, signature) = quoted?;
        flushed?;
        Ok(Quote {
            attest,
            signature,
            ak_public,
        })
    }
}
