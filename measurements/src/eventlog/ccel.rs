//! The confidential-computing event log (CCEL) of a TD: a crypto-agile TCG2 log whose
//! `pcrIndex` field holds the CC measurement register index (UEFI 2.10 §38.4.1), published by
//! TDVF through the ACPI `CCEL` table. This module maps between CC MR indexes, TDX registers
//! and the TPM PCRs firmware maps onto them (edk2 `TdTcg2Dxe` `MapPcrToMrIndex`).

use super::alg::TPM_ALG_SHA384;
use super::tcg2::{EventLog, TcgEfiSpecIdEvent};

/// CC MR index 0: MRTD (never in the log from firmware).
pub const CC_MR_INDEX_MRTD: u32 = 0;
/// CC MR index of RTMR0; RTMRn is `CC_MR_INDEX_RTMR0 + n`.
pub const CC_MR_INDEX_RTMR0: u32 = 1;

/// The RTMR (0..=3) a CC MR index extends, or `None` for MRTD or an out-of-range index.
pub fn rtmr_of_mr_index(mr_index: u32) -> Option<usize> {
    (CC_MR_INDEX_RTMR0..CC_MR_INDEX_RTMR0 + 4)
        .contains(&mr_index)
        .then(|| (mr_index - CC_MR_INDEX_RTMR0) as usize)
}

/// The CC MR index TDVF uses for a TPM PCR: PCR 0, 1, 7 → 1 (RTMR0); 2-6 → 2 (RTMR1);
/// 8-15 → 3 (RTMR2); anything else → 4 (RTMR3).
pub fn mr_index_of_pcr(pcr: u32) -> u32 {
    match pcr {
        0 | 1 | 7 => 1,
        2..=6 => 2,
        8..=15 => 3,
        _ => 4,
    }
}

/// An empty CCEL log with its SHA-384-only spec ID header, as TDVF writes it.
pub fn empty_ccel() -> EventLog {
    EventLog {
        spec_id: TcgEfiSpecIdEvent::for_algorithms(&[(TPM_ALG_SHA384, 48)]),
        events: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_mapping() {
        assert_eq!(rtmr_of_mr_index(0), None);
        assert_eq!(rtmr_of_mr_index(1), Some(0));
        assert_eq!(rtmr_of_mr_index(4), Some(3));
        assert_eq!(rtmr_of_mr_index(5), None);
        assert_eq!(
            [0, 1, 7, 2, 6, 8, 15, 16].map(mr_index_of_pcr),
            [1, 1, 1, 2, 2, 3, 3, 4]
        );
    }
}
