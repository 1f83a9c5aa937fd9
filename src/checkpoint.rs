//! Checkpoints in safetensors with the PyTorch state_dict names of the paper's model.
//!
//! A checkpoint holds the model (`features.*`, `classifier.*`, each BatchNorm's
//! `num_batches_tracked` as I64, so `torch.nn.Module.load_state_dict` accepts the file), and
//! optionally the optimizer's momentum buffers (`optimizer.momentum.<name>`) and metadata (the
//! config and the training progress as JSON). A PyTorch file without metadata is imported by
//! inferring widths, P and the classifier from the tensor shapes; a non-zero 1x1 weight on a
//! filter's own block is folded into the 3x3 centre tap (the same function), leaving the masked
//! block exactly zero. Files are written to a temporary file and renamed.

use std::collections::HashMap;

use safetensors::tensor::{Dtype, TensorView};

use crate::error::{Error, Result};
use crate::gpu::Context;
use crate::nn::{ConvMode, PAPER_WIDTHS, Vgg16, VggConfig, VggLayer};

/// Prefix of the optimizer's momentum tensors.
pub const MOMENTUM_PREFIX: &str = "optimizer.momentum.";
/// Metadata key of the model config (JSON).
pub const META_CONFIG: &str = "hetconv.config";
/// Metadata key of the training progress (JSON, owned by the trainer).
pub const META_PROGRESS: &str = "hetconv.progress";
/// Metadata key of the number of training steps (decimal).
pub const META_STEP: &str = "hetconv.step";

/// How a checkpoint stores its float tensors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StoredDtype {
    /// f32: exact (training checkpoints always).
    #[default]
    F32,
    /// f16: half the size, for inference (each value rounded to the nearest f16).
    F16,
}

impl std::str::FromStr for StoredDtype {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "f32" => Ok(StoredDtype::F32),
            "f16" => Ok(StoredDtype::F16),
            _ => Err(format!("{s:?} is not a stored dtype (f32 or f16)")),
        }
    }
}

/// A checkpoint in memory.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    /// The model's shape.
    pub config: VggConfig,
    /// Parameters and buffers by state_dict name.
    pub tensors: HashMap<String, Vec<f32>>,
    /// Momentum buffers by parameter name (empty: none saved).
    pub momentum: HashMap<String, Vec<f32>>,
    /// Free-form metadata (config, progress).
    pub metadata: HashMap<String, String>,
    /// 1x1 weights on a filter's own block that were folded into 3x3 centre taps on import.
    pub folded: usize,
}

impl Checkpoint {
    /// Reads `model` back from the GPU; `with_optimizer` adds the momentum buffers.
    pub async fn from_model(
        model: &Vgg16,
        with_optimizer: bool,
        mut metadata: HashMap<String, String>,
    ) -> Result<Self> {
        let snapshot = model.store().snapshot().await?;
        let config = model.config().clone();
        metadata.insert(
            META_CONFIG.into(),
            serde_json::to_string(&config).map_err(|e| Error::InvalidArgument(e.to_string()))?,
        );
        Ok(Self {
            config,
            tensors: snapshot
                .params
                .into_iter()
                .chain(snapshot.buffers)
                .collect(),
            momentum: if with_optimizer {
                snapshot.momentum.into_iter().collect()
            } else {
                HashMap::new()
            },
            metadata,
            folded: 0,
        })
    }

    /// Blocking [`Checkpoint::from_model`] (native).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn from_model_blocking(
        model: &Vgg16,
        with_optimizer: bool,
        metadata: HashMap<String, String>,
    ) -> Result<Self> {
        pollster::block_on(Self::from_model(model, with_optimizer, metadata))
    }

    /// The shapes every tensor of this config must have, in model order.
    fn expected_shapes(config: &VggConfig) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::new();
        let bn = |out: &mut Vec<(String, Vec<usize>)>, prefix: String, c: usize| {
            for name in ["weight", "bias", "running_mean", "running_var"] {
                out.push((format!("{prefix}.{name}"), vec![c]));
            }
        };
        for layer in config.layers() {
            if let VggLayer::Conv {
                index,
                cin,
                cout,
                hetconv,
                ..
            } = layer
            {
                if hetconv {
                    out.push((
                        format!("features.{index}.gwc.weight"),
                        vec![cout, cin / config.parts, 3, 3],
                    ));
                    out.push((
                        format!("features.{index}.pwc.weight"),
                        vec![cout, cin, 1, 1],
                    ));
                } else {
                    out.push((format!("features.{index}.weight"), vec![cout, cin, 3, 3]));
                    out.push((format!("features.{index}.bias"), vec![cout]));
                }
                bn(&mut out, format!("features.{}", index + 1), cout);
            }
        }
        let (inputs, hidden, classes) = (config.classifier_inputs(), config.hidden, config.classes);
        out.push(("classifier.0.weight".into(), vec![hidden, inputs]));
        out.push(("classifier.0.bias".into(), vec![hidden]));
        bn(&mut out, "classifier.1".into(), hidden);
        out.push(("classifier.3.weight".into(), vec![classes, hidden]));
        out.push(("classifier.3.bias".into(), vec![classes]));
        out
    }

    /// The step recorded in the metadata (0 when absent).
    pub fn step(&self) -> u64 {
        self.metadata
            .get(META_STEP)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    /// The first non-finite value (NaN or infinite) among the tensors and the momentum
    /// buffers, in name order: (name, index, value).
    pub fn first_non_finite(&self) -> Option<(String, usize, f32)> {
        let mut all: Vec<(&String, &Vec<f32>)> =
            self.tensors.iter().chain(&self.momentum).collect();
        all.sort_by(|a, b| a.0.cmp(b.0));
        all.into_iter().find_map(|(name, values)| {
            values
                .iter()
                .position(|v| !v.is_finite())
                .map(|i| (name.clone(), i, values[i]))
        })
    }

    /// Serialises to safetensors bytes (f32 tensors).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        self.to_bytes_as(StoredDtype::F32)
    }

    /// Serialises to safetensors bytes with float tensors stored as `dtype`. f16 halves the
    /// file (an inference checkpoint; loading converts back to f32); a value outside f16's
    /// range is an error naming the tensor, never an infinity.
    pub fn to_bytes_as(&self, dtype: StoredDtype) -> Result<Vec<u8>> {
        let encode = |name: &str, values: &[f32]| -> Result<(Dtype, Vec<u8>)> {
            match dtype {
                StoredDtype::F32 => Ok((Dtype::F32, bytemuck::cast_slice(values).to_vec())),
                StoredDtype::F16 => {
                    let mut bytes = Vec::with_capacity(values.len() * 2);
                    for (i, &v) in values.iter().enumerate() {
                        let h = half::f16::from_f32(v);
                        if !h.is_finite() {
                            return Err(Error::InvalidArgument(format!(
                                "tensor {name}: value {i} ({v}) is outside f16's range (|x| <= 65504)"
                            )));
                        }
                        bytes.extend_from_slice(&h.to_le_bytes());
                    }
                    Ok((Dtype::F16, bytes))
                }
            }
        };
        let shapes = Self::expected_shapes(&self.config);
        let steps = i64::try_from(self.step()).unwrap_or(i64::MAX);
        let mut owned: Vec<(String, Vec<usize>, Dtype, Vec<u8>)> = Vec::new();
        for (name, shape) in &shapes {
            let values = self.tensors.get(name).ok_or_else(|| {
                Error::InvalidArgument(format!("checkpoint has no tensor {name}"))
            })?;
            let (stored, bytes) = encode(name, values)?;
            owned.push((name.clone(), shape.clone(), stored, bytes));
            if name.ends_with(".running_var") {
                let prefix = name.trim_end_matches(".running_var");
                owned.push((
                    format!("{prefix}.num_batches_tracked"),
                    vec![],
                    Dtype::I64,
                    steps.to_le_bytes().to_vec(),
                ));
            }
            if let Some(m) = self.momentum.get(name) {
                let (stored, bytes) = encode(name, m)?;
                owned.push((
                    format!("{MOMENTUM_PREFIX}{name}"),
                    shape.clone(),
                    stored,
                    bytes,
                ));
            }
        }
        let views = owned
            .iter()
            .map(|(name, shape, dtype, bytes)| {
                Ok((
                    name.clone(),
                    TensorView::new(*dtype, shape.clone(), bytes)
                        .map_err(|e| Error::InvalidArgument(format!("{name}: {e}")))?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        safetensors::serialize(views, Some(self.metadata.clone()))
            .map_err(|e| Error::InvalidArgument(format!("safetensors: {e}")))
    }

    /// Parses safetensors bytes; `source` names the file in errors. Without hetconv metadata the
    /// config is inferred from the tensor shapes (a PyTorch export).
    pub fn from_bytes(bytes: &[u8], source: &str) -> Result<Self> {
        let bad = |message: String| Error::Format {
            path: source.into(),
            offset: 0,
            message,
        };
        let (_, header) = safetensors::SafeTensors::read_metadata(bytes)
            .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
        let metadata = header.metadata().clone().unwrap_or_default();
        let file = safetensors::SafeTensors::deserialize(bytes)
            .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
        let mut tensors = HashMap::new();
        let mut shapes = HashMap::new();
        let mut momentum = HashMap::new();
        for (name, view) in file.tensors() {
            if name.ends_with(".num_batches_tracked") {
                continue;
            }
            let values: Vec<f32> = match view.dtype() {
                Dtype::F32 => view
                    .data()
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
                Dtype::F64 => view
                    .data()
                    .chunks_exact(8)
                    .map(|b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as f32)
                    .collect(),
                Dtype::F16 => view
                    .data()
                    .chunks_exact(2)
                    .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                    .collect(),
                Dtype::BF16 => view
                    .data()
                    .chunks_exact(2)
                    .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                    .collect(),
                other => {
                    return Err(bad(format!(
                        "tensor {name} has dtype {other:?}; F32, F64, F16 or BF16 expected"
                    )));
                }
            };
            if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                return Err(bad(format!(
                    "tensor {name}: value {i} is {}; a checkpoint holds finite numbers",
                    values[i]
                )));
            }
            if name.ends_with(".running_var") {
                if let Some(i) = values.iter().position(|v| *v < 0.0) {
                    return Err(bad(format!(
                        "tensor {name}: value {i} is {}; a variance is never negative",
                        values[i]
                    )));
                }
            }
            if let Some(param) = name.strip_prefix(MOMENTUM_PREFIX) {
                momentum.insert(param.to_string(), values);
            } else {
                shapes.insert(name.clone(), view.shape().to_vec());
                tensors.insert(name, values);
            }
        }
        let config = match metadata.get(META_CONFIG) {
            Some(json) => serde_json::from_str(json)
                .map_err(|e| bad(format!("bad {META_CONFIG} metadata: {e}")))?,
            None => infer_config(&shapes).map_err(&bad)?,
        };
        config.validate().map_err(|e| bad(e.to_string()))?;
        for (name, shape) in Self::expected_shapes(&config) {
            match shapes.get(&name) {
                None => return Err(bad(format!("missing tensor {name} (shape {shape:?})"))),
                // A 1x1 weight [N, M, 1, 1] may also be stored as [N, M]; nothing else may differ.
                Some(found)
                    if found != &shape
                        && !(shape.len() == 4
                            && shape[2..] == [1, 1]
                            && found[..] == shape[..2]) =>
                {
                    return Err(bad(format!(
                        "tensor {name} has shape {found:?}, the model needs {shape:?}"
                    )));
                }
                _ => {}
            }
        }
        let mut checkpoint = Self {
            config,
            tensors,
            momentum,
            metadata,
            folded: 0,
        };
        checkpoint.fold_masked_block();
        Ok(checkpoint)
    }

    /// Moves any non-zero 1x1 weight on a filter's own block into the 3x3 centre tap of the same
    /// filter and channel: the function is unchanged and the masked block becomes exactly zero.
    fn fold_masked_block(&mut self) {
        let p = self.config.parts;
        for layer in self.config.layers() {
            let VggLayer::Conv {
                index,
                cin,
                cout,
                hetconv: true,
                ..
            } = layer
            else {
                continue;
            };
            let pw_name = format!("features.{index}.pwc.weight");
            let gw_name = format!("features.{index}.gwc.weight");
            let (Some(mut pw), Some(mut gw)) =
                (self.tensors.remove(&pw_name), self.tensors.remove(&gw_name))
            else {
                continue;
            };
            let (own_in, own_out) = (cin / p, cout / p);
            for o in 0..cout {
                let lo = (o / own_out) * own_in;
                for c in lo..lo + own_in {
                    let w = &mut pw[o * cin + c];
                    if *w != 0.0 {
                        gw[((o * own_in + (c - lo)) * 3 + 1) * 3 + 1] += *w;
                        self.folded += 1;
                    }
                    *w = 0.0;
                }
            }
            self.tensors.insert(pw_name, pw);
            self.tensors.insert(gw_name, gw);
        }
    }

    /// Builds a model of this checkpoint's config on `ctx` and loads the tensors.
    pub fn build_model(&self, ctx: &Context, mode: ConvMode) -> Result<Vgg16> {
        let mut model = Vgg16::new(
            ctx,
            VggConfig {
                mode,
                ..self.config.clone()
            },
            0,
        )?;
        self.apply(&mut model)?;
        Ok(model)
    }

    /// Writes the tensors (and momentum buffers, if any) into `model`, whose config must match.
    pub fn apply(&self, model: &mut Vgg16) -> Result<()> {
        let config = model.config();
        if config.widths != self.config.widths
            || config.parts != self.config.parts
            || config.classes != self.config.classes
            || config.hidden != self.config.hidden
            || config.in_channels != self.config.in_channels
        {
            return Err(Error::InvalidArgument(format!(
                "checkpoint is for widths {:?}, P={}, {} classes; the model has widths {:?}, P={}, {} classes",
                self.config.widths,
                self.config.parts,
                self.config.classes,
                config.widths,
                config.parts,
                config.classes
            )));
        }
        let store = model.store_mut();
        for (i, info) in store.params().to_vec().iter().enumerate() {
            let values = self.tensors.get(&info.name).ok_or_else(|| {
                Error::InvalidArgument(format!("checkpoint has no {}", info.name))
            })?;
            store.write_value(crate::nn::ParamId(i), values)?;
            if let Some(m) = self.momentum.get(&info.name) {
                store.write_momentum(crate::nn::ParamId(i), m)?;
            }
        }
        for (name, tensor) in store.buffers() {
            let values = self
                .tensors
                .get(name)
                .ok_or_else(|| Error::InvalidArgument(format!("checkpoint has no {name}")))?;
            tensor.write(values)?;
        }
        Ok(())
    }
}

/// Infers the VGG config from PyTorch state_dict shapes.
fn infer_config(shapes: &HashMap<String, Vec<usize>>) -> std::result::Result<VggConfig, String> {
    let skeleton = VggConfig::paper(1);
    let mut widths = Vec::new();
    let mut in_channels = 0;
    let mut parts = 1;
    for layer in skeleton.layers() {
        let VggLayer::Conv { index, hetconv, .. } = layer else {
            continue;
        };
        if hetconv {
            let name = format!("features.{index}.gwc.weight");
            let gw = shapes.get(&name).ok_or(format!("missing tensor {name}"))?;
            let pw_name = format!("features.{index}.pwc.weight");
            let pw = shapes
                .get(&pw_name)
                .ok_or(format!("missing tensor {pw_name}"))?;
            if gw.len() != 4 || pw.len() < 2 || gw[1] == 0 {
                return Err(format!("{name} has shape {gw:?}; [N, M/P, 3, 3] expected"));
            }
            if widths.len() == 1 {
                parts = pw[1] / gw[1];
            }
            widths.push(gw[0]);
        } else {
            let name = format!("features.{index}.weight");
            let w = shapes.get(&name).ok_or(format!(
                "missing tensor {name} (not a HetConv VGG-16 state_dict?)"
            ))?;
            if w.len() != 4 {
                return Err(format!("{name} has shape {w:?}; [N, C, 3, 3] expected"));
            }
            in_channels = w[1];
            widths.push(w[0]);
        }
    }
    let matrix = |name: &str| -> std::result::Result<[usize; 2], String> {
        match shapes.get(name).map(Vec::as_slice) {
            Some(&[rows, cols]) => Ok([rows, cols]),
            Some(other) => Err(format!(
                "{name} has shape {other:?}; [outputs, inputs] expected"
            )),
            None => Err(format!("missing tensor {name}")),
        }
    };
    let fc1 = matrix("classifier.0.weight")?;
    let fc2 = matrix("classifier.3.weight")?;
    let last = *widths.last().unwrap_or(&PAPER_WIDTHS[12]);
    let area = fc1[1] / last.max(1);
    let side = (area as f64).sqrt().round() as usize;
    Ok(VggConfig {
        widths,
        parts,
        in_channels,
        image_size: 32 * side.max(1),
        classes: fc2[0],
        hidden: fc1[0],
        mode: ConvMode::Fused,
    })
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, flushed to disk,
/// then renamed over the target. A crash leaves either the old file or the new one; a failed
/// write or rename removes its temporary file, and temporary files of the same target left by
/// processes that no longer run (a crash, a kill) are removed first.
#[cfg(not(target_arch = "wasm32"))]
pub fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let io = |e| Error::Io {
        path: path.to_path_buf(),
        source: e,
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("checkpoint");
    let prefix = format!(".{name}.tmp-");
    remove_stale_temporaries(dir, &prefix);
    let tmp = dir.join(format!("{prefix}{}", std::process::id()));
    let written = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(io)
}

/// Removes `dir/PREFIX<pid>` files whose process is gone (Linux: no `/proc/<pid>`; elsewhere
/// only those older than a day).
#[cfg(not(target_arch = "wasm32"))]
fn remove_stale_temporaries(dir: &std::path::Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(pid) = file_name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        let gone = if cfg!(target_os = "linux") {
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
        } else {
            entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age.as_secs() > 86_400)
        };
        if gone {
            log::info!("removing a stale temporary file {}", entry.path().display());
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Saves a checkpoint to `path` atomically. A checkpoint with a non-finite weight, running
/// statistic or momentum value (a diverged run) is refused, so it never replaces a good one.
#[cfg(not(target_arch = "wasm32"))]
pub fn save(path: &std::path::Path, checkpoint: &Checkpoint) -> Result<()> {
    save_as(path, checkpoint, StoredDtype::F32)
}

/// [`save`] with float tensors stored as `dtype`.
#[cfg(not(target_arch = "wasm32"))]
pub fn save_as(path: &std::path::Path, checkpoint: &Checkpoint, dtype: StoredDtype) -> Result<()> {
    if let Some((name, index, value)) = checkpoint.first_non_finite() {
        return Err(Error::Diverged {
            step: checkpoint.step(),
            what: format!(
                "{name}[{index}] is {value}, so {} was not written",
                path.display()
            ),
        });
    }
    write_atomic(path, &checkpoint.to_bytes_as(dtype)?)
}

/// Loads a checkpoint (hetconv's or a PyTorch export) from `path`.
#[cfg(not(target_arch = "wasm32"))]
pub fn load(path: &std::path::Path) -> Result<Checkpoint> {
    let bytes = std::fs::read(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    Checkpoint::from_bytes(&bytes, &path.display().to_string())
}
