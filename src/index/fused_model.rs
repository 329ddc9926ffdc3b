//! Load-time rewrite of a BERT-style embedding model into fused operators: each self-attention
//! block becomes one ONNX Runtime `Attention` operator, each exact GELU one `BiasGelu` (or
//! `Gelu`), and, when asked, each other product with int8 weights one [`product_op`] operator,
//! which rounds activations to 16 bits ([`super::matmul16`]). ONNX Runtime's own optimiser
//! leaves this model's blocks unfused: its exporter writes attention as scaled dot-product
//! attention with a NaN guard and GELU in an order the runtime does not recognise.
//!
//! Invariants: attention and GELU stay fp32 and equal to the original graph's up to float
//! rounding (the weights are materialised exactly as the graph computes them:
//! `int8 as f32 * scale`); the rounded products use the int8 weights and scales as stored, and
//! differ from fp32 only by the rounding of activations [`super::matmul16`] bounds; a block is
//! rewritten only when every part of it matches, and anything that does not match is left as
//! it is; nodes the rewrite leaves unused are dropped, other fields are copied verbatim. The
//! model file on disk is never changed, so its checksum still names the vectors it made.

use std::collections::{HashMap, HashSet};

use super::product_op;
use super::protobuf::{self, Field, Malformed, Value};

/// The ONNX Runtime operator domain of the fused operators.
const MS_DOMAIN: &str = "com.microsoft";
/// Name of the int32 copy of the attention mask that `Attention` takes.
const MASK_I32: &str = "rediscover.attention_mask_i32";
/// ONNX `TensorProto.DataType` values used here.
const FLOAT: i64 = 1;
const INT8: i64 = 3;
const INT32: i64 = 6;
/// ONNX `AttributeProto.AttributeType` values used here.
const ATTR_FLOAT: i64 = 1;
const ATTR_INT: i64 = 2;
/// A mask value at or below this removes a key from the softmax exactly (exp underflows to 0).
const MASKED: f32 = -1.0e4;

/// What a rewrite fused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fused {
    /// Attention blocks now run as one `Attention` operator each.
    pub attention: usize,
    /// GELU activations now run as one `BiasGelu` or `Gelu` operator each.
    pub gelu: usize,
    /// Products with int8 weights now run as [`product_op`] operators (activations rounded
    /// to 16 bits).
    pub rounded_products: usize,
}

/// Rewrites the ONNX `model`; `heads` is the number of attention heads (attention blocks are
/// left alone without it), `mask_input` the name of the graph's attention-mask input, and
/// `round_products` whether products with int8 weights run as [`product_op`] operators.
///
/// Returns `None` when nothing matched, so the original bytes should be used as they are.
pub(crate) fn rewrite(
    model: &[u8],
    heads: Option<usize>,
    mask_input: &str,
    round_products: bool,
) -> Result<Option<(Vec<u8>, Fused)>, Malformed> {
    let model_fields = protobuf::fields(model)?;
    let Some(graph_bytes) = model_fields
        .iter()
        .rev()
        .find(|f| f.number == 7)
        .and_then(Field::bytes)
    else {
        return Ok(None);
    };
    let graph = Graph::parse(graph_bytes)?;
    if graph.has_subgraphs {
        return Ok(None);
    }
    let mut plan = Plan::default();
    if let Some(heads) = heads.filter(|h| *h > 0 && graph.inputs.contains(&mask_input)) {
        for (index, node) in graph.nodes.iter().enumerate() {
            if node.is("Softmax")
                && let Some(block) = graph.attention(index, heads, mask_input)
            {
                plan.add_attention(block, heads);
            }
        }
    }
    for (index, node) in graph.nodes.iter().enumerate() {
        if node.is("Erf")
            && let Some(gelu) = graph.gelu(index)
        {
            plan.add_gelu(gelu);
        }
    }
    if round_products {
        for (index, node) in graph.nodes.iter().enumerate() {
            if node.is("MatMul")
                && let [input, weight] = node.inputs.as_slice()
                && !graph.initializers.contains_key(input)
                && let Some(weight) = graph.int8_weight(weight)
                && let [output] = node.outputs.as_slice()
                && !plan.absorbed.contains(*output)
            {
                plan.add_product(index, input, weight, output);
            }
        }
    }
    if plan.fused == Fused::default() {
        return Ok(None);
    }
    let new_graph = graph.emit(&plan, mask_input);
    let mut out = Vec::with_capacity(model.len() + new_graph.len());
    let mut has_ms_domain = false;
    let mut has_own_domain = false;
    for field in &model_fields {
        match field.number {
            7 => protobuf::put_bytes(&mut out, 7, &new_graph),
            8 => {
                let opset = protobuf::fields(field.bytes().ok_or(Malformed)?)?;
                let names = |domain: &str| {
                    opset
                        .iter()
                        .any(|f| f.number == 1 && f.str() == Some(domain))
                };
                has_ms_domain |= names(MS_DOMAIN);
                has_own_domain |= names(product_op::DOMAIN);
                out.extend_from_slice(field.raw);
            }
            _ => out.extend_from_slice(field.raw),
        }
    }
    let domains = [
        (MS_DOMAIN, !has_ms_domain),
        (
            product_op::DOMAIN,
            plan.fused.rounded_products > 0 && !has_own_domain,
        ),
    ];
    for (domain, _) in domains.iter().filter(|(_, missing)| *missing) {
        let mut opset = Vec::new();
        protobuf::put_bytes(&mut opset, 1, domain.as_bytes());
        protobuf::put_int(&mut opset, 2, 1);
        protobuf::put_bytes(&mut out, 8, &opset);
    }
    Ok(Some((out, plan.fused)))
}

/// A node of the graph, with the parts the matchers read.
struct Node<'a> {
    raw: &'a [u8],
    op: &'a str,
    domain: &'a str,
    inputs: Vec<&'a str>,
    outputs: Vec<&'a str>,
    attributes: Vec<Vec<Field<'a>>>,
}

impl<'a> Node<'a> {
    fn parse(raw: &'a [u8]) -> Result<Node<'a>, Malformed> {
        let fields = protobuf::fields(raw)?;
        let strings = |number: u32| -> Result<Vec<&'a str>, Malformed> {
            fields
                .iter()
                .filter(|f| f.number == number)
                .map(|f| f.str().ok_or(Malformed))
                .collect()
        };
        let single = |number: u32| {
            fields
                .iter()
                .rev()
                .find(|f| f.number == number)
                .and_then(Field::str)
        };
        Ok(Node {
            raw,
            op: single(4).unwrap_or(""),
            domain: single(7).unwrap_or(""),
            inputs: strings(1)?,
            outputs: strings(2)?,
            attributes: fields
                .iter()
                .filter(|f| f.number == 5)
                .map(|f| protobuf::fields(f.bytes().ok_or(Malformed)?))
                .collect::<Result<_, _>>()?,
        })
    }

    /// Whether this is the standard-domain operator `op`.
    fn is(&self, op: &str) -> bool {
        self.op == op && (self.domain.is_empty() || self.domain == "ai.onnx")
    }

    fn attribute(&self, name: &str) -> Option<&[Field<'a>]> {
        self.attributes
            .iter()
            .find(|a| a.iter().any(|f| f.number == 1 && f.str() == Some(name)))
            .map(Vec::as_slice)
    }

    fn int_attribute(&self, name: &str) -> Option<i64> {
        self.attribute(name)?
            .iter()
            .rev()
            .find_map(|f| match f.value {
                Value::Varint(v) if f.number == 3 => Some(v as i64),
                _ => None,
            })
    }

    fn ints_attribute(&self, name: &str) -> Option<Vec<i64>> {
        protobuf::repeated_ints(self.attribute(name)?, 8).ok()
    }

    fn output(&self) -> &'a str {
        self.outputs.first().copied().unwrap_or("")
    }
}

/// A constant tensor, as f32 values in row-major order.
#[derive(Debug, Clone, PartialEq)]
struct Const {
    dims: Vec<usize>,
    values: Vec<f32>,
}

impl Const {
    fn scalar(&self) -> Option<f32> {
        (self.values.len() == 1).then(|| self.values[0])
    }

    /// `self * other` with the broadcasts a weight-only quantised model uses: equal shapes, a
    /// scalar, or one scale per column.
    fn mul(&self, other: &Const) -> Option<Const> {
        let (big, small) = if self.values.len() >= other.values.len() {
            (self, other)
        } else {
            (other, self)
        };
        let values = if let Some(s) = small.scalar() {
            big.values.iter().map(|v| v * s).collect()
        } else if big.dims == small.dims {
            big.values
                .iter()
                .zip(&small.values)
                .map(|(a, b)| a * b)
                .collect()
        } else if big.dims.len() == 2
            && small.values.len() == big.dims[1]
            && (small.dims.len() == 1 || small.dims.first() == Some(&1))
        {
            big.values
                .chunks(big.dims[1])
                .flat_map(|row| row.iter().zip(&small.values).map(|(a, b)| a * b))
                .collect()
        } else {
            return None;
        };
        Some(Const {
            dims: big.dims.clone(),
            values,
        })
    }
}

/// An initializer's header and payload.
struct Tensor<'a> {
    dims: Vec<i64>,
    data_type: i64,
    fields: Vec<Field<'a>>,
}

impl<'a> Tensor<'a> {
    /// Its `raw_data` field, if it has one.
    fn raw_data(&self) -> Option<&'a [u8]> {
        self.fields
            .iter()
            .rev()
            .find(|f| f.number == 9)
            .and_then(Field::bytes)
    }

    /// Its values as f32 (float and int8 tensors stored in the model file).
    fn values(&self) -> Option<Vec<f32>> {
        let external = self
            .fields
            .iter()
            .any(|f| f.number == 14 && f.value == Value::Varint(1));
        if external {
            return None;
        }
        match (self.data_type, self.raw_data()) {
            (FLOAT, Some(raw)) => Some(
                raw.chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
            (FLOAT, None) => {
                let mut out = Vec::new();
                for field in self.fields.iter().filter(|f| f.number == 4) {
                    match field.value {
                        Value::Fixed32(bits) => out.push(f32::from_bits(bits)),
                        Value::Bytes(packed) => out.extend(
                            packed
                                .chunks_exact(4)
                                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
                        ),
                        _ => return None,
                    }
                }
                Some(out)
            }
            (INT8, Some(raw)) => Some(raw.iter().map(|b| f32::from(*b as i8)).collect()),
            (INT8, None) => Some(
                protobuf::repeated_ints(&self.fields, 5)
                    .ok()?
                    .into_iter()
                    .map(|v| v as i8 as f32)
                    .collect(),
            ),
            _ => None,
        }
    }
}

/// The parsed graph with its producer and consumer maps.
struct Graph<'a> {
    fields: Vec<Field<'a>>,
    nodes: Vec<Node<'a>>,
    initializers: HashMap<&'a str, Tensor<'a>>,
    producer: HashMap<&'a str, usize>,
    consumers: HashMap<&'a str, Vec<usize>>,
    inputs: Vec<&'a str>,
    outputs: Vec<&'a str>,
    has_subgraphs: bool,
}

/// `X @ W + b` with constant `W` (`[hidden, out]`) and `b` (`[out]`).
struct Projection<'a> {
    input: &'a str,
    /// The output of its `MatMul`.
    product: &'a str,
    weight: Const,
    bias: Const,
}

/// One self-attention block: three projections of the same input, the product of the scalar
/// factors on the query and key sides, and the node whose output the fused operator replaces.
struct AttentionBlock<'a> {
    query: Projection<'a>,
    key: Projection<'a>,
    value: Projection<'a>,
    scale: f32,
    last: usize,
    output: &'a str,
}

/// Int8 weights and their scales, as initializers of the graph.
struct Int8Weight<'a> {
    weights: &'a str,
    scales: &'a str,
}

/// An exact GELU `x * 0.5 * (1 + erf(x / sqrt 2))`, with `x = matmul + bias` when it is one.
struct Gelu<'a> {
    input: &'a str,
    bias: Option<&'a str>,
    last: usize,
    output: &'a str,
}

/// A structural step on the way from a projection to the attention scores.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    /// A reshape whose target's last dimension is known.
    Reshape(Option<i64>),
    Transpose(Vec<i64>),
}

impl<'a> Graph<'a> {
    fn parse(raw: &'a [u8]) -> Result<Graph<'a>, Malformed> {
        let fields = protobuf::fields(raw)?;
        let mut nodes = Vec::new();
        let mut initializers = HashMap::new();
        let mut inputs = Vec::new();
        let mut outputs = Vec::new();
        for field in &fields {
            match field.number {
                1 => nodes.push(Node::parse(field.bytes().ok_or(Malformed)?)?),
                5 => {
                    let tensor_fields = protobuf::fields(field.bytes().ok_or(Malformed)?)?;
                    let name = tensor_fields
                        .iter()
                        .rev()
                        .find(|f| f.number == 8)
                        .and_then(Field::str)
                        .unwrap_or("");
                    let data_type = tensor_fields
                        .iter()
                        .rev()
                        .find_map(|f| match f.value {
                            Value::Varint(v) if f.number == 2 => Some(v as i64),
                            _ => None,
                        })
                        .unwrap_or(0);
                    let dims = protobuf::repeated_ints(&tensor_fields, 1)?;
                    initializers.insert(
                        name,
                        Tensor {
                            dims,
                            data_type,
                            fields: tensor_fields,
                        },
                    );
                }
                11 | 12 => {
                    let info = protobuf::fields(field.bytes().ok_or(Malformed)?)?;
                    let name = info
                        .iter()
                        .find(|f| f.number == 1)
                        .and_then(Field::str)
                        .unwrap_or("");
                    if field.number == 11 {
                        inputs.push(name)
                    } else {
                        outputs.push(name)
                    }
                }
                _ => {}
            }
        }
        let mut producer = HashMap::new();
        let mut consumers: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut has_subgraphs = false;
        for (index, node) in nodes.iter().enumerate() {
            for output in &node.outputs {
                producer.insert(*output, index);
            }
            for input in node.inputs.iter().filter(|i| !i.is_empty()) {
                consumers.entry(*input).or_default().push(index);
            }
            has_subgraphs |= node
                .attributes
                .iter()
                .flatten()
                .any(|f| f.number == 6 || f.number == 11);
        }
        Ok(Graph {
            fields,
            nodes,
            initializers,
            producer,
            consumers,
            inputs,
            outputs,
            has_subgraphs,
        })
    }

    fn producer(&self, name: &str) -> Option<&Node<'a>> {
        self.producer.get(name).map(|i| &self.nodes[*i])
    }

    fn consumers(&self, name: &str) -> Vec<&Node<'a>> {
        self.consumers
            .get(name)
            .map(|c| c.iter().map(|i| &self.nodes[*i]).collect())
            .unwrap_or_default()
    }

    /// The only consumer of `name`, if it has exactly one and is not a graph output.
    fn sole_consumer(&self, name: &str) -> Option<&Node<'a>> {
        match self.consumers(name).as_slice() {
            [one] if !self.outputs.contains(&name) => Some(*one),
            _ => None,
        }
    }

    /// The value of `name` if the graph computes it from initializers alone (through `Cast` to
    /// float and `Mul`, as weight-only quantisation writes it).
    fn constant(&self, name: &str) -> Option<Const> {
        if let Some(tensor) = self.initializers.get(name) {
            let dims = tensor
                .dims
                .iter()
                .map(|d| usize::try_from(*d).ok())
                .collect::<Option<Vec<_>>>()?;
            let values = tensor.values()?;
            return (values.len() == dims.iter().product::<usize>())
                .then_some(Const { dims, values });
        }
        let node = self.producer(name)?;
        if node.is("Cast") && node.int_attribute("to") == Some(FLOAT) {
            self.constant(node.inputs.first()?)
        } else if node.is("Mul") && node.inputs.len() == 2 {
            self.constant(node.inputs[0])?
                .mul(&self.constant(node.inputs[1])?)
        } else {
            None
        }
    }

    fn scalar(&self, name: &str) -> Option<f32> {
        self.constant(name)?.scalar()
    }

    /// `name` when the graph computes it as `Cast(int8 initializer, to float) * scale` with a
    /// float initializer `scale` of one value or one per column: the weights and scales as
    /// stored.
    fn int8_weight(&self, name: &str) -> Option<Int8Weight<'a>> {
        let mul = self.producer(name)?;
        let [a, b] = mul.inputs.as_slice() else {
            return None;
        };
        if !mul.is("Mul") {
            return None;
        }
        let cast_of = |operand: &str| {
            let cast = self.producer(operand)?;
            let source = *cast.inputs.first()?;
            let tensor = self.initializers.get(source)?;
            (cast.is("Cast")
                && cast.int_attribute("to") == Some(FLOAT)
                && tensor.data_type == INT8
                && tensor.dims.len() == 2
                && tensor.dims.iter().all(|d| *d > 0))
            .then_some((source, tensor))
        };
        let ((weights, tensor), scales) = match (cast_of(a), cast_of(b)) {
            (Some(found), None) => (found, *b),
            (None, Some(found)) => (found, *a),
            _ => return None,
        };
        let columns = tensor.dims[1];
        let scale = self.initializers.get(scales)?;
        // One scale, or one per column.
        let shaped = match scale.dims.as_slice() {
            [] | [1] | [1, 1] => true,
            [n] | [1, n] => *n == columns,
            _ => false,
        };
        (scale.data_type == FLOAT && shaped).then_some(Int8Weight { weights, scales })
    }

    /// The operand of a two-input node that is not `known`.
    fn other<'n>(node: &'n Node<'a>, known: &str) -> Option<&'a str> {
        match node.inputs.as_slice() {
            [a, b] if *a == known => Some(*b),
            [a, b] if *b == known => Some(*a),
            _ => None,
        }
    }

    /// Whether `name` is computed (in part) from the graph input `input`.
    fn depends_on(&self, name: &str, input: &str) -> bool {
        let mut seen = HashSet::new();
        let mut stack = vec![name];
        while let Some(current) = stack.pop() {
            if current == input {
                return true;
            }
            if !seen.insert(current) {
                continue;
            }
            if let Some(node) = self.producer(current) {
                stack.extend(node.inputs.iter().copied());
            }
        }
        false
    }

    /// The last dimension a reshape's target shape names, when it is a constant or a `Concat`
    /// ending in one.
    fn last_dim(&self, shape: &str) -> Option<i64> {
        if let Some(c) = self.constant_ints(shape) {
            return c.last().copied();
        }
        let node = self.producer(shape)?;
        if node.is("Concat") {
            self.constant_ints(node.inputs.last()?)?.last().copied()
        } else {
            None
        }
    }

    fn constant_ints(&self, name: &str) -> Option<Vec<i64>> {
        let tensor = self.initializers.get(name)?;
        match (tensor.data_type, tensor.raw_data()) {
            (7, Some(raw)) => Some(
                raw.chunks_exact(8)
                    .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                    .collect(),
            ),
            (7, None) => protobuf::repeated_ints(&tensor.fields, 7).ok(),
            _ => None,
        }
    }

    /// Walks from `name` back through reshapes, transposes and scalar factors to a projection;
    /// returns the structural steps (from the projection outwards) and the scalar factor.
    fn trace(&self, name: &'a str) -> Option<(Projection<'a>, Vec<Step>, f32)> {
        let mut current = name;
        let mut steps = Vec::new();
        let mut factor = 1.0f32;
        for _ in 0..16 {
            let node = self.producer(current)?;
            let next = node.inputs.first().copied()?;
            if node.is("Reshape") {
                steps.push(Step::Reshape(
                    node.inputs.get(1).and_then(|s| self.last_dim(s)),
                ));
            } else if node.is("Transpose") {
                steps.push(Step::Transpose(node.ints_attribute("perm")?));
            } else if node.is("Mul") || node.is("Div") {
                let (operand, scalar) = match node.inputs.as_slice() {
                    [a, b] if self.scalar(b).is_some() => (*a, self.scalar(b)?),
                    [a, b] if node.is("Mul") && self.scalar(a).is_some() => (*b, self.scalar(a)?),
                    _ => return None,
                };
                factor = if node.is("Mul") {
                    factor * scalar
                } else {
                    factor / scalar
                };
                current = operand;
                continue;
            } else if node.is("Add") {
                steps.reverse();
                return Some((self.projection(node)?, steps, factor));
            } else {
                return None;
            }
            current = next;
        }
        None
    }

    /// `Add(MatMul(X, W), b)` with constant `W` and `b`.
    fn projection(&self, add: &Node<'a>) -> Option<Projection<'a>> {
        let (matmul, bias) = match add.inputs.as_slice() {
            [a, b] if self.producer(a).is_some_and(|n| n.is("MatMul")) => (self.producer(a)?, *b),
            [a, b] if self.producer(b).is_some_and(|n| n.is("MatMul")) => (self.producer(b)?, *a),
            _ => return None,
        };
        let [input, weight] = matmul.inputs.as_slice() else {
            return None;
        };
        let weight = self.constant(weight)?;
        let bias = self.constant(bias)?;
        let product = *matmul.outputs.first()?;
        (weight.dims.len() == 2 && bias.dims == [weight.dims[1]]).then_some(Projection {
            input,
            product,
            weight,
            bias,
        })
    }

    /// Matches the attention block around the softmax at `index`.
    fn attention(
        &self,
        index: usize,
        heads: usize,
        mask_input: &str,
    ) -> Option<AttentionBlock<'a>> {
        let softmax = &self.nodes[index];
        if !matches!(softmax.int_attribute("axis"), None | Some(-1) | Some(3)) {
            return None;
        }
        let probabilities = softmax.output();
        // scores + mask, where the mask is 0 for kept keys and very negative for padding.
        let add = self.producer(softmax.inputs.first()?)?;
        if !add.is("Add") {
            return None;
        }
        let (scores, mask) = match add.inputs.as_slice() {
            [a, b] if self.producer(a).is_some_and(|n| n.is("MatMul")) => (self.producer(a)?, *b),
            [a, b] if self.producer(b).is_some_and(|n| n.is("MatMul")) => (self.producer(b)?, *a),
            _ => return None,
        };
        let mask_node = self.producer(mask)?;
        let masks_padding = mask_node.is("Where")
            && mask_node.inputs.len() == 3
            && self.scalar(mask_node.inputs[1]) == Some(0.0)
            && self
                .scalar(mask_node.inputs[2])
                .is_some_and(|v| v <= MASKED)
            && self.depends_on(mask_node.inputs[0], mask_input);
        if !masks_padding {
            return None;
        }
        // probabilities (optionally through the exporter's NaN guard) @ V
        let mut mixed_from = probabilities;
        let consumers = self.consumers(probabilities);
        if let [a, b] = consumers.as_slice() {
            let (is_nan, guard) = if a.is("IsNaN") { (a, b) } else { (b, a) };
            let guarded = is_nan.is("IsNaN")
                && guard.is("Where")
                && guard.inputs.len() == 3
                && guard.inputs[0] == is_nan.output()
                && self.scalar(guard.inputs[1]) == Some(0.0)
                && guard.inputs[2] == probabilities;
            if !guarded {
                return None;
            }
            mixed_from = guard.output();
        }
        let mix = self.sole_consumer(mixed_from)?;
        if !mix.is("MatMul") || mix.inputs.first() != Some(&mixed_from) {
            return None;
        }
        let merge = self.sole_consumer(mix.output())?;
        if !merge.is("Transpose") || merge.ints_attribute("perm")? != [0, 2, 1, 3] {
            return None;
        }
        let last = self.sole_consumer(merge.output())?;
        if !last.is("Reshape") {
            return None;
        }
        let last_index = *self.producer.get(last.output())?;
        let (query, q_steps, q_factor) = self.trace(scores.inputs.first().copied()?)?;
        let (key, k_steps, k_factor) = self.trace(scores.inputs.get(1).copied()?)?;
        let (value, v_steps, v_factor) = self.trace(mix.inputs.get(1).copied()?)?;
        let hidden = query.weight.dims[0];
        if hidden % heads != 0 || v_factor != 1.0 {
            return None;
        }
        let head_size = (hidden / heads) as i64;
        let split = [
            Step::Reshape(Some(head_size)),
            Step::Transpose(vec![0, 2, 1, 3]),
        ];
        let key_transposed = [
            vec![Step::Transpose(vec![0, 1, 3, 2])],
            vec![
                Step::Reshape(None),
                Step::Transpose(vec![0, 2, 1]),
                Step::Reshape(None),
            ],
        ];
        let key_ok = k_steps.len() > 2
            && k_steps[..2] == split
            && key_transposed.iter().any(|t| {
                k_steps[2..].iter().zip(t).all(|(a, b)| step_matches(a, b))
                    && k_steps.len() - 2 == t.len()
            });
        let same_shape =
            |p: &Projection<'_>| p.input == query.input && p.weight.dims == [hidden, hidden];
        let merged_ok = matches!(last.inputs.get(1).map(|s| self.last_dim(s)), Some(Some(d)) if d == -1 || d == hidden as i64);
        if q_steps != split
            || v_steps != split
            || !key_ok
            || !same_shape(&key)
            || !same_shape(&value)
            || !same_shape(&query)
            || !merged_ok
        {
            return None;
        }
        Some(AttentionBlock {
            query,
            key,
            value,
            scale: q_factor * k_factor,
            last: last_index,
            output: last.output(),
        })
    }

    /// Matches the exact GELU around the `Erf` at `index`.
    fn gelu(&self, index: usize) -> Option<Gelu<'a>> {
        let erf = &self.nodes[index];
        let divide = self.producer(erf.inputs.first()?)?;
        let [x, by] = divide.inputs.as_slice() else {
            return None;
        };
        let by = self.scalar(by)?;
        let scaled_ok = (divide.is("Div") && (by - std::f32::consts::SQRT_2).abs() < 1e-6)
            || (divide.is("Mul") && (by - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
        let plus_one = self.sole_consumer(erf.output())?;
        if !scaled_ok
            || !plus_one.is("Add")
            || self.scalar(Self::other(plus_one, erf.output())?) != Some(1.0)
        {
            return None;
        }
        // x * (0.5 * (1 + erf)) or (x * (1 + erf)) * 0.5
        let first = self.sole_consumer(plus_one.output())?;
        let second = self.sole_consumer(first.output())?;
        let first_operand = Self::other(first, plus_one.output())?;
        let second_operand = Self::other(second, first.output())?;
        let halves = |name: &str| self.scalar(name) == Some(0.5);
        let shape_ok = first.is("Mul")
            && second.is("Mul")
            && ((halves(first_operand) && second_operand == *x)
                || (first_operand == *x && halves(second_operand)));
        if !shape_ok {
            return None;
        }
        let last = *self.producer.get(second.output())?;
        let biased = self.producer(x).filter(|n| n.is("Add")).and_then(|add| {
            let [a, b] = add.inputs.as_slice() else {
                return None;
            };
            let (product, bias) = if self.producer(a).is_some_and(|n| n.is("MatMul")) {
                (*a, *b)
            } else {
                (*b, *a)
            };
            let is_vector = self
                .initializers
                .get(bias)
                .is_some_and(|t| t.dims.len() == 1);
            (self.producer(product).is_some_and(|n| n.is("MatMul")) && is_vector)
                .then_some((product, bias))
        });
        let (input, bias) = biased.map_or((*x, None), |(product, bias)| (product, Some(bias)));
        Some(Gelu {
            input,
            bias,
            last,
            output: second.output(),
        })
    }

    /// The rewritten graph: live nodes (new ones in the places of those they replace), then
    /// the other fields verbatim without unused initializers, then the new initializers.
    fn emit(&self, plan: &Plan, mask_input: &str) -> Vec<u8> {
        // Every node in order, before dead-node removal.
        let mut all: Vec<NewNode> = Vec::with_capacity(self.nodes.len() + 1);
        if plan.fused.attention > 0 {
            let mut cast = NodeBuilder::new(
                "Cast",
                "",
                vec![mask_input.to_owned()],
                vec![MASK_I32.to_owned()],
            );
            cast.int("to", INT32);
            all.push(cast.finish());
        }
        for (index, node) in self.nodes.iter().enumerate() {
            match plan.replacements.get(&index) {
                Some(new) => all.push(new.clone()),
                None => all.push(NewNode {
                    bytes: node.raw.to_vec(),
                    inputs: node.inputs.iter().map(|s| s.to_string()).collect(),
                    outputs: node.outputs.iter().map(|s| s.to_string()).collect(),
                }),
            }
        }
        // Keep what the graph outputs need.
        let mut producer: HashMap<&str, usize> = HashMap::new();
        for (index, node) in all.iter().enumerate() {
            for output in &node.outputs {
                producer.insert(output, index);
            }
        }
        let mut live = vec![false; all.len()];
        let mut stack: Vec<&str> = self.outputs.clone();
        while let Some(name) = stack.pop() {
            if let Some(&index) = producer.get(name)
                && !live[index]
            {
                live[index] = true;
                stack.extend(all[index].inputs.iter().map(String::as_str));
            }
        }
        let used: HashSet<&str> = all
            .iter()
            .zip(&live)
            .filter(|(_, live)| **live)
            .flat_map(|(node, _)| node.inputs.iter().map(String::as_str))
            .chain(self.outputs.iter().copied())
            .collect();
        let mut out = Vec::new();
        for (node, live) in all.iter().zip(&live) {
            if *live {
                protobuf::put_bytes(&mut out, 1, &node.bytes);
            }
        }
        for field in &self.fields {
            let keep = match field.number {
                1 => false,
                5 => {
                    let name = field
                        .bytes()
                        .and_then(|b| protobuf::fields(b).ok())
                        .and_then(|f| f.iter().rev().find(|f| f.number == 8).and_then(Field::str));
                    name.is_none_or(|n| used.contains(n))
                }
                _ => true,
            };
            if keep {
                out.extend_from_slice(field.raw);
            }
        }
        for tensor in &plan.initializers {
            protobuf::put_bytes(&mut out, 5, tensor);
        }
        out
    }
}

fn step_matches(found: &Step, wanted: &Step) -> bool {
    match (found, wanted) {
        (Step::Reshape(_), Step::Reshape(None)) => true,
        _ => found == wanted,
    }
}

/// The new nodes (by the index of the node each replaces) and initializers.
#[derive(Default)]
struct Plan {
    replacements: HashMap<usize, NewNode>,
    /// Outputs of the products a fused `Attention` computes itself.
    absorbed: HashSet<String>,
    initializers: Vec<Vec<u8>>,
    fused: Fused,
}

impl Plan {
    fn add_attention(&mut self, block: AttentionBlock<'_>, heads: usize) {
        if self.replacements.contains_key(&block.last) {
            return;
        }
        let n = self.fused.attention;
        let hidden = block.query.weight.dims[0];
        let mut weight = Vec::with_capacity(hidden * hidden * 3);
        for row in 0..hidden {
            for projection in [&block.query, &block.key, &block.value] {
                weight
                    .extend_from_slice(&projection.weight.values[row * hidden..(row + 1) * hidden]);
            }
        }
        let bias: Vec<f32> = [&block.query, &block.key, &block.value]
            .iter()
            .flat_map(|p| p.bias.values.iter().copied())
            .collect();
        let weight_name = format!("rediscover.attention.{n}.qkv_weight");
        let bias_name = format!("rediscover.attention.{n}.qkv_bias");
        self.initializers
            .push(float_tensor(&weight_name, &[hidden, 3 * hidden], &weight));
        self.initializers
            .push(float_tensor(&bias_name, &[3 * hidden], &bias));
        let mut node = NodeBuilder::new(
            "Attention",
            MS_DOMAIN,
            vec![
                block.query.input.to_owned(),
                weight_name,
                bias_name,
                MASK_I32.to_owned(),
            ],
            vec![block.output.to_owned()],
        );
        node.int("num_heads", heads as i64);
        node.float("scale", block.scale);
        self.replacements.insert(block.last, node.finish());
        self.absorbed.extend(
            [&block.query, &block.key, &block.value]
                .iter()
                .map(|p| p.product.to_owned()),
        );
        self.fused.attention += 1;
    }

    /// Replaces the `MatMul` at `index` by a [`product_op`] operator.
    fn add_product(&mut self, index: usize, input: &str, weight: Int8Weight<'_>, output: &str) {
        if self.replacements.contains_key(&index) {
            return;
        }
        let node = NodeBuilder::new(
            product_op::ROUNDED_PRODUCT,
            product_op::DOMAIN,
            vec![
                input.to_owned(),
                weight.weights.to_owned(),
                weight.scales.to_owned(),
            ],
            vec![output.to_owned()],
        );
        self.replacements.insert(index, node.finish());
        self.fused.rounded_products += 1;
    }

    fn add_gelu(&mut self, gelu: Gelu<'_>) {
        if self.replacements.contains_key(&gelu.last) {
            return;
        }
        let op = if gelu.bias.is_some() {
            "BiasGelu"
        } else {
            "Gelu"
        };
        let inputs = std::iter::once(gelu.input).chain(gelu.bias);
        let node = NodeBuilder::new(
            op,
            MS_DOMAIN,
            inputs.map(str::to_owned).collect(),
            vec![gelu.output.to_owned()],
        );
        self.replacements.insert(gelu.last, node.finish());
        self.fused.gelu += 1;
    }
}

/// Writes a `NodeProto`.
struct NodeBuilder {
    bytes: Vec<u8>,
    inputs: Vec<String>,
    outputs: Vec<String>,
}

impl NodeBuilder {
    fn new(op: &str, domain: &str, inputs: Vec<String>, outputs: Vec<String>) -> NodeBuilder {
        let mut bytes = Vec::new();
        for input in &inputs {
            protobuf::put_bytes(&mut bytes, 1, input.as_bytes());
        }
        for output in &outputs {
            protobuf::put_bytes(&mut bytes, 2, output.as_bytes());
        }
        protobuf::put_bytes(
            &mut bytes,
            3,
            format!("rediscover.{op}.{}", outputs.join(".")).as_bytes(),
        );
        protobuf::put_bytes(&mut bytes, 4, op.as_bytes());
        if !domain.is_empty() {
            protobuf::put_bytes(&mut bytes, 7, domain.as_bytes());
        }
        NodeBuilder {
            bytes,
            inputs,
            outputs,
        }
    }

    fn int(&mut self, name: &str, value: i64) {
        self.attribute(name, ATTR_INT, |a| protobuf::put_int(a, 3, value));
    }

    fn float(&mut self, name: &str, value: f32) {
        self.attribute(name, ATTR_FLOAT, |a| protobuf::put_f32(a, 2, value));
    }

    /// Adds an `AttributeProto` of type `kind` whose value `value` writes.
    fn attribute(&mut self, name: &str, kind: i64, value: impl FnOnce(&mut Vec<u8>)) {
        let mut attribute = Vec::new();
        protobuf::put_bytes(&mut attribute, 1, name.as_bytes());
        value(&mut attribute);
        protobuf::put_int(&mut attribute, 20, kind);
        protobuf::put_bytes(&mut self.bytes, 5, &attribute);
    }

    fn finish(self) -> NewNode {
        NewNode {
            bytes: self.bytes,
            inputs: self.inputs,
            outputs: self.outputs,
        }
    }
}

/// A node of the rewritten graph: its `NodeProto` bytes and the names it reads and writes.
#[derive(Clone)]
struct NewNode {
    bytes: Vec<u8>,
    inputs: Vec<String>,
    outputs: Vec<String>,
}

/// Writes a float `TensorProto` with raw little-endian data.
fn float_tensor(name: &str, dims: &[usize], values: &[f32]) -> Vec<u8> {
    let mut out = Vec::new();
    for dim in dims {
        protobuf::put_int(&mut out, 1, *dim as i64);
    }
    protobuf::put_int(&mut out, 2, FLOAT);
    protobuf::put_bytes(&mut out, 8, name.as_bytes());
    let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    protobuf::put_bytes(&mut out, 9, &raw);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(name: &str, dims: &[usize], values: &[f32]) -> Vec<u8> {
        float_tensor(name, dims, values)
    }

    fn value_info(name: &str) -> Vec<u8> {
        let mut out = Vec::new();
        protobuf::put_bytes(&mut out, 1, name.as_bytes());
        out
    }

    /// A model of `nodes` and `initializers` with graph inputs `inputs` and output `output`.
    fn model(
        nodes: Vec<NodeBuilder>,
        initializers: Vec<Vec<u8>>,
        inputs: &[&str],
        output: &str,
    ) -> Vec<u8> {
        let mut graph = Vec::new();
        for node in nodes {
            protobuf::put_bytes(&mut graph, 1, &node.finish().bytes);
        }
        protobuf::put_bytes(&mut graph, 2, b"test");
        for tensor in initializers {
            protobuf::put_bytes(&mut graph, 5, &tensor);
        }
        for input in inputs {
            protobuf::put_bytes(&mut graph, 11, &value_info(input));
        }
        protobuf::put_bytes(&mut graph, 12, &value_info(output));
        let mut opset = Vec::new();
        protobuf::put_bytes(&mut opset, 1, b"");
        protobuf::put_int(&mut opset, 2, 17);
        let mut out = Vec::new();
        protobuf::put_int(&mut out, 1, 8);
        protobuf::put_bytes(&mut out, 8, &opset);
        protobuf::put_bytes(&mut out, 7, &graph);
        out
    }

    fn node(op: &str, inputs: &[&str], output: &str) -> NodeBuilder {
        NodeBuilder::new(
            op,
            "",
            inputs.iter().map(|s| s.to_string()).collect(),
            vec![output.to_owned()],
        )
    }

    /// `y = gelu(x @ w + b)` written as the exporter writes it (GELU when `half` is 0.5).
    fn gelu_model(half: f32) -> Vec<u8> {
        model(
            vec![
                node("MatMul", &["x", "w"], "xw"),
                node("Add", &["xw", "b"], "h"),
                node("Div", &["h", "sqrt2"], "scaled"),
                node("Erf", &["scaled"], "erf"),
                node("Add", &["erf", "one"], "plus_one"),
                node("Mul", &["half", "plus_one"], "halved"),
                node("Mul", &["h", "halved"], "y"),
            ],
            vec![
                tensor("w", &[2, 2], &[1.0, 2.0, 3.0, 4.0]),
                tensor("b", &[2], &[0.5, -0.5]),
                tensor("sqrt2", &[], &[std::f32::consts::SQRT_2]),
                tensor("one", &[], &[1.0]),
                tensor("half", &[], &[half]),
            ],
            &["x"],
            "y",
        )
    }

    /// (op types of the nodes, initializer names, opset domains) of a model.
    fn summary(model: &[u8]) -> (Vec<String>, Vec<String>, Vec<String>) {
        let fields = protobuf::fields(model).unwrap();
        let graph = Graph::parse(
            fields
                .iter()
                .find(|f| f.number == 7)
                .unwrap()
                .bytes()
                .unwrap(),
        )
        .unwrap();
        let ops = graph.nodes.iter().map(|n| n.op.to_owned()).collect();
        let mut initializers: Vec<String> =
            graph.initializers.keys().map(|k| k.to_string()).collect();
        initializers.sort();
        let domains = fields
            .iter()
            .filter(|f| f.number == 8)
            .map(|f| {
                let opset = protobuf::fields(f.bytes().unwrap()).unwrap();
                opset
                    .iter()
                    .find(|f| f.number == 1)
                    .and_then(Field::str)
                    .unwrap_or("")
                    .to_owned()
            })
            .collect();
        (ops, initializers, domains)
    }

    #[test]
    fn an_exported_gelu_becomes_one_bias_gelu_and_its_dead_parts_go() {
        let (rewritten, fused) = rewrite(&gelu_model(0.5), None, "attention_mask", false)
            .unwrap()
            .unwrap();
        let expected = Fused {
            gelu: 1,
            ..Fused::default()
        };
        assert_eq!(fused, expected);
        let (ops, initializers, domains) = summary(&rewritten);
        assert_eq!(ops, ["MatMul", "BiasGelu"]);
        assert_eq!(initializers, ["b", "w"]);
        assert_eq!(domains, ["", MS_DOMAIN]);
    }

    #[test]
    fn a_gelu_with_another_constant_is_left_alone() {
        assert_eq!(
            rewrite(&gelu_model(0.25), None, "attention_mask", false),
            Ok(None)
        );
    }

    #[test]
    fn a_model_without_the_patterns_is_left_alone_and_garbage_is_malformed() {
        let plain = model(
            vec![node("MatMul", &["x", "w"], "y")],
            vec![tensor("w", &[2, 2], &[1.0, 2.0, 3.0, 4.0])],
            &["x"],
            "y",
        );
        assert_eq!(rewrite(&plain, Some(12), "attention_mask", true), Ok(None));
        assert_eq!(
            rewrite(&[0x0b, 0x01], Some(12), "attention_mask", true),
            Err(Malformed)
        );
    }

    /// `y = x @ (Cast(wq) * ws)`: int8 weights as a weight-only quantised export writes them,
    /// with `scales` as `ws` (dims `[1, len]`).
    fn int8_model(scales: &[f32]) -> Vec<u8> {
        let mut wq = Vec::new();
        for dim in [2i64, 2] {
            protobuf::put_int(&mut wq, 1, dim);
        }
        protobuf::put_int(&mut wq, 2, INT8);
        protobuf::put_bytes(&mut wq, 8, b"wq");
        protobuf::put_bytes(&mut wq, 9, &[1u8, 0xff, 127, 0x80]);
        let mut cast = node("Cast", &["wq"], "wf");
        cast.int("to", FLOAT);
        model(
            vec![
                cast,
                node("Mul", &["wf", "ws"], "w"),
                node("MatMul", &["x", "w"], "y"),
            ],
            vec![wq, tensor("ws", &[1, scales.len()], scales)],
            &["x"],
            "y",
        )
    }

    #[test]
    fn a_product_with_int8_weights_becomes_a_rounded_product_when_asked() {
        let (rewritten, fused) = rewrite(&int8_model(&[0.5, 0.25]), None, "attention_mask", true)
            .unwrap()
            .unwrap();
        let expected = Fused {
            rounded_products: 1,
            ..Fused::default()
        };
        assert_eq!(fused, expected);
        let (ops, initializers, domains) = summary(&rewritten);
        assert_eq!(ops, [product_op::ROUNDED_PRODUCT]);
        // The int8 weights and their scales as stored, not the dead Cast and Mul.
        assert_eq!(initializers, ["wq", "ws"]);
        assert!(
            domains.iter().any(|d| d == product_op::DOMAIN),
            "{domains:?}"
        );
        // One scale for every column also matches; other counts, or not asking, do not.
        assert!(
            rewrite(&int8_model(&[0.5]), None, "attention_mask", true)
                .unwrap()
                .is_some()
        );
        assert_eq!(
            rewrite(&int8_model(&[0.5, 0.25, 1.0]), None, "attention_mask", true),
            Ok(None)
        );
        assert_eq!(
            rewrite(&int8_model(&[0.5, 0.25]), None, "attention_mask", false),
            Ok(None)
        );
    }

    #[test]
    fn per_column_scales_multiply_each_column() {
        let weights = Const {
            dims: vec![2, 2],
            values: vec![1.0, 2.0, 3.0, 4.0],
        };
        let scales = Const {
            dims: vec![1, 2],
            values: vec![10.0, 100.0],
        };
        let product = scales.mul(&weights).unwrap();
        assert_eq!(product.values, [10.0, 200.0, 30.0, 400.0]);
        assert_eq!(product.dims, [2, 2]);
        let odd = Const {
            dims: vec![3],
            values: vec![1.0, 2.0, 3.0],
        };
        assert_eq!(weights.mul(&odd), None);
    }
}
