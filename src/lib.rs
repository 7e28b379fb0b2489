//! flume-fast: a thread-per-core, io_uring successor to Apache Flume. The binary's CLI is in
//! `main.rs`; everything it runs is here.

pub mod avro_rpc;
pub mod avro_slice;
pub mod channel;
pub mod config;
pub mod event;
pub mod flow;
pub mod hint;
pub mod runtime;
pub mod sink;
pub mod source;
pub mod tools;
