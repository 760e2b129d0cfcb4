//! The boot configuration: any bytes parse or give an error naming a line, never a panic; the
//! tables of a configuration that parses answer lookups.
#![no_main]

use libfuzzer_sys::fuzz_target;
use model::BootConfig;

fuzz_target!(|data: &[u8]| {
    match BootConfig::parse(data) {
        Ok(config) => {
            let _ = config.tenants.lookup(data);
            let _ = config.operator.authenticate(Some(data));
            for (id, name) in config.tenants.tenants() {
                assert_eq!(config.tenants.find(name), Some(id));
            }
        }
        Err(e) => {
            let message = e.to_string();
            assert!(message.starts_with("boot configuration"), "{message}");
        }
    }
});
