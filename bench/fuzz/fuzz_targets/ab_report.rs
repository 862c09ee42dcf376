//! An `ab --json` report: recognised and read (`--calibration`, `history append`), then its
//! noise floors.
#![no_main]

use echo_bench::ab::AbReport;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = echo_bench::history::record_of_bytes(data, "ab.json");
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if let Ok(report) = AbReport::from_value(value) {
        let _ = report.noise_floors();
    }
});
