//! A suite's run.json: recognised and read (what `report`, `compare`, `stability` and
//! `history append` do first), then aggregated, tabled, advised on and compared with itself.
#![no_main]

use echo_bench::ab::compare::compare;
use echo_bench::suite::{SuiteRun, advice};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = echo_bench::history::record_of_bytes(data, "run.json");
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(run) = SuiteRun::from_json(text) else {
        return;
    };
    let aggregates = advice::aggregate(&run);
    let _ = echo_bench::render::markdown::tables(&aggregates);
    let _ = advice::advice_of(&run, &aggregates);
    let _ = advice::verdicts(&run);
    let _ = compare(&run, &run, 10.0, "fuzz");
});
