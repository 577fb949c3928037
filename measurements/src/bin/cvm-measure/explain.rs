//! `cvm-measure explain A B`: an event-by-event diff of two CCEL event logs (e.g. a predicted
//! `--event-log-out` and a TD's `/sys/firmware/acpi/tables/data/CCEL`), per register, so a
//! mismatching RTMR points at the event that differs. Exit 0 when the logs replay alike, 1 when
//! they differ.

use std::path::PathBuf;

use anyhow::{Context, Result};
use cvm_measurements::eventlog::alg::TPM_ALG_SHA384;
use cvm_measurements::eventlog::TcgPcrEvent2;
use cvm_measurements::tdx::rtmr::rtmrs_from_ccel;

use crate::tdx::{event_line, read_ccel};

#[derive(clap::Args)]
pub struct Args {
    /// First CCEL log (e.g. the prediction)
    #[arg(value_name = "A")]
    a: PathBuf,
    /// Second CCEL log (e.g. captured from the TD)
    #[arg(value_name = "B")]
    b: PathBuf,
}

/// Diff entries of a longest-common-subsequence alignment.
enum Step<'a> {
    Same(usize, &'a TcgPcrEvent2),
    OnlyA(usize, &'a TcgPcrEvent2),
    OnlyB(usize, &'a TcgPcrEvent2),
}

fn key(e: &TcgPcrEvent2) -> (u32, u32, Option<&[u8]>) {
    (e.pcr_index, e.event_type, e.digest(TPM_ALG_SHA384))
}

/// Align two event sequences (indexes are 1-based positions in the whole log).
fn align<'a>(a: &[(usize, &'a TcgPcrEvent2)], b: &[(usize, &'a TcgPcrEvent2)]) -> Vec<Step<'a>> {
    let (n, m) = (a.len(), b.len());
    let mut l = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            l[i][j] = if key(a[i].1) == key(b[j].1) {
                l[i + 1][j + 1] + 1
            } else {
                l[i + 1][j].max(l[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < n || j < m {
        if i < n && j < m && key(a[i].1) == key(b[j].1) {
            out.push(Step::Same(a[i].0, a[i].1));
            i += 1;
            j += 1;
        } else if j >= m || (i < n && l[i + 1][j] >= l[i][j + 1]) {
            out.push(Step::OnlyA(a[i].0, a[i].1));
            i += 1;
        } else {
            out.push(Step::OnlyB(b[j].0, b[j].1));
            j += 1;
        }
    }
    out
}

/// The events of one CC MR index with their 1-based positions in the whole log.
fn events_of(events: &[TcgPcrEvent2], idx: u32) -> Vec<(usize, &TcgPcrEvent2)> {
    events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.pcr_index == idx)
        .map(|(i, e)| (i + 1, e))
        .collect()
}

pub fn run(args: Args) -> Result<i32> {
    let la = read_ccel(&args.a)?;
    let lb = read_ccel(&args.b)?;
    let ra = rtmrs_from_ccel(&la).with_context(|| format!("replaying {}", args.a.display()))?;
    let rb = rtmrs_from_ccel(&lb).with_context(|| format!("replaying {}", args.b.display()))?;
    let mut indexes: Vec<u32> = la
        .events
        .iter()
        .chain(&lb.events)
        .map(|e| e.pcr_index)
        .collect();
    indexes.sort_unstable();
    indexes.dedup();
    let mut differs = false;
    for idx in indexes {
        let steps = align(&events_of(&la.events, idx), &events_of(&lb.events, idx));
        let reg = match idx {
            1..=4 => format!("RTMR{}", idx - 1),
            _ => format!("CC MR index {idx}"),
        };
        let same_reg = (1..=4).contains(&idx) && ra[(idx - 1) as usize] == rb[(idx - 1) as usize];
        println!("{reg}: {}", if same_reg { "same" } else { "DIFFERENT" });
        if (1..=4).contains(&idx) {
            let i = (idx - 1) as usize;
            println!("  A {}\n  B {}", hex::encode(ra[i]), hex::encode(rb[i]));
        }
        for s in steps {
            match s {
                Step::Same(i, e) => println!("  = {}", event_line(i, e)),
                Step::OnlyA(i, e) => {
                    differs = true;
                    println!("  - {}   (only in A)", event_line(i, e));
                }
                Step::OnlyB(i, e) => {
                    differs = true;
                    println!("  + {}   (only in B)", event_line(i, e));
                }
            }
        }
    }
    differs |= ra != rb;
    Ok(if differs { 1 } else { 0 })
}
