//! Building an ONNX graph: weights as initializers, operators with their attributes, each output
//! named after the layer it belongs to.

use super::proto::{
    AttributeProto, Dimension, FLOAT, GraphProto, NodeProto, TensorProto, TensorShapeProto,
    TensorTypeProto, TypeProto, ValueInfoProto, attribute_type,
};

/// An attribute of an operator.
pub(crate) enum Attr {
    /// One int.
    Int(i64),
    /// A list of ints.
    Ints(Vec<i64>),
    /// One float.
    Float(f32),
}

/// A graph under construction.
#[derive(Default)]
pub(crate) struct Graph {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
}

impl Graph {
    /// Adds a weight of shape `dims` named `name`; returns the name.
    pub(crate) fn weight(&mut self, name: &str, dims: &[usize], values: &[f32]) -> String {
        debug_assert_eq!(dims.iter().product::<usize>(), values.len());
        self.initializers.push(TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: FLOAT,
            name: name.to_string(),
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        });
        name.to_string()
    }

    /// Adds operator `op` named `name` on `inputs`; its output is named `name` too.
    pub(crate) fn op(
        &mut self,
        op: &str,
        name: &str,
        inputs: &[&str],
        attributes: Vec<(&str, Attr)>,
    ) -> String {
        let attribute = attributes
            .into_iter()
            .map(|(key, value)| {
                let mut a = AttributeProto {
                    name: key.to_string(),
                    ..Default::default()
                };
                match value {
                    Attr::Int(i) => (a.r#type, a.i) = (attribute_type::INT, i),
                    Attr::Ints(ints) => (a.r#type, a.ints) = (attribute_type::INTS, ints),
                    Attr::Float(f) => (a.r#type, a.f) = (attribute_type::FLOAT, f),
                }
                a
            })
            .collect();
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![name.to_string()],
            name: name.to_string(),
            op_type: op.to_string(),
            attribute,
        });
        name.to_string()
    }

    /// The finished graph: `input` of shape `[batch, dims...]` (batch free) in, the value
    /// `last` (of `[batch, classes]`) out, renamed `output`.
    pub(crate) fn finish(
        mut self,
        name: &str,
        (input, dims): (&str, &[usize]),
        (last, output, classes): (&str, &str, usize),
    ) -> GraphProto {
        for node in &mut self.nodes {
            for value in node.output.iter_mut().chain(node.input.iter_mut()) {
                if value == last {
                    *value = output.to_string();
                }
            }
        }
        let value = |name: &str, fixed: &[usize], doc: &str| {
            let batch = Dimension {
                dim_value: None,
                dim_param: Some("batch".into()),
            };
            let rest = fixed.iter().map(|&d| Dimension {
                dim_value: Some(d as i64),
                dim_param: None,
            });
            ValueInfoProto {
                name: name.to_string(),
                r#type: Some(TypeProto {
                    tensor_type: Some(TensorTypeProto {
                        elem_type: FLOAT,
                        shape: Some(TensorShapeProto {
                            dim: std::iter::once(batch).chain(rest).collect(),
                        }),
                    }),
                }),
                doc_string: doc.to_string(),
            }
        };
        GraphProto {
            node: self.nodes,
            name: name.to_string(),
            initializer: self.initializers,
            input: vec![value(
                input,
                dims,
                "images, NCHW, pixels in [0, 1] (the network normalises them itself if it was trained to)",
            )],
            output: vec![value(
                output,
                &[classes],
                "logits (softmax gives the class probabilities)",
            )],
        }
    }
}
