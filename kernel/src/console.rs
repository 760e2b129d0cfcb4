//! The kernel console: whole lines to the architecture's serial port, and the `log` facade
//! on top with a level filter and a seconds-since-boot timestamp.
//!
//! Lines are written under one lock so that they never interleave. Trap and panic reports use
//! [`emergency_println`], which gives up waiting for the lock (its holder may be the very code
//! that faulted) rather than deadlock.

use core::fmt::{self, Write};

use kcore::cmdline::{CmdlineError, CommandLine, LogLevel};
use spin::Mutex;

use crate::{arch, time};

static LOCK: Mutex<()> = Mutex::new(());

struct Serial;

impl Write for Serial {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        arch::console_write(s.as_bytes());
        Ok(())
    }
}

/// Prints one line, whole.
pub fn println(args: fmt::Arguments<'_>) {
    let _guard = LOCK.lock();
    let _ = writeln!(Serial, "{args}");
}

/// Prints one line even if the console lock is held (by a CPU that may never let it go).
pub fn emergency_println(args: fmt::Arguments<'_>) {
    let mut guard = None;
    for _ in 0..1_000_000 {
        if let Some(g) = LOCK.try_lock() {
            guard = Some(g);
            break;
        }
        core::hint::spin_loop();
    }
    let _ = writeln!(Serial, "{args}");
    drop(guard);
}

struct Logger;

static LOGGER: Logger = Logger;

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let (secs, micros) = match time::micros_since_boot() {
            Some(us) => (us / 1_000_000, us % 1_000_000),
            None => (0, 0),
        };
        let target = record.target().strip_prefix("pappus_kernel::").unwrap_or(record.target());
        println(format_args!("[{secs:5}.{micros:06}] {:<5} {target}: {}", record.level(), record.args()));
    }

    fn flush(&self) {}
}

/// Installs the logger at the level the command line asks for. Returns the command line's
/// error, if any, for the caller to report once the console is up.
pub fn init<'a>(cmdline: &CommandLine<'a>) -> Option<CmdlineError<'a>> {
    let (level, err) = match cmdline.log_level() {
        Ok(level) => (level, None),
        Err(e) => (LogLevel::Info, Some(e)),
    };
    // Only fails if a logger is already set, which would be a boot-order bug worth ignoring.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(match level {
        LogLevel::Error => log::LevelFilter::Error,
        LogLevel::Warn => log::LevelFilter::Warn,
        LogLevel::Info => log::LevelFilter::Info,
        LogLevel::Debug => log::LevelFilter::Debug,
        LogLevel::Trace => log::LevelFilter::Trace,
    });
    err
}
