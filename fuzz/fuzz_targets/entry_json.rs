#![no_main]
use ledger_format::entry::parse_submissions;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok((subs, _)) = parse_submissions(s) {
            for sub in subs {
                let v: serde_json_check::Value = serde_json_check::from_str(sub.body).unwrap();
                assert!(v.is_object());
            }
        }
        if let Ok(v) = serde_json_check::from_str::<serde_json_check::Value>(s) {
            let _ = ledger_format::jcs::canonicalize(&v);
        }
    }
});
