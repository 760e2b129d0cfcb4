//! A function that does what its input items say, to test the SDK end to end through an
//! engine. Each item of input 0 is a command: its name says what, its data is the argument.
//!
//! | name     | does |
//! |----------|------|
//! | `panic`  | panics with the data as message |
//! | `fail`   | returns an error with the data as message |
//! | `alloc`  | allocates (data: decimal byte count) and writes `allocated N` to output 0 |
//! | `named`  | writes an item `named` to the output set declared as the data |
//! | `chunks` | reads the item's data 3 bytes at a time and writes it back to output 0 |
//! | `sets`   | writes the input and output set names, joined by `,`, to output 0 |
//! | `recurse`| recurses (data: decimal depth) with 512-byte frames on the shadow stack |
//! | `memory` | copies, moves (both ways, overlapping) and fills every length 0..=40 at every offset 0..8, checks each byte, writes `memory ok N` (N checks) |
//! | other    | copies the item to output 0 |
#![cfg_attr(any(target_arch = "wasm32", pappus_native), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use pappus_sdk::{Context, Error, InputItem};

pappus_sdk::entry!(main);

fn main(ctx: &mut Context) -> Result<(), Error> {
    let commands = ctx.input(0).ok_or("no input set")?;
    for item in commands.items() {
        let arg = String::from_utf8(item.data()).map_err(Error::msg)?;
        match item.name().as_str() {
            "panic" => panic!("{arg}"),
            "fail" => return Err(Error::msg(arg)),
            "alloc" => {
                let n: usize = arg.trim().parse().map_err(Error::msg)?;
                let mut block: Vec<u8> = Vec::with_capacity(n);
                block.resize(n, 1);
                let sum: usize = block.iter().map(|&b| usize::from(b)).sum();
                ctx.push(0, "alloc", None, format!("allocated {sum}").as_bytes());
            }
            "named" => ctx.output_named(&arg).ok_or("no such output")?.push("named", b""),
            "chunks" => ctx.push(0, "chunks", item.key(), &read_in_chunks(&item)),
            "sets" => {
                let mut names: Vec<String> = ctx.inputs().map(|set| set.name()).collect();
                names.extend((0..ctx.output_count()).filter_map(|i| ctx.output(i)).map(|out| out.name()));
                ctx.push(0, "sets", None, names.join(",").as_bytes());
            }
            "recurse" => {
                let depth: u64 = arg.trim().parse().map_err(Error::msg)?;
                ctx.push(0, "recurse", None, format!("{}", recurse(depth)).as_bytes());
            }
            "memory" => ctx.push(0, "memory", None, format!("memory ok {}", memory()?).as_bytes()),
            _ => ctx.push(0, &item.name(), item.key(), &item.data()),
        }
    }
    Ok(())
}

/// Recursion that keeps a 512-byte frame on Rust's shadow stack (in linear memory).
fn recurse(depth: u64) -> u64 {
    let frame = core::hint::black_box([depth as u8; 512]);
    if depth == 0 {
        return u64::from(frame[0]);
    }
    recurse(depth - 1).wrapping_add(u64::from(frame[511]))
}

/// The memory functions the target's `copy_from_slice`, `copy_within` and `fill` call (the
/// SDK's `memcpy`, `memmove`, `memset` on a native build), over lengths and offsets that end
/// mid-word; every byte checked against what it must be. The number of ranges checked.
fn memory() -> Result<usize, Error> {
    let pattern = |i: usize| (i * 7 + 1) as u8;
    let mut checks = 0;
    let mut check = |buf: &[u8], want: &dyn Fn(usize) -> u8, what: &str, len: usize, at: usize| {
        checks += 1;
        match buf.iter().enumerate().find(|&(i, &b)| b != want(i)) {
            Some((i, b)) => Err(Error::msg(format!("{what} of {len} at {at}: byte {i} is {b}, not {}", want(i)))),
            None => Ok(()),
        }
    };
    for len in 0..=40usize {
        for at in 0..8usize {
            let source: Vec<u8> = (0..64).map(pattern).collect();
            let inside = |i: usize| i >= at && i < at + len;
            // memcpy: `source[3..]` to `at`.
            let mut copied = [0u8; 64];
            copied[at..at + len].copy_from_slice(&source[3..3 + len]);
            check(&copied, &|i| if inside(i) { pattern(i - at + 3) } else { 0 }, "copy", len, at)?;
            // memset.
            let mut filled = [0x11u8; 64];
            filled[at..at + len].fill(0xa5);
            check(&filled, &|i| if inside(i) { 0xa5 } else { 0x11 }, "fill", len, at)?;
            // memmove forward (to a higher address, overlapping) and backward.
            let mut up = source.clone();
            up.copy_within(at..at + len, at + 5);
            let moved_up = |i: usize| if i >= at + 5 && i < at + 5 + len { pattern(i - 5) } else { pattern(i) };
            check(&up, &moved_up, "move up", len, at)?;
            let mut down = source.clone();
            down.copy_within(at + 5..at + 5 + len, at);
            check(&down, &|i| if inside(i) { pattern(i + 5) } else { pattern(i) }, "move down", len, at)?;
        }
    }
    Ok(checks)
}

fn read_in_chunks(item: &InputItem<'_>) -> Vec<u8> {
    let mut data = Vec::new();
    let mut chunk = [0u8; 3];
    loop {
        let n = item.read(data.len() as u64, &mut chunk);
        if n == 0 {
            return data;
        }
        data.extend_from_slice(&chunk[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pappus_sdk::mock::{Mock, MockError, MockItem};

    fn probe(commands: impl IntoIterator<Item = MockItem>) -> Result<Vec<MockItem>, MockError> {
        Mock::new().input("cmd", commands).input("other", []).output("out").output("side").run(main).map(|mut sets| {
            sets.truncate(1);
            sets.remove(0).items
        })
    }

    #[test]
    fn commands_work_on_the_mock() {
        let out = probe([
            MockItem::new("alloc", "10"),
            MockItem::keyed("chunks", 3, "abcdefgh"),
            MockItem::new("sets", ""),
            MockItem::new("copy", "x"),
        ])
        .unwrap();
        assert_eq!(
            out,
            [
                MockItem::new("alloc", "allocated 10"),
                MockItem::keyed("chunks", 3, "abcdefgh"),
                MockItem::new("sets", "cmd,other,out,side"),
                MockItem::new("copy", "x"),
            ]
        );
        assert_eq!(probe([MockItem::new("fail", "nope")]), Err(MockError::Failed(Error::new("nope"))));
    }
}
