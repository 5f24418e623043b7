#![no_main]
//! tlog-witness add-checkpoint requests: parsing and the decision never panic, a parsed request
//! re-encodes to the same bytes, and every refusal has one of the spec's status codes.
use ledger_format::note::SignerKey;
use ledger_format::witness::{decide, AddCheckpoint, LogState};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Two trusted keys of the log (a rotation), so that the multi-key path runs too.
    let keys = [
        SignerKey::from_seed("example.com/log", [1; 32]).unwrap().verifier(),
        SignerKey::from_seed("example.com/log", [2; 32]).unwrap().verifier(),
    ];
    let state = Some(LogState { size: 3, root: ledger_format::Hash([2; 32]), key: 1 });
    match AddCheckpoint::parse(data) {
        Ok(req) => {
            if let Ok(note) = std::str::from_utf8(&req.note) {
                assert_eq!(AddCheckpoint::encode(req.old, &req.proof, note).as_bytes(), data);
            }
            if let Err(e) = decide(&req, &keys, |_| state) {
                assert!([400, 403, 404, 409, 422].contains(&e.status()));
            }
        }
        Err(e) => assert_eq!(e.status(), 400),
    }
});
