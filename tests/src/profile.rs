//! The kernel profiler's samples on the host: the dump `GET /v1/profile` returns
//! (`kernel/src/profile.rs`), symbolized against the kernel ELF and folded into stacks
//! (`cargo xtask profile`, and the QEMU test that checks the samples land in kernel code).
//!
//! The dump, one line each:
//! ```text
//! pappus-profile 1 arch=x86_64 interval=10007 no_ring=0
//! cpu 0 kernel=1367 sandbox=0 idle=2754 dropped=0 discarded=310
//! k 0 ffffffff80250e01 ffffffff80238e31 ffffffff8024cfbf
//! s 0 ffffffff80261234 ffffffff80238e31
//! end more=0
//! ```
//! `k CPU RIP RET...`: a kernel sample, the interrupted instruction and then return addresses,
//! innermost first; `s CPU RET...`: a sandbox ran, the return addresses of the kernel frames
//! under its entry. `more=1`: the kernel has more samples; ask again.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// What a sample interrupted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Kernel,
    Sandbox,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    pub cpu: u32,
    pub kind: Kind,
    /// Innermost first: for a kernel sample the interrupted instruction, then return addresses.
    pub addrs: Vec<u64>,
}

/// One CPU's counters from the dump's `cpu` line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CpuCounts {
    pub cpu: u32,
    pub counts: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dump {
    pub interval: u64,
    pub cpus: Vec<CpuCounts>,
    pub samples: Vec<Sample>,
    /// The kernel has more samples than this reply carried.
    pub more: bool,
}

fn hex(word: &str) -> Result<u64, String> {
    u64::from_str_radix(word, 16).map_err(|_| format!("not a hex address: {word:?}"))
}

/// Parses one reply of `GET /v1/profile`. Refuses anything that does not follow the format,
/// a reply cut short (no `end` line) included.
pub fn parse(text: &str) -> Result<Dump, String> {
    let mut lines = text.lines();
    let head = lines.next().ok_or("empty profile")?;
    let mut words = head.split_whitespace();
    if words.next() != Some("pappus-profile") || words.next() != Some("1") {
        return Err(format!("not a version-1 profile: {head:?}"));
    }
    let mut dump = Dump::default();
    for w in words {
        if let Some(v) = w.strip_prefix("interval=") {
            dump.interval = v.parse().map_err(|_| format!("bad interval in {head:?}"))?;
        }
    }
    let mut ended = false;
    for line in lines {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("cpu") => {
                let cpu = words.next().and_then(|c| c.parse().ok()).ok_or(format!("bad cpu line {line:?}"))?;
                let mut counts = BTreeMap::new();
                for w in words {
                    let (k, v) = w.split_once('=').ok_or(format!("bad counter {w:?}"))?;
                    counts.insert(k.to_string(), v.parse().map_err(|_| format!("bad counter {w:?}"))?);
                }
                dump.cpus.push(CpuCounts { cpu, counts });
            }
            Some(tag @ ("k" | "s")) => {
                let cpu = words.next().and_then(|c| c.parse().ok()).ok_or(format!("bad sample {line:?}"))?;
                let addrs = words.map(hex).collect::<Result<Vec<_>, _>>()?;
                let kind = if tag == "k" { Kind::Kernel } else { Kind::Sandbox };
                if kind == Kind::Kernel && addrs.is_empty() {
                    return Err(format!("a kernel sample without an address: {line:?}"));
                }
                dump.samples.push(Sample { cpu, kind, addrs });
            }
            Some("end") => {
                dump.more = words.next() == Some("more=1");
                ended = true;
            }
            _ => return Err(format!("unexpected line in the profile: {line:?}")),
        }
    }
    if !ended {
        return Err("the profile has no `end` line (cut short?)".into());
    }
    Ok(dump)
}

/// Names for code addresses.
pub trait Symbolize {
    /// The functions at `addr`, outermost first (a function, then what was inlined into it, down
    /// to the innermost). `ret`: `addr` is a return address, so the call is the byte before it.
    fn frames(&mut self, addr: u64, ret: bool) -> Vec<String>;
}

/// Symbolizes against an ELF's DWARF (inlined frames named), else its symbol table, else the
/// address in hex. Names are demangled without their hashes.
pub struct Elf {
    loader: addr2line::Loader,
    cache: HashMap<(u64, bool), Vec<String>>,
    /// The executable sections' address ranges.
    text: Vec<(u64, u64)>,
}

impl Elf {
    pub fn open(path: &Path) -> Result<Self, String> {
        let loader = addr2line::Loader::new(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let text = text_ranges(&data)?;
        Ok(Self { loader, cache: HashMap::new(), text })
    }

    /// Whether `addr` lies in an executable section.
    pub fn in_text(&self, addr: u64) -> bool {
        self.text.iter().any(|&(lo, hi)| (lo..hi).contains(&addr))
    }
}

/// The address ranges of an ELF's executable sections.
pub fn text_ranges(elf: &[u8]) -> Result<Vec<(u64, u64)>, String> {
    use object::{Object, ObjectSection, SectionKind};
    let file = object::File::parse(elf).map_err(|e| format!("not an ELF: {e}"))?;
    Ok(file
        .sections()
        .filter(|s| s.kind() == SectionKind::Text)
        .map(|s| (s.address(), s.address() + s.size()))
        .collect())
}

/// The address of the symbol whose demangled name (without hash) is `name`.
pub fn symbol_address(elf: &[u8], name: &str) -> Option<u64> {
    use object::{Object, ObjectSymbol};
    let file = object::File::parse(elf).ok()?;
    file.symbols().find(|s| s.name().is_ok_and(|n| demangle(n) == name)).map(|s| s.address())
}

/// A Rust symbol name demangled, without its hash; other names as they are.
pub fn demangle(name: &str) -> String {
    format!("{:#}", rustc_demangle::demangle(name))
}

impl Symbolize for Elf {
    fn frames(&mut self, addr: u64, ret: bool) -> Vec<String> {
        if let Some(hit) = self.cache.get(&(addr, ret)) {
            return hit.clone();
        }
        let probe = if ret { addr.wrapping_sub(1) } else { addr };
        let mut names = Vec::new();
        if let Ok(mut frames) = self.loader.find_frames(probe) {
            while let Ok(Some(frame)) = frames.next() {
                if let Some(f) = frame.function
                    && let Ok(raw) = f.raw_name()
                {
                    names.push(demangle(&raw));
                }
            }
        }
        if names.is_empty()
            && let Some(sym) = self.loader.find_symbol(probe)
        {
            names.push(demangle(sym));
        }
        if names.is_empty() {
            names.push(format!("{addr:#x}"));
        }
        // addr2line gives the innermost (inlined) frame first.
        names.reverse();
        let names: Vec<String> = names.into_iter().map(|n| n.replace(';', ":")).collect();
        self.cache.insert((addr, ret), names.clone());
        names
    }
}

/// The leaf frame of a sandbox sample.
pub const SANDBOX_FRAME: &str = "[sandbox]";

/// A sample's stack, outermost first, every inlined frame named.
pub fn stack(sample: &Sample, symbols: &mut dyn Symbolize) -> Vec<String> {
    let mut out = Vec::new();
    for (i, &addr) in sample.addrs.iter().enumerate().rev() {
        // A kernel sample's first address is where it was interrupted; the rest return there.
        let ret = !(i == 0 && sample.kind == Kind::Kernel);
        out.extend(symbols.frames(addr, ret));
    }
    if sample.kind == Kind::Sandbox {
        out.push(SANDBOX_FRAME.to_string());
    }
    out
}

/// Folded stacks (`outer;...;leaf count`, one per distinct stack, sorted) and the samples left
/// out because a frame matched `exclude` (the profiler's own dump, say).
pub struct Folded {
    pub stacks: BTreeMap<String, u64>,
    pub excluded: u64,
    /// Samples by the function whose code was running, inlined code counted in the function it
    /// was inlined into (what a symbol table names; `perf report` without inlining).
    pub functions: BTreeMap<String, u64>,
}

pub fn fold(samples: &[Sample], symbols: &mut dyn Symbolize, exclude: &[&str]) -> Folded {
    let mut stacks = BTreeMap::new();
    let mut functions = BTreeMap::new();
    let mut excluded = 0;
    for sample in samples {
        let frames = stack(sample, symbols);
        if frames.iter().any(|f| exclude.iter().any(|x| f.contains(x))) {
            excluded += 1;
            continue;
        }
        *stacks.entry(frames.join(";")).or_insert(0) += 1;
        let function = match (sample.kind, sample.addrs.first()) {
            (Kind::Kernel, Some(&rip)) => symbols.frames(rip, false).swap_remove(0),
            _ => SANDBOX_FRAME.to_string(),
        };
        *functions.entry(function).or_insert(0) += 1;
    }
    Folded { stacks, excluded, functions }
}

impl Folded {
    /// The lines of a `.folded` file (inferno's and flamegraph.pl's input).
    pub fn lines(&self) -> Vec<String> {
        self.stacks.iter().map(|(s, n)| format!("{s} {n}")).collect()
    }

    pub fn total(&self) -> u64 {
        self.stacks.values().sum()
    }

    /// Functions by self samples, inlined code counted in the function it was inlined into,
    /// most first, ties by name.
    pub fn top_self(&self, n: usize) -> Vec<(String, u64)> {
        top(self.functions.iter().map(|(k, &c)| (k.as_str(), c)), n)
    }

    /// Like [`Self::top_self`], by the innermost frame (an inlined function counts apart from
    /// the function it was inlined into).
    pub fn top_self_inlined(&self, n: usize) -> Vec<(String, u64)> {
        top(self.stacks.iter().map(|(stack, &c)| (stack.rsplit(';').next().unwrap_or(stack), c)), n)
    }

    /// Functions by samples that have them anywhere on the stack (each counted once per
    /// sample), most first.
    pub fn top_total(&self, n: usize) -> Vec<(String, u64)> {
        top(
            self.stacks.iter().flat_map(|(stack, &c)| {
                let mut seen: Vec<&str> = stack.split(';').collect();
                seen.sort_unstable();
                seen.dedup();
                seen.into_iter().map(move |f| (f, c))
            }),
            n,
        )
    }
}

/// Sums counts by name; the `n` largest, most first, ties by name.
fn top<'a>(counts: impl Iterator<Item = (&'a str, u64)>, n: usize) -> Vec<(String, u64)> {
    let mut by: HashMap<&str, u64> = HashMap::new();
    for (name, c) in counts {
        *by.entry(name).or_insert(0) += c;
    }
    let mut v: Vec<(String, u64)> = by.into_iter().map(|(k, c)| (k.to_string(), c)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(n);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = "pappus-profile 1 arch=x86_64 interval=10007 no_ring=0\n\
        cpu 0 kernel=3 sandbox=1 idle=9 dropped=0 discarded=2\n\
        k 0 1005 2001 3001\n\
        k 0 1006 2001 3001\n\
        k 0 1100 3001\n\
        s 0 4001 3001\n\
        end more=0\n";

    /// Addresses 0x1000.. are `leaf` (inlined `inner` at 0x1005..), 0x2000 `mid`, 0x3000
    /// `main`, 0x4000 `enter_user`; a return address names the call before it.
    struct Fake(Vec<(u64, bool)>);

    impl Symbolize for Fake {
        fn frames(&mut self, addr: u64, ret: bool) -> Vec<String> {
            self.0.push((addr, ret));
            let a = if ret { addr - 1 } else { addr };
            let v: &[&str] = match a {
                0x1005..=0x10ff => &["leaf", "inner"],
                0x1000..=0x10ff => &["leaf"],
                0x1100..=0x11ff => &["other"],
                0x2000..=0x2fff => &["mid"],
                0x3000..=0x3fff => &["main"],
                0x4000..=0x4fff => &["enter_user"],
                _ => &["?"],
            };
            v.iter().map(|s| s.to_string()).collect()
        }
    }

    #[test]
    fn parses_the_dump() {
        let d = parse(DUMP).unwrap();
        assert_eq!(d.interval, 10007);
        assert!(!d.more);
        assert_eq!(d.cpus.len(), 1);
        assert_eq!(d.cpus[0].counts["idle"], 9);
        assert_eq!(d.samples.len(), 4);
        assert_eq!(d.samples[0], Sample { cpu: 0, kind: Kind::Kernel, addrs: vec![0x1005, 0x2001, 0x3001] });
        assert_eq!(d.samples[3].kind, Kind::Sandbox);
        assert!(parse(&DUMP.replace("end more=0", "end more=1")).unwrap().more);
    }

    #[test]
    fn refuses_what_is_not_a_dump() {
        for bad in [
            "",
            "hello\nend more=0\n",
            "pappus-profile 2\nend more=0\n",
            "pappus-profile 1 interval=5\nk 0 xyz\nend more=0\n",
            "pappus-profile 1 interval=5\nk 0\nend more=0\n",
            "pappus-profile 1 interval=5\nk 0 1000\n",
            "pappus-profile 1 interval=5\nwhat 0 1000\nend more=0\n",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn folds_outermost_first_with_inlined_frames_and_return_addresses() {
        let d = parse(DUMP).unwrap();
        let mut fake = Fake(Vec::new());
        let folded = fold(&d.samples, &mut fake, &[]);
        assert_eq!(
            folded.lines(),
            [
                "main;enter_user;[sandbox] 1",
                "main;mid;leaf;inner 2", // 0x1005 and 0x1006 are both in `inner`
                "main;other 1",
            ]
        );
        // The interrupted RIP is looked up as it is; return addresses as calls.
        assert!(fake.0.contains(&(0x1005, false)));
        assert!(fake.0.contains(&(0x2001, true)));
        assert!(fake.0.contains(&(0x4001, true)));
        assert_eq!(folded.total(), 4);
        assert_eq!(folded.top_self_inlined(2), [("inner".to_string(), 2), ("[sandbox]".to_string(), 1)]);
        // By function: `inner` was inlined into `leaf`.
        assert_eq!(
            folded.top_self(3),
            [("leaf".to_string(), 2), ("[sandbox]".to_string(), 1), ("other".to_string(), 1)]
        );
        assert_eq!(folded.top_total(1), [("main".to_string(), 4)]);
    }

    #[test]
    fn excludes_stacks_through_a_named_frame() {
        let d = parse(DUMP).unwrap();
        let folded = fold(&d.samples, &mut Fake(Vec::new()), &["mid"]);
        assert_eq!(folded.excluded, 2);
        assert_eq!(folded.total(), 2);
    }

    #[test]
    fn demangles_without_hashes() {
        assert_eq!(demangle("_ZN13pappus_kernel5serve7forever17h0123456789abcdefE"), "pappus_kernel::serve::forever");
        assert_eq!(demangle("pappus_halt"), "pappus_halt");
    }

    /// Against the kernel ELF `cargo xtask build` leaves, where there is one: a function's own
    /// address names it, and an address inside it (as a return address) too.
    #[test]
    fn symbolizes_the_built_kernel() {
        let Ok(path) = crate::kernel_image(crate::Arch::X86_64) else {
            eprintln!("no x86_64 kernel built: skipping the ELF check");
            return;
        };
        let data = std::fs::read(&path).unwrap();
        let addr = symbol_address(&data, "pappus_kernel::kernel_main").expect("kernel_main in the symbol table");
        let mut elf = Elf::open(&path).unwrap();
        assert!(elf.in_text(addr), "{addr:#x}");
        assert!(!elf.in_text(0x1000));
        let frames = elf.frames(addr, false);
        assert_eq!(frames.first().map(String::as_str), Some("pappus_kernel::kernel_main"), "{frames:?}");
        let inside = elf.frames(addr + 2, true);
        assert_eq!(inside.first().map(String::as_str), Some("pappus_kernel::kernel_main"), "{inside:?}");
        let halt = symbol_address(&data, "pappus_halt").expect("pappus_halt");
        assert_eq!(elf.frames(halt, false).last().map(String::as_str), Some("pappus_halt"));
    }
}
