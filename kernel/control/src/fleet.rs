//! Changes from a fleet's desired state (etcd; the kernel's `fleet` module reads it): applied
//! through the same checks as the `/v1` requests that make them, for a tenant named in the
//! state rather than authenticated by a token.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::errors::ApiError;
use crate::plane::ControlPlane;
use crate::runtime::Runtime;

/// One change to a tenant's registries.
#[derive(Debug)]
pub enum FleetChange<'a> {
    /// Register or replace a function, as `PUT /v1/functions/{name}?{query}` with the image.
    PutFunction { query: &'a str, image: Vec<u8> },
    /// Register or replace a composition, as `PUT /v1/compositions/{name}` with the source.
    PutComposition { source: Vec<u8> },
    /// Delete a function; one that is not there is no error.
    DeleteFunction,
    /// Delete a composition; one that is not there is no error.
    DeleteComposition,
}

impl ControlPlane {
    /// Applies one change for tenant `tenant` (by name) to `name`. The error is the status,
    /// code and message the equivalent request would have had, or says the tenant is not on
    /// this node.
    pub fn apply_fleet(
        &mut self,
        tenant: &str,
        name: &str,
        change: FleetChange<'_>,
        runtime: &mut dyn Runtime,
    ) -> Result<(), String> {
        let Some(id) = self.tokens.find(tenant) else {
            return Err(format!("no tenant '{tenant}' on this node (its boot configuration)"));
        };
        if let Err(e) = model::validate_function_name(name) {
            return Err(format!("bad name: {e}"));
        }
        let answer = match change {
            FleetChange::PutFunction { query, image } => self.put_function(id, name, Some(query), image, runtime),
            FleetChange::PutComposition { source } => self.put_composition(id, name, source, runtime),
            FleetChange::DeleteFunction => self.delete_function(id, name),
            FleetChange::DeleteComposition => self.delete_composition(id, name),
        };
        match answer {
            Ok(_) => Ok(()),
            Err(ApiError { status: 404, .. }) => Ok(()),
            Err(e) => Err(format!("{} {}: {}", e.status, e.code, e.message)),
        }
    }
}
