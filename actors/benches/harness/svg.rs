//! The plot: a hand-written SVG (no plotting crate to build), four panels — throughput bars
//! against the limit, checkpoint cost and recovery time versus state size on log-log axes, and
//! the checkpoints of the skew runs. Bars and points are medians; whiskers span min to max.

use std::fmt::Write;

use super::job::Checkpointing;
use super::measure::median_of;
use super::plan::Results;
use super::stats::Summary;

const W: f64 = 1240.0;
const H: f64 = 860.0;
const COLORS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];

/// A bar: its label, its value, and whether it is a reference (drawn grey).
pub struct Bar {
    pub label: String,
    pub value: Summary,
    pub reference: bool,
}

/// A line of a log-log panel.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, Summary)>,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn text(svg: &mut String, x: f64, y: f64, size: f64, anchor: &str, s: &str) {
    let _ = writeln!(
        svg,
        r#"<text x="{x:.1}" y="{y:.1}" font-size="{size}" text-anchor="{anchor}">{}</text>"#,
        esc(s)
    );
}

fn line(svg: &mut String, (x1, y1): (f64, f64), (x2, y2): (f64, f64), style: &str) {
    let _ = writeln!(
        svg,
        r#"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" {style}/>"#
    );
}

/// Horizontal bars in a panel at `(x, y)` of size `w`×`h`.
pub fn bars(
    svg: &mut String,
    (x, y, w, h): (f64, f64, f64, f64),
    title: &str,
    unit: &str,
    bars: &[Bar],
    reference: Option<(f64, &str)>,
) {
    text(svg, x + w / 2.0, y + 16.0, 14.0, "middle", title);
    if bars.is_empty() {
        return;
    }
    let (left, top, bottom) = (x + 300.0, y + 30.0, y + h - 30.0);
    let right = x + w - 20.0;
    let max = nice(
        bars.iter()
            .map(|b| b.value.max)
            .fold(0.0, f64::max)
            .max(1e-9)
            * 1.05,
    );
    let sx = |v: f64| left + (right - left) * v / max;
    let step = (bottom - top) / bars.len() as f64;
    for (i, b) in bars.iter().enumerate() {
        let cy = top + step * (i as f64 + 0.5);
        let color = if b.reference { "#999999" } else { COLORS[0] };
        let _ = writeln!(
            svg,
            r#"<rect x="{left:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{color}"/>"#,
            cy - step * 0.35,
            sx(b.value.median) - left,
            step * 0.7
        );
        line(
            svg,
            (sx(b.value.min), cy),
            (sx(b.value.max), cy),
            r#"stroke="black""#,
        );
        for v in [b.value.min, b.value.max] {
            line(
                svg,
                (sx(v), cy - 4.0),
                (sx(v), cy + 4.0),
                r#"stroke="black""#,
            );
        }
        text(svg, left - 6.0, cy + 4.0, 11.0, "end", &b.label);
        text(
            svg,
            sx(b.value.max) + 4.0,
            cy + 4.0,
            10.0,
            "start",
            &format!("{:.2}", b.value.median),
        );
    }
    line(svg, (left, bottom), (right, bottom), r#"stroke="black""#);
    for i in 0..=4 {
        let v = max * f64::from(i) / 4.0;
        line(
            svg,
            (sx(v), bottom),
            (sx(v), bottom + 4.0),
            r#"stroke="black""#,
        );
        text(svg, sx(v), bottom + 16.0, 10.0, "middle", &format!("{v}"));
    }
    if let Some((v, label)) = reference {
        line(
            svg,
            (sx(v), top),
            (sx(v), bottom),
            r##"stroke="#ff7f0e" stroke-dasharray="6 4""##,
        );
        text(svg, sx(v) + 4.0, top + 10.0, 10.0, "start", label);
    }
    text(
        svg,
        (left + right) / 2.0,
        bottom + 28.0,
        11.0,
        "middle",
        unit,
    );
}

/// The smallest of 1, 2, 2.5, 5 × 10^k at or above `v`.
fn nice(v: f64) -> f64 {
    let base = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * base)
        .find(|&c| c >= v)
        .unwrap_or(10.0 * base)
}

fn decades(lo: f64, hi: f64) -> (i32, i32) {
    let a = lo.max(1e-9).log10().floor() as i32;
    let b = hi.max(lo * 10.0).log10().ceil() as i32;
    (a, b.max(a + 1))
}

/// Log-log lines in a panel; `refs` are horizontal reference lines `(value, label)`.
pub fn loglog(
    svg: &mut String,
    (x, y, w, h): (f64, f64, f64, f64),
    title: &str,
    (xlabel, ylabel): (&str, &str),
    series: &[Series],
    refs: &[(f64, &str)],
) {
    text(svg, x + w / 2.0, y + 16.0, 14.0, "middle", title);
    let pts = || series.iter().flat_map(|s| s.points.iter());
    if pts().next().is_none() {
        return;
    }
    let xs = || pts().map(|p| p.0);
    let ys = || {
        pts()
            .flat_map(|p| [p.1.min, p.1.max])
            .chain(refs.iter().map(|r| r.0))
    };
    let (x0, x1) = decades(xs().fold(f64::MAX, f64::min), xs().fold(0.0, f64::max));
    let (y0, y1) = decades(ys().fold(f64::MAX, f64::min), ys().fold(0.0, f64::max));
    let (left, right, top, bottom) = (x + 70.0, x + w - 20.0, y + 30.0, y + h - 45.0);
    let sx = |v: f64| left + (right - left) * (v.log10() - f64::from(x0)) / f64::from(x1 - x0);
    let sy = |v: f64| {
        bottom - (bottom - top) * (v.max(1e-9).log10() - f64::from(y0)) / f64::from(y1 - y0)
    };
    let grid = r##"stroke="#dddddd""##;
    for d in x0..=x1 {
        let v = 10f64.powi(d);
        line(svg, (sx(v), top), (sx(v), bottom), grid);
        text(svg, sx(v), bottom + 16.0, 10.0, "middle", &format!("1e{d}"));
    }
    for d in y0..=y1 {
        let v = 10f64.powi(d);
        line(svg, (left, sy(v)), (right, sy(v)), grid);
        text(svg, left - 6.0, sy(v) + 4.0, 10.0, "end", &format!("1e{d}"));
    }
    line(svg, (left, bottom), (right, bottom), r#"stroke="black""#);
    line(svg, (left, top), (left, bottom), r#"stroke="black""#);
    text(
        svg,
        (left + right) / 2.0,
        bottom + 32.0,
        11.0,
        "middle",
        xlabel,
    );
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle" transform="rotate(-90 {:.1} {:.1})">{}</text>"#,
        x + 18.0,
        (top + bottom) / 2.0,
        x + 18.0,
        (top + bottom) / 2.0,
        esc(ylabel)
    );
    for (v, label) in refs {
        line(
            svg,
            (left, sy(*v)),
            (right, sy(*v)),
            r##"stroke="#ff7f0e" stroke-dasharray="6 4""##,
        );
        text(svg, right - 4.0, sy(*v) - 4.0, 10.0, "end", label);
    }
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let path: Vec<String> = s
            .points
            .iter()
            .map(|(px, py)| format!("{:.1},{:.1}", sx(*px), sy(py.median)))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
            path.join(" ")
        );
        for (px, py) in &s.points {
            let _ = writeln!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{color}"/>"#,
                sx(*px),
                sy(py.median)
            );
            line(
                svg,
                (sx(*px), sy(py.min)),
                (sx(*px), sy(py.max)),
                &format!(r#"stroke="{color}""#),
            );
        }
        let ly = top + 14.0 * i as f64 + 6.0;
        line(
            svg,
            (left + 10.0, ly),
            (left + 30.0, ly),
            &format!(r#"stroke="{color}" stroke-width="2""#),
        );
        text(svg, left + 36.0, ly + 4.0, 11.0, "start", &s.name);
    }
}

/// The whole figure for `r`; `caption` goes at the bottom.
pub fn plot(r: &Results, caption: &str) -> String {
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif">"#
    );
    let _ = writeln!(svg, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let (pw, ph) = (W / 2.0, (H - 30.0) / 2.0);

    let mut tp: Vec<Bar> = Vec::new();
    for (hasher, runs) in &r.limits {
        if let Some(value) = Summary::of(runs.iter().map(|l| l.records_per_sec / 1e6)) {
            tp.push(Bar {
                label: hasher.label().replace("limit: plain loop, ", "limit, "),
                value,
                reference: true,
            });
        }
    }
    for (job, runs) in &r.throughput {
        if let Some(value) = Summary::of(runs.iter().map(|t| t.records_per_sec / 1e6)) {
            tp.push(Bar {
                label: job.label(),
                value,
                reference: false,
            });
        }
    }
    let quarter = r
        .limits
        .first()
        .and_then(|(_, runs)| Summary::of(runs.iter().map(|l| l.records_per_sec / 1e6)))
        .map(|s| (s.median / 4.0, "25% of the SipHash limit"));
    bars(
        &mut svg,
        (0.0, 0.0, pw, ph),
        "1–2. Keyed count throughput",
        "million records/s",
        &tp,
        quarter,
    );

    let per_size =
        |f: &dyn Fn(&super::plan::SizeResults) -> Option<Summary>| -> Vec<(f64, Summary)> {
            r.sizes
                .iter()
                .filter_map(|s| f(s).map(|v| (s.keys as f64, v)))
                .collect()
        };
    let cost = vec![
        Series {
            name: "end-to-end".into(),
            points: per_size(&|s| {
                Summary::of(
                    s.cost
                        .iter()
                        .map(|c| median_of(&c.checkpoints, |x| x.end_to_end_ms)),
                )
            }),
        },
        Series {
            name: "synchronous pause".into(),
            points: per_size(&|s| {
                Summary::of(
                    s.cost
                        .iter()
                        .map(|c| median_of(&c.checkpoints, |x| x.max_sync_ms)),
                )
            }),
        },
    ];
    loglog(
        &mut svg,
        (pw, 0.0, pw, ph),
        "3. Checkpoint cost vs state size (p=1)",
        ("keys", "milliseconds"),
        &cost,
        &[(1000.0, "1 s"), (10.0, "10 ms target (sync)")],
    );

    let rec = vec![
        Series {
            name: "first record".into(),
            points: per_size(&|s| {
                Summary::of(s.recovery.iter().map(|x| x.first_record_seconds * 1e3))
            }),
        },
        Series {
            name: "steady throughput".into(),
            points: per_size(&|s| Summary::of(s.recovery.iter().map(|x| x.steady_seconds * 1e3))),
        },
    ];
    loglog(
        &mut svg,
        (0.0, ph, pw, ph),
        "4. Recovery from a retained checkpoint vs state size",
        ("keys", "milliseconds after submit"),
        &rec,
        &[(1000.0, "1 s target (first record)")],
    );

    let mut sk: Vec<Bar> = Vec::new();
    for (job, runs) in &r.skew {
        if let Some(value) = Summary::of(
            runs.iter()
                .map(|s| median_of(&s.checkpoints, |x| x.barrier_delay_ms)),
        ) {
            let label = match (
                job.skew.map_or(0, |s| s.micros_per_batch),
                job.checkpointing,
            ) {
                (0, c) => format!("no slow channel, {}", c.label()),
                (_, Checkpointing::AtLeastOnce) => "slow channel, at-least-once".into(),
                (_, c) => format!("slow channel, {}", c.label()),
            };
            sk.push(Bar {
                label,
                value,
                reference: false,
            });
        }
    }
    bars(
        &mut svg,
        (pw, ph, pw, ph),
        "5. Skew: trigger to last snapshot (p=2)",
        "milliseconds",
        &sk,
        None,
    );

    text(&mut svg, W / 2.0, H - 10.0, 11.0, "middle", caption);
    svg.push_str("</svg>\n");
    svg
}
