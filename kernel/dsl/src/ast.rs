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
    /// Dandelion's adaptive `each`: the items are split into groups of consecutive items, one
    /// instance per group; the platform picks how many groups (between one, the whole set, and
    /// one per item) from the cores it has (see `planner`'s `PlanLimits::any_partitions`).
    AnyEach,
    /// Dandelion's adaptive `keyed`: like [`Distribution::AnyEach`] over key groups, so an
    /// instance gets one or more whole key groups, never part of one.
    AnyKeyed,
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

impl Pos {
    /// The first character of a source text.
    pub const START: Pos = Pos { line: 1, col: 1, offset: 0 };
}

impl Ident {
    /// A name at a position; handy for building programs in code and tests.
    pub fn new(name: impl Into<String>, pos: Pos) -> Self {
        Self { name: name.into(), pos }
    }

    pub fn as_str(&self) -> &str {
        &self.name
    }
}

impl Distribution {
    /// The keyword that spells this distribution in source.
    pub const fn keyword(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Each => "each",
            Self::Keyed => "keyed",
            Self::AnyEach => "anyEach",
            Self::AnyKeyed => "anyKeyed",
        }
    }

    /// Whether the platform chooses how many instances this distribution makes.
    pub const fn is_adaptive(self) -> bool {
        matches!(self, Self::AnyEach | Self::AnyKeyed)
    }

    /// Whether the distribution groups by key (and can be named in `by`).
    pub const fn is_keyed(self) -> bool {
        matches!(self, Self::Keyed | Self::AnyKeyed)
    }
}

impl JoinKind {
    /// The keyword the printer writes. `Outer` prints as `full`, the one spelling Dandelion's own
    /// parser accepts, so printed programs stay portable; the parser here takes `outer` too.
    pub const fn keyword(self) -> &'static str {
        match self {
            Self::Inner => "inner",
            Self::Left => "left",
            Self::Right => "right",
            Self::Outer => "full",
            Self::Cross => "cross",
        }
    }
}

impl JoinClause {
    /// The joined names in order, left to right.
    pub fn names(&self) -> impl Iterator<Item = &Ident> {
        core::iter::once(&self.first).chain(self.rest.iter().map(|(_, name)| name))
    }
}

/// What a name in a `by` clause refers to; see [`Application::join_argument`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinTarget {
    /// The argument (index into [`Application::args`]) whose `param` is the name.
    Param(usize),
    /// The one argument whose `set` is the name (no argument has it as `param`).
    Set(usize),
    /// No argument has the name as `param`, and several read it as `set`.
    Ambiguous,
    /// No argument has the name as `param` or `set`.
    Unknown,
}

impl Application {
    /// Resolves a name from the `by` clause to the argument it joins.
    ///
    /// Dandelion's runtime looks `by` names up among the function's *input names* (`param`),
    /// while its README example names the *composition sets* read. Both must keep working, so an
    /// input name wins and a set name read by exactly one argument is the fallback.
    pub fn join_target(&self, name: &str) -> JoinTarget {
        if let Some(i) = self.args.iter().position(|a| a.param.name == name) {
            return JoinTarget::Param(i);
        }
        let mut found = JoinTarget::Unknown;
        for (i, arg) in self.args.iter().enumerate() {
            if arg.set.name == name {
                if found != JoinTarget::Unknown {
                    return JoinTarget::Ambiguous;
                }
                found = JoinTarget::Set(i);
            }
        }
        found
    }

    /// The index into [`Application::args`] that a `by` name joins, when it names exactly one.
    pub fn join_argument(&self, name: &str) -> Option<usize> {
        match self.join_target(name) {
            JoinTarget::Param(i) | JoinTarget::Set(i) => Some(i),
            JoinTarget::Ambiguous | JoinTarget::Unknown => None,
        }
    }
}

impl Program {
    /// The first function declaration with this name.
    pub fn function(&self, name: &str) -> Option<&FunctionDecl> {
        self.functions.iter().find(|f| f.name.name == name)
    }

    /// The first composition with this name.
    pub fn composition(&self, name: &str) -> Option<&Composition> {
        self.compositions.iter().find(|c| c.name.name == name)
    }

    /// Sets every position to the default, so two programs can be compared by meaning alone
    /// (for example a parsed program against the parse of its printed form).
    pub fn clear_positions(&mut self) {
        fn clear(ids: &mut [Ident]) {
            ids.iter_mut().for_each(|id| id.pos = Pos::default());
        }
        for f in &mut self.functions {
            f.name.pos = Pos::default();
            clear(&mut f.inputs);
            clear(&mut f.outputs);
        }
        for c in &mut self.compositions {
            c.name.pos = Pos::default();
            clear(&mut c.inputs);
            clear(&mut c.outputs);
            for app in &mut c.body {
                app.function.pos = Pos::default();
                for arg in &mut app.args {
                    arg.param.pos = Pos::default();
                    arg.set.pos = Pos::default();
                }
                for out in &mut app.outputs {
                    out.set.pos = Pos::default();
                    out.param.pos = Pos::default();
                }
                if let Some(join) = &mut app.join {
                    join.first.pos = Pos::default();
                    join.rest.iter_mut().for_each(|(_, id)| id.pos = Pos::default());
                }
            }
        }
    }
}
