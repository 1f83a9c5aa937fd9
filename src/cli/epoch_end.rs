//! The end of a training epoch: the test split's evaluation, the epoch's printed line and its
//! `epochs.jsonl` row; and, on a resume, the row of an epoch whose evaluation the stopped run
//! did not finish.

use hetconv::Result;
use hetconv::data::Dataset;
use hetconv::train::{Trainer, evaluate};
use indicatif::ProgressBar;

use super::report::{EpochRow, Metrics};

/// What the epoch's evaluation reads: the test split, the batch size and the image limit.
pub struct TestSplit<'a> {
    pub data: &'a Dataset,
    pub batch: usize,
    pub limit: Option<usize>,
}

/// The training side of an epoch: the sums over its sampled steps and, when this process
/// trained (a resumed run: the part of the epoch after the resume), that wall time in seconds
/// and the images trained in it.
pub struct EpochTally {
    pub loss_sum: f64,
    pub accuracy_sum: f64,
    pub sampled: usize,
    pub timing: Option<(f64, usize)>,
}

/// Evaluates the trainer's model on the test split after step `step` (the last of epoch
/// `epoch`, counted from 1), prints the epoch's line above the progress bar and appends its row
/// to `metrics` (rank 0 alone has them).
pub fn finish_epoch(
    trainer: &Trainer,
    test: &TestSplit,
    epoch: usize,
    step: u64,
    tally: EpochTally,
    bar: &ProgressBar,
    metrics: Option<&mut Metrics>,
) -> Result<()> {
    let eval = pollster::block_on(evaluate(trainer.model(), test.data, test.batch, test.limit))?;
    let row = EpochRow {
        epoch,
        step,
        train_loss: tally.loss_sum / tally.sampled.max(1) as f64,
        train_accuracy: tally.accuracy_sum / tally.sampled.max(1) as f64,
        test_loss: eval.loss,
        test_accuracy: eval.accuracy,
        seconds: tally.timing.map(|(seconds, _)| seconds),
        images_per_second: tally
            .timing
            .map(|(seconds, images)| images as f64 / seconds.max(1e-9)),
    };
    let timing = match (row.seconds, row.images_per_second) {
        (Some(seconds), Some(rate)) => format!("{seconds:.1}s, {rate:.0} img/s"),
        _ => format!("evaluated on resume (the run's metrics had no row for step {step})"),
    };
    let line = format!(
        "epoch {:>3}: train loss {:.4} acc {:.2}% | test loss {:.4} acc {:.2}% ({} images) | {timing}",
        row.epoch,
        row.train_loss,
        100.0 * row.train_accuracy,
        row.test_loss,
        100.0 * row.test_accuracy,
        eval.images,
    );
    bar.suspend(|| say!("{line}"));
    if let Some(metrics) = metrics {
        metrics.epoch(row)?;
    }
    Ok(())
}

/// The step at which a resumed run ends an epoch without having started any step of the next:
/// the checkpoint's step when it is an epoch's last (or the run's last), else None. A run stopped
/// there saved its checkpoint before the epoch's evaluation, so the row may be missing.
pub fn resumed_at_epoch_end(trainer: &Trainer) -> Option<u64> {
    let step = trainer.progress().step;
    let at_end = step % trainer.steps_per_epoch().max(1) == 0 || trainer.is_done();
    (step > 0 && at_end).then_some(step)
}

/// On a resume at `step` (see [`resumed_at_epoch_end`]): evaluates and records the epoch that
/// ended there when `metrics` recorded the epoch's steps but hold no row for it (a run killed
/// during that evaluation; a run that now ends at an earlier checkpoint). A run resumed into
/// another folder, which holds none of the epoch's steps, is left as it was. Training figures
/// come from the epoch's sampled steps in `steps.csv`; its time is unknown and left out.
pub fn recover_missing_row(
    trainer: &Trainer,
    test: &TestSplit,
    step: u64,
    bar: &ProgressBar,
    metrics: &mut Metrics,
) -> Result<()> {
    if metrics.epoch_rows.iter().any(|row| row.step == step) {
        return Ok(());
    }
    let per_epoch = trainer.steps_per_epoch().max(1);
    let epoch_began = (step - 1) / per_epoch * per_epoch;
    let (loss_sum, accuracy_sum, sampled) = metrics.sampled_after(epoch_began);
    if sampled == 0 {
        return Ok(());
    }
    let tally = EpochTally {
        loss_sum,
        accuracy_sum,
        sampled,
        timing: None,
    };
    let epoch = (epoch_began / per_epoch) as usize + 1;
    finish_epoch(trainer, test, epoch, step, tally, bar, Some(metrics))
}
