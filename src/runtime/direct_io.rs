//! Socket reads and writes a task makes itself, with non-blocking system calls, before it
//! hands them to io_uring.
//!
//! Why: on a shard that is polling (`spin`), an io_uring read of a socket costs a poll arm,
//! task work to run the read when data comes, a completion, the runtime's `epoll` wake-up
//! for the ring and a task wake-up, a large part of a small batch's round trip; these
//! calls take all of that out of it (figures: docs/architecture.md, "Polling"). A reader
//! that finds nothing waits for the spinner's next turn and tries again, for as long as
//! the shard polls and its own last data is recent; then it arms an io_uring read and
//! sleeps as before, so an idle connection costs nothing.
//!
//! A write is tried once: what the socket buffer takes now is sent, the rest goes through
//! io_uring.

use bytes::BytesMut;
use socket2::SockRef;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// What a non-blocking read found.
#[derive(Debug)]
pub enum Recv {
    /// This many bytes were appended; 0 is the end of the stream.
    Read(usize),
    /// Nothing to read yet.
    WouldBlock,
}

/// A socket2 view of a socket that lacks `AsFd` (tokio-uring's streams).
pub fn sock<S: AsRawFd>(s: &S) -> BorrowedFd<'_> {
    // SAFETY: the descriptor belongs to `s`, which outlives the borrow.
    unsafe { BorrowedFd::borrow_raw(s.as_raw_fd()) }
}

/// Reads what the socket holds into `target`'s spare capacity, without blocking. The
/// caller leaves room: a read into none would look like the end of the stream.
pub fn try_recv<S: AsRawFd>(s: &S, target: &mut BytesMut) -> io::Result<Recv> {
    assert!(target.capacity() > target.len(), "a read needs room");
    let fd = sock(s);
    loop {
        let r = SockRef::from(&fd).recv_with_flags(target.spare_capacity_mut(), libc::MSG_DONTWAIT);
        return match r {
            Ok(n) => {
                // SAFETY: recv initialised the first `n` bytes of the spare capacity.
                unsafe { target.set_len(target.len() + n) };
                Ok(Recv::Read(n))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Recv::WouldBlock),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => Err(e),
        };
    }
}

/// Sends as much of `bytes` as the socket takes now, without blocking; 0 if it takes none.
pub fn try_send<S: AsRawFd>(s: &S, bytes: &[u8]) -> io::Result<usize> {
    let fd = sock(s);
    loop {
        return match SockRef::from(&fd)
            .send_with_flags(bytes, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
        {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => Err(e),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (b, _) = l.accept().unwrap();
        (a, b)
    }

    #[test]
    fn reads_what_is_there_and_says_when_nothing_is() {
        let (mut a, b) = pair();
        let mut buf = BytesMut::with_capacity(64);
        buf.extend_from_slice(b"kept ");
        assert!(matches!(try_recv(&b, &mut buf).unwrap(), Recv::WouldBlock));
        a.write_all(b"hello").unwrap();
        // The bytes are in b's receive queue once loopback delivered them; wait for that.
        let mut got = 0;
        while got == 0 {
            if let Recv::Read(n) = try_recv(&b, &mut buf).unwrap() {
                got = n;
            }
        }
        assert_eq!(&buf[..], b"kept hello");
        drop(a);
        let end = loop {
            match try_recv(&b, &mut buf).unwrap() {
                Recv::Read(n) => break n,
                Recv::WouldBlock => std::thread::yield_now(),
            }
        };
        assert_eq!(end, 0, "end of stream reads as 0");
    }

    #[test]
    fn a_reset_is_an_error() {
        let (a, b) = pair();
        SockRef::from(&a)
            .set_linger(Some(std::time::Duration::ZERO))
            .unwrap();
        drop(a);
        let mut buf = BytesMut::with_capacity(16);
        let err = loop {
            match try_recv(&b, &mut buf) {
                Err(e) => break e,
                Ok(_) => {
                    buf.clear();
                    std::thread::yield_now()
                }
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
    }

    #[test]
    fn sends_what_the_socket_takes_and_zero_when_it_is_full() {
        let (a, mut b) = pair();
        assert_eq!(try_send(&a, b"ping").unwrap(), 4);
        let mut got = [0u8; 4];
        b.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"ping");
        // Nobody reads b: the send and receive buffers fill, then a send takes nothing.
        let chunk = vec![7u8; 1 << 20];
        let mut total = 0usize;
        loop {
            match try_send(&a, &chunk).unwrap() {
                0 => break,
                n => total += n,
            }
        }
        assert!(total > 0);
    }
}
