//! `hdfs.codeC`: the Hadoop compression codecs flume-fast can write, named as Flume names
//! them (full class name, simple name, or simple name without `Codec`, any case), with the
//! bytes Hadoop's codec of that class reads back: `GzipCodec` writes gzip members,
//! `DefaultCodec` / `DeflateCodec` write zlib streams.

use flate2::write::{GzEncoder, ZlibEncoder};
use flate2::Compression;
use std::io::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Gzip,
    Default,
    Deflate,
}

/// Codecs Hadoop knows that flume-fast does not write; named in the refusal.
const UNSUPPORTED: &[&str] = &[
    "BZip2",
    "Lz4",
    "Snappy",
    "ZStandard",
    "Lzo",
    "Lzop",
    "Passthrough",
];

impl Codec {
    /// `Ok(None)` is Flume's `None` (no compression).
    pub fn parse(name: &str) -> Result<Option<Codec>, String> {
        let simple = name.rsplit('.').next().unwrap_or(name);
        let short = if simple.len() > 5 && simple[simple.len() - 5..].eq_ignore_ascii_case("codec")
        {
            &simple[..simple.len() - 5]
        } else {
            simple
        };
        let known_package =
            !name.contains('.') || name.starts_with("org.apache.hadoop.io.compress.");
        if name.eq_ignore_ascii_case("none") {
            return Ok(None);
        }
        if known_package {
            for (n, c) in [
                ("gzip", Codec::Gzip),
                ("default", Codec::Default),
                ("deflate", Codec::Deflate),
            ] {
                if short.eq_ignore_ascii_case(n) {
                    return Ok(Some(c));
                }
            }
        }
        let why = if UNSUPPORTED.iter().any(|u| short.eq_ignore_ascii_case(u)) {
            format!("codec '{name}' is not supported by flume-fast")
        } else {
            format!("unknown compression codec '{name}'")
        };
        Err(format!(
            "{why}; choose one of: gzip, default, deflate (Hadoop's GzipCodec, DefaultCodec, DeflateCodec) or None"
        ))
    }

    /// The class name Hadoop's SequenceFile header carries.
    pub fn class(self) -> &'static str {
        match self {
            Codec::Gzip => "org.apache.hadoop.io.compress.GzipCodec",
            Codec::Default => "org.apache.hadoop.io.compress.DefaultCodec",
            Codec::Deflate => "org.apache.hadoop.io.compress.DeflateCodec",
        }
    }

    /// `getDefaultExtension()`, which Flume appends to file names when no suffix is set.
    pub fn extension(self) -> &'static str {
        match self {
            Codec::Gzip => ".gz",
            Codec::Default | Codec::Deflate => ".deflate",
        }
    }

    /// Appends `data` compressed as one complete stream (a gzip member, a zlib stream).
    pub fn compress(self, data: &[u8], out: &mut Vec<u8>) {
        // Writing into a Vec cannot fail.
        match self {
            Codec::Gzip => {
                let mut e = GzEncoder::new(out, Compression::default());
                e.write_all(data).expect("Vec write");
                e.finish().expect("Vec write");
            }
            Codec::Default | Codec::Deflate => {
                let mut e = ZlibEncoder::new(out, Compression::default());
                e.write_all(data).expect("Vec write");
                e.finish().expect("Vec write");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn names_as_flume_matches_them() {
        for n in [
            "gzip",
            "GZIP",
            "GzipCodec",
            "org.apache.hadoop.io.compress.GzipCodec",
        ] {
            assert_eq!(Codec::parse(n), Ok(Some(Codec::Gzip)), "{n}");
        }
        assert_eq!(Codec::parse("DefaultCodec"), Ok(Some(Codec::Default)));
        assert_eq!(Codec::parse("deflate"), Ok(Some(Codec::Deflate)));
        assert_eq!(Codec::parse("None"), Ok(None));
        let e = Codec::parse("snappy").unwrap_err();
        assert!(e.contains("not supported"), "{e}");
        let e = Codec::parse("com.example.GzipCodec").unwrap_err();
        assert!(e.contains("unknown"), "{e}");
    }

    #[test]
    fn streams_decompress() {
        let mut out = Vec::new();
        Codec::Gzip.compress(b"hello", &mut out);
        Codec::Gzip.compress(b" world", &mut out);
        let mut s = String::new();
        flate2::read::MultiGzDecoder::new(&out[..])
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "hello world");
        out.clear();
        Codec::Default.compress(b"zlib", &mut out);
        assert_eq!(out[0], 0x78, "zlib header");
        s.clear();
        flate2::read::ZlibDecoder::new(&out[..])
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "zlib");
    }
}
