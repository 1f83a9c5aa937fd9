//! Copies between tensors and buffers the application owns, for programs that share their wgpu
//! device with hetconv (see [`Context::from_device`](crate::Context::from_device)): a frame a
//! renderer produced on the GPU goes into a network, and the network's output goes back into the
//! renderer's buffer, with no trip through the CPU.
//!
//! Both copies are recorded into hetconv's open command encoder, in order with the ops around
//! them, and reach the GPU at the next [`Context::flush`](crate::Context::flush) (or readback).
//! Work the application submitted on the queue before that flush runs before them; work it
//! submits after the flush runs after them.

use super::Tensor;
use crate::error::{Error, Result};

impl Tensor {
    /// Records a copy of `self.numel()` f32 values from the application's `src`, starting at
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

    /// Records a copy of this tensor's values into the application's `dst`, starting at byte
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

    /// Checks what wgpu would otherwise report later as a validation error of the whole
    /// submission: the usage, the alignment and the range.
    fn check_app_buffer(
        &self,
        op: &'static str,
        buffer: &wgpu::Buffer,
        offset: u64,
        usage: wgpu::BufferUsages,
    ) -> Result<()> {
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
