//! The text side of a generated candidate: resume files (300 to 900 words, with `parsedData`
//! matching the text), recruiter notes and interview feedback forms.

use rand::Rng;
use rand::seq::SliceRandom;
use serde_json::{Value, json};

use super::generate::{DAY_MS, Degree, Generator, Person, Position, random_uuid};
use super::pool::MockResume;
use super::vocab;

impl Generator<'_> {
    pub(super) fn notes(
        &mut self,
        person: &Person,
        title: &str,
        from: i64,
        to: i64,
        owner: &str,
    ) -> Vec<Value> {
        let count = self.pick(&[0, 0, 1, 1, 1, 2, 2, 3, 4, 5]);
        let mut notes = Vec::with_capacity(count);
        for _ in 0..count {
            let created = self.rng.gen_range(from..=to.max(from));
            let comments = if self.rng.gen_bool(0.2) { 2 } else { 1 };
            let fields: Vec<Value> = (0..comments)
                .map(|k| {
                    let template = self.pick(vocab::NOTES);
                    json!({
                        "type": "note", "text": "Comment", "value": self.fill(template, person, title),
                        "user": owner, "createdAt": created + k * 3_600_000,
                        "stage": self.stages[self.rng.gen_range(0..self.stages.len())],
                        "score": if self.rng.gen_bool(0.2) { json!(self.rng.gen_range(1..=4)) } else { Value::Null },
                    })
                })
                .collect();
            let deleted = self.rng.gen_bool(0.1);
            notes.push(json!({
                "id": random_uuid(self.rng), "text": "Note", "fields": fields, "user": owner,
                "secret": self.rng.gen_bool(0.05), "createdAt": created, "completedAt": created,
                "deletedAt": if deleted { json!(created + DAY_MS) } else { Value::Null },
            }));
        }
        notes
    }

    pub(super) fn feedback(
        &mut self,
        person: &Person,
        from: i64,
        to: i64,
        owner: &str,
    ) -> Vec<Value> {
        let count = self.rng.gen_range(1..=3);
        let ratings = [
            "4 - Strong Hire",
            "3 - Hire",
            "2 - No Hire",
            "1 - Strong No Hire",
        ];
        let mut forms = Vec::with_capacity(count);
        for k in 0..count {
            let created = self.rng.gen_range(from..=to.max(from));
            let mut skills: Vec<&str> = person.skills.iter().take(2).map(|g| g[0]).collect();
            skills.push("Communication");
            let scores: Vec<Value> = skills
                .iter()
                .map(|s| json!({"text": s, "description": ""}))
                .collect();
            let values: Vec<Value> = skills
                .iter()
                .map(|_| json!({"score": self.rng.gen_range(1..=4), "comment": ""}))
                .collect();
            let comment = self.pick(vocab::FEEDBACK_COMMENTS);
            let comment = self.fill(comment, person, "");
            let upper = self.users.len().min(7);
            let interviewer = self.users[self.rng.gen_range(upper.min(3) % upper..upper)].clone();
            let field_id = |n: u32| format!("f1000000-0000-4000-8000-00000000000{n}");
            forms.push(json!({
                "id": random_uuid(self.rng),
                "type": if k == 2 { "share" } else { "interview" },
                "text": self.pick(&["Phone Screen", "Onsite - Technical", "Onsite - Behavioral", "Hiring Manager Interview"]),
                "instructions": "",
                "baseTemplateId": "d00d0000-aaaa-4bbb-8ccc-ddddeeeeffff",
                "fields": [
                    {"id": field_id(1), "type": "score-system", "text": "Overall rating", "description": "",
                     "required": true, "prompt": "Select one",
                     "options": ratings.iter().map(|r| json!({"text": r})).collect::<Vec<_>>(),
                     "value": self.pick(&ratings)},
                    {"id": field_id(2), "type": "scorecard", "text": "Skills", "description": "",
                     "required": false, "scores": scores, "value": values},
                    {"id": field_id(3), "type": "textarea", "text": "Notes", "description": "",
                     "required": false, "value": comment},
                ],
                "interview": random_uuid(self.rng),
                "panel": random_uuid(self.rng),
                "user": if k == 0 { owner.to_owned() } else { interviewer },
                "createdAt": created,
                "completedAt": created + 1_800_000,
                "updatedAt": if self.rng.gen_bool(0.5) { Value::Null } else { json!(created + 3_600_000) },
                "deletedAt": if self.rng.gen_bool(0.07) { json!(created + DAY_MS) } else { Value::Null },
            }));
        }
        forms
    }

    pub(super) fn resumes(
        &mut self,
        person: &Person,
        career: &(Vec<Position>, Vec<Degree>),
        opportunity_id: &str,
        created: i64,
        end: i64,
    ) -> Vec<MockResume> {
        if self.rng.gen_bool(0.04) {
            return Vec::new();
        }
        let (text, summaries) = self.resume_text(person, career);
        let parsed = parsed_data(career, &summaries);
        let mut resumes = Vec::new();
        if self.rng.gen_bool(0.08) {
            // An older upload of the same CV in another format.
            resumes.push(self.resume(opportunity_id, created, &text, &parsed, Some("docx")));
        }
        let created = (created + 5).min(end - 1);
        resumes.push(self.resume(opportunity_id, created, &text, &parsed, None));
        resumes
    }

    fn resume(
        &mut self,
        opportunity_id: &str,
        created: i64,
        text: &str,
        parsed: &Value,
        ext: Option<&'static str>,
    ) -> MockResume {
        let id = random_uuid(self.rng);
        let roll = self.rng.gen_range(0..100);
        let ext = ext.unwrap_or(match roll {
            0..55 => "pdf",
            55..85 => "docx",
            _ => "txt",
        });
        let no_file = self.rng.gen_bool(0.04);
        let status = if self.rng.gen_bool(0.03) {
            "error"
        } else {
            "processed"
        };
        let file = if no_file {
            Value::Null
        } else {
            json!({
                "name": format!("resume_{}.{ext}", &id[..8]),
                "ext": ext,
                "downloadUrl": format!("https://hire.lever.co/candidates/{opportunity_id}/resumes/{id}/download"),
                "uploadedAt": created,
                "status": status,
                "size": text.len() * if ext == "txt" { 1 } else { 3 },
            })
        };
        MockResume {
            resume: json!({"id": id, "createdAt": created, "file": file, "parsedData": parsed}),
            text: if no_file {
                String::new()
            } else {
                text.to_owned()
            },
        }
    }

    /// The resume text and, per position, its first bullet (the `parsedData` summary).
    fn resume_text(
        &mut self,
        person: &Person,
        career: &(Vec<Position>, Vec<Degree>),
    ) -> (String, Vec<Option<String>>) {
        let (positions, degrees) = career;
        let target = match person.seniority {
            0 => self.rng.gen_range(320..=520),
            1 => self.rng.gen_range(430..=720),
            _ => self.rng.gen_range(560..=860),
        };
        let latest = positions.first().map(|p| p.title).unwrap_or("Professional");
        let summary_template = self.pick(vocab::SUMMARIES);
        let summary = self.fill(summary_template, person, latest);
        let skills: Vec<&str> = person.skills.iter().map(|g| self.pick(g)).collect();
        let intros: Vec<String> = positions
            .iter()
            .map(|p| {
                let template = self.pick(vocab::POSITION_INTROS).replace("{org}", p.org);
                self.fill(&template, person, latest)
            })
            .collect();
        let extra_template = self.pick(vocab::EXTRAS);
        let extra = self.fill(extra_template, person, latest);
        let count = |s: &str| s.split_whitespace().count();
        let mut words = 25
            + count(&summary)
            + skills.len() * 2
            + count(&extra)
            + intros.iter().map(|i| count(i) + 8).sum::<usize>();
        // Bullets are drawn without replacement (family first, then generic) until the target
        // length is reached; only very long resumes reuse a template, with different fills.
        let mut family: Vec<&str> = person.family.bullets.to_vec();
        family.shuffle(self.rng);
        let mut generic: Vec<&str> = vocab::GENERIC_BULLETS.to_vec();
        generic.shuffle(self.rng);
        let mut bullets: Vec<Vec<String>> = vec![Vec::new(); positions.len()];
        let mut round = 0;
        while words < target {
            let template = if round % 4 == 3 || family.is_empty() {
                generic
                    .pop()
                    .or_else(|| family.pop())
                    .unwrap_or_else(|| self.pick(person.family.bullets))
            } else {
                family.pop().unwrap_or("")
            };
            let bullet = self.fill(template, person, latest);
            words += count(&bullet) + 1;
            // The current job gets half the bullets, older jobs share the rest.
            let slot = if positions.len() > 1 && round % 2 == 1 {
                1 + round / 2 % (positions.len() - 1)
            } else {
                0
            };
            bullets[slot].push(bullet);
            round += 1;
        }
        let mut out = String::with_capacity(target * 8);
        let phone = person.phone["value"].as_str().unwrap_or("");
        out.push_str(&format!(
            "{}\n{} | {} | {} | {}\n\n",
            person.name, person.city, person.email, phone, person.links[0]
        ));
        out.push_str(&format!("SUMMARY\n{summary}\n\nEXPERIENCE\n"));
        for ((position, bullets), intro) in positions.iter().zip(&bullets).zip(&intros) {
            let end = position
                .end
                .map(month_label)
                .unwrap_or_else(|| "Present".to_owned());
            out.push_str(&format!(
                "\n{} - {}, {}\n{} - {}\n{intro}\n",
                position.title,
                position.org,
                position.city,
                month_label(position.start),
                end
            ));
            for bullet in bullets {
                out.push_str(&format!("- {bullet}\n"));
            }
        }
        out.push_str(&format!("\nSKILLS\n{}\n\nEDUCATION\n", skills.join(", ")));
        for degree in degrees {
            out.push_str(&format!(
                "{} in {}, {}, {}\n",
                degree.degree, degree.field, degree.school, degree.end.0
            ));
        }
        if !person.family.certifications.is_empty() && self.rng.gen_bool(0.5) {
            out.push_str(&format!(
                "\nCERTIFICATIONS\n{}\n",
                self.pick(person.family.certifications)
            ));
        }
        out.push_str(&format!("\nADDITIONAL\n{extra}\n"));
        let summaries = bullets.into_iter().map(|b| b.into_iter().next()).collect();
        (out, summaries)
    }
}

/// `parsedData` consistent with the resume text: the same positions and schools.
fn parsed_data(
    (positions, degrees): &(Vec<Position>, Vec<Degree>),
    summaries: &[Option<String>],
) -> Value {
    let ym = |(year, month): (i32, u32)| json!({"year": year, "month": month});
    json!({
        "positions": positions.iter().zip(summaries).map(|(p, summary)| {
            let mut v = json!({"org": p.org, "title": p.title, "summary": summary, "location": p.city, "start": ym(p.start)});
            if let Some(end) = p.end {
                v["end"] = ym(end);
            }
            v
        }).collect::<Vec<_>>(),
        "schools": degrees.iter().map(|d| json!({
            "org": d.school, "degree": d.degree, "field": d.field, "summary": null,
            "start": ym(d.start), "end": ym(d.end),
        })).collect::<Vec<_>>(),
    })
}

fn month_label((year, month): (i32, u32)) -> String {
    const NAMES: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!("{} {year}", NAMES[(month as usize).saturating_sub(1) % 12])
}
