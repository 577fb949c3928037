//! Replaying an event log into register values: `new = H(old ‖ digest)` from all-zero
//! registers, per register index, skipping `EV_NO_ACTION` events (which are not extended, PFP
//! 1.05 §10.4.1). Generic over the hash, so TDX RTMRs (SHA-384) and vTPM PCRs (SHA-256) share it.

use std::collections::BTreeMap;

use sha2::Digest;

use super::event_type::EV_NO_ACTION;
use super::{Error, EventLog};

/// Extend `register` with `digest`: `register = H(register ‖ digest)`.
pub fn extend<D: Digest>(register: &mut [u8], digest: &[u8]) {
    let mut h = D::new();
    h.update(&*register);
    h.update(digest);
    register.copy_from_slice(&h.finalize());
}

/// Replay every event's `alg` digest into a map `pcrIndex → value`. An extended event without a
/// digest for `alg`, or with a digest of the wrong size, is an error naming the event.
pub fn replay<D: Digest>(log: &EventLog, alg: u16) -> Result<BTreeMap<u32, Vec<u8>>, Error> {
    let size = <D as Digest>::output_size();
    let mut regs = BTreeMap::new();
    for (i, e) in log.events.iter().enumerate() {
        if e.event_type == EV_NO_ACTION {
            continue;
        }
        let d = e.digest(alg).ok_or_else(|| Error::Invalid {
            field: "TCG_PCR_EVENT2.digests",
            event: i + 1,
            offset: 0,
            problem: format!("no digest for algorithm {alg:#06x}"),
        })?;
        if d.len() != size {
            return Err(Error::Invalid {
                field: "TPMT_HA.digest",
                event: i + 1,
                offset: 0,
                problem: format!("{} bytes, expected {size}", d.len()),
            });
        }
        let reg = regs.entry(e.pcr_index).or_insert_with(|| vec![0u8; size]);
        extend::<D>(reg, d);
    }
    Ok(regs)
}

#[cfg(test)]
mod tests {
    use super::super::alg::{TPM_ALG_SHA256, TPM_ALG_SHA384};
    use super::super::tcg2::{TcgEfiSpecIdEvent, TcgPcrEvent2, TpmtHa};
    use super::*;
    use sha2::{Sha256, Sha384};

    #[test]
    fn replay_extends_per_index_and_skips_no_action() {
        let ev = |pcr, t, b: u8| TcgPcrEvent2 {
            pcr_index: pcr,
            event_type: t,
            digests: vec![TpmtHa {
                hash_alg: TPM_ALG_SHA384,
                digest: vec![b; 48],
            }],
            event: vec![],
        };
        let log = EventLog {
            spec_id: TcgEfiSpecIdEvent::for_algorithms(&[(TPM_ALG_SHA384, 48)]),
            events: vec![
                ev(1, 4, 1),
                ev(2, 4, 2),
                ev(1, EV_NO_ACTION, 3),
                ev(1, 4, 4),
            ],
        };
        let regs = replay::<Sha384>(&log, TPM_ALG_SHA384).unwrap();
        let mut r1 = [0u8; 48];
        extend::<Sha384>(&mut r1, &[1; 48]);
        extend::<Sha384>(&mut r1, &[4; 48]);
        assert_eq!(regs[&1], r1);
        assert_eq!(regs.len(), 2);
        assert!(replay::<Sha256>(&log, TPM_ALG_SHA256).is_err());
    }
}
