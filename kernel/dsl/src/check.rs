//! Semantic checks on a parsed program: names resolve, sets are defined once and read, the
//! dataflow has no cycles, compositions do not recurse, and declarations agree with what is
//! registered.
//!
//! Everything is looked up in ordered maps and cycles are found by an iterative search, so the
//! checker's work is `O(n log n)` in the size of the program and its stack use is constant.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::ast::{Application, Composition, Ident, JoinKind, JoinTarget, Pos, Program};
use crate::diagnostic::{Diagnostic, sort_by_pos};
use crate::graph::find_cycles;

/// The shape of a function registered with the platform: how many input and output sets it has.
/// Declarations bind to these sets by position, so only the counts must agree, not the names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Signature {
    pub inputs: usize,
    pub outputs: usize,
}

/// Knobs for [`check_with`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CheckOptions {
    /// When set, a declared function the registry does not know is an error. Off by default: the
    /// kernel accepts compositions that name functions registered later, and resolves names when a
    /// composition runs.
    pub require_registered: bool,
}

/// The most diagnostics of one severity that [`check_with`] returns, past which it says how many
/// more there were.
pub const MAX_CHECK_DIAGNOSTICS: usize = 100;

/// The most cycles spelled out per graph; one suffices to reject a program.
const MAX_CYCLES: usize = 8;

/// The most names of a cycle a message spells out before eliding the middle.
const MAX_CYCLE_NAMES: usize = 10;

/// `a -> b -> a`, from the names on a cycle in order; long cycles elide their middle and end
/// with their length, so one message stays short however large the program.
fn cycle_path<'a>(names: impl ExactSizeIterator<Item = &'a str> + Clone) -> String {
    let len = names.len();
    let first = names.clone().next().unwrap_or("");
    let mut path = String::new();
    for (i, name) in names.enumerate() {
        if len > MAX_CYCLE_NAMES && i >= MAX_CYCLE_NAMES - 2 && i < len - 1 {
            if i == MAX_CYCLE_NAMES - 2 {
                path.push_str(" -> …");
            }
            continue;
        }
        if i > 0 {
            path.push_str(" -> ");
        }
        path.push_str(name);
    }
    path.push_str(" -> ");
    path.push_str(first);
    if len > MAX_CYCLE_NAMES {
        path.push_str(&format!(" ({len} on the cycle)"));
    }
    path
}

/// Checks `program` with default options; see [`check_with`].
pub fn check(
    program: &Program,
    registered: &dyn Fn(&str) -> Option<Signature>,
) -> Result<Vec<Diagnostic>, Vec<Diagnostic>> {
    check_with(program, registered, CheckOptions::default())
}

/// Checks `program`. `registered` returns the signature of the registered function of a name,
/// or `None` when there is none (yet). Returns the warnings when there are no errors, else the
/// errors; both sorted by position.
pub fn check_with(
    program: &Program,
    registered: &dyn Fn(&str) -> Option<Signature>,
    options: CheckOptions,
) -> Result<Vec<Diagnostic>, Vec<Diagnostic>> {
    let mut checker = Checker {
        program,
        diags: Vec::new(),
        names: BTreeMap::new(),
        calls: program.compositions.iter().map(|_| Vec::new()).collect(),
        function_shapes: program.functions.iter().map(|f| Shape::new(&f.inputs, &f.outputs)).collect(),
        composition_shapes: program.compositions.iter().map(|c| Shape::new(&c.inputs, &c.outputs)).collect(),
    };
    checker.declarations();
    checker.registrations(registered, options);
    for (index, composition) in program.compositions.iter().enumerate() {
        checker.composition(index, composition);
    }
    checker.recursion();
    let (errors, warnings): (Vec<_>, Vec<_>) = checker.diags.into_iter().partition(Diagnostic::is_error);
    if errors.is_empty() { Ok(first(warnings, "warnings")) } else { Err(first(errors, "errors")) }
}

/// Sorts by position and keeps the first [`MAX_CHECK_DIAGNOSTICS`], plus one saying how many
/// more there were, so a huge broken program cannot produce a huge response.
fn first(mut diags: Vec<Diagnostic>, what: &str) -> Vec<Diagnostic> {
    sort_by_pos(&mut diags);
    if diags.len() > MAX_CHECK_DIAGNOSTICS {
        let more = diags.len() - MAX_CHECK_DIAGNOSTICS;
        let next = diags[MAX_CHECK_DIAGNOSTICS].clone();
        diags.truncate(MAX_CHECK_DIAGNOSTICS);
        diags.push(Diagnostic { message: format!("{more} more {what} not shown"), ..next });
    }
    diags
}

/// What a top-level name refers to: an index into `functions` or `compositions`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Decl {
    Function(usize),
    Composition(usize),
}

/// One composition applying another: `(callee, application index in the caller)`.
type Call = (usize, usize);

struct Checker<'p> {
    program: &'p Program,
    diags: Vec<Diagnostic>,
    /// Functions and compositions by name; the first of duplicates.
    names: BTreeMap<&'p str, Decl>,
    /// For each composition, the compositions its applications apply.
    calls: Vec<Vec<Call>>,
    function_shapes: Vec<Shape<'p>>,
    composition_shapes: Vec<Shape<'p>>,
}

/// Where a composition set comes from and how often it is read.
struct SetDef {
    pos: Pos,
    /// The application defining it, `None` for a composition input.
    producer: Option<usize>,
    reads: usize,
}

fn at(pos: Pos) -> String {
    format!("{}:{}", pos.line, pos.col)
}

/// The most names a message lists, so one message stays short however wide a signature is.
const MAX_LISTED: usize = 8;

/// "a, b, c", or "a, b, …" past [`MAX_LISTED`] names.
fn list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for (i, name) in names.enumerate() {
        if i == MAX_LISTED {
            out.push_str(", …");
            break;
        }
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(name);
    }
    out
}

/// "its inputs: a, b" or "it has no inputs".
fn its(kind: &str, names: &[Ident]) -> String {
    if names.is_empty() {
        format!("it has no {kind}s")
    } else {
        format!("its {kind}s: {}", list(names.iter().map(|n| n.name.as_str())))
    }
}

/// A signature with its names indexed, built once per declaration so that checking an
/// application costs `O(log n)` per argument however wide the function is.
struct Shape<'p> {
    inputs: &'p [Ident],
    outputs: &'p [Ident],
    input_names: BTreeSet<&'p str>,
    output_names: BTreeSet<&'p str>,
}

impl<'p> Shape<'p> {
    fn new(inputs: &'p [Ident], outputs: &'p [Ident]) -> Self {
        let names = |ids: &'p [Ident]| ids.iter().map(|i| i.name.as_str()).collect();
        Self { inputs, outputs, input_names: names(inputs), output_names: names(outputs) }
    }
}

impl<'p> Checker<'p> {
    fn error(&mut self, pos: Pos, message: String) {
        self.diags.push(Diagnostic::error(pos, message));
    }

    fn warning(&mut self, pos: Pos, message: String) {
        self.diags.push(Diagnostic::warning(pos, message));
    }

    /// Functions and compositions share one namespace; a name declared twice is an error at the
    /// second declaration in source order.
    fn declarations(&mut self) {
        let program = self.program;
        let mut all: Vec<(&Ident, Decl)> =
            program.functions.iter().enumerate().map(|(i, f)| (&f.name, Decl::Function(i))).collect();
        all.extend(program.compositions.iter().enumerate().map(|(i, c)| (&c.name, Decl::Composition(i))));
        // Stable: declarations at equal positions (a program built in code) keep functions first.
        all.sort_by_key(|(name, _)| name.pos.offset);
        for (name, decl) in all {
            if let Some(&first) = self.names.get(name.name.as_str()) {
                let first_pos = self.decl_name(first).pos;
                self.error(name.pos, format!("`{}` is already declared at {}", name.name, at(first_pos)));
            } else {
                self.names.insert(&name.name, decl);
            }
        }
        for f in &program.functions {
            self.distinct(&f.inputs, "input", &f.name);
            self.distinct(&f.outputs, "output", &f.name);
        }
    }

    fn decl_name(&self, decl: Decl) -> &'p Ident {
        match decl {
            Decl::Function(i) => &self.program.functions[i].name,
            Decl::Composition(i) => &self.program.compositions[i].name,
        }
    }

    /// Reports names listed twice in a signature.
    fn distinct(&mut self, names: &'p [Ident], kind: &str, owner: &Ident) {
        let mut seen = BTreeSet::new();
        for name in names {
            if !seen.insert(name.name.as_str()) {
                self.error(name.pos, format!("{kind} `{}` of `{}` is listed twice", name.name, owner.name));
            }
        }
    }

    /// Declarations bind to registered functions by position, so their set counts must match.
    fn registrations(&mut self, registered: &dyn Fn(&str) -> Option<Signature>, options: CheckOptions) {
        for f in &self.program.functions {
            let name = &f.name.name;
            match registered(name) {
                Some(sig) => {
                    for (kind, declared, actual) in
                        [("input", f.inputs.len(), sig.inputs), ("output", f.outputs.len(), sig.outputs)]
                    {
                        if declared != actual {
                            self.error(
                                f.name.pos,
                                format!("`{name}` is declared with {declared} {kind} set(s), but the registered function has {actual}"),
                            );
                        }
                    }
                }
                None if options.require_registered => self.error(f.name.pos, format!("`{name}` is not registered")),
                None => {}
            }
        }
    }

    fn composition(&mut self, index: usize, comp: &'p Composition) {
        self.distinct(&comp.inputs, "input", &comp.name);
        self.distinct(&comp.outputs, "output", &comp.name);

        // Every set is defined once: by the signature's inputs or by one output binding.
        let mut sets: BTreeMap<&'p str, SetDef> = BTreeMap::new();
        for input in &comp.inputs {
            sets.entry(&input.name).or_insert(SetDef { pos: input.pos, producer: None, reads: 0 });
        }
        for (ai, app) in comp.body.iter().enumerate() {
            for binding in &app.outputs {
                if let Some(first) = sets.get(binding.set.name.as_str()) {
                    let message = format!("set `{}` is already defined at {}", binding.set.name, at(first.pos));
                    self.error(binding.set.pos, message);
                } else {
                    sets.insert(&binding.set.name, SetDef { pos: binding.set.pos, producer: Some(ai), reads: 0 });
                }
            }
        }

        // Reads, and the dataflow edges they make: producer -> reader, labeled (reader, argument).
        let mut flow: Vec<Vec<(usize, (usize, usize))>> = comp.body.iter().map(|_| Vec::new()).collect();
        for (ai, app) in comp.body.iter().enumerate() {
            for (gi, arg) in app.args.iter().enumerate() {
                match sets.get_mut(arg.set.name.as_str()) {
                    Some(def) => {
                        def.reads += 1;
                        if let Some(producer) = def.producer {
                            flow[producer].push((ai, (ai, gi)));
                        }
                    }
                    None => self.error(arg.set.pos, format!("set `{}` is never defined", arg.set.name)),
                }
            }
            self.application(index, ai, comp, app);
        }

        let outputs: BTreeSet<&str> = comp.outputs.iter().map(|o| o.name.as_str()).collect();
        for output in &comp.outputs {
            if !sets.contains_key(output.name.as_str()) {
                self.error(output.pos, format!("output `{}` of `{}` is never assigned", output.name, comp.name.name));
            }
        }
        for (name, def) in &sets {
            if def.reads == 0 && !outputs.contains(name) {
                let message = match def.producer {
                    None => format!("input `{name}` of `{}` is never used", comp.name.name),
                    Some(_) => format!("set `{name}` is never used"),
                };
                self.warning(def.pos, message);
            }
        }

        for cycle in find_cycles(&flow, MAX_CYCLES) {
            let names: Vec<&Ident> = cycle.iter().map(|&(_, (reader, arg))| &comp.body[reader].args[arg].set).collect();
            let def_pos = |name: &Ident| sets.get(name.name.as_str()).map_or(name.pos, |d| d.pos);
            let start = (0..names.len()).min_by_key(|&i| def_pos(names[i]).offset).unwrap_or(0);
            let path = cycle_path((0..names.len()).map(|k| names[(start + k) % names.len()].name.as_str()));
            self.error(def_pos(names[start]), format!("dataflow cycle through sets: {path}"));
        }
    }

    /// Checks one application against what it applies.
    fn application(&mut self, caller: usize, ai: usize, comp: &'p Composition, app: &'p Application) {
        let callee = &app.function;
        let shape = match self.names.get(callee.name.as_str()).copied() {
            None => {
                let message = format!("`{}` is neither a declared function nor an earlier composition", callee.name);
                self.error(callee.pos, message);
                return self.join(app);
            }
            Some(Decl::Function(fi)) => {
                let f = &self.program.functions[fi];
                if f.name.pos.offset > comp.name.pos.offset {
                    let message = format!("`{}` is used before its declaration at {}", callee.name, at(f.name.pos));
                    self.error(callee.pos, message);
                }
                &self.function_shapes[fi]
            }
            Some(Decl::Composition(ci)) => {
                // Applying itself or a later composition is judged with all calls known.
                self.calls[caller].push((ci, ai));
                &self.composition_shapes[ci]
            }
        };

        let mut diags = Vec::new();
        let mut given = BTreeSet::new();
        for arg in &app.args {
            let param = arg.param.name.as_str();
            if !shape.input_names.contains(param) {
                let message = format!("`{}` has no input `{param}` ({})", callee.name, its("input", shape.inputs));
                diags.push(Diagnostic::error(arg.param.pos, message));
            } else if !given.insert(param) {
                diags.push(Diagnostic::error(
                    arg.param.pos,
                    format!("input `{param}` of `{}` is given twice", callee.name),
                ));
            }
        }
        // Dandelion runs a function with an input left out (it sees no such set), so this is
        // legal, but more often a slip than meant. One warning per application, naming a few.
        let missing = shape.input_names.len() - given.len();
        if missing > 0 {
            let mut listed = BTreeSet::new();
            let names = shape
                .inputs
                .iter()
                .map(|i| i.name.as_str())
                .filter(|name| !given.contains(name) && listed.insert(*name))
                .take(MAX_LISTED + 1);
            let names = list(names);
            let message = if missing == 1 {
                format!("input `{names}` of `{}` is not given", callee.name)
            } else {
                format!("{missing} inputs of `{}` are not given: {names}", callee.name)
            };
            diags.push(Diagnostic::warning(callee.pos, message));
        }

        let mut bound = BTreeSet::new();
        for binding in &app.outputs {
            let param = binding.param.name.as_str();
            if !shape.output_names.contains(param) {
                let message = format!("`{}` has no output `{param}` ({})", callee.name, its("output", shape.outputs));
                diags.push(Diagnostic::error(binding.param.pos, message));
            } else if !bound.insert(param) {
                diags.push(Diagnostic::error(
                    binding.param.pos,
                    format!("output `{param}` of `{}` is bound twice", callee.name),
                ));
            }
        }
        self.diags.extend(diags);
        self.join(app);
    }

    /// A `by` clause joins keyed arguments of its own application, each once.
    fn join(&mut self, app: &'p Application) {
        let Some(join) = &app.join else { return };
        let callee = &app.function.name;
        // Indexed the way `Application::join_target` resolves, so a wide application with a long
        // `by` costs `O(n log n)`, not `O(n²)`.
        let mut params: BTreeMap<&str, usize> = BTreeMap::new();
        let mut sets: BTreeMap<&str, JoinTarget> = BTreeMap::new();
        for (i, arg) in app.args.iter().enumerate() {
            params.entry(&arg.param.name).or_insert(i);
            sets.entry(&arg.set.name).and_modify(|t| *t = JoinTarget::Ambiguous).or_insert(JoinTarget::Set(i));
        }
        let resolve = |name: &str| match params.get(name) {
            Some(&i) => JoinTarget::Param(i),
            None => sets.get(name).copied().unwrap_or(JoinTarget::Unknown),
        };
        let mut joined = BTreeSet::new();
        // Whether the joined arguments so far are `anyKeyed` (Some(true)) or `keyed`.
        let mut adaptive: Option<bool> = None;
        let kinds = core::iter::once(None).chain(join.rest.iter().map(|(kind, _)| Some(*kind)));
        for (name, kind) in join.names().zip(kinds) {
            let index = match resolve(&name.name) {
                JoinTarget::Param(i) | JoinTarget::Set(i) => i,
                JoinTarget::Ambiguous => {
                    let message = format!(
                        "`{}` in `by` is read by several arguments of `{callee}`; name the input instead",
                        name.name
                    );
                    self.error(name.pos, message);
                    continue;
                }
                JoinTarget::Unknown => {
                    self.error(name.pos, format!("`{}` in `by` is not an argument of `{callee}`", name.name));
                    continue;
                }
            };
            let distribution = app.args[index].distribution;
            if !distribution.is_keyed() {
                let message = format!("`{}` in `by` is not keyed (it is `{}`)", name.name, distribution.keyword());
                self.error(name.pos, message);
            } else if !joined.insert(index) {
                self.error(name.pos, format!("`{}` is joined twice", name.name));
            } else {
                let any = distribution.is_adaptive();
                if any && kind == Some(JoinKind::Cross) {
                    // Dandelion partitions each cross-joined `anyKeyed` run on its own; here a
                    // `by` chain of `anyKeyed` inputs is one adaptive group (docs/compositions.md).
                    let message =
                        format!("`{}` is `anyKeyed`: a `by` chain of `anyKeyed` inputs cannot use `cross`", name.name);
                    self.error(name.pos, message);
                } else if adaptive.is_some_and(|a| a != any) {
                    let message =
                        format!("`{}` in `by` mixes `keyed` and `anyKeyed` inputs; join inputs of one kind", name.name);
                    self.error(name.pos, message);
                }
                adaptive.get_or_insert(any);
            }
        }
    }

    /// A composition may apply only earlier ones, which rules out recursion; applying itself or a
    /// later one is reported as recursion when it closes a cycle, else as use before definition.
    fn recursion(&mut self) {
        let program = self.program;
        let calls = core::mem::take(&mut self.calls);
        let mut covered = BTreeSet::new();
        for cycle in find_cycles(&calls, MAX_CYCLES) {
            let start = (0..cycle.len()).min_by_key(|&i| cycle[i].0).unwrap_or(0);
            let name = |k: usize| program.compositions[cycle[(start + k) % cycle.len()].0].name.name.as_str();
            let path = cycle_path((0..cycle.len()).map(name));
            let (caller, app) = cycle[start];
            covered.extend(cycle.iter().copied());
            let pos = program.compositions[caller].body[app].function.pos;
            self.error(pos, format!("recursive composition: {path}"));
        }
        for (caller, callees) in calls.iter().enumerate() {
            for &(callee, app) in callees {
                if callee < caller || covered.contains(&(caller, app)) {
                    continue;
                }
                let pos = program.compositions[caller].body[app].function.pos;
                let name = &program.compositions[callee].name;
                if callee == caller {
                    self.error(pos, format!("recursive composition: {0} -> {0}", name.name));
                } else {
                    self.error(pos, format!("`{}` is used before its definition at {}", name.name, at(name.pos)));
                }
            }
        }
    }
}
