//! Recording: every op appends its dispatches to one open command encoder; `flush` submits it.
//! A training step is therefore one submission unless the caller reads something back.

use std::collections::HashMap;
use std::sync::Arc;

use super::context::Context;
use super::pipelines::KernelSpec;
use super::profile::Profile;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Uniform blocks kept for reuse before the cache starts over.
const MAX_CACHED_UNIFORMS: usize = 4096;
/// Bind groups kept for reuse before the cache starts over.
const MAX_CACHED_BIND_GROUPS: usize = 8192;

/// The open encoder and the counters the benchmarks print.
#[derive(Default)]
pub(crate) struct Recorder {
    /// The compute pass open on `encoder`: consecutive dispatches share it (each dispatch is
    /// still its own synchronization scope); a copy or clear ends it. Declared before `encoder`
    /// so that it is dropped first.
    pub(super) pass: Option<wgpu::ComputePass<'static>>,
    encoder: Option<wgpu::CommandEncoder>,
    /// Uniform parameter blocks, cached by content: shapes repeat every step.
    uniforms: HashMap<Vec<u8>, wgpu::Buffer>,
    /// Bind groups, cached by what they bind: the pool hands a repeated step of fixed shapes
    /// the buffers it had before, so from its second run on a step builds no bind group.
    bind_groups: HashMap<BindGroupKey, wgpu::BindGroup>,
    /// Timestamp queries around each dispatch, while a profile is on.
    pub(super) profile: Option<Profile>,
    /// The layer whose dispatches are being recorded (profiles group kernel times by it).
    layer: Option<Arc<str>>,
    /// Whether `encoder` is the application's (given to `record_into`): hetconv must not
    /// submit it.
    foreign: bool,
    stats: RecordStats,
}

/// What a bind group binds: the layout, the uniform block and each buffer range.
#[derive(Hash, PartialEq, Eq)]
struct BindGroupKey {
    layout: wgpu::BindGroupLayout,
    uniform: wgpu::Buffer,
    buffers: Vec<(wgpu::Buffer, u64, u64)>,
}

impl Recorder {
    /// Forgets the cached bind groups that bind any of `buffers` (which the pool dropped), so
    /// that the buffers' memory is freed.
    fn forget_buffers(&mut self, buffers: &[wgpu::Buffer]) {
        self.bind_groups
            .retain(|key, _| !key.buffers.iter().any(|(b, _, _)| buffers.contains(b)));
    }

    /// The open encoder, created (and the pool told to park released buffers) if needed.
    fn encoder(&mut self, ctx: &Context) -> &mut wgpu::CommandEncoder {
        self.encoder.get_or_insert_with(|| Self::new_encoder(ctx))
    }

    fn new_encoder(ctx: &Context) -> wgpu::CommandEncoder {
        super::lock(&ctx.inner.pool).recording = true;
        ctx.inner
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("hetconv step"),
            })
    }

    /// Records one dispatch in a compute pass of its own, with timestamps around it.
    fn timed_dispatch(
        &mut self,
        ctx: &Context,
        kernel: (Option<Arc<str>>, String),
        pipeline: &wgpu::ComputePipeline,
        bind_group: &wgpu::BindGroup,
        (x, y): (u32, u32),
    ) {
        self.pass = None;
        let encoder = self.encoder.get_or_insert_with(|| Self::new_encoder(ctx));
        let writes = self.profile.as_mut().and_then(|p| p.next_writes(kernel));
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("hetconv timed dispatch"),
            timestamp_writes: writes,
        });
        pass.set_pipeline(pipeline);
        pass.set_bind_group(0, bind_group, &[]);
        pass.dispatch_workgroups(x, y, 1);
    }

    /// The open compute pass, begun if needed.
    fn pass(&mut self, ctx: &Context) -> &mut wgpu::ComputePass<'static> {
        if self.pass.is_none() {
            let pass = self
                .encoder(ctx)
                .begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("hetconv dispatches"),
                    timestamp_writes: None,
                })
                .forget_lifetime();
            self.pass = Some(pass);
        }
        self.pass
            .as_mut()
            .expect("a compute pass was opened just above")
    }
}

/// How much work was recorded and submitted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordStats {
    /// Compute dispatches recorded.
    pub dispatches: u64,
    /// Queue submissions.
    pub submissions: u64,
    /// Bind groups created (a repeated step of fixed shapes reuses its own).
    pub bind_groups_created: u64,
}

impl Context {
    /// Runs `f` on the open command encoder (creating it if needed), after ending the open
    /// compute pass: copies and clears are recorded between passes.
    pub(crate) fn with_encoder<R>(&self, f: impl FnOnce(&mut wgpu::CommandEncoder) -> R) -> R {
        let mut recorder = self.recorder();
        recorder.pass = None;
        f(recorder.encoder(self))
    }

    /// The recorder, locked (a poisoned lock is taken over, see [`super::lock`]).
    pub(crate) fn recorder(&self) -> std::sync::MutexGuard<'_, Recorder> {
        super::lock(&self.inner.recorder)
    }

    /// Whether commands are recorded but not yet submitted.
    pub fn is_recording(&self) -> bool {
        self.recorder().encoder.is_some()
    }

    /// Submits everything recorded so far as one command buffer. Refused while hetconv records
    /// into the application's encoder ([`Context::record_into`]): a read-back or a flush then
    /// has to wait for [`Context::take_encoder`] and the application's submission.
    pub fn flush(&self) -> Result<()> {
        if self.recorder().foreign {
            return Err(Error::InvalidArgument(
                "hetconv is recording into the application's encoder (record_into): take it back                  with take_encoder and submit it before reading results or flushing"
                    .into(),
            ));
        }
        let submitted = match self.take_recording() {
            Some(encoder) => {
                self.inner.queue.submit(Some(encoder.finish()));
                true
            }
            None => false,
        };
        self.after_submission(submitted)
    }

    /// Whether hetconv is recording into the application's encoder (between
    /// [`Context::record_into`] and [`Context::take_encoder`]); the tuner does not time
    /// kernels then (timing submits).
    pub fn records_into_application_encoder(&self) -> bool {
        self.recorder().foreign
    }

    /// Ends the recording and hands its command buffer back instead of submitting it, so that
    /// an application submits hetconv's work with its own frame in one submission
    /// (`queue.submit([its_commands, hetconv_commands])`). None: nothing was recorded.
    ///
    /// Submit it before hetconv records anything else (the next op, a read-back or a flush).
    /// The buffers this recording released stay out of the pool until hetconv's next
    /// submission, so that no upload reaches them before the handed-back work has run.
    pub fn finish(&self) -> Result<Option<wgpu::CommandBuffer>> {
        Ok(self.take_encoder()?.map(wgpu::CommandEncoder::finish))
    }

    /// Records hetconv's work from now on into the application's `encoder` (after what the
    /// application recorded in it), until [`Context::take_encoder`] hands it back: the
    /// application's work and hetconv's in one encoder and one submission. Refused while
    /// hetconv has work of its own recorded (flush or finish it first).
    pub fn record_into(&self, encoder: wgpu::CommandEncoder) -> Result<()> {
        let mut recorder = self.recorder();
        if recorder.encoder.is_some() {
            return Err(Error::InvalidArgument(
                "record_into: hetconv has recorded work of its own; flush or finish it first"
                    .into(),
            ));
        }
        super::lock(&self.inner.pool).recording = true;
        recorder.encoder = Some(encoder);
        recorder.foreign = true;
        Ok(())
    }

    /// Hands back the encoder given to [`Context::record_into`], with hetconv's work recorded
    /// in it (or hetconv's own open encoder, if it was given none). Submit it before hetconv
    /// records anything else, as with [`Context::finish`]. The buffers the recording released
    /// stay out of the pool until hetconv's next submission, so no upload can reach them before
    /// the handed-back work has run.
    pub fn take_encoder(&self) -> Result<Option<wgpu::CommandEncoder>> {
        let encoder = self.take_recording();
        self.recorder().foreign = false;
        let errors = self.take_uncaptured_errors();
        if errors.is_empty() {
            Ok(encoder)
        } else {
            Err(Error::Gpu {
                op: "record",
                message: errors.join("; "),
                source: None,
            })
        }
    }

    /// Drops every buffer the pool holds free, and the cached bind groups and uniform blocks
    /// (an application can call it after inference at a size it will not see again; the pool
    /// also drops sizes unused for [`crate::gpu::KEEP_SUBMISSIONS`] submissions on its own).
    pub fn trim(&self) {
        let dropped = super::lock(&self.inner.pool).drop_free();
        let mut recorder = self.recorder();
        recorder.forget_buffers(&dropped);
        recorder.uniforms.clear();
        recorder.bind_groups.clear();
    }

    /// Bytes of the buffers the pool holds for reuse (free, or waiting for a submission).
    pub fn pooled_bytes(&self) -> u64 {
        super::lock(&self.inner.pool).held_bytes()
    }

    /// Ends the open pass and takes the encoder (its profile's timestamps resolved), counted
    /// as a submission.
    fn take_recording(&self) -> Option<wgpu::CommandEncoder> {
        let mut recorder = self.recorder();
        recorder.pass = None;
        let mut encoder = recorder.encoder.take();
        if let (Some(profile), Some(encoder)) = (recorder.profile.as_mut(), encoder.as_mut()) {
            profile.resolve(&self.inner.device, encoder);
        }
        if encoder.is_some() {
            recorder.stats.submissions += 1;
        }
        encoder
    }

    /// Hands the buffers released while recording back to the pool (dropping sizes no longer
    /// used, with the bind groups that bind them, when something was `submitted`) and reports
    /// wgpu's errors.
    fn after_submission(&self, submitted: bool) -> Result<()> {
        let dropped = super::lock(&self.inner.pool).release_parked(submitted);
        if !dropped.is_empty() {
            self.recorder().forget_buffers(&dropped);
        }
        let errors = self.take_uncaptured_errors();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Gpu {
                op: "submit",
                message: errors.join("; "),
                source: None,
            })
        }
    }

    /// Takes the profile in progress out of the recorder (after a flush, so that its recorded
    /// timestamps are resolved), for work that must not be profiled; see [`Self::resume_profile`].
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn pause_profile(&self) -> Result<Option<Profile>> {
        self.flush()?;
        Ok(self.recorder().profile.take())
    }

    /// Puts back what [`Self::pause_profile`] took.
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn resume_profile(&self, profile: Option<Profile>) {
        self.recorder().profile = profile;
    }

    /// Names the layer whose dispatches are recorded from now on (`None`: no layer); a profile
    /// groups kernel times by it. Returns the name it replaces. [`crate::autograd::Tape`]
    /// restores each op's layer when it records the op's backward pass.
    pub fn set_layer(&self, layer: Option<Arc<str>>) -> Option<Arc<str>> {
        std::mem::replace(&mut self.recorder().layer, layer)
    }

    /// Runs `f`, which may name layers with [`Context::set_layer`], and then restores the layer
    /// that was set before (a network's forward pass names its blocks this way, inside whatever
    /// layer its caller named).
    pub fn in_layers<T>(&self, f: impl FnOnce() -> T) -> T {
        let outer = self.layer();
        let out = f();
        self.set_layer(outer);
        out
    }

    /// The layer set by [`Context::set_layer`].
    pub fn layer(&self) -> Option<Arc<str>> {
        self.recorder().layer.clone()
    }

    /// Dispatch and submission counts so far.
    pub fn record_stats(&self) -> RecordStats {
        self.recorder().stats
    }

    /// Records one dispatch of `spec` over `threads` invocations (rounded up to whole
    /// workgroups; the shader bounds-checks against its own parameters). Workgroups are laid out
    /// in two dimensions when one would exceed the device's per-dimension limit; shaders
    /// linearise `workgroup_id.x + workgroup_id.y * num_workgroups.x`.
    pub(crate) fn dispatch<P: bytemuck::Pod>(
        &self,
        spec: &KernelSpec,
        constants: &[(&'static str, f64)],
        params: &P,
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
    pub(crate) fn dispatch_workgroups<P: bytemuck::Pod>(
        &self,
        spec: &KernelSpec,
        workgroup_size: u32,
        constants: &[(&'static str, f64)],
        params: &P,
        buffers: &[&Tensor],
        workgroups: u64,
    ) -> Result<()> {
        self.dispatch_labelled(
            &|| format!("{}::{}", spec.shader.name, spec.entry),
            spec,
            workgroup_size,
            constants,
            params,
            buffers,
            workgroups,
        )
    }

    /// Like [`Context::dispatch_workgroups`], named `label()` in profiles (the GEMM core adds
    /// its tile and role: `gemm_core::gemm[64x64/4x4/k16 role 0]`); the name is built only
    /// while profiling or for an error, never on the plain dispatch path. A kernel whose
    /// module needs a feature the device lacks is refused with [`Error::Unsupported`].
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn dispatch_labelled<P: bytemuck::Pod>(
        &self,
        label: &dyn Fn() -> String,
        spec: &KernelSpec,
        workgroup_size: u32,
        constants: &[(&'static str, f64)],
        params: &P,
        buffers: &[&Tensor],
        workgroups: u64,
    ) -> Result<()> {
        self.dispatch_bytes(
            label,
            spec,
            workgroup_size,
            constants,
            bytemuck::bytes_of(params),
            buffers,
            workgroups,
        )
    }

    /// [`Context::dispatch_labelled`] with the parameter block as bytes.
    #[allow(clippy::too_many_arguments)]
    fn dispatch_bytes(
        &self,
        label: &dyn Fn() -> String,
        spec: &KernelSpec,
        workgroup_size: u32,
        constants: &[(&'static str, f64)],
        params: &[u8],
        buffers: &[&Tensor],
        workgroups: u64,
    ) -> Result<()> {
        self.check_dispatch(label, spec, params, buffers)?;
        let (x, y) = self.workgroup_grid(spec.entry, workgroups)?;
        let cached = {
            let mut cache = super::lock(&self.inner.pipelines);
            #[cfg(not(target_arch = "wasm32"))]
            if cache.collects(spec, workgroup_size, constants) {
                // Only the pipeline is wanted (`Context::prebuild_pipelines`).
                return Ok(());
            }
            cache.get(&self.inner.device, spec, workgroup_size, constants)?
        };
        let mut recorder = self.recorder();
        let uniform = recorder.uniform_block(self, params);
        let bind_group = self.bind_group(&mut recorder, spec, &cached.layout, uniform, buffers);
        if recorder.profile.is_some() {
            let kernel = (recorder.layer.clone(), label());
            recorder.timed_dispatch(self, kernel, &cached.pipeline, &bind_group, (x, y));
        } else {
            let pass = recorder.pass(self);
            pass.set_pipeline(&cached.pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups(x, y, 1);
        }
        recorder.stats.dispatches += 1;
        Ok(())
    }

    /// Refuses a dispatch the kernel cannot take: a parameter block of another size, a
    /// feature the device lacks, a tensor of another context, a wrong number of buffers, or a
    /// buffer of the wrong dtype.
    fn check_dispatch(
        &self,
        label: &dyn Fn() -> String,
        spec: &KernelSpec,
        params: &[u8],
        buffers: &[&Tensor],
    ) -> Result<()> {
        if params.len() != spec.params_size {
            return Err(Error::Gpu {
                op: spec.entry,
                message: format!(
                    "{}: a parameter block of {} bytes, the kernel's takes {}",
                    label(),
                    params.len(),
                    spec.params_size
                ),
                source: None,
            });
        }
        let missing = spec.shader.needs - self.features();
        if !missing.is_empty() {
            return Err(Error::Unsupported {
                op: spec.entry,
                feature: format!(
                    "{} (needed by {})",
                    super::context::feature_names(missing),
                    label()
                ),
                adapter: self.adapter_info().name.clone(),
            });
        }
        // The root of every kernel's same-device rule: a tensor of another context would reach
        // wgpu's validation (and its default handler's panic) otherwise.
        if let Some(i) = buffers
            .iter()
            .position(|t| !Arc::ptr_eq(&t.context().inner, &self.inner))
        {
            return Err(Error::shape(
                spec.entry,
                format!(
                    "{}::{}: tensor {i} lives on a different GPU context than the others",
                    spec.shader.name, spec.entry
                ),
            ));
        }
        if buffers.len() != spec.bindings.len() {
            return Err(Error::Gpu {
                op: spec.entry,
                message: format!(
                    "{} buffers bound, kernel expects {}",
                    buffers.len(),
                    spec.bindings.len()
                ),
                source: None,
            });
        }
        // A tensor of the wrong dtype would be read as garbage: refused (the op's own check
        // normally names it first).
        if let Some((i, t)) = buffers
            .iter()
            .enumerate()
            .find(|(i, t)| t.dtype() != spec.dtype_of(*i))
        {
            return Err(Error::shape(
                spec.entry,
                format!(
                    "{}: tensor {i} ({t:?}) is {}, the kernel reads {}",
                    label(),
                    t.dtype(),
                    spec.dtype_of(i)
                ),
            ));
        }
        Ok(())
    }

    /// The bind group of `buffers` behind the uniform block at `uniform`, from the recorder's
    /// cache (created and cached on a miss; the cache is emptied when full).
    fn bind_group(
        &self,
        recorder: &mut Recorder,
        spec: &KernelSpec,
        layout: &wgpu::BindGroupLayout,
        uniform: wgpu::Buffer,
        buffers: &[&Tensor],
    ) -> wgpu::BindGroup {
        let key = BindGroupKey {
            layout: layout.clone(),
            uniform,
            buffers: buffers
                .iter()
                .map(|t| (t.buffer().clone(), t.byte_offset(), t.kernel_binding_len()))
                .collect(),
        };
        match recorder.bind_groups.get(&key) {
            Some(found) => found.clone(),
            None => {
                let bind_group = self.create_bind_group(spec, &key);
                recorder.stats.bind_groups_created += 1;
                if recorder.bind_groups.len() >= MAX_CACHED_BIND_GROUPS {
                    recorder.bind_groups.clear();
                }
                recorder.bind_groups.insert(key, bind_group.clone());
                bind_group
            }
        }
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

    /// Binds the uniform block at slot 0 and the tensors at the kernel's slots.
    fn create_bind_group(&self, spec: &KernelSpec, key: &BindGroupKey) -> wgpu::BindGroup {
        let entries: Vec<wgpu::BindGroupEntry> =
            std::iter::once((0, key.uniform.as_entire_binding()))
                .chain(spec.bindings.iter().zip(&key.buffers).map(
                    |(&(slot, _), (buffer, offset, size))| {
                        let range = wgpu::BufferBinding {
                            buffer,
                            offset: *offset,
                            size: std::num::NonZeroU64::new(*size),
                        };
                        (slot, wgpu::BindingResource::Buffer(range))
                    },
                ))
                .map(|(binding, resource)| wgpu::BindGroupEntry { binding, resource })
                .collect();
        self.inner
            .device
            .create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(spec.entry),
                layout: &key.layout,
                entries: &entries,
            })
    }
}

impl Recorder {
    /// A uniform buffer holding `params` (padded to 16 bytes), shared by every dispatch with the
    /// same parameters.
    fn uniform_block(&mut self, ctx: &Context, params: &[u8]) -> wgpu::Buffer {
        let mut padded = params.to_vec();
        padded.resize(params.len().div_ceil(16).max(1) * 16, 0);
        if let Some(found) = self.uniforms.get(&padded) {
            return found.clone();
        }
        // Parameters that change every step (a cosine learning rate) must not grow the cache
        // without bound; recorded bind groups keep their own buffers alive.
        if self.uniforms.len() >= MAX_CACHED_UNIFORMS {
            self.uniforms.clear();
        }
        let buffer = ctx.inner.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("hetconv params"),
            size: padded.len() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        ctx.inner.queue.write_buffer(&buffer, 0, &padded);
        self.uniforms.insert(padded, buffer.clone());
        buffer
    }
}

impl Context {
    /// Maps `buffer` (MAP_READ, its copy already submitted), waits for it and returns its
    /// contents as `T`s.
    pub(crate) async fn read_mapped<T: bytemuck::Pod>(
        &self,
        buffer: &wgpu::Buffer,
    ) -> Result<Vec<T>> {
        let (sender, receiver) = futures::channel::oneshot::channel();
        buffer.map_async(wgpu::MapMode::Read, .., move |result| {
            let _ = sender.send(result);
        });
        #[cfg(not(target_arch = "wasm32"))]
        self.inner
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Readback(Box::new(e)))?;
        receiver
            .await
            .map_err(|e| Error::Readback(Box::new(e)))?
            .map_err(|e| Error::Readback(Box::new(e)))?;
        let data = {
            let view = buffer
                .get_mapped_range(..)
                .map_err(|e| Error::Readback(Box::new(e)))?;
            bytemuck::cast_slice::<u8, T>(&view).to_vec()
        };
        buffer.unmap();
        Ok(data)
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
                source: Some(Box::new(e)),
            })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::{Context, Tensor};

    /// After a panic poisoned the pool's lock, a buffer released while its work is still only
    /// recorded is parked, not handed to the next upload: the recorded ReLU still reads its own
    /// input, not the later upload that would otherwise land in the same buffer first.
    #[test]
    fn a_poisoned_pool_lock_still_parks_released_buffers() {
        let ctx = Context::new_blocking().expect("a GPU adapter (lavapipe in CI)");
        let poisoner = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let _held = ctx.inner.pool.lock();
                    panic!("poisoning the pool lock on purpose");
                })
                .join()
        });
        assert!(poisoner.is_err() && ctx.inner.pool.is_poisoned());

        let x = Tensor::from_slice(&ctx, &[4], &[-1.0, 2.0, -3.0, 4.0]).unwrap();
        let y = crate::kernels::elementwise::relu(&x).unwrap();
        assert!(ctx.is_recording());
        drop(x);
        let later = Tensor::from_slice(&ctx, &[4], &[9.0, 9.0, 9.0, 9.0]).unwrap();
        assert_eq!(y.to_vec().unwrap(), [0.0, 2.0, 0.0, 4.0]);
        assert_eq!(later.to_vec().unwrap(), [9.0; 4]);
    }
}
