//! Bearer-token authentication of every `/v1` request.
//!
//! Tokens come from the boot configuration ([`TokenTable`]), never from a request. Every failure
//! is the same 401 with `WWW-Authenticate: Bearer …` (RFC 6750 section 3); the message says which
//! rule was broken but never echoes the token.

use pappus_http::{Request, Response};

use model::{AuthError, OperatorToken, TenantId, TokenTable};

use crate::errors::ApiError;

/// The tenant the request's `Authorization` header authenticates, or the 401 to answer.
/// `credentials` is what the request's connection last authenticated with: the same header
/// value again names the same tenant without hashing its token again.
pub(crate) fn authenticate(
    tokens: &TokenTable,
    request: &Request,
    credentials: &mut Credentials,
) -> Result<TenantId, ApiError> {
    let value = request.headers.get("authorization");
    if let Some(tenant) = value.and_then(|value| credentials.recall(value)) {
        return Ok(tenant);
    }
    let tenant = tokens.authenticate(value).map_err(|e| unauthorized(e, "pappus"))?;
    if let Some(value) = value {
        credentials.remember(value, tenant);
    }
    Ok(tenant)
}

/// The `Authorization` value a connection's last `/v1` request authenticated with, and its
/// tenant: a keep-alive client's next request with the same value is that tenant, found by
/// comparing bytes. Sound because tokens come from the boot configuration and never change
/// while the node runs, so a value that named a tenant once always does; a different value
/// (another token on the same connection, say through a proxy) is looked up in full. Why:
/// `cargo xtask profile matmul3-native` put the lookup at ~1.1K guest instructions a request
/// (two SipHash passes over the token, the `Bearer` syntax checks). One per connection, never
/// shared between connections; a value longer than [`Credentials::MAX`] is not kept.
#[derive(Clone)]
pub struct Credentials {
    value: [u8; Credentials::MAX],
    /// The tenant and the value's length; `None` until a request authenticated.
    last: Option<(TenantId, usize)>,
}

impl Default for Credentials {
    fn default() -> Self {
        Self { value: [0; Self::MAX], last: None }
    }
}

impl Credentials {
    /// The longest header value kept (`Bearer ` and an 89-byte token).
    pub const MAX: usize = 96;

    fn recall(&self, value: &[u8]) -> Option<TenantId> {
        let (tenant, len) = self.last?;
        let kept = self.value.get(..len)?;
        (kept.len() == value.len() && same_bytes(kept, value)).then_some(tenant)
    }

    fn remember(&mut self, value: &[u8], tenant: TenantId) {
        match self.value.get_mut(..value.len()) {
            Some(kept) => {
                kept.copy_from_slice(value);
                self.last = Some((tenant, value.len()));
            }
            None => self.last = None,
        }
    }
}

/// Never shows the value.
impl core::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(if self.last.is_some() { "Credentials(kept)" } else { "Credentials(none)" })
    }
}

/// Whether two slices of the same length hold the same bytes, eight at a time, every byte
/// compared (no early exit).
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let ((a_words, a_tail), (b_words, b_tail)) = (a.as_chunks::<8>(), b.as_chunks::<8>());
    let words =
        a_words.iter().zip(b_words).fold(0, |diff, (x, y)| diff | (u64::from_ne_bytes(*x) ^ u64::from_ne_bytes(*y)));
    let tail = a_tail.iter().zip(b_tail).fold(0, |diff, (x, y)| diff | (x ^ y));
    words == 0 && tail == 0 && a_words.len() == b_words.len() && a_tail.len() == b_tail.len()
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

    fn with_authorization(value: &str) -> Request {
        let mut request = get_metrics(Some(value));
        request.path = "/v1/functions".into();
        request
    }

    #[test]
    fn a_connection_keeps_what_it_authenticated_with_and_nothing_else() {
        let (alice, bob) = ("alice-token-0123456789", "bob-token-0123456789ab");
        let tokens = TokenTable::parse(alloc::format!("tenant alice {alice}\ntenant bob {bob}\n").as_bytes()).unwrap();
        let tenant = |credentials: &mut Credentials, value: &str| {
            authenticate(&tokens, &with_authorization(value), credentials).map_err(|e| e.status)
        };
        let mut credentials = Credentials::default();
        let as_alice = tenant(&mut credentials, &alloc::format!("Bearer {alice}")).unwrap();
        assert_eq!(credentials.last, Some((as_alice, 7 + alice.len())), "kept");
        assert_eq!(tenant(&mut credentials, &alloc::format!("Bearer {alice}")), Ok(as_alice), "recalled");
        // Another token on the same connection is looked up, and then kept instead.
        let as_bob = tenant(&mut credentials, &alloc::format!("Bearer {bob}")).unwrap();
        assert_ne!(as_bob, as_alice);
        assert_eq!(credentials.last.map(|(t, _)| t), Some(as_bob));
        // A value that differs in one byte, or only in length, is not the kept one.
        assert_eq!(tenant(&mut credentials, &alloc::format!("Bearer {bob}").replace('b', "c")), Err(401));
        assert_eq!(tenant(&mut credentials, &alloc::format!("Bearer {bob}x")), Err(401));
        assert_eq!(tenant(&mut credentials, &alloc::format!("Bearer {}", &bob[..bob.len() - 1])), Err(401));
        assert_eq!(
            tenant(&mut credentials, &alloc::format!("bearer  {alice}")),
            Ok(as_alice),
            "same token, other spelling"
        );
        // A refusal leaves what was kept; a missing header is 401 whatever was kept.
        let kept = credentials.last;
        assert_eq!(tenant(&mut credentials, "Bearer nope-nope-nope-nope"), Err(401));
        assert_eq!(credentials.last, kept);
        let bare = Request { headers: pappus_http::Headers::new(), ..with_authorization("x") };
        assert_eq!(authenticate(&tokens, &bare, &mut credentials).map_err(|e| e.status), Err(401));
        // A value too long to keep still authenticates; nothing is kept for it.
        let padded = alloc::format!("Bearer {alice}{}", " ".repeat(Credentials::MAX));
        assert_eq!(tenant(&mut credentials, &padded), Ok(as_alice));
        assert_eq!(credentials.last, None);
        assert_eq!(alloc::format!("{credentials:?}"), "Credentials(none)", "never shows a token");
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
