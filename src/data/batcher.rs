//! Batches: a seeded order per epoch and seeded augmentation per step, so that any step of any
//! epoch can be rebuilt exactly (what `--resume` relies on).

use std::ops::Range;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::Dataset;
use super::augment::{Augment, Normalize, Region, place, resized_crop};
use crate::error::{Error, Result};

/// Images and labels ready for upload.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// `[len, channels, size, size]` in [0, 1] (or normalised).
    pub pixels: Vec<f32>,
    /// Class indices as f32.
    pub labels: Vec<f32>,
    /// Images in the batch.
    pub len: usize,
}

/// Makes batches of one data set for a model input of `size` x `size`.
#[derive(Clone, Debug)]
pub struct Batcher {
    /// Images per batch.
    pub batch_size: usize,
    /// Model input height = width.
    pub size: usize,
    /// Model input channels (grey images are repeated to 3 channels, colour ones averaged to 1).
    pub channels: usize,
    /// Training augmentation, if any.
    pub augment: Option<Augment>,
    /// Normalisation, if any, of the data set's channels (before they are brought to
    /// `channels`): one mean and one std per channel ([`Normalize::check`]; a batch refuses
    /// another count).
    pub normalize: Option<Normalize>,
    /// Shuffle every epoch.
    pub shuffle: bool,
    /// Seed of the order and the augmentation.
    pub seed: u64,
}

fn rng(seed: u64, stream: u64, index: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng.set_word_pos(u128::from(index) * 1024);
    rng
}

impl Batcher {
    /// The batcher of evaluation and prediction: `batch_size` images at a time, in order, at
    /// the model's `size` and `channels`, without augmentation.
    pub fn for_evaluation(batch_size: usize, size: usize, channels: usize) -> Self {
        Self {
            batch_size,
            size,
            channels,
            augment: None,
            normalize: None,
            shuffle: false,
            seed: 0,
        }
    }

    /// Full batches per epoch of a data set of `len` images (the incomplete last one is
    /// dropped in training: a batch of one has no batch statistics).
    pub fn steps_per_epoch(&self, len: usize) -> usize {
        len / self.batch_size.max(1)
    }

    /// The order of the images in `epoch`.
    pub fn epoch_order(&self, len: usize, epoch: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..len).collect();
        if self.shuffle {
            order.shuffle(&mut rng(self.seed, 1, epoch as u64));
        }
        order
    }

    /// Builds the batch of `indices`; `step` seeds its augmentation. A streamed set's images
    /// are decoded here (an unreadable file is an error naming it).
    pub fn batch(&self, data: &Dataset, indices: &[usize], step: u64) -> Result<Batch> {
        self.batch_part(data, indices, step, 0..indices.len())
    }

    /// The images `part` (slots of `indices`) of [`Batcher::batch`]'s batch, augmented exactly
    /// as there: the random draws of every image of the batch are made, in order, and only
    /// the part's images are read and placed (one rank's share of a data-parallel batch).
    pub fn batch_part(
        &self,
        data: &Dataset,
        indices: &[usize],
        step: u64,
        part: Range<usize>,
    ) -> Result<Batch> {
        if let Some(normalize) = &self.normalize {
            normalize
                .check(data.channels)
                .map_err(|e| Error::InvalidArgument(format!("batch of {}: {e}", data.name)))?;
        }
        let mut rng = rng(self.seed, 2, step);
        let draws: Vec<Draw> = indices
            .iter()
            .map(|_| match self.augment {
                Some(Augment {
                    resized_crop: Some(crop),
                    flip,
                    ..
                }) => {
                    let region = crop.draw(data.height, data.width, &mut rng);
                    Draw::Crop(region, flip && rng.random_bool(0.5))
                }
                augment => {
                    let (shift, flip) = augment.map_or(((0, 0), false), |a| a.draw(&mut rng));
                    Draw::Shift(shift, flip)
                }
            })
            .collect();
        let indices = &indices[part.clone()];
        let images = data.images_of(indices)?;
        let per_image = self.channels * self.size * self.size;
        let mut pixels = vec![0.0f32; indices.len() * per_image];
        let mut scratch = vec![0.0f32; data.channels * self.size * self.size];
        let (height, width, channels) = (data.height, data.width, data.channels);
        for (slot, (image, draw)) in images.iter().zip(&draws[part]).enumerate() {
            let normalize = self.normalize.as_ref();
            match *draw {
                Draw::Crop(region, flip) => {
                    let cropped = resized_crop(image, channels, (height, width), region);
                    place(
                        &cropped,
                        channels,
                        height,
                        width,
                        self.size,
                        (0, 0),
                        flip,
                        normalize,
                        &mut scratch,
                    );
                }
                Draw::Shift(shift, flip) => place(
                    image,
                    channels,
                    height,
                    width,
                    self.size,
                    shift,
                    flip,
                    normalize,
                    &mut scratch,
                ),
            }
            let out = &mut pixels[slot * per_image..(slot + 1) * per_image];
            adapt_channels(
                &scratch,
                channels,
                self.channels,
                self.size * self.size,
                out,
            );
        }
        Ok(Batch {
            pixels,
            labels: indices.iter().map(|&i| f32::from(data.labels[i])).collect(),
            len: indices.len(),
        })
    }
}

/// One image's augmentation: a random-resized crop's region, or a shift of the padded image;
/// and whether it is flipped.
#[derive(Clone, Copy, Debug)]
enum Draw {
    Crop(Region, bool),
    Shift((isize, isize), bool),
}

/// The batches of a training run, step by step: step `s` is batch `s mod steps_per_epoch` of
/// its epoch's order, augmented from `s`, so any step can be rebuilt on its own. In a
/// data-parallel run each rank takes its [`StepBatches::share`] of every batch.
#[derive(Clone, Debug)]
pub struct StepBatches {
    batcher: Batcher,
    len: usize,
    order: (usize, Vec<usize>),
    part: Range<usize>,
}

impl StepBatches {
    /// The steps of `batcher` over a data set of `len` images.
    pub fn new(batcher: Batcher, len: usize) -> Self {
        let order = (0, batcher.epoch_order(len, 0));
        let part = 0..batcher.batch_size;
        Self {
            batcher,
            len,
            order,
            part,
        }
    }

    /// Rank `rank` of `ranks`'s share of every batch: slots `rank * B / ranks` up to
    /// `(rank + 1) * B / ranks` (rounded down) of the batch of B.
    pub fn share(mut self, rank: usize, ranks: usize) -> Self {
        let b = self.batcher.batch_size;
        self.part = rank * b / ranks.max(1)..(rank + 1) * b / ranks.max(1);
        self
    }

    /// The slots of each batch this takes.
    pub fn part(&self) -> Range<usize> {
        self.part.clone()
    }

    /// The batcher.
    pub fn batcher(&self) -> &Batcher {
        &self.batcher
    }

    /// Full batches per epoch.
    pub fn steps_per_epoch(&self) -> u64 {
        self.batcher.steps_per_epoch(self.len) as u64
    }

    /// The batch (this share of it) of step `step` of `data` (the set this was made for).
    pub fn batch(&mut self, data: &Dataset, step: u64) -> Result<Batch> {
        let per_epoch = self.steps_per_epoch().max(1);
        let epoch = (step / per_epoch) as usize;
        if self.order.0 != epoch {
            self.order = (epoch, self.batcher.epoch_order(self.len, epoch));
        }
        let size = self.batcher.batch_size;
        let start = (step % per_epoch) as usize * size;
        let indices = &self.order.1[start..start + size];
        self.batcher
            .batch_part(data, indices, step, self.part.clone())
    }
}

/// Copies planes from `have` to `want` channels: equal counts copy, one channel is repeated,
/// several are averaged into one.
///
/// # Shapes
/// `src`: `[have, plane]` → `out`: `[want, plane]`
pub(crate) fn adapt_channels(src: &[f32], have: usize, want: usize, plane: usize, out: &mut [f32]) {
    if have == want {
        out.copy_from_slice(&src[..want * plane]);
    } else if have == 1 {
        for c in 0..want {
            out[c * plane..(c + 1) * plane].copy_from_slice(&src[..plane]);
        }
    } else {
        for k in 0..plane {
            let mean = (0..have).map(|c| src[c * plane + k]).sum::<f32>() / have as f32;
            for c in 0..want {
                out[c * plane + k] = mean;
            }
        }
    }
}
