//! A device-resident tensor: a shape, an element type and a pooled buffer. Clones share the
//! buffer.

mod app_buffer;
mod dtype;

pub use dtype::DType;

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::gpu::{Context, PooledBuffer};

/// A row-major tensor living on the GPU: f32 values, or f16 ones (activations in mixed
/// precision; see [`DType`]). Reads and writes from the CPU are f32 either way.
#[derive(Clone)]
pub struct Tensor {
    ctx: Context,
    shape: Vec<usize>,
    dtype: DType,
    storage: Arc<PooledBuffer>,
    /// First element inside the buffer (non-zero for views into a flat parameter buffer).
    offset: usize,
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.dtype {
            DType::F32 => write!(f, "Tensor{:?}", self.shape),
            DType::F16 => write!(f, "Tensor{:?} f16", self.shape),
        }
    }
}

impl Tensor {
    /// An f32 tensor whose contents are unspecified (every op that returns one writes all of
    /// it).
    pub(crate) fn uninit(ctx: &Context, shape: &[usize]) -> Result<Self> {
        Self::uninit_as(ctx, shape, DType::F32)
    }

    /// A tensor of `dtype` whose contents are unspecified; f16 needs the device's
    /// `SHADER_F16` (no kernel could read it otherwise).
    pub(crate) fn uninit_as(ctx: &Context, shape: &[usize], dtype: DType) -> Result<Self> {
        let numel = checked_numel("tensor", shape)?;
        dtype.check_device("tensor", ctx)?;
        let bytes = (numel as u64) * dtype.bytes();
        let allowed = ctx.max_binding_bytes();
        if bytes > allowed {
            return Err(Error::TensorLimit {
                shape: shape.to_vec(),
                asked: bytes,
                allowed,
            });
        }
        // Round up so that small tensors share pool slots and copies (of f16 tensors too, whose
        // copies, clears and bindings round up to 4 bytes) stay inside the buffer.
        let size = bytes.div_ceil(16) * 16;
        let buffer = {
            let mut pool = crate::gpu::lock(&ctx.inner.pool);
            pool.take(&ctx.inner.device, size)
        };
        let tensor = Self {
            ctx: ctx.clone(),
            shape: shape.to_vec(),
            dtype,
            storage: Arc::new(PooledBuffer::new(buffer, &ctx.inner.pool)),
            offset: 0,
        };
        if ctx
            .inner
            .poison_scratch
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            // NaN in f32 and in f16 alike; written before any work recorded from now on.
            if ctx.is_recording() {
                ctx.flush()?;
            }
            let bytes = vec![0xFF; tensor.binding_len() as usize];
            ctx.queue()
                .write_buffer(tensor.buffer(), tensor.byte_offset(), &bytes);
        }
        Ok(tensor)
    }

    /// A tensor of zeros.
    ///
    /// # Shapes
    /// Any shape with no zero-sized dimension.
    pub fn zeros(ctx: &Context, shape: &[usize]) -> Result<Self> {
        let tensor = Self::uninit(ctx, shape)?;
        tensor.fill_zero();
        Ok(tensor)
    }

    /// Uploads `data` (row-major) as a tensor of `shape`.
    ///
    /// # Shapes
    /// `data.len()` must equal the product of `shape`.
    pub fn from_slice(ctx: &Context, shape: &[usize], data: &[f32]) -> Result<Self> {
        let numel = checked_numel("tensor", shape)?;
        if numel != data.len() {
            return Err(Error::shape(
                "tensor",
                format!(
                    "shape {shape:?} holds {numel} values but {} were given",
                    data.len()
                ),
            ));
        }
        let tensor = Self::uninit(ctx, shape)?;
        // A fresh buffer: no recorded command touches it, so the queue write needs no ordering.
        tensor.queue_write(data);
        Ok(tensor)
    }

    /// Uploads `data` (row-major) as a tensor of `shape` stored as `dtype` (f16: each value
    /// rounded to the nearest f16, ties to even; from 65520 in magnitude on, infinite).
    ///
    /// # Shapes
    /// `data.len()` must equal the product of `shape`.
    pub fn from_slice_as(
        ctx: &Context,
        shape: &[usize],
        data: &[f32],
        dtype: DType,
    ) -> Result<Self> {
        let tensor = Self::uninit_as(ctx, shape, dtype)?;
        tensor.check_len("tensor", data)?;
        tensor.queue_write(data);
        Ok(tensor)
    }

    /// Overwrites the tensor with `data` (row-major). Work recorded before the call sees the
    /// old values: if an encoder is open it is submitted first, since queue writes land before
    /// any command that is still being recorded.
    ///
    /// # Shapes
    /// `data.len()` must equal `self.numel()`.
    pub fn write(&self, data: &[f32]) -> Result<()> {
        self.check_len("tensor write", data)?;
        if self.ctx.is_recording() {
            self.ctx.flush()?;
        }
        self.queue_write(data);
        Ok(())
    }

    /// Writes `data` in the tensor's dtype (f16: rounded to nearest, ties to even, on the CPU;
    /// an odd count gets one zero half after it, in the padding the buffer has).
    fn queue_write(&self, data: &[f32]) {
        let queue = self.ctx.queue();
        match self.dtype {
            DType::F32 => queue.write_buffer(
                self.buffer(),
                self.byte_offset(),
                bytemuck::cast_slice(data),
            ),
            DType::F16 => {
                let mut halves: Vec<u16> = data
                    .iter()
                    .map(|&v| half::f16::from_f32(v).to_bits())
                    .collect();
                halves.resize(halves.len().next_multiple_of(2), 0);
                queue.write_buffer(
                    self.buffer(),
                    self.byte_offset(),
                    bytemuck::cast_slice(&halves),
                );
            }
        }
    }

    fn check_len(&self, op: &'static str, data: &[f32]) -> Result<()> {
        if data.len() != self.numel() {
            return Err(Error::shape(
                op,
                format!(
                    "tensor {:?} holds {} values but {} were given",
                    self.shape,
                    self.numel(),
                    data.len()
                ),
            ));
        }
        Ok(())
    }

    /// Records a clear of the tensor to zeros.
    pub fn fill_zero(&self) {
        self.ctx.with_encoder(|e| {
            e.clear_buffer(self.buffer(), self.byte_offset(), Some(self.binding_len()))
        });
    }

    /// A view of `shape` starting `offset` elements into this tensor's storage. The byte offset
    /// must be a multiple of [`Context::view_alignment`] (the device's storage-offset
    /// alignment, at least 16 bytes); a view of an f16 tensor must also end
    /// on a 4-byte boundary (an even count of elements: copies, clears and bindings cover whole
    /// 4-byte words, and would reach into the next view otherwise).
    ///
    /// # Shapes
    /// `offset + numel(shape) <= self.numel()`
    pub fn view(&self, offset: usize, shape: &[usize]) -> Result<Self> {
        let numel = checked_numel("view", shape)?;
        if self.dtype == DType::F16 && !numel.is_multiple_of(2) {
            return Err(Error::shape(
                "view",
                format!("an f16 view must hold an even count of elements, {shape:?} does not"),
            ));
        }
        if offset
            .checked_add(numel)
            .is_none_or(|end| end > self.numel())
        {
            return Err(Error::shape(
                "view",
                format!(
                    "{shape:?} at offset {offset} does not fit in {:?}",
                    self.shape
                ),
            ));
        }
        let align = self.ctx.view_alignment();
        let byte_offset = (self.offset + offset) as u64 * self.dtype.bytes();
        if !byte_offset.is_multiple_of(align) {
            return Err(Error::shape(
                "view",
                format!(
                    "byte offset {byte_offset} is not a multiple of the device's alignment {align}"
                ),
            ));
        }
        Ok(Self {
            ctx: self.ctx.clone(),
            shape: shape.to_vec(),
            dtype: self.dtype,
            storage: self.storage.clone(),
            offset: self.offset + offset,
        })
    }

    /// Byte offset of the first element in [`Tensor::buffer`].
    pub fn byte_offset(&self) -> u64 {
        self.offset as u64 * self.dtype.bytes()
    }

    /// Bytes the tensor's values cover.
    pub fn byte_len(&self) -> u64 {
        self.numel() as u64 * self.dtype.bytes()
    }

    /// [`Tensor::byte_len`] rounded up to 4 bytes, as copies, clears and storage bindings need
    /// (an f16 tensor of odd length owns the 2 bytes after it: its buffer is rounded up further).
    pub(crate) fn binding_len(&self) -> u64 {
        self.byte_len().div_ceil(4) * 4
    }

    /// The range a kernel binds, in bytes: [`Tensor::byte_len`] rounded up to 16 bytes, so
    /// that a shader may bind the tensor as an array of vec4s (its last, partial vec4
    /// included). The buffer holds it: buffers are sized in 16-byte units and a view starts
    /// at a multiple of 16 bytes ([`Context::view_alignment`]), so the rounding stays within
    /// the buffer, before the next view of the same buffer (a binding of a view reaches no
    /// other view's values).
    pub(crate) fn kernel_binding_len(&self) -> u64 {
        let rounded = self.byte_len().div_ceil(16) * 16;
        rounded.min(self.buffer().size() - self.byte_offset())
    }

    /// How the tensor's values are stored.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The tensor as a shader binding (its own range of the buffer).
    pub fn binding(&self) -> wgpu::BindingResource<'_> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: self.buffer(),
            offset: self.byte_offset(),
            size: std::num::NonZeroU64::new(self.binding_len()),
        })
    }

    /// Records a copy of this tensor's values into `dst`.
    ///
    /// # Shapes
    /// `dst` has as many elements as `self`, of the same dtype, on the same context.
    pub fn copy_to(&self, dst: &Tensor) -> Result<()> {
        crate::kernels::same_context("copy", &[self, dst])?;
        if dst.numel() != self.numel() || dst.dtype != self.dtype {
            return Err(Error::shape(
                "copy",
                format!("cannot copy {self:?} into {dst:?}"),
            ));
        }
        self.ctx.with_encoder(|e| {
            e.copy_buffer_to_buffer(
                self.buffer(),
                self.byte_offset(),
                dst.buffer(),
                dst.byte_offset(),
                self.binding_len(),
            )
        });
        Ok(())
    }

    /// The same data seen with another shape of the same size.
    ///
    /// # Shapes
    /// `shape` must have as many elements as `self`.
    pub fn reshape(&self, shape: &[usize]) -> Result<Self> {
        let numel = checked_numel("reshape", shape)?;
        if numel != self.numel() {
            return Err(Error::shape(
                "reshape",
                format!("cannot view {:?} as {shape:?}", self.shape),
            ));
        }
        Ok(Self {
            ctx: self.ctx.clone(),
            shape: shape.to_vec(),
            dtype: self.dtype,
            storage: self.storage.clone(),
            offset: self.offset,
        })
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// The context the tensor lives on.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// The underlying wgpu buffer (may be larger than the tensor: sizes are rounded up, and a
    /// view starts at [`Tensor::byte_offset`]).
    pub fn buffer(&self) -> &wgpu::Buffer {
        self.storage.buffer()
    }

    /// Copies the tensor back to the CPU (f16 values widened to f32, exactly). Submits
    /// whatever was recorded first.
    pub async fn read(&self) -> Result<Vec<f32>> {
        let bytes = self.binding_len();
        let staging = self.ctx.device().create_buffer(&wgpu::BufferDescriptor {
            label: Some("hetconv readback"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.ctx.with_encoder(|e| {
            e.copy_buffer_to_buffer(self.buffer(), self.byte_offset(), &staging, 0, bytes)
        });
        self.ctx.flush()?;
        match self.dtype {
            DType::F32 => self.ctx.read_mapped(&staging).await,
            DType::F16 => {
                let halves: Vec<u16> = self.ctx.read_mapped(&staging).await?;
                Ok(halves[..self.numel()]
                    .iter()
                    .map(|&h| half::f16::from_bits(h).to_f32())
                    .collect())
            }
        }
    }

    /// Blocking [`Tensor::read`] (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        pollster::block_on(self.read())
    }
}

/// Product of `shape`, refusing zero-sized dimensions and overflow.
pub(crate) fn checked_numel(op: &'static str, shape: &[usize]) -> Result<usize> {
    if shape.contains(&0) {
        return Err(Error::shape(
            op,
            format!("shape {shape:?} has a zero-sized dimension"),
        ));
    }
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| Error::shape(op, format!("shape {shape:?} overflows")))
}
