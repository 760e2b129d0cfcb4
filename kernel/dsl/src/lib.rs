//! The composition language (compatible with Dandelion's): parser, syntax tree, semantic checks.
//! `no_std` + `alloc`; everything here runs and is tested on the host.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod ast;
