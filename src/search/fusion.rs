//! Merges the keyword and the semantic ranked lists into one ranking, keeping each side's rank.
//!
//! Pure functions over ranked lists: no index, no IO. Two methods, chosen by an explicit enum:
//! reciprocal rank fusion (Cormack, Clarke and Buettcher, SIGIR 2009, `k = 60`) and a weighted
//! sum of normalised scores (min-max or z-score). Both take the semantic weight `W` in `[0, 1]`:
//! 0 is keyword only, 1 is semantic only.

use std::collections::HashMap;

/// The `k` of reciprocal rank fusion recommended by its authors.
pub const RRF_K: f32 = 60.0;

/// How the two ranked lists are merged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fusion {
    /// Reciprocal rank fusion: `(1 - W) / (k + rank_kw) + W / (k + rank_sem)`, ranks from 1.
    Rrf {
        /// The rank offset; 60 by default.
        k: f32,
    },
    /// Weighted sum of normalised scores: `(1 - W) * norm(kw) + W * norm(sem)`.
    Score {
        /// How each side's raw scores are normalised before the weighted sum.
        normalize: Normalize,
    },
}

impl Default for Fusion {
    fn default() -> Self {
        Fusion::Rrf { k: RRF_K }
    }
}

/// How raw scores are brought to a common scale for [`Fusion::Score`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Normalize {
    /// `(s - min) / (max - min)`; a list of equal scores maps to 1, an item missing from it
    /// to 0.
    MinMax,
    /// `(s - mean) / stddev`; a list of equal scores maps to 1, an item missing from it to -1
    /// (the z-scores of a list of two).
    ZScore,
}

/// One item of a ranked input list: a key (e.g. a candidate ordinal) and its raw score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored<K> {
    /// What was ranked.
    pub key: K,
    /// Its raw score on that side; higher is better.
    pub score: f32,
}

/// One side's contribution to a fused item.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SideHit {
    /// Rank on that side, from 1.
    pub rank: u32,
    /// Raw score on that side.
    pub score: f32,
}

/// One item of the fused ranking with its provenance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fused<K> {
    /// What was ranked.
    pub key: K,
    /// The fused score; higher is better.
    pub score: f32,
    /// Where the keyword side ranked it, if it did.
    pub keyword: Option<SideHit>,
    /// Where the semantic side ranked it, if it did.
    pub semantic: Option<SideHit>,
}

/// Fuses two ranked lists (each best first, keys unique within a list) with semantic weight `w`.
///
/// `w` is clamped to `[0, 1]`. An item missing from one list gets nothing from that side. With
/// `w == 0` only keyword items are returned, with `w == 1` only semantic items, so the two ends
/// are exactly the single sides. Ties are broken by keyword rank, then semantic rank, then key,
/// so the output is deterministic.
pub fn fuse<K>(
    keyword: &[Scored<K>],
    semantic: &[Scored<K>],
    w: f32,
    method: Fusion,
) -> Vec<Fused<K>>
where
    K: Copy + Eq + std::hash::Hash + Ord,
{
    let w = if w.is_nan() { 0.0 } else { w.clamp(0.0, 1.0) };
    let mut items: Vec<Fused<K>> = Vec::with_capacity(keyword.len() + semantic.len());
    let mut position: HashMap<K, usize> = HashMap::with_capacity(keyword.len() + semantic.len());
    if w < 1.0 {
        for (i, hit) in keyword.iter().enumerate() {
            position.insert(hit.key, items.len());
            items.push(Fused {
                key: hit.key,
                score: 0.0,
                keyword: Some(SideHit {
                    rank: i as u32 + 1,
                    score: hit.score,
                }),
                semantic: None,
            });
        }
    }
    if w > 0.0 {
        for (i, hit) in semantic.iter().enumerate() {
            let side = SideHit {
                rank: i as u32 + 1,
                score: hit.score,
            };
            match position.get(&hit.key) {
                Some(&at) => items[at].semantic = Some(side),
                None => {
                    position.insert(hit.key, items.len());
                    items.push(Fused {
                        key: hit.key,
                        score: 0.0,
                        keyword: None,
                        semantic: Some(side),
                    });
                }
            }
        }
    }
    match method {
        Fusion::Rrf { k } => {
            for item in &mut items {
                let kw = item
                    .keyword
                    .map_or(0.0, |h| (1.0 - w) / (k + h.rank as f32));
                let sem = item.semantic.map_or(0.0, |h| w / (k + h.rank as f32));
                item.score = kw + sem;
            }
        }
        Fusion::Score { normalize } => {
            let kw_norm = Normalizer::fit(keyword.iter().map(|h| h.score), normalize);
            let sem_norm = Normalizer::fit(semantic.iter().map(|h| h.score), normalize);
            for item in &mut items {
                let kw = item
                    .keyword
                    .map_or(kw_norm.floor(), |h| kw_norm.apply(h.score));
                let sem = item
                    .semantic
                    .map_or(sem_norm.floor(), |h| sem_norm.apply(h.score));
                item.score = (1.0 - w) * kw + w * sem;
            }
        }
    }
    items.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| rank_or_max(a.keyword).cmp(&rank_or_max(b.keyword)))
            .then_with(|| rank_or_max(a.semantic).cmp(&rank_or_max(b.semantic)))
            .then_with(|| a.key.cmp(&b.key))
    });
    items
}

fn rank_or_max(hit: Option<SideHit>) -> u32 {
    hit.map_or(u32::MAX, |h| h.rank)
}

/// A fitted score normalisation for one list.
#[derive(Debug, Clone, Copy)]
struct Normalizer {
    method: Normalize,
    /// Min (min-max) or mean (z-score).
    center: f32,
    /// Max - min (min-max) or standard deviation (z-score); 0 when all scores are equal.
    spread: f32,
    /// The lowest normalised value of the list: what an item absent from the list gets.
    floor: f32,
}

impl Normalizer {
    fn fit(scores: impl Iterator<Item = f32> + Clone, method: Normalize) -> Normalizer {
        let (mut n, mut sum, mut min, mut max) = (0usize, 0.0f64, f32::INFINITY, f32::NEG_INFINITY);
        for s in scores.clone() {
            n += 1;
            sum += f64::from(s);
            min = min.min(s);
            max = max.max(s);
        }
        if n == 0 {
            return Normalizer {
                method,
                center: 0.0,
                spread: 0.0,
                floor: 0.0,
            };
        }
        let mut fitted = match method {
            Normalize::MinMax => Normalizer {
                method,
                center: min,
                spread: max - min,
                floor: 0.0,
            },
            Normalize::ZScore => {
                let mean = sum / n as f64;
                let var = scores.map(|s| (f64::from(s) - mean).powi(2)).sum::<f64>() / n as f64;
                Normalizer {
                    method,
                    center: mean as f32,
                    spread: var.sqrt() as f32,
                    floor: 0.0,
                }
            }
        };
        // An item missing from the list ranks at the lowest listed score. When every listed
        // score is the same (one hit, say), the list counts as the top of a list of two
        // scores, and a missing item as its bottom.
        fitted.floor = match (method, fitted.spread > f32::EPSILON) {
            (_, true) => fitted.apply(min),
            (Normalize::MinMax, false) => 0.0,
            (Normalize::ZScore, false) => -1.0,
        };
        fitted
    }

    fn apply(&self, score: f32) -> f32 {
        match (self.method, self.spread > f32::EPSILON) {
            (Normalize::MinMax, true) => (score - self.center) / self.spread,
            (Normalize::MinMax, false) => 1.0,
            (Normalize::ZScore, true) => (score - self.center) / self.spread,
            (Normalize::ZScore, false) => 1.0,
        }
    }

    fn floor(&self) -> f32 {
        self.floor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A side with one hit (or equal scores) still favours its hits over items it did not
    /// find: the only keyword hit beats a semantic-only item it trails on that side.
    #[test]
    fn a_side_of_equal_scores_still_ranks_its_hits_above_the_missing() {
        let keyword = [Scored {
            key: 'a',
            score: 5.0,
        }];
        let semantic = [
            Scored {
                key: 'b',
                score: 0.9,
            },
            Scored {
                key: 'c',
                score: 0.8,
            },
            Scored {
                key: 'a',
                score: 0.7,
            },
        ];
        for normalize in [Normalize::MinMax, Normalize::ZScore] {
            let fused = fuse(&keyword, &semantic, 0.5, Fusion::Score { normalize });
            let rank = |key| fused.iter().position(|f| f.key == key).unwrap();
            assert!(rank('a') < rank('c'), "{normalize:?}: {fused:?}");
        }
    }

    fn list(keys: &[u32]) -> Vec<Scored<u32>> {
        keys.iter()
            .enumerate()
            .map(|(i, &key)| Scored {
                key,
                score: 10.0 - i as f32,
            })
            .collect()
    }

    fn keys(fused: &[Fused<u32>]) -> Vec<u32> {
        fused.iter().map(|f| f.key).collect()
    }

    #[test]
    fn rrf_scores_follow_the_formula() {
        let fused = fuse(&list(&[1, 2]), &list(&[2, 3]), 0.5, Fusion::default());
        let two = fused.iter().find(|f| f.key == 2).unwrap();
        let expected = 0.5 / (60.0 + 2.0) + 0.5 / (60.0 + 1.0);
        assert!((two.score - expected).abs() < 1e-7);
        assert_eq!(two.keyword.unwrap().rank, 2);
        assert_eq!(two.semantic.unwrap().rank, 1);
        assert_eq!(fused[0].key, 2, "an item on both lists beats items on one");
    }

    #[test]
    fn weight_zero_is_keyword_only_and_one_is_semantic_only() {
        let kw = list(&[5, 6, 7]);
        let sem = list(&[7, 8, 9]);
        for method in [
            Fusion::default(),
            Fusion::Score {
                normalize: Normalize::MinMax,
            },
            Fusion::Score {
                normalize: Normalize::ZScore,
            },
        ] {
            assert_eq!(keys(&fuse(&kw, &sem, 0.0, method)), vec![5, 6, 7]);
            assert_eq!(keys(&fuse(&kw, &sem, 1.0, method)), vec![7, 8, 9]);
        }
    }

    #[test]
    fn weight_moves_the_ranking_towards_the_heavier_side() {
        let kw = list(&[1, 2, 3]);
        let sem = list(&[3, 2, 1]);
        assert_eq!(fuse(&kw, &sem, 0.2, Fusion::default())[0].key, 1);
        assert_eq!(fuse(&kw, &sem, 0.8, Fusion::default())[0].key, 3);
    }

    #[test]
    fn ties_break_deterministically() {
        let fused = fuse(&list(&[4, 3]), &list(&[3, 4]), 0.5, Fusion::default());
        assert_eq!(fused[0].score, fused[1].score);
        assert_eq!(keys(&fused), vec![4, 3], "keyword rank breaks the tie");
    }

    #[test]
    fn minmax_maps_each_side_to_unit_range() {
        let kw = vec![
            Scored {
                key: 1u32,
                score: 20.0,
            },
            Scored {
                key: 2,
                score: 10.0,
            },
        ];
        let sem = vec![
            Scored {
                key: 2u32,
                score: 0.9,
            },
            Scored { key: 1, score: 0.5 },
        ];
        let fused = fuse(
            &kw,
            &sem,
            0.5,
            Fusion::Score {
                normalize: Normalize::MinMax,
            },
        );
        for f in &fused {
            assert!((f.score - 0.5).abs() < 1e-6, "{f:?}");
        }
    }

    #[test]
    fn zscore_uses_mean_and_deviation() {
        let kw = vec![
            Scored {
                key: 1u32,
                score: 3.0,
            },
            Scored { key: 2, score: 2.0 },
            Scored { key: 3, score: 1.0 },
        ];
        let fused = fuse(
            &kw,
            &[],
            0.0,
            Fusion::Score {
                normalize: Normalize::ZScore,
            },
        );
        let std = (2.0f32 / 3.0).sqrt();
        assert!((fused[0].score - 1.0 / std).abs() < 1e-5);
        assert!((fused[2].score + 1.0 / std).abs() < 1e-5);
    }

    #[test]
    fn missing_side_gets_the_floor_under_score_fusion() {
        let kw = vec![
            Scored {
                key: 1u32,
                score: 5.0,
            },
            Scored { key: 2, score: 1.0 },
        ];
        let sem = vec![
            Scored {
                key: 3u32,
                score: 0.9,
            },
            Scored { key: 1, score: 0.1 },
        ];
        let fused = fuse(
            &kw,
            &sem,
            0.5,
            Fusion::Score {
                normalize: Normalize::MinMax,
            },
        );
        let three = fused.iter().find(|f| f.key == 3).unwrap();
        assert!(
            (three.score - 0.5).abs() < 1e-6,
            "absent keyword side counts as 0"
        );
    }

    #[test]
    fn empty_inputs_give_empty_output() {
        assert!(fuse::<u32>(&[], &[], 0.5, Fusion::default()).is_empty());
    }

    #[test]
    fn out_of_range_weight_is_clamped() {
        let kw = list(&[1]);
        let sem = list(&[2]);
        assert_eq!(keys(&fuse(&kw, &sem, 7.0, Fusion::default())), vec![2]);
        assert_eq!(keys(&fuse(&kw, &sem, -1.0, Fusion::default())), vec![1]);
    }
}
