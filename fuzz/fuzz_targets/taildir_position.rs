//! Fuzzes the TAILDIR position file parser (the file may be edited by hand or written by
//! Java Flume): any bytes give positions or an error, never a panic; and what parses
//! survives a write and a read back unchanged, so a restart resumes where it stopped.
#![no_main]

use flume_fast::source::taildir::position::{format, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(positions) = parse(data) else {
        return;
    };
    let written = format(&positions);
    let again = parse(written.as_bytes()).expect("a written position file parses");
    assert_eq!(again, positions, "read back from {written}");
    assert_eq!(format(&again), written, "the written form is stable");
});
