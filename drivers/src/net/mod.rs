//! Network interface drivers, each exposed to smoltcp as a `phy::Device`.

pub mod checksum;
pub mod virtio;
