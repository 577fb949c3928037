//! Byte transports to a TPM: the kernel resource manager `/dev/tpmrm0` (one write = one command,
//! one read = one response) or a stream to swtpm's server socket (`swtpm socket --server
//! type=tcp|unixio`), which carries raw TPM commands and responses back to back.

use super::commands::MAX_RESPONSE_BYTES;
use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

/// Sends one marshalled command and returns the whole response.
pub trait Transport {
    fn transact(&mut self, command: &[u8]) -> std::io::Result<Vec<u8>>;
}

/// `/dev/tpmrm0` (or `/dev/tpm0`).
pub struct DeviceTransport {
    file: File,
}

impl DeviceTransport {
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = File::options().read(true).write(true).open(path)?;
        Ok(DeviceTransport { file })
    }
}

impl Transport for DeviceTransport {
    fn transact(&mut self, command: &[u8]) -> std::io::Result<Vec<u8>> {
        self.file.write_all(command)?;
        let mut buf = vec![0u8; MAX_RESPONSE_BYTES];
        let n = self.file.read(&mut buf)?;
        buf.truncate(n);
        Ok(buf)
    }
}

/// A stream to swtpm: the response length comes from its 10-byte header.
pub struct StreamTransport<S> {
    stream: S,
}

impl<S: Read + Write> StreamTransport<S> {
    pub fn new(stream: S) -> Self {
        StreamTransport { stream }
    }
}

impl<S: Read + Write> Transport for StreamTransport<S> {
    fn transact(&mut self, command: &[u8]) -> std::io::Result<Vec<u8>> {
        self.stream.write_all(command)?;
        self.stream.flush()?;
        let mut resp = vec![0u8; 10];
        self.stream.read_exact(&mut resp)?;
        let size = u32::from_be_bytes([resp[2], resp[3], resp[4], resp[5]]) as usize;
        if !(10..=MAX_RESPONSE_BYTES).contains(&size) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("TPM response size field {size} out of range 10..={MAX_RESPONSE_BYTES}"),
            ));
        }
        resp.resize(size, 0);
        self.stream.read_exact(&mut resp[10..])?;
        Ok(resp)
    }
}
