//! Account-level reference data, fetched every run: stages, archive reasons, postings (with
//! content), users (deactivated included) and tags.

use crate::domain::ReferenceData;
use crate::lever::wire::{WireArchiveReason, WirePosting, WireStage, WireTag, WireUser};
use crate::lever::{Error, LeverClient, MalformedRecord};

/// Fetches the reference data and finds out whether the credential may read confidential
/// records (asking for them without the grant is a 403).
pub(super) async fn fetch(
    client: &LeverClient,
    malformed: &mut Vec<MalformedRecord>,
) -> Result<(ReferenceData, bool), Error> {
    let (stages, bad) = client.list_all::<WireStage>("/stages", Vec::new()).await?;
    malformed.extend(bad);
    let (reasons, bad) = client
        .list_all::<WireArchiveReason>("/archive_reasons", Vec::new())
        .await?;
    malformed.extend(bad);
    let (users, bad) = client
        .list_all::<WireUser>("/users", vec![("includeDeactivated", "true".into())])
        .await?;
    malformed.extend(bad);
    let (tags, bad) = client.list_all::<WireTag>("/tags", Vec::new()).await?;
    malformed.extend(bad);
    let (postings, confidential_access) = match client
        .list_all::<WirePosting>("/postings", vec![("confidentiality", "all".into())])
        .await
    {
        Ok(postings) => (postings, true),
        Err(Error::Forbidden { .. }) => (
            client
                .list_all::<WirePosting>("/postings", Vec::new())
                .await?,
            false,
        ),
        Err(e) => return Err(e),
    };
    malformed.extend(postings.1);
    let mut tag_names: Vec<String> = tags
        .into_iter()
        .map(|t| t.text)
        .filter(|t| !t.is_empty())
        .collect();
    tag_names.dedup();
    Ok((
        ReferenceData {
            stages: stages.into_iter().map(Into::into).collect(),
            archive_reasons: reasons.into_iter().map(Into::into).collect(),
            postings: postings.0.into_iter().map(Into::into).collect(),
            users: users.into_iter().map(Into::into).collect(),
            tags: tag_names,
        },
        confidential_access,
    ))
}
