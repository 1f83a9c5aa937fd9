//! The device context: external devices, limits, shape errors, recording.

mod common;

use common::*;
use hetconv::Model;
use hetconv::kernels::gemm::{self, Layout};
use hetconv::nn::{Vgg16, VggConfig};
use hetconv::{Context, Error, Tensor};

/// The adapter `Context::new` would pick, opened by hand as an application would.
fn default_adapter() -> wgpu::Adapter {
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))
        .expect("an adapter")
}

/// A device with default features and limits, as an application might open it.
fn plain_device(adapter: &wgpu::Adapter) -> (wgpu::Device, wgpu::Queue) {
    pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor::default()))
        .expect("a device")
}

/// A game or renderer owns its device; hetconv runs a kernel on it.
#[test]
fn runs_on_an_externally_created_device() {
    let adapter = default_adapter();
    let (device, queue) = plain_device(&adapter);
    let ctx = Context::from_device(device.clone(), queue);
    assert_eq!(ctx.adapter_info().name, adapter.get_info().name);
    let a = upload(&ctx, &[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let b = upload(&ctx, &[3, 1], &[1.0, 0.0, -1.0]);
    let c = gemm::matmul(&a, Layout::AsIs, &b, Layout::AsIs, None).unwrap();
    assert_eq!(c.to_vec().unwrap(), vec![-2.0, -2.0]);
    // The application's device is the very one hetconv used.
    assert!(ctx.device() == &device);
}

/// An application's device opened with lower limits than the WebGPU defaults (4 storage
/// buffers per stage): a kernel that binds more is an error naming the kernel and the limit,
/// never a call to the device's error handler (wgpu's default one panics, and from_device
/// keeps it); a kernel within the limits still runs.
#[test]
fn a_device_with_lower_limits_gets_errors_not_panics() {
    let adapter = default_adapter();
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        required_limits: wgpu::Limits::downlevel_defaults(),
        ..Default::default()
    }))
    .expect("a device");
    assert_eq!(device.limits().max_storage_buffers_per_shader_stage, 4);
    let ctx = Context::from_device(device, queue);
    ctx.set_tune_mode(hetconv::tune::TuneMode::Off);
    let a = upload(&ctx, &[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let b = upload(&ctx, &[3, 1], &[1.0, 0.0, -1.0]);
    let c = gemm::matmul(&a, Layout::AsIs, &b, Layout::AsIs, None).unwrap();
    assert_eq!(c.to_vec().unwrap(), vec![-2.0, -2.0]);
    let model = Vgg16::new(&ctx, tiny_vgg(2, hetconv::nn::ConvMode::Fused), 4).unwrap();
    let (x, _, _, _) = image_batch(&ctx, 2, 8);
    let err = model
        .predict(&x)
        .expect_err("a conv kernel binds more than 4 storage buffers")
        .to_string();
    assert!(
        err.contains("max_storage_buffers_per_shader_stage") && err.contains("allows 4"),
        "{err}"
    );
}

/// The application's "frame": values exact in f32, easy to recompute.
fn frame_value(i: usize) -> f32 {
    ((i * 37) % 23) as f32 * 0.0625 - 0.5
}

/// Maps an application-owned buffer and reads it as f32.
fn read_app_buffer(device: &wgpu::Device, buffer: &wgpu::Buffer) -> Vec<f32> {
    buffer.map_async(wgpu::MapMode::Read, .., |r| r.expect("map"));
    device
        .poll(wgpu::PollType::wait_indefinitely())
        .expect("poll");
    let values = bytemuck::cast_slice::<u8, f32>(&buffer.get_mapped_range(..).unwrap()).to_vec();
    buffer.unmap();
    values
}

/// A frame in the application's own buffer goes through a network on the shared device, and
/// the logits land in another buffer of the application: the same logits as from the same frame
/// uploaded from the CPU, bit for bit. The application fills its frame in a submission of its own
/// made after hetconv recorded the copy but before hetconv's flush: the copy sees the frame.
/// (`examples/embed_in_wgpu_app.rs` draws the frame with a shader instead.)
#[test]
fn an_application_buffer_goes_through_a_model_and_back() {
    let adapter = default_adapter();
    let (device, queue) = plain_device(&adapter);
    const FRAME_OFFSET: u64 = 64;
    let pixels = 32 * 32;
    let app_buffer = |label, size, usage| {
        device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage,
            mapped_at_creation: false,
        })
    };
    let frame_bytes = FRAME_OFFSET + 4 * pixels as u64;
    let frame = app_buffer(
        "app frame",
        frame_bytes,
        wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
    );

    let ctx = Context::from_device(device.clone(), queue.clone());
    let mut config = VggConfig::paper(4).with_width_mult(0.0625);
    config.in_channels = 1;
    let model = Vgg16::new(&ctx, config, 7).unwrap();
    let x = Tensor::from_buffer(&ctx, &[1, 1, 32, 32], &frame, FRAME_OFFSET).unwrap();
    let logits = model.predict(&x).unwrap();
    assert!(ctx.is_recording(), "nothing of hetconv's is submitted yet");

    // The application's own submission: staging -> frame.
    let staging = app_buffer(
        "app staging",
        frame_bytes,
        wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
    );
    let whole: Vec<f32> = (0..frame_bytes as usize / 4).map(frame_value).collect();
    queue.write_buffer(&staging, 0, bytemuck::cast_slice(&whole));
    let mut encoder = device.create_command_encoder(&Default::default());
    encoder.copy_buffer_to_buffer(&staging, 0, &frame, 0, frame_bytes);
    queue.submit(Some(encoder.finish()));

    const OUT_OFFSET: u64 = 8;
    let out = app_buffer(
        "app logits",
        OUT_OFFSET + 4 * 10,
        wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
    );
    logits.copy_into_buffer(&out, OUT_OFFSET).unwrap();
    ctx.flush().unwrap();
    let got = read_app_buffer(&device, &out)[2..].to_vec();

    // The copy saw the application's frame (not the zeros the buffer was created with), from
    // FRAME_OFFSET on.
    let values: Vec<f32> = (FRAME_OFFSET as usize / 4..FRAME_OFFSET as usize / 4 + pixels)
        .map(frame_value)
        .collect();
    let from_cpu = model
        .predict(&Tensor::from_slice(&ctx, &[1, 1, 32, 32], &values).unwrap())
        .unwrap()
        .to_vec()
        .unwrap();
    assert_eq!(got, from_cpu);
    let shifted: Vec<f32> = (0..pixels).map(frame_value).collect();
    let from_shifted = model
        .predict(&Tensor::from_slice(&ctx, &[1, 1, 32, 32], &shifted).unwrap())
        .unwrap()
        .to_vec()
        .unwrap();
    assert_ne!(got, from_shifted, "the offset must matter");
}

#[test]
fn unusable_application_buffers_are_clear_errors() {
    let adapter = default_adapter();
    let (device, queue) = plain_device(&adapter);
    let ctx = Context::from_device(device.clone(), queue);
    let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let x = Tensor::zeros(&ctx, &[2, 3]).unwrap();
    let buffer = |size, usage| {
        device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size,
            usage,
            mapped_at_creation: false,
        })
    };
    let storage_only = buffer(64, wgpu::BufferUsages::STORAGE);
    let message = x
        .copy_from_buffer(&storage_only, 0)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("copy_from_buffer") && message.contains("COPY_SRC"),
        "{message}"
    );
    let message = x
        .copy_into_buffer(&storage_only, 0)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("copy_into_buffer") && message.contains("COPY_DST"),
        "{message}"
    );
    let both = buffer(
        32,
        wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
    );
    let message = x.copy_from_buffer(&both, 2).unwrap_err().to_string();
    assert!(message.contains("byte offset 2"), "{message}");
    // 24 bytes from offset 12 would end at 36 of 32.
    let message = x.copy_into_buffer(&both, 12).unwrap_err().to_string();
    assert!(
        message.contains("[2, 3]") && message.contains("12..36") && message.contains("has 32"),
        "{message}"
    );
    let message = x.copy_into_buffer(x.buffer(), 0).unwrap_err().to_string();
    assert!(message.contains("tensor's own buffer"), "{message}");
    // Exactly fitting is fine, and nothing invalid reached the device.
    x.copy_into_buffer(&both, 8).unwrap();
    ctx.flush().unwrap();
    let error = pollster::block_on(scope.pop());
    assert!(error.is_none(), "{error:?}");
}

#[test]
fn a_tensor_over_the_binding_limit_is_a_limit_error() {
    let ctx = ctx();
    let allowed = ctx.max_binding_bytes();
    let elements = (allowed / 4 + 1) as usize;
    let err = Tensor::zeros(&ctx, &[elements]).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("max_storage_buffer_binding_size") && message.contains("--max-limits"),
        "{message}"
    );
    match err {
        Error::TensorLimit {
            shape,
            asked,
            allowed: a,
        } => {
            assert_eq!(shape, [elements]);
            assert_eq!(asked, elements as u64 * 4);
            assert_eq!(a, allowed);
        }
        other => panic!("expected a limit error, got {other:?}"),
    }
}

#[test]
fn bad_shapes_are_errors_that_name_the_op() {
    let ctx = ctx();
    let err = Tensor::from_slice(&ctx, &[2, 2], &[1.0; 3]).unwrap_err();
    assert!(err.to_string().contains("[2, 2]"), "{err}");
    let err = Tensor::zeros(&ctx, &[3, 0]).unwrap_err();
    assert!(err.to_string().contains("zero-sized"), "{err}");
    let a = Tensor::zeros(&ctx, &[2, 3]).unwrap();
    let b = Tensor::zeros(&ctx, &[4, 2]).unwrap();
    let err = gemm::matmul(&a, Layout::AsIs, &b, Layout::AsIs, None).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("matmul") && text.contains("[2, 3]") && text.contains("[4, 2]"),
        "{text}"
    );
}

#[test]
fn many_ops_are_recorded_into_one_submission() {
    let ctx = ctx();
    let a = upload(&ctx, &[4, 4], &Rng::new(1).vec(16));
    let before = ctx.record_stats();
    let mut x = a.clone();
    for _ in 0..5 {
        x = gemm::matmul(&x, Layout::AsIs, &a, Layout::AsIs, None).unwrap();
    }
    let recorded = ctx.record_stats();
    assert_eq!(recorded.dispatches - before.dispatches, 5);
    assert_eq!(
        recorded.submissions, before.submissions,
        "nothing is submitted before a readback"
    );
    x.to_vec().unwrap();
    assert_eq!(ctx.record_stats().submissions, before.submissions + 1);
}

#[test]
fn pooled_buffers_are_reused_across_steps() {
    let ctx = ctx();
    let a = upload(&ctx, &[8, 8], &Rng::new(2).vec(64));
    let step = || {
        let y = gemm::matmul(&a, Layout::AsIs, &a, Layout::AsIs, None).unwrap();
        gemm::matmul(&y, Layout::Transposed, &a, Layout::AsIs, None)
            .unwrap()
            .to_vec()
            .unwrap()
    };
    let first = step();
    let created = ctx.buffers_created();
    let bind_groups = ctx.record_stats().bind_groups_created;
    for _ in 0..4 {
        assert_eq!(step(), first, "same inputs, same result");
    }
    assert_eq!(
        ctx.buffers_created(),
        created,
        "a repeated step allocates no new tensor buffer"
    );
    assert_eq!(
        ctx.record_stats().bind_groups_created,
        bind_groups,
        "a repeated step builds no new bind group"
    );
}

#[test]
fn aligned_views_share_storage_and_misaligned_ones_are_refused() {
    let ctx = ctx();
    let flat: Vec<f32> = (0..192).map(|i| i as f32).collect();
    let storage = upload(&ctx, &[192], &flat);
    let align = ctx.limits().min_storage_buffer_offset_alignment as usize / 4;
    let view = storage.view(align, &[2, 2]).unwrap();
    assert_eq!(view.to_vec().unwrap(), flat[align..align + 4].to_vec());
    // A kernel writes only the range of the view it is given.
    let eye = upload(&ctx, &[2, 2], &[1.0, 0.0, 0.0, 1.0]);
    let target = Tensor::zeros(&ctx, &[192]).unwrap();
    let out = target.view(align, &[2, 2]).unwrap();
    gemm::matmul_accumulate(&view, Layout::AsIs, &eye, Layout::AsIs, &out).unwrap();
    let after = target.to_vec().unwrap();
    assert_eq!(after[align..align + 4], flat[align..align + 4]);
    assert!(
        after[..align]
            .iter()
            .chain(&after[align + 4..])
            .all(|&v| v == 0.0)
    );
    let err = storage.view(1, &[2]).unwrap_err().to_string();
    assert!(err.contains("alignment"), "{err}");
    // Out of range, also where offset + size would wrap around.
    for offset in [191, usize::MAX] {
        let err = storage.view(offset, &[2]).unwrap_err().to_string();
        assert!(err.contains("does not fit in [192]"), "{offset}: {err}");
    }
}

#[test]
fn writes_are_ordered_after_recorded_work() {
    let ctx = ctx();
    let a = Tensor::from_slice(&ctx, &[4], &[1.0, 2.0, 3.0, 4.0]).unwrap();
    let z = Tensor::zeros(&ctx, &[4]).unwrap(); // a clear, recorded but not submitted
    z.write(&[9.0; 4]).unwrap();
    a.write(&[5.0, 6.0, 7.0, 8.0]).unwrap();
    assert_eq!(
        z.to_vec().unwrap(),
        vec![9.0; 4],
        "the write comes after the recorded clear"
    );
    assert_eq!(a.to_vec().unwrap(), vec![5.0, 6.0, 7.0, 8.0]);
}

/// A profile times every dispatch, by kernel (shader, entry point, tile shape), without changing what is computed.
#[test]
fn a_profile_times_every_dispatch_by_kernel() {
    let adapter = default_adapter();
    let offered = adapter.features().contains(wgpu::Features::TIMESTAMP_QUERY);
    let ctx = ctx();
    assert_eq!(
        ctx.can_profile(),
        offered,
        "Context::new asks for timestamps where offered"
    );
    if !offered {
        return;
    }
    let a = upload(&ctx, &[4, 4], &Rng::new(3).vec(16));
    let run = || {
        let mut x = a.clone();
        for _ in 0..3 {
            x = gemm::matmul(&x, Layout::AsIs, &a, Layout::AsIs, None).unwrap();
        }
        hetconv::kernels::elementwise::relu(&x).unwrap()
    };
    let plain = run().to_vec().unwrap();
    let before = ctx.record_stats();
    ctx.begin_profile().unwrap();
    let profiled = run();
    let (times, untimed) = pollster::block_on(ctx.end_profile()).unwrap();
    assert_eq!(profiled.to_vec().unwrap(), plain);
    assert_eq!(untimed, 0);
    let counts: Vec<u64> = times.iter().map(|t| t.dispatches).collect();
    assert_eq!(counts, vec![3, 1], "{times:?}");
    let kernels: Vec<&str> = times.iter().map(|t| t.kernel.as_str()).collect();
    assert_eq!(kernels, ["gemm::matmul", "elementwise::relu"]);
    assert_eq!(
        counts.iter().sum::<u64>(),
        ctx.record_stats().dispatches - before.dispatches
    );
    assert!(times.iter().all(|t| t.ms.is_finite() && t.ms >= 0.0));
    assert!(times.iter().map(|t| t.ms).sum::<f64>() > 0.0, "{times:?}");
    // After the profile, dispatches share one pass again and nothing is timed.
    assert!(pollster::block_on(ctx.end_profile()).is_err());
    // The GEMM core is named with its tile shape and role.
    let tile = hetconv::kernels::gemm_core::TileShape::new(32, 32, 4, 4, 16);
    ctx.set_conv_algorithm(hetconv::ConvAlgorithm::Fixed(hetconv::tune::Variant::gemm(
        tile,
    )));
    ctx.begin_profile().unwrap();
    let tiled = run();
    let (times, _) = pollster::block_on(ctx.end_profile()).unwrap();
    assert_close(
        "profiled gemm core",
        &tiled.to_vec().unwrap(),
        &to_f64(&plain),
        F32_KERNEL,
    );
    assert_eq!(times[0].kernel, "gemm_core::gemm[32x32/4x4/k16 role 3]");
}

/// A device opened without timestamps refuses to profile, naming the adapter.
#[test]
fn profiling_without_timestamps_is_a_clear_error() {
    let adapter = default_adapter();
    let (device, queue) = plain_device(&adapter);
    let ctx = Context::from_device(device, queue);
    assert!(!ctx.can_profile());
    let text = ctx.begin_profile().unwrap_err().to_string();
    assert!(
        text.contains("TIMESTAMP_QUERY") && text.contains(&adapter.get_info().name),
        "{text}"
    );
}

/// Every kernel refuses tensors of two contexts with an error naming the kernel, never a wgpu
/// panic: batch norm, the loss, pooling, SGD and the conv family alike (the check sits where
/// every dispatch is recorded), and a buffer copy.
#[test]
fn tensors_of_two_contexts_are_refused_by_every_kernel_family() {
    use hetconv::kernels::{batchnorm, conv, elementwise, loss, pool, sgd};
    let (a, b) = (ctx(), ctx());
    let x = Tensor::zeros(&a, &[2, 4, 4, 4]).unwrap();
    let four_b = Tensor::zeros(&b, &[4]).unwrap();
    let four_a = Tensor::zeros(&a, &[4]).unwrap();
    let errors = [
        batchnorm::forward_train(
            &x,
            &four_b,
            &four_a,
            &four_a,
            &four_a,
            &batchnorm::BatchNormConfig::default(),
            true,
            None,
        )
        .map(drop),
        loss::softmax_cross_entropy(
            &Tensor::zeros(&a, &[2, 3]).unwrap(),
            &Tensor::zeros(&b, &[2]).unwrap(),
        )
        .map(drop),
        pool::max_pool2_backward(&x, &Tensor::zeros(&b, &[2, 4, 2, 2]).unwrap()).map(drop),
        sgd::sgd_step(
            &four_a,
            &four_b,
            &four_a,
            &sgd::SgdStep {
                lr: 0.1,
                momentum: 0.9,
                weight_decay: 0.0,
                nesterov: false,
            },
            None,
        ),
        conv::forward(
            &conv::ConvKind::pointwise(),
            &x,
            &conv::ConvWeights {
                w1: Some(&Tensor::zeros(&b, &[4, 4]).unwrap()),
                ..Default::default()
            },
        )
        .map(drop),
        // ReLU's backward and the other element-wise kernels (ReLU's forward and the channel
        // sums read one tensor: there is nothing to mix).
        elementwise::binary(
            elementwise::BinaryOp::ReluBackward,
            &x,
            &Tensor::zeros(&b, &[2, 4, 4, 4]).unwrap(),
        )
        .map(drop),
        elementwise::axpby(0.5, &four_a, 1.0, &four_b),
        elementwise::channel_affine(&x, &Tensor::zeros(&b, &[2, 4]).unwrap()).map(drop),
        // A plain copy (also how a parameter's first gradient is stored).
        four_a.copy_to(&four_b),
    ];
    for (i, e) in errors.into_iter().enumerate() {
        let text = e.expect_err("mixed contexts must be refused").to_string();
        assert!(text.contains("different GPU context"), "case {i}: {text}");
    }
}

/// An application submits hetconv's work with its own: `finish` hands the recording back as a
/// command buffer (nothing is submitted) and the application submits both in one call, or
/// `record_into` records hetconv's work into the application's encoder; the result is the one
/// `flush` gives.
#[test]
fn the_recording_goes_into_the_applications_submission_or_encoder() {
    let adapter = default_adapter();
    let (device, queue) = plain_device(&adapter);
    let ctx = Context::from_device(device.clone(), queue.clone());
    ctx.set_tune_mode(hetconv::tune::TuneMode::Off);
    assert!(ctx.finish().unwrap().is_none(), "nothing recorded");
    let model = Vgg16::new(&ctx, tiny_vgg(2, hetconv::nn::ConvMode::Fused), 4).unwrap();
    let (x, _, _, _) = image_batch(&ctx, 2, 8);
    let want = model.predict(&x).unwrap().to_vec().unwrap();

    let app_buffer = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("app"),
        size: 16,
        usage: wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut app = device.create_command_encoder(&Default::default());
    app.clear_buffer(&app_buffer, 0, None);
    let before = ctx.record_stats().submissions;
    let logits = model.predict(&x).unwrap();
    let ours = ctx.finish().unwrap().expect("the prediction was recorded");
    assert!(!ctx.is_recording());
    queue.submit([app.finish(), ours]);
    assert_eq!(ctx.record_stats().submissions, before + 1);
    assert_eq!(logits.to_vec().unwrap(), want);

    // Or into the application's own encoder, after its commands: one encoder.
    let mut app = device.create_command_encoder(&Default::default());
    app.clear_buffer(&app_buffer, 0, None);
    ctx.record_into(app).unwrap();
    let logits = model.predict(&x).unwrap();
    // hetconv never submits the application's encoder: a flush (or a read-back) waits.
    assert!(ctx.records_into_application_encoder());
    let err = ctx.flush().unwrap_err().to_string();
    assert!(err.contains("take_encoder"), "{err}");
    assert!(logits.to_vec().is_err());
    let app = ctx
        .take_encoder()
        .unwrap()
        .expect("the application's encoder");
    assert!(!ctx.records_into_application_encoder());
    queue.submit([app.finish()]);
    assert_eq!(logits.to_vec().unwrap(), want);
    // Not while hetconv has work of its own recorded.
    let pending = model.predict(&x).unwrap();
    let err = ctx
        .record_into(device.create_command_encoder(&Default::default()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("flush or finish it first"), "{err}");
    assert_eq!(pending.to_vec().unwrap(), want);
}

/// Inference at ever new batch sizes does not keep every size's buffers: a size unused for
/// KEEP_SUBMISSIONS submissions is dropped, so the pool holds about the last few sizes' worth,
/// not the sum of all; `trim` drops the rest.
#[test]
fn pooled_memory_stays_bounded_at_changing_batch_sizes() {
    let sizes = 1..=40usize;
    let largest = *sizes.end();
    // What one prediction at the largest batch leaves in the pool of a fresh context.
    let one = {
        let ctx = ctx();
        let model = Vgg16::new(&ctx, tiny_vgg(2, hetconv::nn::ConvMode::Fused), 4).unwrap();
        let (x, _, _, _) = image_batch(&ctx, largest, 1);
        model.predict(&x).unwrap().to_vec().unwrap();
        ctx.pooled_bytes()
    };
    assert!(one > 0);
    let ctx = ctx();
    let model = Vgg16::new(&ctx, tiny_vgg(2, hetconv::nn::ConvMode::Fused), 4).unwrap();
    let mut most = 0;
    for batch in sizes.clone() {
        let (x, _, _, _) = image_batch(&ctx, batch, 1);
        model.predict(&x).unwrap().to_vec().unwrap();
        most = most.max(ctx.pooled_bytes());
    }
    // Kept without a bound, the pool would hold the buffers of all 40 sizes: about 20 times
    // the largest one's; a size lives at most KEEP_SUBMISSIONS + 1 submissions.
    let bound = (hetconv::gpu::KEEP_SUBMISSIONS + 2) * one;
    assert!(
        most <= bound,
        "the pool held {most} bytes, more than {bound} ({one} per prediction at batch {largest})"
    );
    ctx.trim();
    assert_eq!(ctx.pooled_bytes(), 0);
    // And the model still runs after a trim.
    let (x, _, _, _) = image_batch(&ctx, 3, 1);
    assert_eq!(model.predict(&x).unwrap().shape(), [3, 10]);
}

/// Kernel settings belong to a handle: two handles on one device (as two models built from
/// them would hold) run the same product with their own conv algorithm, while the device's
/// buffers are shared (a tensor of one is an operand for the other) and the original handle's
/// settings stay as they were.
#[test]
fn handles_with_their_own_settings_run_their_own_kernels() {
    use hetconv::tune::Variant;
    use hetconv::{ConvAlgorithm, KernelSettings, Precision};
    let ctx = ctx();
    let before = ctx.settings();
    let tile = hetconv::kernels::gemm_core::TileShape::new(32, 32, 4, 4, 16);
    let tiled = ctx.with_own_settings();
    tiled.set_conv_algorithm(ConvAlgorithm::Fixed(Variant::gemm(tile)));
    let direct = ctx.with_own_settings();
    direct.set_conv_algorithm(ConvAlgorithm::Direct);
    assert_eq!(ctx.settings(), before);
    assert_eq!(
        tiled.settings(),
        KernelSettings {
            conv_algorithm: ConvAlgorithm::Fixed(Variant::gemm(tile)),
            ..before
        }
    );

    let values = Rng::new(11).vec(5 * 7);
    let want = to_f64(
        &gemm::matmul(
            &upload(&ctx, &[5, 7], &values),
            Layout::AsIs,
            &upload(&ctx, &[7, 5], &values),
            Layout::AsIs,
            None,
        )
        .unwrap()
        .to_vec()
        .unwrap(),
    );
    let ran = |handle: &hetconv::Context| {
        // The second operand comes from the base handle: the device is the same.
        let y = gemm::matmul(
            &upload(handle, &[5, 7], &values),
            Layout::AsIs,
            &upload(&ctx, &[7, 5], &values),
            Layout::AsIs,
            None,
        )
        .unwrap();
        assert_close(
            "matmul on a handle",
            &y.to_vec().unwrap(),
            &want,
            F32_KERNEL,
        );
        // Each handle's table lists what it ran.
        let choices = handle.kernel_choices();
        assert_eq!(choices.len(), 1, "{choices:?}");
        choices[0].1.variant
    };
    assert_eq!(ran(&tiled), Variant::gemm(tile));
    assert_eq!(ran(&direct), Variant::Direct);
    assert_eq!(ran(&tiled), Variant::gemm(tile));
    // The base handle's own product (`want`), chosen by the tuner, not forced by the others.
    let base = ctx.kernel_choices();
    assert_eq!(base.len(), 1, "{base:?}");
    assert_ne!(base[0].1.source, hetconv::tune::Source::Forced, "{base:?}");
    assert_eq!(ctx.settings(), before);
    assert_eq!(direct.precision(), Precision::F32);
}

/// A 0-D tensor (a scalar, shape `[]`) given to any op that needs dimensions, and a conv of 0
/// groups, are shape errors naming the op; none reaches an index or a division.
#[test]
fn scalars_and_zero_groups_are_shape_errors() {
    use hetconv::kernels::{batchnorm, conv, loss, pool, reduce};
    let ctx = ctx();
    let scalar = Tensor::from_slice(&ctx, &[], &[1.0]).unwrap();
    assert_eq!(scalar.numel(), 1);
    let ones = Tensor::from_slice(&ctx, &[1], &[1.0]).unwrap();
    let w = conv::ConvWeights {
        w3: Some(&scalar),
        w1: None,
        bias: None,
    };
    let results: Vec<(&str, hetconv::Result<()>)> = vec![
        (
            "batch_norm",
            batchnorm::forward_train(
                &scalar,
                &ones,
                &ones,
                &ones,
                &ones,
                &batchnorm::BatchNormConfig::default(),
                false,
                None,
            )
            .map(drop),
        ),
        (
            "max_pool",
            pool::max_pool(&scalar, pool::PoolWindow::PAIRS).map(drop),
        ),
        ("global_average", pool::global_average(&scalar).map(drop)),
        ("softmax", loss::softmax(&scalar).map(drop)),
        (
            "softmax_cross_entropy",
            loss::softmax_cross_entropy(&scalar, &ones).map(drop),
        ),
        ("sum_channels", reduce::sum_channels(&scalar).map(drop)),
        (
            "matmul",
            gemm::matmul(&scalar, Layout::AsIs, &ones, Layout::AsIs, None).map(drop),
        ),
        (
            "conv forward",
            conv::forward(&conv::ConvKind::standard3x3(), &scalar, &w).map(drop),
        ),
    ];
    for (op, result) in results {
        let err = result.expect_err(op).to_string();
        assert!(err.starts_with(op), "{op}: {err}");
    }
    let x = Tensor::zeros(&ctx, &[1, 2, 4, 4]).unwrap();
    let w3 = Tensor::zeros(&ctx, &[2, 2, 3, 3]).unwrap();
    let w = conv::ConvWeights {
        w3: Some(&w3),
        w1: None,
        bias: None,
    };
    let err = conv::forward(&conv::ConvKind::grouped3x3(0), &x, &w)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("conv forward") && err.contains("groups"),
        "{err}"
    );
}

/// `adapter_index` (what `--adapter-per-rank` sets from the local rank) opens the adapter at
/// that index of the native backends' list, modulo its length, GPUs first.
#[test]
fn an_adapter_index_opens_that_adapter_modulo_the_count() {
    let instance = wgpu::Instance::default();
    let mut adapters: Vec<wgpu::AdapterInfo> =
        pollster::block_on(instance.enumerate_adapters(wgpu::Backends::PRIMARY))
            .iter()
            .map(|a| a.get_info())
            .collect();
    adapters.sort_by_key(|a| a.device_type == wgpu::DeviceType::Cpu);
    assert!(!adapters.is_empty());
    for index in [0, 1, 5] {
        let ctx = pollster::block_on(Context::new(hetconv::ContextOptions {
            adapter_index: Some(index),
            ..Default::default()
        }))
        .unwrap();
        let want = &adapters[index % adapters.len()];
        assert_eq!(
            (&ctx.adapter_info().name, ctx.adapter_info().backend),
            (&want.name, want.backend),
            "index {index} of {adapters:?}"
        );
    }
}
