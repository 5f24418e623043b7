#![no_main]
use ledger_format::checkpoint::{Checkpoint, SignedCheckpoint};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(cp) = Checkpoint::parse(text) {
            // Strict parsing means one spelling per checkpoint.
            assert_eq!(cp.to_text(), text);
        }
    }
    let _ = SignedCheckpoint::parse(data);
});
