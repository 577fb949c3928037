//! Fuzz target `tdx_eventlog`: arbitrary bytes as a TCG2 crypto-agile / CCEL event log through
//! the parser, the serializer and the RTMR replay. Any panic is a bug; a log that parses must
//! parse again, identically, after serialization.

#![no_main]

use cvm_measurements::eventlog::EventLog;
use cvm_measurements::tdx::rtmr::rtmrs_from_ccel;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(log) = EventLog::parse(data) else { return };
    let _ = rtmrs_from_ccel(&log);
    assert_eq!(EventLog::parse(&log.to_bytes()).ok(), Some(log));
});
