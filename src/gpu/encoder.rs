//! Recording: every op appends its dispatches to one open command encoder; `flush` submits it.
//! A training step is therefore one submission unless the caller reads something back.

use std::collections::HashMap;

use super::context::Context;
use super::pipelines::KernelSpec;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Uniform blocks kept for reuse before the cache starts over.
const MAX_CACHED_UNIFORMS: usize = 4096;

/// The open encoder and the counters the benchmarks print.
#[derive(Default)]
pub(crate) struct Recorder {
    encoder: Option<wgpu::CommandEncoder>,
    /// Uniform parameter blocks, cached by content: shapes repeat every step.
    uniforms: HashMap<Vec<u32>, wgpu::Buffer>,
    stats: RecordStats,
}

/// How much work was recorded and submitted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordStats {
    /// Compute dispatches recorded.
    pub dispatches: u64,
    /// Queue submissions.
    pub submissions: u64,
}

impl Context {
    /// Runs `f` on the open command encoder (creating it if needed).
    pub(crate) fn with_encoder<R>(&self, f: impl FnOnce(&mut wgpu::CommandEncoder) -> R) -> R {
        let mut recorder = self
            .inner
            .recorder
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let encoder = recorder.encoder.get_or_insert_with(|| {
            if let Ok(mut pool) = self.inner.pool.lock() {
                pool.recording = true;
            }
            self.inner
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("hetconv step"),
                })
        });
        f(encoder)
    }

    /// Whether commands are recorded but not yet submitted.
    pub fn is_recording(&self) -> bool {
        self.inner
            .recorder
            .lock()
            .map(|r| r.encoder.is_some())
            .unwrap_or(false)
    }

    /// Submits everything recorded so far as one command buffer.
    pub fn flush(&self) -> Result<()> {
        let encoder = {
            let mut recorder = self
                .inner
                .recorder
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let encoder = recorder.encoder.take();
            if encoder.is_some() {
                recorder.stats.submissions += 1;
            }
            encoder
        };
        if let Some(encoder) = encoder {
            self.inner.queue.submit(Some(encoder.finish()));
        }
        if let Ok(mut pool) = self.inner.pool.lock() {
            pool.release_parked();
        }
        let errors = self.take_uncaptured_errors();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Gpu {
                op: "submit",
                message: errors.join("; "),
            })
        }
    }

    /// Dispatch and submission counts so far.
    pub fn record_stats(&self) -> RecordStats {
        self.inner
            .recorder
            .lock()
            .map(|r| r.stats)
            .unwrap_or_default()
    }

    /// Records one dispatch of `spec` over `threads` invocations (rounded up to whole
    /// workgroups; the shader bounds-checks against its own parameters). Workgroups are laid out
    /// in two dimensions when one would exceed the device's per-dimension limit; shaders
    /// linearise `workgroup_id.x + workgroup_id.y * num_workgroups.x`.
    pub(crate) fn dispatch(
        &self,
        spec: &KernelSpec,
        constants: &[(&'static str, f64)],
        params: &[u32],
        buffers: &[&Tensor],
        threads: u64,
    ) -> Result<()> {
        let workgroups = threads.div_ceil(u64::from(spec.workgroup_size));
        self.dispatch_workgroups(
            spec,
            spec.workgroup_size,
            constants,
            params,
            buffers,
            workgroups,
        )
    }

    /// Like [`Context::dispatch`] with an explicit workgroup size (the override constant `WG`)
    /// and count of workgroups.
    pub(crate) fn dispatch_workgroups(
        &self,
        spec: &KernelSpec,
        workgroup_size: u32,
        constants: &[(&'static str, f64)],
        params: &[u32],
        buffers: &[&Tensor],
        workgroups: u64,
    ) -> Result<()> {
        if buffers.len() != spec.bindings.len() {
            return Err(Error::Gpu {
                op: spec.entry,
                message: format!(
                    "{} buffers bound, kernel expects {}",
                    buffers.len(),
                    spec.bindings.len()
                ),
            });
        }
        let (x, y) = self.workgroup_grid(spec.entry, workgroups)?;
        let cached = {
            let mut cache = self
                .inner
                .pipelines
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            cache.get(&self.inner.device, spec, workgroup_size, constants)?
        };
        let uniform = self.uniform_block(params);
        let entries: Vec<wgpu::BindGroupEntry> = std::iter::once((0, uniform.as_entire_binding()))
            .chain(
                spec.bindings
                    .iter()
                    .zip(buffers)
                    .map(|(&(slot, _), t)| (slot, t.binding())),
            )
            .map(|(binding, resource)| wgpu::BindGroupEntry { binding, resource })
            .collect();
        let bind_group = self
            .inner
            .device
            .create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(spec.entry),
                layout: &cached.layout,
                entries: &entries,
            });
        self.with_encoder(|encoder| {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(spec.entry),
                timestamp_writes: None,
            });
            pass.set_pipeline(&cached.pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups(x, y, 1);
        });
        if let Ok(mut recorder) = self.inner.recorder.lock() {
            recorder.stats.dispatches += 1;
        }
        Ok(())
    }

    /// Splits a workgroup count into an (x, y) grid within the per-dimension limit.
    fn workgroup_grid(&self, op: &'static str, workgroups: u64) -> Result<(u32, u32)> {
        let per_dim = u64::from(self.inner.limits.max_compute_workgroups_per_dimension);
        let workgroups = workgroups.max(1);
        if workgroups > per_dim * per_dim {
            return Err(Error::Limit {
                op,
                limit: "max_compute_workgroups_per_dimension (squared)",
                asked: workgroups,
                allowed: per_dim * per_dim,
            });
        }
        let x = workgroups.min(per_dim);
        let y = workgroups.div_ceil(x);
        Ok((x as u32, y as u32))
    }

    /// A uniform buffer holding `params` (padded to 16 bytes), shared by every dispatch with the
    /// same parameters.
    fn uniform_block(&self, params: &[u32]) -> wgpu::Buffer {
        let mut padded = params.to_vec();
        padded.resize(params.len().div_ceil(4).max(1) * 4, 0);
        let mut recorder = self
            .inner
            .recorder
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(found) = recorder.uniforms.get(&padded) {
            return found.clone();
        }
        // Parameters that change every step (a cosine learning rate) must not grow the cache
        // without bound; recorded bind groups keep their own buffers alive.
        if recorder.uniforms.len() >= MAX_CACHED_UNIFORMS {
            recorder.uniforms.clear();
        }
        let buffer = self.inner.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("hetconv params"),
            size: (padded.len() * 4) as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.inner
            .queue
            .write_buffer(&buffer, 0, bytemuck::cast_slice(&padded));
        recorder.uniforms.insert(padded, buffer.clone());
        buffer
    }
}

impl Context {
    /// Submits what was recorded and waits until the GPU has finished it (native only; for
    /// benchmarks and tests: a training step never needs it).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn synchronize(&self) -> Result<()> {
        self.flush()?;
        self.inner
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu {
                op: "synchronize",
                message: e.to_string(),
            })?;
        Ok(())
    }
}
