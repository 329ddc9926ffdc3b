//! The vector index: an HNSW graph (dot product on unit vectors = cosine) over every passage,
//! the chunk table mapping each vector to its opportunity ordinal, kind and text span, the
//! passage texts (an mmap'd blob) and the tombstone set of replaced or deleted chunks, whose
//! points have left the graph and whose rows and texts are zeros.
//!
//! hnsw_rs builds the graph of a full build or a compaction; an incremental update inserts
//! into a mutable copy of the previous generation's graph instead (`insert`). Reading never
//! touches hnsw_rs: every generation's graph is written flat (`graph.bin`, `vectors.f32`, see
//! `graph`), and [`VectorIndex`] memory-maps those files and searches them itself, so
//! reopening is a few mmaps and costs almost no resident memory.
//!
//! Files in a generation directory: `graph.bin` + `vectors.f32` (the flat graph, the only copy
//! of the vectors), `chunks.bin` (bincode: chunk infos and text offsets), `chunks.txt`
//! (passage texts, back to back; a tombstoned chunk's bytes are zeros) and `tombstones.bin`
//! (bincode: sorted chunk ids). Format-2
//! generations also hold an hnsw_rs dump (`vectors.hnsw.graph` + `vectors.hnsw.data`); it is
//! ignored and not carried over.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use hnsw_rs::prelude::{DistDot, Hnsw};
use memmap2::Mmap;
use serde::{Deserialize, Serialize};

use super::Error;
use super::chunk::{ChunkKind, Passage};
use super::generation::{read_file, write_file};

mod graph;
mod insert;
mod search;

use graph::FlatGraph;
use insert::MutableGraph;

const CHUNKS_FILE: &str = "chunks.bin";
const TEXT_FILE: &str = "chunks.txt";
const TOMBSTONES_FILE: &str = "tombstones.bin";
/// Neighbours per node and layer.
const MAX_CONNECTIONS: usize = 24;
/// Candidate list size while building.
const EF_CONSTRUCTION: usize = 200;
/// Layers of hnsw_rs graphs (the most the flat format holds).
const MAX_LAYERS: usize = graph::MAX_LAYERS;
/// Vectors buffered before a parallel insert into the graph.
const INSERT_BATCH: usize = 256;
/// Default search breadth: recall@10 >= 0.98 on real embeddings (see benches/index_build.rs).
pub const DEFAULT_EF: usize = 64;

/// Where a vector comes from: its candidate row and the byte range in the source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkInfo {
    /// Ordinal of the candidate row.
    pub ordinal: u32,
    /// Which text the passage was cut from.
    pub kind: ChunkKind,
    /// Byte offset of the passage in its source text.
    pub start: u32,
    /// Byte offset just past the passage in its source text.
    pub end: u32,
}

/// One vector search result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VectorHit {
    /// Chunk id (see [`VectorIndex::chunk`]).
    pub chunk: u32,
    /// Cosine similarity, higher is better.
    pub similarity: f32,
}

/// The bincode body of `chunks.bin`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct ChunkTable {
    infos: Vec<ChunkInfo>,
    /// `infos.len() + 1` offsets into `chunks.txt`.
    offsets: Vec<u64>,
}

/// An opened vector index (read-only, one generation).
pub struct VectorIndex {
    graph: Option<FlatGraph>,
    table: ChunkTable,
    text: Option<Mmap>,
    tombstones: Tombstones,
    /// The live chunks of each ordinal, built at the first [`VectorIndex::similarities_of`].
    by_ordinal: OnceLock<ChunksByOrdinal>,
}

/// Live chunk ids grouped by ordinal: those of ordinal `o` are
/// `chunks[starts[o]..starts[o + 1]]`.
#[derive(Debug, Default)]
struct ChunksByOrdinal {
    starts: Vec<u32>,
    chunks: Vec<u32>,
}

impl ChunksByOrdinal {
    fn build(infos: &[ChunkInfo], tombstones: &Tombstones) -> ChunksByOrdinal {
        let ordinals = infos
            .iter()
            .map(|i| i.ordinal as usize + 1)
            .max()
            .unwrap_or(0);
        let mut starts = vec![0u32; ordinals + 1];
        for (id, info) in infos.iter().enumerate() {
            if !tombstones.contains(id) {
                starts[info.ordinal as usize + 1] += 1;
            }
        }
        for o in 0..ordinals {
            starts[o + 1] += starts[o];
        }
        let mut next = starts.clone();
        let mut chunks = vec![0u32; starts[ordinals] as usize];
        for (id, info) in infos.iter().enumerate() {
            if !tombstones.contains(id) {
                let slot = &mut next[info.ordinal as usize];
                chunks[*slot as usize] = id as u32;
                *slot += 1;
            }
        }
        ChunksByOrdinal { starts, chunks }
    }

    fn of(&self, ordinal: u32) -> &[u32] {
        let o = ordinal as usize;
        match (self.starts.get(o), self.starts.get(o + 1)) {
            (Some(&start), Some(&end)) => &self.chunks[start as usize..end as usize],
            _ => &[],
        }
    }
}

impl std::fmt::Debug for VectorIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VectorIndex")
            .field("vectors", &self.len())
            .field("tombstones", &self.tombstones.count)
            .finish()
    }
}

impl VectorIndex {
    /// Opens the vector files of a generation directory: the flat graph and the texts are
    /// memory-mapped, nothing is read into memory but the chunk table and the tombstones.
    pub fn open(dir: &Path) -> Result<VectorIndex, Error> {
        let table = read_table(dir)?;
        let tombstones = Tombstones::read(dir, table.infos.len())?;
        let text = map_file(&dir.join(TEXT_FILE))?;
        let graph = open_graph(dir, table.infos.len())?;
        Ok(VectorIndex {
            graph,
            table,
            text,
            tombstones,
            by_ordinal: OnceLock::new(),
        })
    }

    /// The `k` nearest live chunks to `query` (a unit vector), best first; `ef` is the search
    /// breadth (at least `k`; [`DEFAULT_EF`] is a good start). Empty when `query` does not have
    /// the index's dimension.
    pub fn search(&self, query: &[f32], k: usize, ef: usize) -> Vec<VectorHit> {
        let Some(graph) = &self.graph else {
            return Vec::new();
        };
        let dead = |id: u32| self.tombstones.contains(id as usize);
        search::search(graph, query, k, ef, &dead)
            .into_iter()
            .map(hit)
            .collect()
    }

    /// Where chunk `chunk` comes from. Panics if `chunk` is not a chunk id of this index.
    pub fn chunk(&self, chunk: u32) -> &ChunkInfo {
        &self.table.infos[chunk as usize]
    }

    /// The passage text of `chunk` (empty if out of range, tombstoned or not valid UTF-8).
    pub fn chunk_text(&self, chunk: u32) -> &str {
        let i = chunk as usize;
        if self.tombstones.contains(i) {
            return "";
        }
        let (Some(text), Some(&start), Some(&end)) = (
            self.text.as_ref(),
            self.table.offsets.get(i),
            self.table.offsets.get(i + 1),
        ) else {
            return "";
        };
        text.get(start as usize..end as usize)
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or("")
    }

    /// Whether a chunk is tombstoned (replaced or deleted).
    pub fn is_tombstoned(&self, chunk: u32) -> bool {
        self.tombstones.contains(chunk as usize)
    }

    /// Vectors in the graph, tombstoned ones included.
    pub fn len(&self) -> usize {
        self.table.infos.len()
    }

    /// Whether the index holds no vectors.
    pub fn is_empty(&self) -> bool {
        self.table.infos.is_empty()
    }

    /// Tombstoned vectors.
    pub fn tombstones(&self) -> usize {
        self.tombstones.count
    }

    /// Exact (brute-force) nearest live chunks, for measuring HNSW recall.
    pub fn exact_search(&self, query: &[f32], k: usize) -> Vec<VectorHit> {
        let Some(graph) = &self.graph else {
            return Vec::new();
        };
        let dead = |id: u32| self.tombstones.contains(id as usize);
        search::exact(graph, query, k, &dead)
            .into_iter()
            .map(hit)
            .collect()
    }

    /// Every live chunk of the given ordinals with its exact similarity to `query`, in chunk
    /// order per ordinal: scoring a few hundred rows this way is cheaper than a graph search
    /// wide enough to find them among all the others. Empty when `query` does not have the
    /// index's dimension.
    pub fn similarities_of(
        &self,
        query: &[f32],
        ordinals: impl Iterator<Item = u32>,
    ) -> Vec<VectorHit> {
        let Some(graph) = self.graph.as_ref().filter(|g| g.dimension() == query.len()) else {
            return Vec::new();
        };
        let by_ordinal = self
            .by_ordinal
            .get_or_init(|| ChunksByOrdinal::build(&self.table.infos, &self.tombstones));
        ordinals
            .flat_map(|o| by_ordinal.of(o))
            .filter(|&&chunk| (chunk as usize) < graph.points())
            .map(|&chunk| VectorHit {
                chunk,
                similarity: search::dot(query, graph.vector(chunk)),
            })
            .collect()
    }

    /// The stored unit vector of `chunk`, or `None` when it is out of range.
    pub fn vector(&self, chunk: u32) -> Option<&[f32]> {
        let graph = self.graph.as_ref()?;
        ((chunk as usize) < graph.points()).then(|| graph.vector(chunk))
    }
}

fn hit(scored: search::Scored) -> VectorHit {
    VectorHit {
        chunk: scored.id,
        similarity: scored.similarity,
    }
}

/// The set of tombstoned chunk ids, as a bitset.
#[derive(Debug, Default, Clone)]
struct Tombstones {
    bits: Vec<u64>,
    count: usize,
}

impl Tombstones {
    fn with_len(len: usize) -> Tombstones {
        Tombstones {
            bits: vec![0; len.div_ceil(64)],
            count: 0,
        }
    }

    fn contains(&self, id: usize) -> bool {
        self.bits
            .get(id / 64)
            .is_some_and(|w| w & (1 << (id % 64)) != 0)
    }

    fn insert(&mut self, id: usize) {
        if id / 64 >= self.bits.len() {
            self.bits.resize(id / 64 + 1, 0);
        }
        let w = &mut self.bits[id / 64];
        if *w & (1 << (id % 64)) == 0 {
            *w |= 1 << (id % 64);
            self.count += 1;
        }
    }

    fn ids(&self) -> Vec<u32> {
        (0..self.bits.len() * 64)
            .filter(|&i| self.contains(i))
            .map(|i| i as u32)
            .collect()
    }

    fn read(dir: &Path, len: usize) -> Result<Tombstones, Error> {
        let path = dir.join(TOMBSTONES_FILE);
        let bytes = read_file(&path)?;
        let (ids, _): (Vec<u32>, _) =
            bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).map_err(
                |e| Error::Corrupt {
                    path: path.clone(),
                    reason: e.to_string(),
                },
            )?;
        let mut t = Tombstones::with_len(len);
        for id in ids {
            if id as usize >= len {
                return Err(Error::Corrupt {
                    path,
                    reason: format!("tombstone {id} beyond {len} chunks"),
                });
            }
            t.insert(id as usize);
        }
        Ok(t)
    }

    fn write(&self, dir: &Path) -> Result<(), Error> {
        let bytes = bincode::serde::encode_to_vec(self.ids(), bincode::config::standard())
            .map_err(|e| Error::Encode(e.to_string()))?;
        write_file(&dir.join(TOMBSTONES_FILE), &bytes)
    }
}

fn read_table(dir: &Path) -> Result<ChunkTable, Error> {
    let path = dir.join(CHUNKS_FILE);
    let bytes = read_file(&path)?;
    let (table, _): (ChunkTable, _) =
        bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).map_err(|e| {
            Error::Corrupt {
                path: path.clone(),
                reason: e.to_string(),
            }
        })?;
    if table.offsets.len() != table.infos.len() + 1 {
        return Err(Error::Corrupt {
            path,
            reason: "chunk offsets do not match chunk count".to_owned(),
        });
    }
    Ok(table)
}

/// The flat graph of a generation whose chunk table holds `chunks` vectors (`None` when it
/// holds none: then no graph was written).
fn open_graph(dir: &Path, chunks: usize) -> Result<Option<FlatGraph>, Error> {
    if chunks == 0 {
        return Ok(None);
    }
    let graph = FlatGraph::open(dir)?;
    if graph.points() != chunks {
        return Err(Error::Corrupt {
            path: dir.join(graph::GRAPH_FILE),
            reason: format!(
                "the graph has {} vectors but the chunk table {chunks}",
                graph.points()
            ),
        });
    }
    Ok(Some(graph))
}

fn map_file(path: &Path) -> Result<Option<Mmap>, Error> {
    let file = File::open(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let len = file
        .metadata()
        .map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?
        .len();
    if len == 0 {
        return Ok(None);
    }
    // SAFETY: generation files are never modified after the generation is written; a new
    // generation is a new directory.
    let map = unsafe { Mmap::map(&file) }.map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Some(map))
}

/// The graph a [`VectorWriter`] extends.
enum Graph {
    /// A full build or a compaction: hnsw_rs builds the graph, in parallel batches.
    Built {
        hnsw: Box<Hnsw<'static, f32, DistDot>>,
        /// Vectors waiting to be inserted (with their chunk ids).
        pending: Vec<(Vec<f32>, usize)>,
    },
    /// An incremental update: new vectors inserted into the previous generation's graph.
    Extended(MutableGraph),
}

impl Graph {
    fn built(capacity: usize) -> Graph {
        let hnsw = Hnsw::new(
            MAX_CONNECTIONS,
            capacity.max(1024),
            MAX_LAYERS,
            EF_CONSTRUCTION,
            DistDot,
        );
        // Not `set_keeping_pruned`: with every list full, each back link evicts the farthest
        // neighbour, which is the long link joining a cluster (near-duplicate resumes) to the
        // rest, and whole clusters become unreachable (recall@10 fell from 0.96 to 0.73 at
        // every ef on the 100k bench pool).
        Graph::Built {
            hnsw: Box::new(hnsw),
            pending: Vec::new(),
        }
    }

    /// Adds vectors with consecutive chunk ids from `first`.
    fn add(&mut self, first: usize, vectors: Vec<Vec<f32>>) -> Result<(), Error> {
        match self {
            Graph::Built { hnsw, pending } => {
                pending.extend(vectors.into_iter().enumerate().map(|(i, v)| (v, first + i)));
                if pending.len() >= INSERT_BATCH {
                    flush(hnsw, pending);
                }
            }
            Graph::Extended(graph) => {
                for (i, v) in vectors.iter().enumerate() {
                    let id = graph.insert(v)? as usize;
                    if id != first + i {
                        return Err(Error::Vector(format!(
                            "vector {id} inserted as chunk {}",
                            first + i
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// Writes the flat graph files of `points` vectors into `dir`.
    fn write(self, points: usize, dir: &Path) -> Result<(), Error> {
        match self {
            Graph::Built {
                mut hnsw,
                mut pending,
            } => {
                flush(&mut hnsw, &mut pending);
                graph::export(&hnsw, points, dir)
            }
            Graph::Extended(graph) => {
                if graph.len() != points {
                    return Err(Error::Vector(format!(
                        "the graph has {} vectors but the chunk table {points}",
                        graph.len()
                    )));
                }
                graph::write(dir, &graph)
            }
        }
    }
}

/// Inserts buffered vectors into an hnsw_rs graph, in parallel.
fn flush(hnsw: &mut Hnsw<'static, f32, DistDot>, pending: &mut Vec<(Vec<f32>, usize)>) {
    let data: Vec<(&Vec<f32>, usize)> = pending.iter().map(|(v, id)| (v, *id)).collect();
    hnsw.parallel_insert(&data);
    pending.clear();
}

/// Writes one generation's vector files: created fresh, or continuing the previous generation
/// (its graph extended, its texts copied with tombstoned ones blanked, its tombstones kept), or
/// compacting it.
pub struct VectorWriter {
    dir: PathBuf,
    graph: Graph,
    table: ChunkTable,
    text: BufWriter<File>,
    text_len: u64,
    tombstones: Tombstones,
}

impl VectorWriter {
    /// Starts an empty vector index in `dir`; `capacity` is a hint of the vectors to come.
    pub fn create(dir: &Path, capacity: usize) -> Result<VectorWriter, Error> {
        VectorWriter::with_graph(dir, Graph::built(capacity))
    }

    fn with_graph(dir: &Path, graph: Graph) -> Result<VectorWriter, Error> {
        Ok(VectorWriter {
            dir: dir.to_path_buf(),
            graph,
            table: ChunkTable {
                infos: Vec::new(),
                offsets: vec![0],
            },
            text: create_text(dir)?,
            text_len: 0,
            tombstones: Tombstones::default(),
        })
    }

    /// Continues the previous generation in `prev` into `dir`: every chunk of an ordinal in
    /// `drop_ordinals` is tombstoned and new vectors are inserted into a copy of its graph.
    /// When tombstones would pass `compact_ratio` of all vectors, live vectors are copied into
    /// a fresh graph instead (no re-embedding) and chunk ids are renumbered; the second value
    /// tells which happened.
    pub fn continue_from(
        prev: &Path,
        dir: &Path,
        drop_ordinals: &dyn Fn(u32) -> bool,
        compact_ratio: f64,
    ) -> Result<(VectorWriter, bool), Error> {
        let old_table = read_table(prev)?;
        let mut tombstones = Tombstones::read(prev, old_table.infos.len())?;
        for (id, info) in old_table.infos.iter().enumerate() {
            if drop_ordinals(info.ordinal) {
                tombstones.insert(id);
            }
        }
        let old_graph = open_graph(prev, old_table.infos.len())?;
        let mut old_text = read_file(&prev.join(TEXT_FILE))?;
        let total = old_table.infos.len().max(1);
        let compact = tombstones.count as f64 > compact_ratio * total as f64;
        if compact {
            let live: Vec<usize> = (0..old_table.infos.len())
                .filter(|&id| !tombstones.contains(id))
                .collect();
            let mut writer = VectorWriter::create(dir, live.len())?;
            let mut items = Vec::with_capacity(live.len());
            let mut vectors = Vec::with_capacity(live.len());
            for id in live {
                let text = chunk_bytes(&old_table, &old_text, id).to_vec();
                items.push((old_table.infos[id], text));
                let row = old_graph.as_ref().map_or(&[][..], |g| g.vector(id as u32));
                vectors.push(row.to_vec());
            }
            writer.append_raw(items, vectors)?;
            return Ok((writer, true));
        }
        let mut graph = match old_graph {
            Some(flat) => MutableGraph::load(flat).map_err(|reason| Error::Corrupt {
                path: prev.join(graph::GRAPH_FILE),
                reason,
            })?,
            None => MutableGraph::empty(MAX_CONNECTIONS),
        };
        // Nothing of a deleted or replaced passage is carried into the new generation: its
        // point leaves the graph (the lists through it are repaired, its row is written as
        // zeros) and its text is blanked (offsets stay valid).
        graph.remove(&|id| tombstones.contains(id as usize));
        blank_tombstoned(&old_table, &tombstones, &mut old_text);
        let mut writer = VectorWriter::with_graph(dir, Graph::Extended(graph))?;
        writer
            .text
            .write_all(&old_text)
            .map_err(|source| Error::Io {
                path: dir.join(TEXT_FILE),
                source,
            })?;
        writer.text_len = old_text.len() as u64;
        writer.table = old_table;
        writer.tombstones = tombstones;
        Ok((writer, false))
    }

    /// Adds one candidate's passages and their vectors (same order, unit length).
    pub fn add(
        &mut self,
        ordinal: u32,
        passages: &[Passage],
        vectors: Vec<Vec<f32>>,
    ) -> Result<(), Error> {
        let items = passages
            .iter()
            .map(|p| {
                (
                    ChunkInfo {
                        ordinal,
                        kind: p.kind,
                        start: p.start,
                        end: p.end,
                    },
                    p.text.as_bytes().to_vec(),
                )
            })
            .collect();
        self.append_raw(items, vectors)
    }

    fn append_raw(
        &mut self,
        items: Vec<(ChunkInfo, Vec<u8>)>,
        vectors: Vec<Vec<f32>>,
    ) -> Result<(), Error> {
        if items.len() != vectors.len() {
            return Err(Error::Vector(format!(
                "{} passages but {} vectors",
                items.len(),
                vectors.len()
            )));
        }
        let first = self.table.infos.len();
        for (info, text) in &items {
            self.text.write_all(text).map_err(|source| Error::Io {
                path: self.dir.join(TEXT_FILE),
                source,
            })?;
            self.text_len += text.len() as u64;
            self.table.infos.push(*info);
            self.table.offsets.push(self.text_len);
        }
        self.graph.add(first, vectors)
    }

    /// Vectors so far (tombstoned ones included).
    pub fn len(&self) -> usize {
        self.table.infos.len()
    }

    /// Whether no vector was added.
    pub fn is_empty(&self) -> bool {
        self.table.infos.is_empty()
    }

    /// Tombstoned vectors so far.
    pub fn tombstones(&self) -> usize {
        self.tombstones.count
    }

    /// Writes every file durably.
    pub fn finish(mut self) -> Result<(), Error> {
        let text_path = self.dir.join(TEXT_FILE);
        let io = |source| Error::Io {
            path: text_path.clone(),
            source,
        };
        self.text.flush().map_err(io)?;
        self.text.get_ref().sync_all().map_err(io)?;
        let bytes = bincode::serde::encode_to_vec(&self.table, bincode::config::standard())
            .map_err(|e| Error::Encode(e.to_string()))?;
        write_file(&self.dir.join(CHUNKS_FILE), &bytes)?;
        self.tombstones.write(&self.dir)?;
        if self.table.infos.is_empty() {
            return Ok(());
        }
        self.graph.write(self.table.infos.len(), &self.dir)
    }
}

/// Overwrites the text of every tombstoned chunk with zero bytes.
fn blank_tombstoned(table: &ChunkTable, tombstones: &Tombstones, text: &mut [u8]) {
    for id in (0..table.infos.len()).filter(|&id| tombstones.contains(id)) {
        let (start, end) = (table.offsets[id] as usize, table.offsets[id + 1] as usize);
        if let Some(bytes) = text.get_mut(start..end) {
            bytes.fill(0);
        }
    }
}

fn chunk_bytes<'a>(table: &ChunkTable, text: &'a [u8], id: usize) -> &'a [u8] {
    let (start, end) = (table.offsets[id] as usize, table.offsets[id + 1] as usize);
    text.get(start..end).unwrap_or(&[])
}

fn create_text(dir: &Path) -> Result<BufWriter<File>, Error> {
    let path = dir.join(TEXT_FILE);
    File::create(&path)
        .map(BufWriter::new)
        .map_err(|source| Error::Io { path, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tombstone_bitset_counts_once() {
        let mut t = Tombstones::with_len(10);
        t.insert(3);
        t.insert(3);
        t.insert(70);
        assert!(t.contains(3) && t.contains(70) && !t.contains(4));
        assert_eq!(t.count, 2);
        assert_eq!(t.ids(), vec![3, 70]);
    }

    fn passage(i: usize) -> Passage {
        let text = format!("passage {i}");
        Passage {
            kind: ChunkKind::Resume,
            start: 0,
            end: text.len() as u32,
            text,
        }
    }

    /// A unit vector of dimension 8 pointing mostly along axis `i % 8`.
    fn axis(i: usize) -> Vec<f32> {
        let mut v = vec![0.1f32; 8];
        v[i % 8] = 1.0 + i as f32 * 0.01;
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / norm).collect()
    }

    #[test]
    fn an_update_of_a_generation_without_vectors_starts_the_graph() {
        let first = tempfile::tempdir().unwrap();
        VectorWriter::create(first.path(), 0)
            .unwrap()
            .finish()
            .unwrap();
        assert!(!first.path().join(graph::GRAPH_FILE).exists());
        assert!(VectorIndex::open(first.path()).unwrap().is_empty());

        let second = tempfile::tempdir().unwrap();
        let (mut w, compacted) =
            VectorWriter::continue_from(first.path(), second.path(), &|_| false, 0.2).unwrap();
        assert!(!compacted);
        for ordinal in 0..6u32 {
            let i = ordinal as usize;
            w.add(ordinal, &[passage(i)], vec![axis(i)]).unwrap();
        }
        w.finish().unwrap();

        // A vector of another dimension is refused, and the writer cannot finish after it.
        let failed = tempfile::tempdir().unwrap();
        let (mut w, _) =
            VectorWriter::continue_from(second.path(), failed.path(), &|_| false, 0.2).unwrap();
        assert!(w.add(6, &[passage(6)], vec![vec![1.0; 4]]).is_err());
        assert!(w.finish().is_err());

        let third = tempfile::tempdir().unwrap();
        let (w, _) =
            VectorWriter::continue_from(second.path(), third.path(), &|o| o == 2, 0.5).unwrap();
        w.finish().unwrap();
        let ix = VectorIndex::open(third.path()).unwrap();
        assert_eq!((ix.len(), ix.tombstones()), (6, 1));
        // The tombstoned passage's text is blanked in place; the others keep their offsets.
        let text = std::fs::read(third.path().join(TEXT_FILE)).unwrap();
        let text = String::from_utf8_lossy(&text);
        assert!(!text.contains("passage 2") && text.contains("passage 3"));
        assert_eq!(ix.chunk_text(2), "");
        for i in 0..6 {
            let hits = ix.search(&axis(i), 3, 16);
            assert!(hits.iter().all(|h| h.chunk != 2));
            if i != 2 {
                assert_eq!(hits[0].chunk, i as u32);
                assert_eq!(ix.chunk_text(hits[0].chunk), format!("passage {i}"));
            }
        }
    }
}
