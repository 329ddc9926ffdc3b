//! The structured filters of a query (archive state, hired, location, tags, stage, recency,
//! rating) and their check against the compact per-opportunity rows of the index.
//!
//! Names given by the user (a stage) are resolved once against the reference data, so the
//! per-row check is a few comparisons and never allocates.

use crate::domain::{Millis, ReferenceData};
use crate::index::{CandidateRow, RowColumns, RowFacts, RowFlags, location_matches};

use super::{Allowed, Error};

const DAY_MS: Millis = 24 * 60 * 60 * 1000;

/// What the user asked to restrict the results to. The default restricts nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    /// Only archived opportunities (past candidates); by default active ones are included too.
    pub archived_only: bool,
    /// Leave out people hired on any of their opportunities (archived with a hired-type
    /// reason): the row check drops the hired opportunity, the query drops the person's other
    /// ones ([`People::hired_people`](super::group::People::hired_people)).
    pub exclude_hired: bool,
    /// Words of the candidate's location, case-insensitive: `CA` finds "San Francisco, CA", not
    /// "Chicago" (see [`location_matches`]).
    pub location: Option<String>,
    /// Tags the opportunity must all carry (case-insensitive).
    pub tags: Vec<String>,
    /// Minimum furthest stage reached: a stage id or its name (case-insensitive).
    pub min_stage: Option<String>,
    /// Last interaction no older than this many days.
    pub interacted_within_days: Option<u32>,
    /// Minimum best overall feedback rating, 1 (strong no hire) to 4 (strong hire).
    pub min_rating: Option<u8>,
}

/// [`Filters`] resolved against the reference data and a clock, ready to test rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowFilter {
    archived_only: bool,
    exclude_hired: bool,
    location: Option<String>,
    tags: Vec<String>,
    min_stage_order: Option<u32>,
    interacted_since: Option<Millis>,
    min_rating: Option<u8>,
}

impl Filters {
    /// Resolves stage names and the recency window; fails on an unknown stage or a bad rating.
    pub fn resolve(&self, reference: &ReferenceData, now: Millis) -> Result<RowFilter, Error> {
        self.resolve_for(reference, None, now)
    }

    /// [`Filters::resolve`] for rows whose stage positions are in `index_stages` (the stage ids
    /// the index was built with), which may be older than `reference`'s list when the store is
    /// ahead of the index.
    pub fn resolve_for(
        &self,
        reference: &ReferenceData,
        index_stages: Option<&[String]>,
        now: Millis,
    ) -> Result<RowFilter, Error> {
        let min_stage_order = match &self.min_stage {
            None => None,
            Some(wanted) => {
                let wanted = wanted.trim();
                let (order, stage) = reference
                    .stages
                    .iter()
                    .enumerate()
                    .find(|(_, s)| s.id == wanted || s.text.eq_ignore_ascii_case(wanted))
                    .ok_or_else(|| Error::UnknownStage {
                        stage: wanted.to_owned(),
                    })?;
                let order = match index_stages {
                    None => order,
                    Some(ids) => ids.iter().position(|id| *id == stage.id).ok_or_else(|| {
                        Error::StageNotIndexed {
                            stage: stage.text.clone(),
                        }
                    })?,
                };
                Some(order as u32)
            }
        };
        if let Some(rating) = self.min_rating
            && !(1..=4).contains(&rating)
        {
            return Err(Error::BadRating { rating });
        }
        if self.interacted_within_days == Some(0) {
            return Err(Error::EmptyWindow);
        }
        let location = self
            .location
            .as_deref()
            .map(|l| crate::index::analysis::fold(l.trim()))
            .filter(|l| !l.is_empty());
        let tags = self
            .tags
            .iter()
            .map(|t| t.trim().to_lowercase())
            .filter(|t| !t.is_empty())
            .collect();
        Ok(RowFilter {
            archived_only: self.archived_only,
            exclude_hired: self.exclude_hired,
            location,
            tags,
            min_stage_order,
            interacted_since: self
                .interacted_within_days
                .map(|days| now - Millis::from(days) * DAY_MS),
            min_rating: self.min_rating,
        })
    }
}

impl RowFilter {
    /// Whether the filter only looks at [`RowFlags`] (deleted, archived, hired): then
    /// [`RowFilter::flag_masks`] decide alone, without reading the rows.
    pub fn flags_only(&self) -> bool {
        self.location.is_none()
            && self.tags.is_empty()
            && self.min_stage_order.is_none()
            && self.interacted_since.is_none()
            && self.min_rating.is_none()
    }

    /// The flag bits a row must not have and must have to pass the flag filters: a row passes
    /// when `bits & (reject | require) == require`.
    pub fn flag_masks(&self) -> (u8, u8) {
        let mut reject = RowFlags::DELETED;
        let mut require = 0;
        if self.archived_only {
            require |= RowFlags::ARCHIVED;
        }
        if self.exclude_hired {
            reject |= RowFlags::HIRED;
        }
        (reject, require)
    }

    /// Whether a row passes every filter. Tombstoned rows never pass.
    pub fn allows(&self, row: &CandidateRow) -> bool {
        if row.deleted {
            return false;
        }
        if self.archived_only && !row.archived {
            return false;
        }
        if self.exclude_hired && row.hired {
            return false;
        }
        if let Some(location) = &self.location
            && !location_matches(&row.location, location)
        {
            return false;
        }
        if !self.tags.iter().all(|t| row.tags.iter().any(|rt| rt == t)) {
            return false;
        }
        self.passes_facts(&RowFacts::of(row))
    }

    /// Whether a row's numeric facts pass the stage, recency and rating bounds.
    fn passes_facts(&self, facts: &RowFacts) -> bool {
        if let Some(min) = self.min_stage_order
            && facts.furthest_stage_order.is_none_or(|o| o < min)
        {
            return false;
        }
        if let Some(since) = self.interacted_since
            && facts.last_interaction_at.is_none_or(|at| at < since)
        {
            return false;
        }
        if let Some(min) = self.min_rating
            && facts.best_rating.is_none_or(|r| r < min)
        {
            return false;
        }
        true
    }

    /// The rows that pass every filter, the same set as testing [`RowFilter::allows`] on each
    /// row, read from the rows' flag bytes and [`RowColumns`]: a location or tag filter only
    /// visits the rows its values list, the other filters scan dense arrays.
    pub fn allowed(&self, flag_bits: &[u8], columns: &RowColumns) -> Allowed {
        let (reject, require) = self.flag_masks();
        let mask = reject | require;
        let facts = columns.facts();
        let passes = |o: u32| {
            let i = o as usize;
            flag_bits[i] & mask == require && self.passes_facts(&facts[i])
        };
        let rows = flag_bits.len();
        match self.listed_rows(rows, columns) {
            None => Allowed::from_fn(rows, passes),
            Some(listed) => {
                let mut allowed = Allowed::none(rows);
                listed
                    .into_iter()
                    .filter(|&o| passes(o))
                    .for_each(|o| allowed.insert(o));
                allowed
            }
        }
    }

    /// The rows at the filter's location that carry all its tags, in increasing order, from
    /// the columns' lists; `None` when the filter names neither.
    fn listed_rows(&self, rows: usize, columns: &RowColumns) -> Option<Vec<u32>> {
        let at_location = self.location.as_deref().map(|needle| {
            let mut set = Allowed::none(rows);
            for list in columns.locations_matching(needle) {
                list.iter().for_each(|&o| set.insert(o));
            }
            set
        });
        let mut tag_lists: Vec<&[u32]> = self.tags.iter().map(|t| columns.tagged(t)).collect();
        tag_lists.sort_unstable_by_key(|list| list.len());
        let tagged = tag_lists.split_first().map(|(shortest, rest)| {
            rest.iter().fold(shortest.to_vec(), |kept, list| {
                intersect_sorted(&kept, list)
            })
        });
        match (at_location, tagged) {
            (None, None) => None,
            (Some(set), None) => Some(set.iter().collect()),
            (None, Some(tagged)) => Some(tagged),
            (Some(set), Some(mut tagged)) => {
                tagged.retain(|&o| set.contains(o));
                Some(tagged)
            }
        }
    }
}

/// The values in both increasing lists, in increasing order.
fn intersect_sorted(a: &[u32], b: &[u32]) -> Vec<u32> {
    let (mut i, mut j, mut both) = (0, 0, Vec::with_capacity(a.len().min(b.len())));
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                both.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    both
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Stage;

    fn reference() -> ReferenceData {
        let stage = |id: &str, text: &str| Stage {
            id: id.into(),
            text: text.into(),
        };
        ReferenceData {
            stages: vec![
                stage("lead-new", "New lead"),
                stage("applicant-new", "New applicant"),
                stage("s-onsite", "On-site interview"),
                stage("offer", "Offer"),
            ],
            ..ReferenceData::default()
        }
    }

    fn row() -> CandidateRow {
        CandidateRow {
            opportunity_id: "o1".into(),
            contact_id: "c1".into(),
            archived: true,
            hired: false,
            archive_reason_id: Some("r".into()),
            location: "berlin, germany".into(),
            tags: vec!["rust".into(), "backend".into()],
            furthest_stage_order: Some(2),
            last_interaction_at: Some(1_000 * DAY_MS),
            best_rating: Some(3),
            deleted: false,
        }
    }

    /// Whether `filters` allow `row`; the flags-only path must agree whenever it applies.
    fn check(filters: Filters, row: &CandidateRow) -> bool {
        let resolved = filters.resolve(&reference(), 1_010 * DAY_MS).unwrap();
        let allowed = resolved.allows(row);
        if resolved.flags_only() {
            let (reject, require) = resolved.flag_masks();
            let fast = crate::search::Allowed::from_flag_bits(
                &[RowFlags::of(row).bits()],
                reject,
                require,
            );
            assert_eq!(fast.contains(0), allowed);
        }
        allowed
    }

    #[test]
    fn flags_only_is_true_only_without_row_filters() {
        let resolve = |f: Filters| f.resolve(&reference(), 1_010 * DAY_MS).unwrap();
        assert!(resolve(Filters::default()).flags_only());
        assert!(
            resolve(Filters {
                archived_only: true,
                exclude_hired: true,
                ..Filters::default()
            })
            .flags_only()
        );
        assert!(
            !resolve(Filters {
                location: Some("berlin".into()),
                ..Filters::default()
            })
            .flags_only()
        );
    }

    #[test]
    fn default_filters_allow_everything_but_tombstones() {
        assert!(check(Filters::default(), &row()));
        let deleted = CandidateRow {
            deleted: true,
            ..row()
        };
        assert!(!check(Filters::default(), &deleted));
    }

    #[test]
    fn archived_only_drops_active() {
        let active = CandidateRow {
            archived: false,
            ..row()
        };
        let f = Filters {
            archived_only: true,
            ..Filters::default()
        };
        assert!(check(f.clone(), &row()));
        assert!(!check(f, &active));
    }

    #[test]
    fn exclude_hired_drops_hired() {
        let hired = CandidateRow {
            hired: true,
            ..row()
        };
        let f = Filters {
            exclude_hired: true,
            ..Filters::default()
        };
        assert!(check(f.clone(), &row()));
        assert!(!check(f, &hired));
    }

    #[test]
    fn location_matches_words_case_insensitively() {
        let f = |l: &str| Filters {
            location: Some(l.into()),
            ..Filters::default()
        };
        assert!(check(f("Berlin"), &row()));
        assert!(check(f("germany"), &row()));
        assert!(
            check(f("berl"), &row()),
            "a last word of 3 letters may begin one"
        );
        assert!(!check(f("Paris"), &row()));
        assert!(!check(f("er"), &row()), "a short word is a whole word");
        assert!(check(f("  "), &row()), "a blank location restricts nothing");
        let at = |location: &str, needle: &str| location_matches(location, needle);
        assert!(at("san francisco, ca", "ca"));
        assert!(at("san francisco, ca", "san francisco"));
        assert!(at("san francisco, ca", "francisco, ca"));
        assert!(!at("chicago, il", "ca"));
        assert!(!at("madison, wi", "ma"));
        assert!(!at("boston, ma", "on"));
        assert!(at("são paulo, sp", "são paulo"));
        assert!(!at("new york, ny", "york new"));
        assert!(!at("berlin", ","), "punctuation alone names nothing");
        // Accents and Unicode forms fold on both sides, as in keyword search.
        let zurich = CandidateRow::new(
            &crate::domain::Candidate {
                location: "Zu\u{308}rich, Switzerland".into(),
                ..Default::default()
            },
            &ReferenceData::default(),
        );
        for needle in ["Zurich", "zürich", "Zu\u{308}rich", "ZÜR"] {
            assert!(check(f(needle), &zurich), "{needle}");
        }
    }

    #[test]
    fn every_tag_is_required() {
        let f = |t: &[&str]| Filters {
            tags: t.iter().map(|s| s.to_string()).collect(),
            ..Filters::default()
        };
        assert!(check(f(&["Rust"]), &row()));
        assert!(check(f(&["rust", "backend"]), &row()));
        assert!(!check(f(&["rust", "frontend"]), &row()));
    }

    #[test]
    fn min_stage_by_name_or_id() {
        let f = |s: &str| Filters {
            min_stage: Some(s.into()),
            ..Filters::default()
        };
        assert!(check(f("on-site interview"), &row()));
        assert!(check(f("applicant-new"), &row()));
        assert!(!check(f("Offer"), &row()));
        let never = CandidateRow {
            furthest_stage_order: None,
            ..row()
        };
        assert!(!check(f("lead-new"), &never));
        let err = f("Nope").resolve(&reference(), 0).unwrap_err();
        assert!(err.is_user_error());
        assert!(err.to_string().contains("Nope"));
    }

    #[test]
    fn recency_window_counts_days_back_from_now() {
        let f = |d: u32| Filters {
            interacted_within_days: Some(d),
            ..Filters::default()
        };
        assert!(check(f(10), &row()));
        assert!(!check(f(9), &row()));
        let never = CandidateRow {
            last_interaction_at: None,
            ..row()
        };
        assert!(!check(f(1000), &never));
        let empty = f(0).resolve(&reference(), 0).unwrap_err();
        assert!(empty.is_user_error() && empty.to_string().contains("at least 1 day"));
    }

    #[test]
    fn min_rating_is_inclusive_and_validated() {
        let f = |r: u8| Filters {
            min_rating: Some(r),
            ..Filters::default()
        };
        assert!(check(f(3), &row()));
        assert!(!check(f(4), &row()));
        assert!(f(5).resolve(&reference(), 0).unwrap_err().is_user_error());
    }

    /// The columns answer exactly what testing every row does, for every combination of
    /// filters over a pool with shared locations, repeated tags, gaps and tombstones.
    #[test]
    fn columns_allow_the_same_rows_as_testing_each_row() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let places = [
            "berlin, germany",
            "berlin",
            "paris, france",
            "",
            "new berlin, usa",
        ];
        let tag_names = ["rust", "go", "backend", "remote"];
        let rows: Vec<CandidateRow> = (0..700)
            .map(|i| {
                if rng.gen_bool(0.1) {
                    return CandidateRow::tombstone();
                }
                let tags = (0..rng.gen_range(0..4))
                    .map(|_| tag_names[rng.gen_range(0..tag_names.len())].to_string())
                    .collect();
                CandidateRow {
                    opportunity_id: format!("o{i}"),
                    contact_id: format!("c{}", i / 2),
                    archived: rng.gen_bool(0.6),
                    hired: rng.gen_bool(0.1),
                    location: places[rng.gen_range(0..places.len())].to_string(),
                    tags,
                    furthest_stage_order: rng.gen_bool(0.8).then(|| rng.gen_range(0..4)),
                    last_interaction_at: rng
                        .gen_bool(0.9)
                        .then(|| rng.gen_range(990..1_010) * DAY_MS),
                    best_rating: rng.gen_bool(0.5).then(|| rng.gen_range(1..=4)),
                    ..row()
                }
            })
            .collect();
        let flags: Vec<u8> = rows.iter().map(|r| RowFlags::of(r).bits()).collect();
        let columns = RowColumns::build(&rows);
        let locations = [
            None,
            Some("berlin"),
            Some("Paris"),
            Some("tokyo"),
            Some(","),
        ];
        let tag_sets: [&[&str]; 5] = [
            &[],
            &["rust"],
            &["rust", "Backend"],
            &["go", "go"],
            &["nope"],
        ];
        let mut compared = 0;
        for location in locations {
            for tags in tag_sets {
                for bounds in 0..8u8 {
                    let filters = Filters {
                        archived_only: bounds & 1 != 0,
                        exclude_hired: bounds & 2 != 0,
                        location: location.map(str::to_string),
                        tags: tags.iter().map(|t| t.to_string()).collect(),
                        min_stage: (bounds & 4 != 0).then(|| "s-onsite".to_string()),
                        interacted_within_days: (bounds & 1 != 0).then_some(12),
                        min_rating: (bounds & 2 != 0).then_some(3),
                    };
                    let resolved = filters.resolve(&reference(), 1_010 * DAY_MS).unwrap();
                    let expected =
                        Allowed::from_fn(rows.len(), |o| resolved.allows(&rows[o as usize]));
                    assert_eq!(resolved.allowed(&flags, &columns), expected, "{filters:?}");
                    compared += usize::from(!expected.is_empty());
                }
            }
        }
        assert!(compared > 60, "most combinations keep someone: {compared}");
    }
}
