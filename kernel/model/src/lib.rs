//! The Pappus data model: items, sets, function declarations, the boot configuration (tenants,
//! hosts), the registries and the invoke wire formats. `no_std` + `alloc`; everything here runs and is tested on the host.
//!
//! Everything that parses untrusted input (query strings, `Authorization` headers, the boot
//! configuration, request bodies) is bounded and returns an error naming what is wrong and
//! where; none of it panics, whatever the input.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

mod config;
mod digest;
mod function;
mod hosts;
mod item;
pub mod json_text;
pub mod memory;
mod name;
pub mod query;
mod registry;
mod settings;
mod tenant;
pub mod wire;

pub use config::BootConfig;
pub use digest::ImageDigest;
pub use function::{
    DEFAULT_MEMORY_BYTES, DEFAULT_TIMEOUT_MS, EngineKind, FunctionDecl, FunctionSpec, MAX_MEMORY_BYTES, MAX_QUERY_LEN,
    MAX_SETS_PER_SIDE, MAX_TIMEOUT_MS, MIN_MEMORY_BYTES, MIN_TIMEOUT_MS, Param, SpecError, parse_size,
};
pub use hosts::{HostLineError, HostTable, MAX_HOST_NAME_LEN, MAX_HOSTS, check_host_name};
pub use item::{Bytes, Item, MAX_NAME_LEN, Name, PAGE_SIZE, PAGED_MIN, Page, Set};
pub use memory::{MemoryAccount, MemoryBudgets, MemoryCharge, OverBudget, Pool, TenantMemory};
pub use name::{
    MAX_FUNCTION_NAME_LEN, NameError, shorten, validate_function_name, validate_item_name, validate_item_name_within,
    validate_set_name, validate_set_name_within,
};
pub use registry::{Registry, RegistryError};
pub use settings::{Limit, MAX_URL_BYTES, NodeSettings, SettingError, check_fleet_url};
pub use tenant::{
    AuthError, ConfigError, ConfigErrorKind, MAX_CONFIG_BYTES, MAX_TENANTS, MAX_TOKEN_LEN, MIN_TOKEN_LEN,
    OperatorToken, TenantId, TokenTable, bearer_token,
};
