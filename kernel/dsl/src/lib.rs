//! The composition language (compatible with Dandelion's): parser, syntax tree, semantic checks.
//! `no_std` + `alloc`; everything here runs and is tested on the host.
//!
//! ```text
//! function grep (lines) => (matches);
//! function topk (counts) => (top);
//! function HTTP (requests) => (responses);
//! composition top_errors (urls) => (report) {
//!     HTTP (requests = each urls) => (pages = responses);
//!     grep (lines = each pages) => (hits = matches);
//!     topk (counts = all hits) => (report = top);
//! }
//! ```
//!
//! [`parse`] turns source text into a [`Program`], [`check()`] finds what is wrong with its meaning,
//! and `Display` on a [`Program`] prints canonical source that parses back to the same program.
//!
//! # Grammar
//!
//! ```text
//! program      = { function | composition } ;
//! function     = "function" name signature ";" ;
//! composition  = "composition" name signature "{" { application } "}" ;
//! signature    = names "=>" names ;
//! names        = "(" [ name { "," name } ] ")" ;
//! application  = name "(" [ argument { "," argument } ] ")"
//!                "=>" "(" [ binding { "," binding } ] ")" [ join ] ";" ;
//! argument     = name "=" [ "optional" ] distribution name ;    (* input = set read *)
//! distribution = "all" | "each" | "keyed" | "anyEach" | "anyKeyed" ;
//! binding      = name "=" name ;                               (* set defined = output *)
//! join         = "by" name { join_kind name } ;
//! join_kind    = "inner" | "left" | "right" | "outer" | "full" | "cross" ;
//! name         = ( letter | "_" ) { letter | digit | "_" } ;   (* ASCII letters and digits *)
//! ```
//!
//! Between tokens go any Unicode whitespace, `// line comments` and `/* block comments */` (not
//! nested); a leading byte order mark is skipped. Keywords are reserved nowhere: a set may be called `left` or `all`, and context tells
//! keyword from name, as in Dandelion. Lists may be empty; a trailing comma is an error.
//!
//! # Meaning
//!
//! A function declaration names a registered function's input and output sets; the names bind to
//! the registered sets by position, so they may be descriptive. A composition has the same shape,
//! so compositions nest: an application may name a declared function or an earlier composition.
//! Its body is a dataflow graph, not a sequence: each application runs once all the sets it reads
//! exist. A composition set is defined by the signature (an input) or by exactly one output
//! binding, and may be read by any number of applications. An argument gives the whole set to
//! every instance (`all`), one item to each instance (`each`), the items of one key to each
//! instance (`keyed`), or, adaptively, a run of consecutive items (`anyEach`) or of whole key
//! groups (`anyKeyed`) to each instance, the platform choosing how many instances (the planner
//! does, docs/compositions.md). Several distributed arguments combine as a cross product; `by A k B k' C`
//! instead matches the keys of keyed arguments, left to right: `inner` keeps keys present on both
//! sides, `left`/`right` every key of that side, `outer` (or `full`) every key of either side,
//! `cross` every pair (the default). A name in `by` is an argument's input name or, failing that,
//! the set it reads ([`ast::Application::join_argument`]). A `by` chain joins `keyed` or
//! `anyKeyed` arguments, not both, and `cross` does not join `anyKeyed` ones. Without `optional`, an empty input set
//! skips the function and its outputs become empty sets; with it the function runs on the empty
//! set. An input left out of an application is legal (a warning), as in Dandelion.
//!
//! # Differences from Dandelion's parser
//!
//! docs/compositions.md lists every difference from Dandelion's language with its reason; in
//! this crate: a keyword must stand alone (Dandelion's `dparser` matches keywords as prefixes, so
//! it reads `eachx` as `each x`); `outer` as well as `full`, comments and a leading byte order
//! mark are accepted; `by` names an input or the set it reads; a `by` chain of `anyKeyed`
//! arguments may not use `cross` (Dandelion's builder panics on any `cross`); parse errors come
//! back as values.

#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

pub mod ast;
mod check;
mod diagnostic;
mod graph;
mod lexer;
mod parser;
mod print;

pub use ast::{Pos, Program};
pub use check::{CheckOptions, MAX_CHECK_DIAGNOSTICS, Signature, check, check_with};
pub use diagnostic::{Diagnostic, Severity};
pub use parser::MAX_PARSE_ERRORS;

/// The longest program [`parse`] accepts, in bytes. Parsing is linear, so this bounds the time
/// and memory one upload can cost; the kernel may refuse longer bodies before reading them.
pub const MAX_SOURCE_LEN: usize = 1 << 20;

/// Parses a whole program. On failure returns the syntax errors (at least one, at most
/// [`MAX_PARSE_ERRORS`]), in source order, each `expected X, found Y`. Refuses sources longer
/// than [`MAX_SOURCE_LEN`] without looking at them.
pub fn parse(src: &str) -> Result<Program, Vec<Diagnostic>> {
    if src.len() > MAX_SOURCE_LEN {
        let message = format!("program is {} bytes, more than the limit of {MAX_SOURCE_LEN}", src.len());
        return Err(vec![Diagnostic::error(ast::Pos::START, message)]);
    }
    parser::parse_program(src)
}
