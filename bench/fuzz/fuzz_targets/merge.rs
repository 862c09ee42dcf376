//! `echo-bench merge`'s input: an `echo-bench run --json` report read, then merged with itself.
#![no_main]

use echo_bench::Report;
use echo_loadgen::merge::merge;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(report) = serde_json::from_slice::<Report>(data) else {
        return;
    };
    if let Ok(merged) = merge(&[("a".into(), report.clone()), ("b".into(), report)]) {
        let _ = merged.summary();
    }
});
