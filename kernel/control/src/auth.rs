//! Bearer-token authentication of every `/v1` request.
//!
//! Tokens come from the boot configuration ([`TokenTable`]), never from a request. Every failure
//! is the same 401 with `WWW-Authenticate: Bearer …` (RFC 6750 section 3); the message says which
//! rule was broken but never echoes the token.

use pappus_http::{Request, Response};

use model::{AuthError, OperatorToken, TenantId, TokenTable};

use crate::errors::ApiError;

/// The tenant the request's `Authorization` header authenticates, or the 401 to answer.
pub(crate) fn authenticate(tokens: &TokenTable, request: &Request) -> Result<TenantId, ApiError> {
    tokens.authenticate(request.headers.get("authorization")).map_err(|e| unauthorized(e, "pappus"))
}

/// Whether a request to an operator page (`/metrics`) carries the operator's token
/// (`operator <token>` in the boot configuration), or the 401 to answer. With no operator token
/// configured every request gets the 401, and its message says so.
pub fn authorize_operator(operator: &OperatorToken, request: &Request) -> Result<(), Response> {
    operator.authenticate(request.headers.get("authorization")).map_err(|e| {
        let mut error = unauthorized(e, "pappus-operator");
        if !operator.is_set() {
            error.message = "no operator token is configured (`operator <token>` in the boot configuration)".into();
        } else if e == AuthError::UnknownToken {
            error.message = "not the operator's token".into();
        }
        error.into_response()
    })
}

/// The 401 for `e` with its `WWW-Authenticate` challenge. A client that sent no credentials is
/// told what to send; one that sent bad ones is told they are invalid (RFC 6750:
/// `error="invalid_token"`).
fn unauthorized(e: AuthError, realm: &str) -> ApiError {
    let challenge = match e {
        AuthError::Missing | AuthError::NotBearer => alloc::format!("Bearer realm=\"{realm}\""),
        AuthError::Malformed | AuthError::UnknownToken => {
            alloc::format!("Bearer realm=\"{realm}\", error=\"invalid_token\"")
        }
    };
    ApiError::new(401, "unauthorized", alloc::string::ToString::to_string(&e)).header("www-authenticate", challenge)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;
    use pappus_http::{Headers, Version};

    const OPS: &str = "ops-token-0123456789abcdef";

    fn get_metrics(authorization: Option<&str>) -> Request {
        let mut headers = Headers::new();
        headers.push("Runtime", "pappus");
        if let Some(value) = authorization {
            headers.push("Authorization", value);
        }
        Request {
            method: "GET".into(),
            path: "/metrics".into(),
            query: None,
            version: Version::Http11,
            headers,
            body: alloc::vec::Vec::new(),
        }
    }

    fn refusal(operator: &OperatorToken, authorization: Option<&str>) -> (u16, String, String) {
        let response = authorize_operator(operator, &get_metrics(authorization)).unwrap_err();
        let challenge = response.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case("www-authenticate"));
        let challenge = challenge.map(|(_, v)| String::from(&**v)).unwrap_or_default();
        (response.status, challenge, String::from_utf8(response.body.clone()).unwrap())
    }

    #[test]
    fn operator_pages_need_the_operator_token() {
        let ops = OperatorToken::new(OPS).unwrap();
        assert!(authorize_operator(&ops, &get_metrics(Some(&alloc::format!("Bearer {OPS}")))).is_ok());
        let (status, challenge, body) = refusal(&ops, None);
        assert_eq!((status, challenge.as_str()), (401, "Bearer realm=\"pappus-operator\""));
        assert!(body.contains("\"code\":\"unauthorized\"") && body.contains("missing Authorization"), "{body}");
        let (status, challenge, body) = refusal(&ops, Some("Bearer some-tenant-token-0123"));
        assert_eq!((status, challenge.as_str()), (401, "Bearer realm=\"pappus-operator\", error=\"invalid_token\""));
        assert!(body.contains("not the operator's token") && !body.contains(OPS), "{body}");
        assert_eq!(refusal(&ops, Some("Basic b3BzOm9wcw==")).0, 401);
    }

    #[test]
    fn without_an_operator_token_nothing_opens() {
        let none = OperatorToken::default();
        for header in [None, Some("Bearer ops-token-0123456789abcdef"), Some("Bearer x")] {
            let (status, _, body) = refusal(&none, header);
            assert_eq!(status, 401);
            assert!(body.contains("no operator token is configured"), "{body}");
        }
    }
}
