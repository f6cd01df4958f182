//! The one mapping from core errors to HTTP responses, and extractors whose
//! rejections use the same `{"error":{"code","message"}}` shape.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use clawnet_core::Error;
use clawnet_proto::ErrorCode;
use serde::de::DeserializeOwned;

/// A core error on its way out as an HTTP response.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        Self(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::json!({ "error": self.0.body() });
        let mut res = (status, axum::Json(body)).into_response();
        if let Some(ms) = self.0.retry_after_ms {
            let secs = ms.div_ceil(1000).max(1);
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        res
    }
}

/// Result type of REST handlers.
pub type ApiResult<T> = Result<T, ApiError>;

/// A JSON body whose rejections are API errors: `too_large` past the body
/// limit, `invalid` for bad JSON, wrong types or unknown fields.
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(JsonRejection::BytesRejection(_)) => Err(ApiError(Error::too_large(
                "body",
                "request body is larger than the limit",
            ))),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError(Error::invalid(
                "content-type",
                "send the body as application/json",
            ))),
            Err(JsonRejection::JsonDataError(e)) => {
                Err(ApiError(Error::invalid("body", e.body_text())))
            }
            Err(e) => Err(ApiError(Error::invalid("body", e.body_text()))),
        }
    }
}

/// An optional JSON body: none without a `Content-Type` header; otherwise it
/// must decode, with the rejections of [`Body`] (JSON errors, not axum's
/// plain-text ones).
#[derive(Debug)]
pub struct OptionalBody<T>(pub Option<T>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for OptionalBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !req.headers().contains_key(header::CONTENT_TYPE) {
            return Ok(Self(None));
        }
        Body::<T>::from_request(req, state)
            .await
            .map(|Body(v)| Self(Some(v)))
    }
}

/// Query parameters whose rejections are `invalid` API errors.
#[derive(Debug)]
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Self(q.0))
            .map_err(|e: QueryRejection| ApiError(Error::invalid("query", e.body_text())))
    }
}

/// Path parameters whose rejections are `invalid` API errors.
#[derive(Debug)]
pub struct PathArgs<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathArgs<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Self(p.0))
            .map_err(|e: PathRejection| ApiError(Error::invalid("path", e.body_text())))
    }
}

/// JSON 404 for unknown routes.
pub async fn no_route() -> ApiError {
    ApiError(Error::new(ErrorCode::NotFound, "no such route"))
}

/// JSON 405 for a known route with the wrong method.
pub async fn wrong_method() -> Response {
    let body = serde_json::json!({"error": {"code": "invalid", "message": "method not allowed on this route"}});
    (StatusCode::METHOD_NOT_ALLOWED, axum::Json(body)).into_response()
}
