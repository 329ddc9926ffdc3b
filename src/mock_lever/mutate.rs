//! Changes to the pool, shared by the Lever write routes and the control API: each bumps
//! `updatedAt`/`lastInteractionAt` to the given instant and reports the webhook events it causes.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::Error;
use super::generate::generate_more;
use super::pool::{MockOpportunity, MockResume, Pool, str_field};

/// Most opportunities one `add_candidates` mutation generates.
const MAX_ADDED_CANDIDATES: usize = 100_000;

/// One control mutation, as `POST /_mock/mutate` accepts it (`{"op": "<name>", ...}`).
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum MutateOp {
    /// Adds a note (authored by the first user) to an opportunity.
    AddNote {
        /// Opportunity id.
        opportunity_id: String,
        /// Note text.
        text: String,
    },
    /// Moves an opportunity to another stage (appends to `stageChanges`).
    MoveStage {
        /// Opportunity id.
        opportunity_id: String,
        /// Target stage id.
        stage_id: String,
    },
    /// Archives with a reason, or unarchives with `null`.
    Archive {
        /// Opportunity id.
        opportunity_id: String,
        /// Archive reason id; `None` unarchives.
        reason_id: Option<String>,
    },
    /// Deletes an opportunity: it moves to `/opportunities/deleted` and 404s afterwards.
    Delete {
        /// Opportunity id.
        opportunity_id: String,
    },
    /// Deletes an opportunity's application (its first one when `application_id` is absent):
    /// it moves to `/applications/deleted`. The opportunity's `updatedAt` does not move (Lever
    /// does not document that it would), which is why a sync has to read that list.
    DeleteApplication {
        /// Opportunity id.
        opportunity_id: String,
        /// Application id; default the opportunity's first application.
        #[serde(default)]
        application_id: Option<String>,
    },
    /// Generates `count` new opportunities created during the last week.
    AddCandidates {
        /// How many opportunities.
        count: usize,
        /// Generator seed.
        seed: u64,
    },
    /// Replaces the text of a resume (the newest one when `resume_id` is absent).
    UpdateResumeText {
        /// Opportunity id.
        opportunity_id: String,
        /// Resume id; default the newest resume (one is created if there is none).
        #[serde(default)]
        resume_id: Option<String>,
        /// New plain text.
        text: String,
    },
    /// Adds tags (deduplicated).
    AddTags {
        /// Opportunity id.
        opportunity_id: String,
        /// Tags to add.
        tags: Vec<String>,
    },
}

/// A webhook-worthy change.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    /// Lever event name.
    pub(crate) name: &'static str,
    /// Origin of the opportunity, for subscription conditions.
    pub(crate) origin: String,
    /// The event's `data`.
    pub(crate) data: Value,
}

/// What a note write carries.
pub(crate) struct NewNote<'a> {
    pub(crate) value: &'a str,
    pub(crate) user: Option<&'a str>,
    pub(crate) secret: bool,
    pub(crate) score: Option<i64>,
    pub(crate) created_at: Option<i64>,
    pub(crate) thread: Option<&'a str>,
    /// Whether the note comes through `POST .../notes` (so the API may delete it later).
    pub(crate) via_api: bool,
}

/// Applies a control op at `now`; returns its result and the events to deliver.
pub(crate) fn apply(pool: &mut Pool, op: MutateOp, now: i64) -> Result<(Value, Vec<Event>), Error> {
    let first_user = pool.users.first().map(|u| str_field(u, "id").to_owned());
    match op {
        MutateOp::AddNote {
            opportunity_id,
            text,
        } => {
            let note = add_note(
                pool,
                &opportunity_id,
                &NewNote {
                    value: &text,
                    user: first_user.as_deref(),
                    secret: false,
                    score: None,
                    created_at: None,
                    thread: None,
                    via_api: false,
                },
                now,
            )?;
            Ok((json!({"noteId": note["id"]}), Vec::new()))
        }
        MutateOp::MoveStage {
            opportunity_id,
            stage_id,
        } => {
            let events = set_stage(pool, &opportunity_id, &stage_id, first_user.as_deref(), now)?;
            Ok((json!({"opportunityId": opportunity_id}), events))
        }
        MutateOp::Archive {
            opportunity_id,
            reason_id,
        } => {
            let events = set_archived(pool, &opportunity_id, reason_id.as_deref(), now)?;
            Ok((json!({"opportunityId": opportunity_id}), events))
        }
        MutateOp::Delete { opportunity_id } => {
            let events = delete_opportunity(pool, &opportunity_id, first_user.as_deref(), now)?;
            Ok((json!({"opportunityId": opportunity_id}), events))
        }
        MutateOp::DeleteApplication {
            opportunity_id,
            application_id,
        } => {
            let id = delete_application(pool, &opportunity_id, application_id.as_deref(), now)?;
            Ok((json!({"applicationId": id}), Vec::new()))
        }
        MutateOp::AddCandidates { count, .. } if count > MAX_ADDED_CANDIDATES => Err(
            Error::Invalid(format!("count must be at most {MAX_ADDED_CANDIDATES}")),
        ),
        MutateOp::AddCandidates { count, seed } => {
            let (ids, events) = add_candidates(pool, count, seed, now);
            Ok((json!({"opportunityIds": ids}), events))
        }
        MutateOp::UpdateResumeText {
            opportunity_id,
            resume_id,
            text,
        } => {
            let id = update_resume_text(pool, &opportunity_id, resume_id.as_deref(), text, now)?;
            Ok((json!({"resumeId": id}), Vec::new()))
        }
        MutateOp::AddTags {
            opportunity_id,
            tags,
        } => {
            change_list(pool, &opportunity_id, "tags", true, &tags, now)?;
            Ok((json!({"opportunityId": opportunity_id}), Vec::new()))
        }
    }
}

fn find<'a>(pool: &'a mut Pool, id: &str) -> Result<&'a mut MockOpportunity, Error> {
    pool.opportunities
        .iter_mut()
        .find(|o| o.id() == id)
        .ok_or_else(|| Error::NotFound {
            kind: "opportunities",
            id: id.to_owned(),
        })
}

fn touch(opp: &mut MockOpportunity, now: i64) {
    opp.opportunity["updatedAt"] = json!(now);
    opp.opportunity["lastInteractionAt"] = json!(now);
}

/// An event about `opp`: its ids plus `extra`'s fields.
pub(crate) fn event(name: &'static str, opp: &MockOpportunity, extra: Value) -> Event {
    let mut data = Map::new();
    data.insert("opportunityId".into(), json!(opp.id()));
    data.insert("candidateId".into(), json!(opp.id()));
    data.insert("contactId".into(), json!(opp.contact_id()));
    if let Value::Object(extra) = extra {
        data.extend(extra);
    }
    Event {
        name,
        origin: str_field(&opp.opportunity, "origin").to_owned(),
        data: Value::Object(data),
    }
}

/// `PUT /opportunities/:id/stage`.
pub(crate) fn set_stage(
    pool: &mut Pool,
    id: &str,
    stage: &str,
    user: Option<&str>,
    now: i64,
) -> Result<Vec<Event>, Error> {
    let index = pool.stage_index(stage).ok_or_else(|| Error::NotFound {
        kind: "stages",
        id: stage.to_owned(),
    })?;
    let opp = find(pool, id)?;
    let from = opp.opportunity["stage"].clone();
    let mut change = json!({"toStageId": stage, "toStageIndex": index, "updatedAt": now});
    if let Some(user) = user {
        change["userId"] = json!(user);
    }
    match opp.opportunity["stageChanges"].as_array_mut() {
        Some(changes) => changes.push(change),
        None => opp.opportunity["stageChanges"] = json!([change]),
    }
    opp.opportunity["stage"] = json!(stage);
    opp.opportunity["lastAdvancedAt"] = json!(now);
    touch(opp, now);
    Ok(vec![event(
        "candidateStageChange",
        opp,
        json!({"fromStageId": from, "toStageId": stage}),
    )])
}

/// `PUT /opportunities/:id/archived`: a reason archives, `None` unarchives.
pub(crate) fn set_archived(
    pool: &mut Pool,
    id: &str,
    reason: Option<&str>,
    now: i64,
) -> Result<Vec<Event>, Error> {
    let hired = match reason {
        Some(r) => {
            let found = pool.archive_reason(r).ok_or_else(|| Error::NotFound {
                kind: "archive_reasons",
                id: r.to_owned(),
            })?;
            str_field(found, "type") == "hired"
        }
        None => false,
    };
    let opp = find(pool, id)?;
    let from = opp.opportunity["archived"].clone();
    let to = reason.map_or(Value::Null, |r| json!({"reason": r, "archivedAt": now}));
    opp.opportunity["archived"] = to.clone();
    for application in &mut opp.applications {
        application["archived"] = to.clone();
    }
    touch(opp, now);
    let mut events = vec![event(
        "candidateArchiveChange",
        opp,
        json!({"fromArchived": from, "toArchived": to}),
    )];
    if hired {
        events.push(event("candidateHired", opp, json!({})));
    }
    Ok(events)
}

/// `addTags`/`removeTags`/`addSources`/`removeSources`/`addLinks`/`removeLinks`. Links live
/// on the contact (section 8.11), so a link change shows on, and bumps `updatedAt` of, every
/// opportunity of the same contact; tags and sources belong to the one opportunity.
pub(crate) fn change_list(
    pool: &mut Pool,
    id: &str,
    field: &str,
    add: bool,
    items: &[String],
    now: i64,
) -> Result<(), Error> {
    let contact = find(pool, id)?.contact_id().to_owned();
    let on_contact = field == "links" && !contact.is_empty();
    for opp in pool
        .opportunities
        .iter_mut()
        .filter(|o| o.id() == id || (on_contact && o.contact_id() == contact))
    {
        change_strings(&mut opp.opportunity[field], add, items);
        touch(opp, now);
    }
    Ok(())
}

/// Adds `items` missing from a string array (deduplicated) or removes them from it.
fn change_strings(list: &mut Value, add: bool, items: &[String]) {
    let mut current: Vec<String> = list
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if add {
        for item in items {
            if !current.contains(item) {
                current.push(item.clone());
            }
        }
    } else {
        current.retain(|c| !items.contains(c));
    }
    *list = json!(current);
}

/// `POST /opportunities/:id/notes`; returns the note (new, or the thread it was appended to).
pub(crate) fn add_note(
    pool: &mut Pool,
    id: &str,
    note: &NewNote<'_>,
    now: i64,
) -> Result<Value, Error> {
    let created = note.created_at.unwrap_or(now);
    if created > now {
        return Err(Error::Invalid("createdAt must not be in the future".into()));
    }
    if note.value.trim().is_empty() {
        return Err(Error::Invalid("value is required".into()));
    }
    let opp = find(pool, id)?;
    let field = json!({
        "type": "note", "text": "Comment", "value": note.value, "user": note.user,
        "createdAt": created, "stage": opp.opportunity["stage"], "score": note.score,
    });
    let result = match note.thread {
        Some(thread) => {
            let existing = opp
                .notes
                .iter_mut()
                .find(|n| str_field(n, "id") == thread && n["deletedAt"].is_null())
                .ok_or_else(|| Error::NotFound {
                    kind: "notes",
                    id: thread.to_owned(),
                })?;
            if let Some(fields) = existing["fields"].as_array_mut() {
                fields.push(field);
            }
            existing.clone()
        }
        None => {
            let note_id = uuid::Uuid::new_v4().to_string();
            let value = json!({
                "id": note_id, "text": "Note", "fields": [field], "user": note.user, "secret": note.secret,
                "createdAt": created, "completedAt": created, "deletedAt": null,
            });
            opp.notes.push(value.clone());
            if note.via_api {
                opp.api_notes.push(note_id);
            }
            value
        }
    };
    touch(opp, now);
    Ok(result)
}

/// `DELETE /opportunities/:id/notes/:note`: the note stays listed with `deletedAt` set. Only
/// notes created through the API can be deleted (section 8.6); others are refused unchanged.
pub(crate) fn delete_note(pool: &mut Pool, id: &str, note_id: &str, now: i64) -> Result<(), Error> {
    let opp = find(pool, id)?;
    let api_created = opp.api_notes.iter().any(|n| n == note_id);
    let note = opp
        .notes
        .iter_mut()
        .find(|n| str_field(n, "id") == note_id && n["deletedAt"].is_null())
        .ok_or_else(|| Error::NotFound {
            kind: "notes",
            id: note_id.to_owned(),
        })?;
    if !api_created {
        return Err(Error::Refused(format!(
            "notes {note_id} was not created through the API and cannot be deleted through it"
        )));
    }
    note["deletedAt"] = json!(now);
    touch(opp, now);
    Ok(())
}

/// Deletes an opportunity into the deleted list.
pub(crate) fn delete_opportunity(
    pool: &mut Pool,
    id: &str,
    user: Option<&str>,
    now: i64,
) -> Result<Vec<Event>, Error> {
    let position = pool
        .opportunities
        .iter()
        .position(|o| o.id() == id)
        .ok_or_else(|| Error::NotFound {
            kind: "opportunities",
            id: id.to_owned(),
        })?;
    let opp = pool.opportunities.remove(position);
    let mut record = opp.opportunity.clone();
    record["deletedAt"] = json!(now);
    record["deletedBy"] = json!(user);
    pool.deleted.push(record);
    Ok(vec![event(
        "candidateDeleted",
        &opp,
        json!({"deletedBy": user}),
    )])
}

/// Removes one application from an opportunity into the deleted-applications list.
fn delete_application(
    pool: &mut Pool,
    opportunity_id: &str,
    application_id: Option<&str>,
    now: i64,
) -> Result<String, Error> {
    let opp = find(pool, opportunity_id)?;
    let position = opp
        .applications
        .iter()
        .position(|a| application_id.is_none_or(|id| str_field(a, "id") == id))
        .ok_or_else(|| Error::NotFound {
            kind: "applications",
            id: application_id.unwrap_or("(any)").to_owned(),
        })?;
    let application = opp.applications.remove(position);
    let id = str_field(&application, "id").to_owned();
    if let Some(ids) = opp.opportunity["applications"].as_array_mut() {
        ids.retain(|a| a.as_str() != Some(id.as_str()));
    }
    pool.deleted_applications.push(json!({
        "id": id,
        "deletedAt": now,
        "opportunityId": opportunity_id,
        "postingId": application["posting"],
    }));
    Ok(id)
}

/// Generates new opportunities (fresh records: `updatedAt` set).
pub(crate) fn add_candidates(
    pool: &mut Pool,
    count: usize,
    seed: u64,
    now: i64,
) -> (Vec<String>, Vec<Event>) {
    let mut added = generate_more(pool, count, seed, now);
    let mut events = Vec::new();
    for opp in &mut added {
        opp.opportunity["updatedAt"] = json!(now);
        for application in &opp.applications {
            let extra =
                json!({"applicationId": application["id"], "postingId": application["posting"]});
            events.push(event("applicationCreated", opp, extra));
        }
    }
    let ids = added.iter().map(|o| o.id().to_owned()).collect();
    pool.opportunities.extend(added);
    (ids, events)
}

/// Replaces a resume's text (creating a TXT resume when the opportunity has none).
pub(crate) fn update_resume_text(
    pool: &mut Pool,
    id: &str,
    resume_id: Option<&str>,
    text: String,
    now: i64,
) -> Result<String, Error> {
    let opp = find(pool, id)?;
    let opp_id = opp.id().to_owned();
    let index = match resume_id {
        Some(rid) => opp
            .resumes
            .iter()
            .position(|r| r.id() == rid)
            .ok_or_else(|| Error::NotFound {
                kind: "resumes",
                id: rid.to_owned(),
            })?,
        None if opp.resumes.is_empty() => {
            opp.resumes.push(MockResume {
                resume: json!({"id": uuid::Uuid::new_v4().to_string(), "createdAt": now, "file": null,
                               "parsedData": {"positions": [], "schools": []}}),
                text: String::new(),
            });
            0
        }
        None => opp.resumes.len() - 1,
    };
    let resume = &mut opp.resumes[index];
    let rid = resume.id().to_owned();
    if resume.resume["file"].is_null() {
        resume.resume["file"] = json!({
            "name": "resume.txt", "ext": "txt", "status": "processed",
            "downloadUrl": format!("https://hire.lever.co/candidates/{opp_id}/resumes/{rid}/download"),
        });
    }
    resume.resume["file"]["uploadedAt"] = json!(now);
    resume.resume["file"]["size"] = json!(text.len());
    resume.text = text;
    touch(opp, now);
    Ok(rid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock_lever::generate_pool;

    #[test]
    fn stage_archive_and_delete() {
        let mut pool = generate_pool(20, 1);
        let id = pool.opportunities[0].id().to_owned();
        let events = set_stage(&mut pool, &id, "offer", Some("u"), 5_000_000_000_000).unwrap();
        assert_eq!(events[0].name, "candidateStageChange");
        let opp = pool.opportunity(&id).unwrap();
        assert_eq!(opp.updated_at(), Some(5_000_000_000_000));
        assert_eq!(
            opp.opportunity["stageChanges"]
                .as_array()
                .unwrap()
                .last()
                .unwrap()["toStageId"],
            "offer"
        );
        let hired = pool
            .archive_reasons
            .iter()
            .find(|r| r["type"] == "hired")
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let events = set_archived(&mut pool, &id, Some(&hired), 5_000_000_000_001).unwrap();
        assert_eq!(
            events.iter().map(|e| e.name).collect::<Vec<_>>(),
            ["candidateArchiveChange", "candidateHired"]
        );
        change_list(
            &mut pool,
            &id,
            "tags",
            true,
            &["x".into(), "x".into()],
            5_000_000_000_002,
        )
        .unwrap();
        let tags = pool.opportunity(&id).unwrap().opportunity["tags"]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(tags.iter().filter(|t| *t == "x").count(), 1);
        delete_opportunity(&mut pool, &id, None, 5_000_000_000_003).unwrap();
        assert!(pool.opportunity(&id).is_none());
        assert_eq!(pool.deleted[0]["deletedAt"], 5_000_000_000_003_i64);
        assert!(set_stage(&mut pool, &id, "offer", None, 1).is_err());
    }
}
