//! `hetconv predict`: logits, probabilities and the predicted class of images, as CSV or JSON.

use std::path::PathBuf;

use clap::Args;
use hetconv::Model;
use hetconv::checkpoint;
use hetconv::data::{Batcher, Dataset, image_file};
use hetconv::kernels::loss;
use hetconv::model::InputShape;
use hetconv::nn::ConvMode;
use hetconv::train::check_data_fits;
use hetconv::{Context, Error, Result, Tensor};

use super::data_args::DataArgs;
use super::eval::Split;

/// Options of `hetconv predict`.
#[derive(Args, Debug)]
pub struct PredictArgs {
    /// The checkpoint.
    #[arg(long)]
    pub weights: PathBuf,
    /// Image files (PNG, JPEG); resized and centre-cropped to the model's input. The options
    /// of a data set (`--data` and the flags that shape it, `--split`, `--limit`) do not apply
    /// to them and are refused with them.
    #[arg(conflicts_with_all = ["data", "dataset", "image_size", "skip_bad_images", "stream_images", "split", "limit"])]
    pub images: Vec<PathBuf>,
    #[command(flatten)]
    pub data: DataArgs,
    /// Split of --data to classify.
    #[arg(long, value_enum, default_value_t = Split::Test)]
    pub split: Split,
    /// Only the first N images of the split.
    #[arg(long, value_parser = super::args::at_least_one)]
    pub limit: Option<usize>,
    /// Write here: `.json` for JSON, anything else CSV (default: CSV on standard output).
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Normalise the model's input for a checkpoint that records no normalisation (a PyTorch
    /// file): `imagenet` or MEANS/STDS (one per channel); one that differs from the
    /// checkpoint's is refused.
    #[arg(long, value_parser = super::args::normalize)]
    pub normalize: Option<hetconv::data::Normalize>,
}

/// One classified image.
#[derive(serde::Serialize)]
struct Prediction {
    image: String,
    predicted: usize,
    class: String,
    label: Option<usize>,
    logits: Vec<f32>,
    probabilities: Vec<f32>,
}

/// Images classified per GPU batch (and read per batch).
const CHUNK: usize = 100;

/// Where the images come from.
enum Source<'a> {
    /// A split of a data set.
    Data(Dataset),
    /// Image files.
    Files(&'a [PathBuf]),
}

/// One image to classify: its name, its pixels at the model's input, its label if known.
type Item = (String, Vec<f32>, Option<usize>);

impl Source<'_> {
    /// The images `range`, read and brought to the model's `input`.
    fn read(&self, range: std::ops::Range<usize>, input: InputShape) -> Result<Vec<Item>> {
        match self {
            Source::Data(data) => {
                let batcher = Batcher::for_evaluation(range.len(), input.size, input.channels);
                let batch = batcher.batch(data, &range.clone().collect::<Vec<_>>(), 0)?;
                let per_image = input.channels * input.size * input.size;
                Ok(range
                    .zip(batch.pixels.chunks_exact(per_image).zip(&batch.labels))
                    .map(|(i, (pixels, &label))| {
                        (
                            format!("{}#{i}", data.name),
                            pixels.to_vec(),
                            Some(label as usize),
                        )
                    })
                    .collect())
            }
            Source::Files(paths) => paths[range]
                .iter()
                .map(|path| {
                    let pixels = image_file::load(path, input.channels, input.size)?;
                    Ok((path.display().to_string(), pixels, None))
                })
                .collect(),
        }
    }
}

/// Runs the command.
pub fn run(ctx: &Context, args: PredictArgs) -> Result<()> {
    if let Some(output) = &args.output {
        let mut inputs = vec![("checkpoint (--weights)", args.weights.as_path())];
        inputs.extend(args.images.iter().map(|i| ("image", i.as_path())));
        super::check_not_an_input("--output", output, &inputs)?;
        super::check_writable(output)?;
    }
    let mut ckpt = checkpoint::load(&args.weights)?;
    super::normalize_checkpoint(&mut ckpt, args.normalize.as_ref(), &args.weights)?;
    let model = ckpt
        .build_model(ctx, ConvMode::Fused)
        .map_err(|e| e.in_file(&args.weights))?;
    let (input, classes) = (model.input(), model.classes());
    let (source, class_names, count) = if args.images.is_empty() {
        let splits = args.data.load(Some(input.size))?;
        let data = match args.split {
            Split::Test => splits.test,
            Split::Train => splits.train,
        };
        // The same checks as eval's: names that label the model's outputs, classes it has.
        super::check_class_names(&ckpt, &data, &args.weights)?;
        check_data_fits(&model, &data)?;
        let n = args.limit.map_or(data.len(), |l| l.min(data.len()));
        let names = data.class_names.clone();
        (Source::Data(data), names, n)
    } else {
        // A model may have more outputs than its data had classes (an --init run): those
        // outputs are named by number.
        let names = ckpt.class_names().unwrap_or_default();
        (Source::Files(&args.images), names, args.images.len())
    };
    if count == 0 {
        return Err(Error::InvalidArgument("no images to classify".into()));
    }
    let mut predictions = Vec::new();
    // A chunk at a time, read when it is classified: a large folder never sits in memory whole.
    for start in (0..count).step_by(CHUNK) {
        let chunk = source.read(start..(start + CHUNK).min(count), input)?;
        let pixels: Vec<f32> = chunk
            .iter()
            .flat_map(|(_, p, _)| p.iter().copied())
            .collect();
        let x = Tensor::from_slice(
            ctx,
            &[chunk.len(), input.channels, input.size, input.size],
            &pixels,
        )?;
        let logits = model.predict(&x)?;
        let probabilities = loss::softmax(&logits)?.to_vec()?;
        let logits = logits.to_vec()?;
        for (i, (name, _, label)) in chunk.iter().enumerate() {
            let row = logits[i * classes..(i + 1) * classes].to_vec();
            let probabilities = probabilities[i * classes..(i + 1) * classes].to_vec();
            let predicted =
                (1..row.len()).fold(0, |best, j| if row[j] > row[best] { j } else { best });
            predictions.push(Prediction {
                image: name.clone(),
                predicted,
                class: class_names
                    .get(predicted)
                    .cloned()
                    .unwrap_or_else(|| predicted.to_string()),
                label: *label,
                probabilities,
                logits: row,
            });
        }
    }
    let json = args
        .output
        .as_ref()
        .and_then(|p| p.extension())
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let text = match json {
        true => serde_json::to_string_pretty(&predictions)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?,
        false => csv_text(&predictions, classes)?,
    };
    match &args.output {
        Some(path) => checkpoint::write_atomic(path, text.as_bytes())?,
        None => print!("{text}"),
    }
    Ok(())
}

fn csv_text(predictions: &[Prediction], classes: usize) -> Result<String> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let mut header = vec![
        "image".to_string(),
        "predicted".into(),
        "class".into(),
        "label".into(),
    ];
    header.extend((0..classes).map(|c| format!("logit_{c}")));
    header.extend((0..classes).map(|c| format!("prob_{c}")));
    let err = |e: csv::Error| Error::InvalidArgument(format!("csv: {e}"));
    writer.write_record(&header).map_err(err)?;
    for p in predictions {
        let mut record = vec![
            p.image.clone(),
            p.predicted.to_string(),
            p.class.clone(),
            p.label.map_or(String::new(), |l| l.to_string()),
        ];
        record.extend(p.logits.iter().map(|v| v.to_string()));
        record.extend(p.probabilities.iter().map(|v| v.to_string()));
        writer.write_record(&record).map_err(err)?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|e| Error::InvalidArgument(format!("csv: {e}")))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
