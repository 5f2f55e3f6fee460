//! [`FaultStats`]: how many faults an injector has injected, by [`FaultKind`].
//!
//! A fault is counted when it takes effect: an error when it is returned, a torn write when
//! the shortened file is stored, a delay when it starts. A test reports them with `{stats}`
//! (`write-error=3 partial-write=1`, or `none`).

use std::fmt;

use super::plan::FaultKind;

/// Faults injected so far, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultStats {
    counts: [u64; FaultKind::ALL.len()],
}

impl FaultStats {
    /// How many faults of `kind` were injected.
    pub fn get(&self, kind: FaultKind) -> u64 {
        self.counts[Self::index(kind)]
    }

    /// How many faults were injected in all.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Every kind with its count, zeros included, in [`FaultKind::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (FaultKind, u64)> + '_ {
        FaultKind::ALL.iter().map(|&k| (k, self.get(k)))
    }

    pub(super) fn record(&mut self, kind: FaultKind) {
        self.counts[Self::index(kind)] += 1;
    }

    fn index(kind: FaultKind) -> usize {
        FaultKind::ALL
            .iter()
            .position(|&k| k == kind)
            .expect("FaultKind::ALL lists every kind")
    }
}

impl fmt::Display for FaultStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut any = false;
        for (kind, n) in self.iter().filter(|&(_, n)| n > 0) {
            if any {
                f.write_str(" ")?;
            }
            write!(f, "{kind}={n}")?;
            any = true;
        }
        if !any {
            f.write_str("none")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_kind_and_displays_the_nonzero_ones() {
        let mut s = FaultStats::default();
        assert_eq!(s.to_string(), "none");
        s.record(FaultKind::WriteError);
        s.record(FaultKind::WriteError);
        s.record(FaultKind::Latency);
        assert_eq!(s.get(FaultKind::WriteError), 2);
        assert_eq!(s.get(FaultKind::DiskFull), 0);
        assert_eq!(s.total(), 3);
        assert_eq!(s.to_string(), "write-error=2 latency=1");
        assert_eq!(s.iter().count(), FaultKind::ALL.len());
    }
}
