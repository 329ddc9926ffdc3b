//! Products of fp32 activations with int8 weights, computed in integers: each row of the
//! activations is rounded to 16 bits under its own scale, its two largest values excepted, and
//! multiplied with AVX2's `vpmaddwd`, which does twice the multiply-adds per instruction that
//! fp32 FMA does.
//!
//! Invariants: the weights are used exactly (int8 times one fp32 scale per column, as a
//! weight-only quantised model stores them); an activation is off by at most half a step of
//! its row's scale, `max |x| / 32767` over the row without its [`OUTLIERS`] largest values,
//! which are multiplied exactly in fp32; int32 sums never overflow (at most
//! [`PAIRS_PER_CHUNK`] pairs are summed before the sum moves into fp32); a row with a value
//! that is not finite is computed in fp32, so it propagates as it would in fp32; the AVX2
//! kernel and the portable one compute the same sums in the same order, so they agree exactly.

/// Columns per packed panel: two AVX2 registers of eight int32 sums.
const PANEL: usize = 16;
/// Rows the AVX2 kernel computes at once (eight accumulators, two weight registers).
const TILE_ROWS: usize = 4;
/// Pairs of products summed in int32 before the sum is scaled into fp32:
/// 192 · 2 · 32767 · 128 < 2³¹.
pub const PAIRS_PER_CHUNK: usize = 192;
/// Largest values of a row (by magnitude) kept exact instead of setting its scale: a model's
/// hidden states put a few channels far above the rest (28 against a median of 1.4 here).
pub const OUTLIERS: usize = 2;
/// Rows rounded and multiplied as one piece of work.
pub const BLOCK_ROWS: usize = 64;
/// The largest rounded magnitude.
const LEVELS: f32 = 32767.0;

/// Why weights cannot be packed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    /// The weights are not `rows · columns` long, or a dimension is zero.
    #[error("int8 weights of {len} values do not make a {rows} x {columns} matrix")]
    Weights {
        /// Values given.
        len: usize,
        /// Rows (the product's inner dimension).
        rows: usize,
        /// Columns.
        columns: usize,
    },
    /// There is neither one scale nor one per column.
    #[error("{scales} scales for {columns} columns (one, or one per column)")]
    Scales {
        /// Scales given.
        scales: usize,
        /// Columns.
        columns: usize,
    },
    /// The activations do not have the weights' inner dimension, or the output is too short.
    #[error(
        "activations of {len} values are not rows of {inner}, or the output is not {rows} x {columns}"
    )]
    Activations {
        /// Values given.
        len: usize,
        /// The weights' rows.
        inner: usize,
        /// Rows of activations.
        rows: usize,
        /// The weights' columns.
        columns: usize,
    },
}

/// One pair of weight rows across a panel's sixteen columns: one cache line.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(64))]
struct PairLine([i16; PANEL * 2]);

/// Int8 weights with their column scales, packed for the kernels.
#[derive(Debug, Clone)]
pub struct Weights {
    /// Rows of the weight matrix (the product's inner dimension).
    inner: usize,
    /// Columns of the weight matrix.
    columns: usize,
    /// `inner` rounded up to pairs.
    pairs: usize,
    /// Panel `p`, pair `i`: `packed[p · pairs + i].0[2c + {0, 1}]` holds rows `2i` and
    /// `2i + 1` of the panel's column `c`; columns and rows past the matrix are zero.
    packed: Vec<PairLine>,
    /// One scale per column, zero past the matrix.
    scales: Vec<f32>,
    /// The int8 weights row by row, for the exact outliers.
    rows: Vec<i8>,
}

impl Weights {
    /// Packs `weights` (`inner · columns`, row-major) whose column `c` is scaled by
    /// `scales[c]`, or by `scales[0]` when there is one scale.
    pub fn new(
        weights: &[i8],
        inner: usize,
        columns: usize,
        scales: &[f32],
    ) -> Result<Weights, ShapeError> {
        if inner == 0 || columns == 0 || inner.checked_mul(columns) != Some(weights.len()) {
            return Err(ShapeError::Weights {
                len: weights.len(),
                rows: inner,
                columns,
            });
        }
        let scales: Vec<f32> = match scales.len() {
            1 => vec![scales[0]; columns],
            n if n == columns => scales.to_vec(),
            n => {
                return Err(ShapeError::Scales { scales: n, columns });
            }
        };
        let pairs = inner.div_ceil(2);
        let panels = columns.div_ceil(PANEL);
        let mut packed = vec![PairLine::default(); panels * pairs];
        for (row, values) in weights.chunks_exact(columns).enumerate() {
            let (pair, half) = (row / 2, row % 2);
            for (column, &w) in values.iter().enumerate() {
                let (panel, c) = (column / PANEL, column % PANEL);
                packed[panel * pairs + pair].0[c * 2 + half] = i16::from(w);
            }
        }
        let mut padded = scales;
        padded.resize(panels * PANEL, 0.0);
        Ok(Weights {
            inner,
            columns,
            pairs,
            packed,
            scales: padded,
            rows: weights.to_vec(),
        })
    }

    /// Rows of the weight matrix: the length of a row of activations.
    pub fn inner(&self) -> usize {
        self.inner
    }

    /// Columns of the weight matrix: the length of a row of the product.
    pub fn columns(&self) -> usize {
        self.columns
    }

    /// Whether these are the weights `Weights::new(weights, inner, columns, scales)` packs.
    pub fn packs(&self, weights: &[i8], inner: usize, columns: usize, scales: &[f32]) -> bool {
        let same_scales = match scales.len() {
            1 => self.scales[..self.columns]
                .iter()
                .all(|s| s.to_bits() == scales[0].to_bits()),
            _ => self.scales[..self.columns]
                .iter()
                .map(|s| s.to_bits())
                .eq(scales.iter().map(|s| s.to_bits())),
        };
        self.inner == inner && self.columns == columns && self.rows == weights && same_scales
    }

    fn panels(&self) -> usize {
        self.scales.len() / PANEL
    }
}

/// A block of activation rows rounded to 16 bits: what the kernels multiply.
#[derive(Debug, Default)]
pub struct Rounded {
    /// Rows (rounded up to [`TILE_ROWS`]) of `2 · pairs` values; padding rows are zero.
    values: Vec<i16>,
    /// Each row's scale: a rounded value times it is the activation.
    scales: Vec<f32>,
    /// Each row's exact values (position and value; value 0 where a row has fewer).
    outliers: Vec<[(usize, f32); OUTLIERS]>,
    /// Rows holding a value that is not finite, computed in fp32 instead.
    not_finite: Vec<bool>,
    /// Rows in the block.
    rows: usize,
}

/// `out = x · W` for `x` of `rows · weights.inner()` values and `out` of
/// `rows · weights.columns()`, one [`BLOCK_ROWS`] block at a time, with the AVX2 kernel where
/// the CPU has it.
pub fn matmul(x: &[f32], weights: &Weights, out: &mut [f32]) -> Result<(), ShapeError> {
    check(x, weights, out)?;
    let mut rounded = Rounded::default();
    let (inner, columns) = (weights.inner, weights.columns);
    for (x, out) in x
        .chunks(BLOCK_ROWS * inner)
        .zip(out.chunks_mut(BLOCK_ROWS * columns))
    {
        rows_product(x, weights, out, &mut rounded);
    }
    Ok(())
}

/// The number of activation rows, once the lengths of `x` and `out` fit `weights`.
pub fn check(x: &[f32], weights: &Weights, out: &[f32]) -> Result<usize, ShapeError> {
    let rows = x.len() / weights.inner;
    if !x.len().is_multiple_of(weights.inner) || out.len() != rows * weights.columns {
        return Err(ShapeError::Activations {
            len: x.len(),
            inner: weights.inner,
            rows,
            columns: weights.columns,
        });
    }
    Ok(rows)
}

/// Computes the product of the rows of `x` into `out` (lengths as [`check`] wants them; a
/// block of [`BLOCK_ROWS`] keeps the rounded rows in cache); `rounded` is scratch space reused
/// between calls.
pub fn rows_product(x: &[f32], weights: &Weights, out: &mut [f32], rounded: &mut Rounded) {
    let inner = weights.inner;
    round_rows(x, inner, weights.pairs, rounded);
    if simd_available() {
        // SAFETY: the CPU has AVX2 (checked), and `rounded` was made for these weights.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            avx2::product(rounded, weights, out)
        };
    } else {
        portable_product(rounded, weights, out);
    }
    finish_rows(x, rounded, weights, out);
}

/// Whether this CPU runs the AVX2 kernel.
pub fn simd_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Rounds each row of `x` (rows of `inner`) to 16 bits under its own scale, setting aside its
/// [`OUTLIERS`] largest values.
fn round_rows(x: &[f32], inner: usize, pairs: usize, rounded: &mut Rounded) {
    let rows = x.len() / inner;
    let padded_rows = rows.div_ceil(TILE_ROWS) * TILE_ROWS;
    let width = 2 * pairs;
    rounded.rows = rows;
    rounded.values.clear();
    rounded.values.resize(padded_rows * width, 0);
    rounded.scales.clear();
    rounded.outliers.clear();
    rounded.not_finite.clear();
    for (row, values) in x.chunks_exact(inner).enumerate() {
        let target = &mut rounded.values[row * width..row * width + inner];
        let (scale, outliers, finite) = round_row(values, target);
        rounded.scales.push(scale);
        rounded.outliers.push(outliers);
        rounded.not_finite.push(!finite);
    }
}

/// Rounds one row into `target`; returns its scale, its exact values (those above every
/// other value but [`OUTLIERS`] of them) and whether every value was finite.
fn round_row(values: &[f32], target: &mut [i16]) -> (f32, [(usize, f32); OUTLIERS], bool) {
    let mut outliers = [(0usize, 0.0f32); OUTLIERS];
    let (largest, finite) = largest_kept(values);
    if !finite {
        target.fill(0);
        return (0.0, outliers, false);
    }
    let mut found = 0;
    // At most OUTLIERS values lie strictly above the (OUTLIERS + 1)-th largest.
    for_each_above(values, largest, |i| {
        if found < OUTLIERS {
            outliers[found] = (i, values[i]);
            found += 1;
        }
    });
    if largest <= 0.0 {
        target.fill(0);
        return (0.0, outliers, true);
    }
    round_values(values, LEVELS / largest, target);
    // The exact values are added in fp32 afterwards; here they would saturate.
    for &(i, _) in &outliers[..found] {
        target[i] = 0;
    }
    (largest / LEVELS, outliers, true)
}

/// The (OUTLIERS + 1)-th largest magnitude of `values` (-1 when there are fewer values) and
/// whether every value is finite.
fn largest_kept(values: &[f32]) -> (f32, bool) {
    #[cfg(target_arch = "x86_64")]
    if simd_available() {
        // SAFETY: the CPU has AVX2 (checked).
        return unsafe { avx2::largest_kept(values) };
    }
    portable_largest_kept(values)
}

/// See [`largest_kept`].
fn portable_largest_kept(values: &[f32]) -> (f32, bool) {
    let mut top = [-1.0f32; OUTLIERS + 1];
    let mut finite = true;
    for v in values {
        // False for NaN and infinity.
        finite &= v.abs() < f32::INFINITY;
        insert_magnitude(&mut top, v.abs());
    }
    (top[OUTLIERS], finite)
}

/// Calls `f` with the position of each value whose magnitude is above `threshold`, in order.
fn for_each_above(values: &[f32], threshold: f32, mut f: impl FnMut(usize)) {
    #[cfg(target_arch = "x86_64")]
    if simd_available() {
        // SAFETY: the CPU has AVX2 (checked).
        unsafe { avx2::for_each_above(values, threshold, &mut f) };
        return;
    }
    portable_for_each_above(values, threshold, f);
}

/// See [`for_each_above`].
fn portable_for_each_above(values: &[f32], threshold: f32, mut f: impl FnMut(usize)) {
    for (i, v) in values.iter().enumerate() {
        if v.abs() > threshold {
            f(i);
        }
    }
}

/// Keeps `top` the largest magnitudes seen, largest first.
fn insert_magnitude(top: &mut [f32; OUTLIERS + 1], magnitude: f32) {
    let mut carried = magnitude;
    for slot in top.iter_mut() {
        if carried > *slot {
            std::mem::swap(slot, &mut carried);
        }
    }
}

/// `target[i] = round(values[i] · inverse)`, ties to even; every product is within ±32767 but
/// for the row's outliers, whose results the caller overwrites.
fn round_values(values: &[f32], inverse: f32, target: &mut [i16]) {
    #[cfg(target_arch = "x86_64")]
    if simd_available() {
        // SAFETY: the CPU has AVX2 (checked).
        unsafe { avx2::round_values(values, inverse, target) };
        return;
    }
    portable_round_values(values, inverse, target);
}

/// See [`round_values`].
fn portable_round_values(values: &[f32], inverse: f32, target: &mut [i16]) {
    for (t, v) in target.iter_mut().zip(values) {
        *t = (v * inverse).round_ties_even() as i16;
    }
}

/// Adds each row's exact values and recomputes in fp32 the rows that are not finite.
fn finish_rows(x: &[f32], rounded: &Rounded, weights: &Weights, out: &mut [f32]) {
    let (inner, columns) = (weights.inner, weights.columns);
    let scales = &weights.scales[..columns];
    for row in 0..rounded.rows {
        let out_row = &mut out[row * columns..(row + 1) * columns];
        if rounded.not_finite[row] {
            out_row.fill(0.0);
            for (k, &v) in x[row * inner..(row + 1) * inner].iter().enumerate() {
                add_scaled_row(
                    out_row,
                    v,
                    &weights.rows[k * columns..(k + 1) * columns],
                    scales,
                );
            }
            continue;
        }
        for &(k, v) in &rounded.outliers[row] {
            if v != 0.0 {
                add_scaled_row(
                    out_row,
                    v,
                    &weights.rows[k * columns..(k + 1) * columns],
                    scales,
                );
            }
        }
    }
}

/// `out += v · (weights · scales)`, element by element.
fn add_scaled_row(out: &mut [f32], v: f32, weights: &[i8], scales: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if simd_available() {
        // SAFETY: the CPU has AVX2 (checked).
        unsafe { avx2::add_scaled_row(out, v, weights, scales) };
        return;
    }
    portable_add_scaled_row(out, v, weights, scales);
}

/// See [`add_scaled_row`].
fn portable_add_scaled_row(out: &mut [f32], v: f32, weights: &[i8], scales: &[f32]) {
    for ((o, &w), &s) in out.iter_mut().zip(weights).zip(scales) {
        *o += v * (f32::from(w) * s);
    }
}

/// The product of rounded rows and packed weights into `out` (rows of `weights.columns`),
/// without the exact values: what the AVX2 kernel computes, in the same order.
fn portable_product(rounded: &Rounded, weights: &Weights, out: &mut [f32]) {
    let columns = weights.columns;
    let width = 2 * weights.pairs;
    for row in 0..rounded.rows {
        let a = &rounded.values[row * width..(row + 1) * width];
        let row_scale = rounded.scales[row];
        for panel in 0..weights.panels() {
            let mut total = [0.0f32; PANEL];
            for (chunk, start) in (0..weights.pairs).step_by(PAIRS_PER_CHUNK).enumerate() {
                let end = (start + PAIRS_PER_CHUNK).min(weights.pairs);
                let mut sums = [0i32; PANEL];
                for pair in start..end {
                    let b = &weights.packed[panel * weights.pairs + pair].0;
                    let (a0, a1) = (i32::from(a[2 * pair]), i32::from(a[2 * pair + 1]));
                    for (c, sum) in sums.iter_mut().enumerate() {
                        *sum += a0 * i32::from(b[2 * c]) + a1 * i32::from(b[2 * c + 1]);
                    }
                }
                for (c, t) in total.iter_mut().enumerate() {
                    let scaled = sums[c] as f32 * (row_scale * weights.scales[panel * PANEL + c]);
                    *t = if chunk == 0 { scaled } else { *t + scaled };
                }
            }
            let first = panel * PANEL;
            let n = PANEL.min(columns - first);
            out[row * columns + first..row * columns + first + n].copy_from_slice(&total[..n]);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! The AVX2 kernel: four rows by sixteen columns of int32 sums in eight registers.

    use std::arch::x86_64::*;

    use super::{OUTLIERS, PAIRS_PER_CHUNK, PANEL, Rounded, TILE_ROWS, Weights};

    /// See [`super::portable_product`].
    ///
    /// # Safety
    /// The CPU has AVX2, and `rounded` holds rows of `2 · weights.pairs` values, padded to
    /// [`TILE_ROWS`] rows; `out` holds `rounded.rows · weights.columns` values.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn product(rounded: &Rounded, weights: &Weights, out: &mut [f32]) {
        let columns = weights.columns;
        let pairs = weights.pairs;
        let width = 2 * pairs;
        assert!(rounded.values.len() >= rounded.rows.div_ceil(TILE_ROWS) * TILE_ROWS * width);
        assert!(out.len() >= rounded.rows * columns);
        assert!(weights.packed.len() >= weights.panels() * pairs);
        // Chunk by chunk, so a panel's chunk (12 KiB) stays in L1 across the block's tiles;
        // the first chunk stores, the others add, in the order the portable kernel adds.
        for (chunk, start) in (0..pairs).step_by(PAIRS_PER_CHUNK).enumerate() {
            let count = PAIRS_PER_CHUNK.min(pairs - start);
            for panel in 0..weights.panels() {
                let b_panel = weights.packed[panel * pairs..].as_ptr().cast::<i16>();
                let first = panel * PANEL;
                let n = PANEL.min(columns - first);
                // SAFETY: the panel's 16 scales are in bounds (scales are padded to panels).
                let (scale_lo, scale_hi) = unsafe {
                    (
                        _mm256_loadu_ps(weights.scales.as_ptr().add(first)),
                        _mm256_loadu_ps(weights.scales.as_ptr().add(first + 8)),
                    )
                };
                for tile in (0..rounded.rows).step_by(TILE_ROWS) {
                    let a = rounded.values[tile * width..].as_ptr();
                    // SAFETY: rows tile..tile+4 of `a` (padded) and the panel's pairs
                    // start..start+count are in bounds (asserted above).
                    let sums = unsafe { tile_sums(a, width, b_panel, start, count) };
                    for (r, sum) in sums.iter().enumerate() {
                        let row = tile + r;
                        if row >= rounded.rows {
                            break;
                        }
                        let row_scale = _mm256_set1_ps(rounded.scales[row]);
                        let lo = _mm256_mul_ps(
                            _mm256_cvtepi32_ps(sum[0]),
                            _mm256_mul_ps(row_scale, scale_lo),
                        );
                        let hi = _mm256_mul_ps(
                            _mm256_cvtepi32_ps(sum[1]),
                            _mm256_mul_ps(row_scale, scale_hi),
                        );
                        let target = &mut out[row * columns + first..row * columns + first + n];
                        let mut spill = [0.0f32; PANEL];
                        let place: &mut [f32] = if n == PANEL {
                            target
                        } else {
                            spill[..n].copy_from_slice(target);
                            &mut spill
                        };
                        // SAFETY: `place` holds 16 values.
                        unsafe {
                            let p = place.as_mut_ptr();
                            if chunk == 0 {
                                _mm256_storeu_ps(p, lo);
                                _mm256_storeu_ps(p.add(8), hi);
                            } else {
                                _mm256_storeu_ps(p, _mm256_add_ps(_mm256_loadu_ps(p), lo));
                                _mm256_storeu_ps(
                                    p.add(8),
                                    _mm256_add_ps(_mm256_loadu_ps(p.add(8)), hi),
                                );
                            }
                        }
                        if n != PANEL {
                            out[row * columns + first..row * columns + first + n]
                                .copy_from_slice(&spill[..n]);
                        }
                    }
                }
            }
        }
    }

    /// See [`super::largest_kept`]; the same answer, eight lanes at a time.
    ///
    /// # Safety
    /// The CPU has AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn largest_kept(values: &[f32]) -> (f32, bool) {
        let magnitude_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
        let mut top = [_mm256_set1_ps(-1.0); OUTLIERS + 1];
        // x · 0 is NaN exactly when x is NaN or infinite.
        let mut poison = _mm256_setzero_ps();
        let zero = _mm256_setzero_ps();
        let lanes = values.len() / 8 * 8;
        for i in (0..lanes).step_by(8) {
            // SAFETY: i + 8 ≤ values.len().
            let v = unsafe { _mm256_loadu_ps(values.as_ptr().add(i)) };
            poison = _mm256_add_ps(poison, _mm256_mul_ps(v, zero));
            let mut carried = _mm256_and_ps(v, magnitude_mask);
            for slot in top.iter_mut() {
                let high = _mm256_max_ps(*slot, carried);
                carried = _mm256_min_ps(*slot, carried);
                *slot = high;
            }
        }
        let mut lane_values = [[0.0f32; 8]; OUTLIERS + 1];
        for (out, slot) in lane_values.iter_mut().zip(&top) {
            // SAFETY: `out` holds 8 values.
            unsafe { _mm256_storeu_ps(out.as_mut_ptr(), *slot) };
        }
        let mut poisoned = [0.0f32; 8];
        // SAFETY: `poisoned` holds 8 values.
        unsafe { _mm256_storeu_ps(poisoned.as_mut_ptr(), poison) };
        let mut merged = [-1.0f32; OUTLIERS + 1];
        for m in lane_values.iter().flatten() {
            super::insert_magnitude(&mut merged, *m);
        }
        let mut finite = poisoned.iter().all(|p| *p == 0.0);
        for v in &values[lanes..] {
            finite &= v.abs() < f32::INFINITY;
            super::insert_magnitude(&mut merged, v.abs());
        }
        (merged[OUTLIERS], finite)
    }

    /// See [`super::for_each_above`].
    ///
    /// # Safety
    /// The CPU has AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn for_each_above(values: &[f32], threshold: f32, f: &mut impl FnMut(usize)) {
        let magnitude_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
        let limit = _mm256_set1_ps(threshold);
        let lanes = values.len() / 8 * 8;
        for i in (0..lanes).step_by(8) {
            // SAFETY: i + 8 ≤ values.len().
            let v = unsafe { _mm256_loadu_ps(values.as_ptr().add(i)) };
            let above = _mm256_cmp_ps::<_CMP_GT_OQ>(_mm256_and_ps(v, magnitude_mask), limit);
            let mut bits = _mm256_movemask_ps(above) as u32;
            while bits != 0 {
                f(i + bits.trailing_zeros() as usize);
                bits &= bits - 1;
            }
        }
        for (i, v) in values.iter().enumerate().skip(lanes) {
            if v.abs() > threshold {
                f(i);
            }
        }
    }

    /// See [`super::add_scaled_row`]; the same products and sums, eight at a time.
    ///
    /// # Safety
    /// The CPU has AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn add_scaled_row(out: &mut [f32], v: f32, weights: &[i8], scales: &[f32]) {
        let n = out.len().min(weights.len()).min(scales.len());
        let factor = _mm256_set1_ps(v);
        let mut i = 0;
        while i + 8 <= n {
            // SAFETY: i + 8 ≤ n values of each slice are read, and of `out` written.
            unsafe {
                let w = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(
                    weights.as_ptr().add(i).cast(),
                )));
                let weight = _mm256_mul_ps(w, _mm256_loadu_ps(scales.as_ptr().add(i)));
                let sum = _mm256_add_ps(
                    _mm256_loadu_ps(out.as_ptr().add(i)),
                    _mm256_mul_ps(factor, weight),
                );
                _mm256_storeu_ps(out.as_mut_ptr().add(i), sum);
            }
            i += 8;
        }
        for ((o, &w), &s) in out[i..n].iter_mut().zip(&weights[i..n]).zip(&scales[i..n]) {
            *o += v * (f32::from(w) * s);
        }
    }

    /// See [`super::round_values`].
    ///
    /// # Safety
    /// The CPU has AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn round_values(values: &[f32], inverse: f32, target: &mut [i16]) {
        let n = values.len().min(target.len());
        let scale = _mm256_set1_ps(inverse);
        let mut i = 0;
        while i + 16 <= n {
            // SAFETY: i + 16 ≤ n values are read and written.
            unsafe {
                let lo = _mm256_cvtps_epi32(_mm256_mul_ps(
                    _mm256_loadu_ps(values.as_ptr().add(i)),
                    scale,
                ));
                let hi = _mm256_cvtps_epi32(_mm256_mul_ps(
                    _mm256_loadu_ps(values.as_ptr().add(i + 8)),
                    scale,
                ));
                // packs works per 128-bit lane: reorder the quarters back into place.
                let packed = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packs_epi32(lo, hi));
                _mm256_storeu_si256(target.as_mut_ptr().add(i).cast(), packed);
            }
            i += 16;
        }
        for (t, v) in target[i..n].iter_mut().zip(&values[i..n]) {
            *t = (v * inverse).round_ties_even() as i16;
        }
    }

    /// The int32 sums of four rows of `a` (each `width` values apart) with pairs
    /// `start..start + count` of the panel at `b`.
    ///
    /// # Safety
    /// The CPU has AVX2; the four rows hold pairs up to `start + count`, and so does the panel.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn tile_sums(
        a: *const i16,
        width: usize,
        b: *const i16,
        start: usize,
        count: usize,
    ) -> [[__m256i; 2]; TILE_ROWS] {
        let mut c = [[_mm256_setzero_si256(); 2]; TILE_ROWS];
        // SAFETY: every read below is within the rows and the panel (the caller's promise);
        // a pair of i16 is read as one (unaligned) i32.
        unsafe {
            let rows = [a, a.add(width), a.add(2 * width), a.add(3 * width)];
            let step = |c: &mut [[__m256i; 2]; TILE_ROWS], pair: usize| {
                // The panel's lines are 64-byte aligned.
                let b0 = _mm256_load_si256(b.add(pair * PANEL * 2).cast());
                let b1 = _mm256_load_si256(b.add(pair * PANEL * 2 + 16).cast());
                for r in 0..TILE_ROWS {
                    let x = _mm256_set1_epi32(rows[r].add(2 * pair).cast::<i32>().read_unaligned());
                    c[r][0] = _mm256_add_epi32(c[r][0], _mm256_madd_epi16(x, b0));
                    c[r][1] = _mm256_add_epi32(c[r][1], _mm256_madd_epi16(x, b1));
                }
            };
            let end = start + count;
            let mut pair = start;
            while pair + 2 <= end {
                step(&mut c, pair);
                step(&mut c, pair + 1);
                pair += 2;
            }
            if pair < end {
                step(&mut c, pair);
            }
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic pseudo-random sequence (xorshift).
    struct Noise(u64);

    impl Noise {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn unit(&mut self) -> f32 {
            (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        }
    }

    fn case(rows: usize, inner: usize, columns: usize, seed: u64) -> (Vec<f32>, Vec<i8>, Vec<f32>) {
        let mut noise = Noise(seed);
        let x: Vec<f32> = (0..rows * inner)
            .map(|i| {
                let v = noise.unit() * 3.0;
                // A few channels far above the rest, as a model's hidden states have.
                if i % inner == 7 { v * 20.0 } else { v }
            })
            .collect();
        let w: Vec<i8> = (0..inner * columns)
            .map(|_| (noise.next() % 256) as u8 as i8)
            .collect();
        let scales: Vec<f32> = (0..columns)
            .map(|_| 0.001 + noise.unit().abs() * 0.01)
            .collect();
        (x, w, scales)
    }

    fn exact(x: &[f32], w: &[i8], scales: &[f32], inner: usize, columns: usize) -> Vec<f64> {
        let rows = x.len() / inner;
        let mut out = vec![0.0f64; rows * columns];
        for r in 0..rows {
            for k in 0..inner {
                for c in 0..columns {
                    out[r * columns + c] += f64::from(x[r * inner + k])
                        * f64::from(w[k * columns + c])
                        * f64::from(scales[c]);
                }
            }
        }
        out
    }

    #[test]
    fn the_product_is_within_the_rounding_of_sixteen_bits() {
        // Odd sizes: partial tiles, a partial panel, an odd inner dimension, several chunks.
        for &(rows, inner, columns) in &[(1, 3, 1), (7, 45, 21), (70, 401, 33), (5, 1536, 16)] {
            let (x, w, scales) = case(rows, inner, columns, 42 + rows as u64);
            let weights = Weights::new(&w, inner, columns, &scales).unwrap();
            let mut out = vec![f32::NAN; rows * columns];
            matmul(&x, &weights, &mut out).unwrap();
            let want = exact(&x, &w, &scales, inner, columns);
            for r in 0..rows {
                let row = &x[r * inner..(r + 1) * inner];
                let mut magnitudes: Vec<f32> = row.iter().map(|v| v.abs()).collect();
                magnitudes.sort_by(|a, b| b.total_cmp(a));
                let step = magnitudes.get(OUTLIERS).copied().unwrap_or(0.0) / LEVELS;
                for c in 0..columns {
                    // Each kept value is off by at most half a step, plus float rounding.
                    let bound: f64 = (0..inner)
                        .map(|k| f64::from(w[k * columns + c]).abs() * f64::from(scales[c]))
                        .sum::<f64>()
                        * f64::from(step)
                        / 2.0;
                    let got = f64::from(out[r * columns + c]);
                    let diff = (got - want[r * columns + c]).abs();
                    assert!(
                        diff <= bound * 1.01 + 1e-5 * want[r * columns + c].abs() + 1e-6,
                        "{rows}x{inner}x{columns} at ({r},{c}): {got} vs {} (bound {bound})",
                        want[r * columns + c]
                    );
                }
            }
        }
    }

    #[test]
    fn the_avx2_and_portable_kernels_agree_exactly() {
        if !simd_available() {
            return;
        }
        let (rows, inner, columns) = (37, 777, 50);
        let (x, w, scales) = case(rows, inner, columns, 9);
        let weights = Weights::new(&w, inner, columns, &scales).unwrap();
        let mut rounded = Rounded::default();
        round_rows(&x, inner, weights.pairs, &mut rounded);
        let mut portable = vec![0.0f32; rows * columns];
        portable_product(&rounded, &weights, &mut portable);
        let mut simd = vec![0.0f32; rows * columns];
        // SAFETY: AVX2 checked above; `rounded` was made for these weights.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            avx2::product(&rounded, &weights, &mut simd)
        };
        assert_eq!(portable, simd);
    }

    #[test]
    fn the_avx2_helpers_agree_exactly_with_the_portable_ones() {
        if !simd_available() {
            return;
        }
        let mut noise = Noise(77);
        for len in [0usize, 1, 2, 3, 7, 8, 9, 16, 17, 384, 1539] {
            let mut values: Vec<f32> = (0..len).map(|_| noise.unit() * 4.0).collect();
            if len > 9 {
                // Ties at the top and below it.
                values[3] = 9.0;
                values[len - 1] = -9.0;
                values[5] = 9.0;
            }
            #[cfg(target_arch = "x86_64")]
            {
                // SAFETY: AVX2 checked above.
                let simd = unsafe { avx2::largest_kept(&values) };
                assert_eq!(simd, portable_largest_kept(&values), "len {len}");
                let threshold = simd.0;
                let (mut a, mut b) = (Vec::new(), Vec::new());
                // SAFETY: AVX2 checked above.
                unsafe { avx2::for_each_above(&values, threshold, &mut |i| a.push(i)) };
                portable_for_each_above(&values, threshold, |i| b.push(i));
                assert_eq!(a, b, "len {len}");
                if threshold > 0.0 {
                    let (mut x, mut y) = (vec![0i16; len], vec![0i16; len]);
                    // SAFETY: AVX2 checked above.
                    unsafe { avx2::round_values(&values, LEVELS / threshold, &mut x) };
                    portable_round_values(&values, LEVELS / threshold, &mut y);
                    for i in 0..len {
                        if values[i].abs() <= threshold {
                            assert_eq!(x[i], y[i], "len {len} at {i}");
                        }
                    }
                }
                let weights: Vec<i8> = (0..len).map(|_| (noise.next() % 256) as u8 as i8).collect();
                let scales: Vec<f32> = (0..len).map(|_| noise.unit()).collect();
                let (mut x, mut y) = (values.clone(), values.clone());
                // SAFETY: AVX2 checked above.
                unsafe { avx2::add_scaled_row(&mut x, 0.37, &weights, &scales) };
                portable_add_scaled_row(&mut y, 0.37, &weights, &scales);
                assert_eq!(x, y, "len {len}");
            }
        }
        // A value that is not finite anywhere in the row is seen by both.
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            for at in [0usize, 8, 20] {
                let mut values = vec![1.0f32; 21];
                values[at] = bad;
                // SAFETY: AVX2 checked above.
                #[cfg(target_arch = "x86_64")]
                assert!(!unsafe { avx2::largest_kept(&values) }.1);
                assert!(!portable_largest_kept(&values).1);
            }
        }
    }

    #[test]
    fn outliers_are_exact_and_not_finite_rows_propagate() {
        let (inner, columns) = (40, 3);
        let (mut x, w, scales) = case(2, inner, columns, 5);
        // Row 0: all zero but two huge values, which the rounding must not touch.
        x[..inner].fill(0.0);
        x[3] = 1.0e6;
        x[9] = -2.5e5;
        x[inner + 11] = f32::NAN;
        let weights = Weights::new(&w, inner, columns, &scales).unwrap();
        let mut out = vec![0.0f32; 2 * columns];
        matmul(&x, &weights, &mut out).unwrap();
        let want = exact(&x[..inner], &w, &scales, inner, columns);
        for c in 0..columns {
            assert!((f64::from(out[c]) - want[c]).abs() <= 1e-6 * want[c].abs().max(1.0));
            assert!(out[columns + c].is_nan());
        }
    }

    #[test]
    fn bad_shapes_are_refused() {
        assert!(Weights::new(&[1, 2, 3], 2, 2, &[1.0]).is_err());
        assert!(Weights::new(&[1, 2, 3, 4], 2, 2, &[1.0, 2.0, 3.0]).is_err());
        let weights = Weights::new(&[1, 2, 3, 4], 2, 2, &[1.0, 2.0]).unwrap();
        let mut out = [0.0f32; 2];
        assert!(matmul(&[1.0, 2.0, 3.0], &weights, &mut out).is_err());
        assert!(matmul(&[1.0, 2.0], &weights, &mut out).is_ok());
    }
}
