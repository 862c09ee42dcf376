//! A history.jsonl: every line read or skipped (`history report`), then the change points of
//! what was read (with few permutations and at most 64 records, to keep each input fast).
#![no_main]

use echo_bench::history::{self, edivisive::Settings};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let loaded = history::parse(data, "history.jsonl");
    for line in &loaded.skipped {
        assert_eq!(line.lines().count(), 1, "{line}");
    }
    if loaded.records.len() <= 64 {
        let settings = Settings {
            permutations: 9,
            ..Settings::default()
        };
        let _ = history::change_points(&loaded.records, &settings, 1.0);
    }
});
