#![no_main]
//! Policy files: parsing never panics, and an accepted policy is internally consistent.
use ledger_format::policy::Policy;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(p) = Policy::parse(text) {
        assert!(p.min_approvers >= 1);
        assert!(p.witnesses_required <= p.witness_keys.len());
        assert!(p.metrics.iter().all(|m| m.min.is_some() || m.max.is_some()));
    }
});
