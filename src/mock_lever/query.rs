//! Query-string access the way Lever reads it: repeated parameters are unions, `name[]=v` is the
//! same as `name=v`, and `expand`/`include` also accept comma-joined values.

use super::reply::ApiError;

/// The decoded query pairs of one request.
pub(crate) struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Parses a raw query string (`None` when the URL has none).
    pub(crate) fn parse(raw: Option<&str>) -> Self {
        let pairs = url::form_urlencoded::parse(raw.unwrap_or("").as_bytes())
            .map(|(k, v)| (k.trim_end_matches("[]").to_owned(), v.into_owned()))
            .collect();
        Params { pairs }
    }

    /// Every value of `name`.
    pub(crate) fn all(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Every value of `name`, comma-joined values split.
    pub(crate) fn list(&self, name: &str) -> Vec<&str> {
        self.all(name)
            .into_iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect()
    }

    /// The first value of `name`.
    pub(crate) fn first(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether `name` appears at all.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.pairs.iter().any(|(k, _)| k == name)
    }

    /// A millisecond timestamp parameter; 400 when it is not an integer.
    pub(crate) fn millis(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.first(name) {
            None => Ok(None),
            Some(v) => v.trim().parse::<i64>().map(Some).map_err(|_| {
                ApiError::bad_request(format!("{name} must be a timestamp in milliseconds"))
            }),
        }
    }

    /// A boolean parameter; 400 for anything but `true`/`false`.
    pub(crate) fn boolean(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.first(name) {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(_) => Err(ApiError::bad_request(format!(
                "{name} must be true or false"
            ))),
        }
    }

    /// `limit`: 1..=100, default 100.
    pub(crate) fn limit(&self) -> Result<usize, ApiError> {
        match self.first("limit") {
            None => Ok(100),
            Some(v) => match v.trim().parse::<usize>() {
                Ok(n) if (1..=100).contains(&n) => Ok(n),
                _ => Err(ApiError::bad_request(
                    "limit must be an integer between 1 and 100".into(),
                )),
            },
        }
    }

    /// Every pair except paging ones, sorted: what an offset token is bound to.
    pub(crate) fn canonical_filters(&self) -> String {
        let mut pairs: Vec<String> = self
            .pairs
            .iter()
            .filter(|(k, _)| k != "offset" && k != "limit")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        pairs.sort();
        pairs.join("&")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brackets_repeats_and_commas() {
        let p = Params::parse(Some(
            "tag=a&tag[]=b&expand=applications,stage&expand=owner&limit=5&offset=x",
        ));
        assert_eq!(p.all("tag"), vec!["a", "b"]);
        assert_eq!(p.list("expand"), vec!["applications", "stage", "owner"]);
        assert_eq!(p.limit().unwrap(), 5);
        assert_eq!(
            p.canonical_filters(),
            "expand=applications,stage&expand=owner&tag=a&tag=b"
        );
        assert!(Params::parse(Some("limit=0")).limit().is_err());
        assert!(Params::parse(Some("limit=101")).limit().is_err());
        assert_eq!(Params::parse(None).limit().unwrap(), 100);
        assert!(
            Params::parse(Some("updated_at_start=abc"))
                .millis("updated_at_start")
                .is_err()
        );
    }
}
