//! The browser demo's Rust side: the same library, kernels and trainer as the CLI, driven from
//! JavaScript. Every method that touches the GPU returns a Promise; state lives behind an
//! `Rc<RefCell<..>>` so a pending call never holds a borrow of the JavaScript object.
//!
//! A call holds its `RefCell` borrow across its awaits on purpose: JavaScript is single-threaded,
//! and a second call made while one is pending gets a "busy" error from `try_borrow` instead of
//! interleaving with it.
#![allow(clippy::await_holding_refcell_ref)]

use std::cell::RefCell;
use std::rc::Rc;

use hetconv::checkpoint::Checkpoint;
use hetconv::data::{Batcher, Splits, embedded};
use hetconv::nn::{ConvMode, ResNetConfig, VggConfig};
use hetconv::optim::{LrSchedule, Schedule};
use hetconv::train::{Progress, TrainSettings, Trainer, evaluate};
use hetconv::{Architecture, Model};
use hetconv::{Context, ContextOptions, Tensor};
use js_sys::{Promise, Uint8Array};
use serde::Serialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

fn js_error(e: impl std::fmt::Display) -> JsValue {
    JsValue::from_str(&e.to_string())
}

fn to_js<T: Serialize>(value: &T) -> Result<JsValue, JsValue> {
    let json = serde_json::to_string(value).map_err(js_error)?;
    js_sys::JSON::parse(&json)
}

struct State {
    ctx: Context,
    data: Splits,
    trainer: Trainer,
}

/// A model being trained or used in the page.
#[wasm_bindgen]
pub struct Demo {
    /// The GPU context (shared with `state`): what describes the device is read without a
    /// borrow, so it answers while a step is pending.
    ctx: Context,
    state: Rc<RefCell<State>>,
}

/// A call made while another (a training step, an evaluation) is pending.
fn busy() -> JsValue {
    js_error(
        "busy: another call (a training step, an evaluation) is still running; try again when it resolves",
    )
}

impl Demo {
    fn borrow(&self) -> Result<std::cell::Ref<'_, State>, JsValue> {
        self.state.try_borrow().map_err(|_| busy())
    }

    fn borrow_mut(&self) -> Result<std::cell::RefMut<'_, State>, JsValue> {
        self.state.try_borrow_mut().map_err(|_| busy())
    }
}

#[derive(Serialize)]
struct StepJs {
    step: u64,
    epoch: usize,
    lr: f64,
    loss: Option<f64>,
    accuracy: Option<f64>,
    images: usize,
}

#[derive(Serialize)]
struct PredictionJs {
    index: usize,
    predicted: usize,
    label: usize,
    probabilities: Vec<f32>,
}

#[derive(Serialize)]
struct ModelInfoJs {
    /// The network's title: `HetConv VGG-16`, `HetConv ResNet-20`.
    model: String,
    /// The name the page's model selector uses: `vgg16`, `resnet20`.
    name: String,
    parts: usize,
    widths: Vec<usize>,
    paper_flops: String,
    macs: u64,
    params: u64,
    train_images: usize,
    test_images: usize,
    class_names: Vec<String>,
    /// Training steps done (a loaded checkpoint's own).
    step: u64,
}

/// Mixed precision where the browser offers `shader-f16`, f32 elsewhere.
fn precision_for(ctx: &Context) -> hetconv::Precision {
    if ctx.features().contains(hetconv::wgpu::Features::SHADER_F16) {
        hetconv::Precision::Mixed
    } else {
        hetconv::Precision::F32
    }
}

/// The page's training settings: SGD with momentum at a constant learning rate `lr` (finite,
/// not negative), run until paused.
fn settings(
    batch_size: usize,
    lr: f64,
    seed: u64,
    precision: hetconv::Precision,
) -> Result<TrainSettings, JsValue> {
    if !lr.is_finite() || lr < 0.0 {
        return Err(js_error(format!(
            "learning rate {lr}: give a finite number, 0 or more (0.05 is a good start)"
        )));
    }
    Ok(TrainSettings {
        // Until paused: 10^6 epochs of the embedded subset are more steps than a page runs.
        epochs: 1_000_000,
        max_steps: None,
        batch_size,
        lr: LrSchedule {
            base_lr: lr,
            schedule: Schedule::Constant,
            warmup_epochs: 0.0,
        },
        momentum: 0.9,
        weight_decay: 5e-4,
        nesterov: false,
        augment: None,
        shuffle: true,
        seed,
        report_every: 1,
        precision,
    })
}

/// The page's networks: `vgg16` (at `width_mult` of the paper's widths) or a ResNet (`resnet8`,
/// `resnet20`, ...: the CIFAR layout at the images' own size; the ImageNet layouts at least
/// 32x32), shaped for `data`.
fn architecture(
    model: &str,
    parts: usize,
    width_mult: f64,
    data: &Splits,
) -> Result<Architecture, JsValue> {
    if !width_mult.is_finite() || width_mult <= 0.0 || width_mult > 1.0 {
        return Err(js_error(format!(
            "width {width_mult}: give a fraction of the paper's widths in (0, 1]"
        )));
    }
    let (channels, classes) = (data.train.channels, data.train.classes());
    let arch = match model {
        "vgg16" => {
            let mut config = VggConfig::paper(parts).with_width_mult(width_mult);
            config.in_channels = channels;
            config.classes = classes;
            Architecture::Vgg16(config)
        }
        name => {
            // A ResNet of any depth: the page lists resnet8 and resnet20, and a loaded
            // checkpoint adds its own to the list.
            let depth = name
                .strip_prefix("resnet")
                .and_then(|d| d.parse().ok())
                .ok_or_else(|| js_error(format!("{name:?} is not vgg16 or a resnet")))?;
            let side = data.train.height.max(data.train.width);
            let cifar = ResNetConfig::cifar(depth, parts);
            let (base, image_size) = match cifar.layout() {
                // The ImageNet layout needs 32x32 at least (the images are zero-padded).
                Some(hetconv::nn::ResNetLayout::ImageNet) => {
                    (ResNetConfig::imagenet(depth, parts), side.max(32))
                }
                _ => (cifar, side),
            };
            Architecture::ResNet(ResNetConfig {
                in_channels: channels,
                classes,
                image_size,
                ..base
            })
        }
    };
    arch.validate().map_err(js_error)?;
    Ok(arch)
}

/// Whether this browser exposes WebGPU (`navigator.gpu`).
#[wasm_bindgen(js_name = webgpuAvailable)]
pub fn webgpu_available() -> bool {
    let gpu = js_sys::Reflect::get(&js_sys::global(), &"navigator".into())
        .and_then(|n| js_sys::Reflect::get(&n, &"gpu".into()));
    matches!(gpu, Ok(v) if !v.is_undefined() && !v.is_null())
}

#[wasm_bindgen]
impl Demo {
    /// Opens the GPU, decodes the embedded Fashion-MNIST subset and builds a first model:
    /// `model` is `vgg16` (at `width_mult`), `resnet8` or `resnet20`.
    pub fn create(
        model: String,
        parts: usize,
        width_mult: f64,
        batch_size: usize,
        lr: f64,
    ) -> Promise {
        future_to_promise(async move {
            let ctx = Context::new(ContextOptions::default())
                .await
                .map_err(js_error)?;
            let data = embedded::fashion_mnist_subset().map_err(js_error)?;
            let model = architecture(&model, parts, width_mult, &data)?
                .build(&ctx, 1)
                .map_err(js_error)?;
            let trainer = Trainer::new(
                model,
                data.train.clone(),
                settings(batch_size, lr, 1, precision_for(&ctx))?,
                Progress::default(),
            )
            .map_err(js_error)?;
            Ok(JsValue::from(Demo {
                ctx: ctx.clone(),
                state: Rc::new(RefCell::new(State { ctx, data, trainer })),
            }))
        })
    }

    /// Sets how convs and linear layers are computed: `auto`, `direct`, `tiled` or one variant
    /// such as `gemm:64x64/4x4/k16` (as the CLI's `--conv`).
    #[wasm_bindgen(js_name = setKernels)]
    pub fn set_kernels(&self, kernels: &str) -> Result<(), JsValue> {
        let algorithm: hetconv::ConvAlgorithm =
            kernels.parse().map_err(|e: String| JsValue::from_str(&e))?;
        // Not while a step records its kernels.
        self.borrow_mut()?.ctx.set_conv_algorithm(algorithm);
        Ok(())
    }

    /// What each pass and layer shape ran so far, as JSON: `[{"key", "variant", "source"}]`.
    #[wasm_bindgen(js_name = kernelChoices)]
    pub fn kernel_choices(&self) -> String {
        let choices: Vec<serde_json::Value> = self
            .ctx
            .kernel_choices()
            .iter()
            .map(|(key, c)| {
                serde_json::json!({
                    "key": key, "variant": c.variant.to_string(), "source": c.source,
                })
            })
            .collect();
        serde_json::Value::Array(choices).to_string()
    }

    /// The precision the page trains and runs in: `mixed` (f16 operands and activations, f32
    /// sums and weights) where the browser offers `shader-f16`, else `f32`.
    pub fn precision(&self) -> String {
        self.ctx.precision().to_string()
    }

    /// Name and backend of the GPU adapter.
    pub fn adapter(&self) -> String {
        let info = self.ctx.adapter_info();
        let name = if info.name.is_empty() {
            "the browser's WebGPU adapter"
        } else {
            info.name.as_str()
        };
        let software = if info.device_type == hetconv::wgpu::DeviceType::Cpu {
            ", a software (CPU) device"
        } else {
            ""
        };
        let driver = [info.driver.as_str(), info.driver_info.as_str()]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        if driver.is_empty() {
            format!("{name} ({:?}{software})", info.backend)
        } else {
            format!("{name} ({:?}, {driver}{software})", info.backend)
        }
    }

    /// Replaces the model with a fresh one (`model` as in [`Demo::create`]).
    pub fn reset(
        &self,
        model: String,
        parts: usize,
        width_mult: f64,
        batch_size: usize,
        lr: f64,
        seed: u64,
    ) -> Result<(), JsValue> {
        let mut state = self.borrow_mut()?;
        let settings = settings(batch_size, lr, seed, precision_for(&state.ctx))?;
        let model = architecture(&model, parts, width_mult, &state.data)?
            .build(&state.ctx, seed)
            .map_err(js_error)?;
        state.trainer = Trainer::new(
            model,
            state.data.train.clone(),
            settings,
            Progress::default(),
        )
        .map_err(js_error)?;
        Ok(())
    }

    /// Size and cost of the current model.
    #[wasm_bindgen(js_name = modelInfo)]
    pub fn model_info(&self) -> Result<JsValue, JsValue> {
        let state = self.borrow()?;
        let arch = state
            .trainer
            .model()
            .architecture()
            .ok_or_else(|| js_error("the page's model is not one of the zoo's"))?;
        let cost = arch.cost();
        to_js(&ModelInfoJs {
            model: arch.title(),
            name: arch.name(),
            parts: arch.parts(),
            widths: arch.vgg().map(|c| c.widths.clone()).unwrap_or_default(),
            paper_flops: cost.paper_millions(),
            macs: cost.macs,
            params: cost.params,
            train_images: state.data.train.len(),
            test_images: state.data.test.len(),
            class_names: state.data.test.class_names.clone(),
            step: state.trainer.progress().step,
        })
    }

    /// One training step; resolves to `{step, epoch, lr, loss, accuracy, images}`.
    pub fn step(&self) -> Promise {
        let state = self.state.clone();
        future_to_promise(async move {
            let mut state = state.try_borrow_mut().map_err(|_| busy())?;
            let r = state.trainer.step().await.map_err(js_error)?;
            to_js(&StepJs {
                step: r.step,
                epoch: r.epoch,
                lr: r.lr,
                loss: r.metrics.map(|m| m.0),
                accuracy: r.metrics.map(|m| m.1),
                images: r.images,
            })
        })
    }

    /// Eval-mode loss and accuracy on the first `limit` test images.
    pub fn evaluate(&self, limit: usize) -> Promise {
        let state = self.state.clone();
        future_to_promise(async move {
            let state = state.try_borrow().map_err(|_| busy())?;
            let report = evaluate(state.trainer.model(), &state.data.test, 100, Some(limit))
                .await
                .map_err(js_error)?;
            to_js(
                &serde_json::json!({ "loss": report.loss, "accuracy": report.accuracy, "images": report.images }),
            )
        })
    }

    /// Predictions for the first `count` test images (eval mode).
    #[wasm_bindgen(js_name = predictTest)]
    pub fn predict_test(&self, count: usize) -> Promise {
        let state = self.state.clone();
        future_to_promise(async move {
            let state = state.try_borrow().map_err(|_| busy())?;
            let model = state.trainer.model();
            let input = model.input();
            let test = &state.data.test;
            if count == 0 {
                return Err(js_error("predictTest: count 0; give 1 or more test images"));
            }
            let count = count.min(test.len());
            let batcher = Batcher::for_evaluation(count, input.size, input.channels);
            let indices: Vec<usize> = (0..count).collect();
            let batch = batcher.batch(test, &indices, 0).map_err(js_error)?;
            let probabilities = classify(&state.ctx, model.as_ref(), &batch.pixels, count).await?;
            let out: Vec<PredictionJs> = probabilities
                .into_iter()
                .enumerate()
                .map(|(index, probabilities)| PredictionJs {
                    index,
                    predicted: argmax(&probabilities),
                    label: usize::from(test.labels[index]),
                    probabilities,
                })
                .collect();
            to_js(&out)
        })
    }

    /// The 28x28 pixels (0..=255) of test image `index`.
    #[wasm_bindgen(js_name = testImage)]
    pub fn test_image(&self, index: usize) -> Result<Uint8Array, JsValue> {
        let state = self.borrow()?;
        let test = &state.data.test;
        if index >= test.len() {
            return Err(js_error(format!(
                "testImage: index {index} is past the {} test images",
                test.len()
            )));
        }
        let pixels = test.image(index).map_err(js_error)?;
        Ok(Uint8Array::from(pixels.as_ref()))
    }

    /// Classifies one 28x28 grey image (row-major values in [0, 1]); resolves to the class
    /// probabilities.
    pub fn classify(&self, pixels: Vec<f32>) -> Promise {
        let state = self.state.clone();
        future_to_promise(async move {
            let state = state.try_borrow().map_err(|_| busy())?;
            if pixels.len() != 28 * 28 {
                return Err(js_error(format!(
                    "classify needs 28x28 = 784 values, got {}",
                    pixels.len()
                )));
            }
            if let Some(i) = pixels.iter().position(|v| !v.is_finite()) {
                return Err(js_error(format!(
                    "classify: value {i} is {}; give numbers in [0, 1]",
                    pixels[i]
                )));
            }
            let model = state.trainer.model();
            let size = model.input().size;
            // Centred as the data's images are (`hetconv::data::augment::place`): zero-padded
            // into a larger input, centre-cropped into a smaller one.
            let top = (size as isize - 28) / 2;
            let mut padded = vec![0.0f32; size * size];
            for (y, row) in padded.chunks_exact_mut(size).enumerate() {
                let iy = y as isize - top;
                if !(0..28).contains(&iy) {
                    continue;
                }
                for (x, value) in row.iter_mut().enumerate() {
                    let ix = x as isize - top;
                    if (0..28).contains(&ix) {
                        *value = pixels[iy as usize * 28 + ix as usize];
                    }
                }
            }
            let channels = model.input().channels;
            let input: Vec<f32> = (0..channels).flat_map(|_| padded.iter().copied()).collect();
            let probabilities = classify(&state.ctx, model.as_ref(), &input, 1).await?;
            to_js(&probabilities[0])
        })
    }

    /// The current model, momentum and progress as a safetensors checkpoint (the CLI's format).
    #[wasm_bindgen(js_name = saveCheckpoint)]
    pub fn save_checkpoint(&self) -> Promise {
        let state = self.state.clone();
        future_to_promise(async move {
            let state = state.try_borrow().map_err(|_| busy())?;
            let metadata = std::collections::HashMap::from([(
                hetconv::checkpoint::META_STEP.to_string(),
                state.trainer.progress().step.to_string(),
            )]);
            let ckpt = Checkpoint::from_model(state.trainer.model(), true, metadata)
                .await
                .map_err(js_error)?;
            if let Some((name, index, value)) = ckpt.first_non_finite() {
                return Err(js_error(format!(
                    "not saved: the model diverged ({name}[{index}] is {value}); start a new model with a lower learning rate"
                )));
            }
            Ok(Uint8Array::from(ckpt.to_bytes().map_err(js_error)?.as_slice()).into())
        })
    }

    /// Loads a checkpoint written by the CLI or the page (or a PyTorch state_dict).
    #[wasm_bindgen(js_name = loadCheckpoint)]
    pub fn load_checkpoint(
        &self,
        bytes: Vec<u8>,
        batch_size: usize,
        lr: f64,
    ) -> Result<JsValue, JsValue> {
        let mut state = self.borrow_mut()?;
        let ckpt = Checkpoint::from_bytes(&bytes, "checkpoint").map_err(js_error)?;
        let arch = ckpt.architecture.clone().ok_or_else(|| {
            js_error("the checkpoint holds a custom network; the page trains the zoo's")
        })?;
        let input = arch.input();
        if input.channels != state.data.train.channels
            || arch.classes() != state.data.train.classes()
        {
            return Err(js_error(format!(
                "this page's data has {} channel(s) and {} classes; the checkpoint expects {} and {}",
                state.data.train.channels,
                state.data.train.classes(),
                input.channels,
                arch.classes()
            )));
        }
        let settings = settings(batch_size, lr, 1, precision_for(&state.ctx))?;
        let model = ckpt
            .build_model(&state.ctx, ConvMode::Fused)
            .map_err(js_error)?;
        // The step goes on from the checkpoint's; the loss scale starts afresh (2^16).
        let progress = Progress {
            step: ckpt.step(),
            loss_scale: None,
        };
        state.trainer =
            Trainer::new(model, state.data.train.clone(), settings, progress).map_err(js_error)?;
        drop(state);
        self.model_info()
    }
}

fn argmax(v: &[f32]) -> usize {
    (1..v.len()).fold(0, |best, j| if v[j] > v[best] { j } else { best })
}

/// Softmax of the eval-mode logits of `count` images.
async fn classify(
    ctx: &Context,
    model: &dyn Model,
    pixels: &[f32],
    count: usize,
) -> Result<Vec<Vec<f32>>, JsValue> {
    let input = model.input();
    let x = Tensor::from_slice(
        ctx,
        &[count, input.channels, input.size, input.size],
        pixels,
    )
    .map_err(js_error)?;
    let probabilities = model
        .predict_probabilities(&x)
        .map_err(js_error)?
        .read()
        .await
        .map_err(js_error)?;
    Ok(probabilities
        .chunks_exact(model.classes())
        .map(<[f32]>::to_vec)
        .collect())
}
