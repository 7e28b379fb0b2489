//! The `flume-fast` command line: argument parsing, logging set-up, and turning library
//! errors into messages and exit codes (0 clean stop, 2 configuration error, 1 runtime
//! failure). Everything else lives in the library.

use clap::{Args, Parser, Subcommand};
use flume_fast::avro_rpc::conn::Compression;
use flume_fast::config::{self, render, Substitutions};
use flume_fast::runtime::{self, RunOptions};
use flume_fast::tools::avro_client::AvroClientOptions;
use flume_fast::tools::loadgen::{LoadOptions, Protocol};
use flume_fast::tools::TlsOptions;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const EXIT_RUNTIME: u8 = 1;
const EXIT_CONFIG: u8 = 2;
/// loadgen: the run went through, but some events it sent were never acknowledged.
const EXIT_UNACKED: u8 = 3;

#[derive(Parser)]
#[command(
    name = "flume-fast",
    version,
    about = "Runs an Apache Flume agent configuration on a thread-per-core io_uring runtime",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(flatten)]
    run: RunArgs,
    /// The agent configuration (Flume .properties format)
    conf: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Args, Clone)]
struct RunArgs {
    /// Number of shards (threads, each pinned to a core)
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    cores: u16,
    /// Agent name; defaults to the only agent in the file
    #[arg(short = 'n', long)]
    name: Option<String>,
    /// Define NAME=VALUE for ${NAME} in the configuration (before the environment)
    #[arg(short = 'D', value_name = "NAME=VALUE")]
    define: Vec<String>,
    /// Seconds sinks may keep draining channels after SIGINT/SIGTERM
    #[arg(long, default_value_t = 10)]
    drain_timeout: u64,
    /// Microseconds each shard keeps polling after its last socket read before it sleeps;
    /// saves the wake-up latency and CPU of a sleep per batch, costs CPU while traffic is
    /// steady; 0 always sleeps
    #[arg(long, default_value_t = 50)]
    spin_us: u64,
    /// Log level (error, warn, info, debug, trace); RUST_LOG overrides
    #[arg(long)]
    log_level: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// The flume-ng spelling: flume-fast agent -n a1 -f agent.conf [-c DIR] [-Dk=v]
    Agent {
        #[command(flatten)]
        run: RunArgs,
        /// The agent configuration file
        #[arg(short = 'f', long = "conf-file")]
        conf_file: PathBuf,
        /// Flume's configuration directory (accepted and ignored: flume-fast needs no
        /// flume-env.sh or log4j configuration)
        #[arg(short = 'c', long = "conf")]
        conf_dir: Option<PathBuf>,
    },
    /// Validate a configuration and print the flow with resolved defaults
    Check {
        conf: PathBuf,
        #[arg(short = 'n', long)]
        name: Option<String>,
        #[arg(short = 'D', value_name = "NAME=VALUE")]
        define: Vec<String>,
    },
    /// Show the keys a component type takes, with defaults (no TYPE: list all types)
    Describe {
        /// A type (alias or Java class); with --markdown, a page: sources, channels,
        /// sinks or flow
        r#type: Option<String>,
        /// Print the reference pages of docs/ in markdown (all of them without a page)
        #[arg(long)]
        markdown: bool,
        /// With --markdown: write every page into DIR (docs/sources.md, ...) instead
        #[arg(
            long,
            value_name = "DIR",
            requires = "markdown",
            conflicts_with = "type"
        )]
        out: Option<PathBuf>,
    },
    /// Send a file (or stdin) to an avro source, one event per line (flume-ng avro-client)
    AvroClient {
        /// Host name of the avro source
        #[arg(short = 'H', long)]
        host: String,
        /// Port of the avro source
        #[arg(short = 'p', long)]
        port: u16,
        /// File to send (default: stdin)
        #[arg(short = 'F', long = "filename")]
        file: Option<PathBuf>,
        /// Java properties file whose pairs become headers of every event
        #[arg(short = 'R', long = "headerFile")]
        header_file: Option<PathBuf>,
        /// Events per appendBatch call (flume-ng avro-client sends 5)
        #[arg(long = "batch-size", alias = "batchSize", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
        batch_size: u32,
        /// none or deflate (must match the source's compression-type)
        #[arg(long = "compression-type", default_value = "none", value_parser = ["none", "deflate"])]
        compression: String,
        /// Seconds to wait for the connection and for each answer
        #[arg(long, default_value_t = 20)]
        timeout: u64,
        #[command(flatten)]
        tls: TlsArgs,
    },
    /// Drive an avro or netcat source with load and report throughput and latency
    Loadgen {
        #[arg(short = 'H', long, default_value = "127.0.0.1")]
        host: String,
        #[arg(short = 'p', long)]
        port: u16,
        /// avro or netcat
        #[arg(long, default_value = "avro", value_parser = ["avro", "netcat"])]
        protocol: String,
        /// Concurrent connections
        #[arg(short = 'c', long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        connections: u32,
        /// Events per batch
        #[arg(short = 'b', long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
        batch: u32,
        /// Body bytes per event
        #[arg(short = 's', long, default_value_t = 100)]
        size: u32,
        /// Total events to send
        #[arg(short = 'n', long, conflicts_with = "duration")]
        count: Option<u64>,
        /// Seconds to run (default 10 when no --count)
        #[arg(short = 'd', long)]
        duration: Option<f64>,
        /// none or deflate (avro only)
        #[arg(long = "compression-type", default_value = "none", value_parser = ["none", "deflate"])]
        compression: String,
        /// Seconds to wait for the connection and for each answer
        #[arg(long, default_value_t = 20)]
        timeout: u64,
        #[command(flatten)]
        tls: TlsArgs,
        /// Correctness mode (avro): every body unique (connection and sequence number,
        /// padded to --size), each batch retried until acknowledged, reconnecting with
        /// back-off when the connection breaks; survives agent restarts. Encodes every
        /// batch anew, so not for benchmarks
        #[arg(long)]
        unique: bool,
        /// With --unique: append one line per batch attempt to FILE,
        /// "<ok|failed|unanswered> <connection> <first seq> <end seq>" (end exclusive)
        #[arg(long, value_name = "FILE", requires = "unique")]
        acked_log: Option<PathBuf>,
        /// Microseconds to keep polling for answers before sleeping: the generator busy-polls
        /// so that waking it is not part of what the agent under test pays; 0 always sleeps
        #[arg(long, default_value_t = 1000)]
        spin_us: u64,
        /// Send at most this many events per second over all connections (whole batches,
        /// evenly spaced); default: as fast as the agent answers
        #[arg(long, value_name = "EVENTS")]
        rate: Option<f64>,
        /// A header every avro event carries, as KEY=VALUE (repeatable), e.g.
        /// --header timestamp=1700000000000 --header host=web1
        #[arg(long = "header", value_name = "KEY=VALUE", value_parser = parse_header)]
        headers: Vec<(String, String)>,
        /// TCP congestion control of the connections, e.g. cubic or bbr (Linux
        /// TCP_CONGESTION; default: the system's, net.ipv4.tcp_congestion_control)
        #[arg(long, value_name = "NAME")]
        congestion: Option<String>,
    },
    /// Inspect a file channel's data directory offline
    #[command(subcommand)]
    Channel(ChannelCmd),
}

#[derive(Subcommand)]
enum ChannelCmd {
    /// Check every record of every segment (like Flume's File Channel Integrity Tool);
    /// exits 1 if damage was found and not quarantined
    Verify {
        /// A dataDirs entry (holding shard-* directories) or one shard directory
        dir: PathBuf,
        /// Copy each damaged region to <shard>/quarantine/ and overwrite it with padding
        #[arg(long)]
        quarantine: bool,
    },
    /// Pending events and bytes per shard, segments, and the last checkpoint
    Stat {
        /// A dataDirs entry (holding shard-* directories) or one shard directory
        dir: PathBuf,
        /// The channel's checkpointDir, to report the last checkpoint
        #[arg(long)]
        checkpoint_dir: Option<PathBuf>,
    },
}

/// TLS to an avro source with `ssl = true`, as the avro sink's keys.
#[derive(Args, Clone)]
struct TlsArgs {
    /// Connect with TLS
    #[arg(long)]
    ssl: bool,
    /// With --ssl: accept any server certificate
    #[arg(long = "trust-all-certs")]
    trust_all_certs: bool,
    /// With --ssl: PKCS12 file of trusted certificates (default: the system CA certificates)
    #[arg(long)]
    truststore: Option<PathBuf>,
    /// Password of --truststore
    #[arg(long = "truststore-password")]
    truststore_password: Option<String>,
    /// Type of --truststore: PKCS12 (or JKS naming a PKCS12 file, as Java 9+)
    #[arg(long = "truststore-type")]
    truststore_type: Option<String>,
}

impl TlsArgs {
    /// The client TLS, or exit code 2 with the reason.
    fn client(self, host: &str) -> Result<flume_fast::avro_rpc::conn::Tls, ExitCode> {
        TlsOptions {
            ssl: self.ssl,
            trust_all_certs: self.trust_all_certs,
            truststore: self.truststore,
            truststore_password: self.truststore_password,
            truststore_type: self.truststore_type,
        }
        .client(host)
        .map_err(|e| {
            eprintln!("flume-fast: --truststore: {e}");
            ExitCode::from(EXIT_CONFIG)
        })
    }
}

fn defines(list: &[String]) -> Result<HashMap<String, String>, String> {
    list.iter()
        .map(|d| {
            d.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| format!("-D{d}: expected -DNAME=VALUE"))
        })
        .collect()
}

/// Flume scripts pass `-Dflume.root.logger=LEVEL,appender`; honour its level.
fn log_level(run: &RunArgs, defines: &HashMap<String, String>) -> String {
    if let Some(l) = &run.log_level {
        return l.clone();
    }
    defines
        .get("flume.root.logger")
        .and_then(|v| v.split(',').next())
        .map(|l| l.trim().to_ascii_lowercase())
        .unwrap_or_else(|| "info".to_string())
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Receive buffers and event batches (100 KiB - 1 MiB) are allocated and freed at a high
/// rate. Above glibc's mmap threshold each one would be a fresh mapping, page-faulted in and
/// unmapped again; keeping them on the heap (and not trimming it eagerly) reuses the memory.
fn tune_allocator() {
    // SAFETY: mallopt only changes allocator parameters; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
    }
}

/// `--header KEY=VALUE`: split at the first '='; the key must not be empty.
fn parse_header(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!(
            "'{s}' is not KEY=VALUE (a non-empty header name, '=', a value)"
        )),
    }
}

fn main() -> ExitCode {
    tune_allocator();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Describe {
            r#type,
            markdown: true,
            out,
        }) => describe_markdown(r#type.as_deref(), out.as_deref()),
        Some(Command::Describe { r#type, .. }) => describe(r#type.as_deref()),
        Some(Command::AvroClient {
            host,
            port,
            file,
            header_file,
            batch_size,
            compression,
            timeout,
            tls,
        }) => {
            let tls = match tls.client(&host) {
                Ok(t) => t,
                Err(code) => return code,
            };
            avro_client(AvroClientOptions {
                host,
                port,
                file,
                header_file,
                batch_size: batch_size as usize,
                compression: compression_of(&compression),
                tls,
                timeout: Duration::from_secs(timeout),
            })
        }
        Some(Command::Loadgen {
            host,
            port,
            protocol,
            connections,
            batch,
            size,
            count,
            duration,
            compression,
            timeout,
            tls,
            unique,
            acked_log,
            spin_us,
            rate,
            headers,
            congestion,
        }) => {
            if rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
                eprintln!(
                    "flume-fast loadgen: --rate must be a positive number of events per second"
                );
                return ExitCode::from(EXIT_CONFIG);
            }
            if tls.ssl && protocol == "netcat" {
                eprintln!("flume-fast loadgen: --ssl is for --protocol avro (netcat has no TLS)");
                return ExitCode::from(EXIT_CONFIG);
            }
            if !headers.is_empty() && protocol == "netcat" {
                eprintln!(
                    "flume-fast loadgen: --header is for --protocol avro (netcat lines carry no headers)"
                );
                return ExitCode::from(EXIT_CONFIG);
            }
            let tls = match tls.client(&host) {
                Ok(t) => t,
                Err(code) => return code,
            };
            loadgen(LoadOptions {
                host,
                port,
                protocol: if protocol == "netcat" {
                    Protocol::Netcat
                } else {
                    Protocol::Avro
                },
                connections: connections as usize,
                batch: batch as usize,
                size: size as usize,
                count,
                duration: match (count, duration) {
                    (Some(_), None) => None,
                    (_, d) => Some(Duration::from_secs_f64(d.unwrap_or(10.0).max(0.0))),
                },
                compression: compression_of(&compression),
                tls,
                timeout: Duration::from_secs(timeout),
                unique,
                acked_log,
                spin: Duration::from_micros(spin_us),
                rate,
                headers,
                congestion,
                stop: Default::default(),
            })
        }
        Some(Command::Channel(cmd)) => channel_tool(cmd),
        Some(Command::Check { conf, name, define }) => check(&conf, name.as_deref(), &define),
        Some(Command::Agent {
            run,
            conf_file,
            conf_dir,
        }) => {
            if let Some(dir) = conf_dir {
                eprintln!(
                    "flume-fast: note: -c {} is accepted for flume-ng compatibility and ignored",
                    dir.display()
                );
            }
            run_agent(&run, &conf_file)
        }
        None => match cli.conf {
            Some(conf) => run_agent(&cli.run, &conf),
            None => {
                eprintln!("flume-fast: no configuration file given\n\nUsage: flume-fast [--cores N] [--name AGENT] CONF\n       flume-fast --help");
                ExitCode::from(EXIT_CONFIG)
            }
        },
    }
}

fn compression_of(name: &str) -> Compression {
    match name {
        "deflate" => Compression::Deflate(6),
        _ => Compression::None,
    }
}

fn avro_client(opts: AvroClientOptions) -> ExitCode {
    init_logging("warn");
    match flume_fast::tools::avro_client::run(&opts) {
        Ok(sent) => {
            eprintln!(
                "flume-fast avro-client: sent {sent} events to {}:{}",
                opts.host, opts.port
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("flume-fast avro-client: {e}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

fn loadgen(opts: LoadOptions) -> ExitCode {
    init_logging("warn");
    // The first SIGINT/SIGTERM ends the run after the batches in flight (with a summary);
    // a second one exits at once.
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let armed = signal_hook::flag::register_conditional_shutdown(sig, 1, opts.stop.clone())
            .and_then(|_| signal_hook::flag::register(sig, opts.stop.clone()));
        if let Err(e) = armed {
            eprintln!("flume-fast loadgen: cannot handle signal {sig}: {e}");
        }
    }
    match flume_fast::tools::loadgen::run(&opts) {
        Ok(s) => {
            eprintln!(
                "{} events acknowledged in {:.2}s: {:.0} events/s, {:.2} MB/s, batch latency p50 {:.3} ms, p99 {:.3} ms{}{}",
                s.acked,
                s.seconds,
                s.events_per_sec,
                s.mb_per_sec,
                s.p50_ms,
                s.p99_ms,
                if s.failed_batches > 0 {
                    format!(", {} batches answered FAILED", s.failed_batches)
                } else {
                    String::new()
                },
                if s.unanswered_batches + s.reconnects > 0 {
                    format!(
                        ", {} batches unanswered (connection lost), {} reconnects",
                        s.unanswered_batches, s.reconnects
                    )
                } else {
                    String::new()
                }
            );
            println!("{}", s.json(&opts));
            if s.unacked_events > 0 {
                eprintln!(
                    "flume-fast loadgen: {} events were sent and never acknowledged",
                    s.unacked_events
                );
                return ExitCode::from(EXIT_UNACKED);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("flume-fast loadgen: {e}");
            match e {
                flume_fast::tools::ToolError::Option(_) => ExitCode::from(EXIT_CONFIG),
                _ => ExitCode::from(EXIT_RUNTIME),
            }
        }
    }
}

fn channel_tool(cmd: ChannelCmd) -> ExitCode {
    use flume_fast::channel::wal::tools;
    let mut out = String::new();
    let result = match &cmd {
        ChannelCmd::Verify { dir, quarantine } => {
            tools::verify(dir, *quarantine, &mut out).map(|s| s.damaged > s.quarantined)
        }
        ChannelCmd::Stat {
            dir,
            checkpoint_dir,
        } => tools::stat(dir, checkpoint_dir.as_deref(), &mut out).map(|()| false),
    };
    print!("{out}");
    match result {
        Ok(false) => ExitCode::SUCCESS,
        Ok(true) => ExitCode::from(EXIT_RUNTIME),
        Err(e) => {
            eprintln!("flume-fast: {e}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

fn describe(ty: Option<&str>) -> ExitCode {
    match ty {
        None => {
            print!("{}", render::catalogue());
            ExitCode::SUCCESS
        }
        Some(t) => match render::describe(t) {
            Some(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            None => {
                eprintln!(
                    "flume-fast: unknown component type '{t}'\n\n{}",
                    render::catalogue()
                );
                ExitCode::from(EXIT_CONFIG)
            }
        },
    }
}

/// The generated reference pages: one to stdout, all to stdout, or all into a directory.
fn describe_markdown(page: Option<&str>, out: Option<&std::path::Path>) -> ExitCode {
    let pages: Vec<&render::Page> = match page {
        None => render::PAGES.iter().collect(),
        Some(name) => {
            let file = format!("{}.md", name.trim_end_matches(".md"));
            match render::PAGES.iter().find(|p| p.file == file) {
                Some(p) => vec![p],
                None => {
                    let names: Vec<_> = render::PAGES
                        .iter()
                        .map(|p| p.file.trim_end_matches(".md"))
                        .collect();
                    eprintln!("flume-fast: no page '{name}' (pages: {})", names.join(", "));
                    return ExitCode::from(EXIT_CONFIG);
                }
            }
        }
    };
    for p in pages {
        let text = render::markdown(p);
        match out {
            None => print!("{text}"),
            Some(dir) => {
                let path = dir.join(p.file);
                if let Err(e) =
                    std::fs::create_dir_all(dir).and_then(|_| std::fs::write(&path, text))
                {
                    eprintln!("flume-fast: {}: {e}", path.display());
                    return ExitCode::from(EXIT_RUNTIME);
                }
                eprintln!("wrote {}", path.display());
            }
        }
    }
    ExitCode::SUCCESS
}

fn load(
    conf: &std::path::Path,
    name: Option<&str>,
    define: &[String],
) -> Result<config::AgentConfig, String> {
    let defines = defines(define)?;
    // Flume reads its global SSL settings from Java system properties, given with -D.
    flume_fast::avro_rpc::tls::set_java_properties(&defines);
    let subs = Substitutions::from_process_env(defines);
    config::load(conf, name, &subs).map_err(|e| e.to_string())
}

fn check(conf: &std::path::Path, name: Option<&str>, define: &[String]) -> ExitCode {
    match load(conf, name, define) {
        Ok(cfg) => {
            for w in &cfg.warnings {
                eprintln!("warning: {w}");
            }
            print!("{}", render::flow(&cfg));
            println!("configuration is valid");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("flume-fast: configuration error: {e}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

fn run_agent(run: &RunArgs, conf: &std::path::Path) -> ExitCode {
    let defs = match defines(&run.define) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("flume-fast: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    init_logging(&log_level(run, &defs));
    let cfg = match load(conf, run.name.as_deref(), &run.define) {
        Ok(cfg) => cfg,
        Err(e) => {
            tracing::error!("configuration error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }
    let opts = RunOptions {
        shards: run.cores as usize,
        drain_timeout: Duration::from_secs(run.drain_timeout),
        spin: Duration::from_micros(run.spin_us),
    };
    match runtime::run(cfg, opts) {
        Ok(totals) => {
            for ((component, counter), value) in &totals.0 {
                tracing::info!("{component}: {counter} = {value}");
            }
            tracing::info!("stopped cleanly");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("agent failed: {e}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}
