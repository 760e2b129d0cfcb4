//! PCI configuration space access and bus enumeration.
//!
//! Enumeration, BARs and capabilities come from `virtio-drivers`' PCI module (`PciRoot`), which
//! is generic over how configuration space is reached; this module supplies the access
//! mechanisms: the legacy x86 ports 0xCF8/0xCFC here, ECAM through `MmioCam` where ACPI's MCFG
//! gives a window (and on Arm's `virt`).

pub use virtio_drivers::transport::pci::bus::{
    BarInfo, Cam, ConfigurationAccess, DeviceFunction, DeviceFunctionInfo, HeaderType, MemoryBarType, MmioCam, PciRoot,
};

/// Configuration mechanism #1: an address written to port 0xCF8 selects a dword that port 0xCFC
/// then reads or writes. Reaches the first 256 bytes of every function, which is all that
/// enumeration and virtio's capabilities need.
#[cfg(target_arch = "x86_64")]
#[derive(Debug)]
pub struct PortCam {
    _private: (),
}

#[cfg(target_arch = "x86_64")]
impl PortCam {
    /// # Safety
    /// Only one `PortCam` may be in use at a time (the address/data port pair is shared state),
    /// and the platform must have PCI configuration ports.
    pub const unsafe fn new() -> Self {
        Self { _private: () }
    }

    fn select(function: DeviceFunction, register_offset: u8) {
        let address = 0x8000_0000
            | u32::from(function.bus) << 16
            | u32::from(function.device) << 11
            | u32::from(function.function) << 8
            | u32::from(register_offset & 0xfc);
        // SAFETY: writing CONFIG_ADDRESS only selects a register (constructor contract).
        unsafe { core::arch::asm!("out dx, eax", in("dx") 0xcf8u16, in("eax") address, options(nomem, nostack)) };
    }
}

#[cfg(target_arch = "x86_64")]
impl ConfigurationAccess for PortCam {
    fn read_word(&self, function: DeviceFunction, register_offset: u8) -> u32 {
        Self::select(function, register_offset);
        let value: u32;
        // SAFETY: reading CONFIG_DATA after selecting a register.
        unsafe { core::arch::asm!("in eax, dx", in("dx") 0xcfcu16, out("eax") value, options(nomem, nostack)) };
        value
    }

    fn write_word(&mut self, function: DeviceFunction, register_offset: u8, data: u32) {
        Self::select(function, register_offset);
        // SAFETY: writing CONFIG_DATA after selecting a register; the caller owns the device.
        unsafe { core::arch::asm!("out dx, eax", in("dx") 0xcfcu16, in("eax") data, options(nomem, nostack)) };
    }

    unsafe fn unsafe_clone(&self) -> Self {
        Self { _private: () }
    }
}

/// Every function on every bus reachable from bus 0 through PCI-to-PCI bridges. `cam` reads
/// the bridges' bus numbers (a read-only clone of the root's access).
pub fn scan<C: ConfigurationAccess>(
    root: &PciRoot<C>,
    cam: &C,
    mut visit: impl FnMut(DeviceFunction, &DeviceFunctionInfo),
) {
    let mut buses = [false; 256];
    let mut pending: [u8; 256] = [0; 256];
    let mut todo = 1; // bus 0
    buses[0] = true;
    while todo > 0 {
        todo -= 1;
        let bus = pending[todo];
        for (function, info) in root.enumerate_bus(bus) {
            if info.header_type == HeaderType::PciPciBridge {
                // Secondary bus number: byte 1 of the dword at 0x18.
                let secondary = (cam.read_word(function, 0x18) >> 8) as u8;
                if !buses[usize::from(secondary)] {
                    buses[usize::from(secondary)] = true;
                    pending[todo] = secondary;
                    todo += 1;
                }
            }
            visit(function, &info);
        }
    }
}
