//! Fuzzes the spooling directory source's AVRO deserializer (an Avro object container
//! file dropped into the spool directory, which may be truncated, corrupt or hostile): any
//! bytes give datums or an error, never a panic or an unbounded allocation; and every
//! datum it gives is one value of the file's schema: where the apache-avro decoder reads it,
//! it reads exactly the datum's bytes.
#![no_main]

use flume_fast::source::spooldir::deserializer::{avro_datums, Container};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok((hash, datums)) = avro_datums(data) else {
        return;
    };
    assert_eq!(hash.len(), 16, "the hash is 8 bytes in hex");
    let (container, _) = Container::read(&mut &data[..]).expect("the header parsed before");
    for d in datums {
        let mut rest = &d[..];
        // (apache-avro refuses some values the walk lets through, e.g. a string that is
        // not UTF-8, which a downstream Java reader would take.)
        if apache_avro::from_avro_datum(&container.schema, &mut rest, None).is_ok() {
            assert!(rest.is_empty(), "a datum is exactly one value");
        }
    }
});
