//! Partitioners: which downstream channel each record goes to, and the typed output writer that
//! batches records per channel.
//!
//! [`Partitioning`] is the untyped description an edge of the graph carries. [`OutputWriter`]
//! is what a subtask's output side runs: for each outgoing edge it splits records into per-channel
//! buffers and hands out a batch when a buffer is full or on [`OutputWriter::flush`] (buffer
//! timeout, before a barrier, at end of input). Barriers are not records: the runtime sends them
//! on every channel of every edge after a flush.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use crate::state::key_group::{key_group_of, subtask_for_key_group};

/// How an edge distributes records over the downstream subtasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Partitioning {
    /// Subtask i sends to subtask i only (equal parallelism on both sides).
    Forward,
    /// Round-robin over all downstream subtasks.
    Rebalance,
    /// By key group of the record's key.
    KeyBy,
    /// Every record to every downstream subtask.
    Broadcast,
}

impl fmt::Display for Partitioning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Partitioning::Forward => "FORWARD",
            Partitioning::Rebalance => "REBALANCE",
            Partitioning::KeyBy => "HASH",
            Partitioning::Broadcast => "BROADCAST",
        })
    }
}

/// Computes the key group of a record (the key selector composed with Flink's hashing).
pub type KeyGroupFn<T> = Arc<dyn Fn(&T, u32) -> u32 + Send + Sync>;

/// Builds a [`KeyGroupFn`] from a key selector.
pub fn key_group_fn<T, K, F>(selector: F) -> KeyGroupFn<T>
where
    K: std::hash::Hash,
    F: Fn(&T) -> K + Send + Sync + 'static,
{
    Arc::new(move |record, max_parallelism| key_group_of(&selector(record), max_parallelism))
}

/// The typed part of an edge, stored type-erased in the graph: the record type, and for key-by
/// the key group function.
pub struct EdgeKey<T> {
    pub key_group: Option<KeyGroupFn<T>>,
}

/// One outgoing edge of a subtask as the runtime wires it.
#[derive(Clone)]
pub struct OutputEdge {
    pub partitioning: Partitioning,
    /// `EdgeKey<T>` for the vertex's output type `T`.
    pub key: Arc<dyn Any + Send + Sync>,
    /// Number of channels this subtask writes to on this edge (1 for forward).
    pub channels: usize,
    /// Downstream parallelism and max parallelism (key-by needs both).
    pub downstream_parallelism: u32,
    pub downstream_max_parallelism: u32,
}

/// A batch ready to send on output channel `channel` (numbered across all edges of the subtask).
pub struct OutBatch {
    pub channel: usize,
    pub records: Box<dyn Any + Send>,
    pub len: usize,
}

impl fmt::Debug for OutBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutBatch")
            .field("channel", &self.channel)
            .field("len", &self.len)
            .finish()
    }
}

struct EdgeWriter<T> {
    partitioning: Partitioning,
    key_group: Option<KeyGroupFn<T>>,
    first_channel: usize,
    buffers: Vec<Vec<T>>,
    downstream_parallelism: u32,
    max_parallelism: u32,
    next_round_robin: usize,
}

/// Splits a subtask's output records over its edges and channels, in batches.
pub struct OutputWriter<T> {
    edges: Vec<EdgeWriter<T>>,
    batch_size: usize,
    channels: usize,
}

/// The wiring did not match the record type or the partitioning (a bug in graph building).
#[derive(Debug, thiserror::Error)]
#[error("output edge {edge}: {reason}")]
pub struct WiringError {
    pub edge: usize,
    pub reason: &'static str,
}

impl<T: Clone + Send + 'static> OutputWriter<T> {
    /// One writer per subtask. `start_index` seeds round-robin so subtasks do not all start at
    /// channel 0.
    pub fn new(
        edges: &[OutputEdge],
        batch_size: usize,
        start_index: usize,
    ) -> Result<Self, WiringError> {
        let mut first_channel = 0;
        let mut writers = Vec::with_capacity(edges.len());
        for (i, e) in edges.iter().enumerate() {
            let routing = e.key.downcast_ref::<EdgeKey<T>>().ok_or(WiringError {
                edge: i,
                reason: "record type differs from the edge's type",
            })?;
            if e.partitioning == Partitioning::KeyBy && routing.key_group.is_none() {
                return Err(WiringError {
                    edge: i,
                    reason: "key-by edge without a key selector",
                });
            }
            writers.push(EdgeWriter {
                partitioning: e.partitioning,
                key_group: routing.key_group.clone(),
                first_channel,
                buffers: (0..e.channels).map(|_| Vec::new()).collect(),
                downstream_parallelism: e.downstream_parallelism,
                max_parallelism: e.downstream_max_parallelism,
                next_round_robin: start_index % e.channels.max(1),
            });
            first_channel += e.channels;
        }
        Ok(Self {
            edges: writers,
            batch_size: batch_size.max(1),
            channels: first_channel,
        })
    }

    /// Total output channels over all edges.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Route `records`; full batches are appended to `ready`. Nothing happens for none.
    pub fn write(&mut self, records: Vec<T>, ready: &mut Vec<OutBatch>) {
        let n = self.edges.len();
        if n == 0 || records.is_empty() {
            return;
        }
        let batch_size = self.batch_size;
        // The last edge takes ownership of the records; earlier ones clone.
        let mut records = Some(records);
        for (i, edge) in self.edges.iter_mut().enumerate() {
            let recs = if i + 1 == n {
                records.take().expect("taken once")
            } else {
                records.as_ref().expect("present").clone()
            };
            edge.route(recs, batch_size, ready);
        }
    }

    /// Everything buffered, as batches.
    pub fn flush(&mut self, ready: &mut Vec<OutBatch>) {
        for edge in &mut self.edges {
            for (c, buf) in edge.buffers.iter_mut().enumerate() {
                if !buf.is_empty() {
                    let records = std::mem::take(buf);
                    ready.push(out_batch(edge.first_channel + c, records));
                }
            }
        }
    }

    /// True when nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.edges
            .iter()
            .all(|e| e.buffers.iter().all(Vec::is_empty))
    }
}

fn out_batch<T: Send + 'static>(channel: usize, records: Vec<T>) -> OutBatch {
    let len = records.len();
    OutBatch {
        channel,
        records: Box::new(records),
        len,
    }
}

impl<T: Clone + Send + 'static> EdgeWriter<T> {
    fn route(&mut self, records: Vec<T>, batch_size: usize, ready: &mut Vec<OutBatch>) {
        let channels = self.buffers.len();
        match self.partitioning {
            Partitioning::Forward => {
                let buf = &mut self.buffers[0];
                if buf.is_empty() && records.len() >= batch_size {
                    ready.push(out_batch(self.first_channel, records));
                } else {
                    buf.extend(records);
                    self.spill(0, batch_size, ready);
                }
            }
            Partitioning::Rebalance => {
                for r in records {
                    let c = self.next_round_robin;
                    self.next_round_robin = (c + 1) % channels;
                    self.buffers[c].push(r);
                    self.spill(c, batch_size, ready);
                }
            }
            Partitioning::KeyBy => {
                let kg = self.key_group.clone().expect("checked in new");
                for r in records {
                    let group = kg(&r, self.max_parallelism);
                    let c = subtask_for_key_group(
                        group,
                        self.max_parallelism,
                        self.downstream_parallelism,
                    ) as usize;
                    self.buffers[c].push(r);
                    self.spill(c, batch_size, ready);
                }
            }
            Partitioning::Broadcast => {
                for c in 0..channels {
                    self.buffers[c].extend(records.iter().cloned());
                    self.spill(c, batch_size, ready);
                }
            }
        }
    }

    fn spill(&mut self, c: usize, batch_size: usize, ready: &mut Vec<OutBatch>) {
        if self.buffers[c].len() >= batch_size {
            let records = std::mem::replace(&mut self.buffers[c], Vec::with_capacity(batch_size));
            ready.push(out_batch(self.first_channel + c, records));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge<T: Send + Sync + 'static>(
        partitioning: Partitioning,
        key: Option<KeyGroupFn<T>>,
        channels: usize,
    ) -> OutputEdge {
        OutputEdge {
            partitioning,
            key: Arc::new(EdgeKey { key_group: key }),
            channels,
            downstream_parallelism: channels as u32,
            downstream_max_parallelism: 128,
        }
    }

    fn collect(ready: Vec<OutBatch>) -> Vec<(usize, Vec<u64>)> {
        ready
            .into_iter()
            .map(|b| (b.channel, *b.records.downcast::<Vec<u64>>().unwrap()))
            .collect()
    }

    #[test]
    fn forward_batches_and_flushes() {
        let mut w =
            OutputWriter::<u64>::new(&[edge::<u64>(Partitioning::Forward, None, 1)], 4, 0).unwrap();
        let mut ready = Vec::new();
        w.write(vec![1, 2, 3], &mut ready);
        assert!(ready.is_empty());
        w.write(vec![4, 5], &mut ready);
        assert_eq!(
            collect(std::mem::take(&mut ready)),
            vec![(0, vec![1, 2, 3, 4, 5])]
        );
        w.write(vec![6], &mut ready);
        w.flush(&mut ready);
        assert_eq!(collect(ready), vec![(0, vec![6])]);
        assert!(w.is_empty());
    }

    #[test]
    fn rebalance_round_robins_records() {
        let mut w =
            OutputWriter::<u64>::new(&[edge::<u64>(Partitioning::Rebalance, None, 3)], 100, 1)
                .unwrap();
        let mut ready = Vec::new();
        w.write((0..6).collect(), &mut ready);
        w.flush(&mut ready);
        let mut got = collect(ready);
        got.sort();
        assert_eq!(got, vec![(0, vec![2, 5]), (1, vec![0, 3]), (2, vec![1, 4])]);
    }

    #[test]
    fn key_by_sends_each_key_to_its_key_groups_subtask() {
        let kg = key_group_fn(|v: &u64| *v % 10);
        let mut w =
            OutputWriter::<u64>::new(&[edge(Partitioning::KeyBy, Some(kg), 3)], 1000, 0).unwrap();
        let mut ready = Vec::new();
        w.write((0..1000).collect(), &mut ready);
        w.flush(&mut ready);
        let mut seen = std::collections::HashMap::new();
        for (channel, records) in collect(ready) {
            for r in records {
                let expected = subtask_for_key_group(key_group_of(&(r % 10), 128), 128, 3) as usize;
                assert_eq!(channel, expected, "record {r}");
                assert_eq!(*seen.entry(r % 10).or_insert(channel), channel);
            }
        }
        assert_eq!(seen.len(), 10);
    }

    #[test]
    fn broadcast_copies_to_every_channel_and_fan_out_to_every_edge() {
        let edges = [
            edge::<u64>(Partitioning::Broadcast, None, 2),
            edge::<u64>(Partitioning::Forward, None, 1),
        ];
        let mut w = OutputWriter::<u64>::new(&edges, 100, 0).unwrap();
        assert_eq!(w.channels(), 3);
        let mut ready = Vec::new();
        w.write(vec![7, 8], &mut ready);
        w.flush(&mut ready);
        let mut got = collect(ready);
        got.sort();
        assert_eq!(got, vec![(0, vec![7, 8]), (1, vec![7, 8]), (2, vec![7, 8])]);
    }

    #[test]
    fn wiring_mistakes_are_errors() {
        let wrong_type = edge::<String>(Partitioning::Forward, None, 1);
        assert!(OutputWriter::<u64>::new(&[wrong_type], 10, 0).is_err());
        let keyless = edge::<u64>(Partitioning::KeyBy, None, 2);
        assert!(OutputWriter::<u64>::new(&[keyless], 10, 0).is_err());
    }
}
