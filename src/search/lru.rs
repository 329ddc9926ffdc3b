//! A small least-recently-used map from a 64-bit key (a hash of the query text) to a shared
//! value: the query caches of the semantic side (vectors) and the keyword side (chosen terms).

use std::collections::HashMap;

/// At most `capacity` entries; putting one more evicts the least recently used.
pub(crate) struct Lru<V: Clone> {
    capacity: usize,
    tick: u64,
    entries: HashMap<u64, (V, u64)>,
}

impl<V: Clone> Lru<V> {
    /// An empty map holding up to `capacity` entries (0 holds nothing).
    pub(crate) fn new(capacity: usize) -> Lru<V> {
        Lru {
            capacity,
            tick: 0,
            entries: HashMap::with_capacity(capacity),
        }
    }

    /// The value of `key`, marked as just used.
    pub(crate) fn get(&mut self, key: u64) -> Option<V> {
        self.tick += 1;
        let tick = self.tick;
        self.entries.get_mut(&key).map(|(v, used)| {
            *used = tick;
            v.clone()
        })
    }

    /// Stores `value` under `key`, evicting the least recently used entry when full.
    pub(crate) fn put(&mut self, key: u64, value: V) {
        if self.capacity == 0 {
            return;
        }
        self.tick += 1;
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&key) {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| *k);
            if let Some(oldest) = oldest {
                self.entries.remove(&oldest);
            }
        }
        self.entries.insert(key, (value, self.tick));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_entry_goes_first() {
        let mut lru = Lru::new(2);
        lru.put(1, "one");
        lru.put(2, "two");
        assert_eq!(lru.get(1), Some("one"));
        lru.put(3, "three");
        assert_eq!(lru.get(2), None, "2 was used least recently");
        assert_eq!((lru.get(1), lru.get(3)), (Some("one"), Some("three")));
        let mut none = Lru::new(0);
        none.put(1, "one");
        assert_eq!(none.get(1), None);
    }
}
