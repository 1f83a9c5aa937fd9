//! The training loop of `hetconv train`: steps with a progress bar, an evaluation and a
//! checkpoint at each epoch's end (and every --checkpoint-every steps), metrics and a chart,
//! and a checkpoint on Ctrl-C; on several ranks, rank 0 alone prints and writes.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hetconv::Architecture;
use hetconv::dist::{BatchNormStats, ExchangeClock, Leeway};
use hetconv::train::{StepReport, Trainer};
use hetconv::{Error, Result};
use indicatif::{ProgressBar, ProgressStyle};

use super::saved::save;
use super::start::Start;
use super::{Ranks, TrainArgs};
use crate::cli::epoch_end::{self, EpochTally, TestSplit, finish_epoch};
use crate::cli::report::Metrics;
use crate::cli::run_folder;

/// Trains `start`'s model (the zoo's `arch`) as `args` says, on one of `ranks` (None: a
/// single-process run), to the end of the run or a Ctrl-C.
pub(super) fn train(
    args: &TrainArgs,
    start: Start,
    arch: &Architecture,
    ranks: Option<Ranks>,
) -> Result<()> {
    let rank0 = ranks.as_ref().is_none_or(|r| r.comm.rank() == 0);
    let Start {
        model,
        settings,
        progress,
        train,
        test,
        flags,
    } = start;
    let dataset_name = train.name.clone();
    let (out, checkpoint_every) = (flags.out.clone(), flags.checkpoint_every);
    let eval_batch = settings.batch_size.max(2);
    let trainer = Trainer::new(model, train, settings, progress)?;
    let (mut trainer, exchange, leeway) = distribute(trainer, ranks, args.sync_bn)?;
    let save_path = args
        .save
        .clone()
        .unwrap_or_else(|| out.join("checkpoint.safetensors"));
    // Rank 0 alone writes (every rank checking the same path raced on its probe file).
    if rank0 {
        prepare_output(args, &out, &save_path)?;
    }
    let resume_step = args.resume.as_ref().map(|_| trainer.progress().step);
    let mut metrics = if rank0 {
        Some(Metrics::open(
            &out,
            resume_step,
            trainer.steps_per_epoch(),
            trainer.total_steps(),
        )?)
    } else {
        None
    };
    let interrupted = ctrl_c_flag()?;
    let bar = progress_bar(&trainer, rank0);
    let test_split = TestSplit {
        data: &test,
        batch: eval_batch,
        limit: flags.eval_limit,
    };
    // Every rank knows where the resumed run stands; rank 0 alone has the rows.
    if let Some(step) = resume_step.and_then(|_| epoch_end::resumed_at_epoch_end(&trainer)) {
        if let Some(metrics) = metrics.as_mut() {
            epoch_end::recover_missing_row(&trainer, &test_split, step, &bar, metrics)?;
        }
        if let Some(leeway) = leeway.as_ref() {
            leeway.unlimited(|| trainer.any_rank(false))?;
        }
    }
    // A run resumed within an epoch starts the epoch's means from its rows before the resume.
    let epoch_began = trainer.epoch() as u64 * trainer.steps_per_epoch();
    let mut epoch = EpochSums::new(
        metrics
            .as_ref()
            .map_or((0.0, 0.0, 0), |m| m.sampled_after(epoch_began)),
    );
    let mut stepping = Duration::ZERO;
    while !trainer.is_done() {
        bar.set_prefix(format!("{}", trainer.epoch() + 1));
        let step_start = Instant::now();
        let report = pollster::block_on(trainer.step())?;
        stepping += step_start.elapsed();
        bar.inc(1);
        epoch.add(&report, &bar, metrics.as_mut())?;
        let periodic = checkpoint_every.is_some_and(|n| report.step % n.max(1) == 0);
        // Every rank stops at the same step when any was interrupted.
        let interrupt = trainer.any_rank(interrupted.load(Ordering::SeqCst))?;
        let save_on_rank0 = |trainer: &Trainer| {
            if rank0 {
                save(trainer, &dataset_name, &flags, &save_path)
            } else {
                Ok(())
            }
        };
        let epoch_over = report.epoch_done || trainer.is_done();
        if epoch_over && rank0 {
            // The epoch's time is its training's, without the save and the evaluation.
            let tally = epoch.tally();
            // Saved before the evaluation: an evaluation that fails loses no training.
            save_on_rank0(&trainer)?;
            finish_epoch(
                &trainer,
                &test_split,
                report.epoch + 1,
                report.step,
                tally,
                &bar,
                metrics.as_mut(),
            )?;
        }
        if epoch_over {
            epoch = EpochSums::new((0.0, 0.0, 0));
        } else if periodic {
            save_on_rank0(&trainer)?;
        }
        // Rank 0 alone evaluated or saved: the other ranks wait for it here, without the
        // exchanges' limit (a long evaluation is not a hung rank).
        let rank0_worked = epoch_over || periodic;
        if let Some(leeway) = leeway.as_ref().filter(|_| rank0_worked) {
            leeway.unlimited(|| trainer.any_rank(false))?;
        }
        if interrupt {
            save_on_rank0(&trainer)?;
            bar.abandon_with_message("interrupted");
            return Err(Error::Interrupted {
                step: trainer.progress().step,
                checkpoint: save_path.clone(),
            });
        }
    }
    bar.finish();
    let (_, ranks) = trainer.rank();
    if let Some(clock) = exchange.filter(|_| ranks > 1) {
        print_exchange(&clock, ranks, stepping);
    }
    match metrics {
        Some(metrics) => print_summary(&metrics, arch, &dataset_name, &save_path, &out),
        None => Ok(()),
    }
}

/// `trainer` made one of `ranks`' data-parallel trainers (BatchNorm statistics over all ranks'
/// images with `sync_bn`), with the clock of their exchanges and the leeway that lifts their
/// limit; as it is, without ranks.
fn distribute(
    trainer: Trainer,
    ranks: Option<Ranks>,
    sync_bn: bool,
) -> Result<(Trainer, Option<ExchangeClock>, Option<Leeway>)> {
    let Some(Ranks {
        comm,
        clock,
        leeway,
    }) = ranks
    else {
        return Ok((trainer, None, None));
    };
    let ranks = comm.size();
    let batch_norm = if sync_bn {
        BatchNormStats::Synchronised
    } else {
        BatchNormStats::PerRank
    };
    let trainer = pollster::block_on(trainer.distributed(Box::new(comm), batch_norm))?;
    say!(
        "ranks    {ranks} (MPI, data-parallel: {} images per rank per step; BatchNorm statistics {})",
        trainer.settings().batch_size / ranks,
        match batch_norm {
            BatchNormStats::Synchronised => "over all ranks' images (--sync-bn)",
            BatchNormStats::PerRank => "per rank",
        }
    );
    Ok((trainer, Some(clock), Some(leeway)))
}

/// Readies the run's folder `out` on rank 0: a new run first moves a previous one aside
/// (unless --overwrite), and the checkpoint path `save_path` must be writable.
fn prepare_output(args: &TrainArgs, out: &Path, save_path: &Path) -> Result<()> {
    if args.resume.is_none() {
        if let Some(moved) = run_folder::make_room(out, save_path, args.overwrite)? {
            say!(
                "moved the previous run in {} to {}",
                out.display(),
                moved.display()
            );
        }
    }
    crate::cli::check_writable(save_path)
}

/// How much of the steps' time `clock`'s exchanges over `ranks` ranks took.
fn print_exchange(clock: &ExchangeClock, ranks: usize, stepping: Duration) {
    let exchanged = clock.total().as_secs_f64();
    say!(
        "exchange {exchanged:.1} s of the steps' {:.1} s ({:.0}%) summing gradients over {ranks} ranks (MPI, waits included)",
        stepping.as_secs_f64(),
        100.0 * exchanged / stepping.as_secs_f64().max(1e-9)
    );
}

/// The sums of the epoch's sampled steps, and the images trained since `start`.
struct EpochSums {
    loss_sum: f64,
    accuracy_sum: f64,
    sampled: usize,
    images: usize,
    start: Instant,
}

impl EpochSums {
    /// An epoch starting now with sums of `(loss, accuracy, sampled steps)` (a resumed run's
    /// rows before the resume).
    fn new((loss_sum, accuracy_sum, sampled): (f64, f64, usize)) -> Self {
        Self {
            loss_sum,
            accuracy_sum,
            sampled,
            images: 0,
            start: Instant::now(),
        }
    }

    /// Adds a step's `report`: its images and, where the step was sampled, its loss and
    /// accuracy, which also go to the bar's message (with the epoch's images per second so far)
    /// and to `metrics`.
    fn add(
        &mut self,
        report: &StepReport,
        bar: &ProgressBar,
        metrics: Option<&mut Metrics>,
    ) -> Result<()> {
        self.images += report.images;
        let Some((loss, accuracy)) = report.metrics else {
            return Ok(());
        };
        let rate = self.images as f64 / self.start.elapsed().as_secs_f64().max(1e-9);
        let scale = report
            .scaler
            .map(|s| format!(" scale {} ({} skipped)", s.scale, s.skipped))
            .unwrap_or_default();
        bar.set_message(format!(
            "loss {loss:.3} acc {:.1}% {rate:.0} img/s lr {:.4}{scale}",
            100.0 * accuracy,
            report.lr
        ));
        if let Some(metrics) = metrics {
            metrics.step(report.step, report.epoch, report.lr, loss, accuracy)?;
        }
        self.loss_sum += loss;
        self.accuracy_sum += accuracy;
        self.sampled += 1;
        Ok(())
    }

    /// The epoch's training side, ending now.
    fn tally(&self) -> EpochTally {
        EpochTally {
            loss_sum: self.loss_sum,
            accuracy_sum: self.accuracy_sum,
            sampled: self.sampled,
            timing: Some((self.start.elapsed().as_secs_f64(), self.images)),
        }
    }
}

/// The run's last lines: the final test accuracy, and where the checkpoint, the chart of
/// `metrics` (titled with the model `arch` and the data set) and the metrics are.
fn print_summary(
    metrics: &Metrics,
    arch: &Architecture,
    dataset: &str,
    save_path: &Path,
    out: &Path,
) -> Result<()> {
    let chart = metrics.chart(&format!(
        "{} P={} on {}",
        arch.title(),
        arch.parts(),
        dataset
    ))?;
    if let Some(last) = metrics.epoch_rows.last() {
        say!(
            "final test accuracy {:.2}% (loss {:.4})",
            100.0 * last.test_accuracy,
            last.test_loss
        );
    }
    say!(
        "checkpoint {}\nchart      {}\nmetrics    {}",
        save_path.display(),
        chart.display(),
        out.display()
    );
    Ok(())
}

/// A flag that Ctrl-C raises (the loop saves and stops at the next step's end).
fn ctrl_c_flag() -> Result<Arc<AtomicBool>> {
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = interrupted.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .map_err(|e| Error::InvalidArgument(format!("cannot install the Ctrl-C handler: {e}")))?;
    Ok(interrupted)
}

/// The run's progress bar at the trainer's step (hidden on ranks other than 0).
fn progress_bar(trainer: &Trainer, rank0: bool) -> ProgressBar {
    let bar = if rank0 {
        ProgressBar::new(trainer.total_steps())
    } else {
        ProgressBar::hidden()
    };
    bar.set_position(trainer.progress().step);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} epoch {prefix} [{bar:30}] {pos}/{len} steps {msg} (ETA {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar
}
