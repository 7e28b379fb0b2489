//! Per-shard counters. Each shard owns its counters outright (plain `Cell`s, no atomics);
//! they cross threads only as a snapshot, when the shard reports, and the reader sums them.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;

#[derive(Clone, Default)]
pub struct Counter(Rc<Cell<u64>>);

impl Counter {
    pub fn add(&self, n: u64) {
        self.0.set(self.0.get() + n);
    }
    pub fn get(&self) -> u64 {
        self.0.get()
    }
}

/// The counters of one shard, by (component, counter name).
#[derive(Default)]
pub struct Registry {
    counters: Vec<(String, &'static str, Counter)>,
}

impl Registry {
    pub fn counter(&mut self, component: &str, name: &'static str) -> Counter {
        let c = Counter::default();
        self.counters.push((component.to_string(), name, c.clone()));
        c
    }

    pub fn snapshot(&self) -> Snapshot {
        let mut s = Snapshot::default();
        for (component, name, c) in &self.counters {
            *s.0.entry((component.clone(), name)).or_default() += c.get();
        }
        s
    }
}

/// Counter values that can leave the shard.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Snapshot(pub BTreeMap<(String, &'static str), u64>);

impl Snapshot {
    pub fn merge(&mut self, other: &Snapshot) {
        for (k, v) in &other.0 {
            *self.0.entry(k.clone()).or_default() += v;
        }
    }
}
