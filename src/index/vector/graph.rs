//! The flat HNSW graph on disk: written at the end of every build by one writer, fed by
//! hnsw_rs's in-memory graph (full builds, compactions) or by the adjacency lists of an
//! incremental update ([`super::insert`]), through [`ExportSource`]; opened by memory map, with
//! every size checked, so that reopening costs no parsing and almost no resident memory.
//!
//! `graph.bin` (little-endian; every section starts at a multiple of 8 bytes):
//! - header, 40 bytes: magic `RDXGRAPH`, format version, dimension, points, entry point,
//!   max level, max connections per layer (M), layers (= max level + 1), reserved (all u32);
//! - one 16-byte entry per layer: member count u32, reserved u32, edge count u64;
//! - levels: one u8 per point, the highest layer it belongs to;
//! - layer 0 (every point): `points + 1` u64 offsets, then the u32 neighbour ids (CSR);
//! - layer l > 0: the sorted u32 ids of its members, `members + 1` u64 offsets, neighbour ids.
//!
//! `vectors.f32` holds `points × dimension` f32, one row per point; point id = chunk id.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hnsw_rs::prelude::{DistDot, Hnsw, Point};
use memmap2::Mmap;

use crate::index::Error;

/// The graph file of a generation.
pub(super) const GRAPH_FILE: &str = "graph.bin";
/// The vector rows of a generation.
pub(super) const VECTORS_FILE: &str = "vectors.f32";
const MAGIC: &[u8; 8] = b"RDXGRAPH";
const VERSION: u32 = 1;
const HEADER_BYTES: usize = 40;
const LAYER_ENTRY_BYTES: usize = 16;
/// Most layers a graph may have (hnsw_rs never builds more).
pub(super) const MAX_LAYERS: usize = 16;
/// Largest vector dimension accepted (sanity bound against garbage headers).
const MAX_DIMENSION: usize = 1 << 16;

/// Plain numbers valid for every bit pattern, so a file's bytes can be viewed as them.
trait Pod: Copy {}
impl Pod for u32 {}
impl Pod for u64 {}
impl Pod for f32 {}

/// Views `bytes` as a slice of `T`, or `None` when it is misaligned or not a whole number of
/// `T` (the layout checks of [`FlatGraph::open`] rule both out).
fn cast<T: Pod>(bytes: &[u8]) -> Option<&[T]> {
    // SAFETY: `T` is u32, u64 or f32 (see `Pod`), valid for any bit pattern; `align_to` only
    // hands out the correctly aligned middle part and the slice is refused unless that is all.
    let (head, body, tail) = unsafe { bytes.align_to::<T>() };
    (head.is_empty() && tail.is_empty()).then_some(body)
}

/// Byte ranges of one layer's sections inside `graph.bin`.
#[derive(Debug, Clone)]
struct LayerSections {
    /// Sorted member ids; `None` for layer 0, which holds every point.
    members: Option<Range<usize>>,
    offsets: Range<usize>,
    neighbours: Range<usize>,
}

/// An opened flat graph: two read-only memory maps and the section table.
pub(super) struct FlatGraph {
    graph: Mmap,
    vectors: Mmap,
    dimension: usize,
    points: usize,
    entry: u32,
    max_connections: u32,
    layers: Vec<LayerSections>,
}

impl FlatGraph {
    /// Maps `graph.bin` and `vectors.f32` in `dir` and checks that every size agrees.
    pub(super) fn open(dir: &Path) -> Result<FlatGraph, Error> {
        let graph_path = dir.join(GRAPH_FILE);
        let vectors_path = dir.join(VECTORS_FILE);
        if cfg!(target_endian = "big") {
            return Err(corrupt(
                &graph_path,
                "little-endian file on a big-endian machine",
            ));
        }
        let graph = map(&graph_path)?;
        let header = Header::parse(&graph).map_err(|reason| corrupt(&graph_path, &reason))?;
        let layers = layout(&graph, &header).map_err(|reason| corrupt(&graph_path, &reason))?;
        let vectors = map(&vectors_path)?;
        let expected = header.points as u64 * header.dimension as u64 * 4;
        if vectors.len() as u64 != expected {
            return Err(corrupt(
                &vectors_path,
                &format!(
                    "{} bytes, expected {expected} ({} points of dimension {})",
                    vectors.len(),
                    header.points,
                    header.dimension
                ),
            ));
        }
        if cast::<f32>(&vectors).is_none() {
            return Err(corrupt(&vectors_path, "misaligned vector rows"));
        }
        let flat = FlatGraph {
            graph,
            vectors,
            dimension: header.dimension as usize,
            points: header.points as usize,
            entry: header.entry,
            max_connections: header.max_connections,
            layers,
        };
        flat.check_upper_layers()
            .map_err(|reason| corrupt(&graph_path, &reason))?;
        Ok(flat)
    }

    /// Points in the graph.
    pub(super) fn points(&self) -> usize {
        self.points
    }

    /// Vector dimension.
    pub(super) fn dimension(&self) -> usize {
        self.dimension
    }

    /// Where every search starts: a point of the top layer.
    pub(super) fn entry(&self) -> u32 {
        self.entry
    }

    /// Layers, the base layer included.
    pub(super) fn layers(&self) -> usize {
        self.layers.len()
    }

    /// M: neighbours per node on upper layers (2M on layer 0).
    pub(super) fn max_connections(&self) -> u32 {
        self.max_connections
    }

    /// The sorted ids of the points on `layer` (> 0; empty for layer 0 and beyond the top).
    pub(super) fn members(&self, layer: usize) -> &[u32] {
        self.layers
            .get(layer)
            .and_then(|s| s.members.as_ref())
            .map_or(&[], |m| self.u32s(m))
    }

    /// Every vector row, back to back.
    pub(super) fn all_vectors(&self) -> &[f32] {
        cast(&self.vectors).unwrap_or(&[])
    }

    /// The vector of point `id` (empty when out of range).
    #[inline]
    pub(super) fn vector(&self, id: u32) -> &[f32] {
        let start = id as usize * self.dimension;
        self.all_vectors()
            .get(start..start + self.dimension)
            .unwrap_or(&[])
    }

    /// The neighbours of point `id` in `layer` (empty when it is not in that layer). Ids are
    /// not checked against [`FlatGraph::points`] here: callers skip ids out of range.
    #[inline]
    pub(super) fn neighbours(&self, layer: usize, id: u32) -> &[u32] {
        let Some(sections) = self.layers.get(layer) else {
            return &[];
        };
        let slot = match &sections.members {
            None => id as usize,
            Some(members) => match self.u32s(members).binary_search(&id) {
                Ok(slot) => slot,
                Err(_) => return &[],
            },
        };
        let offsets = self.u64s(&sections.offsets);
        let (Some(&start), Some(&end)) = (offsets.get(slot), offsets.get(slot + 1)) else {
            return &[];
        };
        self.u32s(&sections.neighbours)
            .get(start as usize..end as usize)
            .unwrap_or(&[])
    }

    fn u32s(&self, range: &Range<usize>) -> &[u32] {
        self.graph.get(range.clone()).and_then(cast).unwrap_or(&[])
    }

    fn u64s(&self, range: &Range<usize>) -> &[u64] {
        self.graph.get(range.clone()).and_then(cast).unwrap_or(&[])
    }

    /// Reads all of layer 0's offsets (which [`FlatGraph::open`] leaves to lazy readers): they
    /// must not decrease. For loading the whole graph, which also checks neighbour ids.
    pub(super) fn check_base_offsets(&self) -> Result<(), String> {
        if self
            .u64s(&self.layers[0].offsets)
            .windows(2)
            .any(|w| w[0] > w[1])
        {
            return Err("layer 0: offsets decrease".to_owned());
        }
        Ok(())
    }

    /// Upper layers are small (a 1/M share of the points, shrinking by M per layer): check
    /// them in full. Layer 0 is checked lazily by the readers, so opening touches no page of it.
    fn check_upper_layers(&self) -> Result<(), String> {
        for (layer, sections) in self.layers.iter().enumerate().skip(1) {
            let members = sections.members.as_ref().map_or(&[][..], |m| self.u32s(m));
            if members.windows(2).any(|w| w[0] >= w[1])
                || members.last().is_some_and(|&m| m as usize >= self.points)
            {
                return Err(format!(
                    "layer {layer}: member ids unsorted or out of range"
                ));
            }
            let offsets = self.u64s(&sections.offsets);
            let edges = (sections.neighbours.len() / 4) as u64;
            if offsets.first() != Some(&0)
                || offsets.last() != Some(&edges)
                || offsets.windows(2).any(|w| w[0] > w[1])
            {
                return Err(format!("layer {layer}: offsets do not match its edges"));
            }
        }
        let top = self.layers.len() - 1;
        let in_top = match &self.layers[top].members {
            None => (self.entry as usize) < self.points,
            Some(members) => self.u32s(members).binary_search(&self.entry).is_ok(),
        };
        if !in_top {
            return Err(format!(
                "entry point {} is not in the top layer",
                self.entry
            ));
        }
        Ok(())
    }
}

/// The fixed-size header of `graph.bin`.
struct Header {
    dimension: u32,
    points: u32,
    entry: u32,
    max_level: u32,
    max_connections: u32,
    layers: u32,
}

impl Header {
    fn parse(bytes: &[u8]) -> Result<Header, String> {
        if bytes.len() < HEADER_BYTES {
            return Err(format!("{} bytes, shorter than its header", bytes.len()));
        }
        if &bytes[..8] != MAGIC {
            return Err("not a rediscover graph file".to_owned());
        }
        let field = |i: usize| read_u32(bytes, 8 + 4 * i);
        let version = field(0);
        if version != VERSION {
            return Err(format!("graph format {version}, expected {VERSION}"));
        }
        let header = Header {
            dimension: field(1),
            points: field(2),
            entry: field(3),
            max_level: field(4),
            max_connections: field(5),
            layers: field(6),
        };
        let layers = header.layers as usize;
        if header.points == 0
            || header.dimension == 0
            || header.dimension as usize > MAX_DIMENSION
            || header.max_connections == 0
            || !(1..=MAX_LAYERS).contains(&layers)
            || header.max_level as usize + 1 != layers
            || header.entry >= header.points
        {
            return Err("inconsistent header".to_owned());
        }
        Ok(header)
    }

    fn write(&self, out: &mut impl Write) -> std::io::Result<()> {
        out.write_all(MAGIC)?;
        for v in [
            VERSION,
            self.dimension,
            self.points,
            self.entry,
            self.max_level,
            self.max_connections,
            self.layers,
            0,
        ] {
            out.write_all(&v.to_le_bytes())?;
        }
        Ok(())
    }
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

/// Hands out consecutive 8-byte aligned sections, with overflow-checked sizes.
struct Cursor {
    at: u64,
}

impl Cursor {
    fn take(&mut self, count: u64, size: u64) -> Result<Range<usize>, String> {
        let len = count
            .checked_mul(size)
            .ok_or_else(|| "section size overflows".to_owned())?;
        let start = self.at;
        let end = start
            .checked_add(len)
            .ok_or_else(|| "section size overflows".to_owned())?;
        self.at = end.div_ceil(8) * 8;
        let to_usize = |v: u64| usize::try_from(v).map_err(|_| "section too large".to_owned());
        Ok(to_usize(start)?..to_usize(end)?)
    }
}

/// Computes every section from the header and per-layer counts; the file must end exactly
/// where the last section does.
fn layout(bytes: &[u8], header: &Header) -> Result<Vec<LayerSections>, String> {
    let layers = header.layers as usize;
    let table_end = HEADER_BYTES + layers * LAYER_ENTRY_BYTES;
    if bytes.len() < table_end {
        return Err(format!(
            "{} bytes, shorter than its layer table",
            bytes.len()
        ));
    }
    let mut cursor = Cursor {
        at: table_end as u64,
    };
    cursor.take(header.points as u64, 1)?; // levels: kept for tools, not needed to search
    let mut sections = Vec::with_capacity(layers);
    for layer in 0..layers {
        let entry = HEADER_BYTES + layer * LAYER_ENTRY_BYTES;
        let members = read_u32(bytes, entry) as u64;
        let edges = read_u64(bytes, entry + 8);
        if layer == 0 && members != header.points as u64 {
            return Err("layer 0 does not hold every point".to_owned());
        }
        if members > header.points as u64 || (layer > 0 && members == 0) {
            return Err(format!("layer {layer}: {members} members"));
        }
        let member_ids = if layer == 0 {
            None
        } else {
            Some(cursor.take(members, 4)?)
        };
        sections.push(LayerSections {
            members: member_ids,
            offsets: cursor.take(members + 1, 8)?,
            neighbours: cursor.take(edges, 4)?,
        });
    }
    let expected = sections
        .last()
        .map_or(0, |s| s.neighbours.end.div_ceil(8) * 8);
    if bytes.len() != expected {
        return Err(format!(
            "{} bytes, expected {expected} (truncated or mismatched)",
            bytes.len()
        ));
    }
    // Layer 0's offsets must span its edges (the entries in between are checked on use).
    let offsets0 = &sections[0].offsets;
    let edges0 = (sections[0].neighbours.len() / 4) as u64;
    if read_u64(bytes, offsets0.start) != 0 || read_u64(bytes, offsets0.end - 8) != edges0 {
        return Err("layer 0: offsets do not match its edges".to_owned());
    }
    Ok(sections)
}

fn corrupt(path: &Path, reason: &str) -> Error {
    Error::Corrupt {
        path: path.to_path_buf(),
        reason: reason.to_owned(),
    }
}

fn map(path: &Path) -> Result<Mmap, Error> {
    let file = File::open(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    // SAFETY: generation files are never modified after the generation is written; a new
    // generation is a new directory.
    unsafe { Mmap::map(&file) }.map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// What the writer needs from a graph, whoever built it (hnsw_rs for full builds, the
/// in-memory adjacency lists of [`super::insert`] for incremental updates). Point ids are
/// `0..points()` (chunk ids).
pub(super) trait ExportSource {
    /// Points in the graph.
    fn points(&self) -> usize;
    /// Vector dimension.
    fn dimension(&self) -> usize;
    /// Where every search starts: a point of the top layer.
    fn entry(&self) -> u32;
    /// M: neighbours per node on upper layers (2M on layer 0).
    fn max_connections(&self) -> u32;
    /// The highest layer point `id` belongs to.
    fn level(&self, id: usize) -> usize;
    /// Appends the neighbours of point `id` in `layer` (at most its level) to `out`.
    fn neighbours(&self, layer: usize, id: usize, out: &mut Vec<u32>);
    /// The vector row of point `id`.
    fn vector(&self, id: usize) -> &[f32];
}

/// One layer being exported: CSR arrays in memory until written.
#[derive(Default)]
struct LayerBuild {
    members: Vec<u32>,
    offsets: Vec<u64>,
    neighbours: Vec<u32>,
}

/// Writes `graph.bin` and `vectors.f32` into `dir` from `source`, after checking that it
/// describes a graph [`FlatGraph::open`] accepts.
pub(super) fn write(dir: &Path, source: &impl ExportSource) -> Result<(), Error> {
    let bad = |reason: String| Error::Vector(format!("exporting the graph: {reason}"));
    let (points, dimension) = (source.points(), source.dimension());
    if points == 0 || points > u32::MAX as usize {
        return Err(bad(format!("{points} points")));
    }
    if dimension == 0 || dimension > MAX_DIMENSION {
        return Err(bad(format!("dimension {dimension}")));
    }
    let levels: Vec<u8> = (0..points)
        .map(|id| match source.level(id) {
            level if level < MAX_LAYERS => Ok(level as u8),
            level => Err(bad(format!("point {id} at level {level}"))),
        })
        .collect::<Result<_, _>>()?;
    let entry = source.entry();
    let max_level = levels.iter().copied().max().unwrap_or(0) as usize;
    if levels.get(entry as usize).map(|&l| l as usize) != Some(max_level) {
        return Err(bad(format!("entry point {entry} is not on the top layer")));
    }
    let mut layers: Vec<LayerBuild> = (0..=max_level).map(|_| LayerBuild::default()).collect();
    for layer in &mut layers {
        layer.offsets.push(0);
    }
    for (id, &level) in levels.iter().enumerate() {
        if source.vector(id).len() != dimension {
            return Err(bad(format!("point {id} has another dimension")));
        }
        for (l, layer) in layers.iter_mut().enumerate().take(level as usize + 1) {
            if l > 0 {
                layer.members.push(id as u32);
            }
            let start = layer.neighbours.len();
            source.neighbours(l, id, &mut layer.neighbours);
            if let Some(&n) = layer.neighbours[start..]
                .iter()
                .find(|&&n| n as usize >= points)
            {
                return Err(bad(format!(
                    "point {id} links to {n}, beyond {points} points"
                )));
            }
            layer.offsets.push(layer.neighbours.len() as u64);
        }
    }
    let header = Header {
        dimension: dimension as u32,
        points: points as u32,
        entry,
        max_level: max_level as u32,
        max_connections: source.max_connections(),
        layers: layers.len() as u32,
    };
    write_graph(&dir.join(GRAPH_FILE), &header, &levels, &layers)?;
    write_vectors(&dir.join(VECTORS_FILE), source)
}

/// hnsw_rs's in-memory graph seen as an [`ExportSource`]: its points by origin id.
struct HnswSource<'h> {
    by_id: Vec<Arc<Point<'h, f32>>>,
    levels: Vec<u8>,
    entry: u32,
    max_connections: u32,
}

impl ExportSource for HnswSource<'_> {
    fn points(&self) -> usize {
        self.by_id.len()
    }

    fn dimension(&self) -> usize {
        self.by_id.first().map_or(0, |p| p.get_v().len())
    }

    fn entry(&self) -> u32 {
        self.entry
    }

    fn max_connections(&self) -> u32 {
        self.max_connections
    }

    fn level(&self, id: usize) -> usize {
        self.levels[id] as usize
    }

    fn neighbours(&self, layer: usize, id: usize, out: &mut Vec<u32>) {
        // hnsw_rs keeps a list per layer for every point, even above its level.
        if let Some(list) = self.by_id[id].get_neighborhood_id().get(layer) {
            out.extend(list.iter().map(|n| n.get_origin_id() as u32));
        }
    }

    fn vector(&self, id: usize) -> &[f32] {
        self.by_id[id].get_v()
    }
}

/// Writes `graph.bin` and `vectors.f32` into `dir` from hnsw_rs's in-memory graph, whose
/// points must carry the ids `0..points` (chunk ids), each once.
pub(super) fn export(
    hnsw: &Hnsw<'_, f32, DistDot>,
    points: usize,
    dir: &Path,
) -> Result<(), Error> {
    let indexation = hnsw.get_point_indexation();
    let max_level = hnsw.get_max_level_observed() as usize;
    let bad = |reason: String| Error::Vector(format!("exporting the graph: {reason}"));
    if points == 0 || points > u32::MAX as usize || max_level >= MAX_LAYERS {
        return Err(bad(format!("{points} points, max level {max_level}")));
    }
    let mut by_id: Vec<Option<Arc<Point<'_, f32>>>> = vec![None; points];
    let mut levels = vec![0u8; points];
    let mut entry = None;
    for layer in 0..=max_level {
        for point in indexation.get_layer_iterator(layer) {
            let id = point.get_origin_id();
            let slot = by_id
                .get_mut(id)
                .filter(|s| s.is_none())
                .ok_or_else(|| bad(format!("point id {id} out of range or repeated")))?;
            *slot = Some(point);
            levels[id] = layer as u8;
            if layer == max_level && entry.is_none() {
                entry = Some(id as u32);
            }
        }
    }
    let by_id: Vec<Arc<Point<'_, f32>>> = by_id
        .into_iter()
        .enumerate()
        .map(|(id, p)| p.ok_or_else(|| bad(format!("point id {id} missing"))))
        .collect::<Result<_, _>>()?;
    let entry = entry.ok_or_else(|| bad("no entry point".to_owned()))?;
    let source = HnswSource {
        by_id,
        levels,
        entry,
        max_connections: u32::from(hnsw.get_max_nb_connection()),
    };
    write(dir, &source)
}

fn write_graph(
    path: &PathBuf,
    header: &Header,
    levels: &[u8],
    layers: &[LayerBuild],
) -> Result<(), Error> {
    let io = |source| Error::Io {
        path: path.clone(),
        source,
    };
    let file = File::create(path).map_err(io)?;
    let mut out = Padded {
        inner: BufWriter::new(file),
        written: 0,
    };
    (|| {
        let mut head = Vec::with_capacity(HEADER_BYTES + layers.len() * LAYER_ENTRY_BYTES);
        header.write(&mut head)?;
        for (level, layer) in layers.iter().enumerate() {
            let members = if level == 0 {
                header.points
            } else {
                layer.members.len() as u32
            };
            head.extend_from_slice(&members.to_le_bytes());
            head.extend_from_slice(&0u32.to_le_bytes());
            head.extend_from_slice(&(layer.neighbours.len() as u64).to_le_bytes());
        }
        out.section(&head)?;
        out.section(levels)?;
        for (level, layer) in layers.iter().enumerate() {
            if level > 0 {
                out.section(&le_u32s(&layer.members))?;
            }
            let offsets: Vec<u8> = layer.offsets.iter().flat_map(|o| o.to_le_bytes()).collect();
            out.section(&offsets)?;
            out.section(&le_u32s(&layer.neighbours))?;
        }
        out.inner.flush()?;
        out.inner.get_ref().sync_all()
    })()
    .map_err(io)
}

fn le_u32s(values: &[u32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// A writer that pads every section to a multiple of 8 bytes.
struct Padded {
    inner: BufWriter<File>,
    written: u64,
}

impl Padded {
    fn section(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.inner.write_all(bytes)?;
        self.written += bytes.len() as u64;
        let pad = (self.written.div_ceil(8) * 8 - self.written) as usize;
        self.inner.write_all(&[0u8; 8][..pad])?;
        self.written += pad as u64;
        Ok(())
    }
}

fn write_vectors(path: &PathBuf, source: &impl ExportSource) -> Result<(), Error> {
    let io = |source| Error::Io {
        path: path.clone(),
        source,
    };
    let file = File::create(path).map_err(io)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    (|| {
        for id in 0..source.points() {
            for x in source.vector(id) {
                out.write_all(&x.to_le_bytes())?;
            }
        }
        out.flush()?;
        out.get_ref().sync_all()
    })()
    .map_err(io)
}
