#![no_main]
use ledger_format::note::{Note, VerifierKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(note) = Note::parse(data) {
        // A parsed note re-encodes to the same bytes.
        assert_eq!(note.to_text().as_bytes(), data);
        let key = VerifierKey::parse("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW").unwrap();
        let _ = note.verify(&[key]);
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = VerifierKey::parse(s);
    }
});
