//! Key groups: how a key maps to a group, and a group to the subtask that owns it.
//!
//! Keyed state is partitioned into `max_parallelism` key groups, fixed for the lifetime of the
//! state. A key's group is [`key_group_of`]: the [`StableHasher`] hash of the key, mixed again
//! and reduced modulo `max_parallelism`. Subtask `i` of `p` owns the contiguous
//! [`KeyGroupRange`] [`range_for_subtask`]`(max_p, p, i)`, and [`subtask_for_key_group`] is the
//! inverse used by the key-by partitioner. These are Flink's formulas
//! (`KeyGroupRangeAssignment`), so rescaling a restored job only reassigns whole ranges.
//!
//! The hash must be the same in every process that ever reads the state — the partitioner of
//! the upstream subtask, the keyed subtask, and the job restored from a savepoint months later
//! on another machine. `std`'s `RandomState` is seeded per process, so Weir hashes keys with
//! [`StableHasher`], a fixed-seed murmur3-style mixer whose integer writes are little-endian and
//! whose `usize` writes (length prefixes) are widened to `u64`. What it cannot pin down is a
//! key type's own `Hash` impl: `#[derive(Hash)]` on the user's type and `std`'s impls for
//! primitives, strings, tuples and slices feed it the same writes on every platform, but a
//! changed `Hash` impl changes key groups. A restore detects that (a restored key that is not
//! in its recorded group is an error) rather than silently losing the key.

use std::fmt;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::ops::Range;

use serde::{Deserialize, Serialize};

/// The largest max parallelism (number of key groups) Flink and Weir accept: 2^15.
pub const UPPER_BOUND_MAX_PARALLELISM: u32 = 1 << 15;

/// The smallest default max parallelism.
pub const DEFAULT_LOWER_BOUND_MAX_PARALLELISM: u32 = 128;

const C1: u64 = 0x87c3_7b91_1142_53d5;
const C2: u64 = 0x4cf5_ad43_2745_937f;

/// murmur3's 64-bit finaliser: a bijection whose every output bit depends on every input bit.
#[inline]
pub fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

/// A [`Hasher`] whose output is the same across processes, runs and platforms.
///
/// Written bytes are consumed as little-endian 64-bit words through murmur3's x64 block mix,
/// and `finish` applies murmur3's finaliser to the state and the number of bytes written.
/// Integers are written as little-endian words of their width; `usize`/`isize` (the length
/// prefixes of slices and strings) are widened to 64 bits so 32- and 64-bit targets agree.
/// Not keyed, so not HashDoS-resistant: like Flink's heap backend, Weir trusts its keys.
#[derive(Clone, Copy, Debug, Default)]
pub struct StableHasher {
    state: u64,
    len: u64,
}

impl StableHasher {
    /// A hasher in its initial (fixed) state.
    pub const fn new() -> Self {
        Self { state: 0, len: 0 }
    }

    #[inline]
    fn mix(&mut self, word: u64) {
        let k = word.wrapping_mul(C1).rotate_left(31).wrapping_mul(C2);
        self.state = (self.state ^ k)
            .rotate_left(27)
            .wrapping_mul(5)
            .wrapping_add(0x52dc_e729);
    }

    #[inline]
    fn word(&mut self, word: u64, bytes: u64) {
        self.mix(word);
        self.len = self.len.wrapping_add(bytes);
    }
}

impl Hasher for StableHasher {
    #[inline]
    fn finish(&self) -> u64 {
        fmix64(self.state ^ self.len)
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.mix(u64::from_le_bytes(w));
        }
        self.len = self.len.wrapping_add(bytes.len() as u64);
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.word(u64::from(i), 1);
    }
    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.word(u64::from(i), 2);
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.word(u64::from(i), 4);
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.word(i, 8);
    }
    #[inline]
    fn write_u128(&mut self, i: u128) {
        self.mix(i as u64);
        self.word((i >> 64) as u64, 16);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
    #[inline]
    fn write_i8(&mut self, i: i8) {
        self.write_u8(i as u8);
    }
    #[inline]
    fn write_i16(&mut self, i: i16) {
        self.write_u16(i as u16);
    }
    #[inline]
    fn write_i32(&mut self, i: i32) {
        self.write_u32(i as u32);
    }
    #[inline]
    fn write_i64(&mut self, i: i64) {
        self.write_u64(i as u64);
    }
    #[inline]
    fn write_i128(&mut self, i: i128) {
        self.write_u128(i as u128);
    }
    #[inline]
    fn write_isize(&mut self, i: isize) {
        self.write_u64(i as i64 as u64);
    }
}

/// A `BuildHasher` for `HashMap`s that should hash deterministically with [`StableHasher`].
pub type StableBuildHasher = BuildHasherDefault<StableHasher>;

/// The stable 64-bit hash of `key` (see [`StableHasher`]).
#[inline]
pub fn stable_hash<K: Hash + ?Sized>(key: &K) -> u64 {
    let mut h = StableHasher::new();
    key.hash(&mut h);
    h.finish()
}

/// Flink's default max parallelism for an operator of parallelism `p`:
/// `min(max(roundUpPow2(p + p/2), 128), 32768)`.
pub fn default_max_parallelism(parallelism: u32) -> u32 {
    let target = u64::from(parallelism) + u64::from(parallelism / 2);
    let pow2 = target
        .checked_next_power_of_two()
        .unwrap_or(u64::MAX)
        .min(u64::from(UPPER_BOUND_MAX_PARALLELISM)) as u32;
    pow2.clamp(
        DEFAULT_LOWER_BOUND_MAX_PARALLELISM,
        UPPER_BOUND_MAX_PARALLELISM,
    )
}

/// The key group of a key whose [`stable_hash`] is `hash`: `fmix64(hash) % max_parallelism`.
///
/// The extra mix decorrelates the group from the hash bits that hash tables use for buckets:
/// all keys of one group would otherwise share their low bits in the state backend's maps.
///
/// `max_parallelism` must be at least 1 (checked in debug builds).
#[inline]
pub fn key_group_for_hash(hash: u64, max_parallelism: u32) -> u32 {
    debug_assert!(max_parallelism > 0, "max parallelism must be at least 1");
    (fmix64(hash) % u64::from(max_parallelism)) as u32
}

/// The key group of `key` among `max_parallelism` groups.
#[inline]
pub fn key_group_of<K: Hash + ?Sized>(key: &K, max_parallelism: u32) -> u32 {
    key_group_for_hash(stable_hash(key), max_parallelism)
}

/// The subtask (of `parallelism`) that owns key group `key_group`: `kg * p / max_p`.
///
/// Agrees with [`range_for_subtask`]: the result's range contains `key_group`.
#[inline]
pub fn subtask_for_key_group(key_group: u32, max_parallelism: u32, parallelism: u32) -> u32 {
    debug_assert!(
        key_group < max_parallelism,
        "key group {key_group} >= {max_parallelism}"
    );
    (u64::from(key_group) * u64::from(parallelism) / u64::from(max_parallelism)) as u32
}

/// The key groups owned by subtask `index` of `parallelism`: Flink's
/// `[ceil(i·maxP/p), ((i+1)·maxP − 1)/p]`, returned half-open.
///
/// # Panics
///
/// If `parallelism` is 0 or exceeds `max_parallelism`, if `max_parallelism` exceeds
/// [`UPPER_BOUND_MAX_PARALLELISM`], or if `index >= parallelism`: each subtask must own at least
/// one group, and the caller (the job graph) validates these when the job is built.
pub fn range_for_subtask(max_parallelism: u32, parallelism: u32, index: u32) -> KeyGroupRange {
    assert!(
        parallelism >= 1 && parallelism <= max_parallelism,
        "parallelism {parallelism} must be between 1 and the max parallelism {max_parallelism}"
    );
    assert!(
        max_parallelism <= UPPER_BOUND_MAX_PARALLELISM,
        "max parallelism {max_parallelism} exceeds {UPPER_BOUND_MAX_PARALLELISM}"
    );
    assert!(
        index < parallelism,
        "subtask index {index} out of range for parallelism {parallelism}"
    );
    let (max_p, p, i) = (
        u64::from(max_parallelism),
        u64::from(parallelism),
        u64::from(index),
    );
    let start = (i * max_p).div_ceil(p);
    let end_inclusive = ((i + 1) * max_p - 1) / p;
    KeyGroupRange::new(start as u32, end_inclusive as u32 + 1)
}

/// A contiguous, **half-open** range of key groups `start..end` (unlike Flink's inclusive end;
/// an empty range is simply `start == end`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeyGroupRange {
    start: u32,
    end: u32,
}

impl KeyGroupRange {
    /// The groups `start..end`.
    ///
    /// # Panics
    ///
    /// If `start > end`.
    pub fn new(start: u32, end: u32) -> Self {
        assert!(start <= end, "key group range start {start} > end {end}");
        Self { start, end }
    }

    /// All `max_parallelism` groups (the range of a subtask with parallelism 1).
    pub fn all(max_parallelism: u32) -> Self {
        Self::new(0, max_parallelism)
    }

    /// The first group.
    pub fn start(&self) -> u32 {
        self.start
    }

    /// One past the last group.
    pub fn end(&self) -> u32 {
        self.end
    }

    /// Whether `key_group` is in the range.
    #[inline]
    pub fn contains(&self, key_group: u32) -> bool {
        self.start <= key_group && key_group < self.end
    }

    /// The number of groups.
    pub fn len(&self) -> usize {
        (self.end - self.start) as usize
    }

    /// Whether the range holds no group.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// The groups, in order.
    pub fn iter(&self) -> Range<u32> {
        self.start..self.end
    }

    /// The position of `key_group` in the range, if it is in it.
    #[inline]
    pub fn offset_of(&self, key_group: u32) -> Option<usize> {
        self.contains(key_group)
            .then(|| (key_group - self.start) as usize)
    }

    /// The groups in both ranges (empty, at `self.start`, if they do not overlap).
    pub fn intersect(&self, other: &KeyGroupRange) -> KeyGroupRange {
        let start = self.start.max(other.start);
        let end = self.end.min(other.end);
        if start < end {
            Self { start, end }
        } else {
            Self {
                start: self.start,
                end: self.start,
            }
        }
    }
}

impl IntoIterator for KeyGroupRange {
    type Item = u32;
    type IntoIter = Range<u32>;
    fn into_iter(self) -> Range<u32> {
        self.iter()
    }
}

impl fmt::Display for KeyGroupRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "key groups [{}, {})", self.start, self.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_max_parallelism_matches_flink() {
        assert_eq!(default_max_parallelism(1), 128);
        assert_eq!(default_max_parallelism(85), 128);
        assert_eq!(default_max_parallelism(86), 256); // 86 + 43 = 129 -> 256
        assert_eq!(default_max_parallelism(200), 512);
        assert_eq!(default_max_parallelism(30_000), 32_768);
        assert_eq!(default_max_parallelism(u32::MAX), 32_768);
        assert_eq!(default_max_parallelism(0), 128);
    }

    #[test]
    fn every_key_group_belongs_to_exactly_one_subtask() {
        for max_p in [1u32, 2, 7, 128, 129, 1000, 4096, 32_768] {
            for p in [1u32, 2, 3, 5, 7, 13, 64, 127, 128, 200] {
                if p > max_p {
                    continue;
                }
                let mut owner = vec![None; max_p as usize];
                let mut next = 0;
                for i in 0..p {
                    let r = range_for_subtask(max_p, p, i);
                    assert!(
                        !r.is_empty(),
                        "max_p {max_p} p {p}: subtask {i} owns nothing"
                    );
                    assert_eq!(r.start(), next, "ranges must be contiguous and ordered");
                    next = r.end();
                    for kg in r {
                        assert_eq!(owner[kg as usize], None, "kg {kg} owned twice");
                        owner[kg as usize] = Some(i);
                        assert_eq!(
                            subtask_for_key_group(kg, max_p, p),
                            i,
                            "max_p {max_p} p {p} kg {kg}"
                        );
                    }
                }
                assert_eq!(next, max_p);
                assert!(owner.iter().all(Option::is_some));
            }
        }
    }

    #[test]
    fn flink_range_examples() {
        // Flink: maxP 128, p 3 -> [0,42], [43,85], [86,127].
        assert_eq!(range_for_subtask(128, 3, 0), KeyGroupRange::new(0, 43));
        assert_eq!(range_for_subtask(128, 3, 1), KeyGroupRange::new(43, 86));
        assert_eq!(range_for_subtask(128, 3, 2), KeyGroupRange::new(86, 128));
        assert_eq!(range_for_subtask(10, 10, 9), KeyGroupRange::new(9, 10));
    }

    #[test]
    #[should_panic(expected = "parallelism 5 must be between 1 and the max parallelism 4")]
    fn parallelism_above_max_parallelism_is_rejected() {
        range_for_subtask(4, 5, 0);
    }

    #[test]
    fn range_operations() {
        let r = KeyGroupRange::new(10, 20);
        assert!(r.contains(10) && r.contains(19));
        assert!(!r.contains(9) && !r.contains(20));
        assert_eq!(r.len(), 10);
        assert_eq!(r.iter().collect::<Vec<_>>(), (10..20).collect::<Vec<_>>());
        assert_eq!(r.offset_of(15), Some(5));
        assert_eq!(r.offset_of(20), None);
        assert_eq!(
            r.intersect(&KeyGroupRange::new(15, 30)),
            KeyGroupRange::new(15, 20)
        );
        assert!(r.intersect(&KeyGroupRange::new(20, 30)).is_empty());
        assert!(KeyGroupRange::new(3, 3).is_empty());
        assert_eq!(r.to_string(), "key groups [10, 20)");
    }

    /// Golden values: these must never change, or every saved key group moves.
    #[test]
    fn hash_is_stable() {
        assert_eq!(stable_hash(&0u64), GOLDEN[0]);
        assert_eq!(stable_hash(&42u64), GOLDEN[1]);
        assert_eq!(stable_hash("user-17"), GOLDEN[2]);
        assert_eq!(stable_hash(&("a".to_string(), 7u32)), GOLDEN[3]);
        assert_eq!(stable_hash(&vec![1u8, 2, 3]), GOLDEN[4]);
        assert_eq!(key_group_of(&42u64, 128), GOLDEN_KG[0]);
        assert_eq!(key_group_of("user-17", 128), GOLDEN_KG[1]);
        assert_eq!(key_group_of("user-17", 32_768), GOLDEN_KG[2]);
    }

    // Cross-checked against an independent Python model of the algorithm.
    const GOLDEN: [u64; 5] = [
        0x7ec8_3ab1_d198_8401,
        0x4763_594c_d8d9_803d,
        0xe418_9c1e_81e3_7886,
        0x7c9c_6181_82ff_4010,
        0x9911_5d93_ad12_5e01,
    ];
    const GOLDEN_KG: [u32; 3] = [118, 64, 24_000];

    #[test]
    fn usize_is_hashed_as_u64() {
        let mut a = StableHasher::new();
        a.write_usize(12345);
        let mut b = StableHasher::new();
        b.write_u64(12345);
        assert_eq!(a.finish(), b.finish());
        // A String and a &str hash alike; different strings differ.
        assert_eq!(stable_hash(&"abc".to_string()), stable_hash("abc"));
        assert_ne!(stable_hash("abc"), stable_hash("abd"));
        assert_ne!(stable_hash("ab"), stable_hash("ab\0"));
        assert_ne!(stable_hash(&(1u32, 2u32)), stable_hash(&(2u32, 1u32)));
    }

    #[test]
    fn key_groups_are_spread_evenly() {
        let max_p = 128u32;
        let n = 128_000u64;
        let mut counts = vec![0u32; max_p as usize];
        for k in 0..n {
            counts[key_group_of(&k, max_p) as usize] += 1;
        }
        let mean = (n / u64::from(max_p)) as u32;
        for (kg, &c) in counts.iter().enumerate() {
            assert!(
                c > mean * 8 / 10 && c < mean * 12 / 10,
                "kg {kg}: {c} keys, mean {mean}"
            );
        }
    }
}
