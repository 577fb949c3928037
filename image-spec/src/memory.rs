//! `Memory`: a byte size written the way QEMU's `-m` takes it (`2048M`, `4G`): digits and a binary
//! unit suffix `K`, `M`, `G` or `T` (powers of 1024; `KiB`/`MiB`/`GiB`/`TiB` also accepted).
//! A bare number is refused: QEMU reads it as MiB, everyone else as bytes.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A size in bytes (`Memory(2 << 30)` for `"2G"`). Serialized as the largest exact unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Memory(pub u64);

pub const KIB: u64 = 1 << 10;
pub const MIB: u64 = 1 << 20;
pub const GIB: u64 = 1 << 30;
pub const TIB: u64 = 1 << 40;

const UNITS: [(&str, u64); 4] = [("T", TIB), ("G", GIB), ("M", MIB), ("K", KIB)];

impl Memory {
    pub fn bytes(self) -> u64 {
        self.0
    }

    /// Whole MiB (QEMU's `-m` unit), rounded down.
    pub fn mib(self) -> u64 {
        self.0 / MIB
    }
}

impl FromStr for Memory {
    type Err = String;

    fn from_str(s: &str) -> Result<Memory, String> {
        let bad = || {
            format!("invalid size {s:?}: expected digits and a unit K, M, G or T (e.g. \"2048M\", \"4G\")")
        };
        let digits_end = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let (num, unit) = s.split_at(digits_end);
        let unit = unit.strip_suffix("iB").unwrap_or(unit);
        let (_, mult) = UNITS.iter().find(|(u, _)| *u == unit).ok_or_else(bad)?;
        let n: u64 = num.parse().map_err(|_| bad())?;
        n.checked_mul(*mult)
            .map(Memory)
            .ok_or_else(|| format!("size {s:?} does not fit in 64 bits"))
    }
}

impl fmt::Display for Memory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match UNITS.iter().find(|(_, m)| self.0 != 0 && self.0.is_multiple_of(*m)) {
            Some((u, m)) => write!(f, "{}{u}", self.0 / m),
            // Not a whole KiB: not writable in this notation; validation refuses it.
            None => write!(f, "{}B", self.0),
        }
    }
}

impl TryFrom<String> for Memory {
    type Error = String;
    fn try_from(s: String) -> Result<Memory, String> {
        s.parse()
    }
}

impl From<Memory> for String {
    fn from(m: Memory) -> String {
        m.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!("2048M".parse::<Memory>(), Ok(Memory(2048 * MIB)));
        assert_eq!("4G".parse::<Memory>(), Ok(Memory(4 * GIB)));
        assert_eq!("4GiB".parse::<Memory>(), Ok(Memory(4 * GIB)));
        assert_eq!("512K".parse::<Memory>(), Ok(Memory(512 * KIB)));
        assert_eq!("1T".parse::<Memory>(), Ok(Memory(TIB)));
        assert_eq!(Memory(2048 * MIB).mib(), 2048);
    }

    #[test]
    fn refuses_bad_sizes() {
        for s in [
            "2048",
            "",
            "G",
            "2g",
            "2 G",
            "-1G",
            "1.5G",
            "2GB",
            "99999999999999999999G",
            "20000000T",
        ] {
            assert!(s.parse::<Memory>().is_err(), "{s:?} should be refused");
        }
    }

    #[test]
    fn displays_largest_exact_unit_and_round_trips() {
        assert_eq!(Memory(2048 * MIB).to_string(), "2G");
        assert_eq!(Memory(3 * 512 * MIB).to_string(), "1536M");
        for s in ["2G", "1536M", "7K", "3T"] {
            assert_eq!(s.parse::<Memory>().unwrap().to_string(), s);
        }
    }
}
