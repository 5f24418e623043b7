#![no_main]
use ledger_format::leaf::Leaf;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(leaf) = Leaf::parse(data) {
        assert_eq!(leaf.encode().unwrap(), data);
    }
});
