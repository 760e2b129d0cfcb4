//! The syntax tree of a composition program, as the parser produces it and the checker and the
//! planner read it. Every name carries its source position so errors can point at it.

use alloc::string::String;
use alloc::vec::Vec;

/// A position in the source text: 1-based line and column (in characters), and the byte offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
    pub offset: usize,
}

/// A name as written, with where it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ident {
    pub name: String,
    pub pos: Pos,
}

/// A whole program: declarations and compositions in source order.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Program {
    pub functions: Vec<FunctionDecl>,
    pub compositions: Vec<Composition>,
}

/// `function name (in1, in2) => (out1);` — binds to a registered function's sets by position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionDecl {
    pub name: Ident,
    pub inputs: Vec<Ident>,
    pub outputs: Vec<Ident>,
}

/// `composition name (A, B) => (C) { application; … }`: a function whose body is a dataflow graph.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Composition {
    pub name: Ident,
    pub inputs: Vec<Ident>,
    pub outputs: Vec<Ident>,
    pub body: Vec<Application>,
}

/// `f (param = [optional] KEYWORD set, …) => (new_set = out_param, …) [by A JOIN B …];`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Application {
    /// The applied function or composition.
    pub function: Ident,
    pub args: Vec<Argument>,
    pub outputs: Vec<OutputBinding>,
    pub join: Option<JoinClause>,
}

/// `param = [optional] KEYWORD set`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Argument {
    /// The function's input set name (from its declaration).
    pub param: Ident,
    /// With `optional` the function also runs when `set` is empty; without it an empty input
    /// skips the function and its outputs become empty sets.
    pub optional: bool,
    pub distribution: Distribution,
    /// The composition set read.
    pub set: Ident,
}

/// How an input set is spread over instances.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Distribution {
    /// The whole set to every instance.
    All,
    /// One instance per item.
    Each,
    /// One instance per distinct key.
    Keyed,
}

/// `new_set = out_param`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputBinding {
    /// The composition set defined by this application.
    pub set: Ident,
    /// The function's output set name (from its declaration).
    pub param: Ident,
}

/// `by A inner B left C`: keyed combinations filtered left to right.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinClause {
    pub first: Ident,
    pub rest: Vec<(JoinKind, Ident)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinKind {
    Inner,
    Left,
    Right,
    /// `outer`, also spelled `full`.
    Outer,
    /// Every combination: the default without `by`.
    Cross,
}
