//! The set of row ordinals a query may return: a plain bitset shared by both retrieval sides.

/// A set of row ordinals as a bitset over `0..rows`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    words: Vec<u64>,
    rows: usize,
    count: usize,
}

impl Allowed {
    /// The empty set over `rows` ordinals.
    pub fn none(rows: usize) -> Allowed {
        Allowed {
            words: vec![0; rows.div_ceil(64)],
            rows,
            count: 0,
        }
    }

    /// The set of ordinals for which `keep` holds, built a 64-row word at a time.
    pub fn from_fn(rows: usize, mut keep: impl FnMut(u32) -> bool) -> Allowed {
        let mut words = vec![0u64; rows.div_ceil(64)];
        let mut count = 0;
        for (w, word) in words.iter_mut().enumerate() {
            let base = w * 64;
            let mut bits = 0u64;
            for bit in 0..(rows - base).min(64) {
                bits |= u64::from(keep((base + bit) as u32)) << bit;
            }
            count += bits.count_ones() as usize;
            *word = bits;
        }
        Allowed { words, rows, count }
    }

    /// The rows whose flag byte passes `bits & (reject | require) == require` (see
    /// `RowFilter::flag_masks`): a comparison per byte, which the compiler vectorises.
    pub fn from_flag_bits(flags: &[u8], reject: u8, require: u8) -> Allowed {
        let mask = reject | require;
        let mut words = vec![0u64; flags.len().div_ceil(64)];
        let mut count = 0;
        for (word, block) in words.iter_mut().zip(flags.chunks(64)) {
            let mut bits = 0u64;
            for (bit, &f) in block.iter().enumerate() {
                bits |= u64::from(f & mask == require) << bit;
            }
            count += bits.count_ones() as usize;
            *word = bits;
        }
        Allowed {
            words,
            rows: flags.len(),
            count,
        }
    }

    /// Adds an ordinal; ordinals past `rows` are ignored.
    pub fn insert(&mut self, ordinal: u32) {
        let i = ordinal as usize;
        if i >= self.rows {
            return;
        }
        let (word, bit) = (i / 64, 1u64 << (i % 64));
        if self.words[word] & bit == 0 {
            self.words[word] |= bit;
            self.count += 1;
        }
    }

    /// Removes an ordinal; ordinals past `rows` are ignored.
    pub fn remove(&mut self, ordinal: u32) {
        let i = ordinal as usize;
        if i >= self.rows {
            return;
        }
        let (word, bit) = (i / 64, 1u64 << (i % 64));
        if self.words[word] & bit != 0 {
            self.words[word] &= !bit;
            self.count -= 1;
        }
    }

    /// Keeps only the ordinals also in `other`.
    pub fn intersect(&mut self, other: &Allowed) {
        let mut count = 0;
        for (i, word) in self.words.iter_mut().enumerate() {
            *word &= other.words.get(i).copied().unwrap_or(0);
            count += word.count_ones() as usize;
        }
        self.count = count;
    }

    /// Whether the ordinal is in the set.
    pub fn contains(&self, ordinal: u32) -> bool {
        let i = ordinal as usize;
        i < self.rows && self.words[i / 64] & (1u64 << (i % 64)) != 0
    }

    /// How many ordinals are in the set.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether every ordinal in `0..rows` is in the set.
    pub fn is_everything(&self) -> bool {
        self.count == self.rows
    }

    /// The ordinals in the set, in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.words.iter().enumerate().flat_map(|(w, &word)| {
            let mut bits = word;
            std::iter::from_fn(move || {
                (bits != 0).then(|| {
                    let bit = bits.trailing_zeros();
                    bits &= bits - 1;
                    (w * 64) as u32 + bit
                })
            })
        })
    }

    /// The fraction of rows in the set (1 for an empty pool).
    pub fn fraction(&self) -> f64 {
        if self.rows == 0 {
            1.0
        } else {
            self.count as f64 / self.rows as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_contains_and_count() {
        let mut set = Allowed::none(130);
        set.insert(0);
        set.insert(129);
        set.insert(129);
        set.insert(500);
        assert!(set.contains(0) && set.contains(129));
        assert!(!set.contains(1) && !set.contains(500));
        assert_eq!(set.len(), 2);
    }

    #[test]
    fn iter_lists_the_members_in_order() {
        for rows in [0, 1, 63, 64, 65, 130] {
            let keep = |o: u32| o.is_multiple_of(3) || o == 64;
            let set = Allowed::from_fn(rows, keep);
            let members: Vec<u32> = set.iter().collect();
            let expected: Vec<u32> = (0..rows as u32).filter(|&o| keep(o)).collect();
            assert_eq!(members, expected, "rows {rows}");
        }
    }

    #[test]
    fn from_fn_matches_inserting_one_by_one() {
        for rows in [0, 1, 63, 64, 65, 130] {
            let keep = |o: u32| o.is_multiple_of(3) || o == 64;
            let set = Allowed::from_fn(rows, keep);
            let mut one_by_one = Allowed::none(rows);
            (0..rows as u32)
                .filter(|&o| keep(o))
                .for_each(|o| one_by_one.insert(o));
            assert_eq!(set, one_by_one, "rows {rows}");
        }
    }

    #[test]
    fn flag_bits_pass_when_no_rejected_bit_and_every_required_bit() {
        // Bits: 1 rejected, 2 required.
        let flags: Vec<u8> = (0..130u32).map(|o| (o % 4) as u8).collect();
        let set = Allowed::from_flag_bits(&flags, 1, 2);
        let expected = Allowed::from_fn(130, |o| o % 4 == 2);
        assert_eq!(set, expected);
        assert_eq!(Allowed::from_flag_bits(&[], 1, 0).len(), 0);
    }

    #[test]
    fn intersect_and_everything() {
        let evens = Allowed::from_fn(100, |o| o % 2 == 0);
        let mut all = Allowed::from_fn(100, |_| true);
        assert!(all.is_everything());
        all.intersect(&evens);
        assert_eq!(all.len(), 50);
        assert!(all.contains(10) && !all.contains(11));
    }
}
