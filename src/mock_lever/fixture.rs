//! Reads and writes a pool as a fixture directory of JSON-lines files, filling absent optional
//! fields with defaults and deriving stages, archive reasons and users from what records use.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use super::Error;
use super::pool::{
    MockOpportunity, MockResume, Pool, default_archive_reasons, default_stages, default_users,
    placeholder_user, str_field,
};

const OPPORTUNITIES: &str = "opportunities.jsonl";
const POSTINGS: &str = "postings.jsonl";
const STAGES: &str = "stages.jsonl";
const ARCHIVE_REASONS: &str = "archive_reasons.jsonl";
const USERS: &str = "users.jsonl";
const DELETED: &str = "deleted.jsonl";
const DELETED_APPLICATIONS: &str = "deleted_applications.jsonl";

impl Pool {
    /// Loads a fixture directory (format in the module docs of [`crate::mock_lever`]).
    pub fn load_fixture(dir: &Path) -> Result<Pool, Error> {
        let stages = read_optional(&dir.join(STAGES))?.unwrap_or_else(default_stages);
        let archive_reasons =
            read_optional(&dir.join(ARCHIVE_REASONS))?.unwrap_or_else(default_archive_reasons);
        let users = read_optional(&dir.join(USERS))?.unwrap_or_else(default_users);
        let first_stage = stages
            .first()
            .map(|s| str_field(s, "id").to_owned())
            .unwrap_or_default();
        let first_user = users
            .first()
            .map(|u| str_field(u, "id").to_owned())
            .unwrap_or_default();
        let defaults = Defaults {
            first_stage,
            first_user,
        };

        let path = dir.join(OPPORTUNITIES);
        let mut opportunities = Vec::new();
        for (line, value) in read_lines(&path)? {
            opportunities.push(opportunity_from_line(value, &defaults).map_err(|message| {
                Error::Fixture {
                    path: path.clone(),
                    line,
                    message,
                }
            })?);
        }
        let path = dir.join(POSTINGS);
        let postings = match read_optional(&path)? {
            Some(postings) => postings
                .into_iter()
                .enumerate()
                .map(|(i, p)| {
                    fill_posting(p).map_err(|message| Error::Fixture {
                        path: path.clone(),
                        line: i + 1,
                        message,
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
            None => Vec::new(),
        };
        let deleted = read_optional(&dir.join(DELETED))?.unwrap_or_default();
        let deleted_applications =
            read_optional(&dir.join(DELETED_APPLICATIONS))?.unwrap_or_default();
        let mut pool = Pool {
            opportunities,
            postings,
            stages,
            archive_reasons,
            users,
            deleted,
            deleted_applications,
        };
        derive_reference_data(&mut pool);
        Ok(pool)
    }

    /// Writes the pool as a fixture directory (created if missing); `load_fixture` reads it back
    /// into an identical pool.
    pub fn save_fixture(&self, dir: &Path) -> Result<(), Error> {
        fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_owned(),
            source,
        })?;
        let lines = self.opportunities.iter().map(opportunity_to_line);
        write_lines(&dir.join(OPPORTUNITIES), lines)?;
        write_lines(&dir.join(POSTINGS), self.postings.iter().cloned())?;
        write_lines(&dir.join(STAGES), self.stages.iter().cloned())?;
        write_lines(
            &dir.join(ARCHIVE_REASONS),
            self.archive_reasons.iter().cloned(),
        )?;
        write_lines(&dir.join(USERS), self.users.iter().cloned())?;
        if !self.deleted_applications.is_empty() {
            write_lines(
                &dir.join(DELETED_APPLICATIONS),
                self.deleted_applications.iter().cloned(),
            )?;
        }
        if !self.deleted.is_empty() {
            write_lines(&dir.join(DELETED), self.deleted.iter().cloned())?;
        }
        Ok(())
    }
}

struct Defaults {
    first_stage: String,
    first_user: String,
}

fn opportunity_to_line(opp: &MockOpportunity) -> Value {
    let mut line = opp.opportunity.clone();
    if let Some(object) = line.as_object_mut() {
        object.insert(
            "applications".into(),
            Value::Array(opp.applications.clone()),
        );
        let resumes = opp
            .resumes
            .iter()
            .map(|r| {
                let mut resume = r.resume.clone();
                resume["_text"] = json!(r.text);
                resume
            })
            .collect();
        object.insert("_resumes".into(), Value::Array(resumes));
        object.insert("_notes".into(), Value::Array(opp.notes.clone()));
        object.insert("_feedback".into(), Value::Array(opp.feedback.clone()));
        for (key, records) in [("_offers", &opp.offers), ("_interviews", &opp.interviews)] {
            if !records.is_empty() {
                object.insert(key.into(), Value::Array(records.clone()));
            }
        }
        if !opp.api_notes.is_empty() {
            object.insert("_apiNotes".into(), json!(opp.api_notes));
        }
    }
    line
}

fn opportunity_from_line(value: Value, defaults: &Defaults) -> Result<MockOpportunity, String> {
    let Value::Object(mut object) = value else {
        return Err("expected a JSON object".into());
    };
    let id = match object.get("id") {
        Some(Value::String(id)) if !id.is_empty() => id.clone(),
        _ => return Err("missing string field `id`".into()),
    };
    let take_array = |object: &mut Map<String, Value>, key: &str| -> Result<Vec<Value>, String> {
        match object.remove(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => Ok(items),
            Some(_) => Err(format!("`{key}` must be an array")),
        }
    };
    let resumes = take_array(&mut object, "_resumes")?;
    let notes = take_array(&mut object, "_notes")?;
    let feedback = take_array(&mut object, "_feedback")?;
    let offers = take_array(&mut object, "_offers")?;
    let interviews = take_array(&mut object, "_interviews")?;
    let api_notes = take_array(&mut object, "_apiNotes")?
        .into_iter()
        .map(|id| match id {
            Value::String(id) => Ok(id),
            _ => Err("`_apiNotes` must hold note ids".to_owned()),
        })
        .collect::<Result<_, _>>()?;
    for (records, key) in [(&offers, "_offers"), (&interviews, "_interviews")] {
        records.iter().try_for_each(|r| require_id(r, key))?;
    }
    let applications = take_array(&mut object, "applications")?;
    let created = object.get("createdAt").and_then(Value::as_i64).unwrap_or(0);

    let applications: Vec<Value> = applications
        .into_iter()
        .map(|a| match a {
            Value::String(app_id) => Ok(json!({
                "id": app_id, "type": "user", "candidateId": id, "opportunityId": id, "posting": null,
                "postingHiringManager": null, "postingOwner": null, "name": object.get("name").cloned().unwrap_or(json!("")),
                "company": null, "phone": null, "email": null, "links": [], "comments": null, "user": null,
                "customQuestions": [], "createdAt": created, "archived": null, "requisitionForHire": null,
            })),
            Value::Object(_) if a.get("id").and_then(Value::as_str).is_some() => Ok(a),
            _ => Err("each of `applications` must be an id or an application object with an id".to_owned()),
        })
        .collect::<Result<_, _>>()?;
    object.insert(
        "applications".into(),
        applications.iter().map(|a| a["id"].clone()).collect(),
    );

    let mut opportunity = Value::Object(object);
    fill(
        &mut opportunity,
        &[
            ("name", json!("")),
            ("contact", json!(id)),
            ("headline", json!("")),
            ("stage", json!(defaults.first_stage)),
            ("confidentiality", json!("non-confidential")),
            ("location", json!("")),
            ("phones", json!([])),
            ("emails", json!([])),
            ("links", json!([])),
            ("archived", Value::Null),
            ("tags", json!([])),
            ("sources", json!([])),
            ("stageChanges", json!([])),
            ("origin", json!("sourced")),
            ("sourcedBy", Value::Null),
            ("owner", json!(defaults.first_user)),
            ("followers", json!([])),
            ("createdAt", json!(created)),
            ("updatedAt", Value::Null),
            ("lastInteractionAt", json!(created)),
            ("lastAdvancedAt", json!(created)),
            ("snoozedUntil", Value::Null),
            (
                "urls",
                json!({"list": "https://hire.lever.co/candidates", "show": format!("https://hire.lever.co/candidates/{id}")}),
            ),
            ("isAnonymized", json!(false)),
            ("dataProtection", Value::Null),
        ],
    );

    let resumes = resumes
        .into_iter()
        .map(|mut resume| {
            if resume.get("id").and_then(Value::as_str).is_none() {
                return Err("each of `_resumes` needs a string `id`".to_owned());
            }
            let text = match resume.as_object_mut().and_then(|o| o.remove("_text")) {
                Some(Value::String(text)) => text,
                _ => String::new(),
            };
            // A resume given with text has a processed text file to download, unless the
            // fixture says otherwise; one without text has no file.
            let rid = str_field(&resume, "id").to_owned();
            let file = if text.is_empty() {
                Value::Null
            } else {
                json!({
                    "name": "resume.txt", "ext": "txt", "status": "processed",
                    "downloadUrl": format!("https://hire.lever.co/candidates/{id}/resumes/{rid}/download"),
                    "uploadedAt": created, "size": text.len(),
                })
            };
            fill(
                &mut resume,
                &[
                    ("createdAt", json!(created)),
                    ("file", file),
                    ("parsedData", json!({"positions": [], "schools": []})),
                ],
            );
            Ok(MockResume { resume, text })
        })
        .collect::<Result<_, _>>()?;
    let notes = notes
        .into_iter()
        .map(|mut note| {
            require_id(&note, "_notes")?;
            let at = note
                .get("createdAt")
                .and_then(Value::as_i64)
                .unwrap_or(created);
            fill(
                &mut note,
                &[
                    ("text", json!("Note")),
                    ("fields", json!([])),
                    ("user", Value::Null),
                    ("secret", json!(false)),
                    ("createdAt", json!(at)),
                    ("completedAt", json!(at)),
                    ("deletedAt", Value::Null),
                ],
            );
            Ok(note)
        })
        .collect::<Result<_, String>>()?;
    let feedback = feedback
        .into_iter()
        .map(|mut form| {
            require_id(&form, "_feedback")?;
            let at = form
                .get("createdAt")
                .and_then(Value::as_i64)
                .unwrap_or(created);
            fill(
                &mut form,
                &[
                    ("type", json!("interview")),
                    ("text", json!("Feedback")),
                    ("instructions", json!("")),
                    ("baseTemplateId", Value::Null),
                    ("fields", json!([])),
                    ("user", Value::Null),
                    ("panel", Value::Null),
                    ("interview", Value::Null),
                    ("createdAt", json!(at)),
                    ("completedAt", json!(at)),
                    ("updatedAt", Value::Null),
                    ("deletedAt", Value::Null),
                ],
            );
            Ok(form)
        })
        .collect::<Result<_, String>>()?;
    Ok(MockOpportunity {
        opportunity,
        applications,
        resumes,
        notes,
        feedback,
        offers,
        interviews,
        api_notes,
    })
}

fn fill_posting(mut posting: Value) -> Result<Value, String> {
    require_id(&posting, "postings")?;
    let created = posting
        .get("createdAt")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let id = str_field(&posting, "id").to_owned();
    fill(
        &mut posting,
        &[
            ("text", json!("")),
            ("state", json!("published")),
            ("distributionChannels", json!(["public", "internal"])),
            ("confidentiality", json!("non-confidential")),
            ("user", Value::Null),
            ("owner", Value::Null),
            ("hiringManager", Value::Null),
            (
                "categories",
                json!({"team": null, "department": null, "location": null, "commitment": null, "level": null, "allLocations": []}),
            ),
            ("tags", json!([])),
            (
                "content",
                json!({"description": "", "descriptionHtml": "", "lists": [], "closing": "", "closingHtml": ""}),
            ),
            ("country", json!("US")),
            ("followers", json!([])),
            ("reqCode", Value::Null),
            ("requisitionCodes", json!([])),
            (
                "urls",
                json!({"list": "https://jobs.lever.co/example", "show": format!("https://jobs.lever.co/example/{id}"), "apply": format!("https://jobs.lever.co/example/{id}/apply")}),
            ),
            ("workplaceType", json!("unspecified")),
            ("createdAt", json!(created)),
            ("updatedAt", json!(created)),
        ],
    );
    Ok(posting)
}

fn require_id(value: &Value, what: &str) -> Result<(), String> {
    match value.get("id") {
        Some(Value::String(id)) if !id.is_empty() => Ok(()),
        _ => Err(format!("each of `{what}` needs a string `id`")),
    }
}

/// Inserts each default whose key is absent (present nulls are kept: they are meaningful).
fn fill(value: &mut Value, defaults: &[(&str, Value)]) {
    if let Some(object) = value.as_object_mut() {
        for (key, default) in defaults {
            if !object.contains_key(*key) {
                object.insert((*key).to_owned(), default.clone());
            }
        }
    }
}

/// Adds stages, archive reasons and users that records reference but the account lacks.
fn derive_reference_data(pool: &mut Pool) {
    let mut stage_ids = Vec::new();
    let mut reason_ids = Vec::new();
    let mut user_ids = Vec::new();
    let push = |list: &mut Vec<String>, v: Option<&Value>| {
        if let Some(s) = v.and_then(Value::as_str).filter(|s| !s.is_empty())
            && !list.iter().any(|x| x == s)
        {
            list.push(s.to_owned());
        }
    };
    for opp in &pool.opportunities {
        let o = &opp.opportunity;
        push(&mut stage_ids, o.get("stage"));
        for change in o["stageChanges"].as_array().into_iter().flatten() {
            push(&mut stage_ids, change.get("toStageId"));
            push(&mut user_ids, change.get("userId"));
        }
        push(
            &mut reason_ids,
            o.get("archived").and_then(|a| a.get("reason")),
        );
        push(&mut user_ids, o.get("owner"));
        push(&mut user_ids, o.get("sourcedBy"));
        for follower in o["followers"].as_array().into_iter().flatten() {
            push(&mut user_ids, Some(follower));
        }
        for record in opp.notes.iter().chain(&opp.feedback) {
            push(&mut user_ids, record.get("user"));
        }
    }
    for posting in &pool.postings {
        for key in ["user", "owner", "hiringManager"] {
            push(&mut user_ids, posting.get(key));
        }
    }
    for id in stage_ids {
        if pool.stage_index(&id).is_none() {
            pool.stages
                .push(json!({"id": id, "text": id.replace('-', " ")}));
        }
    }
    for id in reason_ids {
        if pool.archive_reason(&id).is_none() {
            pool.archive_reasons.push(
                json!({"id": id, "text": "Archived", "status": "active", "type": "non-hired"}),
            );
        }
    }
    for id in user_ids {
        if !pool.users.iter().any(|u| str_field(u, "id") == id) {
            let n = pool.users.len() + 1;
            pool.users.push(placeholder_user(&id, n));
        }
    }
}

fn read_lines(path: &Path) -> Result<Vec<(usize, Value)>, Error> {
    let text = fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line)
                .map(|v| (i + 1, v))
                .map_err(|source| Error::Json {
                    path: path.to_owned(),
                    line: i + 1,
                    source,
                })
        })
        .collect()
}

fn read_optional(path: &Path) -> Result<Option<Vec<Value>>, Error> {
    if !path.exists() {
        return Ok(None);
    }
    Ok(Some(
        read_lines(path)?.into_iter().map(|(_, v)| v).collect(),
    ))
}

fn write_lines(path: &PathBuf, values: impl Iterator<Item = Value>) -> Result<(), Error> {
    let io = |source| Error::Io {
        path: path.clone(),
        source,
    };
    let file = fs::File::create(path).map_err(io)?;
    let mut out = BufWriter::new(file);
    for value in values {
        serde_json::to_writer(&mut out, &value).map_err(|source| Error::Json {
            path: path.clone(),
            line: 0,
            source,
        })?;
        out.write_all(b"\n").map_err(io)?;
    }
    out.flush().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_fixture_gets_defaults_and_derived_reference_data() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join(OPPORTUNITIES),
            concat!(
                r#"{"id":"o1","stage":"custom-stage","archived":{"reason":"r-x","archivedAt":5},"owner":"u-x","#,
                r#""applications":["a1"],"_resumes":[{"id":"r1","_text":"hello world","file":{"ext":"txt","status":"processed"}}],"_notes":[{"id":"n1"}]}"#,
                "\n\n"
            ),
        )
        .unwrap();
        let pool = Pool::load_fixture(dir.path()).unwrap();
        let opp = &pool.opportunities()[0];
        assert_eq!(opp.opportunity["confidentiality"], "non-confidential");
        assert_eq!(opp.opportunity["applications"], json!(["a1"]));
        assert_eq!(opp.applications[0]["opportunityId"], "o1");
        assert_eq!(opp.resumes[0].text, "hello world");
        assert!(opp.resumes[0].resume.get("_text").is_none());
        assert_eq!(opp.notes[0]["deletedAt"], Value::Null);
        assert!(pool.stage_index("custom-stage").is_some());
        assert!(pool.archive_reason("r-x").is_some());
        assert!(pool.users().iter().any(|u| u["id"] == "u-x"));
        assert!(pool.postings().is_empty());
    }

    #[test]
    fn a_resume_given_only_its_text_has_a_file_to_download() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join(OPPORTUNITIES),
            r#"{"id":"o9","_resumes":[{"id":"r9","_text":"Kotlin Android developer"},{"id":"r0"}]}"#,
        )
        .unwrap();
        let pool = Pool::load_fixture(dir.path()).unwrap();
        let resumes = &pool.opportunities()[0].resumes;
        let file = &resumes[0].resume["file"];
        assert_eq!(file["status"], "processed");
        assert_eq!(file["ext"], "txt");
        assert_eq!(file["size"], 24);
        assert_eq!(resumes[1].resume["file"], Value::Null);
    }

    #[test]
    fn bad_line_is_reported_with_its_number() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join(OPPORTUNITIES),
            "{\"id\":\"o1\"}\n{\"name\":\"x\"}\n",
        )
        .unwrap();
        let err = Pool::load_fixture(dir.path()).unwrap_err().to_string();
        assert!(err.contains(":2"), "{err}");
        assert!(err.contains("id"), "{err}");
    }
}
