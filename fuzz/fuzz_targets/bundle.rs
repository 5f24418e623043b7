#![no_main]
//! Approval bundles: parsing, opening against a key and evaluating against a policy never panic,
//! and an opened bundle with a bad checkpoint proves nothing.
use ledger_format::approval::{evaluate, Bundle};
use ledger_format::note::SignerKey;
use ledger_format::policy::Policy;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(bundle) = Bundle::parse(data) else { return };
    let key = SignerKey::from_seed("example.com/log", [1; 32]).unwrap().verifier();
    let opened = bundle.open(&key, &[]);
    if opened.checkpoint.is_none() {
        assert!(opened.request.is_none() && opened.approvals.is_empty());
    }
    if let Some(case) = opened.case() {
        let ev = evaluate(&Policy::default(), &case, 0);
        assert!(!ev.approved(), "no signature can verify under a policy without people");
    }
});
