//! The PCI bus as the kernel sees it: one [`ConfigSpace`] (ECAM where the platform describes a
//! window, the legacy x86 ports otherwise), the scan for the NIC, BARs placed where no firmware
//! did, and the NIC's capabilities for the boot log.

use core::ptr::NonNull;

use drivers::pci::{self, BarAllocator, ConfigSpace, DeviceFunction, Ecam, Msix, PciHost, PciRoot};
use virtio_drivers::transport::DeviceType;
use virtio_drivers::transport::pci::bus::Command;
use virtio_drivers::transport::pci::virtio_device_type;

use crate::arch;
use crate::boot::BootInfo;

/// The configuration access for this platform, with the log line saying which one it is.
fn config_space(host: &PciHost) -> Option<(ConfigSpace, ConfigSpace)> {
    if let Some(window) = host.ecam {
        let base = arch::map_mmio(window.phys, window.size());
        log::info!("pci: ECAM at {window} from {}", host.source);
        let base = NonNull::new(base).expect("MMIO mapping is never null");
        // SAFETY: `map_mmio` mapped the whole window uncached (device memory); this is the
        // kernel's only configuration access, and the clone only reads bridges' bus numbers.
        let cams = unsafe { (Ecam::new(base, &window), Ecam::new(base, &window)) };
        return Some((ConfigSpace::Ecam(cams.0), ConfigSpace::Ecam(cams.1)));
    }
    #[cfg(target_arch = "x86_64")]
    {
        log::info!("pci: no ECAM window ({}); legacy configuration ports 0xcf8/0xcfc", host.source);
        // SAFETY: x86 PCs have the configuration ports; this is the kernel's only configuration
        // access (the clone only reads bridges).
        let cams = unsafe { (pci::PortCam::new(), pci::PortCam::new()) };
        Some((ConfigSpace::Ports(cams.0), ConfigSpace::Ports(cams.1)))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        log::warn!("pci: no PCIe host bridge ({}); no PCI devices", host.source);
        None
    }
}

/// The NIC as found on the bus: ready for `PciTransport::new`, with its MSI-X capability.
pub struct FoundNic {
    pub root: PciRoot<ConfigSpace>,
    pub function: DeviceFunction,
    pub msix: Option<Msix>,
}

/// Finds the first virtio-net function, places its BARs if need be and enables it.
pub fn find_nic(info: &BootInfo) -> Option<FoundNic> {
    let host = arch::pci_host(info);
    let (cam, reader) = config_space(&host)?;
    let mut root = PciRoot::new(cam);
    let mut nic = None;
    pci::scan(&root, &reader, |function, info| {
        log::debug!(
            "pci: {function} {:04x}:{:04x} class {:02x}.{:02x}",
            info.vendor_id,
            info.device_id,
            info.class,
            info.subclass
        );
        if nic.is_none() && virtio_device_type(info) == Some(DeviceType::Network) {
            nic = Some(function);
        }
    });
    let Some(function) = nic else {
        log::warn!("no virtio-net device on PCI; the network is off");
        return None;
    };
    if let Some(window) = host.bar_window {
        if window.pci != window.cpu {
            log::error!("pci: MMIO window {window:?} translates addresses; not supported");
            return None;
        }
        let assigned = pci::assign_bars(&mut root, function, &mut BarAllocator::new(window))
            .map_err(|e| log::error!("pci: {function}: BARs: {e}"))
            .ok()?;
        if assigned > 0 {
            log::info!(
                "pci: {function}: {assigned} BAR(s) placed in {:#x}..{:#x}",
                window.pci,
                window.pci + window.size
            );
        }
    }
    for cap in root.capabilities(function) {
        log::debug!(
            "pci: {function} capability {:#04x} ({}) at {:#x}",
            cap.id,
            pci::capability_name(cap.id),
            cap.offset
        );
    }
    let msix = pci::msix(&root, &reader, function);
    match msix {
        Some(m) => log::debug!(
            "pci: {function} MSI-X: {} vectors, table in BAR{} at {:#x}, {}",
            m.vectors,
            m.table_bar,
            m.table_offset,
            if m.enabled { "enabled" } else { "disabled (poll mode)" }
        ),
        None => log::debug!("pci: {function} has no MSI-X"),
    }
    root.set_command(function, Command::MEMORY_SPACE | Command::BUS_MASTER);
    Some(FoundNic { root, function, msix })
}
