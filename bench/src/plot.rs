//! The PNG: pods/s and p99 create→bound latency per workload, one bar per
//! scheduler, for each client setting.

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;

use crate::RunResult;

const COLORS: [RGBColor; 3] = [RGBColor(0x1f, 0x77, 0xb4), RGBColor(0xd6, 0x27, 0x28), RGBColor(0x7f, 0x7f, 0x7f)];

fn register_font() -> Result<()> {
    let candidates = ["/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/TTF/DejaVuSans.ttf"];
    let bytes = candidates
        .iter()
        .find_map(|p| std::fs::read(p).ok())
        .ok_or_else(|| anyhow!("no DejaVuSans.ttf (apt install fonts-dejavu-core)"))?;
    let leaked: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, leaked).map_err(|_| anyhow!("bad font"))?;
    Ok(())
}

pub fn draw(results: &[RunResult], path: &Path) -> Result<()> {
    register_font()?;
    let mut workloads: Vec<&str> = Vec::new();
    let mut schedulers: Vec<&str> = Vec::new();
    let mut limits: Vec<&str> = Vec::new();
    for r in results {
        for (v, list) in [(&r.workload, &mut workloads), (&r.scheduler, &mut schedulers), (&r.limits, &mut limits)] {
            if !list.contains(&v.as_str()) {
                list.push(v.as_str());
            }
        }
    }
    let root = BitMapBackend::new(path, (1400, 420 * limits.len() as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let rows = root.split_evenly((limits.len(), 2));
    for (li, l) in limits.iter().enumerate() {
        for (col, (title, metric)) in [("pods bound per second", 0), ("p99 create→bound latency (ms)", 1)].into_iter().enumerate() {
            let area = &rows[li * 2 + col];
            let value = |r: &RunResult| if metric == 0 { r.throughput } else { r.p99_ms };
            let max = results.iter().filter(|r| r.limits == *l).map(value).filter(|v| v.is_finite()).fold(1.0, f64::max) * 1.45;
            // The headroom above the tallest bar holds the legend.
            let n = workloads.len() as f64;
            let mut chart = ChartBuilder::on(area)
                .caption(format!("{title}, client limits: {l}"), ("sans-serif", 18))
                .margin(10)
                .x_label_area_size(40)
                .y_label_area_size(60)
                .build_cartesian_2d(0.0..n, 0.0..max)?;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(workloads.len() * 2 + 1)
                .x_label_formatter(&|x| {
                    let i = x.floor() as usize;
                    if (x - x.floor() - 0.5).abs() < 0.01 && i < workloads.len() {
                        workloads[i].to_string()
                    } else {
                        String::new()
                    }
                })
                .label_style(("sans-serif", 12))
                .draw()?;
            let width = 0.8 / schedulers.len() as f64;
            for (si, s) in schedulers.iter().enumerate() {
                let color = COLORS[si % COLORS.len()];
                let bars: Vec<Rectangle<(f64, f64)>> = workloads
                    .iter()
                    .enumerate()
                    .filter_map(|(wi, w)| {
                        let r = results.iter().find(|r| r.workload == *w && r.scheduler == *s && r.limits == *l)?;
                        let x0 = wi as f64 + 0.1 + si as f64 * width;
                        let v = value(r);
                        v.is_finite().then(|| Rectangle::new([(x0, 0.0), (x0 + width * 0.9, v)], color.filled()))
                    })
                    .collect();
                chart.draw_series(bars)?.label(*s).legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .label_font(("sans-serif", 12))
                .draw()?;
        }
    }
    root.present()?;
    Ok(())
}
