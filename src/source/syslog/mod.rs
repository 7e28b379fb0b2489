//! The syslog sources (`syslogtcp`, `syslogudp`, `multiport_syslogtcp`) and the parsing
//! they share (`decode`).

pub mod decode;
