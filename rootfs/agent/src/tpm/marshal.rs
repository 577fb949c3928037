//! Big-endian TPM 2.0 marshalling primitives (TPM 2.0 Library, Part 1 §18 "Command/Response
//! Structure", Part 2 for the types).
//! Pure: a [`Writer`] that builds byte vectors and a bounds-checked [`Reader`] that never panics.

/// Parse failures: which field, at which offset, how many bytes were needed and present.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{what} at offset {offset}: need {need} bytes, have {have}")]
    Truncated {
        what: &'static str,
        offset: usize,
        need: usize,
        have: usize,
    },
    #[error("{what}: unexpected value {value:#x}")]
    Unexpected { what: &'static str, value: u32 },
    #[error("{what}: {extra} trailing bytes")]
    Trailing { what: &'static str, extra: usize },
}

/// Appends TPM big-endian fields to a byte vector.
#[derive(Debug, Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(v);
        self
    }
    /// A `TPM2B_*`: u16 size, then the bytes.
    ///
    /// # Panics
    /// If `v` is longer than `u16::MAX`; callers pass fixed-size or checked values.
    pub fn tpm2b(&mut self, v: &[u8]) -> &mut Self {
        let len = u16::try_from(v.len()).expect("TPM2B contents fit in u16");
        self.u16(len).bytes(v)
    }
    /// A `TPM2B_*` wrapping a structure: size computed after `f` marshals it.
    pub fn tpm2b_with(&mut self, f: impl FnOnce(&mut Writer)) -> &mut Self {
        let mut inner = Writer::default();
        f(&mut inner);
        self.tpm2b(&inner.buf)
    }
}

/// Bounds-checked reader over a response.
#[derive(Debug)]
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data, pos: 0 }
    }
    pub fn offset(&self) -> usize {
        self.pos
    }
    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Error> {
        if self.remaining() < n {
            return Err(Error::Truncated {
                what,
                offset: self.pos,
                need: n,
                have: self.remaining(),
            });
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    pub fn u8(&mut self, what: &'static str) -> Result<u8, Error> {
        Ok(self.take(1, what)?[0])
    }
    pub fn u16(&mut self, what: &'static str) -> Result<u16, Error> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    pub fn u32(&mut self, what: &'static str) -> Result<u32, Error> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub fn u64(&mut self, what: &'static str) -> Result<u64, Error> {
        let hi = self.u32(what)? as u64;
        let lo = self.u32(what)? as u64;
        Ok(hi << 32 | lo)
    }
    /// A `TPM2B_*`: u16 size, then that many bytes.
    pub fn tpm2b(&mut self, what: &'static str) -> Result<&'a [u8], Error> {
        let n = self.u16(what)? as usize;
        self.take(n, what)
    }
    /// Fails if bytes are left over.
    pub fn finish(&self, what: &'static str) -> Result<(), Error> {
        match self.remaining() {
            0 => Ok(()),
            extra => Err(Error::Trailing { what, extra }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_is_big_endian_and_sizes_tpm2b() {
        let mut w = Writer::default();
        w.u16(0x8001)
            .u32(0x0102_0304)
            .tpm2b(&[9, 9])
            .tpm2b_with(|w| {
                w.u8(7);
            });
        assert_eq!(w.buf, [0x80, 0x01, 1, 2, 3, 4, 0, 2, 9, 9, 0, 1, 7]);
    }

    #[test]
    fn reader_reports_truncation() {
        let mut r = Reader::new(&[0, 5, 1, 2]);
        assert_eq!(
            r.tpm2b("x"),
            Err(Error::Truncated {
                what: "x",
                offset: 2,
                need: 5,
                have: 2
            })
        );
        let mut r = Reader::new(&[0, 0, 0, 0, 0, 0, 0, 9]);
        assert_eq!(r.u64("clock").unwrap(), 9);
        assert!(r.finish("end").is_ok());
    }
}
