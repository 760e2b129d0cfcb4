//! The boot configuration: what a node needs that a command line should not show.
//!
//! Today it holds the tenants and their bearer tokens, one per line (`tenant <name> <token>`,
//! `#` comments; the format is `model::TokenTable`'s and docs/configuration.md describes it).
//! QEMU passes the file as a PVH module (`-initrd`, which `cargo xtask run` does); the UEFI
//! loader will pass it in its boot block. Without one the node serves no tenant: every `/v1`
//! request is answered 401, and the boot log says why.

use model::TokenTable;

use crate::boot::BootInfo;
use crate::mm;

pub fn tenants(info: &BootInfo) -> TokenTable {
    let Some(range) = info.config else {
        log::warn!("no boot configuration; no tenants, so every /v1 request gets 401");
        return TokenTable::default();
    };
    let text = mm::copy_boot_data(range);
    match TokenTable::parse(&text) {
        Ok(table) => {
            log::info!("{} tenant(s) from the boot configuration ({} bytes)", table.len(), text.len());
            table
        }
        Err(e) => {
            log::error!("boot configuration refused: {e}; no tenants");
            TokenTable::default()
        }
    }
}
