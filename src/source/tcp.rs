//! The TCP plumbing network sources share: a listening socket bound on every shard with
//! SO_REUSEPORT before the shard reports ready, and an accept loop whose stop waits for
//! the connections still open.

use super::SourceCtx;
use crate::runtime::local::LocalNotify;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

/// A TCP source's listening socket and the configuration its connections are served with.
pub struct TcpListening<C> {
    pub listener: std::net::TcpListener,
    pub cfg: C,
}

impl<C: Clone> TcpListening<C> {
    pub fn bind(host: &str, port: u16, cfg: &C) -> std::io::Result<Self> {
        let addr = crate::runtime::socket::resolve(host, port)?;
        Ok(TcpListening {
            listener: crate::runtime::socket::tcp_listener(addr)?,
            cfg: cfg.clone(),
        })
    }
}

/// Accepts connections until the source stops, runs each on its own task (`serve` makes
/// the task, or `None` to turn the connection away), then waits for the connections still
/// open to end (they see the stop too) before returning.
pub async fn accept_loop<F, Fut>(listener: std::net::TcpListener, ctx: &SourceCtx, mut serve: F)
where
    F: FnMut(tokio_uring::net::TcpStream, SocketAddr) -> Option<Fut>,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let listener = tokio_uring::net::TcpListener::from_std(listener);
    let open = Rc::new(std::cell::Cell::new(0usize));
    let closed = Rc::new(LocalNotify::default());
    loop {
        let accepted = tokio::select! {
            _ = ctx.stop.wait() => break,
            r = listener.accept() => r,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(source = %ctx.name, "accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(task) = serve(stream, peer) else {
            continue;
        };
        open.set(open.get() + 1);
        let (open, closed) = (open.clone(), closed.clone());
        tokio_uring::spawn(async move {
            task.await;
            open.set(open.get() - 1);
            closed.notify_all();
        });
    }
    drop(listener);
    while open.get() > 0 {
        closed.notified().await;
    }
}
