//! A small reverse-mode autograd tape over device tensors.
//!
//! Forward ops run immediately (their dispatches are recorded into the open command encoder)
//! and push a closure holding exactly what their backward pass needs. [`Tape::backward`] replays
//! the closures in reverse, sums gradients that meet at a variable, and hands parameter
//! gradients to the [`ParamStore`]. Nothing is read back.

pub mod ops;

use std::collections::HashMap;

use crate::dist::BatchNormSync;
use crate::error::{Error, Result};
use crate::kernels::elementwise::{self, BinaryOp};
use crate::nn::{ParamId, ParamStore};
use crate::tensor::Tensor;

/// Identifies a variable on one tape.
pub type VarId = usize;

/// A tensor recorded on a tape.
#[derive(Clone, Debug)]
pub struct Var {
    id: VarId,
    requires_grad: bool,
    value: Tensor,
}

impl Var {
    /// The value computed in the forward pass.
    pub fn value(&self) -> &Tensor {
        &self.value
    }

    /// Whether a gradient flows back to this variable.
    pub fn requires_grad(&self) -> bool {
        self.requires_grad
    }
}

/// Given the output's gradient and which inputs need one, returns the inputs' gradients.
pub type BackwardFn = Box<dyn FnOnce(&Tensor, &[bool]) -> Result<Vec<Option<Tensor>>>>;

struct Node {
    output: VarId,
    inputs: Vec<(VarId, bool)>,
    backward: BackwardFn,
    /// The context's layer when the op was recorded, set again while its backward runs.
    layer: Option<std::sync::Arc<str>>,
}

/// Records operations for one forward/backward pass.
#[derive(Default)]
pub struct Tape {
    next_id: VarId,
    nodes: Vec<Node>,
    params: HashMap<VarId, ParamId>,
    no_grad: bool,
    batch_norm_sync: Option<BatchNormSync>,
}

impl Tape {
    /// A tape that records backward closures.
    pub fn new() -> Self {
        Self::default()
    }

    /// A tape that records nothing (inference): ops only compute their outputs.
    pub fn inference() -> Self {
        Self {
            no_grad: true,
            ..Self::default()
        }
    }

    /// This tape with synchronised batch normalisation: training-mode batch norm recorded on it
    /// takes its statistics (and its backward pass its sums) over every rank's batch.
    pub fn with_batch_norm_sync(self, sync: BatchNormSync) -> Self {
        Self {
            batch_norm_sync: Some(sync),
            ..self
        }
    }

    /// The ranks whose batches training-mode batch norm is synchronised over, if any.
    pub fn batch_norm_sync(&self) -> Option<&BatchNormSync> {
        self.batch_norm_sync.as_ref()
    }

    /// Whether ops should prepare their backward pass.
    pub fn is_recording(&self) -> bool {
        !self.no_grad
    }

    fn fresh(&mut self, value: Tensor, requires_grad: bool) -> Var {
        let id = self.next_id;
        self.next_id += 1;
        Var {
            id,
            requires_grad: requires_grad && !self.no_grad,
            value,
        }
    }

    /// A variable that needs no gradient (input data).
    pub fn constant(&mut self, value: Tensor) -> Var {
        self.fresh(value, false)
    }

    /// A parameter of `store`: its gradient goes to the store.
    pub fn param(&mut self, store: &ParamStore, id: ParamId) -> Result<Var> {
        let var = self.fresh(store.value(id)?, true);
        self.params.insert(var.id, id);
        Ok(var)
    }

    /// Records an op's output. `backward` is called only if the output needs a gradient.
    pub fn record(&mut self, value: Tensor, inputs: &[&Var], backward: BackwardFn) -> Var {
        let requires_grad = inputs.iter().any(|v| v.requires_grad);
        let var = self.fresh(value, requires_grad);
        if var.requires_grad {
            self.nodes.push(Node {
                output: var.id,
                inputs: inputs.iter().map(|v| (v.id, v.requires_grad)).collect(),
                backward,
                layer: var.value.context().layer(),
            });
        }
        var
    }

    /// Back-propagates `seed` (the gradient of the loss with respect to `root`) through the
    /// tape; parameter gradients are written into `store` (summed when a parameter is used
    /// more than once).
    ///
    /// # Shapes
    /// `seed`: the shape of `root`'s value.
    pub fn backward(self, root: &Var, seed: Tensor, store: &mut ParamStore) -> Result<()> {
        if seed.shape() != root.value.shape() {
            return Err(Error::shape(
                "backward",
                format!(
                    "seed of shape {:?} for a root of shape {:?}",
                    seed.shape(),
                    root.value.shape()
                ),
            ));
        }
        let mut grads: HashMap<VarId, Tensor> = HashMap::new();
        grads.insert(root.id, seed);
        for node in self.nodes.into_iter().rev() {
            let Some(grad) = grads.remove(&node.output) else {
                continue;
            };
            let needs: Vec<bool> = node.inputs.iter().map(|&(_, needs)| needs).collect();
            let ctx = grad.context().clone();
            let outer = ctx.set_layer(node.layer);
            let input_grads = (node.backward)(&grad, &needs);
            ctx.set_layer(outer);
            let input_grads = input_grads?;
            for ((id, needs), g) in node.inputs.into_iter().zip(input_grads) {
                let Some(g) = g.filter(|_| needs) else {
                    continue;
                };
                if let Some(&param) = self.params.get(&id) {
                    store.accumulate_grad(param, &g)?;
                } else if let Some(existing) = grads.remove(&id) {
                    grads.insert(id, elementwise::binary(BinaryOp::Add, &existing, &g)?);
                } else {
                    grads.insert(id, g);
                }
            }
        }
        Ok(())
    }
}
