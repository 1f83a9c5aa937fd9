//! GPU time per kernel: while a profile is on, every dispatch gets a compute pass of its own
//! with timestamp queries at its start and end (wgpu's `TIMESTAMP_QUERY` feature). The queries
//! are resolved into a readback buffer at each submission and summed per kernel (shader, entry
//! point and variant: `conv::forward`, `gemm_core::gemm[64x64/4x4/k16 role 0]`) when the profile
//! ends.

use super::context::Context;
use crate::error::{Error, Result};

/// Timestamps one query set holds (wgpu's maximum); a profile longer than half this many
/// dispatches per submission times the first ones and counts the rest as untimed.
const QUERIES_PER_SET: u32 = wgpu::QUERY_SET_MAX_QUERIES;

/// GPU time of one kernel in one layer over a profile.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct KernelTime {
    /// The layer it ran for ([`Context::set_layer`]; `features.3`), if one was set.
    pub layer: Option<String>,
    /// `shader::entry`, with the tile shape and role for the GEMM core.
    pub kernel: String,
    /// Dispatches of it that were timed.
    pub dispatches: u64,
    /// Their summed GPU time in milliseconds.
    pub ms: f64,
}

/// The layer and kernel of one timed dispatch.
pub(crate) type Timed = (Option<std::sync::Arc<str>>, String);

/// A profile in progress (held by the recorder).
pub(crate) struct Profile {
    query_set: wgpu::QuerySet,
    /// Layer and kernel of each timed dispatch of the open encoder, in query-pair order.
    pending: Vec<Timed>,
    /// Resolved timestamps per submission, with the layer and kernel of each pair.
    submitted: Vec<(wgpu::Buffer, Vec<Timed>)>,
    /// Dispatches that found the query set full.
    untimed: u64,
}

impl Profile {
    /// The timestamp writes for the next dispatch's pass, or None when the set is full.
    pub(crate) fn next_writes(
        &mut self,
        kernel: Timed,
    ) -> Option<wgpu::ComputePassTimestampWrites<'_>> {
        let index = u32::try_from(self.pending.len() * 2).ok()?;
        if index + 2 > QUERIES_PER_SET {
            self.untimed += 1;
            return None;
        }
        self.pending.push(kernel);
        Some(wgpu::ComputePassTimestampWrites {
            query_set: &self.query_set,
            beginning_of_pass_write_index: Some(index),
            end_of_pass_write_index: Some(index + 1),
        })
    }

    /// Records, at the end of `encoder`, the copy of this submission's timestamps into a
    /// buffer that can be read back.
    pub(crate) fn resolve(&mut self, device: &wgpu::Device, encoder: &mut wgpu::CommandEncoder) {
        if self.pending.is_empty() {
            return;
        }
        let count = (self.pending.len() * 2) as u32;
        let bytes = u64::from(count) * 8;
        let resolved = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("hetconv timestamps"),
            size: bytes,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let readback = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("hetconv timestamps readback"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        encoder.resolve_query_set(&self.query_set, 0..count, &resolved, 0);
        encoder.copy_buffer_to_buffer(&resolved, 0, &readback, 0, bytes);
        self.submitted
            .push((readback, std::mem::take(&mut self.pending)));
    }
}

impl Context {
    /// Whether this device can time kernels (it was opened with `TIMESTAMP_QUERY`; `Context::new`
    /// asks for it wherever the adapter offers it).
    pub fn can_profile(&self) -> bool {
        self.inner
            .device
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    /// Times every dispatch recorded from now until [`Context::end_profile`]. Each dispatch
    /// then runs in a compute pass of its own, so use it to see where the time goes, not to time
    /// the whole step.
    pub fn begin_profile(&self) -> Result<()> {
        if !self.can_profile() {
            return Err(Error::Gpu {
                op: "profile",
                message: format!(
                    "the device on {} was opened without TIMESTAMP_QUERY",
                    self.inner.info.name
                ),
                source: None,
            });
        }
        let query_set = self
            .inner
            .device
            .create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("hetconv profile"),
                ty: wgpu::QueryType::Timestamp,
                count: QUERIES_PER_SET,
            });
        let mut recorder = self.recorder();
        recorder.pass = None;
        recorder.profile = Some(Profile {
            query_set,
            pending: Vec::new(),
            submitted: Vec::new(),
            untimed: 0,
        });
        Ok(())
    }

    /// Ends the profile: submits, waits for the GPU and returns the GPU time per layer and kernel
    /// (in order of first dispatch) and how many dispatches went untimed.
    pub async fn end_profile(&self) -> Result<(Vec<KernelTime>, u64)> {
        self.flush()?;
        let Some(profile) = self.recorder().profile.take() else {
            return Err(Error::Gpu {
                op: "profile",
                message: "end_profile without begin_profile".into(),
                source: None,
            });
        };
        let period_ns = f64::from(self.inner.queue.get_timestamp_period());
        let mut times: Vec<KernelTime> = Vec::new();
        for (buffer, kernels) in &profile.submitted {
            let ticks: Vec<u64> = self.read_mapped(buffer).await?;
            for ((layer, kernel), pair) in kernels.iter().zip(ticks.chunks_exact(2)) {
                let ms = pair[1].saturating_sub(pair[0]) as f64 * period_ns / 1e6;
                let layer = layer.as_deref().map(str::to_string);
                match times
                    .iter_mut()
                    .find(|t| t.kernel == *kernel && t.layer == layer)
                {
                    Some(t) => {
                        t.dispatches += 1;
                        t.ms += ms;
                    }
                    None => times.push(KernelTime {
                        layer,
                        kernel: kernel.clone(),
                        dispatches: 1,
                        ms,
                    }),
                }
            }
        }
        Ok((times, profile.untimed))
    }
}
