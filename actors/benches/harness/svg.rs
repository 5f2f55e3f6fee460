//! The plot, drawn with `plotters` (its SVG backend only: text goes into the SVG as `<text>`
//! for the viewer to render, so no font files or system font stack are involved). Four panels —
//! throughput bars against the limit, checkpoint cost and recovery time versus state size on
//! log-log axes, and the checkpoints of the skew runs. Bars and points are medians; whiskers span
//! min to max.

use std::error::Error;
use std::iter::once;

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::job::Checkpointing;
use super::measure::median_of;
use super::plan::Results;
use super::stats::Summary;

const W: u32 = 1240;
const H: u32 = 860;
const COLORS: [RGBColor; 4] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x94, 0x67, 0xbd),
];
/// Reference bars (the plain-loop limits).
const GREY: RGBColor = RGBColor(0x99, 0x99, 0x99);
/// Reference lines (targets).
const ORANGE: RGBColor = RGBColor(0xff, 0x7f, 0x0e);
const GRID: RGBColor = RGBColor(0xdd, 0xdd, 0xdd);

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type Drawn = Result<(), Box<dyn Error>>;

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

/// A sans-serif font whose SVG `font-size` is `px` (plotters' SVG backend writes `size / 1.24`).
fn font(px: f64) -> TextStyle<'static> {
    TextStyle::from(("sans-serif", px * 1.24))
}

fn anchored(px: f64, h: HPos, v: VPos) -> TextStyle<'static> {
    font(px).pos(Pos::new(h, v))
}

/// Only the title, for a panel without data.
fn title_only(area: &Area, title: &str) -> Drawn {
    area.titled(title, font(14.0))?;
    Ok(())
}

/// Horizontal bars (the first on top) with min–max whiskers, the median written after each.
pub fn bars(
    area: &Area,
    title: &str,
    unit: &str,
    bars: &[Bar],
    reference: Option<(f64, &str)>,
) -> Drawn {
    if bars.is_empty() {
        return title_only(area, title);
    }
    let max = nice(
        bars.iter()
            .map(|b| b.value.max)
            .fold(0.0, f64::max)
            .max(1e-9)
            * 1.05,
    );
    // Rows in hundredths (integer coordinates, so the key points can be the rows' centres):
    // bar `i` is centred on `row(i)`, the first at the top.
    let n = bars.len() as i32;
    let row = |i: usize| 100 * (n - i as i32) - 50;
    let index = |y: i32| ((100 * n - 50 - y) / 100).clamp(0, n - 1) as usize;
    let rows: Vec<i32> = (0..bars.len()).map(row).collect();
    let mut chart = ChartBuilder::on(area)
        .caption(title, font(14.0))
        .margin(5)
        .margin_right(20)
        .set_label_area_size(LabelAreaPosition::Left, 300)
        .set_label_area_size(LabelAreaPosition::Bottom, 40)
        .build_cartesian_2d(0.0..max, (0..100 * n).with_key_points(rows))?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(6)
        .x_label_style(font(10.0))
        .y_label_style(font(11.0))
        .axis_desc_style(font(11.0))
        .x_label_formatter(&|v| format!("{v}"))
        .y_label_formatter(&|y| bars[index(*y)].label.clone())
        .x_desc(unit)
        .draw()?;
    for (i, b) in bars.iter().enumerate() {
        let y = row(i);
        let color = if b.reference { GREY } else { COLORS[0] };
        let Summary {
            median, min, max, ..
        } = b.value;
        chart.draw_series(once(Rectangle::new(
            [(0.0, y - 35), (median, y + 35)],
            color.filled(),
        )))?;
        chart.draw_series(once(PathElement::new(vec![(min, y), (max, y)], BLACK)))?;
        chart
            .draw_series([min, max].map(|v| {
                EmptyElement::at((v, y)) + PathElement::new(vec![(0, -4), (0, 4)], BLACK)
            }))?;
        chart.draw_series(once(
            EmptyElement::at((max, y))
                + Text::new(
                    format!("{median:.2}"),
                    (4, 0),
                    anchored(10.0, HPos::Left, VPos::Center),
                ),
        ))?;
    }
    if let Some((v, label)) = reference {
        chart.draw_series(once(DashedPathElement::new(
            vec![(v, 0), (v, 100 * n)],
            6,
            4,
            ORANGE,
        )))?;
        chart.draw_series(once(
            EmptyElement::at((v, 100 * n))
                + Text::new(
                    label.to_owned(),
                    (4, 2),
                    anchored(10.0, HPos::Left, VPos::Top),
                ),
        ))?;
    }
    Ok(())
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

/// Log-log lines in a panel, whole decades on both axes; `refs` are horizontal reference lines
/// `(value, label)`.
pub fn loglog(
    area: &Area,
    title: &str,
    (xlabel, ylabel): (&str, &str),
    series: &[Series],
    refs: &[(f64, &str)],
) -> Drawn {
    let pts = || series.iter().flat_map(|s| s.points.iter());
    if pts().next().is_none() {
        return title_only(area, title);
    }
    let xs = || pts().map(|p| p.0);
    let ys = || {
        pts()
            .flat_map(|p| [p.1.min, p.1.max])
            .chain(refs.iter().map(|r| r.0))
    };
    let (x0, x1) = decades(xs().fold(f64::MAX, f64::min), xs().fold(0.0, f64::max));
    let (y0, y1) = decades(ys().fold(f64::MAX, f64::min), ys().fold(0.0, f64::max));
    let powers = |a: i32, b: i32| (a..=b).map(|d| 10f64.powi(d)).collect::<Vec<_>>();
    let (xlo, xhi) = (10f64.powi(x0), 10f64.powi(x1));
    let (ylo, yhi) = (10f64.powi(y0), 10f64.powi(y1));
    // A zero (e.g. a pause too short to measure) sits on the bottom edge.
    let clamp = |v: f64| v.max(ylo);
    let mut chart = ChartBuilder::on(area)
        .caption(title, font(14.0))
        .margin(5)
        .margin_right(20)
        .set_label_area_size(LabelAreaPosition::Left, 70)
        .set_label_area_size(LabelAreaPosition::Bottom, 45)
        .build_cartesian_2d(
            (xlo..xhi).log_scale().with_key_points(powers(x0, x1)),
            (ylo..yhi).log_scale().with_key_points(powers(y0, y1)),
        )?;
    let decade = |v: &f64| format!("1e{}", v.log10().round() as i32);
    chart
        .configure_mesh()
        .bold_line_style(GRID)
        .label_style(font(10.0))
        .axis_desc_style(font(11.0))
        .x_label_formatter(&decade)
        .y_label_formatter(&decade)
        .x_desc(xlabel)
        .y_desc(ylabel)
        .draw()?;
    for (v, label) in refs {
        chart.draw_series(once(DashedPathElement::new(
            vec![(xlo, *v), (xhi, *v)],
            6,
            4,
            ORANGE,
        )))?;
        chart.draw_series(once(
            EmptyElement::at((xhi, *v))
                + Text::new(
                    (*label).to_owned(),
                    (-4, 4),
                    anchored(10.0, HPos::Right, VPos::Top),
                ),
        ))?;
    }
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(
                s.points.iter().map(|(x, y)| (*x, clamp(y.median))),
                color.stroke_width(2),
            ))?
            .label(s.name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart.draw_series(
            s.points
                .iter()
                .map(|(x, y)| Circle::new((*x, clamp(y.median)), 4, color.filled())),
        )?;
        chart.draw_series(
            s.points.iter().map(|(x, y)| {
                PathElement::new(vec![(*x, clamp(y.min)), (*x, clamp(y.max))], color)
            }),
        )?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(font(11.0))
        .background_style(WHITE.mix(0.8))
        .draw()?;
    Ok(())
}

/// The whole figure for `r`; `caption` goes at the bottom. A panel that fails to draw is
/// reported on stderr and left out, so a long benchmark run still writes its other outputs.
pub fn plot(r: &Results, caption: &str) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (W, H)).into_drawing_area();
        note_failure(figure(&root, r, caption));
        note_failure(root.present().map_err(Into::into));
    }
    svg
}

fn note_failure(drawn: Drawn) {
    if let Err(e) = drawn {
        eprintln!("weir_bench: the plot is incomplete: {e}");
    }
}

/// The panels, each drawn even if another failed.
fn figure(root: &Area, r: &Results, caption: &str) -> Drawn {
    root.fill(&WHITE)?;
    let (body, foot) = root.split_vertically(H - 30);
    let panels = body.split_evenly((2, 2));

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
    note_failure(bars(
        &panels[0],
        "1–2. Keyed count throughput",
        "million records/s",
        &tp,
        quarter,
    ));

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
    note_failure(loglog(
        &panels[1],
        "3. Checkpoint cost vs state size (p=1)",
        ("keys", "milliseconds"),
        &cost,
        &[(1000.0, "1 s"), (10.0, "10 ms target (sync)")],
    ));

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
    note_failure(loglog(
        &panels[2],
        "4. Recovery from a retained checkpoint vs state size",
        ("keys", "milliseconds after submit"),
        &rec,
        &[(1000.0, "1 s target (first record)")],
    ));

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
    note_failure(bars(
        &panels[3],
        "5. Skew: trigger to last snapshot (p=2)",
        "milliseconds",
        &sk,
        None,
    ));

    foot.draw_text(
        caption,
        &anchored(11.0, HPos::Center, VPos::Center),
        (W as i32 / 2, 15),
    )?;
    Ok(())
}
