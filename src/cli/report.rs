//! What the train command writes into `--out`: per-step CSV, per-epoch JSON lines and a PNG
//! chart of the loss and accuracy curves.

use std::io::Write;
use std::path::{Path, PathBuf};

use hetconv::{Error, Result};
use plotters::prelude::*;

/// One epoch's summary.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct EpochRow {
    pub epoch: usize,
    pub step: u64,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub test_loss: f64,
    pub test_accuracy: f64,
    /// The epoch's training time; None (null) for an epoch whose evaluation a resumed run
    /// made up for, its time lost with the stopped run.
    #[serde(default)]
    pub seconds: Option<f64>,
    #[serde(default)]
    pub images_per_second: Option<f64>,
}

/// Appends metrics to files in the output folder.
pub struct Metrics {
    dir: PathBuf,
    steps: std::fs::File,
    epochs: std::fs::File,
    /// (step, loss, accuracy) of every sampled step.
    pub step_points: Vec<(u64, f64, f64)>,
    /// Every epoch so far.
    pub epoch_rows: Vec<EpochRow>,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::Io {
        path: path.to_path_buf(),
        source: e,
    }
}

impl Metrics {
    /// The sums of the sampled steps after `step` (loss, accuracy, how many): what a run
    /// resumed in the middle of an epoch starts that epoch's means from.
    pub fn sampled_after(&self, step: u64) -> (f64, f64, usize) {
        self.step_points
            .iter()
            .filter(|(s, _, _)| *s > step)
            .fold((0.0, 0.0, 0), |(loss, acc, n), (_, l, a)| {
                (loss + l, acc + a, n + 1)
            })
    }

    /// Opens `dir/steps.csv` and `dir/epochs.jsonl`: new ones, or when resuming at step
    /// `resume` the run's own, cut back to that step (a run killed after its last checkpoint
    /// wrote rows the resumed run writes again; a run stopped within an epoch by --max-steps
    /// wrote a row for the part of the epoch it ran, which the resumed run writes whole, unless
    /// the run ends there: `resume` = `total_steps`) and read back, so that the chart and the
    /// epoch rows cover the whole run once. An epoch has `steps_per_epoch` steps. A row that
    /// does not parse is an error naming file and line.
    pub fn open(
        dir: &Path,
        resume: Option<u64>,
        steps_per_epoch: u64,
        total_steps: u64,
    ) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let (mut step_points, mut epoch_rows) = (Vec::new(), Vec::new());
        if let Some(step) = resume {
            let steps_path = dir.join("steps.csv");
            if steps_path.exists() {
                let text = std::fs::read_to_string(&steps_path).map_err(io(&steps_path))?;
                let mut kept = String::from("step,epoch,lr,loss,accuracy\n");
                for (i, (offset, line)) in lines_at(&text).enumerate().skip(1) {
                    let bad = || Error::Format {
                        path: steps_path.clone(),
                        offset,
                        message: format!(
                            "line {}: {line:?} is not step,epoch,lr,loss,accuracy",
                            i + 1
                        ),
                    };
                    let f: Vec<&str> = line.split(',').collect();
                    let [s, _, _, loss, acc] = f[..] else {
                        return Err(bad());
                    };
                    let s: u64 = s.parse().map_err(|_| bad())?;
                    if s <= step {
                        let loss = loss.parse().map_err(|_| bad())?;
                        let acc = acc.parse().map_err(|_| bad())?;
                        step_points.push((s, loss, acc));
                        kept.push_str(line);
                        kept.push('\n');
                    }
                }
                hetconv::checkpoint::write_atomic(&steps_path, kept.as_bytes())?;
            }
            let epochs_path = dir.join("epochs.jsonl");
            if epochs_path.exists() {
                let text = std::fs::read_to_string(&epochs_path).map_err(io(&epochs_path))?;
                let mut kept = String::new();
                for (i, (offset, line)) in lines_at(&text).enumerate() {
                    if line.is_empty() {
                        continue;
                    }
                    let row: EpochRow = serde_json::from_str(line).map_err(|e| Error::Format {
                        path: epochs_path.clone(),
                        offset,
                        message: format!("line {}: {e}", i + 1),
                    })?;
                    let whole_epochs = step / steps_per_epoch.max(1);
                    let ends_here = row.step == step && step >= total_steps;
                    if row.step <= step && (row.epoch as u64 <= whole_epochs || ends_here) {
                        kept.push_str(line);
                        kept.push('\n');
                        epoch_rows.push(row);
                    }
                }
                hetconv::checkpoint::write_atomic(&epochs_path, kept.as_bytes())?;
            }
        }
        let append = resume.is_some();
        let open = |name: &str, header: Option<&str>| -> Result<std::fs::File> {
            let path = dir.join(name);
            let fresh = !append || !path.exists();
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(append)
                .write(true)
                .truncate(!append)
                .open(&path)
                .map_err(io(&path))?;
            if let (true, Some(h)) = (fresh, header) {
                writeln!(file, "{h}").map_err(io(&path))?;
            }
            Ok(file)
        };
        Ok(Self {
            steps: open("steps.csv", Some("step,epoch,lr,loss,accuracy"))?,
            epochs: open("epochs.jsonl", None)?,
            dir: dir.to_path_buf(),
            step_points,
            epoch_rows,
        })
    }

    /// Records a sampled step.
    pub fn step(
        &mut self,
        step: u64,
        epoch: usize,
        lr: f64,
        loss: f64,
        accuracy: f64,
    ) -> Result<()> {
        let path = self.dir.join("steps.csv");
        writeln!(self.steps, "{step},{epoch},{lr},{loss},{accuracy}").map_err(io(&path))?;
        self.step_points.push((step, loss, accuracy));
        Ok(())
    }

    /// Records an epoch.
    pub fn epoch(&mut self, row: EpochRow) -> Result<()> {
        let path = self.dir.join("epochs.jsonl");
        let line =
            serde_json::to_string(&row).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        writeln!(self.epochs, "{line}").map_err(io(&path))?;
        self.epoch_rows.push(row);
        Ok(())
    }

    /// Draws `dir/curves.png`: training loss (sampled steps) and test loss per epoch on the
    /// left, training and test accuracy on the right.
    pub fn chart(&self, title: &str) -> Result<PathBuf> {
        let path = self.dir.join("curves.png");
        draw(&path, title, &self.step_points, &self.epoch_rows).map_err(|e| {
            Error::InvalidArgument(format!("{}: cannot draw the chart: {e}", path.display()))
        })?;
        Ok(path)
    }
}

/// The lines of `text` (without their line ends) with the byte offset each starts at.
fn lines_at(text: &str) -> impl Iterator<Item = (u64, &str)> {
    text.split_inclusive('\n').scan(0u64, |offset, line| {
        let at = *offset;
        *offset += line.len() as u64;
        Some((at, line.trim_end_matches(['\n', '\r'])))
    })
}

/// Registers the embedded DejaVu Sans Mono font under plotters' default family names.
fn register_font() {
    static FONT: &[u8] = include_bytes!("../../assets/DejaVuSansMono.ttf");
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for family in ["sans-serif", "serif", "monospace"] {
            let _ = plotters::style::register_font(family, FontStyle::Normal, FONT);
        }
    });
}

fn draw(
    path: &Path,
    title: &str,
    steps: &[(u64, f64, f64)],
    epochs: &[EpochRow],
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    register_font();
    let root = BitMapBackend::new(path, (1200, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 22))?;
    let (left, right) = root.split_horizontally(600);
    let last_step = steps
        .iter()
        .map(|p| p.0)
        .chain(epochs.iter().map(|e| e.step))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let max_loss = steps
        .iter()
        .map(|p| p.1)
        .chain(epochs.iter().map(|e| e.test_loss))
        .fold(0.1f64, f64::max)
        * 1.05;

    let mut chart = ChartBuilder::on(&left)
        .caption("loss", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(52)
        .build_cartesian_2d(0f64..last_step, 0f64..max_loss)?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("cross-entropy")
        .draw()?;
    chart
        .draw_series(LineSeries::new(
            steps.iter().map(|p| (p.0 as f64, p.1)),
            &BLUE,
        ))?
        .label("train (sampled steps)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLUE));
    chart
        .draw_series(LineSeries::new(
            epochs.iter().map(|e| (e.step as f64, e.test_loss)),
            RED.stroke_width(2),
        ))?
        .label("test (per epoch)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], RED));
    chart.draw_series(
        epochs
            .iter()
            .map(|e| Circle::new((e.step as f64, e.test_loss), 4, RED.filled())),
    )?;
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;

    let mut chart = ChartBuilder::on(&right)
        .caption("accuracy", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(52)
        .build_cartesian_2d(0f64..last_step, 0f64..100f64)?;
    chart.configure_mesh().x_desc("step").y_desc("%").draw()?;
    chart
        .draw_series(LineSeries::new(
            steps.iter().map(|p| (p.0 as f64, 100.0 * p.2)),
            &BLUE,
        ))?
        .label("train batch")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLUE));
    chart
        .draw_series(LineSeries::new(
            epochs
                .iter()
                .map(|e| (e.step as f64, 100.0 * e.test_accuracy)),
            RED.stroke_width(2),
        ))?
        .label("test")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], RED));
    chart.draw_series(
        epochs
            .iter()
            .map(|e| Circle::new((e.step as f64, 100.0 * e.test_accuracy), 4, RED.filled())),
    )?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
