//! The rows' filterable values laid out for filters: each distinct location and tag with the
//! rows that carry it, and the numeric facts of every row in one dense array.
//!
//! A location or tag filter then reads the lists of the few values it names instead of every
//! row's strings; the numeric filters scan one small array. Built from the rows of one
//! generation and never changed: tombstoned rows appear in no list.

use std::collections::HashMap;

use super::CandidateRow;

/// The numeric facts of one row that filters compare against a bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RowFacts {
    /// Pipeline order of the furthest stage reached.
    pub furthest_stage_order: Option<u32>,
    /// Last interaction, ms since the epoch.
    pub last_interaction_at: Option<i64>,
    /// Best overall feedback rating, 1 to 4.
    pub best_rating: Option<u8>,
}

impl RowFacts {
    /// The facts of `row`.
    pub fn of(row: &CandidateRow) -> RowFacts {
        RowFacts {
            furthest_stage_order: row.furthest_stage_order,
            last_interaction_at: row.last_interaction_at,
            best_rating: row.best_rating,
        }
    }
}

/// Locations and tags with their rows, and every row's [`RowFacts`], by ordinal.
#[derive(Debug, Default)]
pub struct RowColumns {
    /// Each distinct location of a live row, with the ordinals at it in increasing order.
    locations: Vec<(String, Vec<u32>)>,
    /// Each tag of a live row, with the ordinals carrying it in increasing order.
    tags: HashMap<String, Vec<u32>>,
    /// The facts of every row, by ordinal (default for tombstones).
    facts: Vec<RowFacts>,
}

impl RowColumns {
    /// The columns of `rows` (ordinal = position).
    pub fn build(rows: &[CandidateRow]) -> RowColumns {
        let mut location_slot: HashMap<&str, usize> = HashMap::new();
        let mut locations: Vec<(String, Vec<u32>)> = Vec::new();
        let mut tags: HashMap<String, Vec<u32>> = HashMap::new();
        let mut facts = Vec::with_capacity(rows.len());
        for (ordinal, row) in rows.iter().enumerate() {
            let ordinal = ordinal as u32;
            if row.deleted {
                facts.push(RowFacts::default());
                continue;
            }
            facts.push(RowFacts::of(row));
            let slot = *location_slot
                .entry(row.location.as_str())
                .or_insert_with(|| {
                    locations.push((row.location.clone(), Vec::new()));
                    locations.len() - 1
                });
            locations[slot].1.push(ordinal);
            for tag in &row.tags {
                let list = tags.entry(tag.clone()).or_default();
                // A row carrying a tag twice is listed once.
                if list.last() != Some(&ordinal) {
                    list.push(ordinal);
                }
            }
        }
        RowColumns {
            locations,
            tags,
            facts,
        }
    }

    /// The lists of rows at every location that `needle` names ([`location_matches`]; both
    /// lowercase).
    pub fn locations_matching<'a>(&'a self, needle: &'a str) -> impl Iterator<Item = &'a [u32]> {
        self.locations
            .iter()
            .filter(move |(location, _)| location_matches(location, needle))
            .map(|(_, ordinals)| ordinals.as_slice())
    }

    /// The rows carrying `tag` (lowercase), in increasing order.
    pub fn tagged(&self, tag: &str) -> &[u32] {
        self.tags.get(tag).map_or(&[], Vec::as_slice)
    }

    /// The facts of every row, by ordinal.
    pub fn facts(&self) -> &[RowFacts] {
        &self.facts
    }
}

/// Whether a location filter names `location` (both lowercase): its words occur in the
/// location's words as a run, whole, except that a last word of three letters or more may
/// begin one. So `ca` finds "San Francisco, CA" but not "Chicago, IL", `ma` not "Madison",
/// `new york` and `berl` find "New York" and "Berlin". A filter with no word names nothing.
pub fn location_matches(location: &str, needle: &str) -> bool {
    let words = |text| {
        str::split(text, |c: char| !c.is_alphanumeric()).filter(|word: &&str| !word.is_empty())
    };
    let wanted = words(needle);
    let Some(last) = wanted.clone().next_back() else {
        return false;
    };
    let prefix_ok = last.chars().count() >= 3;
    let count = wanted.clone().count();
    let mut place = words(location);
    loop {
        // Does the run of `count` words starting here match?
        let mut run = place.clone();
        let matched = wanted.clone().enumerate().all(|(i, want)| {
            run.next().is_some_and(|word| {
                word == want || (i + 1 == count && prefix_ok && word.starts_with(want))
            })
        });
        if matched {
            return true;
        }
        if place.next().is_none() {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(location: &str, tags: &[&str], deleted: bool) -> CandidateRow {
        CandidateRow {
            location: location.into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            deleted,
            best_rating: Some(3),
            ..CandidateRow::tombstone()
        }
    }

    #[test]
    fn lists_hold_live_rows_once_in_order() {
        let rows = [
            row("berlin, germany", &["rust", "rust"], false),
            row("paris, france", &["rust"], false),
            row("berlin, germany", &["go"], true),
            row("berlin", &["go"], false),
        ];
        let columns = RowColumns::build(&rows);
        let berlin: Vec<&[u32]> = columns.locations_matching("berlin").collect();
        assert_eq!(berlin, [&[0u32][..], &[3][..]]);
        assert_eq!(columns.tagged("rust"), [0, 1]);
        assert_eq!(columns.tagged("go"), [3]);
        assert!(columns.tagged("java").is_empty());
        assert_eq!(columns.facts().len(), 4);
        assert_eq!(columns.facts()[2], RowFacts::default());
        assert_eq!(columns.facts()[3].best_rating, Some(3));
    }
}
