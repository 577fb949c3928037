//! `EFI_GUID` (UEFI spec 2.10, appendix A): a UUID stored mixed-endian, i.e. the first three
//! fields little-endian (Python's `uuid.bytes_le`), the last eight bytes as written.

use std::fmt;

/// A GUID in its on-disk (mixed-endian) byte order.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EfiGuid(pub [u8; 16]);

impl EfiGuid {
    /// Parse the canonical text form `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
    ///
    /// `const` so that well-known GUIDs can be constants; panics (at compile time for
    /// constants) on a malformed literal.
    pub const fn from_str_const(s: &str) -> EfiGuid {
        let b = s.as_bytes();
        assert!(b.len() == 36, "GUID literal must be 36 characters");
        // Big-endian text bytes, hyphens skipped.
        let mut be = [0u8; 16];
        let mut i = 0;
        let mut o = 0;
        while i < 36 {
            if b[i] == b'-' {
                i += 1;
                continue;
            }
            be[o] = (hex_nibble(b[i]) << 4) | hex_nibble(b[i + 1]);
            o += 1;
            i += 2;
        }
        assert!(o == 16, "GUID literal must hold 16 bytes");
        let le = [
            be[3], be[2], be[1], be[0], be[5], be[4], be[7], be[6], be[8], be[9], be[10], be[11],
            be[12], be[13], be[14], be[15],
        ];
        EfiGuid(le)
    }

    /// The 16 bytes as stored in firmware and event logs.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

const fn hex_nibble(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => panic!("invalid hex digit in GUID literal"),
    }
}

impl fmt::Display for EfiGuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
            b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]
        )
    }
}

impl fmt::Debug for EfiGuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EfiGuid({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixed_endian_layout_matches_python_bytes_le() {
        // uuid.UUID("96b582de-1fb2-45f7-baea-a366c55a082d").bytes_le.hex()
        let g = EfiGuid::from_str_const("96b582de-1fb2-45f7-baea-a366c55a082d");
        assert_eq!(hex::encode(g.as_bytes()), "de82b596b21ff745baeaa366c55a082d");
        assert_eq!(g.to_string(), "96b582de-1fb2-45f7-baea-a366c55a082d");
    }
}
