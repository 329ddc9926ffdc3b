//! HNSW search over the flat graph: a narrow beam through the upper layers, then a beam of
//! width `ef` on layer 0 that never returns a dead point (tombstoned, or hidden by a deletion
//! notice) but may walk through it (an update removes tombstoned points from the graph; a
//! generation written before that kept them as nodes).
//! Similarity is the dot product of unit vectors (= cosine).

use std::cell::RefCell;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::ops::RangeInclusive;

use super::graph::FlatGraph;

/// Beam width of a query on the layers above 0, whose best points all seed the beam on layer
/// 0. A greedy descent (a beam of one, as in the HNSW paper) can end in the wrong region when
/// the data holds tight clusters of near-duplicates that the neighbour heuristic links to the
/// rest by few edges: on the 100k bench pool, 4 of 100 postings lost most of their top 10 that
/// way at any layer-0 `ef`, and recall@10 at ef 240 rose from 0.959 to 0.991 with a beam of 32
/// (benches/search.rs, `vector recall`).
const UPPER_EF: usize = 32;

/// A point and its similarity to the query, ordered by similarity (ties by id).
#[derive(Debug, Clone, Copy)]
pub(super) struct Scored {
    pub(super) similarity: f32,
    pub(super) id: u32,
}

impl PartialEq for Scored {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Scored {}

impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scored {
    fn cmp(&self, other: &Self) -> Ordering {
        self.similarity
            .total_cmp(&other.similarity)
            .then_with(|| other.id.cmp(&self.id))
    }
}

/// A layered proximity graph to walk: the memory-mapped flat graph of a generation, or the
/// mutable copy an incremental update inserts into.
pub(super) trait Layers {
    /// Points in the graph (valid ids are below this).
    fn points(&self) -> usize;
    /// The vector of point `id` (empty when out of range).
    fn vector(&self, id: u32) -> &[f32];
    /// The neighbours of point `id` in `layer` (empty when it is not in that layer).
    fn neighbours(&self, layer: usize, id: u32) -> &[u32];
}

impl Layers for FlatGraph {
    #[inline]
    fn points(&self) -> usize {
        FlatGraph::points(self)
    }

    #[inline]
    fn vector(&self, id: u32) -> &[f32] {
        FlatGraph::vector(self, id)
    }

    #[inline]
    fn neighbours(&self, layer: usize, id: u32) -> &[u32] {
        FlatGraph::neighbours(self, layer, id)
    }
}

/// Beam-search state for one layer, reused across walks so a walk allocates nothing.
#[derive(Default)]
struct Frontier {
    /// `stamps[id] == stamp` means visited by the current walk.
    stamps: Vec<u32>,
    stamp: u32,
    /// Points to expand, best first.
    candidates: BinaryHeap<Scored>,
    /// The `ef` best points seen (tombstoned ones too), worst first.
    nearest: BinaryHeap<Reverse<Scored>>,
}

impl Frontier {
    fn begin(&mut self, points: usize) {
        if self.stamps.len() < points {
            self.stamps.resize(points, 0);
        }
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            self.stamps.fill(0);
            self.stamp = 1;
        }
        self.candidates.clear();
        self.nearest.clear();
    }

    /// Marks `id` visited; `false` if it already was.
    #[inline]
    fn visit(&mut self, id: u32) -> bool {
        match self.stamps.get_mut(id as usize) {
            Some(s) if *s != self.stamp => {
                *s = self.stamp;
                true
            }
            _ => false,
        }
    }

    /// Keeps `scored` among the `ef` nearest (and to expand) if it is good enough.
    #[inline]
    fn offer(&mut self, scored: Scored, ef: usize) {
        if self.nearest.len() < ef || self.nearest.peek().is_some_and(|w| scored > w.0) {
            self.candidates.push(scored);
            self.nearest.push(Reverse(scored));
            if self.nearest.len() > ef {
                self.nearest.pop();
            }
        }
    }

    /// Beam search of width `ef` on `layer` from `entries`; `seen` is shown every point scored
    /// (entries included), once. The result is left in `nearest`.
    fn walk<G: Layers + ?Sized>(
        &mut self,
        graph: &G,
        query: &[f32],
        entries: &[Scored],
        layer: usize,
        ef: usize,
        mut seen: impl FnMut(Scored),
    ) {
        let points = graph.points();
        self.begin(points);
        for &entry in entries {
            if self.visit(entry.id) {
                self.offer(entry, ef);
                seen(entry);
            }
        }
        while let Some(current) = self.candidates.pop() {
            let frontier = self.nearest.peek().map_or(f32::MIN, |w| w.0.similarity);
            if self.nearest.len() >= ef && current.similarity < frontier {
                break;
            }
            let neighbours = graph.neighbours(layer, current.id);
            for (i, &n) in neighbours.iter().enumerate() {
                if let Some(&next) = neighbours.get(i + 1)
                    && (next as usize) < points
                {
                    prefetch(graph.vector(next));
                }
                if n as usize >= points || !self.visit(n) {
                    continue;
                }
                let scored = Scored {
                    similarity: dot(query, graph.vector(n)),
                    id: n,
                };
                self.offer(scored, ef);
                seen(scored);
            }
        }
    }
}

/// Per-thread search state, reused across queries so a query allocates nothing but its result.
#[derive(Default)]
struct Scratch {
    frontier: Frontier,
    /// The `k` best live points seen, worst first.
    live: BinaryHeap<Reverse<Scored>>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Runs `f` with this thread's scratch state (a fresh one if it is already in use, which only
/// happens when a `dead` callback itself searches on this thread).
fn with_scratch<T>(f: impl FnOnce(&mut Scratch) -> T) -> T {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => f(&mut scratch),
        Err(_) => f(&mut Scratch::default()),
    })
}

/// The `k` most similar points to `query` for which `dead` is false, best first. `ef` (at
/// least `k`) is the beam width on layer 0.
pub(super) fn search(
    graph: &FlatGraph,
    query: &[f32],
    k: usize,
    ef: usize,
    dead: &dyn Fn(u32) -> bool,
) -> Vec<Scored> {
    if k == 0 || graph.points() == 0 || query.len() != graph.dimension() {
        return Vec::new();
    }
    let mut entries = vec![Scored {
        similarity: dot(query, graph.vector(graph.entry())),
        id: graph.entry(),
    }];
    for layer in (1..graph.layers()).rev() {
        entries = search_layer(graph, query, &entries, layer, UPPER_EF);
    }
    with_scratch(|scratch| beam(graph, query, &entries, k, ef.max(k), dead, scratch))
}

/// Greedy descent (beam of one) from `start` through `layers`, top to bottom.
pub(super) fn descend<G: Layers + ?Sized>(
    graph: &G,
    query: &[f32],
    start: Scored,
    layers: RangeInclusive<usize>,
) -> Scored {
    let points = graph.points();
    let mut best = start;
    for layer in layers.rev() {
        loop {
            let mut moved = false;
            for &n in graph.neighbours(layer, best.id) {
                if n as usize >= points {
                    continue;
                }
                let similarity = dot(query, graph.vector(n));
                if similarity > best.similarity {
                    best = Scored { similarity, id: n };
                    moved = true;
                }
            }
            if !moved {
                break;
            }
        }
    }
    best
}

/// Beam search on layer 0 from `entries`, keeping the `k` best live points.
fn beam(
    graph: &FlatGraph,
    query: &[f32],
    entries: &[Scored],
    k: usize,
    ef: usize,
    dead: &dyn Fn(u32) -> bool,
    s: &mut Scratch,
) -> Vec<Scored> {
    let Scratch { frontier, live } = s;
    live.clear();
    let keep_live = |scored: Scored| {
        if (live.len() < k || live.peek().is_some_and(|w| scored > w.0)) && !dead(scored.id) {
            live.push(Reverse(scored));
            if live.len() > k {
                live.pop();
            }
        }
    };
    frontier.walk(graph, query, entries, 0, ef, keep_live);
    let mut hits: Vec<Scored> = live.drain().map(|r| r.0).collect();
    hits.sort_unstable_by(|a, b| b.cmp(a));
    hits
}

/// The `ef` points of `layer` most similar to `query` that a beam search from `entries` finds,
/// best first, dead or not. For building the graph.
pub(super) fn search_layer<G: Layers + ?Sized>(
    graph: &G,
    query: &[f32],
    entries: &[Scored],
    layer: usize,
    ef: usize,
) -> Vec<Scored> {
    with_scratch(|scratch| {
        let frontier = &mut scratch.frontier;
        frontier.walk(graph, query, entries, layer, ef.max(1), |_| {});
        let mut found: Vec<Scored> = frontier.nearest.drain().map(|r| r.0).collect();
        found.sort_unstable_by(|a, b| b.cmp(a));
        found
    })
}

/// The `k` most similar live points by brute force over every vector, best first.
pub(super) fn exact(
    graph: &FlatGraph,
    query: &[f32],
    k: usize,
    dead: &dyn Fn(u32) -> bool,
) -> Vec<Scored> {
    if k == 0 || query.len() != graph.dimension() {
        return Vec::new();
    }
    let mut best: BinaryHeap<Reverse<Scored>> = BinaryHeap::with_capacity(k + 1);
    for (id, row) in graph
        .all_vectors()
        .chunks_exact(graph.dimension())
        .enumerate()
    {
        let scored = Scored {
            similarity: dot(query, row),
            id: id as u32,
        };
        if (best.len() < k || best.peek().is_some_and(|w| scored > w.0)) && !dead(scored.id) {
            best.push(Reverse(scored));
            if best.len() > k {
                best.pop();
            }
        }
    }
    let mut hits: Vec<Scored> = best.into_iter().map(|r| r.0).collect();
    hits.sort_unstable_by(|a, b| b.cmp(a));
    hits
}

/// Dot product, using AVX2 and FMA when the CPU has them (checked per call by std's cached
/// feature detection).
#[inline]
pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports AVX2 and FMA, checked just above.
            return unsafe { dot_avx2_fma(a, b) };
        }
    }
    dot_lanes::<false>(a, b)
}

/// [`dot_lanes`] compiled for AVX2 with fused multiply-adds (eight f32 lanes per register).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn dot_avx2_fma(a: &[f32], b: &[f32]) -> f32 {
    dot_lanes::<true>(a, b)
}

/// Hints the CPU to start loading the first bytes of `row` (a neighbour about to be scored)
/// while the current one is being scored; a no-op elsewhere than x86-64.
#[inline(always)]
fn prefetch(row: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults, whatever the address; `row` is a valid slice anyway.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let p = row.as_ptr().cast::<i8>();
        _mm_prefetch::<_MM_HINT_T0>(p);
        _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(64));
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = row;
}

/// Lanes summed independently: four accumulators of eight lanes, which the compiler turns
/// into vector multiply-adds (f32 addition is not reassociated otherwise). `FMA` uses fused
/// multiply-adds, only worth it where the target has them.
const LANES: usize = 32;

#[inline(always)]
fn dot_lanes<const FMA: bool>(a: &[f32], b: &[f32]) -> f32 {
    let len = a.len().min(b.len());
    let (a, b) = (&a[..len], &b[..len]);
    let mut acc = [0f32; LANES];
    let (chunks_a, chunks_b) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = chunks_a
        .remainder()
        .iter()
        .zip(chunks_b.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in chunks_a.zip(chunks_b) {
        for i in 0..LANES {
            if FMA {
                acc[i] = x[i].mul_add(y[i], acc[i]);
            } else {
                acc[i] += x[i] * y[i];
            }
        }
    }
    let mut eight = [0f32; 8];
    for (i, v) in acc.iter().enumerate() {
        eight[i % 8] += v;
    }
    eight.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use hnsw_rs::prelude::{DistDot, Hnsw};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::super::graph;
    use super::*;

    fn unit(rng: &mut ChaCha8Rng, dimension: usize) -> Vec<f32> {
        let v: Vec<f32> = (0..dimension)
            .map(|_| rng.gen_range(-1.0f32..1.0))
            .collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / norm).collect()
    }

    /// Our search over the exported graph is as good as hnsw_rs's search over its own graph
    /// (the same graph: hnsw_rs built it, inserting one at a time so it is deterministic).
    #[test]
    fn flat_search_matches_hnsw_rs_on_the_same_graph() {
        let mut rng = ChaCha8Rng::seed_from_u64(31);
        let vectors: Vec<Vec<f32>> = (0..2000).map(|_| unit(&mut rng, 128)).collect();
        let hnsw: Hnsw<f32, DistDot> = Hnsw::new(24, vectors.len(), 16, 200, DistDot);
        for (id, v) in vectors.iter().enumerate() {
            hnsw.insert((v.as_slice(), id));
        }
        let dir = tempfile::tempdir().unwrap();
        graph::export(&hnsw, vectors.len(), dir.path()).unwrap();
        let flat = FlatGraph::open(dir.path()).unwrap();
        let queries: Vec<Vec<f32>> = (0..60)
            .map(|i| {
                let noise = unit(&mut rng, 128);
                let q: Vec<f32> = vectors[i * 31]
                    .iter()
                    .zip(&noise)
                    .map(|(a, b)| a + b)
                    .collect();
                let norm = q.iter().map(|x| x * x).sum::<f32>().sqrt();
                q.into_iter().map(|x| x / norm).collect()
            })
            .collect();
        let alive = |_: u32| false;
        for ef in [16, 64] {
            let (mut ours, mut theirs) = (0, 0);
            for q in &queries {
                let truth: Vec<u32> = exact(&flat, q, 10, &alive).iter().map(|s| s.id).collect();
                ours += search(&flat, q, 10, ef, &alive)
                    .iter()
                    .filter(|s| truth.contains(&s.id))
                    .count();
                theirs += hnsw
                    .search(q, 10, ef)
                    .iter()
                    .filter(|n| truth.contains(&(n.d_id as u32)))
                    .count();
            }
            let (ours, theirs) = (ours as f64 / 600.0, theirs as f64 / 600.0);
            eprintln!("ef {ef}: flat recall@10 {ours:.3}, hnsw_rs {theirs:.3}");
            assert!(
                ours + 0.01 >= theirs,
                "ef {ef}: flat {ours:.3}, hnsw_rs {theirs:.3}"
            );
        }
    }

    #[test]
    fn dot_matches_a_plain_sum_for_every_tail_length() {
        for len in [0, 1, 7, 8, 31, 32, 33, 384, 390] {
            let a: Vec<f32> = (0..len).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..len).map(|i| (i as f32 * 0.11).cos()).collect();
            let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot(&a, &b) - plain).abs() < 1e-4, "len {len}");
            assert!(
                (dot_lanes::<false>(&a, &b) - plain).abs() < 1e-4,
                "len {len}"
            );
            assert!(
                (dot_lanes::<true>(&a, &b) - plain).abs() < 1e-4,
                "len {len}"
            );
        }
    }

    #[test]
    fn scratch_marks_each_point_once_per_query() {
        let mut s = Frontier::default();
        s.begin(4);
        assert!(s.visit(2) && !s.visit(2) && !s.visit(9));
        s.begin(4);
        assert!(s.visit(2));
        s.stamp = u32::MAX;
        s.begin(4);
        assert_eq!(s.stamp, 1);
        assert!(s.visit(2));
    }
}
