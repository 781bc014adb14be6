//! Arbitrary bytes through both config front-ends (HCL v1 and JSON) and the whole pipeline
//! behind them: decoding, merging, layering, validation and the redacted dump. Any panic,
//! overflow or runaway recursion is a bug.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    agent_config::fuzz_config_parse(data);
});
