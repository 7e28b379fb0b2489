//! The floor under S1: a bare TCP ping-pong over loopback, the same bytes as a batch and its
//! answer, with no application work at all. The server busy-polls its connections with
//! non-blocking `recv`, as the agent does while it polls, and the client keeps one request in
//! flight per connection, as loadgen does, so the time per round trip is what the kernel's
//! TCP path costs on this machine.
//!
//! It prints, per round trip:
//!
//! - the server's CPU: all a polling server spent, empty polls included;
//! - its time in the `recv`s that returned bytes and in the `send`s: the kernel's own work
//!   for a request and its answer. No agent that answers over the kernel's TCP can spend
//!   less per batch, so this bounds the events per CPU-second of any such agent.
//!   `scripts/bench-vs-flume` measures it for every S1 cell next to the agents' runs.
//!
//! With `--conns N` the server answers N connections in turn, as one flume-fast shard does,
//! and the client keeps N requests in flight. With `--blocking` (one connection) the server
//! reads with blocking `recv` instead, sleeping between requests: its CPU per round trip is
//! then the kernel's work plus a sleep and a wake-up, what an agent that does not poll would
//! spend at best.
//!
//! First it times a cache line's round trip between the two CPUs (two threads handing an
//! atomic back and forth). On the virtual machine the benchmarks ran on, that is about
//! 45 ns most of the time and about 430 ns when the host has put the two virtual CPUs far
//! apart; the TCP round trip and every one-connection cell follow it (see docs/benchmarking.md).
//!
//! ```text
//! cargo run --release --example tcp_floor -- [--blocking] [--conns N] [--secs S] \
//!     [request bytes] [answer bytes] [round trips]
//! cargo run --release --example tcp_floor -- --cache-line    # only that, in ns
//! ```
//!
//! It stops after the round trips or the seconds, whichever comes first.
//! `scripts/bench-vs-flume` also runs it with `--cache-line` before and after each run.
//!
//! It pins the server to CPU 0 and the client to CPU 1 when the machine has two, as
//! `scripts/bench-vs-flume` pins agent and loadgen. After the handshake, an S1 batch of
//! 100 x 100 B events is 10,328 bytes on the wire with its frame, 100 x 1 KiB 102,728, and
//! the answer 15 (loadgen reports a batch's bytes as `batch_frame_bytes`).

use socket2::SockRef;
use std::io::{Read, Write};
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// Reads what is there into `buf` without waiting: `Some(0)` at end of stream, `None` when
/// nothing has arrived.
fn try_read(s: &TcpStream, buf: &mut [MaybeUninit<u8>]) -> Option<usize> {
    match SockRef::from(s).recv_with_flags(buf, libc::MSG_DONTWAIT) {
        Ok(n) => Some(n),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
        Err(e) => panic!("recv: {e}"),
    }
}

/// The client: one thread keeps one request in flight on each connection, polling them in
/// turn for answers, as `flume-fast loadgen` does. Once `stop` is set it sends no more
/// requests, waits for the answers still due and closes the connections.
fn clients(addr: SocketAddr, conns: usize, request: usize, answer: usize, stop: &AtomicBool) {
    pin(1);
    let mut socks: Vec<TcpStream> = (0..conns)
        .map(|_| {
            let s = TcpStream::connect(addr).expect("connect");
            s.set_nodelay(true).expect("nodelay");
            s
        })
        .collect();
    let out = vec![b'x'; request];
    let mut buf = vec![MaybeUninit::new(0u8); answer.max(1)];
    let mut got = vec![0usize; conns];
    let mut due = 0;
    for s in socks.iter_mut() {
        s.write_all(&out).expect("send");
        due += 1;
    }
    while due > 0 {
        for (i, s) in socks.iter_mut().enumerate() {
            match try_read(s, &mut buf) {
                Some(0) => panic!("server closed"),
                Some(n) => got[i] += n,
                None => continue,
            }
            while got[i] >= answer {
                got[i] -= answer;
                due -= 1;
                if !stop.load(Ordering::Relaxed) {
                    s.write_all(&out).expect("send");
                    due += 1;
                }
            }
        }
    }
}

/// What the server measured.
struct Served {
    round_trips: u64,
    wall: Duration,
    cpu: f64,
    /// Inside the `recv`s that returned bytes and inside the `send`s: the kernel's work for
    /// the requests and answers, without the empty polls or the sleeps between them.
    working: Duration,
    empty_polls: u64,
}

/// The server: one thread answers every connection, as a flume-fast shard does, polling
/// them in turn with non-blocking `recv` (or, `blocking`, one connection with blocking
/// `recv`). Measures `rounds` round trips or `secs` seconds, whichever ends first, then
/// answers what is still due until the client closes.
fn serve(
    socks: &mut [TcpStream],
    (request, answer): (usize, usize),
    (rounds, secs): (u64, f64),
    blocking: bool,
    stop: &AtomicBool,
) -> Served {
    let reply = vec![b'y'; answer];
    let mut buf = vec![MaybeUninit::new(0u8); request.max(1)];
    let mut whole = vec![0u8; if blocking { request } else { 0 }];
    let mut got = vec![0usize; socks.len()];
    let mut open = socks.len();
    let (mut working, mut empty_polls, mut answered) = (Duration::ZERO, 0, 0);
    let (started, cpu) = (Instant::now(), cpu_seconds());
    let mut served = None;
    while open > 0 {
        for (i, s) in socks.iter_mut().enumerate() {
            if served.is_none() && (answered >= rounds || started.elapsed().as_secs_f64() >= secs) {
                served = Some(Served {
                    round_trips: answered,
                    wall: started.elapsed(),
                    cpu: cpu_seconds() - cpu,
                    working,
                    empty_polls,
                });
                stop.store(true, Ordering::Relaxed);
            }
            if got[i] == usize::MAX {
                continue; // closed
            }
            let t = Instant::now();
            let n = if blocking {
                match s.read_exact(&mut whole) {
                    Ok(()) => request,
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
                    Err(e) => panic!("recv: {e}"),
                }
            } else {
                match try_read(s, &mut buf) {
                    Some(n) => n,
                    None => {
                        empty_polls += 1;
                        continue;
                    }
                }
            };
            if n == 0 {
                got[i] = usize::MAX;
                open -= 1;
                continue;
            }
            got[i] += n;
            working += t.elapsed();
            while got[i] >= request {
                got[i] -= request;
                let t = Instant::now();
                s.write_all(&reply).expect("send");
                working += t.elapsed();
                answered += 1;
            }
        }
    }
    served.expect("measured before the client closed")
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--cache-line") {
        match cache_line_round_trip(200_000) {
            Some(ns) => println!("{ns:.0}"),
            None => println!("n/a"),
        }
        return;
    }
    let (mut blocking, mut conns, mut secs) = (false, 1, f64::INFINITY);
    loop {
        match args.first().map(String::as_str) {
            Some("--blocking") => {
                blocking = true;
                args.remove(0);
            }
            Some(flag @ ("--conns" | "--secs")) => {
                let v = args
                    .get(1)
                    .unwrap_or_else(|| panic!("{flag} needs a number"));
                if flag == "--conns" {
                    conns = v.parse().expect("--conns N");
                } else {
                    secs = v.parse().expect("--secs S");
                }
                args.drain(..2);
            }
            _ => break,
        }
    }
    assert!(conns >= 1, "--conns is at least 1");
    assert!(!(blocking && conns > 1), "--blocking reads one connection");
    let arg = |i: usize, default: u64| {
        args.get(i - 1)
            .map_or(default, |v| v.parse().expect("a number"))
    };
    let default_rounds = if secs.is_finite() { u64::MAX } else { 200_000 };
    let (request, answer, rounds) = (
        arg(1, 10_328) as usize,
        arg(2, 15) as usize,
        arg(3, default_rounds),
    );
    match cache_line_round_trip(1_000_000) {
        Some(ns) => println!("cache line round trip between the CPUs: {ns:.0} ns"),
        None => println!("one CPU: no cache line round trip between CPUs to time"),
    }
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    let stop = Arc::new(AtomicBool::new(false));
    let client = {
        let stop = stop.clone();
        std::thread::spawn(move || clients(addr, conns, request, answer, &stop))
    };
    pin(0);
    let mut socks: Vec<TcpStream> = (0..conns)
        .map(|_| {
            let (s, _) = listener.accept().expect("accept");
            s.set_nodelay(true).expect("nodelay");
            s
        })
        .collect();
    let m = serve(
        &mut socks,
        (request, answer),
        (rounds, secs),
        blocking,
        &stop,
    );
    client.join().expect("client");
    let per = |v: f64| v * 1e6 / m.round_trips as f64;
    // A blocking read's time includes its sleep: only polling reads time the kernel's work.
    let work = if blocking {
        String::new()
    } else {
        format!(
            ", in recv and send {:.2} µs each, {:.1} empty polls each",
            per(m.working.as_secs_f64()),
            m.empty_polls as f64 / m.round_trips as f64
        )
    };
    println!(
        "{} round trips of {request} + {answer} bytes on {conns} connection(s), server {}: \
         {:.2} µs each, server CPU {:.2} µs each{work}",
        m.round_trips,
        if blocking { "blocking" } else { "polling" },
        per(m.wall.as_secs_f64()),
        per(m.cpu),
    );
}
