//! A minimal TPM 2.0 client: exactly the commands needed to quote PCRs with an attestation key.
//!
//! No TSS library: [`commands`] marshals the commands and parses the responses, [`attest`]
//! parses quote structures, [`transport`] moves bytes. [`Tpm`] strings them together.
//!
//! The AK is not stored anywhere: every [`Tpm::quote`] re-creates it as a primary object of
//! [`commands::ak_template`] under [`AK_HIERARCHY`], so a TPM with the same endorsement seed
//! always yields the same AK, and a verifier can enroll it beforehand with [`Tpm::ak_public`]
//! (what `cargo xtask boot-test` does with the swtpm state it created).

pub mod attest;
pub mod commands;
pub mod marshal;
pub mod transport;

use commands::{PcrSelection, ResponseError};
use std::collections::BTreeMap;
use transport::Transport;

/// The hierarchy the AK is a primary object of (its seed is the endorsement seed, fixed when
/// the TPM is manufactured); a verifier checks `qualifiedSigner` against it.
pub const AK_HIERARCHY: u32 = commands::TPM_RH_ENDORSEMENT;

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

    /// Sends `cmd` (command code `code`), which answers nothing but success.
    fn call_ok(&mut self, step: &'static str, code: u32, cmd: &[u8]) -> Result<(), Error> {
        let resp = self.call(step, cmd)?;
        commands::check_success(code, &resp).map_err(|source| Error::Response { step, source })
    }

    /// Extends `digest` into sha256 PCR `pcr`.
    pub fn pcr_extend_sha256(&mut self, pcr: u32, digest: &[u8; 32]) -> Result<(), Error> {
        self.call_ok(
            "PCR_Extend",
            commands::TPM_CC_PCR_EXTEND,
            &commands::pcr_extend_sha256(pcr, digest),
        )
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

    /// TPM2_CreatePrimary of the AK template under [`AK_HIERARCHY`]: the AK's handle and its
    /// marshalled `TPMT_PUBLIC`.
    fn create_ak(&mut self) -> Result<(u32, Vec<u8>), Error> {
        let resp = self.call("CreatePrimary", &commands::create_primary_ak(AK_HIERARCHY))?;
        commands::parse_create_primary(&resp).map_err(|source| Error::Response {
            step: "CreatePrimary",
            source,
        })
    }

    fn flush(&mut self, handle: u32) -> Result<(), Error> {
        self.call_ok(
            "FlushContext",
            commands::TPM_CC_FLUSH_CONTEXT,
            &commands::flush_context(handle),
        )
    }

    /// The AK's marshalled `TPMT_PUBLIC`, exactly as [`Tpm::quote`] returns it in
    /// [`Quote::ak_public`] (creates the AK and flushes it): what a verifier enrolls.
    pub fn ak_public(&mut self) -> Result<Vec<u8>, Error> {
        let (handle, public) = self.create_ak()?;
        self.flush(handle)?;
        Ok(public)
    }

    /// Creates the AK, quotes `sels` with `nonce`, and flushes the AK (also when the quote
    /// fails).
    pub fn quote(&mut self, nonce: &[u8], sels: &[PcrSelection]) -> Result<Quote, Error> {
        let (handle, ak_public) = self.create_ak()?;
        let quoted = self
            .call("Quote", &commands::quote(handle, nonce, sels))
            .and_then(|resp| {
                commands::parse_quote(&resp).map_err(|source| Error::Response {
                    step: "Quote",
                    source,
                })
            });
        let flushed = self.flush(handle);
        let (attest, signature) = quoted?;
        flushed?;
        Ok(Quote {
            attest,
            signature,
            ak_public,
        })
    }

    /// TPM2_Shutdown(CLEAR): an orderly shutdown (as an OS sends before power-off), so a
    /// simulator that exits next leaves its state saved as consistent.
    pub fn shutdown(&mut self) -> Result<(), Error> {
        self.call_ok("Shutdown", commands::TPM_CC_SHUTDOWN, &commands::shutdown())
    }
}
