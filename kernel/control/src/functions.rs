//! `/v1/functions`: registering, describing, listing and deleting a tenant's functions.
//!
//! - `PUT /v1/functions/{name}?engine=E&inputs=A,B&outputs=C&memory=16MiB&timeout_ms=1000`, body
//!   the image: the query is validated ([`FunctionSpec::from_query`]), the engine checks the image
//!   ([`Runtime::prepare`]), then the function is stored. 201 (with `Location`) when created,
//!   200 when replaced; the body is the declaration as JSON ([`model::FunctionDecl::to_json`]).
//! - `GET /v1/functions/{name}`: the declaration as JSON (never the image). A builtin's name
//!   gives its signature, `{"name":…,"engine":"builtin","inputs":[…],"outputs":[…]}`.
//! - `DELETE /v1/functions/{name}`: 204, no body. Invocations already under way keep the
//!   function they started with; compositions that apply it fail to start (409) until a
//!   function of that name is registered again.
//! - `GET /v1/functions`: `{"functions":[<declaration>,…]}`, the tenant's own, sorted by name.

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use pappus_http::Response;

use model::{Bytes, FunctionSpec, Pool, TenantId};

use crate::builtin::Builtin;
use crate::errors::ApiError;
use crate::plane::ControlPlane;
use crate::runtime::{Runtime, StoredFunction};

/// 413 for an image over the limit.
pub(crate) fn image_too_large(len: u64, max: usize) -> ApiError {
    ApiError::too_large(format!("the function image is {len} bytes, at most {max} are allowed"))
}

/// The registration query, validated; 400 `bad_spec` naming the parameter otherwise.
pub(crate) fn parse_spec(name: &str, query: Option<&str>) -> Result<FunctionSpec, ApiError> {
    FunctionSpec::from_query(name, query.unwrap_or_default())
        .map_err(|e| ApiError::bad_request("bad_spec", alloc::string::ToString::to_string(&e)))
}

/// 409 `reserved` for a builtin's name: no tenant may shadow a platform function.
pub(crate) fn check_not_reserved(name: &str) -> Result<(), ApiError> {
    match Builtin::find(name) {
        Some(_) => Err(ApiError::new(409, "reserved", format!("'{name}' is reserved for a platform function"))),
        None => Ok(()),
    }
}

impl ControlPlane {
    /// A name a tenant may register a function under: not a builtin's, not one of its compositions'
    /// (invoke takes either, so they share one namespace).
    pub(crate) fn check_new_function(&self, tenant: TenantId, name: &str) -> Result<(), ApiError> {
        check_not_reserved(name)?;
        if self.compositions.get(tenant, name).is_some() {
            let message = format!("a composition is named '{name}'; functions and compositions share one namespace");
            return Err(ApiError::new(409, "name_taken", message));
        }
        Ok(())
    }

    /// 409 `registry_full` when `name` is new and the tenant has as many functions as allowed.
    pub(crate) fn check_function_room(&self, tenant: TenantId, name: &str) -> Result<(), ApiError> {
        let max = self.limits.max_functions_per_tenant;
        if self.functions.get(tenant, name).is_none() && self.functions.count(tenant) >= max {
            let message = format!("this tenant already has the maximum of {max} functions; delete one first");
            return Err(ApiError::new(409, "registry_full", message));
        }
        Ok(())
    }

    pub(crate) fn put_function(
        &mut self,
        tenant: TenantId,
        name: &str,
        query: Option<&str>,
        body: Vec<u8>,
        runtime: &mut dyn Runtime,
    ) -> Result<Response, ApiError> {
        self.check_new_function(tenant, name)?;
        if body.len() > self.limits.max_image_bytes {
            return Err(image_too_large(body.len() as u64, self.limits.max_image_bytes));
        }
        let spec = parse_spec(name, query)?;
        if body.is_empty() {
            return Err(ApiError::bad_request("bad_image", "the function image (the request body) is empty"));
        }
        self.check_function_room(tenant, name)?;
        // The image itself is held while it is prepared; then the prepared form, as measured.
        let account = self.memory.account(tenant, Pool::Heap);
        let mut charge = account.charge(body.len() as u64).map_err(ApiError::over_budget)?;
        let image = Bytes::from(body);
        let room = account.budget().saturating_sub(account.used());
        let prepared = runtime.prepare(&spec, &image, room).map_err(|e| {
            let error = ApiError::new(e.http_status(), e.code, e.message);
            if e.status == 503 { error.header("retry-after", format!("{}", self.limits.retry_after_s)) } else { error }
        })?;
        charge.shrink(image.len() as u64);
        charge.grow(prepared.bytes()).map_err(ApiError::over_budget)?;
        let stored = Arc::new(StoredFunction::new(spec, &image, prepared, charge));
        drop(image);
        let json = stored.decl().to_json();
        let created = match self.functions.put(tenant, name, stored) {
            Ok(replaced) => replaced.is_none(),
            Err(e) => return Err(ApiError::new(409, "registry_full", alloc::string::ToString::to_string(&e))),
        };
        if created {
            self.counters.functions = self.counters.functions.saturating_add(1);
            Ok(Response::json(201, json).header("location", format!("/v1/functions/{name}")))
        } else {
            Ok(Response::json(200, json))
        }
    }

    pub(crate) fn get_function(&self, tenant: TenantId, name: &str) -> Result<Response, ApiError> {
        if let Some(function) = self.functions.get(tenant, name) {
            return Ok(Response::json(200, function.decl().to_json()));
        }
        match Builtin::find(name) {
            Some(builtin) => Ok(Response::json(200, builtin.to_json())),
            None => Err(ApiError::not_found("function", name)),
        }
    }

    pub(crate) fn delete_function(&mut self, tenant: TenantId, name: &str) -> Result<Response, ApiError> {
        if Builtin::find(name).is_some() {
            let message = format!("'{name}' is a platform function and cannot be deleted");
            return Err(ApiError::new(409, "reserved", message));
        }
        match self.functions.delete(tenant, name) {
            Some(_) => {
                self.counters.functions = self.counters.functions.saturating_sub(1);
                Ok(Response::new(204))
            }
            None => Err(ApiError::not_found("function", name)),
        }
    }

    pub(crate) fn list_functions(&self, tenant: TenantId) -> Response {
        let mut json = String::from("{\"functions\":[");
        for (i, (_, function)) in self.functions.list(tenant).enumerate() {
            if i > 0 {
                json.push(',');
            }
            json.push_str(&function.decl().to_json());
        }
        json.push_str("]}");
        Response::json(200, json)
    }
}
