//! Groups a fused ranking of opportunities by person, so each person appears once with their
//! best-ranked opportunity and the ids of their others.

use std::collections::HashMap;
use std::hash::Hash;

use crate::index::CandidateRow;

use super::fusion::Fused;

/// One person in the ranking: their best opportunity and their other ones.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// The person's best-ranked opportunity, with its fused score and provenance.
    pub best: Fused<u32>,
    /// Ordinals of the person's other opportunities, ranked ones first (in rank order), then the
    /// unranked ones the pool holds (in ordinal order).
    pub others: Vec<u32>,
}

/// Keeps the first (best) item of each person, in rank order, until `limit` people are found.
///
/// `others` collects every later item of the same person in the whole fused list.
pub fn group_by_person<'a, P>(
    fused: &[Fused<u32>],
    person: impl Fn(u32) -> P,
    limit: usize,
) -> Vec<Group>
where
    P: Eq + Hash + 'a,
{
    let mut groups: Vec<Group> = Vec::with_capacity(limit.min(fused.len()));
    let mut slot: HashMap<P, usize> = HashMap::with_capacity(fused.len());
    for item in fused {
        let who = person(item.key);
        match slot.get(&who) {
            Some(&at) => groups[at].others.push(item.key),
            None if groups.len() < limit => {
                slot.insert(who, groups.len());
                groups.push(Group {
                    best: *item,
                    others: Vec::new(),
                });
            }
            None => {}
        }
    }
    groups
}

/// Every opportunity of each person in the pool, built once per index generation.
#[derive(Debug, Clone, Default)]
pub struct People {
    by_contact: HashMap<String, Vec<u32>>,
    /// Every live opportunity of the people hired on at least one of theirs, in ordinal order.
    hired_people: Vec<u32>,
}

impl People {
    /// Indexes the live rows by person ([`CandidateRow::person_key`]).
    pub fn build(rows: &[CandidateRow]) -> People {
        let mut by_contact: HashMap<String, Vec<u32>> = HashMap::new();
        for (ordinal, row) in rows.iter().enumerate() {
            if !row.deleted {
                by_contact
                    .entry(row.person_key().to_owned())
                    .or_default()
                    .push(ordinal as u32);
            }
        }
        let mut hired_people: Vec<u32> = by_contact
            .values()
            .filter(|ordinals| ordinals.iter().any(|&o| rows[o as usize].hired))
            .flatten()
            .copied()
            .collect();
        hired_people.sort_unstable();
        People {
            by_contact,
            hired_people,
        }
    }

    /// Every live opportunity of each person hired on any of theirs: what leaving out hired
    /// people removes, so a person hired once never comes back through another opportunity.
    pub fn hired_people(&self) -> &[u32] {
        &self.hired_people
    }

    /// All live opportunities of a person (by [`CandidateRow::person_key`]), in ordinal order.
    pub fn opportunities(&self, person_key: &str) -> &[u32] {
        self.by_contact.get(person_key).map_or(&[], Vec::as_slice)
    }
}

/// Appends to each group the person's opportunities that the ranking did not reach.
pub fn complete_groups(groups: &mut [Group], rows: &[CandidateRow], people: &People) {
    for group in groups {
        let Some(row) = rows.get(group.best.key as usize) else {
            continue;
        };
        for &ordinal in people.opportunities(row.person_key()) {
            if ordinal != group.best.key && !group.others.contains(&ordinal) {
                group.others.push(ordinal);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fused(key: u32, score: f32) -> Fused<u32> {
        Fused {
            key,
            score,
            keyword: None,
            semantic: None,
        }
    }

    #[test]
    fn a_person_appears_once_with_the_best_opportunity() {
        let list = [fused(1, 0.9), fused(2, 0.8), fused(3, 0.7), fused(4, 0.6)];
        // 1 and 3 are the same person; 2 and 4 are the same person.
        let groups = group_by_person(&list, |k| k % 2, 10);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].best.key, 1);
        assert_eq!(groups[0].others, vec![3]);
        assert_eq!(groups[1].best.key, 2);
        assert_eq!(groups[1].others, vec![4]);
    }

    #[test]
    fn limit_counts_people_not_opportunities() {
        let list = [fused(1, 0.9), fused(3, 0.8), fused(2, 0.7), fused(5, 0.6)];
        let groups = group_by_person(&list, |k| k % 2, 1);
        assert_eq!(groups.len(), 1);
        assert_eq!(
            groups[0].others,
            vec![3, 5],
            "later items of a kept person still count"
        );
    }

    fn row(opportunity: &str, contact: &str, deleted: bool) -> CandidateRow {
        CandidateRow {
            opportunity_id: opportunity.into(),
            contact_id: contact.into(),
            archived: false,
            hired: false,
            archive_reason_id: None,
            location: String::new(),
            tags: vec![],
            furthest_stage_order: None,
            last_interaction_at: None,
            best_rating: None,
            deleted,
        }
    }

    #[test]
    fn opportunities_without_a_contact_are_people_of_their_own() {
        let rows = vec![
            row("o0", "", false),
            row("o1", "", false),
            row("o2", "a", false),
            row("o3", "a", false),
        ];
        let people = People::build(&rows);
        let list = [fused(0, 0.9), fused(1, 0.8), fused(2, 0.7), fused(3, 0.6)];
        let mut groups = group_by_person(&list, |k| rows[k as usize].person_key(), 10);
        complete_groups(&mut groups, &rows, &people);
        let found: Vec<(u32, Vec<u32>)> = groups
            .iter()
            .map(|g| (g.best.key, g.others.clone()))
            .collect();
        assert_eq!(found, vec![(0, vec![]), (1, vec![]), (2, vec![3])]);
    }

    #[test]
    fn people_completes_unranked_opportunities() {
        let rows = vec![
            row("o0", "a", false),
            row("o1", "b", false),
            row("o2", "a", false),
            row("o3", "a", true),
        ];
        let people = People::build(&rows);
        let mut groups =
            group_by_person(&[fused(2, 1.0)], |k| rows[k as usize].contact_id.clone(), 5);
        complete_groups(&mut groups, &rows, &people);
        assert_eq!(
            groups[0].others,
            vec![0],
            "tombstoned opportunity 3 is left out"
        );
    }
}
