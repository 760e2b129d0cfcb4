//! Bearer-token authentication of every `/v1` request.
//!
//! Tokens come from the boot configuration ([`TokenTable`]), never from a request. Every failure
//! is the same 401 with `WWW-Authenticate: Bearer …` (RFC 6750 section 3); the message says which
//! rule was broken but never echoes the token.

use pappus_http::Request;

use model::{AuthError, TenantId, TokenTable};

use crate::errors::ApiError;

/// The tenant the request's `Authorization` header authenticates, or the 401 to answer.
pub(crate) fn authenticate(tokens: &TokenTable, request: &Request) -> Result<TenantId, ApiError> {
    tokens.authenticate(request.headers.get("authorization")).map_err(|e| {
        // A client that sent no credentials is told what to send; one that sent bad ones is
        // told they are invalid (RFC 6750: `error="invalid_token"`).
        let challenge = match e {
            AuthError::Missing | AuthError::NotBearer => "Bearer realm=\"pappus\"",
            AuthError::Malformed | AuthError::UnknownToken => "Bearer realm=\"pappus\", error=\"invalid_token\"",
        };
        ApiError::new(401, "unauthorized", alloc::string::ToString::to_string(&e)).header("www-authenticate", challenge)
    })
}
