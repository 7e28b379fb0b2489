//! One shard's running HDFS sink: its hdfs-native client (driven on the shard's own
//! runtime, no thread pool), its open files (one per rendered `hdfs.path`/`hdfs.filePrefix`
//! bucket), and the files it is still recovering after an HDFS error.
//!
//! A batch is staged into each bucket's pending buffer (rolling files by count and size
//! on the way, as Flume does, before the event that would exceed), then each touched file
//! gets one write and one `hsync`; only then does `write` return Ok and the take commit.
//! If anything fails the staged bytes are dropped, the file that failed is abandoned and
//! queued for recovery, and the error goes to the runner, which rolls back and backs off.
//!
//! Recovery of an abandoned in-use file: lease recovery (polled until the namenode reports
//! the file closed), then, if it holds bytes past the last hsync (a batch that failed and
//! will be written again), its synced prefix is copied to the final name; otherwise it is
//! renamed. A file that never had a batch synced is deleted. Attempts repeat every
//! `hdfs.retryInterval` seconds, up to `hdfs.closeTries` (0: until they succeed).
//!
//! Every in-use file is in the shard's journal (`journal.rs`) from before its create until
//! it is renamed, with its synced length noted before each take commits. At start the
//! files an earlier run left in the journal are recovered the same way by a task of
//! their own on the shard's runtime, so readiness and the first batches do not wait for
//! HDFS; files not in the journal, other writers' among them, are never touched.

use super::escape::{EscapeError, Renderer};
use super::format::{BadKey, Encoder};
use super::journal::{Journal, JournalError, Pending};
use super::HdfsConfig;
use crate::event::Event;
use crate::sink::serializer::sync_marker;
use crate::sink::{LocalBoxFuture, ShardSink, SinkError};
use bytes::Bytes;
use hdfs_native::file::FileWriter;
use hdfs_native::{Client, ClientBuilder, HdfsError, WriteOptions};
use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum HdfsSinkError {
    #[error("{path}: {source}")]
    Hdfs { path: String, source: HdfsError },
    #[error("{path}: HDFS call timed out after {timeout:?} (hdfs.callTimeout)")]
    Timeout { path: String, timeout: Duration },
    #[error(transparent)]
    Escape(#[from] EscapeError),
    #[error(transparent)]
    Key(#[from] BadKey),
    #[error("cannot build the HDFS client: {0}")]
    Client(HdfsError),
    #[error(transparent)]
    Journal(#[from] JournalError),
}

impl From<HdfsSinkError> for SinkError {
    fn from(e: HdfsSinkError) -> Self {
        SinkError::other(e)
    }
}

/// Runs one HDFS call under `hdfs.callTimeout`.
async fn call<T>(
    timeout: Option<Duration>,
    path: &str,
    f: impl Future<Output = Result<T, HdfsError>>,
) -> Result<T, HdfsSinkError> {
    let r = match timeout {
        Some(t) => tokio::time::timeout(t, f)
            .await
            .map_err(|_| HdfsSinkError::Timeout {
                path: path.to_string(),
                timeout: t,
            })?,
        None => f.await,
    };
    r.map_err(|source| HdfsSinkError::Hdfs {
        path: path.to_string(),
        source,
    })
}

/// An open file and its bucket.
struct Bucket {
    key: Box<str>,
    writer: FileWriter,
    tmp: String,
    target: String,
    enc: Encoder,
    /// File bytes staged by this batch, not yet written.
    pending: Vec<u8>,
    events: u64,
    bytes: u64,
    /// Counters as of the last successful hsync (restored when a batch fails).
    committed: (u64, u64),
    written: u64,
    synced: u64,
    opened: Instant,
    flushed: Instant,
    /// The batch that last touched it (staging and LRU order).
    last_batch: u64,
}

/// A file that could not be closed or renamed normally, or that an earlier run left open.
struct Recovery {
    tmp: String,
    target: String,
    /// `Some(n)`: `n` bytes are the synced data (the rest is cut off). `None`: keep it
    /// whole (closed cleanly, or left by an earlier run whose synced length is unknown).
    synced: Option<u64>,
    lease_done: bool,
    /// The namenode has been asked and is still recovering the lease.
    polling: bool,
    tries: u32,
    due: Instant,
}

impl Recovery {
    /// An in-use file an earlier run left open: lease recovery first.
    fn left_open(p: Pending) -> Self {
        Recovery {
            tmp: p.tmp,
            target: p.target,
            synced: p.synced,
            lease_done: false,
            polling: false,
            tries: 0,
            due: Instant::now(),
        }
    }
}

/// What recovering files needs: the client and the sink's limits. The sink and its
/// start-up recovery task each hold one.
#[derive(Clone)]
struct Recoverer {
    client: Client,
    timeout: Option<Duration>,
    close_tries: u32,
    retry_interval: Duration,
    shard: usize,
}

pub struct HdfsSink {
    cfg: HdfsConfig,
    shard: usize,
    client: Client,
    rec: Recoverer,
    journal: Journal,
    /// In-use names the start-up recovery task finished (for the journal).
    finished: Rc<RefCell<Vec<String>>>,
    startup: Option<tokio::task::JoinHandle<()>>,
    renderer: Renderer,
    slots: Vec<Option<Bucket>>,
    index: HashMap<Box<str>, usize>,
    free: Vec<usize>,
    touched: Vec<usize>,
    batch: u64,
    counter: u64,
    recovering: Vec<Recovery>,
    dir_buf: String,
    name_buf: String,
    key_buf: String,
}

fn unix_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Polling interval while the namenode finishes a lease recovery it started.
const LEASE_POLL: Duration = Duration::from_secs(1);

impl HdfsSink {
    /// Builds the client on the current (shard's) runtime; nothing connects until the
    /// first write, so an unreachable HDFS does not stop the agent from starting. Reads
    /// the shard's journal (adopting those of shards `>= shards`) and starts recovering
    /// what an earlier run left open in a task of its own.
    pub fn open(cfg: &HdfsConfig, shard: usize, shards: usize) -> Result<Self, SinkError> {
        let mut b = ClientBuilder::new().with_io_runtime(tokio::runtime::Handle::current());
        if let Some(url) = &cfg.url {
            b = b.with_url(url);
        }
        if let Some(p) = &cfg.kerberos_principal {
            b = b.with_kerberos_principal(p);
        }
        if let Some(k) = &cfg.kerberos_keytab {
            b = b.with_kerberos_keytab(k);
        }
        if let Some(u) = &cfg.proxy_user {
            b = b.with_user(u);
        }
        let client = b.build().map_err(HdfsSinkError::Client)?;
        let namenode = cfg.url.as_deref().unwrap_or("fs.defaultFS");
        let (journal, pending) = Journal::open(&cfg.journal_dir, shard, shards, namenode)
            .map_err(HdfsSinkError::from)?;
        let rec = Recoverer {
            client: client.clone(),
            timeout: cfg.call_timeout,
            close_tries: cfg.close_tries,
            retry_interval: cfg.retry_interval,
            shard,
        };
        let finished = Rc::new(RefCell::new(Vec::new()));
        let startup = (!pending.is_empty()).then(|| {
            tracing::info!(
                shard,
                "recovering {} in-use files left by an earlier run (journal {})",
                pending.len(),
                journal.dir().display()
            );
            let list = pending.into_iter().map(Recovery::left_open).collect();
            tokio_uring::spawn(recover_at_start(rec.clone(), list, finished.clone()))
        });
        Ok(HdfsSink {
            cfg: cfg.clone(),
            shard,
            client,
            rec,
            journal,
            finished,
            startup,
            renderer: Renderer::new(cfg.time.clone()),
            slots: Vec::new(),
            index: HashMap::new(),
            free: Vec::new(),
            touched: Vec::new(),
            batch: 0,
            counter: 0,
            recovering: Vec::new(),
            dir_buf: String::new(),
            name_buf: String::new(),
            key_buf: String::new(),
        })
    }

    pub async fn write(&mut self, events: &[Event]) -> Result<(), SinkError> {
        if self.next_tick().is_some_and(|t| t <= Instant::now()) {
            // Under steady load the runner never idles: roll due files here too.
            self.tick().await;
        }
        self.batch += 1;
        self.touched.clear();
        let now_ms = unix_millis();
        let mut r = self.stage(events, now_ms).await;
        if r.is_ok() {
            r = self.sync_touched().await;
        }
        // The synced lengths reach the journal before the take commits; after a failure
        // the records of files closed or rolled on the way still go.
        let j = self.flush_journal().await;
        if r.is_ok() {
            r = j;
        }
        if r.is_err() {
            for i in std::mem::take(&mut self.touched) {
                if let Some(b) = self.slots[i].as_mut() {
                    b.pending.clear();
                    b.enc.rollback();
                    (b.events, b.bytes) = b.committed;
                }
            }
        }
        Ok(r?)
    }

    async fn stage(&mut self, events: &[Event], now_ms: i64) -> Result<(), HdfsSinkError> {
        for e in events {
            self.dir_buf.clear();
            self.name_buf.clear();
            self.renderer
                .render(&self.cfg.path, &e.headers, now_ms, &mut self.dir_buf)?;
            self.renderer
                .render(&self.cfg.prefix, &e.headers, now_ms, &mut self.name_buf)?;
            self.key_buf.clear();
            self.key_buf.push_str(&self.dir_buf);
            self.key_buf.push('/');
            self.key_buf.push_str(&self.name_buf);
            let slot = match self.index.get(self.key_buf.as_str()) {
                Some(&i) => i,
                None => self.open_bucket().await?,
            };
            let b = self.slots[slot].as_ref().expect("indexed slot");
            if self.cfg.rules.full(b.events, b.bytes) {
                self.roll(slot).await?;
            }
            let b = self.slots[slot].as_mut().expect("indexed slot");
            b.enc.append(e, now_ms, &mut b.pending)?;
            b.events += 1;
            b.bytes += e.body.len() as u64;
            if b.last_batch != self.batch {
                b.last_batch = self.batch;
                self.touched.push(slot);
            }
        }
        Ok(())
    }

    /// Opens a file for the bucket in `key_buf` (dir in `dir_buf`, name in `name_buf`).
    async fn open_bucket(&mut self) -> Result<usize, HdfsSinkError> {
        if self.index.len() >= self.cfg.max_open_files {
            // As Flume's LRU map: the least recently used file is closed.
            let lru = self
                .slots
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.as_ref().map(|b| (b.last_batch, i)))
                .min()
                .map(|(_, i)| i);
            if let Some(i) = lru {
                self.close_slot(i).await?;
            }
        }
        let key: Box<str> = self.key_buf.as_str().into();
        let dir = self.dir_buf.clone();
        let name = self.name_buf.clone();
        let bucket = self.open_file(key.clone(), &dir, &name).await?;
        let slot = match self.free.pop() {
            Some(i) => {
                self.slots[i] = Some(bucket);
                i
            }
            None => {
                self.slots.push(Some(bucket));
                self.slots.len() - 1
            }
        };
        self.index.insert(key, slot);
        Ok(slot)
    }

    async fn open_file(
        &mut self,
        key: Box<str>,
        dir: &str,
        name: &str,
    ) -> Result<Bucket, HdfsSinkError> {
        let ext = if self.cfg.suffix.is_empty() {
            self.cfg.format.extension()
        } else {
            &self.cfg.suffix
        };
        let dir = dir.trim_end_matches('/');
        // Names only grow, and start from the clock, so a restart does not reuse one; an
        // existing name (a clock step back) moves on to the next counter.
        let mut attempts = 0;
        let (tmp, target, writer) = loop {
            self.counter = (self.counter + 1).max(unix_millis() as u64);
            let base = format!("{name}.{}.{}{ext}", self.counter, self.shard);
            let tmp = format!(
                "{dir}/{}{base}{}",
                self.cfg.in_use_prefix, self.cfg.in_use_suffix
            );
            let target = format!("{dir}/{base}");
            if self.journal.knows(&tmp) {
                // A file of an earlier run still being recovered (the clock stepped back).
                continue;
            }
            self.journal.opened(&tmp, &target).await?;
            match call(
                self.cfg.call_timeout,
                &tmp,
                self.client.create(&tmp, WriteOptions::default()),
            )
            .await
            {
                Ok(w) => break (tmp, target, w),
                Err(HdfsSinkError::Hdfs {
                    source: HdfsError::AlreadyExists(_),
                    ..
                }) if attempts < 3 => {
                    // Someone's file, maybe another writer's: never ours to recover.
                    self.journal.done(&tmp);
                    attempts += 1;
                }
                Err(e) => {
                    self.journal.done(&tmp);
                    return Err(e);
                }
            }
        };
        if let Err(e) = self.journal.created(&tmp).await {
            // Unconfirmed in the journal: recover it now, while this run knows it is ours.
            self.abandon_writer(writer, tmp, target, 0);
            return Err(e.into());
        }
        let mut header = Vec::new();
        let enc = Encoder::start(
            &self.cfg.format,
            sync_marker(self.counter, self.shard),
            &mut header,
        );
        let mut writer = writer;
        let written = header.len() as u64;
        if !header.is_empty() {
            if let Err(e) = call(
                self.cfg.call_timeout,
                &tmp,
                writer.write_bytes(Bytes::from(header)),
            )
            .await
            {
                self.abandon_writer(writer, tmp, target, 0);
                return Err(e);
            }
        }
        tracing::info!(shard = self.shard, "creating {tmp}");
        let now = Instant::now();
        Ok(Bucket {
            key,
            writer,
            tmp,
            target,
            enc,
            pending: Vec::new(),
            events: 0,
            bytes: 0,
            committed: (0, 0),
            written,
            synced: 0,
            opened: now,
            flushed: now,
            // Not yet touched by any batch: the first append marks it for syncing.
            last_batch: 0,
        })
    }

    /// Writes and hsyncs every file this batch touched.
    async fn sync_touched(&mut self) -> Result<(), HdfsSinkError> {
        let touched = std::mem::take(&mut self.touched);
        for (n, &i) in touched.iter().enumerate() {
            if let Err(e) = self.sync_slot(i).await {
                self.abandon_slot(i);
                // The rest are rolled back by the caller.
                self.touched = touched[n + 1..].to_vec();
                return Err(e);
            }
        }
        Ok(())
    }

    async fn sync_slot(&mut self, i: usize) -> Result<(), HdfsSinkError> {
        let timeout = self.cfg.call_timeout;
        let b = self.slots[i].as_mut().expect("open slot");
        b.enc.flush(&mut b.pending);
        if !b.pending.is_empty() {
            let cap = b.pending.len();
            let data = Bytes::from(std::mem::replace(&mut b.pending, Vec::with_capacity(cap)));
            let n = data.len() as u64;
            call(timeout, &b.tmp, b.writer.write_bytes(data)).await?;
            b.written += n;
        }
        call(timeout, &b.tmp, b.writer.hsync()).await?;
        b.synced = b.written;
        self.journal.synced(&b.tmp, b.synced);
        b.enc.commit();
        b.committed = (b.events, b.bytes);
        b.flushed = Instant::now();
        Ok(())
    }

    /// Count/size roll inside a batch: the current file's staged events are synced and
    /// the file closed, and a new file takes the bucket's slot.
    async fn roll(&mut self, i: usize) -> Result<(), HdfsSinkError> {
        if let Err(e) = self.sync_slot(i).await {
            self.abandon_slot(i);
            return Err(e);
        }
        let b = self.slots[i].take().expect("open slot");
        let key = b.key.clone();
        let (dir, name) = key.rsplit_once('/').expect("key is dir/name");
        let (dir, name) = (dir.to_string(), name.to_string());
        let last_batch = b.last_batch;
        self.finish(b).await;
        match self.open_file(key.clone(), &dir, &name).await {
            Ok(mut nb) => {
                nb.last_batch = last_batch;
                self.slots[i] = Some(nb);
                Ok(())
            }
            Err(e) => {
                self.index.remove(&key);
                self.free.push(i);
                self.touched.retain(|&t| t != i);
                Err(e)
            }
        }
    }

    /// Closes a bucket's file (syncing anything staged first) and frees its slot.
    async fn close_slot(&mut self, i: usize) -> Result<(), HdfsSinkError> {
        if self.touched.contains(&i) {
            if let Err(e) = self.sync_slot(i).await {
                self.abandon_slot(i);
                return Err(e);
            }
            self.touched.retain(|&t| t != i);
        }
        let b = self.slots[i].take().expect("open slot");
        self.index.remove(&b.key);
        self.free.push(i);
        self.finish(b).await;
        Ok(())
    }

    /// Closes a synced file and renames it; failures go to recovery (the data is synced).
    async fn finish(&mut self, mut b: Bucket) {
        let timeout = self.cfg.call_timeout;
        match call(timeout, &b.tmp, b.writer.close()).await {
            Ok(()) => match self.rec.rename(&b.tmp, &b.target).await {
                Ok(()) => self.journal.done(&b.tmp),
                Err(e) => {
                    tracing::warn!("renaming {} failed, will retry: {e}", b.tmp);
                    self.queue(b.tmp, b.target, None);
                }
            },
            Err(e) => {
                tracing::warn!("closing {} failed, will recover it: {e}", b.tmp);
                let synced = b.synced;
                self.queue(b.tmp, b.target, Some(synced));
                drop(b.writer);
            }
        }
    }

    fn abandon_slot(&mut self, i: usize) {
        if let Some(b) = self.slots[i].take() {
            self.index.remove(&b.key);
            self.free.push(i);
            self.touched.retain(|&t| t != i);
            self.abandon_writer(b.writer, b.tmp, b.target, b.synced);
        }
    }

    fn abandon_writer(&mut self, writer: FileWriter, tmp: String, target: String, synced: u64) {
        tracing::warn!("abandoning {tmp} after an HDFS error; it will be recovered");
        drop(writer);
        self.queue(tmp, target, Some(synced));
    }

    fn queue(&mut self, tmp: String, target: String, synced: Option<u64>) {
        self.recovering.push(Recovery {
            tmp,
            target,
            synced,
            lease_done: synced.is_none(),
            polling: false,
            tries: 0,
            due: Instant::now(),
        });
    }

    async fn run_recoveries(&mut self, all: bool) {
        let mut list = std::mem::take(&mut self.recovering);
        for tmp in self.rec.run(&mut list, all).await {
            self.journal.done(&tmp);
        }
        list.append(&mut self.recovering);
        self.recovering = list;
    }

    /// Writes the journal records noted since the last write, with the files the
    /// start-up recovery finished meanwhile.
    async fn flush_journal(&mut self) -> Result<(), HdfsSinkError> {
        for tmp in self.finished.borrow_mut().drain(..) {
            self.journal.done(&tmp);
        }
        Ok(self.journal.flush().await?)
    }

    /// The earliest roll/idle deadline or recovery attempt.
    pub fn next_tick(&self) -> Option<Instant> {
        let files = self
            .slots
            .iter()
            .flatten()
            .filter_map(|b| self.cfg.rules.deadline(b.opened, b.flushed))
            .min();
        let rec = self.recovering.iter().map(|r| r.due).min();
        match (files, rec) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Closes files whose interval or idle time is up, and retries due recoveries.
    pub async fn tick(&mut self) {
        let now = Instant::now();
        let due: Vec<usize> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let b = s.as_ref()?;
                self.cfg
                    .rules
                    .deadline(b.opened, b.flushed)
                    .filter(|d| *d <= now)
                    .map(|_| i)
            })
            .collect();
        for i in due {
            // Nothing is staged between batches, so closing cannot lose events.
            let _ = self.close_slot(i).await;
        }
        self.run_recoveries(false).await;
        if let Err(e) = self.flush_journal().await {
            tracing::warn!("{e}");
        }
    }

    /// Closes every open file (agent stop), then tries pending recoveries once.
    pub async fn close(&mut self) {
        for i in 0..self.slots.len() {
            if self.slots[i].is_some() {
                let _ = self.close_slot(i).await;
            }
        }
        if !self.recovering.is_empty() {
            self.run_recoveries(true).await;
        }
        for r in &self.recovering {
            tracing::warn!(
                "{} is left in use: it could not be recovered before stopping; the next start recovers it",
                r.tmp
            );
        }
        if let Some(t) = self.startup.take() {
            if !t.is_finished() {
                // Its files stay in the journal: the next start takes them up again.
                tracing::warn!(
                    shard = self.shard,
                    "stopping before the in-use files of an earlier run were all recovered; the next start continues"
                );
                t.abort();
            }
            let _ = t.await;
        }
        if let Err(e) = self.flush_journal().await {
            tracing::warn!("{e}");
        }
    }
}

impl Recoverer {
    async fn rename(&self, tmp: &str, target: &str) -> Result<(), HdfsSinkError> {
        if tmp != target {
            call(self.timeout, tmp, self.client.rename(tmp, target, false)).await?;
            tracing::info!(shard = self.shard, "closed {target}");
        }
        Ok(())
    }

    /// One recovery attempt: `Ok(true)` when finished, `Ok(false)` to poll again soon.
    async fn recover(&self, r: &mut Recovery) -> Result<bool, HdfsSinkError> {
        let t = self.timeout;
        if !r.lease_done {
            match call(t, &r.tmp, self.client.recover_lease(&r.tmp)).await {
                Ok(true) => r.lease_done = true,
                Ok(false) => return Ok(false),
                Err(HdfsSinkError::Hdfs {
                    source: HdfsError::FileNotFound(_),
                    ..
                }) => return Ok(true),
                Err(e) => return Err(e),
            }
        }
        let len = match call(t, &r.tmp, self.client.get_file_info(&r.tmp)).await {
            Ok(s) => s.length as u64,
            Err(HdfsSinkError::Hdfs {
                source: HdfsError::FileNotFound(_),
                ..
            }) => return Ok(true),
            Err(e) => return Err(e),
        };
        match r.synced {
            // No batch was ever committed to it: nothing to keep.
            Some(0) => {
                call(t, &r.tmp, self.client.delete(&r.tmp, false)).await?;
                tracing::info!(shard = self.shard, "deleted {} (no committed data)", r.tmp);
            }
            // Bytes of a failed batch follow the synced data: keep only the synced prefix.
            // (Not when the in-use name is the final name: the copy would replace itself.)
            Some(synced) if len > synced && r.tmp != r.target => {
                let reader = call(t, &r.tmp, self.client.read(&r.tmp)).await?;
                let data = call(t, &r.tmp, reader.read_range(0, synced as usize)).await?;
                let opts = WriteOptions::default().overwrite(true);
                let mut w = call(t, &r.target, self.client.create(&r.target, opts)).await?;
                call(t, &r.target, w.write_bytes(data)).await?;
                call(t, &r.target, w.close()).await?;
                call(t, &r.tmp, self.client.delete(&r.tmp, false)).await?;
                tracing::info!(
                    shard = self.shard,
                    "recovered {} ({synced} synced bytes of {len})",
                    r.target
                );
            }
            _ => {
                self.rename(&r.tmp, &r.target).await?;
            }
        }
        Ok(true)
    }

    /// Attempts the due recoveries in `list` (every one with `all`), keeping those to try
    /// again; returns the in-use names finished.
    async fn run(&self, list: &mut Vec<Recovery>, all: bool) -> Vec<String> {
        let now = Instant::now();
        let mut finished = Vec::new();
        let mut keep = Vec::new();
        for mut r in list.drain(..) {
            if !all && r.due > now {
                keep.push(r);
                continue;
            }
            match self.recover(&mut r).await {
                Ok(true) => finished.push(r.tmp),
                Ok(false) => {
                    if !r.polling {
                        r.polling = true;
                        tracing::info!(
                            shard = self.shard,
                            "waiting for the namenode to recover the lease of {}",
                            r.tmp
                        );
                    }
                    r.due = Instant::now() + LEASE_POLL;
                    keep.push(r);
                }
                Err(e) => {
                    r.tries += 1;
                    let limit = self.close_tries;
                    if (limit > 0 && r.tries >= limit) || self.retry_interval.is_zero() {
                        tracing::warn!(
                            "giving up on {} after {} attempts; it stays in use until the next start: {e}",
                            r.tmp,
                            r.tries
                        );
                    } else {
                        // Said again after 2, 4, 8... failures: heard, but not every second.
                        if r.tries.is_power_of_two() {
                            tracing::warn!(
                                "recovering {} failed ({} attempts), will retry every {:?}: {e}",
                                r.tmp,
                                r.tries,
                                self.retry_interval
                            );
                        }
                        r.due = Instant::now() + self.retry_interval;
                        keep.push(r);
                    }
                }
            }
        }
        *list = keep;
        finished
    }
}

/// The start-up recovery task: recovers the in-use files an earlier run left open,
/// polling lease recoveries and retrying failures, and reports each finished file.
async fn recover_at_start(
    rec: Recoverer,
    mut list: Vec<Recovery>,
    finished: Rc<RefCell<Vec<String>>>,
) {
    let total = list.len();
    let mut recovered = 0;
    while !list.is_empty() {
        let done = rec.run(&mut list, false).await;
        recovered += done.len();
        finished.borrow_mut().extend(done);
        if let Some(next) = list.iter().map(|r| r.due).min() {
            tokio::time::sleep_until(next).await;
        }
    }
    if recovered == total {
        tracing::info!(
            shard = rec.shard,
            "recovered all {total} in-use files left by an earlier run"
        );
    } else {
        tracing::warn!(
            shard = rec.shard,
            "recovered {recovered} of {total} in-use files left by an earlier run; the next start retries the rest"
        );
    }
}

impl ShardSink for HdfsSink {
    fn process<'a>(&'a mut self, events: &'a [Event]) -> LocalBoxFuture<'a, Result<(), SinkError>> {
        Box::pin(self.write(events))
    }

    fn next_tick(&self) -> Option<Instant> {
        HdfsSink::next_tick(self)
    }

    fn tick(&mut self) -> LocalBoxFuture<'_, ()> {
        Box::pin(HdfsSink::tick(self))
    }

    fn close(&mut self) -> LocalBoxFuture<'_, ()> {
        Box::pin(HdfsSink::close(self))
    }
}
