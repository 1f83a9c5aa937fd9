//! Checkpoints to and from safetensors bytes: f32 (or f16) tensors in the model's order, each
//! BatchNorm's `num_batches_tracked`, the momentum buffers, the metadata; F32, F64, F16 and BF16
//! files read, every value checked finite, and a zoo network's shapes checked against it (a
//! custom network's are checked when [`Checkpoint::apply`] loads it).

use std::collections::HashMap;

use safetensors::tensor::{Dtype, TensorView};

use super::{
    CUSTOM_MODEL, Checkpoint, META_CLASSES, META_CONFIG, META_MODEL, META_STEP, MOMENTUM_PREFIX,
    StoredDtype,
};
use crate::error::{Error, Result};
use crate::model::Architecture;

impl Checkpoint {
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
        let steps = i64::try_from(self.step()).unwrap_or(i64::MAX);
        let mut owned: Vec<(String, Vec<usize>, Dtype, Vec<u8>)> = Vec::new();
        for (name, shape) in &self.layout {
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
        let file_bytes = FileBytes { bytes, source };
        let metadata = file_bytes.metadata()?;
        let file = safetensors::SafeTensors::deserialize(bytes)
            .map_err(|e| file_bytes.not_safetensors(e))?;
        let mut tensors = HashMap::new();
        let mut shapes = HashMap::new();
        let mut momentum = HashMap::new();
        for (name, view) in file.tensors() {
            if name.ends_with(".num_batches_tracked") {
                continue;
            }
            let values = file_bytes.values(&name, &view)?;
            if let Some(param) = name.strip_prefix(MOMENTUM_PREFIX) {
                momentum.insert(param.to_string(), values);
            } else {
                shapes.insert(name.clone(), view.shape().to_vec());
                tensors.insert(name, values);
            }
        }
        let architecture = match (metadata.get(META_CONFIG), metadata.get(META_MODEL)) {
            (Some(json), _) => Some(
                Architecture::from_json(json)
                    .map_err(|e| file_bytes.bad(format!("bad {META_CONFIG} metadata: {e}")))?,
            ),
            (None, Some(name)) if name == CUSTOM_MODEL => None,
            (None, _) => Some(Architecture::infer(&shapes).map_err(|e| file_bytes.bad(e))?),
        };
        let layout = match &architecture {
            Some(arch) => {
                arch.validate().map_err(|e| file_bytes.bad(e.to_string()))?;
                zoo_layout(arch, &shapes).map_err(|e| file_bytes.bad(e))?
            }
            None => {
                let mut layout: Vec<(String, Vec<usize>)> = shapes.into_iter().collect();
                layout.sort();
                layout
            }
        };
        let mut checkpoint = Self {
            architecture,
            layout,
            tensors,
            momentum,
            metadata,
            folded: 0,
        };
        checkpoint.fold_masked_block();
        Ok(checkpoint)
    }
}

/// A checkpoint file's bytes and its name, for reading them with errors that name the file
/// (and, for a tensor's problem, the byte where it lies).
struct FileBytes<'a> {
    bytes: &'a [u8],
    source: &'a str,
}

impl FileBytes<'_> {
    fn bad(&self, message: String) -> Error {
        Error::File {
            path: self.source.into(),
            message,
        }
    }

    /// A problem at byte `index` of `data` (a slice of the file's bytes).
    fn at(&self, data: &[u8], index: usize, message: String) -> Error {
        Error::Format {
            path: self.source.into(),
            offset: (data.as_ptr() as usize - self.bytes.as_ptr() as usize + index) as u64,
            message,
        }
    }

    fn not_safetensors(&self, e: safetensors::SafeTensorError) -> Error {
        Error::Decode {
            path: self.source.into(),
            what: "not a safetensors file",
            source: Box::new(e),
        }
    }

    /// The header's metadata, its entries that accessors read later (and cannot fail on)
    /// checked here, so that a damaged entry is never taken for a missing one. A file cut short
    /// or followed by more bytes than its header describes says so.
    fn metadata(&self) -> Result<HashMap<String, String>> {
        let (_, header) = safetensors::SafeTensors::read_metadata(self.bytes).map_err(|e| {
            match (&e, described_len(self.bytes)) {
                (safetensors::SafeTensorError::MetadataIncompleteBuffer, Some(want)) => {
                    let have = self.bytes.len() as u64;
                    self.bad(if have < want {
                        format!(
                            "the file is cut short: {have} bytes, its header describes {want} (an interrupted write, copy or download?)"
                        )
                    } else {
                        format!(
                            "{} bytes follow the {want} its header describes (two files joined, or a damaged one?)",
                            have - want
                        )
                    })
                }
                _ => self.not_safetensors(e),
            }
        })?;
        let metadata = header.metadata().clone().unwrap_or_default();
        if let Some(json) = metadata.get(META_CLASSES) {
            serde_json::from_str::<Vec<String>>(json).map_err(|e| {
                self.bad(format!(
                    "bad {META_CLASSES} metadata (a JSON list of names expected): {e}"
                ))
            })?;
        }
        if let Some(step) = metadata.get(META_STEP) {
            step.parse::<u64>()
                .map_err(|e| self.bad(format!("bad {META_STEP} metadata {step:?}: {e}")))?;
        }
        Ok(metadata)
    }

    /// Tensor `name`'s values as f32 (from F32, F64, F16 or BF16), each finite, and a
    /// `running_var`'s never negative.
    fn values(&self, name: &str, view: &TensorView) -> Result<Vec<f32>> {
        let data = view.data();
        let values: Vec<f32> = match view.dtype() {
            Dtype::F32 => data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F64 => data
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as f32)
                .collect(),
            Dtype::F16 => data
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::BF16 => data
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            other => {
                return Err(self.at(
                    data,
                    0,
                    format!("tensor {name} has dtype {other:?}; F32, F64, F16 or BF16 expected"),
                ));
            }
        };
        let value_at = |i: usize| i * view.dtype().bitsize() / 8;
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(self.at(
                data,
                value_at(i),
                format!(
                    "tensor {name}: value {i} is {}; a checkpoint holds finite numbers",
                    values[i]
                ),
            ));
        }
        if name.ends_with(".running_var") {
            if let Some(i) = values.iter().position(|v| *v < 0.0) {
                return Err(self.at(
                    data,
                    value_at(i),
                    format!(
                        "tensor {name}: value {i} is {}; a variance is never negative",
                        values[i]
                    ),
                ));
            }
        }
        Ok(values)
    }
}

/// The zoo network's layout, each tensor checked present in the file with the network's shape
/// (a 1x1 weight `[N, M, 1, 1]` may also be stored as `[N, M]`) and none left over.
fn zoo_layout(
    arch: &Architecture,
    shapes: &HashMap<String, Vec<usize>>,
) -> std::result::Result<Vec<(String, Vec<usize>)>, String> {
    let layout = arch.layout().map_err(|e| e.to_string())?;
    for (name, shape) in &layout {
        match shapes.get(name) {
            None => return Err(format!("missing tensor {name} (shape {shape:?})")),
            Some(found)
                if found != shape
                    && !(shape.len() == 4 && shape[2..] == [1, 1] && found[..] == shape[..2]) =>
            {
                return Err(format!(
                    "tensor {name} has shape {found:?}, the model needs {shape:?}"
                ));
            }
            Some(_) => {}
        }
    }
    let mut extra: Vec<&String> = shapes
        .keys()
        .filter(|name| !layout.iter().any(|(n, _)| n == *name))
        .collect();
    extra.sort();
    match extra.first() {
        Some(name) => Err(format!(
            "tensor {name} has no place in {} ({} tensors not in the network)",
            arch.name(),
            extra.len()
        )),
        None => Ok(layout),
    }
}

/// The length a safetensors file's header says the file has (the 8-byte header length, the
/// header, the tensors' data up to the last offset), if the header reads.
fn described_len(bytes: &[u8]) -> Option<u64> {
    let n = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    let header = bytes.get(8..8usize.checked_add(usize::try_from(n).ok()?)?)?;
    let entries: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(header).ok()?;
    let end = entries
        .iter()
        .filter(|(name, _)| *name != "__metadata__")
        .filter_map(|(_, info)| info.get("data_offsets")?.get(1)?.as_u64())
        .max()
        .unwrap_or(0);
    8u64.checked_add(n)?.checked_add(end)
}
