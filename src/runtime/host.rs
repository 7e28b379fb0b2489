//! This machine's host name and address, for the host interceptor and path escapes.

use std::net::{ToSocketAddrs, UdpSocket};

pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".to_string();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// The address this host's name resolves to (as Java's `InetAddress.getLocalHost()`),
/// falling back to 127.0.0.1. Loopback-only: nothing is sent.
pub fn ip_address() -> String {
    let name = hostname();
    if let Ok(mut addrs) = (name.as_str(), 0).to_socket_addrs() {
        if let Some(a) = addrs.find(|a| a.is_ipv4()) {
            return a.ip().to_string();
        }
    }
    // connect() on UDP sends nothing; it only picks the loopback route.
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|_| "127.0.0.1".to_string())
}

pub fn local_host(use_ip: bool) -> String {
    if use_ip {
        ip_address()
    } else {
        hostname()
    }
}

/// The canonical (fully qualified) name of this host, as Java's
/// `InetAddress.getLocalHost().getCanonicalHostName()`; the short name when the resolver
/// knows no better.
pub fn fqdn() -> String {
    let name = hostname();
    let Ok(c_name) = std::ffi::CString::new(name.clone()) else {
        return name;
    };
    // SAFETY: zeroed addrinfo is a valid "no hints" value; getaddrinfo fills `res`, which
    // is read only on success and freed once.
    unsafe {
        let mut hints: libc::addrinfo = std::mem::zeroed();
        hints.ai_flags = libc::AI_CANONNAME;
        hints.ai_family = libc::AF_UNSPEC;
        let mut res: *mut libc::addrinfo = std::ptr::null_mut();
        if libc::getaddrinfo(c_name.as_ptr(), std::ptr::null(), &hints, &mut res) != 0
            || res.is_null()
        {
            return name;
        }
        let canon = (*res).ai_canonname;
        let out = if canon.is_null() {
            name
        } else {
            std::ffi::CStr::from_ptr(canon)
                .to_string_lossy()
                .into_owned()
        };
        libc::freeaddrinfo(res);
        out
    }
}

/// Java's `InetAddress.getLocalHost().getCanonicalHostName()`: the name a reverse lookup
/// of this host's address (`ip_address`) gives, if that name resolves back to the address;
/// otherwise the address itself.
pub fn canonical_host_name() -> String {
    let ip = ip_address();
    let Ok(addr) = ip.parse::<std::net::Ipv4Addr>() else {
        return ip;
    };
    // SAFETY: sin is a fully initialised sockaddr_in whose size is passed; getnameinfo
    // writes at most host.len() bytes into host, NUL-terminated on success.
    let name = unsafe {
        let mut sin: libc::sockaddr_in = std::mem::zeroed();
        sin.sin_family = libc::AF_INET as libc::sa_family_t;
        sin.sin_addr.s_addr = u32::from_ne_bytes(addr.octets());
        let mut host = [0 as libc::c_char; 1025];
        let rc = libc::getnameinfo(
            (&sin as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            host.as_mut_ptr(),
            host.len() as libc::socklen_t,
            std::ptr::null_mut(),
            0,
            libc::NI_NAMEREQD,
        );
        if rc != 0 {
            return ip;
        }
        std::ffi::CStr::from_ptr(host.as_ptr())
            .to_string_lossy()
            .into_owned()
    };
    let resolves_back = (name.as_str(), 0)
        .to_socket_addrs()
        .is_ok_and(|mut a| a.any(|a| a.ip() == std::net::IpAddr::V4(addr)));
    if resolves_back {
        name
    } else {
        ip
    }
}
