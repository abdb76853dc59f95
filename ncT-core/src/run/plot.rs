//! Plots written into the run directory as PNG and SVG (plotters; text in the bundled DejaVu Sans
//! Mono font, so no system fonts are needed).

use super::RunError;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

static FONT: Once = Once::new();

fn register_font() {
    FONT.call_once(|| {
        let bytes: &'static [u8] = include_bytes!("../../assets/fonts/DejaVuSansMono.ttf");
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, bytes);
    });
}

const SIZE: (u32, u32) = (900, 600);
const PALETTE: [RGBColor; 10] = [RGBColor(31, 119, 180), RGBColor(214, 39, 40), RGBColor(44, 160, 44), RGBColor(255, 127, 14), RGBColor(148, 103, 189), RGBColor(140, 86, 75), RGBColor(227, 119, 194), RGBColor(127, 127, 127), RGBColor(188, 189, 34), RGBColor(23, 190, 207)];

/// One named line of a [`line_plot`].
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    /// Draw markers instead of a line.
    pub markers: bool,
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn both(dir: &Path, stem: &str, draw: &dyn Fn(&DrawingArea<BitMapBackend, Shift>) -> DrawResult, draw_svg: &dyn Fn(&DrawingArea<SVGBackend, Shift>) -> DrawResult) -> Result<(), RunError> {
    if !crate::parallel::is_root() {
        return Ok(()); // over MPI rank 0 draws the plots
    }
    register_font();
    let png = dir.join(format!("{stem}.png"));
    let svg = dir.join(format!("{stem}.svg"));
    let perr = |p: &Path, e: Box<dyn std::error::Error>| RunError::Plot { path: p.into(), why: e.to_string() };
    {
        let root = BitMapBackend::new(&png, SIZE).into_drawing_area();
        draw(&root).map_err(|e| perr(&png, e))?;
        root.present().map_err(|e| perr(&png, Box::new(e)))?;
    }
    {
        let root = SVGBackend::new(&svg, SIZE).into_drawing_area();
        draw_svg(&root).map_err(|e| perr(&svg, e))?;
        root.present().map_err(|e| perr(&svg, Box::new(e)))?;
    }
    Ok(())
}

fn range(vals: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in vals.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(1e-9 * (1.0 + hi.abs()));
    (lo - pad, hi + pad)
}

/// Tick label with as many decimals as the axis span needs, a minus sign (U+2212), and no "-0".
fn tick(v: f64, span: f64) -> String {
    let decimals = if span > 0.0 && span.is_finite() { (-(span / 5.0).log10().floor()).clamp(0.0, 6.0) as usize } else { 2 };
    let s = format!("{:.*}", decimals, v + 0.0);
    // A typographic minus: the hyphen of a monospaced font sits in a wide cell and reads as "- 4".
    if s.trim_start_matches('-').chars().all(|c| c == '0' || c == '.') { s.trim_start_matches('-').to_string() } else { s.replace('-', "\u{2212}") }
}

/// Centred running mean over `w` points (non-finite points skipped).
pub fn running_mean(pts: &[(f64, f64)], w: usize) -> Vec<(f64, f64)> {
    let n = pts.len();
    (0..n)
        .map(|i| {
            let (a, b) = (i.saturating_sub(w / 2), (i + w / 2 + 1).min(n));
            let v: Vec<f64> = pts[a..b].iter().map(|p| p.1).filter(|v| v.is_finite()).collect();
            (pts[i].0, v.iter().sum::<f64>() / v.len().max(1) as f64)
        })
        .collect()
}

/// The training curve of a run: the per-step loss (faint), its running mean, the exact or
/// reference value as a line, and a view clipped to the last 90% of steps so that the start does
/// not flatten the curve.
pub fn loss_plot(dir: &Path, title: &str, name: &str, ylabel: &str, losses: &[(u64, f64)], exact: Option<(&str, f64)>) -> Result<(), RunError> {
    let pts: Vec<(f64, f64)> = losses.iter().map(|&(s, l)| (s as f64, l)).collect();
    let mean = running_mean(&pts, (pts.len() / 50).max(1));
    let mut tail: Vec<f64> = pts[pts.len() / 10..].iter().map(|p| p.1).filter(|v| v.is_finite()).collect();
    tail.sort_by(f64::total_cmp);
    let q = |f: f64| tail.get(((tail.len() as f64 - 1.0) * f) as usize).copied().unwrap_or(0.0);
    let lo = q(0.01).min(exact.map_or(f64::INFINITY, |e| e.1));
    let hi = q(0.99).max(exact.map_or(f64::NEG_INFINITY, |e| e.1));
    let pad = 0.05 * (hi - lo).max(1e-6);
    let series = [Series { name: name.into(), points: pts, markers: false }, Series { name: "running mean".into(), points: mean, markers: false }];
    line_plot(dir, "loss", title, "step", ylabel, &series, exact, Some((lo - pad, hi + pad)))
}

fn draw_lines<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, title: &str, xlabel: &str, ylabel: &str, series: &[Series], hline: Option<(&str, f64)>, y_range: Option<(f64, f64)>) -> DrawResult
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let (x0, x1) = range(series.iter().flat_map(|s| s.points.iter().map(|p| p.0)));
    let (y0, y1) = y_range.unwrap_or_else(|| range(series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).chain(hline.map(|h| h.1))));
    let mut chart = ChartBuilder::on(root).caption(title, ("sans-serif", 24)).margin(15).x_label_area_size(45).y_label_area_size(80).build_cartesian_2d(x0..x1, y0..y1)?;
    chart.configure_mesh().x_desc(xlabel).y_desc(ylabel).label_style(("sans-serif", 16)).x_label_formatter(&|x| tick(*x, x1 - x0)).y_label_formatter(&|y| tick(*y, y1 - y0)).draw()?;
    for (i, s) in series.iter().enumerate() {
        let c = PALETTE[i % PALETTE.len()];
        if s.markers {
            chart.draw_series(s.points.iter().map(|&p| Circle::new(p, 5, c.filled())))?.label(s.name.clone()).legend(move |(x, y)| Circle::new((x + 10, y), 5, c.filled()));
        } else {
            // Raw, noisy series are drawn faint when a running mean accompanies them.
            let has_mean = series.iter().any(|t| t.name.contains("mean"));
            let faint = has_mean && !s.name.contains("mean");
            let width = if faint { 1 } else { 2 };
            let col = if faint { c.mix(0.35) } else { c.to_rgba() };
            chart.draw_series(LineSeries::new(s.points.iter().copied().filter(|p| p.1.is_finite()).map(|(x, y)| (x, y.clamp(y0, y1))), col.stroke_width(width)))?.label(s.name.clone()).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        }
    }
    if let Some((label, v)) = hline {
        chart.draw_series(LineSeries::new(vec![(x0, v), (x1, v)], BLACK.stroke_width(1)))?.label(label.to_string()).legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
    }
    let corner = emptiest_corner(series.iter().flat_map(|s| s.points.iter().copied()), (x0, x1), (y0, y1));
    chart.configure_series_labels().position(corner).background_style(WHITE.mix(0.8)).border_style(BLACK).label_font(("sans-serif", 16)).draw()?;
    Ok(())
}

/// The corner of the plot (a third of the width, a quarter of the height) holding the fewest
/// data points, for the legend box.
fn emptiest_corner(points: impl Iterator<Item = (f64, f64)>, x: (f64, f64), y: (f64, f64)) -> SeriesLabelPosition {
    let mut count = [0usize; 4]; // upper right, upper left, lower right, lower left
    for (px, py) in points.filter(|p| p.0.is_finite() && p.1.is_finite()) {
        let (u, v) = ((px - x.0) / (x.1 - x.0), (py - y.0) / (y.1 - y.0));
        let (right, left, top, bottom) = (u > 2.0 / 3.0, u < 1.0 / 3.0, v > 0.75, v < 0.25);
        for (k, inside) in [right && top, left && top, right && bottom, left && bottom].into_iter().enumerate() {
            count[k] += inside as usize;
        }
    }
    let best = (0..4).min_by_key(|&k| count[k]).unwrap_or(0);
    [SeriesLabelPosition::UpperRight, SeriesLabelPosition::UpperLeft, SeriesLabelPosition::LowerRight, SeriesLabelPosition::LowerLeft][best].clone()
}

/// Lines or markers against a shared x axis, with an optional horizontal reference line (e.g. the
/// exact free energy). `y_range` clips the view (useful for loss curves with a large start).
pub fn line_plot(dir: &Path, stem: &str, title: &str, xlabel: &str, ylabel: &str, series: &[Series], hline: Option<(&str, f64)>, y_range: Option<(f64, f64)>) -> Result<(), RunError> {
    both(dir, stem, &|r| draw_lines(r, title, xlabel, ylabel, series, hline, y_range), &|r| draw_lines(r, title, xlabel, ylabel, series, hline, y_range))
}

/// Axis scaling of a [`scatter_plot`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aspect {
    /// Each axis spans its own data range.
    Free,
    /// One unit is as long on both axes (for isotropic spaces: positions in a plane); the
    /// shorter range is widened about its centre.
    Equal,
}

/// Widen `(x0, x1)` or `(y0, y1)` about its centre so that x units per pixel equal y units per
/// pixel on a `w` x `h` pixel plotting area.
fn equal_aspect(x: (f64, f64), y: (f64, f64), w: f64, h: f64) -> ((f64, f64), (f64, f64)) {
    let (sx, sy) = ((x.1 - x.0) / w, (y.1 - y.0) / h);
    let widen = |r: (f64, f64), span: f64| {
        let c = 0.5 * (r.0 + r.1);
        (c - 0.5 * span, c + 0.5 * span)
    };
    if sx > sy { (x, widen(y, sx * h)) } else { (widen(x, sy * w), y) }
}

fn draw_scatter<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, title: &str, xlabel: &str, ylabel: &str, points: &[(f64, f64, f64)], colour: &str, aspect: Aspect) -> DrawResult
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let (mut x0, mut x1) = range(points.iter().map(|p| p.0));
    let (mut y0, mut y1) = range(points.iter().map(|p| p.1));
    let (c0, c1) = range(points.iter().map(|p| p.2));
    let area = root.titled(title, ("sans-serif", 22))?;
    let builder = || {
        let mut b = ChartBuilder::on(&area);
        b.margin(15).margin_right(125).x_label_area_size(45).y_label_area_size(80);
        b
    };
    if aspect == Aspect::Equal {
        let (w, h) = builder().build_cartesian_2d(x0..x1, y0..y1)?.plotting_area().dim_in_pixel();
        ((x0, x1), (y0, y1)) = equal_aspect((x0, x1), (y0, y1), w as f64, h as f64);
    }
    let mut chart = builder().build_cartesian_2d(x0..x1, y0..y1)?;
    chart.configure_mesh().x_desc(xlabel).y_desc(ylabel).label_style(("sans-serif", 16)).x_label_formatter(&|x| tick(*x, x1 - x0)).y_label_formatter(&|y| tick(*y, y1 - y0)).draw()?;
    // Colour bar on the right: the colour scale of the third value, with its range.
    let hue = |t: f64| HSLColor(0.7 * (1.0 - t.clamp(0.0, 1.0)), 0.85, 0.45);
    let (w, h) = root.dim_in_pixel();
    let (bx, by0, by1) = (w as i32 - 95, 70, h as i32 - 60);
    for k in 0..(by1 - by0) {
        let t = 1.0 - k as f64 / (by1 - by0) as f64;
        root.draw(&Rectangle::new([(bx, by0 + k), (bx + 14, by0 + k + 1)], hue(t).filled()))?;
    }
    let style = ("sans-serif", 14).into_font().color(&BLACK);
    root.draw(&Text::new(tick(c1, c1 - c0), (bx + 18, by0 - 6), style.clone()))?;
    root.draw(&Text::new(tick(c0, c1 - c0), (bx + 18, by1 - 8), style.clone()))?;
    root.draw(&Text::new(colour.to_string(), (bx - 20, by0 - 28), style))?;
    chart.draw_series(points.iter().map(|&(x, y, c)| {
        Circle::new((x, y), 2, hue((c - c0) / (c1 - c0)).filled())
    }))?;
    Ok(())
}

/// Scatter of `(x, y)` coloured by a third value (blue = low, red = high), with a colour bar.
#[allow(clippy::too_many_arguments)]
pub fn scatter_plot(dir: &Path, stem: &str, title: &str, xlabel: &str, ylabel: &str, points: &[(f64, f64, f64)], colour: &str, aspect: Aspect) -> Result<(), RunError> {
    both(dir, stem, &|r| draw_scatter(r, title, xlabel, ylabel, points, colour, aspect), &|r| draw_scatter(r, title, xlabel, ylabel, points, colour, aspect))
}

fn draw_levels<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, title: &str, ylabel: &str, levels: &[(f64, f64)], exact: &[f64], names: &[String]) -> DrawResult
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let (y0, y1) = range(levels.iter().flat_map(|l| [l.0 - l.1, l.0 + l.1]).chain(exact.iter().copied()));
    let mut chart = ChartBuilder::on(root).caption(title, ("sans-serif", 24)).margin(15).x_label_area_size(45).y_label_area_size(90).build_cartesian_2d(-0.5f64..(levels.len() as f64 - 0.5), y0..y1)?;
    chart.configure_mesh().x_desc("state").y_desc(ylabel).label_style(("sans-serif", 16)).x_labels(levels.len().max(1)).x_label_formatter(&|x| if (x - x.round()).abs() < 1e-6 && x.round() >= 0.0 { names.get(x.round() as usize).cloned().unwrap_or_else(|| format!("{:.0}", x)) } else { String::new() }).y_label_formatter(&|y| tick(*y, y1 - y0)).draw()?;
    let blue = PALETTE[0];
    chart.draw_series(levels.iter().enumerate().map(|(i, &(e, _))| PathElement::new(vec![(i as f64 - 0.35, e), (i as f64 + 0.35, e)], blue.stroke_width(3))))?.label("learned").legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], blue.stroke_width(3)));
    chart.draw_series(levels.iter().enumerate().map(|(i, &(e, s))| ErrorBar::new_vertical(i as f64, e - s, e, e + s, blue.stroke_width(1), 8)))?;
    if !exact.is_empty() {
        let red = PALETTE[1];
        chart.draw_series(exact.iter().enumerate().map(|(i, &e)| PathElement::new(vec![(i as f64 - 0.35, e), (i as f64 + 0.35, e)], red.stroke_width(1))))?.label("reference").legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], red));
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).label_font(("sans-serif", 16)).draw()?;
    Ok(())
}

/// Energy-level diagram: `(energy, error)` per state, labelled by `names` (e.g. the quantum
/// numbers), with reference levels where known.
pub fn level_plot(dir: &Path, stem: &str, title: &str, ylabel: &str, levels: &[(f64, f64)], exact: &[f64], names: &[String]) -> Result<(), RunError> {
    both(dir, stem, &|r| draw_levels(r, title, ylabel, levels, exact, names), &|r| draw_levels(r, title, ylabel, levels, exact, names))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_labels_have_the_decimals_the_span_needs_and_no_negative_zero() {
        assert_eq!(tick(5350.0, 300.0), "5350");
        assert_eq!(tick(-13.6004, 0.05), "\u{2212}13.60");
        assert_eq!(tick(-0.0, 2.0), "0.0");
        assert_eq!(tick(-0.00001, 0.5), "0.0");
        assert_eq!(tick(2.5, 10.0), "2");
        let ((x0, x1), (y0, y1)) = equal_aspect((0.0, 4.0), (-1.0, 1.0), 800.0, 400.0);
        assert_eq!(((x0, x1), (y0, y1)), ((0.0, 4.0), (-1.0, 1.0)));
        let ((x0, x1), (y0, y1)) = equal_aspect((0.0, 1.0), (-1.0, 1.0), 800.0, 400.0);
        assert_eq!(((x0, x1), (y0, y1)), ((-1.5, 2.5), (-1.0, 1.0)));
        let m = running_mean(&[(0.0, 1.0), (1.0, 3.0), (2.0, f64::NAN), (3.0, 5.0)], 3);
        assert_eq!(m.iter().map(|p| p.1).collect::<Vec<_>>(), vec![2.0, 2.0, 4.0, 5.0]);
    }
}
