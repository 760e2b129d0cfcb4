//! The boot configuration: what a node needs that a command line should not show.
//!
//! It holds the tenants and their bearer tokens (`tenant <name> <token>`), the host table of
//! the `http` communication function (`host <name> <a.b.c.d>`, `dns <a.b.c.d>`), and the
//! node's settings (`ip`, `gateway`, `compute`, `limit`), one per line with `#` comments; the format is `model::BootConfig`'s and docs/configuration.md describes
//! it. QEMU passes the file as a PVH module (`-initrd`, which `cargo xtask run` does); the UEFI loader passes it in
//! its boot block. Without one the node serves no tenant: every `/v1` request is answered 401,
//! and the boot log says why.

use control::ControlLimits;
use model::{BootConfig, Limit, MemoryBudgets, NodeSettings};

use crate::boot::BootInfo;
use crate::mm;

/// The boot configuration, or an empty one (no tenants, no hosts) when there is none or it is
/// refused; the log says which.
pub fn read(info: &BootInfo) -> BootConfig {
    let Some(range) = info.config else {
        log::warn!("no boot configuration; no tenants, so every /v1 request gets 401");
        return BootConfig::default();
    };
    let text = mm::copy_boot_data(range);
    match BootConfig::parse(&text) {
        Ok(config) => {
            log::info!(
                "{} tenant(s) from the boot configuration ({} bytes), {} host(s) for the http function, DNS {}",
                config.tenants.len(),
                text.len(),
                config.hosts.len(),
                config.hosts.dns_server().map_or_else(|| "off".into(), |s| alloc::format!("{s}"))
            );
            if !config.operator.is_set() {
                log::warn!("config: no operator token, so /metrics answers 401");
            }
            config
        }
        Err(e) => {
            log::error!("boot configuration refused: {e}; no tenants, no hosts");
            BootConfig::default()
        }
    }
}

/// The control plane's limits: the defaults, with what the configuration's `limit` lines set.
/// Each of `tenants` tenants gets an equal share of the heap less the kernel's reserve, and of
/// the page frames free now, unless `limit tenant_memory` / `tenant_sandbox_memory` say
/// otherwise (an operator may overcommit them on purpose; the defaults never do).
///
/// An application with adaptive inputs (`anyEach`, `anyKeyed`) aims at one instance per core
/// that runs functions, `compute_cores` (at least one: a single-core node runs them inline), as
/// Dandelion's platform aims at its local cores, unless `limit any_partitions` says otherwise.
pub fn control_limits(node: &NodeSettings, tenants: usize, compute_cores: usize) -> ControlLimits {
    let mut limits =
        ControlLimits { heap_room: pappus_http::MemoryGate(mm::heap_room_for), ..ControlLimits::default() };
    limits.plan.any_partitions = compute_cores.max(1);
    let share = |bytes: u64| bytes / tenants.max(1) as u64;
    let heap = mm::heap_stats();
    let heap_for_tenants = (heap.total.saturating_sub(heap.used).saturating_sub(mm::heap_reserve())) as u64;
    limits.memory = MemoryBudgets { heap: share(heap_for_tenants), frames: share(mm::frame_stats().free * 4096) };
    let size = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
    for limit in Limit::ALL {
        let Some(value) = node.limit(limit) else { continue };
        match limit {
            Limit::Invocations => limits.max_live_invocations = size(value),
            Limit::Functions => limits.max_functions_per_tenant = size(value),
            Limit::Compositions => limits.max_compositions_per_tenant = size(value),
            Limit::ImageBytes => limits.max_image_bytes = size(value),
            Limit::InvocationMs => limits.max_invocation_ms = value,
            Limit::TenantMemory => limits.memory.heap = value,
            Limit::TenantSandboxMemory => limits.memory.frames = value,
            Limit::AnyPartitions => limits.plan.any_partitions = size(value),
        }
        log::info!("config: limit {} {value}", limit.name());
    }
    log::info!("plan: adaptive inputs (anyEach, anyKeyed) aim at {} instance(s)", limits.plan.any_partitions);
    log::info!(
        "memory: each of {tenants} tenant(s) may hold {} of heap and {} of sandbox frames",
        kcore::units::Bytes(limits.memory.heap),
        kcore::units::Bytes(limits.memory.frames)
    );
    limits
}
