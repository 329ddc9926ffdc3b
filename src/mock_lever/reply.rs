//! Response shapes: Lever's error body `{code, message}`, the list envelope, JSON bodies.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// An error answer in Lever's shape.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
    pub(crate) retry_after: Option<u64>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: String) -> Self {
        ApiError {
            status,
            code,
            message,
            retry_after: None,
        }
    }

    /// 400 BadRequestError.
    pub(crate) fn bad_request(message: String) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequestError", message)
    }

    /// 404 ResourceNotFound, worded like Lever (`opportunities <id> was not found`).
    pub(crate) fn not_found(kind: &str, id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            format!("{kind} {id} was not found"),
        )
    }

    /// 403 ForbiddenError.
    pub(crate) fn forbidden(message: String) -> Self {
        Self::new(StatusCode::FORBIDDEN, "ForbiddenError", message)
    }

    /// 403 for confidential data asked for by a credential without confidential access
    /// (section 6.3).
    pub(crate) fn confidential() -> Self {
        Self::forbidden("this credential has no access to confidential data".into())
    }

    /// An injected or rate-limit status with its conventional code.
    pub(crate) fn status(status: u16, retry_after: Option<u64>) -> Self {
        let (status, code, message) = match status {
            429 => (
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "Rate limit exceeded, slow down",
            ),
            500 => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                "Something went wrong",
            ),
            _ => (
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "Lever is down for maintenance",
            ),
        };
        let retry_after = if status == StatusCode::TOO_MANY_REQUESTS {
            retry_after
        } else {
            None
        };
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after,
        }
    }
}

impl From<super::Error> for ApiError {
    fn from(err: super::Error) -> Self {
        match &err {
            super::Error::NotFound { kind, id } => ApiError::not_found(kind, id),
            super::Error::Invalid(_) => ApiError::bad_request(err.to_string()),
            // Lever documents no status for these refusals (section 8.6 says only that
            // API-created notes can be deleted): the credential may not do it, so 403.
            super::Error::Refused(message) => ApiError::forbidden(message.clone()),
            _ => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                err.to_string(),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = json_response(
            self.status,
            &json!({"code": self.code, "message": self.message}),
        );
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// A JSON body with Lever's content type and server header.
pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut response = (status, bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    headers.insert(header::SERVER, HeaderValue::from_static("lever-data-api"));
    response
}

/// `200 {"data": value}`.
pub(crate) fn single(value: Value) -> Response {
    json_response(StatusCode::OK, &json!({"data": value}))
}

/// The list envelope; `next` is absent on the last page.
pub(crate) fn envelope(data: Vec<Value>, next: Option<String>) -> Response {
    let mut body = json!({"data": data, "hasNext": next.is_some()});
    if let Some(next) = next {
        body["next"] = json!(next);
    }
    json_response(StatusCode::OK, &body)
}

/// Result of a route handler.
pub(crate) type ApiResult = Result<Response, ApiError>;
