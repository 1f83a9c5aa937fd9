//! Checkpoints in safetensors with PyTorch state_dict names, for any [`Model`].
//!
//! A checkpoint holds the model's parameters and buffers by name (each BatchNorm's
//! `num_batches_tracked` as I64 next to its running estimates, so
//! `torch.nn.Module.load_state_dict` accepts the file), optionally the optimizer's momentum
//! buffers (`optimizer.momentum.<name>`), and metadata: the zoo [`Architecture`] as JSON (so the
//! file rebuilds its network), or `custom` for a network its caller builds, and the training
//! progress. A PyTorch file without metadata is imported by recognising the network from its
//! tensor shapes; a non-zero 1x1 weight on a HetConv filter's own block is folded into the 3x3
//! centre tap (the same function), leaving the masked block exactly zero.

#[cfg(not(target_arch = "wasm32"))]
mod file;
mod safetensors_io;

#[cfg(not(target_arch = "wasm32"))]
pub use file::{load, save, save_as, write_atomic};

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::gpu::Context;
use crate::model::{Architecture, Model};
use crate::nn::ConvMode;

/// Prefix of the optimizer's momentum tensors.
pub const MOMENTUM_PREFIX: &str = "optimizer.momentum.";
/// Metadata key of the zoo architecture (JSON).
pub const META_CONFIG: &str = "hetconv.config";
/// Metadata key of the network's name: the architecture's (`vgg16`, ...) or [`CUSTOM_MODEL`].
pub const META_MODEL: &str = "hetconv.model";
/// [`META_MODEL`] of a network built by its caller rather than the zoo.
pub const CUSTOM_MODEL: &str = "custom";
/// Metadata key of the class names of the training data (a JSON list of strings).
pub const META_CLASSES: &str = "hetconv.classes";
/// Metadata key of the training progress (JSON, owned by the trainer).
pub const META_PROGRESS: &str = "hetconv.progress";
/// Metadata key of the number of training steps (decimal).
pub const META_STEP: &str = "hetconv.step";

/// How a checkpoint stores its float tensors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StoredDtype {
    /// f32: exact (training checkpoints always).
    #[default]
    F32,
    /// f16: half the size, for inference (each value rounded to the nearest f16).
    F16,
}

impl std::str::FromStr for StoredDtype {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "f32" => Ok(StoredDtype::F32),
            "f16" => Ok(StoredDtype::F16),
            _ => Err(format!("{s:?} is not a stored dtype (f32 or f16)")),
        }
    }
}

/// A checkpoint in memory.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    /// The zoo network it holds (None: a network built by its caller, which
    /// [`Checkpoint::apply`] loads it into).
    pub architecture: Option<Architecture>,
    /// Every parameter and buffer of the model in store order: (name, shape).
    pub layout: Vec<(String, Vec<usize>)>,
    /// Parameters and buffers by state_dict name.
    pub tensors: HashMap<String, Vec<f32>>,
    /// Momentum buffers by parameter name (empty: none saved).
    pub momentum: HashMap<String, Vec<f32>>,
    /// Free-form metadata (architecture, progress).
    pub metadata: HashMap<String, String>,
    /// 1x1 weights on a filter's own block that were folded into 3x3 centre taps on import.
    pub folded: usize,
}

impl Checkpoint {
    /// Reads `model` back from the GPU; `with_optimizer` adds the momentum buffers.
    pub async fn from_model<M: Model + ?Sized>(
        model: &M,
        with_optimizer: bool,
        mut metadata: HashMap<String, String>,
    ) -> Result<Self> {
        let snapshot = model.store().snapshot().await?;
        let architecture = model.architecture();
        match &architecture {
            Some(arch) => {
                metadata.insert(META_CONFIG.into(), arch.to_json()?);
                metadata.insert(META_MODEL.into(), arch.name());
            }
            None => {
                metadata.remove(META_CONFIG);
                metadata.insert(META_MODEL.into(), CUSTOM_MODEL.into());
            }
        }
        Ok(Self {
            architecture,
            layout: model.store().layout(),
            tensors: snapshot
                .params
                .into_iter()
                .chain(snapshot.buffers)
                .collect(),
            momentum: if with_optimizer {
                snapshot.momentum.into_iter().collect()
            } else {
                HashMap::new()
            },
            metadata,
            folded: 0,
        })
    }

    /// Blocking [`Checkpoint::from_model`] (native).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn from_model_blocking<M: Model + ?Sized>(
        model: &M,
        with_optimizer: bool,
        metadata: HashMap<String, String>,
    ) -> Result<Self> {
        pollster::block_on(Self::from_model(model, with_optimizer, metadata))
    }

    /// The class names recorded with the checkpoint ([`META_CLASSES`]), if any.
    pub fn class_names(&self) -> Option<Vec<String>> {
        serde_json::from_str(self.metadata.get(META_CLASSES)?).ok()
    }

    /// The shape of tensor `name`, if the checkpoint has it.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.layout
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s.as_slice())
    }

    /// The step recorded in the metadata (0 when absent).
    pub fn step(&self) -> u64 {
        self.metadata
            .get(META_STEP)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    /// The first non-finite value (NaN or infinite) among the tensors and the momentum
    /// buffers, in name order: (name, index, value).
    pub fn first_non_finite(&self) -> Option<(String, usize, f32)> {
        let mut all: Vec<(&String, &Vec<f32>)> =
            self.tensors.iter().chain(&self.momentum).collect();
        all.sort_by(|a, b| a.0.cmp(b.0));
        all.into_iter().find_map(|(name, values)| {
            values
                .iter()
                .position(|v| !v.is_finite())
                .map(|i| (name.clone(), i, values[i]))
        })
    }

    /// Moves any non-zero 1x1 weight on a HetConv filter's own block (`X.pwc.weight`
    /// `[N, M, 1, 1]` next to `X.gwc.weight` `[N, M/P, 3, 3]`) into the 3x3 centre tap of the
    /// same filter and channel: the function is unchanged and the masked block becomes exactly
    /// zero. Only a zoo network's tensors are folded (a custom network's `gwc`/`pwc` may be
    /// something else), and only pairs whose shapes are exactly these.
    pub(crate) fn fold_masked_block(&mut self) {
        if self.architecture.is_none() {
            return;
        }
        let pairs: Vec<(String, String, usize, usize, usize)> = self
            .layout
            .iter()
            .filter_map(|(name, pw)| {
                let prefix = name.strip_suffix(".pwc.weight")?;
                let gw_name = format!("{prefix}.gwc.weight");
                let gw = self.shape(&gw_name)?;
                let (cout, cin, own_in) = (*pw.first()?, *pw.get(1)?, *gw.get(1)?);
                let pointwise = pw.len() == 4 && pw[2..] == [1, 1];
                let parts = cin.checked_div(own_in).unwrap_or(0);
                let fits = pointwise
                    && gw.len() == 4
                    && gw[0] == cout
                    && gw[2..] == [3, 3]
                    && parts > 0
                    && cin == parts * own_in
                    && cout.is_multiple_of(parts);
                fits.then(|| (name.clone(), gw_name, cout, cin, own_in))
            })
            .collect();
        for (pw_name, gw_name, cout, cin, own_in) in pairs {
            let (Some(mut pw), Some(mut gw)) =
                (self.tensors.remove(&pw_name), self.tensors.remove(&gw_name))
            else {
                continue;
            };
            let own_out = cout / (cin / own_in);
            for o in 0..cout {
                let lo = (o / own_out) * own_in;
                for c in lo..lo + own_in {
                    let w = &mut pw[o * cin + c];
                    if *w != 0.0 {
                        gw[((o * own_in + (c - lo)) * 3 + 1) * 3 + 1] += *w;
                        self.folded += 1;
                    }
                    *w = 0.0;
                }
            }
            self.tensors.insert(pw_name, pw);
            self.tensors.insert(gw_name, gw);
        }
    }

    /// Builds the zoo network this checkpoint holds on `ctx`, its HetConv layers computed in
    /// `mode`, and loads the tensors. A checkpoint of a custom network is an error: build the
    /// network and call [`Checkpoint::apply`].
    pub fn build_model(&self, ctx: &Context, mode: ConvMode) -> Result<Box<dyn Model>> {
        let arch = self.architecture.clone().ok_or_else(|| {
            Error::InvalidArgument(
                "the checkpoint holds a custom network (not one of the zoo's): build it and \
                 load the checkpoint with Checkpoint::apply"
                    .into(),
            )
        })?;
        let mut model = arch.with_mode(mode).build(ctx, 0)?;
        self.apply(&mut model)?;
        Ok(model)
    }

    /// Writes the tensors (and momentum buffers, if any) into `model`. Its network must be the
    /// checkpoint's (when both are the zoo's), and its tensors the checkpoint's, name for name
    /// and shape for shape; the error names the first that differs. A checkpoint that records
    /// its input normalisation needs a model with the same (the weights expect that input); one
    /// that records none (a PyTorch file) goes into a model normalised as its builder chose.
    pub fn apply<M: Model + ?Sized>(&self, model: &mut M) -> Result<()> {
        if let (Some(mine), Some(theirs)) = (&self.architecture, model.architecture()) {
            if !mine.same_network(&theirs) {
                return Err(Error::InvalidArgument(format!(
                    "the checkpoint holds {mine}; the model is {theirs}"
                )));
            }
            if let Some(own) = mine
                .normalize()
                .filter(|own| theirs.normalize() != Some(*own))
            {
                return Err(Error::InvalidArgument(format!(
                    "the checkpoint's weights expect input normalised with {own:?}; the model normalises with {:?}: build it with_normalize({own:?})",
                    theirs.normalize()
                )));
            }
        }
        let wanted = model.store().layout();
        for (name, shape) in &wanted {
            match self.shape(name) {
                None => {
                    return Err(Error::InvalidArgument(format!(
                        "the checkpoint has no tensor {name} (the model's is {shape:?})"
                    )));
                }
                Some(found) if found != shape.as_slice() => {
                    return Err(Error::InvalidArgument(format!(
                        "the checkpoint's tensor {name} has shape {found:?}, the model's {shape:?}"
                    )));
                }
                Some(_) => {}
            }
        }
        if let Some((extra, _)) = self
            .layout
            .iter()
            .find(|(name, _)| !wanted.iter().any(|(w, _)| w == name))
        {
            return Err(Error::InvalidArgument(format!(
                "the checkpoint has tensor {extra}, which the model does not"
            )));
        }
        for (name, momentum) in &self.momentum {
            let want = wanted
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, s)| s.iter().product::<usize>());
            if want != Some(momentum.len()) {
                return Err(Error::InvalidArgument(format!(
                    "the checkpoint's {MOMENTUM_PREFIX}{name} has {} values; the model's parameter {}",
                    momentum.len(),
                    want.map_or("does not exist".to_string(), |n| format!("has {n}"))
                )));
            }
        }
        let values = |name: &str| {
            self.tensors
                .get(name)
                .ok_or_else(|| Error::InvalidArgument(format!("the checkpoint has no {name}")))
        };
        let store = model.store_mut();
        for (i, info) in store.params().to_vec().iter().enumerate() {
            store.write_value(crate::nn::ParamId(i), values(&info.name)?)?;
            if let Some(m) = self.momentum.get(&info.name) {
                store.write_momentum(crate::nn::ParamId(i), m)?;
            }
        }
        for (name, tensor) in store.buffers() {
            tensor.write(values(name)?)?;
        }
        Ok(())
    }
}
