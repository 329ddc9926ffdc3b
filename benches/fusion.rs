//! Fusion alone: RRF and normalised-score fusion of two ranked lists of realistic depth.

use criterion::{BenchmarkId, Criterion, black_box, criterion_group, criterion_main};
use rand::{Rng, SeedableRng};
use rediscover::search::fusion::{Fusion, Normalize, Scored, fuse};

fn lists(depth: usize, overlap: f64, seed: u64) -> (Vec<Scored<u32>>, Vec<Scored<u32>>) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let keyword: Vec<Scored<u32>> = (0..depth)
        .map(|i| Scored {
            key: i as u32,
            score: 30.0 - i as f32 * 0.1,
        })
        .collect();
    let semantic: Vec<Scored<u32>> = (0..depth)
        .map(|i| {
            let key = if rng.gen_bool(overlap) {
                rng.gen_range(0..depth as u32)
            } else {
                1_000_000 + i as u32
            };
            Scored {
                key,
                score: 0.9 - i as f32 * 0.001,
            }
        })
        .collect();
    let mut seen = std::collections::HashSet::new();
    let semantic = semantic
        .into_iter()
        .filter(|s| seen.insert(s.key))
        .collect();
    (keyword, semantic)
}

fn bench_fusion(c: &mut Criterion) {
    let mut group = c.benchmark_group("fuse");
    for depth in [80usize, 400] {
        let (kw, sem) = lists(depth, 0.5, 7);
        for (name, method) in [
            ("rrf", Fusion::default()),
            (
                "minmax",
                Fusion::Score {
                    normalize: Normalize::MinMax,
                },
            ),
            (
                "zscore",
                Fusion::Score {
                    normalize: Normalize::ZScore,
                },
            ),
        ] {
            group.bench_with_input(BenchmarkId::new(name, depth), &depth, |b, _| {
                b.iter(|| fuse(black_box(&kw), black_box(&sem), 0.5, method))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_fusion);
criterion_main!(benches);
