//! Reading the files a configuration names (the configuration itself, keystores,
//! truststores): only regular files, only up to a size such a file can sensibly have, so a
//! path to `/dev/zero` or a FIFO is a clear error instead of unbounded memory or a hang.

use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// The most a configuration file may hold.
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;
/// The most a keystore or truststore may hold (real ones are a few KiB).
pub const MAX_STORE_BYTES: u64 = 4 << 20;

/// The whole content of `path`, if it is a regular file (after symlinks) of at most `max`
/// bytes. The check is made on the open file, so a file swapped in between cannot slip by,
/// and the read stops at `max + 1` bytes in case the file grows meanwhile.
pub fn read_regular(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    let ft = meta.file_type();
    if !ft.is_file() {
        let what = if ft.is_dir() {
            "a directory"
        } else if ft.is_fifo() {
            "a FIFO"
        } else if ft.is_char_device() {
            "a character device"
        } else if ft.is_block_device() {
            "a block device"
        } else if ft.is_socket() {
            "a socket"
        } else {
            "not a regular file"
        };
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("it is {what}, not a regular file"),
        ));
    }
    let too_big = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "it is larger than {} bytes, more than such a file can be",
                max
            ),
        )
    };
    if meta.len() > max {
        return Err(too_big());
    }
    let mut data = Vec::with_capacity(meta.len() as usize);
    file.take(max + 1).read_to_end(&mut data)?;
    if data.len() as u64 > max {
        return Err(too_big());
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_are_read_and_the_rest_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.conf");
        std::fs::write(&f, b"a = 1\n").unwrap();
        assert_eq!(read_regular(&f, 100).unwrap(), b"a = 1\n");

        let err = read_regular(&f, 3).unwrap_err().to_string();
        assert!(err.contains("larger than 3 bytes"), "{err}");

        let err = read_regular(Path::new("/dev/zero"), 1 << 20)
            .unwrap_err()
            .to_string();
        assert!(err.contains("a character device"), "{err}");
        let err = read_regular(dir.path(), 1 << 20).unwrap_err().to_string();
        assert!(err.contains("a directory"), "{err}");

        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = read_regular(&fifo, 1 << 20).unwrap_err().to_string();
        assert!(err.contains("a FIFO"), "{err}");
    }
}
