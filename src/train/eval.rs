//! Evaluation: loss, accuracy and the confusion matrix of a model on a data set (eval mode).

use crate::data::{Batcher, Dataset};
use crate::error::{Error, Result};
use crate::kernels::loss::softmax_cross_entropy;
use crate::model::Model;
use crate::tensor::Tensor;

/// The result of [`evaluate`].
#[derive(Clone, Debug, PartialEq)]
pub struct EvalReport {
    /// Mean cross-entropy.
    pub loss: f64,
    /// Fraction classified correctly.
    pub accuracy: f64,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<u32>>,
    /// Images evaluated.
    pub images: usize,
}

/// Checks that `data` can train or be evaluated by `model`: valid (see [`Dataset::validate`])
/// and with no more classes than the model has outputs. Channels need not match: the batcher
/// repeats a grey plane or averages colour ones to the model's channels.
pub fn check_data_fits<M: Model + ?Sized>(model: &M, data: &Dataset) -> Result<()> {
    data.validate()?;
    if data.classes() > model.classes() {
        return Err(Error::InvalidArgument(format!(
            "{} has {} classes, the model only {} classes",
            data.name,
            data.classes(),
            model.classes()
        )));
    }
    Ok(())
}

/// Runs `model` over every image of `data` (in order, no augmentation) in batches of
/// `batch_size`; `limit` evaluates only the first images. What [`Trainer::new`] accepts is
/// accepted here too ([`check_data_fits`]: so an evaluation at an epoch's end never refuses the
/// data the epoch trained on); an empty evaluation is an error.
///
/// [`Trainer::new`]: super::Trainer::new
pub async fn evaluate<M: Model + ?Sized>(
    model: &M,
    data: &Dataset,
    batch_size: usize,
    limit: Option<usize>,
) -> Result<EvalReport> {
    let (input, classes) = (model.input(), model.classes());
    check_data_fits(model, data)?;
    if data.is_empty() || limit == Some(0) || batch_size == 0 {
        return Err(Error::InvalidArgument(format!(
            "nothing to evaluate: {} images in {}, limit {limit:?}, batch size {batch_size}",
            data.len(),
            data.name
        )));
    }
    let ctx = model.context().clone();
    let batcher = Batcher::for_evaluation(batch_size, input.size, input.channels);
    let n = limit.map_or(data.len(), |l| l.min(data.len()));
    let mut confusion = vec![vec![0u32; classes]; classes];
    let (mut loss_sum, mut correct) = (0.0f64, 0usize);
    for start in (0..n).step_by(batch_size.max(1)) {
        let indices: Vec<usize> = (start..(start + batch_size).min(n)).collect();
        let batch = batcher.batch(data, &indices, 0)?;
        let x = Tensor::from_slice(
            &ctx,
            &[batch.len, input.channels, input.size, input.size],
            &batch.pixels,
        )?;
        let labels = Tensor::from_slice(&ctx, &[batch.len], &batch.labels)?;
        let logits = model.predict(&x)?;
        let ce = softmax_cross_entropy(&logits, &labels)?;
        let rows = ce.rows.read().await?;
        let logits = logits.read().await?;
        for (b, row) in rows.chunks_exact(2).enumerate() {
            loss_sum += f64::from(row[0]);
            let scores = &logits[b * classes..(b + 1) * classes];
            let predicted =
                (1..classes).fold(0, |best, j| if scores[j] > scores[best] { j } else { best });
            let truth = batch.labels[b] as usize;
            confusion[truth][predicted] += 1;
            correct += usize::from(predicted == truth);
        }
    }
    Ok(EvalReport {
        loss: loss_sum / n.max(1) as f64,
        accuracy: correct as f64 / n.max(1) as f64,
        confusion,
        images: n,
    })
}
