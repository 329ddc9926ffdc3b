//! The custom ONNX Runtime operator that runs [`super::matmul16`] inside a session: the product
//! of fp32 activations with int8 weights and their column scales, activations rounded to 16
//! bits per row.
//!
//! Invariants: the weights are packed once, when a session builds the kernel, from constant
//! initializers (an operator whose weights are not constant fails the session's creation), and
//! sessions of the same model share one packed copy (compared in full, never by a hash); the
//! activations' last dimension must equal the weights' rows, or the run fails with a message;
//! rows are split over the session's own thread pool in [`matmul16::BLOCK_ROWS`] blocks, so a
//! one-thread session stays on its caller's thread.

use std::cell::RefCell;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use ort::operator::{
    BoxedKernel, ComputeContext, KernelContext, Operator, OperatorDomain, OperatorInput,
    OperatorOutput,
};
use ort::value::{DynTensorValueType, TensorElementType};

use super::matmul16::{self, Rounded, Weights};

/// The operator domain of this module's operator in a rewritten graph.
pub(crate) const DOMAIN: &str = "rediscover";
/// Name of the operator: inputs `x` (`[..., inner]`, fp32), `weights` (`[inner, columns]`,
/// int8, constant) and `scales` (one or `columns` fp32 values, constant); output
/// `x · (weights · scales)`, shaped `[..., columns]`.
pub(crate) const ROUNDED_PRODUCT: &str = "RoundedProduct";

/// Packed weights in use by some session, so the next session of the same model shares them.
static PACKED: Mutex<Vec<Weak<Weights>>> = Mutex::new(Vec::new());

thread_local! {
    /// Each thread's rounded block of activations, reused between calls.
    static SCRATCH: RefCell<Rounded> = RefCell::new(Rounded::default());
}

/// The domain holding the operator, to register on a session.
pub(crate) fn domain() -> ort::Result<OperatorDomain> {
    OperatorDomain::new(DOMAIN)?.add(RoundedProduct)
}

/// See [`ROUNDED_PRODUCT`].
struct RoundedProduct;

impl Operator for RoundedProduct {
    type Kernel<'attr> = BoxedKernel<'attr>;

    fn name(&self) -> &str {
        ROUNDED_PRODUCT
    }

    fn inputs(&self) -> impl IntoIterator<Item = OperatorInput> {
        [
            OperatorInput::required(TensorElementType::Float32),
            OperatorInput::required(TensorElementType::Int8),
            OperatorInput::required(TensorElementType::Float32),
        ]
    }

    fn outputs(&self) -> impl IntoIterator<Item = OperatorOutput> {
        [OperatorOutput::required(TensorElementType::Float32)]
    }

    fn create_kernel<'attr>(&self, info: &KernelContext<'attr>) -> ort::Result<BoxedKernel<'attr>> {
        let weights = info.constant_input::<DynTensorValueType>(1)?;
        let (shape, values) = weights.try_extract_tensor::<i8>()?;
        let [inner, columns] = shape[..] else {
            return Err(ort::Error::new(format!(
                "{ROUNDED_PRODUCT}: weights of shape {shape:?}, expected [inner, columns]"
            )));
        };
        let scales = info.constant_input::<DynTensorValueType>(2)?;
        let (_, scales) = scales.try_extract_tensor::<f32>()?;
        let dimension = |d: i64| usize::try_from(d).unwrap_or(0);
        let packed = shared(values, dimension(inner), dimension(columns), scales)
            .map_err(|e| ort::Error::new(format!("{ROUNDED_PRODUCT}: {e}")))?;
        Ok(Box::new(move |ctx: &ComputeContext| product(ctx, &packed)))
    }
}

/// The packed weights another live session already uses, or newly packed ones.
fn shared(
    values: &[i8],
    inner: usize,
    columns: usize,
    scales: &[f32],
) -> Result<Arc<Weights>, matmul16::ShapeError> {
    let mut packed = PACKED.lock().unwrap_or_else(PoisonError::into_inner);
    packed.retain(|w| w.strong_count() > 0);
    if let Some(found) = packed
        .iter()
        .filter_map(Weak::upgrade)
        .find(|w| w.packs(values, inner, columns, scales))
    {
        return Ok(found);
    }
    let new = Arc::new(Weights::new(values, inner, columns, scales)?);
    packed.push(Arc::downgrade(&new));
    Ok(new)
}

fn product(ctx: &ComputeContext, weights: &Weights) -> ort::Result<()> {
    let x = ctx
        .input(0)?
        .ok_or_else(|| ort::Error::new(format!("{ROUNDED_PRODUCT}: no x input")))?;
    let (x_shape, x) = x.try_extract_tensor::<f32>()?;
    if x_shape.last().copied() != i64::try_from(weights.inner()).ok() {
        return Err(ort::Error::new(format!(
            "{ROUNDED_PRODUCT}: x has shape {x_shape:?}, the weights {} rows",
            weights.inner()
        )));
    }
    let mut out_shape = x_shape.to_vec();
    if let Some(last) = out_shape.last_mut() {
        *last = weights.columns() as i64;
    }
    let mut output = ctx
        .output(0, out_shape)?
        .ok_or_else(|| ort::Error::new(format!("{ROUNDED_PRODUCT}: no output")))?;
    let (_, out) = output.try_extract_tensor_mut::<f32>()?;
    let rows = matmul16::check(x, weights, out)
        .map_err(|e| ort::Error::new(format!("{ROUNDED_PRODUCT}: {e}")))?;
    let (inner, columns) = (weights.inner(), weights.columns());
    let out = Disjoint::new(out);
    ctx.par_for(rows.div_ceil(matmul16::BLOCK_ROWS), 0, |block| {
        let first = block * matmul16::BLOCK_ROWS;
        let count = (rows - first).min(matmul16::BLOCK_ROWS);
        let x = &x[first * inner..(first + count) * inner];
        // SAFETY: block b alone writes rows 64·b..64·b + count.
        let out = unsafe { out.slice(first * columns, count * columns) };
        SCRATCH.with_borrow_mut(|rounded| matmul16::rows_product(x, weights, out, rounded));
    })
}

/// An output buffer that parallel pieces of work write in disjoint parts.
struct Disjoint {
    start: *mut f32,
    len: usize,
}

// SAFETY: the pieces of work that share it write disjoint ranges (each caller's promise).
unsafe impl Sync for Disjoint {}
// SAFETY: as above.
unsafe impl Send for Disjoint {}

impl Disjoint {
    fn new(buffer: &mut [f32]) -> Disjoint {
        Disjoint {
            start: buffer.as_mut_ptr(),
            len: buffer.len(),
        }
    }

    /// The range `offset..offset + len`, to write.
    ///
    /// # Safety
    /// No other piece of work reads or writes that range while the slice lives.
    #[allow(clippy::mut_from_ref)]
    unsafe fn slice(&self, offset: usize, len: usize) -> &mut [f32] {
        assert!(offset + len <= self.len);
        // SAFETY: in bounds (checked), and exclusive (the caller's promise).
        unsafe { std::slice::from_raw_parts_mut(self.start.add(offset), len) }
    }
}
