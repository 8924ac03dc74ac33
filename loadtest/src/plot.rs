//! `--plot FILE.svg`: two charts in one SVG, throughput (calls and errors per second) above latency (p50 and p99
//! per second), both over seconds since the start of the load.

use std::path::Path;

use anyhow::anyhow;
use plotters::prelude::*;

use crate::report::Report;

/// Size of the SVG in pixels.
const SIZE: (u32, u32) = (1000, 720);

/// Writes the per-second series of `report` to `path`.
pub fn write_svg(report: &Report, path: &Path) -> anyhow::Result<()> {
    draw(report, path).map_err(|error| anyhow!("cannot draw {}: {error}", path.display()))
}

fn draw(report: &Report, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(SIZE.1 / 2);
    let seconds = report.series.len().max(1) as f64;
    let x = |second: usize| second as f64 + 0.5;

    let calls_max = report.series.iter().map(|point| point.calls).max().unwrap_or(0).max(1) as f64 * 1.1;
    let mut chart = ChartBuilder::on(&top)
        .caption(format!("{}: throughput", report.scenario), ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(35)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..seconds, 0f64..calls_max)?;
    chart.configure_mesh().x_desc("seconds since start").y_desc("calls/s").draw()?;
    let calls = report.series.iter().map(|point| (x(point.second), point.calls as f64));
    chart
        .draw_series(LineSeries::new(calls, BLUE.stroke_width(2)))?
        .label("calls/s")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    let errors = report.series.iter().map(|point| (x(point.second), point.errors as f64));
    chart
        .draw_series(LineSeries::new(errors, RED.stroke_width(2)))?
        .label("errors/s")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(2)));
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;

    let latency_max = report.series.iter().map(|point| point.p99_ms).fold(0.0, f64::max).max(0.001) * 1.1;
    let mut chart = ChartBuilder::on(&bottom)
        .caption(format!("{}: latency", report.scenario), ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(35)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..seconds, 0f64..latency_max)?;
    chart.configure_mesh().x_desc("seconds since start").y_desc("ms").draw()?;
    let with_calls = || report.series.iter().filter(|point| point.calls > 0);
    let p50 = with_calls().map(|point| (x(point.second), point.p50_ms));
    chart
        .draw_series(LineSeries::new(p50, GREEN.stroke_width(2)))?
        .label("p50")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], GREEN.stroke_width(2)));
    let p99 = with_calls().map(|point| (x(point.second), point.p99_ms));
    chart
        .draw_series(LineSeries::new(p99, MAGENTA.stroke_width(2)))?
        .label("p99")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], MAGENTA.stroke_width(2)));
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}
