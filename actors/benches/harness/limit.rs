//! The limit: the keyed count's work as one plain Rust loop over a `HashMap` — for record `i`,
//! key `i % keys`, increment the key's count, fold `(key, count)` into the checksum — with no
//! engine. Every engine throughput is also reported as a fraction of it.
//!
//! Two hashers: `std`'s default (SipHash, what "a plain `HashMap`" is) and the engine's own
//! [`StableHasher`] (what the engine must pay for key groups that survive a restore anywhere).

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault};
use std::hint::black_box;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use weir_actors::weir::state::key_group::StableHasher;

use super::job::Checksum;

/// Which hasher the loop's map uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LimitHasher {
    /// `std::collections::HashMap::new()`: SipHash-1-3 with a random key.
    StdDefault,
    /// The engine's fixed-seed murmur-style hash.
    Stable,
}

impl LimitHasher {
    pub fn label(self) -> &'static str {
        match self {
            LimitHasher::StdDefault => "limit: plain loop, std HashMap (SipHash)",
            LimitHasher::Stable => "limit: plain loop, HashMap with the engine's stable hash",
        }
    }
}

/// Runs the loop; returns its checksum and how long it took.
pub fn plain_loop(records: u64, keys: u64, hasher: LimitHasher) -> (Checksum, Duration) {
    match hasher {
        LimitHasher::StdDefault => run(records, keys, HashMap::new()),
        LimitHasher::Stable => run(
            records,
            keys,
            HashMap::with_hasher(BuildHasherDefault::<StableHasher>::default()),
        ),
    }
}

fn run<S: BuildHasher>(
    records: u64,
    keys: u64,
    mut counts: HashMap<u64, u64, S>,
) -> (Checksum, Duration) {
    let (records, keys) = (black_box(records), black_box(keys.max(1)));
    let mut checksum = Checksum::default();
    let start = Instant::now();
    for i in 0..records {
        let key = i % keys;
        let n = counts.entry(key).or_insert(0);
        *n += 1;
        checksum.add(key, *n);
    }
    let elapsed = start.elapsed();
    black_box(&counts);
    (checksum, elapsed)
}
