//! A wgpu application that owns its device embeds a HetConv network. Its own compute shader
//! draws a frame into its own buffer (a stand-in for what a renderer produces), hetconv
//! classifies the frame on the same device and queue, and the class probabilities land in
//! another buffer of the application: the frame never goes through the CPU, and hetconv records
//! its work into the application's own command encoder, after the frame's (`Context::record_into`
//! and `Context::take_encoder`): one encoder, one submission.
//!
//! ```text
//! cargo run --release --example embed_in_wgpu_app -- [CHECKPOINT]
//! ```
//! With a checkpoint (e.g. `runs/main-job/checkpoint.safetensors` from the README's main job)
//! the network is the trained one; without, a fresh untrained one (near-uniform output).

use hetconv::nn::{ConvMode, VggConfig};
use hetconv::wgpu;
use hetconv::{Architecture, Model};
use hetconv::{Context, Result, Tensor};

/// The application's "renderer": a bright ring on a dark background, SIZE x SIZE pixels, in
/// every input channel.
const FRAME_SHADER: &str = "
override SIZE: u32 = 32u;
@group(0) @binding(0) var<storage, read_write> frame: array<f32>;
@compute @workgroup_size(64)
fn draw(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.x;
    if i >= arrayLength(&frame) {
        return;
    }
    let centre = 0.5 * f32(SIZE - 1u);
    let pixel = vec2<f32>(f32(i % SIZE), f32((i / SIZE) % SIZE)) - vec2<f32>(centre);
    let r = length(pixel) / f32(SIZE);
    frame[i] = select(0.0, 0.9, r > 0.19 && r < 0.34);
}";

/// The application's own device and queue, opened the way it likes.
fn open_device() -> (wgpu::Device, wgpu::Queue) {
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter = pollster::block_on(instance.request_adapter(&Default::default()))
        .expect("a GPU adapter (or Mesa's lavapipe)");
    pollster::block_on(adapter.request_device(&Default::default())).expect("a device")
}

/// The application records drawing `frame` (`size` x `size` planes) with its own pipeline into
/// its own encoder.
fn draw_frame(
    device: &wgpu::Device,
    encoder: &mut wgpu::CommandEncoder,
    frame: &wgpu::Buffer,
    size: usize,
) {
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("app frame"),
        source: wgpu::ShaderSource::Wgsl(FRAME_SHADER.into()),
    });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some("app frame"),
        layout: None,
        module: &module,
        entry_point: Some("draw"),
        compilation_options: wgpu::PipelineCompilationOptions {
            constants: &[("SIZE", size as f64)],
            ..Default::default()
        },
        cache: None,
    });
    let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("app frame"),
        layout: &pipeline.get_bind_group_layout(0),
        entries: &[wgpu::BindGroupEntry {
            binding: 0,
            resource: frame.as_entire_binding(),
        }],
    });
    let mut pass = encoder.begin_compute_pass(&Default::default());
    pass.set_pipeline(&pipeline);
    pass.set_bind_group(0, &bind_group, &[]);
    pass.dispatch_workgroups((frame.size() / 4).div_ceil(64) as u32, 1, 1);
}

fn main() -> Result<()> {
    env_logger::init();
    let (device, queue) = open_device();
    let ctx = Context::from_device(device.clone(), queue.clone());

    let model = match std::env::args().nth(1) {
        Some(path) => {
            hetconv::checkpoint::load(path.as_ref())?.build_model(&ctx, ConvMode::Fused)?
        }
        None => {
            let mut config = VggConfig::paper(4).with_width_mult(0.125);
            config.in_channels = 1;
            Architecture::Vgg16(config).build(&ctx, 1)?
        }
    };
    let input = model.input();
    let shape = [1, input.channels, input.size, input.size];
    let frame_bytes = 4 * shape.iter().product::<usize>() as u64;

    // The application's buffers: the frame its shader draws, and where it wants the answer.
    let frame = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("app frame"),
        size: frame_bytes,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let answer = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("app answer"),
        size: 4 * model.classes() as u64,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    // The application's frame, in its own encoder...
    let mut encoder = device.create_command_encoder(&Default::default());
    draw_frame(&device, &mut encoder, &frame, input.size);

    // ...then hetconv's work in the same encoder: frame -> network -> probabilities.
    ctx.record_into(encoder)?;
    let x = Tensor::from_buffer(&ctx, &shape, &frame, 0)?;
    model
        .predict_probabilities(&x)?
        .copy_into_buffer(&answer, 0)?;
    let encoder = ctx
        .take_encoder()?
        .expect("the encoder given to record_into");
    queue.submit(Some(encoder.finish()));

    // The application reads its own buffer (a renderer would bind it in a shader instead).
    answer.map_async(wgpu::MapMode::Read, .., |r| r.expect("map the answer"));
    device
        .poll(wgpu::PollType::wait_indefinitely())
        .expect("the GPU finishes");
    let probabilities: Vec<f32> =
        bytemuck::cast_slice(&answer.get_mapped_range(..).expect("mapped")).to_vec();
    answer.unmap();

    println!("adapter: {}", ctx.adapter_info().name);
    let mut ranked: Vec<(usize, f32)> = probabilities.iter().copied().enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    for (class, p) in ranked.iter().take(3) {
        println!("class {class}: {:5.1}%", 100.0 * p);
    }
    Ok(())
}
