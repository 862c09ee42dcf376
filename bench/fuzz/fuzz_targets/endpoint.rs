//! `Endpoint` parsing: never a panic, an error is one line, and every address accepted prints
//! back as itself. The lookup-free parser, so no input asks a DNS server anything.
#![no_main]

use echo_cli::Endpoint;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Endpoint::parse_literal(text) {
        Ok(endpoint) => {
            let shown = endpoint.to_string();
            assert_eq!(
                Endpoint::parse_literal(&shown),
                Ok(endpoint),
                "{text:?} -> {shown:?}"
            );
        }
        Err(err) => assert_eq!(err.to_string().lines().count(), 1, "{text:?}: {err}"),
    }
});
