#![no_main]
use ledger_format::tile::{parse_path, TilePath};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(p) = parse_path(s) {
            let back = match p {
                TilePath::Tile(t) => t.path(),
                TilePath::Entries(b) => b.path(),
            };
            assert_eq!(back, s);
        }
    }
    let _ = ledger_format::tile::decode_bundle(data);
    let _ = ledger_format::tile::decode_tile(data);
});
