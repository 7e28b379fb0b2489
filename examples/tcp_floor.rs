//! The floor under S1's one-connection cells: a bare TCP ping-pong over loopback, the same
//! bytes as one batch and its answer, with no application work at all. Both ends busy-poll
//! with non-blocking `recv`, as the agent and loadgen do while they poll, so the time per
//! round trip is what the kernel's TCP path costs on this machine; the server's CPU per
//! round trip is what a polling agent could at best spend per batch.
//!
//! First it times a cache line's round trip between the two CPUs (two threads handing an
//! atomic back and forth). On the virtual machine the benchmarks ran on, that is about
//! 45 ns most of the time and about 430 ns when the host has put the two virtual CPUs far
//! apart; the TCP round trip and every one-connection cell follow it (see BENCHMARKS.md).
//!
//! With `--blocking` the server reads with blocking `recv` instead, sleeping between
//! requests: its CPU per round trip is then the kernel's TCP work plus a sleep and a wake-up,
//! what an agent that does not poll could at best spend per batch. The smaller of the two
//! bounds the events per CPU-second of any agent that answers batches over the kernel's TCP.
//!
//! ```text
//! cargo run --release --example tcp_floor -- [--blocking] [request bytes] [answer bytes] [round trips]
//! cargo run --release --example tcp_floor -- --cache-line    # only that, in ns
//! ```
//!
//! `scripts/bench-vs-flume` runs it with `--cache-line` before and after each run.
//!
//! It pins the server to CPU 0 and the client to CPU 1 when the machine has two, as
//! `scripts/bench-vs-flume` pins agent and loadgen. After the handshake, an S1 batch of
//! 100 x 100 B events is 10,328 bytes on the wire with its frame, 100 x 1 KiB 102,728, and
//! the answer 15.

use socket2::SockRef;
use std::io::{Read, Write};
use std::mem::MaybeUninit;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// The CPUs the process started with. Taken once: a thread spawned by a pinned one
/// inherits its single CPU.
fn cpus() -> &'static [core_affinity::CoreId] {
    static CORES: std::sync::OnceLock<Vec<core_affinity::CoreId>> = std::sync::OnceLock::new();
    CORES.get_or_init(|| core_affinity::get_core_ids().unwrap_or_default())
}

/// Pins this thread to the `cpu`th of `cpus()`, when there are two or more.
fn pin(cpu: usize) {
    let cores = cpus();
    if cores.len() > 1 {
        core_affinity::set_for_current(cores[cpu % cores.len()]);
    }
}

/// Reads exactly `want` bytes, polling with non-blocking `recv`; false at end of stream.
fn poll_read(s: &TcpStream, buf: &mut [MaybeUninit<u8>], want: usize) -> bool {
    let mut got = 0;
    while got < want {
        match SockRef::from(s).recv_with_flags(&mut buf[..want - got], libc::MSG_DONTWAIT) {
            Ok(0) => return false,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("recv: {e}"),
        }
    }
    true
}

/// Nanoseconds for a cache line to go from CPU 0 to CPU 1 and back; `None` with fewer than
/// two CPUs, where the two threads would take turns on one and each hand-over would wait
/// for the scheduler.
fn cache_line_round_trip(rounds: u64) -> Option<f64> {
    if cpus().len() < 2 {
        return None;
    }
    pin(0);
    let line = Arc::new(AtomicU64::new(0));
    let other = line.clone();
    let echo = std::thread::spawn(move || {
        pin(1);
        for i in 0..rounds {
            while other.load(Ordering::Acquire) != 2 * i + 1 {
                std::hint::spin_loop();
            }
            other.store(2 * i + 2, Ordering::Release);
        }
    });
    let started = Instant::now();
    for i in 0..rounds {
        line.store(2 * i + 1, Ordering::Release);
        while line.load(Ordering::Acquire) != 2 * i + 2 {
            std::hint::spin_loop();
        }
    }
    let ns = started.elapsed().as_nanos() as f64 / rounds as f64;
    echo.join().expect("echo thread");
    Some(ns)
}

fn cpu_seconds() -> f64 {
    let mut r = MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: getrusage fills the struct it is given.
    let r = unsafe {
        libc::getrusage(libc::RUSAGE_THREAD, r.as_mut_ptr());
        r.assume_init()
    };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(r.ru_utime) + t(r.ru_stime)
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("--cache-line") {
        match cache_line_round_trip(200_000) {
            Some(ns) => println!("{ns:.0}"),
            None => println!("n/a"),
        }
        return;
    }
    let blocking = std::env::args().nth(1).as_deref() == Some("--blocking");
    let args: Vec<String> = std::env::args().skip(1 + blocking as usize).collect();
    let arg = |i: usize, default: usize| {
        args.get(i - 1)
            .map_or(default, |v| v.parse().expect("a number"))
    };
    let (request, answer, rounds) = (arg(1, 10_328), arg(2, 15), arg(3, 200_000));
    match cache_line_round_trip(1_000_000) {
        Some(ns) => println!("cache line round trip between the CPUs: {ns:.0} ns"),
        None => println!("one CPU: no cache line round trip between CPUs to time"),
    }
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    let client = std::thread::spawn(move || {
        pin(1);
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_nodelay(true).expect("nodelay");
        let out = vec![b'x'; request];
        let mut buf = vec![MaybeUninit::new(0u8); answer.max(1)];
        for _ in 0..rounds {
            s.write_all(&out).expect("send");
            assert!(poll_read(&s, &mut buf, answer), "server closed");
        }
    });
    pin(0);
    let (mut s, _) = listener.accept().expect("accept");
    s.set_nodelay(true).expect("nodelay");
    let reply = vec![b'y'; answer];
    let mut buf = vec![MaybeUninit::new(0u8); request.max(1)];
    let mut whole = vec![0u8; if blocking { request } else { 0 }];
    let (started, cpu) = (Instant::now(), cpu_seconds());
    for _ in 0..rounds {
        if blocking {
            s.read_exact(&mut whole).expect("client closed");
        } else {
            assert!(poll_read(&s, &mut buf, request), "client closed");
        }
        s.write_all(&reply).expect("send");
    }
    let (wall, cpu) = (started.elapsed().as_secs_f64(), cpu_seconds() - cpu);
    client.join().expect("client");
    println!(
        "{rounds} round trips of {request} + {answer} bytes, server {}: {:.2} µs each, server CPU {:.2} µs each",
        if blocking { "blocking" } else { "polling" },
        wall * 1e6 / rounds as f64,
        cpu * 1e6 / rounds as f64
    );
}
