//! Routing: which resource a path names, which methods it takes, and the checks every route
//! shares (owned path, authentication, method, name) in the order the API promises.

use alloc::format;

use pappus_http::Request;

use model::{Name, TenantId, TokenTable};

use crate::auth;
use crate::errors::ApiError;
use crate::json;

const FUNCTIONS: &str = "/v1/functions";
const COMPOSITIONS: &str = "/v1/compositions";
const INVOKE: &str = "/v1/invoke";

/// Whether `path` is one of the control plane's (the kernel routes those here).
pub(crate) fn owns(path: &str) -> bool {
    [FUNCTIONS, COMPOSITIONS, INVOKE].iter().any(|prefix| under(path, prefix))
}

fn under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// What a path names. Names are still unchecked (see [`Route::parse`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Resource {
    Functions,
    Function(Name),
    Compositions,
    Composition(Name),
    Invoke(Name),
}

impl Resource {
    /// The resource of an owned path; `None` (404) for anything else, e.g. `/v1/invoke`,
    /// `/v1/functions/` or `/v1/functions/a/b`.
    fn from_path(path: &str) -> Option<Self> {
        let item = |prefix: &str| {
            let rest = path.strip_prefix(prefix)?.strip_prefix('/')?;
            (!rest.is_empty() && !rest.contains('/')).then(|| Name::from(rest))
        };
        match path {
            FUNCTIONS => Some(Self::Functions),
            COMPOSITIONS => Some(Self::Compositions),
            _ => item(FUNCTIONS)
                .map(Self::Function)
                .or_else(|| item(COMPOSITIONS).map(Self::Composition))
                .or_else(|| item(INVOKE).map(Self::Invoke)),
        }
    }

    /// The methods this resource answers, for 405 and its `Allow` field.
    fn allowed(&self) -> &'static [&'static str] {
        match self {
            Self::Functions | Self::Compositions => &["GET"],
            Self::Function(_) | Self::Composition(_) => &["GET", "PUT", "DELETE"],
            Self::Invoke(_) => &["POST"],
        }
    }

    fn name(&self) -> Option<&str> {
        match self {
            Self::Functions | Self::Compositions => None,
            Self::Function(name) | Self::Composition(name) | Self::Invoke(name) => Some(name),
        }
    }
}

/// The HTTP methods the API uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Put,
    Delete,
    Post,
}

impl Method {
    /// Methods are case-sensitive (RFC 9110 section 9.1): `get` is not `GET`.
    fn parse(method: &str) -> Option<Self> {
        match method {
            "GET" => Some(Self::Get),
            "PUT" => Some(Self::Put),
            "DELETE" => Some(Self::Delete),
            "POST" => Some(Self::Post),
            _ => None,
        }
    }
}

/// A request that passed the shared checks: who asks, for what, how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Route {
    pub tenant: TenantId,
    pub resource: Resource,
    pub method: Method,
}

impl Route {
    /// The shared checks, in order: the path is ours (else 404), the caller is a tenant (401;
    /// before anything that could reveal what exists), the path names a resource (404), the
    /// method is one it takes (405 with `Allow`), the name is valid (400 `bad_name`).
    pub(crate) fn parse(
        tokens: &TokenTable,
        request: &Request,
        credentials: &mut auth::Credentials,
    ) -> Result<Self, ApiError> {
        let no_route = || {
            let path = json::shorten(&request.path, 128);
            ApiError::new(404, "not_found", format!("no route for {} {path}", json::shorten(&request.method, 16)))
        };
        if !owns(&request.path) {
            return Err(no_route());
        }
        let tenant = auth::authenticate(tokens, request, credentials)?;
        let resource = Resource::from_path(&request.path).ok_or_else(no_route)?;
        let allowed = resource.allowed();
        let method = Method::parse(&request.method).filter(|_| allowed.contains(&request.method.as_str()));
        let Some(method) = method else {
            let message = format!(
                "{} is not allowed on {} (allowed: {})",
                json::shorten(&request.method, 16),
                json::shorten(&request.path, 128),
                allowed.join(", ")
            );
            return Err(ApiError::new(405, "method_not_allowed", message).header("allow", allowed.join(", ")));
        };
        if let Some(name) = resource.name() {
            model::validate_function_name(name).map_err(|e| {
                ApiError::bad_request("bad_name", format!("invalid name '{}': {e}", json::shorten(name, 64)))
            })?;
        }
        Ok(Self { tenant, resource, method })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;

    #[test]
    fn paths() {
        assert!(owns("/v1/functions"));
        assert!(owns("/v1/functions/f"));
        assert!(owns("/v1/invoke/f"));
        assert!(owns("/v1/invoke"));
        assert!(!owns("/v1/functionsx"));
        assert!(!owns("/v1/echo"));
        assert!(!owns("/healthz"));
        assert_eq!(Resource::from_path("/v1/functions"), Some(Resource::Functions));
        assert_eq!(Resource::from_path("/v1/functions/f"), Some(Resource::Function("f".into())));
        assert_eq!(Resource::from_path("/v1/compositions/c"), Some(Resource::Composition("c".into())));
        assert_eq!(Resource::from_path("/v1/invoke/c"), Some(Resource::Invoke("c".into())));
        assert_eq!(Resource::from_path("/v1/invoke"), None);
        assert_eq!(Resource::from_path("/v1/functions/"), None);
        assert_eq!(Resource::from_path("/v1/functions/a/b"), None);
    }

    /// docs/openapi.json (served at `/v1/openapi.json`) gives each control-plane path exactly the
    /// methods the router takes, and has every path the router has.
    #[test]
    fn the_openapi_document_has_the_routes() {
        use alloc::vec::Vec;
        let doc: serde_json::Value = serde_json::from_slice(crate::openapi::DOCUMENT).unwrap();
        let mut seen = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            let concrete = path.replace("{name}", "f");
            if !owns(&concrete) {
                continue;
            }
            let resource = Resource::from_path(&concrete).unwrap_or_else(|| panic!("{path} is not a route"));
            let mut documented: Vec<String> = item
                .as_object()
                .unwrap()
                .keys()
                .filter(|k| *k != "parameters")
                .map(|k| k.to_ascii_uppercase())
                .collect();
            documented.sort();
            let mut allowed: Vec<String> = resource.allowed().iter().map(|m| String::from(*m)).collect();
            allowed.sort();
            assert_eq!(documented, allowed, "{path}");
            for (method, operation) in item.as_object().unwrap().iter().filter(|(k, _)| *k != "parameters") {
                assert_eq!(operation["security"], serde_json::json!([{"tenantToken": []}]), "{method} {path}");
                assert!(operation["responses"]["401"].is_object(), "{method} {path} documents its 401");
            }
            seen.push(resource);
        }
        let mut kinds: Vec<&str> = seen
            .iter()
            .map(|r| match r {
                Resource::Functions => "functions",
                Resource::Function(_) => "function",
                Resource::Compositions => "compositions",
                Resource::Composition(_) => "composition",
                Resource::Invoke(_) => "invoke",
            })
            .collect();
        kinds.sort_unstable();
        assert_eq!(kinds, ["composition", "compositions", "function", "functions", "invoke"]);
    }
}
