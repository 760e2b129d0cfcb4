//! The PCI bus as the kernel sees it: one [`ConfigSpace`] (ECAM where the platform describes a
//! window, the legacy x86 ports otherwise), the scan for the NIC, BARs placed where no firmware
//! did, and the NIC's capabilities for the boot log.

use core::ptr::NonNull;

use drivers::net::virtio::{self, CommonConfig};
use drivers::pci::{
    self, BarAllocator, ConfigSpace, DeviceFunction, Ecam, MsiMessage, Msix, MsixTable, PciHost, PciRoot,
};
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
        // kernel's only configuration access, and the two handles are used one at a time, on
        // the boot CPU (the clone reads bridges and BARs, and turns the NIC's MSI-X on).
        let cams = unsafe { (Ecam::new(base, &window), Ecam::new(base, &window)) };
        return Some((ConfigSpace::Ecam(cams.0), ConfigSpace::Ecam(cams.1)));
    }
    #[cfg(target_arch = "x86_64")]
    {
        log::info!("pci: no ECAM window ({}); legacy configuration ports 0xcf8/0xcfc", host.source);
        // SAFETY: x86 PCs have the configuration ports; this is the kernel's only configuration
        // access, and the two handles are used one at a time, on the boot CPU.
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
    /// A second handle on the configuration space, for what `PciRoot` does not do (reading
    /// bridges and BARs, turning MSI-X on).
    cam: ConfigSpace,
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
    Some(FoundNic { root, cam: reader, function, msix })
}

/// The MSI-X entry the receive queue signals.
const RECEIVE_ENTRY: u16 = 0;

/// The NIC's receive queue as an interrupt on the I/O core: masked while the I/O loop polls,
/// open while it sleeps, so that a frame ends the sleep at once (instead of at the next timer
/// tick) and costs no interrupt while the loop is awake.
pub struct ReceiveInterrupt {
    table: MsixTable,
}

impl ReceiveInterrupt {
    /// Lets the receive queue interrupt; a frame that came while masked is signalled now.
    pub fn open(&mut self) {
        self.table.set_masked(RECEIVE_ENTRY, false);
    }

    pub fn close(&mut self) {
        self.table.set_masked(RECEIVE_ENTRY, true);
    }
}

/// Routes the NIC's receive queue to `message` through MSI-X entry 0, masked. Must follow the
/// transport's initialisation (its device reset clears the queue's vector); the error says
/// why not, for the boot log.
pub fn route_receive_interrupt(nic: &mut FoundNic, message: MsiMessage) -> Result<ReceiveInterrupt, &'static str> {
    let msix = nic.msix.ok_or("no MSI-X")?;
    let table_at =
        pci::msix_table_address(&nic.cam, nic.function, &msix).ok_or("the MSI-X table's BAR is unassigned")?;
    let common_at = virtio::common_config_address(&nic.root, &nic.cam, nic.function)
        .ok_or("no virtio common configuration in a memory BAR")?;
    let table = NonNull::new(arch::map_mmio(table_at, 16 * u64::from(msix.vectors))).ok_or("unmapped MSI-X table")?;
    // SAFETY: `map_mmio` mapped the whole table uncached; the NIC's driver never touches it.
    let mut table = unsafe { MsixTable::new(table, msix.vectors) };
    if !table.route(RECEIVE_ENTRY, message) {
        return Err("the MSI-X table has no entry 0");
    }
    pci::enable_msix(&mut nic.cam, nic.function, &msix);
    let common = NonNull::new(arch::map_mmio(common_at, COMMON_CONFIG_LEN)).ok_or("unmapped common configuration")?;
    // SAFETY: mapped uncached just above; the transport is idle while this selects a queue (it
    // selects the queue it wants before each queue access of its own).
    let mut common = unsafe { CommonConfig::new(common) };
    if !common.set_queue_vector(virtio::RECEIVE_QUEUE, RECEIVE_ENTRY) {
        return Err("the device refused a vector for its receive queue");
    }
    Ok(ReceiveInterrupt { table })
}

/// The common configuration structure's length (virtio 1.2: 0x40 bytes with its newest fields).
const COMMON_CONFIG_LEN: u64 = 0x40;
