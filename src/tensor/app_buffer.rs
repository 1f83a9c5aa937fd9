//! Copies between tensors and buffers the application owns, for programs that share their wgpu
//! device with hetconv (see [`Context::from_device`](crate::Context::from_device)): a frame a
//! renderer produced on the GPU goes into a network, and the network's output goes back into the
//! renderer's buffer, with no trip through the CPU.
//!
//! The copies are recorded into hetconv's open command encoder, in order with the ops around
//! them, and reach the GPU with it at the next submission: [`Context::flush`](crate::Context::flush),
//! or anything that submits on its own (reading a tensor back, [`Tensor::write`] while commands
//! are recorded, `Context::synchronize`, a profile's end). Work the application submitted on the
//! queue before that submission runs before them; work it submits after runs after them.
//!
//! The application's buffer must belong to the same device, be unmapped and not destroyed when
//! the submission happens (wgpu cannot be asked about these beforehand; it reports them as a
//! validation error of the submission, to the application's error handler).

use super::Tensor;
use crate::error::{Error, Result};
use crate::gpu::Context;

impl Tensor {
    /// A new f32 tensor holding a copy of `numel(shape)` f32 values from the application's `src`,
    /// starting at byte `offset` (recorded, like [`Tensor::copy_from_buffer`]).
    ///
    /// # Shapes
    /// `src` holds at least `offset + 4 * numel(shape)` bytes; it has `COPY_SRC` usage and
    /// `offset` is a multiple of 4.
    pub fn from_buffer(
        ctx: &Context,
        shape: &[usize],
        src: &wgpu::Buffer,
        offset: u64,
    ) -> Result<Self> {
        let tensor = Self::uninit(ctx, shape)?;
        tensor.copy_from_buffer(src, offset)?;
        Ok(tensor)
    }

    /// Records a copy of `self.numel()` f32 values (into an f32 tensor: f16 ones are refused)
    /// from the application's `src`, starting at
    /// byte `offset`, into this tensor.
    ///
    /// # Shapes
    /// `src` holds at least `offset + 4 * self.numel()` bytes; it has `COPY_SRC` usage and
    /// `offset` is a multiple of 4.
    pub fn copy_from_buffer(&self, src: &wgpu::Buffer, offset: u64) -> Result<()> {
        self.check_app_buffer(
            "copy_from_buffer",
            src,
            offset,
            wgpu::BufferUsages::COPY_SRC,
        )?;
        self.context().with_encoder(|e| {
            e.copy_buffer_to_buffer(
                src,
                offset,
                self.buffer(),
                self.byte_offset(),
                self.byte_len(),
            )
        });
        Ok(())
    }

    /// Records a copy of this f32 tensor's values (f16 ones are refused: widen them with
    /// [`crate::kernels::cast::to_dtype`]) into the application's `dst`, starting at byte
    /// `offset`. The copy is on the GPU after the next [`Context::flush`](crate::Context::flush):
    /// flush before submitting work of your own that reads `dst`.
    ///
    /// # Shapes
    /// `dst` holds at least `offset + 4 * self.numel()` bytes; it has `COPY_DST` usage and
    /// `offset` is a multiple of 4.
    pub fn copy_into_buffer(&self, dst: &wgpu::Buffer, offset: u64) -> Result<()> {
        self.check_app_buffer(
            "copy_into_buffer",
            dst,
            offset,
            wgpu::BufferUsages::COPY_DST,
        )?;
        self.context().with_encoder(|e| {
            e.copy_buffer_to_buffer(
                self.buffer(),
                self.byte_offset(),
                dst,
                offset,
                self.byte_len(),
            )
        });
        Ok(())
    }

    /// Checks, when the copy is recorded, what wgpu would otherwise report as a validation
    /// error of the whole submission: the usage, the alignment, the range, and that the buffer
    /// is not the tensor's own.
    fn check_app_buffer(
        &self,
        op: &'static str,
        buffer: &wgpu::Buffer,
        offset: u64,
        usage: wgpu::BufferUsages,
    ) -> Result<()> {
        // The application's side is f32 values (see each method).
        self.dtype().expect(op, super::DType::F32)?;
        if !buffer.usage().contains(usage) {
            return Err(Error::InvalidArgument(format!(
                "{op}: the application's buffer ({} bytes) was created without {usage:?} usage \
                 (it has {:?})",
                buffer.size(),
                buffer.usage()
            )));
        }
        if !offset.is_multiple_of(wgpu::COPY_BUFFER_ALIGNMENT) {
            return Err(Error::InvalidArgument(format!(
                "{op}: byte offset {offset} is not a multiple of {}",
                wgpu::COPY_BUFFER_ALIGNMENT
            )));
        }
        if buffer == self.buffer() {
            return Err(Error::InvalidArgument(format!(
                "{op}: the application's buffer is the tensor's own buffer"
            )));
        }
        let end = offset.checked_add(self.byte_len());
        if end.is_none_or(|end| end > buffer.size()) {
            return Err(Error::shape(
                op,
                format!(
                    "tensor {:?} needs bytes {offset}..{} of the application's buffer, which has {}",
                    self.shape(),
                    offset.saturating_add(self.byte_len()),
                    buffer.size()
                ),
            ));
        }
        Ok(())
    }
}
