//! Listening sockets that every shard binds to the same address with SO_REUSEPORT, so the
//! kernel spreads connections (TCP) and datagrams (UDP) over shards by hash.

use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

/// Resolves `host:port` the way Flume's `bind` key is read (a name or an address).
pub fn resolve(host: &str, port: u16) -> io::Result<SocketAddr> {
    (host, port).to_socket_addrs()?.next().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("'{host}' resolves to no address"),
        )
    })
}

fn socket(addr: SocketAddr, ty: Type, protocol: Protocol) -> io::Result<Socket> {
    let s = Socket::new(Domain::for_address(addr), ty, Some(protocol))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.set_nonblocking(true)?;
    Ok(s)
}

pub fn tcp_listener(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let s = socket(addr, Type::STREAM, Protocol::TCP)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    Ok(s.into())
}

pub fn udp_socket(addr: SocketAddr, recv_buffer: usize) -> io::Result<std::net::UdpSocket> {
    let s = socket(addr, Type::DGRAM, Protocol::UDP)?;
    // A bigger kernel buffer absorbs bursts while the shard is busy; UDP cannot push back.
    let _ = s.set_recv_buffer_size(recv_buffer);
    s.bind(&addr.into())?;
    Ok(s.into())
}

/// Fails when another process (not one of our shards) already listens on `addr`: with
/// SO_REUSEPORT the kernel would otherwise let us share its port silently when it runs as
/// the same user.
pub fn ensure_tcp_port_free(addr: SocketAddr) -> io::Result<()> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.bind(&addr.into())
}

pub fn ensure_udp_port_free(addr: SocketAddr) -> io::Result<()> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    s.bind(&addr.into())
}
