#![no_main]
use ledger_format::note::VerifierKey;
use ledger_format::receipt::TlogProof;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = TlogProof::parse(data) {
        let _ = p.checkpoint_body();
        let key = VerifierKey::parse("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW").unwrap();
        let _ = p.verify(None, &key, &[]);
    }
});
