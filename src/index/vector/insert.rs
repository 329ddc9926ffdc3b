//! HNSW insertion (Malkov & Yashunin, 2016) into an in-memory, mutable copy of the flat graph,
//! so an incremental update extends the previous generation's `graph.bin` + `vectors.f32`
//! without hnsw_rs and without a second copy of the vectors on disk.
//!
//! The copy keeps the previous generation's vector rows memory-mapped (only new rows live in
//! memory) and its neighbour lists as adjacency lists per point and layer. Each new point gets
//! a level drawn from its chunk id (deterministic), descends greedily from the entry point to
//! its level, then on every layer at or below it runs a beam search of width
//! [`EF_CONSTRUCTION`], links to the neighbours the heuristic selects (at most M on upper
//! layers, 2M on layer 0: the caps hnsw_rs uses) and links back, re-selecting a neighbour's
//! list by the same heuristic when it overflows.
//!
//! Tombstoned points are removed before anything is inserted ([`MutableGraph::remove`], after
//! the delete consolidation of FreshDiskANN, Singh et al. 2021): in every list that links to
//! one, it gives way to live points reachable through the removed ones, so the graph keeps its
//! paths and a deleted candidate's vectors are not written again.

use std::collections::VecDeque;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::graph::{ExportSource, FlatGraph, MAX_LAYERS};
use super::search::{Layers, Scored, descend, dot, search_layer};
use super::{EF_CONSTRUCTION, Error};

/// Mixed into every chunk id to seed its level, so levels do not correlate with other uses of
/// the same seeds.
const LEVEL_SEED: u64 = 0x5eed_1e7e_15e4_0001;

/// Most neighbours per node and upper layer a loaded graph may declare (hnsw_rs's own limit).
const MAX_CONNECTIONS_LIMIT: usize = 256;

/// Most removed points one repair walks through to find live points (a removed cluster is
/// crossed, a huge one is not walked whole for every list that touches it).
const REPAIR_WALK: usize = 64;

/// Live points that take the place of each removed neighbour in a repaired list (within the
/// layer's cap). The heuristic keeps lists short (about 4 links per point on layer 0 of the
/// 100k bench pool), so one replacement per removed link loses paths: with 15% of candidates
/// deleted, recall@10 of the live vectors fell to 0.966 with one, 0.988 with two, and stayed
/// 1.000 with four, like walking through tombstones (benches/README.md, seventh round).
const REPLACEMENTS_PER_REMOVED: usize = 4;

/// Most live candidates a repaired list chooses from, per slot of its layer's cap (the most
/// similar first).
const REPAIR_CANDIDATES_PER_SLOT: usize = 4;

/// A graph being extended: the previous generation's graph plus points inserted since.
pub(super) struct MutableGraph {
    dimension: usize,
    /// M: neighbours per node on upper layers; 2M on layer 0.
    max_connections: usize,
    /// mL = 1 / ln(M), the level distribution's scale.
    level_scale: f64,
    /// The previous generation's rows (`None` when it had no vectors).
    base: Option<FlatGraph>,
    /// Rows of the points inserted since, back to back.
    rows: Vec<f32>,
    /// `links[id][layer]`: the neighbours of `id` on each layer up to its level.
    links: Vec<Vec<Vec<u32>>>,
    /// The entry point and its level (the top layer), once the graph has a live point.
    entry: Option<(u32, usize)>,
    /// `removed[id]`: the point was removed ([`MutableGraph::remove`]); ids beyond are live.
    removed: Vec<bool>,
    /// The row of a removed point: zeros.
    zeros: Vec<f32>,
}

impl MutableGraph {
    /// An empty graph with `max_connections` (M) neighbours per node and upper layer.
    pub(super) fn empty(max_connections: usize) -> MutableGraph {
        let max_connections = max_connections.max(2);
        MutableGraph {
            dimension: 0,
            max_connections,
            level_scale: 1.0 / (max_connections as f64).ln(),
            base: None,
            rows: Vec::new(),
            links: Vec::new(),
            entry: None,
            removed: Vec::new(),
            zeros: Vec::new(),
        }
    }

    /// Copies the neighbour lists of `flat` into memory (its rows stay mapped). Every list is
    /// read and checked here, so a damaged graph is an error now rather than a panic later.
    pub(super) fn load(flat: FlatGraph) -> Result<MutableGraph, String> {
        flat.check_base_offsets()?;
        let max_connections = flat.max_connections() as usize;
        if max_connections > MAX_CONNECTIONS_LIMIT {
            return Err(format!(
                "{max_connections} connections per node, more than {MAX_CONNECTIONS_LIMIT}"
            ));
        }
        let points = flat.points();
        let mut levels = vec![0usize; points];
        for layer in 1..flat.layers() {
            for &member in flat.members(layer) {
                levels[member as usize] = layer;
            }
        }
        let mut links = Vec::with_capacity(points);
        for (id, &level) in levels.iter().enumerate() {
            let mut own = Vec::with_capacity(level + 1);
            for layer in 0..=level {
                let list = flat.neighbours(layer, id as u32);
                if let Some(n) = list.iter().find(|&&n| n as usize >= points) {
                    return Err(format!(
                        "layer {layer}: point {id} links to {n}, beyond {points} points"
                    ));
                }
                own.push(list.to_vec());
            }
            links.push(own);
        }
        let mut graph = MutableGraph::empty(max_connections);
        graph.dimension = flat.dimension();
        graph.entry = Some((flat.entry(), flat.layers() - 1));
        graph.links = links;
        graph.base = Some(flat);
        Ok(graph)
    }

    /// Inserts `vector` (unit length) as the next point; returns its id.
    pub(super) fn insert(&mut self, vector: &[f32]) -> Result<u32, Error> {
        let level = self.random_level(self.links.len() as u64);
        self.insert_at_level(vector, level)
    }

    /// The level of point `id`: `floor(-ln(u) * mL)` for `u` uniform in (0, 1] drawn from a
    /// generator seeded by the id, capped below [`MAX_LAYERS`].
    fn random_level(&self, id: u64) -> usize {
        let mut rng = ChaCha8Rng::seed_from_u64(LEVEL_SEED ^ id);
        let u = 1.0 - rng.r#gen::<f64>();
        ((-u.ln() * self.level_scale).floor() as usize).min(MAX_LAYERS - 1)
    }

    /// Inserts `vector` as the next point with the given level.
    fn insert_at_level(&mut self, vector: &[f32], level: usize) -> Result<u32, Error> {
        if self.links.is_empty() && self.dimension == 0 {
            self.dimension = vector.len();
        }
        if vector.is_empty() || vector.len() != self.dimension {
            return Err(Error::Vector(format!(
                "a vector of dimension {} in an index of dimension {}",
                vector.len(),
                self.dimension
            )));
        }
        let id = u32::try_from(self.links.len())
            .map_err(|_| Error::Vector("more than u32::MAX vectors".to_owned()))?;
        self.rows.extend_from_slice(vector);
        self.links.push(vec![Vec::new(); level + 1]);
        let Some((entry, top)) = self.entry else {
            self.entry = Some((id, level));
            return Ok(id);
        };
        let start = Scored {
            similarity: dot(vector, self.row(entry)),
            id: entry,
        };
        let mut entries = vec![descend(self, vector, start, level + 1..=top)];
        for layer in (0..=level.min(top)).rev() {
            let found = search_layer(self, vector, &entries, layer, EF_CONSTRUCTION);
            let chosen = self.select(&found, self.cap(layer));
            // Re-selecting a full list costs O(cap²) similarities: the lists are computed in
            // parallel (each from the graph as it stands), then stored.
            let back: Vec<(u32, Vec<u32>)> = chosen
                .par_iter()
                .filter_map(|&n| self.linked_back(n, id, layer).map(|list| (n, list)))
                .collect();
            for (n, list) in back {
                self.links[n as usize][layer] = list;
            }
            self.links[id as usize][layer] = chosen;
            entries = found;
        }
        if level > top {
            self.entry = Some((id, level));
        }
        Ok(id)
    }

    /// Removes every point `gone` selects from the graph: each live point that links to one,
    /// on any layer, gives its place to live points reachable through the removed ones
    /// ([`MutableGraph::repaired`], after FreshDiskANN's delete consolidation); the removed
    /// points keep no link and no level above 0, and their rows read (and are written) as zeros.
    /// A removed entry point gives way to the live point of the highest level. Points removed
    /// before (by an earlier generation) cost nothing: nothing links to them. Returns how many
    /// lists were repaired.
    pub(super) fn remove(&mut self, gone: &(dyn Fn(u32) -> bool + Sync)) -> usize {
        let points = self.links.len();
        let removed: Vec<bool> = (0..points as u32)
            .into_par_iter()
            .map(|id| gone(id) || self.is_removed(id))
            .collect();
        if !removed.contains(&true) {
            return 0;
        }
        // Every repaired list is computed from the graph as it stands, in parallel, then stored.
        let graph = &*self;
        let repairs: Vec<(u32, usize, Vec<u32>)> = (0..points as u32)
            .into_par_iter()
            .filter(|&id| !removed[id as usize])
            .flat_map_iter(|id| {
                let removed = &removed;
                graph.links[id as usize]
                    .iter()
                    .enumerate()
                    .filter(move |(_, list)| {
                        list.iter().any(|&n| removed.get(n as usize) == Some(&true))
                    })
                    .map(move |(layer, _)| (id, layer, graph.repaired(id, layer, removed)))
            })
            .collect();
        let repaired = repairs.len();
        for (id, layer, list) in repairs {
            self.links[id as usize][layer] = list;
        }
        for (id, &gone) in removed.iter().enumerate() {
            if gone {
                self.links[id] = vec![Vec::new()];
            }
        }
        if self.entry.is_some_and(|(entry, _)| removed[entry as usize]) {
            // The live point of the highest level (the lowest id among equals) takes over.
            self.entry = self
                .links
                .iter()
                .enumerate()
                .filter(|&(id, _)| !removed[id])
                .map(|(id, own)| (id as u32, own.len() - 1))
                .min_by_key(|&(id, level)| (std::cmp::Reverse(level), id));
        }
        self.removed = removed;
        self.zeros = vec![0.0; self.dimension];
        repaired
    }

    /// The new list of live point `id` on `layer`, whose list links to removed points. Its live
    /// neighbours stay (long links included), and each removed neighbour gives way to up to
    /// [`REPLACEMENTS_PER_REMOVED`] live points found by walking through the removed ones (at
    /// most [`REPAIR_WALK`] of them), within the layer's cap: first those the heuristic keeps
    /// (a direction the list does not cover yet, so a removed bridge to another region is
    /// replaced by points of that region), then the most similar.
    fn repaired(&self, id: u32, layer: usize, removed: &[bool]) -> Vec<u32> {
        let is_removed = |n: u32| removed.get(n as usize).copied().unwrap_or(false);
        let own = Layers::neighbours(self, layer, id);
        let mut kept: Vec<u32> = own.iter().copied().filter(|&n| !is_removed(n)).collect();
        let mut walk: VecDeque<u32> = own.iter().copied().filter(|&n| is_removed(n)).collect();
        let mut walked: Vec<u32> = walk.iter().copied().collect();
        let mut found: Vec<u32> = Vec::new();
        while let Some(d) = walk.pop_front() {
            for &n in Layers::neighbours(self, layer, d) {
                if n == id || n as usize >= removed.len() {
                    continue;
                }
                if !is_removed(n) {
                    found.push(n);
                } else if walked.len() < REPAIR_WALK && !walked.contains(&n) {
                    walked.push(n);
                    walk.push_back(n);
                }
            }
        }
        found.sort_unstable();
        found.dedup();
        found.retain(|n| !kept.contains(n));
        let row = self.row(id);
        let mut found: Vec<Scored> = found
            .into_iter()
            .map(|n| Scored {
                similarity: dot(row, self.row(n)),
                id: n,
            })
            .collect();
        found.sort_unstable_by(|a, b| b.cmp(a));
        found.truncate(REPAIR_CANDIDATES_PER_SLOT * self.cap(layer));
        let removed_neighbours = own.len() - kept.len();
        let length =
            (kept.len() + REPLACEMENTS_PER_REMOVED * removed_neighbours).min(self.cap(layer));
        // First the heuristic's choices, then the most similar of the rest.
        for by_heuristic in [true, false] {
            for c in &found {
                if kept.len() >= length {
                    return kept;
                }
                if kept.contains(&c.id) {
                    continue;
                }
                let row = self.row(c.id);
                if !by_heuristic || kept.iter().all(|&k| dot(row, self.row(k)) < c.similarity) {
                    kept.push(c.id);
                }
            }
        }
        kept
    }

    /// Whether point `id` was removed.
    fn is_removed(&self, id: u32) -> bool {
        self.removed.get(id as usize).copied().unwrap_or(false)
    }

    /// Most neighbours a point keeps on `layer`.
    fn cap(&self, layer: usize) -> usize {
        if layer == 0 {
            2 * self.max_connections
        } else {
            self.max_connections
        }
    }

    /// The neighbour selection heuristic: going through `candidates` (best first, similarity
    /// to the point being linked), keep one only if it is more similar to that point than to
    /// every neighbour already kept, up to `cap`. With no more than `cap` candidates, all are
    /// kept (as hnsw_rs and hnswlib do). Pruned candidates are not used to fill the list (see
    /// `Graph::built` in the parent module: full lists strand clusters).
    fn select(&self, candidates: &[Scored], cap: usize) -> Vec<u32> {
        if candidates.len() <= cap {
            return candidates.iter().map(|c| c.id).collect();
        }
        let mut kept: Vec<u32> = Vec::with_capacity(cap);
        for c in candidates {
            if kept.len() == cap {
                break;
            }
            let row = self.row(c.id);
            if kept.iter().all(|&k| dot(row, self.row(k)) < c.similarity) {
                kept.push(c.id);
            }
        }
        kept
    }

    /// The neighbours of `n` on `layer` once `new` is added: when that overflows the layer's
    /// cap, the list is re-selected by the heuristic. `None` when nothing changes (`n` is not
    /// on this layer, as in a damaged or foreign graph, or already links to `new`).
    fn linked_back(&self, n: u32, new: u32, layer: usize) -> Option<Vec<u32>> {
        let list = self.links.get(n as usize)?.get(layer)?;
        if list.contains(&new) {
            return None;
        }
        let cap = self.cap(layer);
        if list.len() < cap {
            let mut list = list.clone();
            list.push(new);
            return Some(list);
        }
        let row = self.row(n);
        let mut candidates: Vec<Scored> = list
            .iter()
            .chain(std::iter::once(&new))
            .filter(|&&c| c != n)
            .map(|&c| Scored {
                similarity: dot(row, self.row(c)),
                id: c,
            })
            .collect();
        candidates.sort_unstable_by(|a, b| b.cmp(a));
        Some(self.select(&candidates, cap))
    }

    /// Points in the graph.
    pub(super) fn len(&self) -> usize {
        self.links.len()
    }

    /// The vector of point `id`: a mapped row of the previous generation or an inserted one
    /// (zeros when removed, empty when out of range).
    fn row(&self, id: u32) -> &[f32] {
        if self.is_removed(id) {
            return &self.zeros;
        }
        let id = id as usize;
        let base_points = self.base.as_ref().map_or(0, FlatGraph::points);
        match &self.base {
            Some(base) if id < base_points => base.vector(id as u32),
            _ => {
                let start = (id - base_points) * self.dimension;
                self.rows.get(start..start + self.dimension).unwrap_or(&[])
            }
        }
    }
}

impl Layers for MutableGraph {
    fn points(&self) -> usize {
        self.links.len()
    }

    fn vector(&self, id: u32) -> &[f32] {
        self.row(id)
    }

    fn neighbours(&self, layer: usize, id: u32) -> &[u32] {
        self.links
            .get(id as usize)
            .and_then(|own| own.get(layer))
            .map_or(&[], Vec::as_slice)
    }
}

impl ExportSource for MutableGraph {
    fn points(&self) -> usize {
        self.links.len()
    }

    fn dimension(&self) -> usize {
        self.dimension
    }

    fn entry(&self) -> u32 {
        self.entry.map_or(0, |(id, _)| id)
    }

    fn max_connections(&self) -> u32 {
        self.max_connections as u32
    }

    fn level(&self, id: usize) -> usize {
        self.links
            .get(id)
            .map_or(0, |own| own.len().saturating_sub(1))
    }

    fn neighbours(&self, layer: usize, id: usize, out: &mut Vec<u32>) {
        out.extend_from_slice(Layers::neighbours(self, layer, id as u32));
    }

    fn vector(&self, id: usize) -> &[f32] {
        self.row(id as u32)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use hnsw_rs::prelude::{DistDot, Hnsw};

    use super::super::graph::{self, FlatGraph};
    use super::super::search::{self, Layers};
    use super::super::{EF_CONSTRUCTION, MAX_CONNECTIONS, MAX_LAYERS as HNSW_LAYERS};
    use super::*;

    const DIM: usize = 64;

    fn normalised(mut v: Vec<f32>) -> Vec<f32> {
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= norm);
        v
    }

    /// `n` unit vectors scattered around `centres` random unit centres.
    fn clustered(n: usize, centres: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let centres: Vec<Vec<f32>> = (0..centres)
            .map(|_| normalised((0..DIM).map(|_| rng.gen_range(-1.0f32..1.0)).collect()))
            .collect();
        (0..n)
            .map(|_| {
                let c = &centres[rng.gen_range(0..centres.len())];
                normalised(c.iter().map(|x| x + rng.gen_range(-0.3f32..0.3)).collect())
            })
            .collect()
    }

    /// A query near `v`: `v` plus noise, renormalised.
    fn near(v: &[f32], rng: &mut ChaCha8Rng) -> Vec<f32> {
        normalised(v.iter().map(|x| x + rng.gen_range(-0.1f32..0.1)).collect())
    }

    /// hnsw_rs with the writer's parameters, inserting one at a time (deterministic).
    fn hnsw_rs(vectors: &[Vec<f32>]) -> Hnsw<'static, f32, DistDot> {
        let hnsw = Hnsw::new(
            MAX_CONNECTIONS,
            vectors.len() * 2,
            HNSW_LAYERS,
            EF_CONSTRUCTION,
            DistDot,
        );
        for (id, v) in vectors.iter().enumerate() {
            hnsw.insert((v.as_slice(), id));
        }
        hnsw
    }

    fn reopen(dir: &Path, source: &impl ExportSource) -> FlatGraph {
        graph::write(dir, source).unwrap();
        FlatGraph::open(dir).unwrap()
    }

    /// Mean share of the exact top 10 that the graph search finds at `ef`.
    fn recall(graph: &FlatGraph, queries: &[Vec<f32>], ef: usize) -> f64 {
        recall_of_live(graph, queries, ef, &|_| false)
    }

    /// Mean share of the exact top 10 live points that the graph search finds at `ef`.
    fn recall_of_live(
        graph: &FlatGraph,
        queries: &[Vec<f32>],
        ef: usize,
        dead: &dyn Fn(u32) -> bool,
    ) -> f64 {
        let found: usize = queries
            .iter()
            .map(|q| {
                let truth = search::exact(graph, q, 10, dead);
                let hits = search::search(graph, q, 10, ef, dead);
                hits.iter()
                    .filter(|h| truth.iter().any(|t| t.id == h.id))
                    .count()
            })
            .sum();
        found as f64 / (queries.len() * 10) as f64
    }

    #[test]
    fn inserted_points_are_found_as_well_as_through_hnsw_rs() {
        let vectors = clustered(3000, 50, 21);
        let (first, second) = vectors.split_at(2000);
        let base_dir = tempfile::tempdir().unwrap();
        let hnsw = hnsw_rs(first);
        graph::export(&hnsw, first.len(), base_dir.path()).unwrap();

        let mut ours = MutableGraph::load(FlatGraph::open(base_dir.path()).unwrap()).unwrap();
        for v in second {
            ours.insert(v).unwrap();
        }
        for own in &ours.links {
            for (layer, list) in own.iter().enumerate() {
                assert!(
                    list.len() <= ours.cap(layer),
                    "layer {layer}: {}",
                    list.len()
                );
            }
        }
        let ours_dir = tempfile::tempdir().unwrap();
        let ours = reopen(ours_dir.path(), &ours);

        for (id, v) in second.iter().enumerate() {
            hnsw.insert((v.as_slice(), first.len() + id));
        }
        let theirs_dir = tempfile::tempdir().unwrap();
        graph::export(&hnsw, vectors.len(), theirs_dir.path()).unwrap();
        let theirs = FlatGraph::open(theirs_dir.path()).unwrap();

        assert_eq!(ours.points(), 3000);
        assert_eq!(
            ours.all_vectors(),
            theirs.all_vectors(),
            "same rows, same ids"
        );
        let mut rng = ChaCha8Rng::seed_from_u64(22);
        let queries: Vec<Vec<f32>> = (0..150)
            .map(|i| near(&vectors[(i * 20 + 7) % vectors.len()], &mut rng))
            .collect();
        // At ef 10 (a beam no wider than k) graph quality shows; at ef 64 both must be good.
        for ef in [10, 64] {
            let (ours, theirs) = (recall(&ours, &queries, ef), recall(&theirs, &queries, ef));
            eprintln!("recall@10 at ef {ef}: our insert {ours:.3}, hnsw_rs {theirs:.3}");
            assert!(
                ours + 0.02 >= theirs,
                "ef {ef}: ours {ours:.3}, hnsw_rs {theirs:.3}"
            );
            if ef == 64 {
                assert!(ours >= 0.95, "recall@10 {ours:.3}");
            }
        }
        // Every inserted point is its own nearest neighbour.
        for (i, v) in second.iter().enumerate().step_by(25) {
            let hit = search::search(&ours, v, 1, 64, &|_| false)[0];
            assert_eq!(hit.id as usize, first.len() + i);
        }
    }

    #[test]
    fn removed_points_leave_the_graph_and_the_others_stay_found() {
        let vectors = clustered(3000, 50, 31);
        let dir = tempfile::tempdir().unwrap();
        graph::export(&hnsw_rs(&vectors), vectors.len(), dir.path()).unwrap();
        let tombstoned = FlatGraph::open(dir.path()).unwrap();
        let entry = tombstoned.entry();
        // A seventh of the points, the whole neighbourhood of point 0 and the entry point.
        let gone = |id: u32| {
            (id as usize) < vectors.len()
                && (id % 7 == 3 || id == entry || dot(&vectors[id as usize], &vectors[0]) > 0.3)
        };
        let removed = (0..3000).filter(|&id| gone(id)).count();
        assert!((470..520).contains(&removed), "{removed}");

        let mut graph = MutableGraph::load(FlatGraph::open(dir.path()).unwrap()).unwrap();
        assert!(
            graph.remove(&gone) > removed,
            "the lists through them are repaired"
        );
        let (new_entry, top) = graph.entry.unwrap();
        assert!(!gone(new_entry));
        for (id, own) in graph.links.iter().enumerate() {
            if gone(id as u32) {
                assert_eq!(own, &vec![Vec::<u32>::new()], "point {id} keeps no link");
                continue;
            }
            assert!(own.len() - 1 <= top, "the entry is on the top layer");
            for (layer, list) in own.iter().enumerate() {
                assert!(
                    list.iter().all(|&n| !gone(n)),
                    "{id} links to a removed point"
                );
                assert!(list.len() <= graph.cap(layer));
            }
        }
        assert_eq!(graph.remove(&gone), 0, "removing again repairs nothing");

        let out = tempfile::tempdir().unwrap();
        let flat = reopen(out.path(), &graph);
        for id in 0..3000u32 {
            let zero = flat.vector(id).iter().all(|&x| x == 0.0);
            assert_eq!(zero, gone(id), "row {id}");
        }
        let mut rng = ChaCha8Rng::seed_from_u64(32);
        let queries: Vec<Vec<f32>> = (0..150)
            .map(|i| near(&vectors[(i * 20 + 5) % vectors.len()], &mut rng))
            .collect();
        // As good as walking through the removed points as tombstones would.
        for ef in [10, 64] {
            let repaired = recall_of_live(&flat, &queries, ef, &gone);
            let walked = recall_of_live(&tombstoned, &queries, ef, &gone);
            eprintln!(
                "recall@10 at ef {ef}: repaired {repaired:.3}, through tombstones {walked:.3}"
            );
            assert!(
                repaired + 0.02 >= walked,
                "ef {ef}: {repaired:.3} < {walked:.3}"
            );
            if ef == 64 {
                assert!(repaired >= 0.95, "recall@10 {repaired:.3}");
            }
        }
        // Every live point is still reachable: it is its own nearest neighbour.
        for (id, v) in vectors
            .iter()
            .enumerate()
            .filter(|&(id, _)| !gone(id as u32))
        {
            assert_eq!(search::search(&flat, v, 1, 64, &gone)[0].id, id as u32);
        }
        // The graph takes new points after the removal.
        let mut again = MutableGraph::load(flat).unwrap();
        let more = clustered(100, 5, 33);
        for v in &more {
            again.insert(v).unwrap();
        }
        let last = tempfile::tempdir().unwrap();
        let flat = reopen(last.path(), &again);
        for (i, v) in more.iter().enumerate() {
            assert_eq!(
                search::search(&flat, v, 1, 64, &gone)[0].id,
                3000 + i as u32
            );
        }
    }

    #[test]
    fn removing_every_point_leaves_an_empty_graph_that_takes_new_ones() {
        let vectors = clustered(60, 3, 34);
        let mut graph = MutableGraph::empty(MAX_CONNECTIONS);
        for v in &vectors[..40] {
            graph.insert(v).unwrap();
        }
        graph.remove(&|_| true);
        assert_eq!(graph.entry, None);
        assert!(
            graph
                .links
                .iter()
                .all(|own| own == &vec![Vec::<u32>::new()])
        );
        for v in &vectors[40..] {
            graph.insert(v).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let flat = reopen(dir.path(), &graph);
        let dead = |id: u32| id < 40;
        for (i, v) in vectors[40..].iter().enumerate() {
            assert_eq!(search::search(&flat, v, 1, 16, &dead)[0].id, 40 + i as u32);
        }
        assert!(flat.vector(3).iter().all(|&x| x == 0.0));
    }

    #[test]
    fn the_first_point_becomes_the_entry_and_a_higher_level_takes_over() {
        let vectors = clustered(40, 4, 23);
        let mut graph = MutableGraph::empty(MAX_CONNECTIONS);
        assert_eq!(graph.insert_at_level(&vectors[0], 1).unwrap(), 0);
        assert_eq!(graph.entry, Some((0, 1)));
        assert_eq!(graph.dimension, DIM);
        assert!(graph.links[0].iter().all(Vec::is_empty));
        assert!(graph.insert_at_level(&[1.0; 8], 0).is_err(), "dimension");
        assert_eq!(graph.len(), 1);

        for v in &vectors[1..20] {
            graph.insert_at_level(v, 0).unwrap();
        }
        assert_eq!(graph.entry, Some((0, 1)), "lower levels keep the entry");
        assert_eq!(
            Layers::neighbours(&graph, 0, 5).len(),
            19,
            "few points: all linked"
        );
        assert!(
            Layers::neighbours(&graph, 0, 0).contains(&5),
            "links go both ways"
        );

        let top = graph.insert_at_level(&vectors[20], 3).unwrap();
        assert_eq!(graph.entry, Some((top, 3)));
        assert_eq!(graph.links[top as usize].len(), 4);
        assert_eq!(
            Layers::neighbours(&graph, 1, top),
            &[0],
            "point 0 shares layer 1"
        );
        assert!(Layers::neighbours(&graph, 2, top).is_empty());
        let next = graph.insert_at_level(&vectors[21], 2).unwrap();
        assert_eq!(Layers::neighbours(&graph, 2, next), &[top]);
        assert_eq!(Layers::neighbours(&graph, 2, top), &[next]);
        for v in &vectors[22..] {
            graph.insert(v).unwrap();
        }

        let dir = tempfile::tempdir().unwrap();
        let flat = reopen(dir.path(), &graph);
        assert_eq!((flat.entry(), flat.layers(), flat.points()), (top, 4, 40));
        assert_eq!(flat.members(3), &[top]);
        assert_eq!(flat.members(2), &[top, next]);
        for (id, v) in vectors.iter().enumerate() {
            assert_eq!(search::search(&flat, v, 1, 16, &|_| false)[0].id, id as u32);
        }
        // The reloaded graph carries on where it stopped.
        let mut again = MutableGraph::load(flat).unwrap();
        assert_eq!((again.entry, again.len()), (Some((top, 3)), 40));
        assert_eq!(again.insert_at_level(&vectors[3], 0).unwrap(), 40);
    }

    #[test]
    fn levels_are_deterministic_and_geometric() {
        let graph = MutableGraph::empty(MAX_CONNECTIONS);
        let levels: Vec<usize> = (0..48_000).map(|id| graph.random_level(id)).collect();
        assert_eq!(
            levels[..100],
            (0..100)
                .map(|id| graph.random_level(id))
                .collect::<Vec<_>>()
        );
        // P(level >= 1) = 1/M, P(level >= 2) = 1/M².
        let above = |l: usize| levels.iter().filter(|&&x| x >= l).count();
        assert!((1700..2300).contains(&above(1)), "{}", above(1));
        assert!((40..130).contains(&above(2)), "{}", above(2));
        assert!(levels.iter().all(|&l| l < MAX_LAYERS));
    }

    #[test]
    fn the_heuristic_skips_a_candidate_closer_to_a_kept_neighbour() {
        let mut graph = MutableGraph::empty(2);
        // Around the point (1, 0): a and b nearly coincide, c lies on the other side.
        let a = normalised(vec![0.9, 0.3]);
        let b = normalised(vec![0.88, 0.32]);
        let c = normalised(vec![0.8, -0.5]);
        let far = normalised(vec![-1.0, 0.2]);
        for v in [&a, &b, &c, &far] {
            graph.insert_at_level(v, 0).unwrap();
        }
        let q = [1.0, 0.0];
        let mut candidates: Vec<Scored> = (0..4)
            .map(|id| Scored {
                similarity: dot(&q, graph.row(id)),
                id,
            })
            .collect();
        candidates.sort_unstable_by(|x, y| y.cmp(x));
        assert_eq!(
            graph.select(&candidates, 3),
            vec![0, 2],
            "b is skipped for c, and pruned ones do not fill the cap"
        );
        assert_eq!(
            graph.select(&candidates[..3], 4),
            vec![0, 1, 2],
            "under the cap"
        );
    }

    #[test]
    fn damaged_base_layers_are_refused_on_load() {
        // One layer only, so the layout is known: header and layer table (56 bytes), levels
        // (50 bytes, padded to 56), 51 offsets, then the neighbour ids.
        let mut graph = MutableGraph::empty(MAX_CONNECTIONS);
        for v in &clustered(50, 2, 24) {
            graph.insert_at_level(v, 0).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        graph::write(dir.path(), &graph).unwrap();
        let path = dir.path().join(graph::GRAPH_FILE);
        let bytes = std::fs::read(&path).unwrap();
        let (offsets, neighbours) = (56 + 56, 56 + 56 + 51 * 8);
        let load = |bytes: &[u8]| {
            std::fs::write(&path, bytes).unwrap();
            // Opening reads layer 0 lazily: the damage is only found by a full load.
            MutableGraph::load(FlatGraph::open(dir.path()).unwrap()).err()
        };
        assert_eq!(load(&bytes), None);
        let mut wild = bytes.clone();
        wild[neighbours..neighbours + 4].copy_from_slice(&5000u32.to_le_bytes());
        assert!(load(&wild).is_some_and(|e| e.contains("beyond 50 points")));
        let mut wild = bytes.clone();
        wild[offsets + 80..offsets + 88].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(load(&wild).is_some_and(|e| e.contains("offsets decrease")));
    }
}
