//! Parameter storage: every trainable parameter is a view into one flat buffer, with matching
//! flat gradient and momentum buffers, so the optimizer is one dispatch over all of them.
//! Non-trainable state (BatchNorm's running estimates) lives in separate named buffers.

use crate::error::{Error, Result};
use crate::gpu::Context;
use crate::kernels::elementwise;
use crate::kernels::loss_scale::LossScaler;
use crate::kernels::sgd::{self, SgdStep};
use crate::tensor::Tensor;

/// Index of a parameter in its store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ParamId(pub usize);

/// Index of a non-trainable buffer in its store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BufferId(pub usize);

/// Name, shape and place of one parameter.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamInfo {
    /// PyTorch state_dict name, e.g. `features.3.gwc.weight`.
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// First element in the flat buffers.
    pub offset: usize,
}

impl ParamInfo {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Collects parameters and buffers with their initial values.
#[derive(Default)]
pub struct ParamStoreBuilder {
    params: Vec<(String, Vec<usize>, Vec<f32>)>,
    buffers: Vec<(String, Vec<usize>, Vec<f32>)>,
}

impl ParamStoreBuilder {
    /// Adds a trainable parameter.
    pub fn param(&mut self, name: impl Into<String>, shape: &[usize], values: Vec<f32>) -> ParamId {
        self.params.push((name.into(), shape.to_vec(), values));
        ParamId(self.params.len() - 1)
    }

    /// Adds a non-trainable buffer.
    pub fn buffer(
        &mut self,
        name: impl Into<String>,
        shape: &[usize],
        values: Vec<f32>,
    ) -> BufferId {
        self.buffers.push((name.into(), shape.to_vec(), values));
        BufferId(self.buffers.len() - 1)
    }

    /// Every parameter, then every buffer, in the order added: (name, shape), without a GPU
    /// (the layout [`ParamStore::layout`] will have).
    pub fn layout(&self) -> Vec<(String, Vec<usize>)> {
        self.params
            .iter()
            .chain(&self.buffers)
            .map(|(name, shape, _)| (name.clone(), shape.clone()))
            .collect()
    }

    /// Uploads everything to `ctx`. Each parameter starts on the device's view alignment
    /// ([`Context::view_alignment`]); the padding between parameters stays zero (and so does
    /// its gradient).
    ///
    /// Names must be unique (they are the checkpoint's keys) and every shape must have as many
    /// elements as its values, at least one.
    pub fn build(self, ctx: &Context) -> Result<ParamStore> {
        self.validate()?;
        let align = ctx.view_alignment() as usize / 4;
        let mut infos = Vec::with_capacity(self.params.len());
        let mut total = 0;
        for (name, shape, values) in &self.params {
            infos.push(ParamInfo {
                name: name.clone(),
                shape: shape.clone(),
                offset: total,
            });
            total += values.len().div_ceil(align) * align;
        }
        let mut flat = vec![0.0f32; total.max(align)];
        for ((_, _, values), info) in self.params.iter().zip(&infos) {
            flat[info.offset..info.offset + values.len()].copy_from_slice(values);
        }
        let values = Tensor::from_slice(ctx, &[flat.len()], &flat)?;
        let grads = Tensor::zeros(ctx, &[flat.len()])?;
        let momentum = Tensor::zeros(ctx, &[flat.len()])?;
        let buffers = self
            .buffers
            .into_iter()
            .map(|(name, shape, values)| Ok((name, Tensor::from_slice(ctx, &shape, &values)?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(ParamStore {
            grad_written: vec![false; infos.len()],
            infos,
            values,
            grads,
            momentum,
            buffers,
        })
    }

    fn validate(&self) -> Result<()> {
        let mut seen = std::collections::HashSet::new();
        for (name, shape, values) in self.params.iter().chain(&self.buffers) {
            if !seen.insert(name.as_str()) {
                return Err(Error::InvalidArgument(format!(
                    "parameter store: the name {name:?} is used twice (names are checkpoint keys)"
                )));
            }
            let numel = shape
                .iter()
                .try_fold(1usize, |n, &d| n.checked_mul(d))
                .ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "parameter store: {name} has shape {shape:?}, over usize elements"
                    ))
                })?;
            if numel == 0 || numel != values.len() {
                return Err(Error::InvalidArgument(format!(
                    "parameter store: {name} has shape {shape:?} and {} initial values",
                    values.len()
                )));
            }
        }
        Ok(())
    }
}

/// Host copies of a store's contents, in store order: (name, values).
#[derive(Clone, Debug, PartialEq)]
pub struct ParamSnapshot {
    /// Parameter values.
    pub params: Vec<(String, Vec<f32>)>,
    /// Momentum buffers, same names.
    pub momentum: Vec<(String, Vec<f32>)>,
    /// Buffers (BatchNorm running estimates).
    pub buffers: Vec<(String, Vec<f32>)>,
}

/// All parameters of a model, their gradients and momentum, and its buffers.
pub struct ParamStore {
    infos: Vec<ParamInfo>,
    values: Tensor,
    grads: Tensor,
    momentum: Tensor,
    grad_written: Vec<bool>,
    buffers: Vec<(String, Tensor)>,
}

impl ParamStore {
    fn info(&self, id: ParamId) -> Result<&ParamInfo> {
        self.infos
            .get(id.0)
            .ok_or_else(|| Error::InvalidArgument(format!("no parameter #{}", id.0)))
    }

    /// The parameters, in order.
    pub fn params(&self) -> &[ParamInfo] {
        &self.infos
    }

    /// The GPU context the store lives on.
    pub fn context(&self) -> &Context {
        self.values.context()
    }

    /// Every parameter, then every buffer, in store order: (name, shape). These are a
    /// checkpoint's tensors.
    pub fn layout(&self) -> Vec<(String, Vec<usize>)> {
        let params = self.infos.iter().map(|i| (i.name.clone(), i.shape.clone()));
        let buffers = self
            .buffers
            .iter()
            .map(|(name, t)| (name.clone(), t.shape().to_vec()));
        params.chain(buffers).collect()
    }

    /// The buffers, in order: (name, tensor).
    pub fn buffers(&self) -> &[(String, Tensor)] {
        &self.buffers
    }

    /// The value of parameter `id` (a view into the flat buffer).
    pub fn value(&self, id: ParamId) -> Result<Tensor> {
        let info = self.info(id)?;
        self.values.view(info.offset, &info.shape)
    }

    /// The gradient of parameter `id` (a view).
    pub fn grad(&self, id: ParamId) -> Result<Tensor> {
        let info = self.info(id)?;
        self.grads.view(info.offset, &info.shape)
    }

    /// The momentum buffer of parameter `id` (a view).
    pub fn momentum(&self, id: ParamId) -> Result<Tensor> {
        let info = self.info(id)?;
        self.momentum.view(info.offset, &info.shape)
    }

    /// Buffer `id`.
    pub fn buffer(&self, id: BufferId) -> Result<&Tensor> {
        self.buffers
            .get(id.0)
            .map(|(_, t)| t)
            .ok_or_else(|| Error::InvalidArgument(format!("no buffer #{}", id.0)))
    }

    /// The flat parameter, gradient and momentum buffers.
    pub fn flat(&self) -> (&Tensor, &Tensor, &Tensor) {
        (&self.values, &self.grads, &self.momentum)
    }

    /// Stores `grad` as parameter `id`'s gradient, or adds it if the parameter already got
    /// one since [`ParamStore::zero_grads`].
    ///
    /// # Shapes
    /// `grad`: the parameter's shape.
    pub fn accumulate_grad(&mut self, id: ParamId, grad: &Tensor) -> Result<()> {
        let target = self.grad(id)?;
        if grad.shape() != target.shape() {
            return Err(Error::shape(
                "accumulate_grad",
                format!(
                    "gradient {:?} for parameter {} of shape {:?}",
                    grad.shape(),
                    self.infos[id.0].name,
                    target.shape()
                ),
            ));
        }
        if self.grad_written[id.0] {
            elementwise::axpby(1.0, grad, 1.0, &target)
        } else {
            self.grad_written[id.0] = true;
            grad.copy_to(&target)
        }
    }

    /// Clears every gradient (recorded, not submitted).
    pub fn zero_grads(&mut self) {
        self.grads.fill_zero();
        self.grad_written.iter_mut().for_each(|w| *w = false);
    }

    /// One SGD step over every parameter (one dispatch); with a loss scaler, skipped when its
    /// flag says the step's gradients are not finite.
    pub fn sgd_step(&self, step: &SgdStep, scaler: Option<&LossScaler>) -> Result<()> {
        sgd::sgd_step(&self.grads, &self.values, &self.momentum, step, scaler)
    }

    /// Overwrites parameter `id` with `values` (uploaded before the next submission's work).
    ///
    /// # Shapes
    /// `values`: the parameter's elements, flattened.
    pub fn write_value(&self, id: ParamId, values: &[f32]) -> Result<()> {
        self.value(id)?.write(values)
    }

    /// Overwrites parameter `id`'s momentum buffer.
    ///
    /// # Shapes
    /// `values`: the parameter's elements, flattened.
    pub fn write_momentum(&self, id: ParamId, values: &[f32]) -> Result<()> {
        self.momentum(id)?.write(values)
    }

    /// Reads every parameter and momentum buffer back: one copy of each flat buffer.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn snapshot_blocking(&self) -> Result<ParamSnapshot> {
        pollster::block_on(self.snapshot())
    }

    /// Reads every parameter, momentum buffer and buffer back.
    pub async fn snapshot(&self) -> Result<ParamSnapshot> {
        let values = self.values.read().await?;
        let momentum = self.momentum.read().await?;
        let mut buffers = Vec::with_capacity(self.buffers.len());
        for (name, t) in &self.buffers {
            buffers.push((name.clone(), t.read().await?));
        }
        let split = |flat: &[f32]| -> Vec<(String, Vec<f32>)> {
            self.infos
                .iter()
                .map(|i| {
                    (
                        i.name.clone(),
                        flat[i.offset..i.offset + i.numel()].to_vec(),
                    )
                })
                .collect()
        };
        Ok(ParamSnapshot {
            params: split(&values),
            momentum: split(&momentum),
            buffers,
        })
    }

    /// Finds a parameter by name.
    pub fn find(&self, name: &str) -> Option<ParamId> {
        self.infos.iter().position(|i| i.name == name).map(ParamId)
    }

    /// Finds a buffer by name.
    pub fn find_buffer(&self, name: &str) -> Option<BufferId> {
        self.buffers
            .iter()
            .position(|(n, _)| n == name)
            .map(BufferId)
    }

    /// Number of parameter elements (without alignment padding).
    pub fn numel(&self) -> usize {
        self.infos.iter().map(ParamInfo::numel).sum()
    }
}
