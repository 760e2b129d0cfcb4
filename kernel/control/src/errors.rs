//! The API's errors: a status, a machine-readable code and a message for people, answered as the
//! front door's JSON error shape `{"error":{"code":…,"message":…}}` (DESIGN.md, "The front door").
//!
//! Handlers return `Result<Response, ApiError>` and use `?`, so every refusal path produces the
//! same shape. The codes are part of the API; `lib.rs` lists them.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use pappus_http::Response;

use crate::json;

/// An error answer under construction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    /// Extra response header fields (`www-authenticate`, `allow`, `retry-after`).
    pub headers: Vec<(&'static str, String)>,
    /// Extra JSON members of the `error` object, already serialised (`"diagnostics":[…]`).
    pub extra: Option<String>,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), headers: Vec::new(), extra: None }
    }

    #[must_use]
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Adds `"name":<json>` to the error object.
    #[must_use]
    pub fn member(mut self, name: &str, json_value: &str) -> Self {
        let mut extra = self.extra.take().unwrap_or_default();
        extra.push(',');
        json::push_str(&mut extra, name);
        extra.push(':');
        extra.push_str(json_value);
        self.extra = Some(extra);
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(400, code, message)
    }

    /// 404 `not_found`. The same answer whether the name does not exist or belongs to another
    /// tenant, so a tenant cannot learn what others have registered.
    pub fn not_found(what: &str, name: &str) -> Self {
        Self::new(404, "not_found", format!("no {what} named '{}'", json::shorten(name, 64)))
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(413, "payload_too_large", message)
    }

    /// 507 `memory_budget`: the tenant's memory budget cannot hold what the request needs.
    pub fn over_budget(e: model::OverBudget) -> Self {
        Self::new(507, "memory_budget", format!("{e}"))
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "internal", message)
    }

    pub fn into_response(self) -> Response {
        let mut body = String::with_capacity(48 + self.message.len());
        body.push_str("{\"error\":{\"code\":");
        json::push_str(&mut body, self.code);
        body.push_str(",\"message\":");
        json::push_str(&mut body, &self.message);
        if let Some(extra) = &self.extra {
            body.push_str(extra);
        }
        body.push_str("}}");
        let mut response = Response::json(self.status, body);
        for (name, value) in self.headers {
            response = response.header(name, value);
        }
        response
    }
}
