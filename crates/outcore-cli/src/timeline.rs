//! The memory timeline: sampled memory categories written as CSV or JSON lines, and drawn as a
//! stacked area chart with the four threshold lines (what Dask's dashboard shows while a
//! computation runs).

use std::io::Write;
use std::path::Path;

use outcore::storage::{MemorySample, StorageError};
use outcore::{Error, Knob, Result};

use crate::report::json::MemorySampleJson;
use plotters::prelude::*;

const MIB: f64 = (1u64 << 20) as f64;

fn io_error(path: &Path, e: impl std::fmt::Display) -> Error {
    StorageError::io(path, std::io::Error::other(e.to_string())).into()
}

/// Writes `samples` to `path`: JSON lines with `jsonl`, else CSV.
pub(crate) fn write_timeline(path: &Path, jsonl: bool, samples: &[MemorySample]) -> Result<()> {
    let mut out = Vec::new();
    if jsonl {
        for s in samples {
            serde_json::to_writer(&mut out, &MemorySampleJson::from(s)).map_err(|e| io_error(path, e))?;
            out.push(b'\n');
        }
    } else {
        let _ = writeln!(out, "seconds,process,host,managed,unmanaged,unmanaged_old,unmanaged_recent,spilled,limit");
        for s in samples {
            let r = &s.report;
            let _ = writeln!(
                out,
                "{:.4},{},{},{},{},{},{},{},{}",
                s.seconds,
                r.process,
                r.host,
                r.managed,
                r.unmanaged,
                r.unmanaged_old,
                r.unmanaged_recent,
                r.spilled,
                r.limit
            );
        }
    }
    std::fs::write(path, out).map_err(|e| StorageError::io(path, e).into())
}

/// Draws `samples` as an SVG stacked area chart at `path`: managed, unmanaged old, unmanaged
/// recent and (under own accounting) the host's part stacked (their top is the process RSS),
/// spilled bytes as a dashed line, and the memory limit and its target/spill/pause/terminate
/// thresholds as horizontal lines.
pub(crate) fn plot_timeline(path: &Path, samples: &[MemorySample], title: &str) -> Result<()> {
    if !path.extension().is_some_and(|e| e.eq_ignore_ascii_case("svg")) {
        return Err(Error::invalid(Knob::Program("--memory-plot"), format!("{} must end in .svg", path.display())));
    }
    let Some(last) = samples.last() else {
        return Err(Error::invalid(Knob::Program("--memory-plot"), "no memory samples were taken"));
    };
    let limit = last.report.limit as f64 / MIB;
    let t_max = last.seconds.max(1e-3);
    let peak = samples.iter().map(|s| s.report.process.max(s.report.spilled)).max().unwrap_or(0) as f64 / MIB;
    let y_max = peak.max(limit) * 1.08;
    let draw = || -> std::result::Result<(), Box<dyn std::error::Error>> {
        let root = SVGBackend::new(path, (1000, 560)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..t_max, 0f64..y_max)?;
        chart.configure_mesh().x_desc("seconds").y_desc("MiB").draw()?;
        let layer = |f: fn(&MemorySample) -> u64| -> Vec<(f64, f64)> {
            samples.iter().map(|s| (s.seconds, f(s) as f64 / MIB)).collect()
        };
        let layers = [
            ("host (not counted)", RGBColor(225, 225, 235), layer(|s| s.report.process)),
            ("unmanaged recent", RGBColor(250, 190, 90), layer(|s| s.report.process - s.report.host)),
            ("unmanaged old", RGBColor(190, 190, 190), layer(|s| s.report.managed + s.report.unmanaged_old)),
            ("managed", RGBColor(80, 130, 200), layer(|s| s.report.managed)),
        ];
        let layers = layers
            .into_iter()
            .filter(|(name, ..)| !name.starts_with("host") || samples.iter().any(|s| s.report.host > 0));
        for (name, color, points) in layers {
            chart
                .draw_series(AreaSeries::new(points, 0.0, color.mix(0.85)).border_style(color))?
                .label(name)
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
        }
        let spilled = RGBColor(200, 60, 60);
        chart
            .draw_series(DashedLineSeries::new(layer(|s| s.report.spilled), 6, 4, spilled.stroke_width(2)))?
            .label("spilled (on disk)")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 12, y)], spilled.stroke_width(2)));
        let t = last.report.thresholds;
        for (name, fraction, color) in [
            ("limit", Some(1.0), BLACK),
            ("terminate", t.terminate, RGBColor(150, 0, 0)),
            ("pause", t.pause, RGBColor(200, 100, 0)),
            ("spill", t.spill, RGBColor(120, 0, 160)),
            ("target", t.target, RGBColor(0, 120, 60)),
        ] {
            let Some(f) = fraction else { continue };
            let y = f * limit;
            chart
                .draw_series(LineSeries::new([(0.0, y), (t_max, y)], color.stroke_width(1)))?
                .label(format!("{name} ({:.0}%, {y:.1} MiB)", f * 100.0))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 12, y)], color));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .border_style(BLACK)
            .background_style(WHITE.mix(0.85))
            .draw()?;
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| io_error(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use outcore::storage::{BufferConfig, BufferManager, MemoryMonitor};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    /// Samples of a pool of its own (own accounting: the test process's memory is the host's).
    fn samples() -> Vec<MemorySample> {
        let manager = BufferManager::new(BufferConfig::new(32 << 20)).unwrap();
        let samples = Arc::new(Mutex::new(Vec::new()));
        let sink = samples.clone();
        let monitor =
            MemoryMonitor::start(manager.clone(), Duration::from_millis(1), move |s| sink.lock().unwrap().push(s))
                .unwrap();
        let mut r = manager.reserve(4 << 20).unwrap();
        let _id = manager.insert(&mut r, vec![2.0; 512 << 10], 512, 1024).unwrap();
        std::thread::sleep(Duration::from_millis(10));
        monitor.stop();
        std::mem::take(&mut *samples.lock().unwrap())
    }

    #[test]
    fn writes_csv_and_json_lines_with_every_category() {
        let dir = tempfile::tempdir().unwrap();
        let samples = samples();
        let csv = dir.path().join("t.csv");
        write_timeline(&csv, false, &samples).unwrap();
        let text = std::fs::read_to_string(&csv).unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some("seconds,process,host,managed,unmanaged,unmanaged_old,unmanaged_recent,spilled,limit")
        );
        for line in lines {
            let v: Vec<u64> = line.split(',').skip(1).map(|x| x.parse().unwrap()).collect();
            assert_eq!(v[0], v[1] + v[2] + v[4] + v[5], "process = host + managed + unmanaged old + recent: {line}");
        }
        let jsonl = dir.path().join("t.jsonl");
        write_timeline(&jsonl, true, &samples).unwrap();
        let first: serde_json::Value =
            serde_json::from_str(std::fs::read_to_string(&jsonl).unwrap().lines().next().unwrap()).unwrap();
        assert!(first["report"]["unmanaged_recent"].is_u64() && first["seconds"].is_f64());
    }

    #[test]
    fn plots_stacked_categories_and_threshold_lines_as_svg() {
        let dir = tempfile::tempdir().unwrap();
        let svg = dir.path().join("m.svg");
        plot_timeline(&svg, &samples(), "test run").unwrap();
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(text.starts_with("<svg") && text.trim_end().ends_with("</svg>"));
        for label in [
            "host (not counted)",
            "managed",
            "unmanaged old",
            "unmanaged recent",
            "spilled (on disk)",
            "target (60%",
            "spill (70%",
            "pause (80%",
            "terminate (95%",
            "test run",
        ] {
            assert!(text.contains(label), "the chart lacks {label:?}");
        }
        assert!(plot_timeline(&dir.path().join("m.png"), &samples(), "x").is_err());
    }
}
