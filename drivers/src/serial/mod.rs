//! Serial consoles: the 16550 UART on x86 COM ports and the Arm PL011.

pub mod pl011;
#[cfg(target_arch = "x86_64")]
pub mod uart16550;
