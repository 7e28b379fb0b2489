//! A shard-local stop signal: set once, awaited by any number of tasks on the shard.

use crate::channel::LocalNotify;
use std::cell::Cell;
use std::rc::Rc;

#[derive(Clone, Default)]
pub struct Stop(Rc<Inner>);

#[derive(Default)]
struct Inner {
    stopped: Cell<bool>,
    notify: LocalNotify,
}

impl Stop {
    pub fn new() -> Self {
        Stop::default()
    }

    pub fn trigger(&self) {
        if !self.0.stopped.replace(true) {
            self.0.notify.notify_all();
        }
    }

    pub fn is_stopped(&self) -> bool {
        self.0.stopped.get()
    }

    /// Resolves once `trigger` has been called (at once if it already was).
    pub async fn wait(&self) {
        let woken = self.0.notify.notified();
        if !self.is_stopped() {
            woken.await;
        }
    }
}
