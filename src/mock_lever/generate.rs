//! The deterministic synthetic talent pool: people from many occupations with careers, resumes
//! of 300 to 900 words, notes, interview feedback, pipeline history and archive state, all drawn
//! from [`super::vocab`] with a seeded ChaCha generator (same seed, same pool, byte for byte).

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::pool::{
    FIRST_INTERVIEW_STAGE, MockOpportunity, Pool, default_archive_reasons, default_stages,
    default_users, str_field,
};
use super::postings::generate_postings;
use super::vocab::{self, FAMILIES, Family};

/// "Now" of a generated pool (2026-09-21T13:33:20Z): every generated timestamp is before it.
pub(crate) const ANCHOR_MS: i64 = 1_790_000_000_000;
pub(super) const DAY_MS: i64 = 86_400_000;
const YEAR_MS: i64 = 365 * DAY_MS;

/// Generates a pool of `candidates` opportunities (about 8% of people have two) and the
/// account's postings, stages, archive reasons and users. Deterministic for a given seed.
pub fn generate_pool(candidates: usize, seed: u64) -> Pool {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let users = default_users();
    let user_ids: Vec<String> = users
        .iter()
        .map(|u| str_field(u, "id").to_owned())
        .collect();
    let postings = generate_postings(&mut rng, &user_ids, ANCHOR_MS);
    let mut pool = Pool {
        opportunities: Vec::new(),
        postings: postings.iter().map(|(_, p)| p.clone()).collect(),
        stages: default_stages(),
        archive_reasons: default_archive_reasons(),
        users,
        deleted: Vec::new(),
        deleted_applications: Vec::new(),
    };
    let span = Span {
        end: ANCHOR_MS,
        length: 6 * YEAR_MS,
    };
    pool.opportunities = Generator::new(&mut rng, &pool).opportunities(candidates, span);
    pool
}

/// Generates `count` more opportunities for an existing pool (the `add_candidates` mutation),
/// created during the week before `now`.
pub(crate) fn generate_more(
    pool: &Pool,
    count: usize,
    seed: u64,
    now: i64,
) -> Vec<MockOpportunity> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let span = Span {
        end: now,
        length: 7 * DAY_MS,
    };
    Generator::new(&mut rng, pool).opportunities(count, span)
}

/// A random (version 4) UUID drawn from the seeded generator.
pub(crate) fn random_uuid(rng: &mut ChaCha8Rng) -> String {
    uuid::Builder::from_random_bytes(rng.r#gen())
        .into_uuid()
        .to_string()
}

/// The window in which generated opportunities are created.
#[derive(Clone, Copy)]
struct Span {
    end: i64,
    length: i64,
}

/// Who a person is: shared by all of their opportunities.
pub(super) struct Person {
    pub(super) contact: String,
    pub(super) name: String,
    pub(super) email: String,
    pub(super) phone: Value,
    pub(super) city: &'static str,
    pub(super) links: Vec<String>,
    pub(super) family: &'static Family,
    pub(super) seniority: usize,
    pub(super) years: i64,
    pub(super) skills: Vec<&'static [&'static str]>,
}

/// One job on a resume.
pub(super) struct Position {
    pub(super) title: &'static str,
    pub(super) org: &'static str,
    pub(super) city: &'static str,
    pub(super) start: (i32, u32),
    pub(super) end: Option<(i32, u32)>,
}

/// One degree on a resume.
pub(super) struct Degree {
    pub(super) school: &'static str,
    pub(super) degree: &'static str,
    pub(super) field: &'static str,
    pub(super) start: (i32, u32),
    pub(super) end: (i32, u32),
}

pub(super) struct Generator<'a> {
    pub(super) rng: &'a mut ChaCha8Rng,
    /// Posting id and family key of every open or closed posting.
    pub(super) postings: Vec<(String, &'static str, Value)>,
    pub(super) stages: Vec<String>,
    pub(super) hired_reasons: Vec<String>,
    pub(super) other_reasons: Vec<String>,
    pub(super) users: Vec<String>,
    pub(super) family_weights: Vec<u32>,
}

impl<'a> Generator<'a> {
    fn new(rng: &'a mut ChaCha8Rng, pool: &Pool) -> Self {
        let postings = pool
            .postings
            .iter()
            .map(|p| {
                let title = str_field(p, "text");
                let family = posting_family(title);
                (str_field(p, "id").to_owned(), family, p.clone())
            })
            .collect();
        let reasons_of = |kind: &str| -> Vec<String> {
            pool.archive_reasons
                .iter()
                .filter(|r| str_field(r, "type") == kind)
                .map(|r| str_field(r, "id").to_owned())
                .collect()
        };
        // Generation walks the default nine-stage pipeline; a fixture account with a shorter
        // one maps later positions onto its last stage.
        let mut stages: Vec<String> = pool
            .stages
            .iter()
            .map(|s| str_field(s, "id").to_owned())
            .collect();
        if stages.is_empty() {
            stages = default_stages()
                .iter()
                .map(|s| str_field(s, "id").to_owned())
                .collect();
        }
        while stages.len() < 9 {
            stages.push(stages[stages.len() - 1].clone());
        }
        let mut users: Vec<String> = pool
            .users
            .iter()
            .map(|u| str_field(u, "id").to_owned())
            .collect();
        if users.is_empty() {
            users = default_users()
                .iter()
                .map(|u| str_field(u, "id").to_owned())
                .collect();
        }
        Generator {
            rng,
            postings,
            stages,
            hired_reasons: reasons_of("hired"),
            other_reasons: reasons_of("non-hired"),
            users,
            family_weights: FAMILIES.iter().map(|f| f.weight).collect(),
        }
    }

    fn opportunities(&mut self, count: usize, span: Span) -> Vec<MockOpportunity> {
        let mut out = Vec::with_capacity(count);
        while out.len() < count {
            let person = self.person();
            let created = span.end
                - self
                    .rng
                    .gen_range(DAY_MS.min(span.length / 2)..span.length.max(2));
            let career = self.career(&person, created);
            let second = out.len() + 2 <= count && self.rng.gen_bool(0.085);
            out.push(self.opportunity(&person, &career, created, span.end));
            if second {
                let later =
                    (created + self.rng.gen_range(60..700) * DAY_MS).min(span.end - DAY_MS / 2);
                out.push(self.opportunity(&person, &career, later.max(created + 1), span.end));
            }
        }
        out
    }

    pub(super) fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        // PANICS: every vocabulary list is a non-empty static.
        *items.choose(self.rng).expect("non-empty list")
    }

    fn person(&mut self) -> Person {
        let total: u32 = self.family_weights.iter().sum();
        let mut roll = self.rng.gen_range(0..total);
        let mut family = &FAMILIES[0];
        for (f, w) in FAMILIES.iter().zip(&self.family_weights) {
            if roll < *w {
                family = f;
                break;
            }
            roll -= w;
        }
        let first = self.pick(vocab::FIRST_NAMES);
        let last = self.pick(vocab::LAST_NAMES);
        let (city, area) = self.pick(vocab::CITIES);
        let domain = self.pick(&["example.com", "example.org", "example.net"]);
        let n: u32 = self.rng.gen_range(1..999);
        let slug = format!("{}-{}-{n}", first.to_lowercase(), last.to_lowercase());
        let mut links = vec![format!("linkedin.com/in/{slug}")];
        if family.sector == vocab::Sector::Tech && self.rng.gen_bool(0.5) {
            links.push(format!("https://github.com/{}{}", first.to_lowercase(), n));
        }
        let seniority = self.rng.gen_range(0..3);
        let years = match seniority {
            0 => self.rng.gen_range(1..4),
            1 => self.rng.gen_range(3..9),
            _ => self.rng.gen_range(7..22),
        };
        let mut skills: Vec<_> = family.skills.to_vec();
        skills.shuffle(self.rng);
        skills.truncate(self.rng.gen_range(6..=9.min(family.skills.len())));
        let phone_type = self.pick(&[
            Some("mobile"),
            Some("mobile"),
            Some("home"),
            Some("work"),
            None,
        ]);
        Person {
            contact: random_uuid(self.rng),
            name: format!("{first} {last}"),
            email: format!(
                "{}.{}{n}@{domain}",
                first.to_lowercase(),
                last.to_lowercase()
            ),
            phone: json!({"type": phone_type, "value": format!("({area}) 555-{:04}", self.rng.gen_range(100..9999))}),
            city,
            links,
            family,
            seniority,
            years,
            skills,
        }
    }

    /// A skill phrasing: one of the person's skills, said one of its several ways.
    pub(super) fn skill_phrase(&mut self, person: &Person) -> &'static str {
        let group = self.pick(&person.skills);
        self.pick(group)
    }

    pub(super) fn fill(&mut self, template: &str, person: &Person, title: &str) -> String {
        let mut out = String::with_capacity(template.len() + 40);
        let mut rest = template;
        while let Some(start) = rest.find('{') {
            out.push_str(&rest[..start]);
            let Some(len) = rest[start..].find('}') else {
                break;
            };
            let key = &rest[start + 1..start + len];
            match key {
                "s" | "t" => out.push_str(self.skill_phrase(person)),
                "n" => out.push_str(&self.rng.gen_range(2..60).to_string()),
                "p" => out.push_str(&self.rng.gen_range(8..60).to_string()),
                "title" => out.push_str(title),
                "years" => out.push_str(&person.years.to_string()),
                "focus" => out.push_str(self.pick(person.family.focus)),
                "city" => out.push_str(person.city),
                other => match other
                    .parse::<usize>()
                    .ok()
                    .and_then(|k| person.family.skills.get(k))
                {
                    Some(group) => out.push_str(self.pick(group)),
                    None => out.push_str(other),
                },
            }
            rest = &rest[start + len + 1..];
        }
        out.push_str(rest);
        out
    }

    fn career(&mut self, person: &Person, created: i64) -> (Vec<Position>, Vec<Degree>) {
        let (end_year, end_month) = year_month(created);
        let jobs = (1 + person.years / 3).clamp(2, 5) as usize;
        let mut positions = Vec::with_capacity(jobs);
        let mut cursor = end_year * 12 + end_month as i32 - 1;
        let months_total = (person.years * 12) as i32;
        for i in 0..jobs {
            let share = (months_total / jobs as i32).max(6);
            let length = self.rng.gen_range(share / 2..=share + share / 2).max(4);
            let current = i == 0 && self.rng.gen_bool(0.6);
            let end = if current {
                None
            } else {
                Some(month_pair(cursor))
            };
            let start = cursor - length;
            let level = person
                .seniority
                .saturating_sub(usize::from(i > 0 && i >= jobs / 2));
            let title = self.pick(person.family.titles[level]);
            positions.push(Position {
                title,
                org: self.pick(vocab::employers(person.family.sector)),
                city: if self.rng.gen_bool(0.7) {
                    person.city
                } else {
                    self.pick(vocab::CITIES).0
                },
                start: month_pair(start),
                end,
            });
            cursor = start - self.rng.gen_range(0..4);
        }
        let (degree, field) = self.pick(person.family.degrees);
        let grad = cursor - self.rng.gen_range(0..12);
        let degrees = vec![Degree {
            school: self.pick(vocab::schools(person.family.sector)),
            degree,
            field,
            start: month_pair(grad - if degree.starts_with('A') { 24 } else { 44 }),
            end: month_pair(grad),
        }];
        (positions, degrees)
    }

    fn opportunity(
        &mut self,
        person: &Person,
        career: &(Vec<Position>, Vec<Degree>),
        created: i64,
        end: i64,
    ) -> MockOpportunity {
        let clamp = |t: i64| t.min(end - 1);
        let id = random_uuid(self.rng);
        let origin = self.pick(&[
            "sourced", "sourced", "sourced", "sourced", "sourced", "sourced", "sourced", "applied",
            "applied", "referred",
        ]);
        let origin = if self.rng.gen_bool(0.04) {
            self.pick(&["agency", "university", "internal"])
        } else {
            origin
        };
        let source = self.pick(vocab::sources_for(origin));
        let owner = self.users[self.rng.gen_range(0..7.min(self.users.len()))].clone();
        let family_postings: Vec<usize> = (0..self.postings.len())
            .filter(|i| self.postings[*i].1 == person.family.key)
            .collect();
        // People whose role has no opening applied to the general talent-community posting;
        // about 3% have no application at all.
        let general = self.postings.iter().position(|p| p.1 == "general");
        let posting = if !self.rng.gen_bool(0.97) {
            None
        } else if family_postings.is_empty() {
            general
        } else {
            Some(self.pick(&family_postings))
        };

        // Pipeline history.
        let archived = self.rng.gen_bool(0.6);
        let hired = archived && self.rng.gen_bool(0.1);
        let path: &[usize] = if origin == "applied" {
            &[3, 4, 5, 6, 7, 8]
        } else {
            &[0, 1, 2, 4, 5, 6, 7, 8]
        };
        let steps = if hired {
            path.len()
        } else {
            self.rng
                .gen_range(1..=path.len() - 1)
                .min(1 + self.rng.gen_range(0..path.len()))
        };
        let mut t = created;
        let mut changes = Vec::with_capacity(steps);
        for &index in &path[..steps] {
            let mut change = json!({"toStageId": self.stages[index], "toStageIndex": index, "updatedAt": clamp(t)});
            if self.rng.gen_bool(0.3) {
                change["userId"] = json!(owner);
            }
            changes.push(change);
            t += self.rng.gen_range(1..15) * DAY_MS + self.rng.gen_range(0..DAY_MS);
        }
        let stage_index = path[steps - 1];
        let last_advanced = clamp(
            changes
                .last()
                .and_then(|c| c["updatedAt"].as_i64())
                .unwrap_or(created),
        );
        let archived_value = if archived {
            let reasons = if hired {
                &self.hired_reasons
            } else {
                &self.other_reasons
            };
            match reasons.len() {
                0 => Value::Null,
                n => json!({"reason": reasons[self.rng.gen_range(0..n)], "archivedAt": clamp(t)}),
            }
        } else {
            Value::Null
        };

        let title = career
            .0
            .first()
            .map(|p| p.title)
            .unwrap_or(person.family.titles[1][0]);
        let notes = self.notes(person, title, created, clamp(t + DAY_MS), &owner);
        let feedback = if stage_index >= FIRST_INTERVIEW_STAGE {
            self.feedback(person, created, clamp(t), &owner)
        } else {
            Vec::new()
        };
        let resumes = self.resumes(person, career, &id, created, end);
        let last_interaction = notes
            .iter()
            .filter_map(|n| n["createdAt"].as_i64())
            .chain([
                last_advanced,
                archived_value["archivedAt"].as_i64().unwrap_or(0),
            ])
            .max()
            .unwrap_or(created);
        let old = created < end - 5 * YEAR_MS / 2;
        let updated_null = self.rng.gen_bool(if old { 0.8 } else { 0.35 });
        let updated = if updated_null {
            Value::Null
        } else {
            json!(clamp(last_interaction + self.rng.gen_range(1..5000)))
        };

        let mut tags: Vec<String> = Vec::new();
        let mut applications = Vec::new();
        let mut location = None;
        if let Some(i) = posting {
            let (posting_id, _, posting) = &self.postings[i];
            let cats = &posting["categories"];
            for key in ["team", "department", "location", "commitment"] {
                if let Some(v) = cats[key].as_str() {
                    tags.push(v.to_owned());
                }
            }
            tags.push(str_field(posting, "text").to_owned());
            location = cats["location"].as_str().map(str::to_owned);
            applications.push(json!({
                "id": random_uuid(self.rng),
                "type": if origin == "applied" { "posting" } else if origin == "referred" { "referral" } else { "user" },
                "candidateId": id,
                "opportunityId": id,
                "posting": posting_id,
                "postingHiringManager": posting["hiringManager"],
                "postingOwner": posting["owner"],
                "name": person.name,
                "company": career.0.first().map(|p| p.org),
                "phone": person.phone,
                "email": person.email,
                "links": person.links,
                "comments": null,
                "user": if origin == "applied" { Value::Null } else { json!(owner) },
                "customQuestions": [],
                "createdAt": created + 1,
                "archived": archived_value,
                "requisitionForHire": null,
                "ipAddress": null, "referer": null, "userAgent": null, "acceptLanguage": null, "timezone": null,
            }));
        }
        for _ in 0..self.rng.gen_range(0..3) {
            let tag = self.pick(vocab::POOL_TAGS).to_owned();
            if !tags.contains(&tag) {
                tags.push(tag);
            }
        }
        let headline = {
            let mut orgs: Vec<&str> = career.0.iter().take(2).map(|p| p.org).collect();
            orgs.extend(career.1.iter().map(|d| d.school));
            orgs.join(", ")
        };
        let mut opportunity = json!({
            "id": id,
            "name": person.name,
            "contact": person.contact,
            "headline": headline,
            "stage": self.stages[stage_index],
            "confidentiality": if self.rng.gen_bool(0.02) { "confidential" } else { "non-confidential" },
            "location": if self.rng.gen_bool(0.8) { person.city } else { "" },
            "phones": [person.phone],
            "emails": [person.email],
            "links": person.links,
            "archived": archived_value,
            "tags": tags,
            "sources": [source],
            "stageChanges": changes,
            "origin": origin,
            "sourcedBy": if origin == "sourced" && self.rng.gen_bool(0.1) { json!(owner) } else { Value::Null },
            "owner": owner,
            "followers": [owner],
            "applications": applications.iter().map(|a| a["id"].clone()).collect::<Vec<_>>(),
            "createdAt": created,
            "updatedAt": updated,
            "lastInteractionAt": last_interaction,
            "lastAdvancedAt": last_advanced,
            "snoozedUntil": null,
            "urls": {"list": "https://hire.lever.co/candidates", "show": format!("https://hire.lever.co/candidates/{id}")},
            "isAnonymized": false,
            "dataProtection": null,
        });
        if let Some(location) = location {
            opportunity["opportunityLocation"] = json!(location);
        }
        MockOpportunity {
            opportunity,
            applications,
            resumes,
            notes,
            feedback,
            offers: Vec::new(),
            interviews: Vec::new(),
            api_notes: Vec::new(),
        }
    }
}

/// Family key of a generated posting, from its title.
fn posting_family(title: &str) -> &'static str {
    let lower = title.to_lowercase();
    let rules: &[(&str, &str)] = &[
        ("rust", "rust_backend"),
        ("nurse", "nursing"),
        ("data scientist", "data_science"),
        ("frontend", "frontend"),
        ("reliability", "devops"),
        ("account executive", "sales"),
        ("designer", "design"),
        ("financial", "finance"),
        ("support", "support"),
        ("mechanical", "mech_eng"),
        ("recruiter", "recruiting"),
        ("general application", "general"),
        ("security", "security"),
    ];
    rules
        .iter()
        .find(|(word, _)| lower.contains(word))
        .map(|(_, key)| *key)
        .unwrap_or("")
}

/// (year, month 1..=12) of a Unix-millisecond timestamp (UTC).
pub(crate) fn year_month(ms: i64) -> (i32, u32) {
    // Howard Hinnant's days-to-civil algorithm.
    let days = ms.div_euclid(DAY_MS) + 719_468;
    let era = days.div_euclid(146_097);
    let doe = days - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year as i32, month as u32)
}

pub(super) fn month_pair(months: i32) -> (i32, u32) {
    (months.div_euclid(12), months.rem_euclid(12) as u32 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_pool_and_different_seed_different_pool() {
        let a = generate_pool(60, 7);
        let b = generate_pool(60, 7);
        let c = generate_pool(60, 8);
        assert_eq!(a, b);
        assert_ne!(
            a.opportunities[0].opportunity,
            c.opportunities[0].opportunity
        );
        assert_eq!(a.opportunities.len(), 60);
    }

    #[test]
    fn resumes_are_300_to_900_words() {
        let pool = generate_pool(150, 3);
        let mut seen = 0;
        for resume in pool
            .opportunities
            .iter()
            .flat_map(|o| &o.resumes)
            .filter(|r| !r.text.is_empty())
        {
            let words = resume.text.split_whitespace().count();
            assert!((300..=900).contains(&words), "{words} words");
            seen += 1;
        }
        assert!(seen > 100);
    }

    #[test]
    fn pool_has_the_promised_mix() {
        let pool = generate_pool(1000, 11);
        let opps = &pool.opportunities;
        let share = |pred: &dyn Fn(&MockOpportunity) -> bool| {
            opps.iter().filter(|o| pred(o)).count() as f64 / opps.len() as f64
        };
        let null_updated = share(&|o| o.updated_at().is_none());
        assert!(
            (0.5..0.7).contains(&null_updated),
            "null updatedAt {null_updated}"
        );
        let archived = share(&|o| !o.opportunity["archived"].is_null());
        assert!((0.5..0.7).contains(&archived), "archived {archived}");
        let hired_ids: Vec<&str> = pool
            .archive_reasons
            .iter()
            .filter(|r| r["type"] == "hired")
            .map(|r| str_field(r, "id"))
            .collect();
        let hired = share(&|o| {
            hired_ids.contains(&o.opportunity["archived"]["reason"].as_str().unwrap_or(""))
        });
        assert!((0.03..0.1).contains(&hired), "hired {hired}");
        let rust = share(&|o| o.resumes.iter().any(|r| r.text.contains("Rust")));
        assert!((0.02..0.08).contains(&rust), "rust {rust}");
        let mut contacts = std::collections::HashMap::new();
        for o in opps {
            *contacts.entry(o.contact_id()).or_insert(0) += 1;
        }
        let repeat = contacts.values().filter(|c| **c == 2).count() as f64 / contacts.len() as f64;
        assert!((0.04..0.13).contains(&repeat), "repeat contacts {repeat}");
        let without_application = share(&|o| o.applications.is_empty());
        assert!(
            (0.01..0.06).contains(&without_application),
            "no application {without_application}"
        );
        let sourced = share(&|o| o.opportunity["origin"] == "sourced");
        assert!((0.6..0.8).contains(&sourced), "sourced {sourced}");
        assert!(
            opps.iter()
                .any(|o| o.notes.iter().any(|n| !n["deletedAt"].is_null()))
        );
        assert!(
            opps.iter()
                .any(|o| o.feedback.iter().any(|n| !n["deletedAt"].is_null()))
        );
        assert!(opps.iter().any(|o| {
            o.notes
                .iter()
                .any(|n| n["secret"] == true && n["deletedAt"].is_null())
        }));
        assert!(
            opps.iter()
                .flat_map(|o| &o.resumes)
                .any(|r| r.file_status() == Some("error"))
        );
        assert!(
            opps.iter()
                .flat_map(|o| &o.resumes)
                .any(|r| r.file_status().is_none())
        );
        assert!(opps.iter().any(|o| {
            o.opportunity["stageChanges"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c.get("userId").is_none()))
        }));
        for title in ["Rust", "Nurse", "Data Scientist"] {
            assert!(
                pool.postings
                    .iter()
                    .any(|p| str_field(p, "text").contains(title)),
                "{title}"
            );
        }
    }

    #[test]
    fn civil_dates() {
        assert_eq!(year_month(0), (1970, 1));
        assert_eq!(year_month(ANCHOR_MS), (2026, 9));
        assert_eq!(year_month(951_782_400_000), (2000, 2)); // 2000-02-29
    }
}
