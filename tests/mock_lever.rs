//! Integration tests: the mock Lever over HTTP on 127.0.0.1 port 0, driven with reqwest the way a
//! sync client would (auth, paging, filters, limits, downloads, writes, faults, webhooks).

use std::collections::HashSet;
use std::io::{Cursor, Read};
use std::net::SocketAddr;
use std::time::Duration;

use rediscover::mock_lever::{
    FaultUpdate, MockConfig, MockLever, MutateOp, OAuthConfig, Pool, generate_pool,
    webhook_signature,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

const KEY: &str = "test-key";

fn local() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A config with generous limits so only the tests about limits hit them.
fn fast_config() -> MockConfig {
    MockConfig {
        api_keys: vec![KEY.into()],
        bearer_tokens: vec!["test-token".into()],
        rate_per_sec: 10_000.0,
        burst: 10_000,
        apply_rate_per_sec: 10_000.0,
        apply_burst: 10_000,
        webhook_retry_delay_ms: 10,
        ..MockConfig::default()
    }
}

async fn start(candidates: usize, seed: u64) -> MockLever {
    MockLever::start(local(), generate_pool(candidates, seed), fast_config())
        .await
        .unwrap()
}

async fn get(url: &str) -> (StatusCode, Value) {
    get_as(KEY, url).await
}

/// `GET url` with another API key.
async fn get_as(key: &str, url: &str) -> (StatusCode, Value) {
    answer(reqwest::Client::new().get(url).basic_auth(key, Some(""))).await
}

/// Sends a request; its status and JSON body (`null` when there is none).
async fn answer(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn send(method: reqwest::Method, url: &str, body: Value) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .request(method, url)
        .basic_auth(KEY, Some(""))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Follows `next` from `first_url` to the end; returns every record and the last envelope.
async fn walk(first_url: &str) -> (Vec<Value>, Value) {
    walk_as(KEY, first_url).await
}

/// [`walk`] with another API key.
async fn walk_as(key: &str, first_url: &str) -> (Vec<Value>, Value) {
    let mut records = Vec::new();
    let mut url = first_url.to_owned();
    loop {
        let (status, body) = get_as(key, &url).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        records.extend(body["data"].as_array().unwrap().iter().cloned());
        match body.get("next").and_then(Value::as_str) {
            Some(next) => {
                assert_eq!(body["hasNext"], true);
                let base = first_url.to_owned();
                let mut parsed = reqwest::Url::parse(&base).unwrap();
                let pairs: Vec<(String, String)> = parsed
                    .query_pairs()
                    .filter(|(k, _)| k != "offset")
                    .map(|(k, v)| (k.into(), v.into()))
                    .collect();
                parsed
                    .query_pairs_mut()
                    .clear()
                    .extend_pairs(pairs)
                    .append_pair("offset", next);
                url = parsed.to_string();
            }
            None => return (records, body),
        }
    }
}

fn ids(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn requests_without_valid_credentials_get_401() {
    let mock = start(5, 1).await;
    let url = format!("{}/opportunities", mock.base_url());
    let client = reqwest::Client::new();
    for request in [
        client.get(&url),
        client.get(&url).basic_auth("wrong", Some("")),
        client.get(&url).bearer_auth("wrong"),
        client.get(&url).bearer_auth(KEY),
    ] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let body: Value = response.json().await.unwrap();
        assert!(
            body["code"].is_string() && body["message"].is_string(),
            "{body}"
        );
    }
    assert_eq!(
        client
            .get(&url)
            .basic_auth(KEY, Some(""))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        client
            .get(&url)
            .bearer_auth("test-token")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let control = format!("http://{}/_mock/stats", mock.addr());
    assert_eq!(
        client.get(&control).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(mock.stats().unauthorized, 4);
}

#[tokio::test]
async fn paging_walks_every_opportunity_exactly_once() {
    let mock = start(230, 2).await;
    let pool = mock.pool();
    let (records, last) = walk(&format!("{}/opportunities?limit=37", mock.base_url())).await;
    assert_eq!(last["hasNext"], false);
    assert!(
        last.get("next").is_none(),
        "next must be absent on the last page"
    );
    let got = ids(&records);
    assert_eq!(
        got.iter().collect::<HashSet<_>>().len(),
        got.len(),
        "duplicates"
    );
    let visible: HashSet<String> = pool
        .opportunities()
        .iter()
        .filter(|o| o.opportunity["confidentiality"] != "confidential")
        .map(|o| o.id().to_owned())
        .collect();
    assert_eq!(got.iter().cloned().collect::<HashSet<_>>(), visible);

    let (all, _) = walk(&format!(
        "{}/opportunities?confidentiality=all",
        mock.base_url()
    ))
    .await;
    assert_eq!(all.len(), pool.opportunities().len());
    // Not chronological: createdAt goes down somewhere in the list.
    let created: Vec<i64> = all
        .iter()
        .map(|r| r["createdAt"].as_i64().unwrap())
        .collect();
    assert!(created.windows(2).any(|w| w[0] > w[1]));
    // Small lists come back in one page without `next`.
    let (status, stages) = get(&format!("{}/stages", mock.base_url())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stages["hasNext"], false);
    assert!(stages.get("next").is_none());
}

#[tokio::test]
async fn a_confidential_opportunity_asked_for_by_id_without_the_grant_is_403() {
    let pool = generate_pool(230, 2);
    let secret = pool
        .opportunities()
        .iter()
        .find(|o| o.opportunity["confidentiality"] == "confidential")
        .map(|o| o.id().to_owned())
        .expect("a confidential opportunity");
    let config = MockConfig {
        confidential_access: false,
        ..fast_config()
    };
    let mock = MockLever::start(local(), pool, config).await.unwrap();
    let base = format!("{}/opportunities/{secret}", mock.base_url());
    for url in [
        base.clone(),
        format!("{base}/notes"),
        format!("{base}/resumes"),
    ] {
        assert_eq!(get(&url).await.0, StatusCode::FORBIDDEN, "{url}");
    }
    // Writes are refused too, before anything changes.
    let before = mock.pool().opportunity(&secret).cloned();
    for (method, url, body) in [
        (
            reqwest::Method::POST,
            format!("{base}/notes"),
            json!({"value": "hi"}),
        ),
        (
            reqwest::Method::POST,
            format!("{base}/addTags"),
            json!({"tags": ["x"]}),
        ),
        (
            reqwest::Method::PUT,
            format!("{base}/archived"),
            json!({"reason": null}),
        ),
    ] {
        let (status, _) = send(method.clone(), &url, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {url}");
    }
    assert!(
        mock.pool().opportunity(&secret).cloned() == before,
        "a refused write changed the pool"
    );
    let with_grant = start(230, 2).await;
    let url = format!("{}/opportunities/{secret}", with_grant.base_url());
    assert_eq!(get(&url).await.0, StatusCode::OK);
}

/// A pool with one confidential posting (the generated ones are all public), through a fixture.
fn pool_with_a_confidential_posting(candidates: usize, seed: u64) -> (Pool, String) {
    let pool = generate_pool(candidates, seed);
    let dir = tempfile::tempdir().unwrap();
    pool.save_fixture(dir.path()).unwrap();
    let mut posting = pool.postings()[0].clone();
    let id = "c0nf1de0-0000-4000-8000-000000000001".to_owned();
    posting["id"] = json!(id);
    posting["confidentiality"] = json!("confidential");
    let path = dir.path().join("postings.jsonl");
    let mut lines = std::fs::read_to_string(&path).unwrap();
    lines.push_str(&format!("{posting}\n"));
    std::fs::write(&path, lines).unwrap();
    (Pool::load_fixture(dir.path()).unwrap(), id)
}

/// Confidential access belongs to each credential (sections 6.3 and 11): a key created without
/// it and an OAuth grant without `confidential:access:admin` never see a confidential record
/// and get 403 when they ask for one, while a key with it, on the same server, sees them all.
#[tokio::test]
async fn confidential_access_is_a_property_of_each_credential() {
    const RESTRICTED: &str = "restricted-key";
    let (pool, secret_posting) = pool_with_a_confidential_posting(230, 2);
    let secret = pool
        .opportunities()
        .iter()
        .find(|o| o.opportunity["confidentiality"] == "confidential")
        .map(|o| o.id().to_owned())
        .expect("a confidential opportunity");
    let config = MockConfig {
        // Listed among the full keys too: the restriction wins.
        api_keys: vec![KEY.into(), RESTRICTED.into()],
        api_keys_without_confidential: vec![RESTRICTED.into()],
        oauth: Some(OAuthConfig {
            client_id: "cid".into(),
            client_secret: "secret".into(),
            refresh_token: "r0".into(),
            access_ttl_ms: 60_000,
            scope: "offline_access opportunities:read:admin postings:read:admin".into(),
        }),
        ..fast_config()
    };
    let mock = MockLever::start(local(), pool, config).await.unwrap();
    let base = mock.base_url();
    let refused = [
        format!("{base}/opportunities?confidentiality=all"),
        format!("{base}/opportunities?confidentiality=confidential"),
        format!("{base}/opportunities/{secret}"),
        format!("{base}/opportunities/{secret}/notes"),
        format!("{base}/opportunities/{secret}/applications"),
        format!("{base}/postings?confidentiality=all"),
        format!("{base}/postings/{secret_posting}"),
    ];
    for url in &refused {
        let (status, body) = get_as(RESTRICTED, url).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{url}");
        assert_eq!(body["code"], "ForbiddenError", "{url}");
        assert_eq!(get(url).await.0, StatusCode::OK, "the full key: {url}");
    }
    let (status, body) = answer(
        reqwest::Client::new()
            .post(format!("{base}/opportunities/{secret}/addTags"))
            .basic_auth(RESTRICTED, Some(""))
            .json(&json!({"tags": ["x"]})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // Lists leave confidential records out.
    let (listed, _) = walk_as(RESTRICTED, &format!("{base}/opportunities")).await;
    let (all, _) = walk(&format!("{base}/opportunities?confidentiality=all")).await;
    assert!(!ids(&listed).contains(&secret));
    assert!(ids(&all).contains(&secret));
    let (postings, _) = walk_as(RESTRICTED, &format!("{base}/postings")).await;
    assert!(!ids(&postings).contains(&secret_posting));

    // An OAuth grant without `confidential:access:admin` is refused the same way.
    let (status, token) = answer(reqwest::Client::new().post(mock.oauth_token_url()).form(&[
        ("grant_type", "refresh_token"),
        ("client_id", "cid"),
        ("client_secret", "secret"),
        ("refresh_token", "r0"),
    ]))
    .await;
    assert_eq!(status, StatusCode::OK, "{token}");
    assert_eq!(
        token["scope"],
        "offline_access opportunities:read:admin postings:read:admin"
    );
    let bearer = token["access_token"].as_str().unwrap();
    for url in &refused {
        let (status, _) = answer(reqwest::Client::new().get(url).bearer_auth(bearer)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "OAuth: {url}");
    }
    let (status, _) = answer(
        reqwest::Client::new()
            .get(format!("{base}/opportunities"))
            .bearer_auth(bearer),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

/// `expand=posting` never shows a confidential posting to a credential without confidential
/// access (section 6.3): it expands to `null`, while a key with access gets the posting.
#[tokio::test]
async fn an_expanded_confidential_posting_is_null_without_confidential_access() {
    const RESTRICTED: &str = "restricted-key";
    let (pool, secret_posting) = pool_with_a_confidential_posting(30, 2);
    let dir = tempfile::tempdir().unwrap();
    pool.save_fixture(dir.path()).unwrap();
    let path = dir.path().join("opportunities.jsonl");
    let mut opportunity_id = None;
    let lines: Vec<String> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|line| {
            let mut opp: Value = serde_json::from_str(line).unwrap();
            let open = opp["confidentiality"] == "non-confidential"
                && opp["applications"]
                    .as_array()
                    .is_some_and(|a| !a.is_empty());
            if open && opportunity_id.is_none() {
                opp["applications"][0]["posting"] = json!(secret_posting);
                opportunity_id = opp["id"].as_str().map(str::to_owned);
            }
            opp.to_string()
        })
        .collect();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let opportunity_id = opportunity_id.expect("an open opportunity with an application");
    let config = MockConfig {
        api_keys_without_confidential: vec![RESTRICTED.into()],
        ..fast_config()
    };
    let mock = MockLever::start(local(), Pool::load_fixture(dir.path()).unwrap(), config)
        .await
        .unwrap();
    let url = format!(
        "{}/opportunities/{opportunity_id}/applications?expand=posting",
        mock.base_url()
    );
    let (status, restricted) = get_as(RESTRICTED, &url).await;
    assert_eq!(status, StatusCode::OK, "{restricted}");
    assert!(restricted["data"][0]["posting"].is_null(), "{restricted}");
    let (_, full) = get(&url).await;
    assert_eq!(full["data"][0]["posting"]["id"], secret_posting, "{full}");
}

#[tokio::test]
async fn altered_or_foreign_offset_tokens_are_rejected() {
    let mock = start(30, 3).await;
    let base = mock.base_url();
    let (_, first) = get(&format!("{base}/opportunities?limit=5")).await;
    let next = first["next"].as_str().unwrap().to_owned();
    let (status, _) = get(&format!("{base}/opportunities?limit=5&offset={next}")).await;
    assert_eq!(status, StatusCode::OK, "raw token accepted");
    let decoded = percent_encoding::percent_decode_str(&next)
        .decode_utf8()
        .unwrap()
        .into_owned();
    let tampered = decoded.replacen(|c: char| c.is_ascii_digit(), "9", 1);
    assert_ne!(tampered, decoded);
    for bad in [
        percent_encoding::utf8_percent_encode(&tampered, percent_encoding::NON_ALPHANUMERIC)
            .to_string(),
        "garbage".to_owned(),
        "0.1414895548650.a6070140-33db-407c-91f5-2760e15c8e94".to_owned(),
    ] {
        let (status, body) = get(&format!("{base}/opportunities?limit=5&offset={bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("Invalid offset token"),
            "{body}"
        );
    }
    // A token is bound to its filters.
    let (status, _) = get(&format!(
        "{base}/opportunities?limit=5&archived=true&offset={next}"
    ))
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// Lever answers an unknown method on a known route like an unknown route (section 4).
#[tokio::test]
async fn a_known_route_with_another_method_is_a_lever_404() {
    let mock = start(3, 4).await;
    let id = mock.pool().opportunities()[0].id().to_owned();
    for (method, path) in [
        (reqwest::Method::DELETE, format!("/opportunities/{id}")),
        (reqwest::Method::POST, "/postings".to_owned()),
    ] {
        let (status, body) = send(
            method.clone(),
            &format!("{}{path}", mock.base_url()),
            json!({}),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}");
        assert_eq!(body["code"], "ResourceNotFound", "{method} {path}: {body}");
    }
}

#[tokio::test]
async fn limit_outside_1_to_100_is_a_bad_request() {
    let mock = start(5, 4).await;
    for limit in ["0", "101", "abc"] {
        let (status, body) = get(&format!("{}/opportunities?limit={limit}", mock.base_url())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{limit}");
        assert_eq!(body["code"], "BadRequestError");
    }
    let (status, _) = get(&format!("{}/opportunities?limit=100", mock.base_url())).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn updated_at_filter_skips_null_updated_at() {
    let mock = start(200, 5).await;
    let pool = mock.pool();
    let (records, _) = walk(&format!(
        "{}/opportunities?updated_at_start=0&confidentiality=all",
        mock.base_url()
    ))
    .await;
    let with_updated: HashSet<&str> = pool
        .opportunities()
        .iter()
        .filter(|o| o.updated_at().is_some())
        .map(|o| o.id())
        .collect();
    assert!(
        with_updated.len() < pool.opportunities().len() / 2,
        "most updatedAt are null"
    );
    let got = ids(&records);
    assert_eq!(
        got.iter().map(String::as_str).collect::<HashSet<_>>(),
        with_updated
    );
    let (created, _) = walk(&format!(
        "{}/opportunities?created_at_start=0&confidentiality=all",
        mock.base_url()
    ))
    .await;
    assert_eq!(created.len(), pool.opportunities().len());
}

#[tokio::test]
async fn bucket_empties_after_the_burst_and_answers_429() {
    let config = MockConfig {
        rate_per_sec: 1.0,
        burst: 5,
        retry_after_secs: Some(2),
        ..fast_config()
    };
    let mock = MockLever::start(local(), generate_pool(3, 6), config)
        .await
        .unwrap();
    let url = format!("{}/stages", mock.base_url());
    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let response = client
            .get(&url)
            .basic_auth(KEY, Some(""))
            .send()
            .await
            .unwrap();
        let status = response.status();
        statuses.push(status.as_u16());
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(response.headers()["retry-after"], "2");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["code"], "TooManyRequests");
        }
    }
    assert_eq!(&statuses[..5], &[200; 5]);
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
    // Another credential has its own bucket.
    let other = client
        .get(&url)
        .bearer_auth("test-token")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::OK);
    let stats = mock.stats();
    assert_eq!(stats.total, 9);
    assert_eq!(stats.rate_limited, 3);
    assert_eq!(stats.served, 6);
    assert_eq!(stats.per_second.values().sum::<u64>(), 9);
    assert_eq!(stats.max_in_window(60_000), 9);
}

#[tokio::test]
async fn expand_applications_and_stage_return_objects() {
    let mock = start(40, 7).await;
    for query in [
        "expand=applications&expand=stage",
        "expand=applications,stage",
        "expand[]=applications&expand[]=stage",
    ] {
        let (status, body) = get(&format!(
            "{}/opportunities?{query}&limit=100",
            mock.base_url()
        ))
        .await;
        assert_eq!(status, StatusCode::OK);
        let data = body["data"].as_array().unwrap();
        assert!(
            data.iter()
                .all(|o| o["stage"]["id"].is_string() && o["stage"]["text"].is_string()),
            "{query}"
        );
        let apps: Vec<&Value> = data
            .iter()
            .flat_map(|o| o["applications"].as_array().unwrap())
            .collect();
        assert!(!apps.is_empty());
        assert!(apps.iter().all(|a| a["id"].is_string()
            && a.get("posting").is_some()
            && a["opportunityId"].is_string()));
    }
    let (_, plain) = get(&format!("{}/opportunities?limit=5", mock.base_url())).await;
    assert!(plain["data"][0]["stage"].is_string());
    let (_, included) = get(&format!(
        "{}/opportunities?limit=5&include=name&expand=stage",
        mock.base_url()
    ))
    .await;
    let keys: HashSet<&str> = included["data"][0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, HashSet::from(["id", "name", "stage"]));
}

/// The field names of a JSON object.
fn keys(value: &Value) -> HashSet<&str> {
    value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect()
}

/// `include` keeps only the listed fields plus `id` on every list, postings and children
/// included, in the repeated, bracketed and comma-joined forms; expanded fields stay (section 6).
#[tokio::test]
async fn include_keeps_only_the_listed_fields_on_every_list() {
    let mock = start(40, 7).await;
    let base = mock.base_url();
    let pool = mock.pool();
    for query in [
        "include=content&include=followers",
        "include[]=content&include[]=followers",
        "include=content,followers",
    ] {
        let (status, body) = get(&format!("{base}/postings?{query}")).await;
        assert_eq!(status, StatusCode::OK, "{query}");
        let data = body["data"].as_array().unwrap();
        assert_eq!(data.len(), pool.postings().len());
        for posting in data {
            assert_eq!(
                keys(posting),
                HashSet::from(["id", "content", "followers"]),
                "{query}"
            );
            assert!(posting["content"]["lists"].is_array());
        }
    }
    // An expanded field is kept even when `include` leaves it out.
    let (_, body) = get(&format!("{base}/postings?include=text&expand=owner")).await;
    let posting = &body["data"][0];
    assert_eq!(keys(posting), HashSet::from(["id", "text", "owner"]));
    assert!(posting["owner"]["name"].is_string(), "{posting}");
    // The single posting too.
    let id = pool.postings()[0]["id"].as_str().unwrap();
    let (status, body) = get(&format!("{base}/postings/{id}?include=text")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(keys(&body["data"]), HashSet::from(["id", "text"]));
    // Without `include`, whole postings.
    let (_, body) = get(&format!("{base}/postings")).await;
    assert!(keys(&body["data"][0]).is_superset(&HashSet::from(["text", "content", "state"])));

    // Child and reference lists.
    let opp = pool
        .opportunities()
        .iter()
        .find(|o| !o.notes.is_empty() && o.opportunity["confidentiality"] != "confidential")
        .unwrap();
    for path in [
        format!("/opportunities/{}/notes?include=fields", opp.id()),
        "/stages?include=text".to_owned(),
        "/users?include=name".to_owned(),
    ] {
        let (status, body) = get(&format!("{base}{path}")).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        let wanted = path.rsplit('=').next().unwrap();
        for record in body["data"].as_array().unwrap() {
            assert_eq!(keys(record), HashSet::from(["id", wanted]), "{path}");
        }
    }
    let note = opp.notes[0]["id"].as_str().unwrap();
    let (status, body) = get(&format!(
        "{base}/opportunities/{}/notes/{note}?include=text",
        opp.id()
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(keys(&body["data"]), HashSet::from(["id", "text"]));
}

/// `expand` on child records (section 6.2), in lists and single records, repeated,
/// bracketed or comma-joined: applications (`posting`, `postingOwner`, `postingHiringManager`,
/// `user`), notes and feedback (`user`), offers (`creator`), interviews (`user`, `stage`,
/// `feedbackForms`, `postings`). Offers and interviews come from a fixture.
#[tokio::test]
async fn expand_replaces_ids_with_objects_on_child_records() {
    let pool = generate_pool(60, 21);
    let opp = pool
        .opportunities()
        .iter()
        .find(|o| {
            !o.feedback.is_empty()
                && !o.applications.is_empty()
                && o.notes.iter().any(|n| n["user"].is_string())
                && o.opportunity["confidentiality"] != "confidential"
        })
        .unwrap()
        .clone();
    let user = pool.users()[1]["id"].as_str().unwrap().to_owned();
    let posting = pool.postings()[0]["id"].as_str().unwrap().to_owned();
    let form = opp.feedback[0]["id"].as_str().unwrap().to_owned();
    let offer = "0ffe0000-0000-4000-8000-000000000001";
    let interview = "1e7e0000-0000-4000-8000-000000000001";
    let dir = tempfile::tempdir().unwrap();
    pool.save_fixture(dir.path()).unwrap();
    let path = dir.path().join("opportunities.jsonl");
    let lines: Vec<String> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|line| {
            let mut record: Value = serde_json::from_str(line).unwrap();
            if record["id"] == opp.id() {
                record["_offers"] = json!([{"id": offer, "createdAt": 1, "creator": user,
                    "status": "sent", "fields": []}]);
                record["_interviews"] = json!([{"id": interview, "createdAt": 2, "user": user,
                    "stage": "offer", "feedbackForms": [form], "postings": [posting],
                    "subject": "On-site"}]);
            }
            record.to_string()
        })
        .collect();
    std::fs::write(&path, lines.join("\n")).unwrap();
    let loaded = Pool::load_fixture(dir.path()).unwrap();
    let again = tempfile::tempdir().unwrap();
    loaded.save_fixture(again.path()).unwrap();
    assert_eq!(Pool::load_fixture(again.path()).unwrap(), loaded);
    let mock = MockLever::start(local(), loaded, fast_config())
        .await
        .unwrap();
    let base = format!("{}/opportunities/{}", mock.base_url(), opp.id());
    let is_user =
        |v: &Value| v["id"].is_string() && v["name"].is_string() && v["email"].is_string();

    let (status, body) = get(&format!("{base}/offers?expand=creator")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"][0]["creator"]["id"], user.as_str());
    assert!(is_user(&body["data"][0]["creator"]), "{body}");
    let (_, body) = get(&format!("{base}/offers")).await;
    assert_eq!(body["data"][0]["creator"], user.as_str());

    for query in [
        "expand=user,stage&expand=feedbackForms&expand=postings",
        "expand[]=user&expand[]=stage&expand[]=feedbackForms&expand[]=postings",
    ] {
        let (status, body) = get(&format!("{base}/interviews?{query}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let record = &body["data"][0];
        assert!(is_user(&record["user"]), "{query}: {record}");
        assert_eq!(record["stage"], json!({"id": "offer", "text": "Offer"}));
        assert_eq!(record["feedbackForms"][0]["id"], form.as_str());
        assert!(record["feedbackForms"][0]["fields"].is_array());
        assert_eq!(record["postings"][0]["id"], posting.as_str());
        assert!(record["postings"][0]["text"].is_string());
    }
    let (status, body) = get(&format!("{base}/interviews/{interview}?expand=stage")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["stage"]["text"], "Offer");
    assert_eq!(body["data"]["user"], user.as_str());

    let application = opp.applications[0]["id"].as_str().unwrap();
    let (_, body) = get(&format!(
        "{base}/applications?expand=posting&expand=postingOwner,postingHiringManager"
    ))
    .await;
    let record = &body["data"][0];
    assert_eq!(record["posting"]["id"], opp.applications[0]["posting"]);
    assert!(record["posting"]["content"].is_object());
    assert!(is_user(&record["postingOwner"]), "{record}");
    assert!(is_user(&record["postingHiringManager"]), "{record}");
    let (_, body) = get(&format!("{base}/applications/{application}?expand=posting")).await;
    assert!(body["data"]["posting"]["text"].is_string(), "{body}");
    assert!(body["data"]["postingOwner"].is_string());

    // Notes and feedback expand their author; `include` keeps the expanded field.
    let (_, body) = get(&format!("{base}/notes?expand=user&include=text")).await;
    let authored: Vec<&Value> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| !n["user"].is_null())
        .collect();
    assert!(!authored.is_empty());
    for note in authored {
        assert_eq!(keys(note), HashSet::from(["id", "text", "user"]));
        assert!(is_user(&note["user"]), "{note}");
    }
    let note = opp.notes.iter().find(|n| n["user"].is_string()).unwrap();
    let (_, body) = get(&format!(
        "{base}/notes/{}?expand=user",
        note["id"].as_str().unwrap()
    ))
    .await;
    assert_eq!(body["data"]["user"]["id"], note["user"]);
    let (_, body) = get(&format!("{base}/feedback?expand=user")).await;
    assert!(is_user(&body["data"][0]["user"]), "{body}");
    let (_, body) = get(&format!("{base}/feedback/{form}")).await;
    assert!(body["data"]["user"].is_string());
}

fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

#[tokio::test]
async fn resume_downloads_are_real_files_of_the_resume_text() {
    let mock = start(160, 8).await;
    let pool = mock.pool();
    let client = reqwest::Client::new();
    let mut checked = HashSet::new();
    for opp in pool.opportunities() {
        for resume in &opp.resumes {
            let ext = resume.file_ext().unwrap_or("none");
            let key = format!("{ext}:{}", resume.file_status().unwrap_or("nofile"));
            if checked.contains(&key) {
                continue;
            }
            let url = format!(
                "{}/opportunities/{}/resumes/{}/download",
                mock.base_url(),
                opp.id(),
                resume.id()
            );
            let response = client
                .get(&url)
                .basic_auth(KEY, Some(""))
                .send()
                .await
                .unwrap();
            let status = response.status();
            let content_type = response
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned());
            let bytes = response.bytes().await.unwrap();
            match (resume.file_status(), ext) {
                (None, _) => assert_eq!(status, StatusCode::NOT_FOUND),
                (Some("error"), _) => assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY),
                (_, "pdf") => {
                    assert_eq!(content_type.as_deref(), Some("application/pdf"));
                    let text = pdf_extract::extract_text_from_mem(&bytes).unwrap();
                    assert_eq!(words(&text), words(&resume.text));
                }
                (_, "docx") => {
                    assert!(content_type.unwrap().contains("wordprocessingml"));
                    let mut zip = zip::ZipArchive::new(Cursor::new(bytes.to_vec())).unwrap();
                    let mut xml = String::new();
                    zip.by_name("word/document.xml")
                        .unwrap()
                        .read_to_string(&mut xml)
                        .unwrap();
                    let text: String = xml
                        .split("<w:t xml:space=\"preserve\">")
                        .skip(1)
                        .map(|chunk| chunk.split("</w:t>").next().unwrap())
                        .collect::<Vec<_>>()
                        .join("\n")
                        .replace("&amp;", "&")
                        .replace("&lt;", "<")
                        .replace("&gt;", ">")
                        .replace("&quot;", "\"");
                    assert_eq!(words(&text), words(&resume.text));
                }
                (_, _) => {
                    assert!(content_type.unwrap().starts_with("text/plain"));
                    assert_eq!(String::from_utf8(bytes.to_vec()).unwrap(), resume.text);
                }
            }
            assert!(
                resume.text.split_whitespace().count() >= 300 || resume.file_status().is_none()
            );
            checked.insert(key);
        }
    }
    for key in [
        "pdf:processed",
        "docx:processed",
        "txt:processed",
        "none:nofile",
    ] {
        assert!(checked.contains(key), "no {key} resume in the pool");
    }
    assert!(checked.iter().any(|k| k.ends_with(":error")));
}

#[tokio::test]
async fn resume_lists_can_404_like_legacy_lever() {
    let pool = generate_pool(120, 16);
    let bare = pool
        .opportunities()
        .iter()
        .find(|o| o.resumes.is_empty())
        .unwrap()
        .id()
        .to_owned();
    let with = pool
        .opportunities()
        .iter()
        .find(|o| !o.resumes.is_empty())
        .unwrap()
        .id()
        .to_owned();
    let modern = MockLever::start(local(), pool.clone(), fast_config())
        .await
        .unwrap();
    let (status, body) = get(&format!(
        "{}/opportunities/{bare}/resumes",
        modern.base_url()
    ))
    .await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"data": [], "hasNext": false}))
    );
    let config = MockConfig {
        legacy_resume_404: true,
        ..fast_config()
    };
    let legacy = MockLever::start(local(), pool, config).await.unwrap();
    assert_eq!(
        get(&format!(
            "{}/opportunities/{bare}/resumes",
            legacy.base_url()
        ))
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&format!(
            "{}/opportunities/{with}/resumes",
            legacy.base_url()
        ))
        .await
        .0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn deleted_notes_and_feedback_stay_listed_with_deleted_at() {
    let mock = start(120, 9).await;
    let pool = mock.pool();
    let opp = pool
        .opportunities()
        .iter()
        .find(|o| o.notes.iter().any(|n| !n["deletedAt"].is_null()))
        .unwrap();
    let (status, body) = get(&format!(
        "{}/opportunities/{}/notes",
        mock.base_url(),
        opp.id()
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    let notes = body["data"].as_array().unwrap();
    assert_eq!(notes.len(), opp.notes.len());
    assert!(notes.iter().any(|n| n["deletedAt"].is_i64()));
    let opp = pool
        .opportunities()
        .iter()
        .find(|o| o.feedback.iter().any(|f| !f["deletedAt"].is_null()))
        .unwrap();
    let (_, body) = get(&format!(
        "{}/opportunities/{}/feedback",
        mock.base_url(),
        opp.id()
    ))
    .await;
    let forms = body["data"].as_array().unwrap();
    assert!(forms.iter().any(|f| f["deletedAt"].is_i64()));
    let rating = forms[0]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["type"] == "score-system")
        .unwrap();
    assert!(rating["value"].as_str().unwrap().contains(" - "));
}

#[tokio::test]
async fn writes_bump_updated_at_and_show_up_in_filters() {
    let mock = start(60, 10).await;
    let base = mock.base_url();
    let pool = mock.pool();
    let target = pool
        .opportunities()
        .iter()
        .find(|o| o.updated_at().is_none() && o.opportunity["confidentiality"] != "confidential")
        .unwrap();
    let id = target.id().to_owned();
    let since = pool
        .opportunities()
        .iter()
        .filter_map(|o| o.updated_at())
        .max()
        .unwrap()
        + 1;

    let (status, body) = send(
        reqwest::Method::POST,
        &format!("{base}/opportunities/{id}/addTags"),
        json!({"tags": ["Talent Pool 2026", "Talent Pool 2026"]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let tags = body["data"]["tags"].as_array().unwrap();
    assert_eq!(tags.iter().filter(|t| *t == "Talent Pool 2026").count(), 1);
    let first = body["data"]["updatedAt"].as_i64().unwrap();
    assert!(first >= since);

    let (status, note) = send(
        reqwest::Method::POST,
        &format!("{base}/opportunities/{id}/notes?perform_as=a1b2c3d4-0000-4000-8000-000000000001"),
        json!({"value": "Rediscovered for a new posting."}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(note["data"]["noteId"], note["data"]["id"]);
    assert_eq!(
        note["data"]["fields"][0]["value"],
        "Rediscovered for a new posting."
    );

    let (status, moved) = send(
        reqwest::Method::PUT,
        &format!("{base}/opportunities/{id}/stage"),
        json!({"stage": "offer"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(moved["data"]["stage"], "offer");
    assert_eq!(
        moved["data"]["stageChanges"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()["toStageId"],
        "offer"
    );
    let second = moved["data"]["updatedAt"].as_i64().unwrap();
    assert!(second > first, "strictly increasing");

    let (status, archived) = send(
        reqwest::Method::PUT,
        &format!("{base}/opportunities/{id}/archived"),
        json!({"reason": "3b8e1f02-77c4-4a9d-b2e6-5f0c1d9a8e02"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        archived["data"]["archived"]["reason"],
        "3b8e1f02-77c4-4a9d-b2e6-5f0c1d9a8e02"
    );

    let (records, _) = walk(&format!("{base}/opportunities?updated_at_start={since}")).await;
    assert_eq!(ids(&records), vec![id.clone()]);
    let (tagged, _) = walk(&format!("{base}/opportunities?tag=Talent%20Pool%202026")).await;
    assert_eq!(ids(&tagged), vec![id.clone()]);

    let note_id = note["data"]["id"].as_str().unwrap();
    let response = reqwest::Client::new()
        .delete(format!("{base}/opportunities/{id}/notes/{note_id}"))
        .basic_auth(KEY, Some(""))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(response.bytes().await.unwrap().is_empty());
    let (_, single) = get(&format!("{base}/opportunities/{id}/notes/{note_id}")).await;
    assert!(single["data"]["deletedAt"].is_i64());
    let (status, _) = send(
        reqwest::Method::PUT,
        &format!("{base}/opportunities/{id}/stage"),
        json!({"stage": "no-such-stage"}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// Links live on the contact (section 8.11): adding or removing one through any of a person's
/// opportunities shows on all of them and bumps their `updatedAt`; tags stay per opportunity.
#[tokio::test]
async fn links_live_on_the_contact() {
    let mock = start(120, 22).await;
    let base = mock.base_url();
    let pool = mock.pool();
    let public = |o: &&rediscover::mock_lever::MockOpportunity| {
        o.opportunity["confidentiality"] != "confidential"
    };
    let (first, second) = pool
        .opportunities()
        .iter()
        .filter(public)
        .find_map(|a| {
            let b = pool
                .opportunities()
                .iter()
                .filter(public)
                .find(|b| b.id() != a.id() && b.contact_id() == a.contact_id())?;
            Some((a.id().to_owned(), b.id().to_owned()))
        })
        .expect("a contact with two opportunities");
    let since = pool
        .opportunities()
        .iter()
        .filter_map(|o| o.updated_at())
        .max()
        .unwrap_or(0)
        + 1;
    let link = "github.com/someone-new";
    let (status, changed) = send(
        reqwest::Method::POST,
        &format!("{base}/opportunities/{first}/addLinks"),
        json!({"links": [link]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert!(
        changed["data"]["links"]
            .as_array()
            .unwrap()
            .contains(&json!(link))
    );
    let (_, other) = get(&format!("{base}/opportunities/{second}")).await;
    assert!(
        other["data"]["links"]
            .as_array()
            .unwrap()
            .contains(&json!(link)),
        "{other}"
    );
    assert!(other["data"]["updatedAt"].as_i64().unwrap() >= since);
    let (touched, _) = walk(&format!("{base}/opportunities?updated_at_start={since}")).await;
    assert_eq!(
        ids(&touched).into_iter().collect::<HashSet<_>>(),
        HashSet::from([first.clone(), second.clone()])
    );

    // Removing through the other opportunity removes it from both.
    let (status, _) = send(
        reqwest::Method::POST,
        &format!("{base}/opportunities/{second}/removeLinks"),
        json!({"links": [link]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, again) = get(&format!("{base}/opportunities/{first}")).await;
    assert!(
        !again["data"]["links"]
            .as_array()
            .unwrap()
            .contains(&json!(link))
    );

    // Tags are the opportunity's own.
    send(
        reqwest::Method::POST,
        &format!("{base}/opportunities/{first}/addTags"),
        json!({"tags": ["Only here"]}),
    )
    .await;
    let (_, other) = get(&format!("{base}/opportunities/{second}")).await;
    assert!(
        !other["data"]["tags"]
            .as_array()
            .unwrap()
            .contains(&json!("Only here"))
    );
}

/// Only notes created through `POST .../notes` can be deleted through the API (section 8.6):
/// any other note (from the pool, or added in Lever, as the control API does) is refused with
/// 403 and left as it was; an API note stays deletable after a fixture round trip.
#[tokio::test]
async fn only_notes_created_through_the_api_can_be_deleted() {
    let mock = start(60, 23).await;
    let base = mock.base_url();
    let pool = mock.pool();
    let opp = pool
        .opportunities()
        .iter()
        .find(|o| {
            o.opportunity["confidentiality"] != "confidential"
                && o.notes.iter().any(|n| n["deletedAt"].is_null())
        })
        .unwrap();
    let id = opp.id().to_owned();
    let pooled = opp.notes.iter().find(|n| n["deletedAt"].is_null()).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let added = mock
        .mutate(MutateOp::AddNote {
            opportunity_id: id.clone(),
            text: "Added in Lever".into(),
        })
        .unwrap()["noteId"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, created) = send(
        reqwest::Method::POST,
        &format!("{base}/opportunities/{id}/notes"),
        json!({"value": "Written by the API"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let ours = created["data"]["id"].as_str().unwrap().to_owned();
    let delete_on = |base: &str, note: &str| {
        answer(
            reqwest::Client::new()
                .delete(format!("{base}/opportunities/{id}/notes/{note}"))
                .basic_auth(KEY, Some("")),
        )
    };
    let delete = |note: &str| delete_on(&base, note);
    let before = mock.pool().opportunity(&id).cloned();
    for note in [&pooled, &added] {
        let (status, body) = delete(note).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{note}: {body}");
        assert_eq!(body["code"], "ForbiddenError");
        let (_, single) = get(&format!("{base}/opportunities/{id}/notes/{note}")).await;
        assert!(single["data"]["deletedAt"].is_null(), "{single}");
    }
    assert!(
        mock.pool().opportunity(&id).cloned() == before,
        "a refused delete changed the opportunity"
    );

    // The API's own note survives a fixture round trip as deletable.
    let dir = tempfile::tempdir().unwrap();
    mock.pool().save_fixture(dir.path()).unwrap();
    let reloaded = MockLever::start(
        local(),
        Pool::load_fixture(dir.path()).unwrap(),
        fast_config(),
    )
    .await
    .unwrap();
    let (status, _) = delete_on(&reloaded.base_url(), &pooled).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = delete_on(&reloaded.base_url(), &ours).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, _) = delete(&ours).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

/// A webhook receiver on loopback: its URL and the bodies it gets.
async fn webhook_receiver() -> (String, tokio::sync::mpsc::UnboundedReceiver<Value>) {
    use axum::routing::post;
    let (sender, received) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let app = axum::Router::new().route(
        "/hook",
        post(move |body: axum::Json<Value>| {
            let sender = sender.clone();
            async move {
                let _ = sender.send(body.0);
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(local()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), received)
}

/// The body of an application through `POST /postings/:id/apply`.
fn application_body(name: &str, email: &str, link: &str) -> Value {
    json!({
        "personalInformation": [
            {"name": "fullName", "value": name}, {"name": "email", "value": email},
            {"name": "phone", "value": "(617) 555-0100"},
            {"name": "currentCompany", "value": "Acme Robotics"},
            {"name": "currentLocation", "value": "Boston, MA"},
            {"name": "additionalInformation", "value": "Happy to relocate."},
        ],
        "urls": [{"name": "LinkedIn", "value": link}],
        "customQuestions": [], "source": "Careers site",
    })
}

/// `POST /postings/:id/apply` (sections 8.8 and 8.3): 201 `{"data":{"applicationId"}}`, a new
/// opportunity on a new contact (or on the contact that owns the email, whose other
/// opportunities get the new links) with its application, and `applicationCreated`.
/// `GET /postings/:id/apply` is the form; unknown, closed and confidential postings and
/// malformed answers are refused without creating anything.
#[tokio::test]
async fn applying_to_a_posting_creates_an_opportunity_with_its_application() {
    const RESTRICTED: &str = "restricted-key";
    let (pool, secret_posting) = pool_with_a_confidential_posting(60, 24);
    let config = MockConfig {
        api_keys_without_confidential: vec![RESTRICTED.into()],
        ..fast_config()
    };
    let mock = MockLever::start(local(), pool, config).await.unwrap();
    let base = mock.base_url();
    let (hook, mut deliveries) = webhook_receiver().await;
    let (status, _) = send(
        reqwest::Method::POST,
        &format!("{base}/webhooks"),
        json!({"url": hook, "event": "applicationCreated"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let pool = mock.pool();
    let posting = pool
        .postings()
        .iter()
        .find(|p| p["state"] == "published")
        .unwrap()
        .clone();
    let posting_id = posting["id"].as_str().unwrap().to_owned();
    let apply_url = format!("{base}/postings/{posting_id}/apply");

    let (status, form) = get(&apply_url).await;
    assert_eq!(status, StatusCode::OK, "{form}");
    let required: Vec<&str> = form["data"]["personalInformation"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|q| q["required"] == true)
        .map(|q| q["name"].as_str().unwrap())
        .collect();
    assert_eq!(required, ["fullName", "email"]);
    assert!(form["data"]["urls"].is_array());

    let email = "new.applicant@example.org";
    let (status, created) = send(
        reqwest::Method::POST,
        &format!("{apply_url}?send_confirmation_email=true"),
        application_body("New Applicant", email, "linkedin.com/in/new-applicant"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(keys(&created), HashSet::from(["data"]));
    assert_eq!(keys(&created["data"]), HashSet::from(["applicationId"]));
    let application = created["data"]["applicationId"]
        .as_str()
        .unwrap()
        .to_owned();

    let (found, _) = walk(&format!("{base}/opportunities?email={email}")).await;
    assert_eq!(found.len(), 1);
    let opp = &found[0];
    let opp_id = opp["id"].as_str().unwrap().to_owned();
    assert_eq!(opp["name"], "New Applicant");
    assert_eq!(opp["emails"], json!([email]));
    assert_eq!(opp["phones"][0]["value"], "(617) 555-0100");
    assert_eq!(opp["headline"], "Acme Robotics");
    assert_eq!(opp["location"], "Boston, MA");
    assert_eq!(opp["links"], json!(["linkedin.com/in/new-applicant"]));
    assert_eq!(opp["origin"], "applied");
    assert_eq!(opp["stage"], "applicant-new");
    assert_eq!(opp["sources"], json!(["Careers site"]));
    assert_eq!(opp["applications"], json!([application]));
    assert_eq!(opp["archived"], Value::Null);
    assert!(opp["updatedAt"].is_i64());
    assert_eq!(
        opp["opportunityLocation"],
        posting["categories"]["location"]
    );
    let tags = opp["tags"].as_array().unwrap();
    assert!(tags.contains(&posting["text"]) && tags.contains(&posting["categories"]["department"]));
    let contact = opp["contact"].as_str().unwrap();
    assert!(
        pool.opportunities()
            .iter()
            .all(|o| o.contact_id() != contact)
    );
    let (_, applications) = get(&format!("{base}/opportunities/{opp_id}/applications")).await;
    let record = &applications["data"][0];
    assert_eq!(record["id"], application.as_str());
    assert_eq!(record["type"], "posting");
    assert_eq!(record["posting"], posting_id.as_str());
    assert_eq!(record["opportunityId"], opp_id.as_str());
    assert_eq!(record["email"], email);
    assert_eq!(record["comments"], "Happy to relocate.");
    assert_eq!(record["postingOwner"], posting["owner"]);

    let delivery = tokio::time::timeout(Duration::from_secs(10), deliveries.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(delivery["event"], "applicationCreated");
    assert_eq!(delivery["data"]["applicationId"], application.as_str());
    assert_eq!(delivery["data"]["opportunityId"], opp_id.as_str());
    assert_eq!(delivery["data"]["postingId"], posting_id.as_str());
    assert_eq!(delivery["data"]["contactId"], contact);

    // The email of someone in the pool files the application under their contact.
    let known = pool
        .opportunities()
        .iter()
        .find(|o| o.opportunity["confidentiality"] != "confidential")
        .unwrap();
    let known_email = known.opportunity["emails"][0]
        .as_str()
        .unwrap()
        .to_uppercase();
    let (status, again) = send(
        reqwest::Method::POST,
        &apply_url,
        application_body("Known Person", &known_email, "github.com/known-person"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    let (theirs, _) = walk(&format!(
        "{base}/opportunities?contact_id={}",
        known.contact_id()
    ))
    .await;
    let newest = theirs
        .iter()
        .find(|o| o["applications"] == json!([again["data"]["applicationId"]]))
        .expect("the new opportunity is on the known contact");
    assert_ne!(newest["id"], known.id());
    // The person's details are the contact's, not what the form said (section 7).
    for field in ["name", "emails", "phones", "location", "headline"] {
        assert_eq!(newest[field], known.opportunity[field], "{field}");
    }
    let (_, old) = get(&format!("{base}/opportunities/{}", known.id())).await;
    assert!(
        old["data"]["links"]
            .as_array()
            .unwrap()
            .contains(&json!("github.com/known-person"))
    );

    // Refusals create nothing.
    let count = mock.pool().opportunities().len();
    let closed = pool
        .postings()
        .iter()
        .find(|p| p["state"] == "closed")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let good = application_body("Someone", "someone@example.org", "x.example/someone");
    let mut no_email = good.clone();
    no_email["personalInformation"][1]["value"] = json!("");
    let mut bad_email = good.clone();
    bad_email["personalInformation"][1]["value"] = json!("not-an-email");
    let mut bad_origin = good.clone();
    bad_origin["origin"] = json!("sourced");
    for (url, body, expected) in [
        (
            format!("{base}/postings/no-such-posting/apply"),
            good.clone(),
            StatusCode::NOT_FOUND,
        ),
        (
            format!("{base}/postings/{closed}/apply"),
            good.clone(),
            StatusCode::BAD_REQUEST,
        ),
        (apply_url.clone(), no_email, StatusCode::BAD_REQUEST),
        (apply_url.clone(), bad_email, StatusCode::BAD_REQUEST),
        (apply_url.clone(), bad_origin, StatusCode::BAD_REQUEST),
        (apply_url.clone(), json!({}), StatusCode::BAD_REQUEST),
    ] {
        let (status, body) = send(reqwest::Method::POST, &url, body).await;
        assert_eq!(status, expected, "{url}: {body}");
        assert!(body["code"].is_string(), "{body}");
    }
    let secret_url = format!("{base}/postings/{secret_posting}/apply");
    let (status, _) = answer(
        reqwest::Client::new()
            .post(&secret_url)
            .basic_auth(RESTRICTED, Some(""))
            .json(&good),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        get_as(RESTRICTED, &secret_url).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        get(&format!("{base}/postings/no-such-posting/apply"))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(mock.pool().opportunities().len(), count);
}

/// Applications have their own bucket per credential (section 3: 2 requests/second): they go
/// through while the general bucket is empty, answer 429 when theirs is, and never drain the
/// general one; reading the form is an ordinary request.
#[tokio::test]
async fn applications_have_their_own_rate_limit_bucket() {
    let defaults = MockConfig::default();
    assert_eq!(
        (defaults.apply_rate_per_sec, defaults.apply_burst),
        (2.0, 2)
    );
    // Refills too slow to matter during the test.
    let config = MockConfig {
        rate_per_sec: 0.001,
        burst: 2,
        apply_rate_per_sec: 0.001,
        apply_burst: 2,
        ..fast_config()
    };
    let pool = generate_pool(5, 25);
    let posting = pool
        .postings()
        .iter()
        .find(|p| p["state"] == "published")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mock = MockLever::start(local(), pool, config).await.unwrap();
    let base = mock.base_url();
    let apply_url = format!("{base}/postings/{posting}/apply");
    let apply = |n: u32, bearer: bool| {
        let request = reqwest::Client::new()
            .post(&apply_url)
            .json(&application_body(
                "Rate Tester",
                &format!("rate{n}@example.org"),
                "",
            ));
        let request = if bearer {
            request.bearer_auth("test-token")
        } else {
            request.basic_auth(KEY, Some(""))
        };
        answer(request)
    };
    assert_eq!(get(&apply_url).await.0, StatusCode::OK, "the form");
    assert_eq!(get(&format!("{base}/stages")).await.0, StatusCode::OK);
    let (status, body) = get(&format!("{base}/stages")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");

    assert_eq!(apply(1, false).await.0, StatusCode::CREATED);
    assert_eq!(apply(2, false).await.0, StatusCode::CREATED);
    let (status, body) = apply(3, false).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["code"], "TooManyRequests");
    assert_eq!(
        get(&format!("{base}/stages")).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Another credential has buckets of its own.
    assert_eq!(apply(4, true).await.0, StatusCode::CREATED);
    let (status, _) = answer(
        reqwest::Client::new()
            .get(format!("{base}/stages"))
            .bearer_auth("test-token"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(mock.stats().rate_limited, 3);
    assert_eq!(mock.pool().opportunities().len(), 5 + 3);
}

#[tokio::test]
async fn deleted_opportunities_move_to_the_deleted_list_and_404() {
    let mock = start(20, 11).await;
    let base = mock.base_url();
    let id = mock.pool().opportunities()[4].id().to_owned();
    let before = mock
        .pool()
        .opportunities()
        .iter()
        .filter_map(|o| o.updated_at())
        .max()
        .unwrap_or(0);
    mock.mutate(MutateOp::Delete {
        opportunity_id: id.clone(),
    })
    .unwrap();
    let (status, body) = get(&format!("{base}/opportunities/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "ResourceNotFound");
    let (deleted, last) = walk(&format!(
        "{base}/opportunities/deleted?deleted_at_start={before}"
    ))
    .await;
    assert_eq!(ids(&deleted), vec![id.clone()]);
    assert!(deleted[0]["deletedAt"].as_i64().unwrap() > before);
    assert!(last.get("next").is_none());
    let (none, _) = walk(&format!(
        "{base}/opportunities/deleted?deleted_at_end={before}"
    ))
    .await;
    assert!(none.is_empty());
    let (all, _) = walk(&format!("{base}/opportunities?confidentiality=all")).await;
    assert!(!ids(&all).contains(&id));
}

#[tokio::test]
async fn control_routes_mutate_and_report_over_http() {
    let mock = start(10, 12).await;
    let control = format!("http://{}/_mock", mock.addr());
    let (status, body) = send(reqwest::Method::POST, &format!("{control}/mutate"), json!([{"op": "add_candidates", "count": 5, "seed": 99}, {"op": "add_note", "opportunity_id": mock.pool().opportunities()[0].id(), "text": "hello"}])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["data"][0]["opportunityIds"].as_array().unwrap().len(),
        5
    );
    assert_eq!(mock.pool().opportunities().len(), 15);
    let (status, _) = send(
        reqwest::Method::POST,
        &format!("{control}/mutate"),
        json!({"op": "explode"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // A count no pool could hold is refused, not attempted.
    let (status, _) = send(
        reqwest::Method::POST,
        &format!("{control}/mutate"),
        json!({"op": "add_candidates", "count": u64::MAX, "seed": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(mock.pool().opportunities().len(), 15);
    get(&format!("{}/tags", mock.base_url())).await;
    let (status, stats) = get(&format!("{control}/stats")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stats["data"]["total"], 1);
    assert_eq!(stats["data"]["max_per_second"], 1);
}

#[tokio::test]
async fn injected_faults_follow_the_settings() {
    let mock = start(5, 13).await;
    let url = format!("{}/stages", mock.base_url());
    mock.force_next(503, 2);
    assert_eq!(get(&url).await.0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(get(&url).await.0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(get(&url).await.0, StatusCode::OK);
    mock.force_next(429, 1);
    assert_eq!(get(&url).await.0, StatusCode::TOO_MANY_REQUESTS);
    mock.set_faults(FaultUpdate {
        fail_rate: Some(1.0),
        ..FaultUpdate::default()
    });
    for _ in 0..4 {
        let status = get(&url).await.0;
        assert!(
            status == StatusCode::INTERNAL_SERVER_ERROR
                || status == StatusCode::SERVICE_UNAVAILABLE
        );
    }
    mock.set_faults(FaultUpdate {
        fail_rate: Some(0.0),
        ..FaultUpdate::default()
    });
    assert_eq!(get(&url).await.0, StatusCode::OK);
    let stats = mock.stats();
    assert_eq!(stats.injected_faults, 6);
    assert_eq!(stats.rate_limited, 1);
    assert_eq!(stats.served, 2);
}

#[tokio::test]
async fn fixture_round_trip_keeps_the_pool_identical() {
    let mock = start(80, 14).await;
    let id = mock.pool().opportunities()[0].id().to_owned();
    mock.mutate(MutateOp::AddNote {
        opportunity_id: id.clone(),
        text: "note".into(),
    })
    .unwrap();
    mock.mutate(MutateOp::Delete {
        opportunity_id: mock.pool().opportunities()[1].id().to_owned(),
    })
    .unwrap();
    mock.mutate(MutateOp::UpdateResumeText {
        opportunity_id: id,
        resume_id: None,
        text: "new text".into(),
    })
    .unwrap();
    let applicant = mock
        .pool()
        .opportunities()
        .iter()
        .skip(2)
        .find(|o| !o.applications.is_empty())
        .map(|o| o.id().to_owned())
        .unwrap();
    let gone = mock
        .mutate(MutateOp::DeleteApplication {
            opportunity_id: applicant.clone(),
            application_id: None,
        })
        .unwrap();
    let pool = mock.pool();
    assert!(
        pool.opportunity(&applicant)
            .unwrap()
            .applications
            .is_empty()
    );
    let dir = tempfile::tempdir().unwrap();
    pool.save_fixture(dir.path()).unwrap();
    let loaded = Pool::load_fixture(dir.path()).unwrap();
    assert_eq!(loaded, pool);
    assert_eq!(generate_pool(80, 14), generate_pool(80, 14));

    // The loaded fixture serves the same records.
    let served = MockLever::start(local(), loaded, fast_config())
        .await
        .unwrap();
    let (records, _) = walk(&format!(
        "{}/opportunities?confidentiality=all",
        served.base_url()
    ))
    .await;
    assert_eq!(records.len(), pool.opportunities().len());
    let (deleted, _) = walk(&format!("{}/applications/deleted", served.base_url())).await;
    assert!(
        deleted
            .iter()
            .any(|a| a["id"] == gone["applicationId"] && a["opportunityId"] == applicant.as_str()),
        "{deleted:?}"
    );
    let (postings, _) = walk(&format!(
        "{}/postings?include=text&include=content",
        served.base_url()
    ))
    .await;
    assert_eq!(postings.len(), pool.postings().len());
    assert!(
        postings
            .iter()
            .all(|p| p["text"].is_string() && p["content"]["lists"].is_array())
    );
    served.shutdown().await;
}

#[tokio::test]
async fn webhook_deliveries_are_signed_and_retried() {
    use axum::routing::post;
    let (sender, mut received) = tokio::sync::mpsc::unbounded_channel::<(String, Value)>();
    let attempts = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counter = attempts.clone();
    let receiver = axum::Router::new().route(
        "/hook",
        post(
            move |headers: axum::http::HeaderMap, body: axum::Json<Value>| {
                let sender = sender.clone();
                let counter = counter.clone();
                async move {
                    // The first attempt fails, so the delivery must be retried.
                    if counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                        return StatusCode::INTERNAL_SERVER_ERROR;
                    }
                    let agent = headers
                        .get("user-agent")
                        .map(|v| v.to_str().unwrap().to_owned())
                        .unwrap_or_default();
                    let _ = sender.send((agent, body.0));
                    StatusCode::OK
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind(local()).await.unwrap();
    let hook_addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, receiver).await.unwrap() });

    let mock = start(20, 15).await;
    let (status, created) = send(
        reqwest::Method::POST,
        &format!("{}/webhooks", mock.base_url()),
        json!({"url": format!("http://{hook_addr}/hook"), "event": "candidateStageChange"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let secret = created["data"]["configuration"]["signatureToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, listed) = get(&format!("{}/webhooks", mock.base_url())).await;
    assert!(listed.get("hasNext").is_none());
    assert!(
        listed["data"][0]["configuration"]
            .get("signatureToken")
            .is_none()
    );

    let id = mock.pool().opportunities()[0].id().to_owned();
    mock.mutate(MutateOp::MoveStage {
        opportunity_id: id.clone(),
        stage_id: "offer".into(),
    })
    .unwrap();
    let (agent, body) = tokio::time::timeout(Duration::from_secs(10), received.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(agent, "Lever-Webhooks");
    assert_eq!(body["event"], "candidateStageChange");
    assert_eq!(body["data"]["opportunityId"], id.as_str());
    assert_eq!(body["data"]["toStageId"], "offer");
    let token = body["token"].as_str().unwrap();
    assert_eq!(token.len(), 48);
    let expected = webhook_signature(&secret, token, body["triggeredAt"].as_i64().unwrap());
    assert_eq!(body["signature"], expected.as_str());
    assert_eq!(attempts.load(std::sync::atomic::Ordering::SeqCst), 2);
    // The sender records the success right after the receiver answered.
    for _ in 0..100 {
        if mock.stats().webhook_delivered == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(mock.stats().webhook_delivered, 1);
    assert_eq!(mock.stats().webhook_attempts, 2);
}

#[tokio::test]
async fn the_cli_prints_its_base_url_and_serves_the_pool() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_rediscover"))
        .args([
            "mock-lever",
            "--listen",
            "127.0.0.1:0",
            "--api-key",
            KEY,
            "--api-key-without-confidential",
            "no-secrets",
            "--candidates",
            "25",
            "--seed",
            "3",
            "--rate",
            "50",
        ])
        .env_remove("LEVER_API_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .map(|_| line)
    })
    .await
    .unwrap()
    .unwrap();
    let base = line.trim().to_owned();
    assert!(
        base.starts_with("http://127.0.0.1:") && base.ends_with("/v1"),
        "{base}"
    );
    let (records, _) = walk(&format!("{base}/opportunities?confidentiality=all")).await;
    let (status, _) = get_as(
        "no-secrets",
        &format!("{base}/opportunities?confidentiality=all"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let expected = generate_pool(25, 3);
    assert_eq!(
        ids(&records).into_iter().collect::<HashSet<_>>(),
        expected
            .opportunities()
            .iter()
            .map(|o| o.id().to_owned())
            .collect::<HashSet<_>>()
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test]
async fn oauth_refresh_tokens_rotate_and_access_tokens_expire() {
    let oauth = OAuthConfig {
        client_id: "cid".into(),
        client_secret: "secret".into(),
        refresh_token: "r0".into(),
        access_ttl_ms: 60_000,
        scope: OAuthConfig::DEFAULT_SCOPE.into(),
    };
    let config = MockConfig {
        oauth: Some(oauth),
        ..fast_config()
    };
    let mock = MockLever::start(local(), generate_pool(5, 17), config)
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let refresh = |token: String| {
        let client = client.clone();
        let url = mock.oauth_token_url();
        async move {
            let form = [
                ("grant_type", "refresh_token"),
                ("client_id", "cid"),
                ("client_secret", "secret"),
                ("refresh_token", token.as_str()),
            ];
            let response = client.post(url).form(&form).send().await.unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        }
    };
    let (status, first) = refresh("r0".into()).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["token_type"], "Bearer");
    assert_eq!(first["scope"], OAuthConfig::DEFAULT_SCOPE);
    let access = first["access_token"].as_str().unwrap().to_owned();
    // The grant's scope holds `confidential:access:admin`, so confidential records are visible.
    let everything = format!("{}/opportunities?confidentiality=all", mock.base_url());
    assert_eq!(
        client
            .get(&everything)
            .bearer_auth(&access)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let stages = format!("{}/stages", mock.base_url());
    assert_eq!(
        client
            .get(&stages)
            .bearer_auth(&access)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let (status, reused) = refresh("r0".into()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(reused["error"], "invalid_grant");
    mock.expire_access_tokens();
    assert_eq!(
        client
            .get(&stages)
            .bearer_auth(&access)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let (status, second) = refresh(first["refresh_token"].as_str().unwrap().to_owned()).await;
    assert_eq!(status, StatusCode::OK);
    let access = second["access_token"].as_str().unwrap();
    assert_eq!(
        client
            .get(&stages)
            .bearer_auth(access)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}
