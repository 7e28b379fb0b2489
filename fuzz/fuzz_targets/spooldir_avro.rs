//! Fuzzes the spooling directory source's AVRO deserializer (an Avro object container
//! file dropped into the spool directory, which may be truncated, corrupt or hostile): any
//! bytes give datums or an error, never a panic or an unbounded allocation; and every
//! datum it gives is Avro binary of the file's schema that re-encodes to the same bytes
//! (what a downstream reader of `flume.avro.schema.hash` decodes).
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
        let v = apache_avro::from_avro_datum(&container.schema, &mut rest, None)
            .expect("a datum the deserializer gave decodes");
        assert!(rest.is_empty(), "a datum is exactly one value");
        let again = apache_avro::to_avro_datum(&container.schema, v).expect("it encodes");
        assert_eq!(again, d, "the encoding is stable");
    }
});
