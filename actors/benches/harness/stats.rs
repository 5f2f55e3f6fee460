//! Summaries of repeated measurements, and this process's peak memory.

use serde::{Deserialize, Serialize};

/// The median of several runs, with the smallest and largest.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

impl Summary {
    /// `None` for no values (NaNs are dropped).
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Self> {
        let mut v: Vec<f64> = values.into_iter().filter(|x| !x.is_nan()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Self {
            median,
            min: v[0],
            max: v[n - 1],
            n,
        })
    }

    /// `median (min–max)` with `digits` decimals, each value scaled by `scale`.
    pub fn show(&self, scale: f64, digits: usize) -> String {
        if self.n == 1 {
            return format!("{:.*}", digits, self.median * scale);
        }
        format!(
            "{:.*} ({:.*}–{:.*})",
            digits,
            self.median * scale,
            digits,
            self.min * scale,
            digits,
            self.max * scale
        )
    }
}

/// The median of `values` (NaN for none).
pub fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    Summary::of(values).map_or(f64::NAN, |s| s.median)
}

/// Peak resident set size of this process (`VmHWM`), in bytes; 0 where unknown.
pub fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// `1.2 MiB`, `340 KiB`, `12 B`.
pub fn bytes(n: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{v:.0} {}", UNITS[u])
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
