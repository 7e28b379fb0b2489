//! Fuzzes the HDFS sink's path escapes: any `hdfs.path` template and any header values
//! (outside input) must render or give an EscapeError, never panic; rendering an escape-free
//! template must give it back unchanged.
#![no_main]

use flume_fast::event::Headers;
use flume_fast::sink::hdfs::escape::{
    parse_time_zone, HostNames, Renderer, RoundUnit, Template, TimeSettings,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // template \0 timestamp \0 host \0 round-selector
    let mut parts = text.split('\0');
    let template = parts.next().unwrap_or("");
    let ts = parts.next().unwrap_or("");
    let host = parts.next().unwrap_or("");
    let sel = parts.next().unwrap_or("").bytes().next().unwrap_or(0);
    let hosts = HostNames {
        localhost: "h".into(),
        ip: "127.0.0.1".into(),
        fqdn: "h.example".into(),
    };
    let Ok(t) = Template::parse(template, &hosts) else {
        return;
    };
    let round = match sel % 4 {
        0 => None,
        1 => Some((RoundUnit::Second, u32::from(sel % 60) + 1)),
        2 => Some((RoundUnit::Minute, u32::from(sel % 60) + 1)),
        _ => Some((RoundUnit::Hour, u32::from(sel % 24) + 1)),
    };
    let tz = if sel & 0x10 != 0 { "America/Los_Angeles" } else { "UTC" };
    let mut r = Renderer::new(TimeSettings {
        tz: parse_time_zone(tz).unwrap(),
        round,
        use_local: sel & 0x20 != 0,
    });
    let mut h = Headers::new();
    h.set("timestamp", ts);
    h.set("host", host);
    let mut out = String::new();
    let _ = r.render(&t, &h, i64::from(sel) * 1_000_000_007, &mut out);
    if !template.contains('%') {
        out.clear();
        r.render(&t, &h, 0, &mut out).unwrap();
        assert_eq!(out, template);
    }
});
