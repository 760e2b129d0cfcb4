//! Turns the syntax tree into owned, index-based plans, checking everything the planner relies on.
//!
//! Doing the name resolution once, up front, means the running execution never looks a name up,
//! never borrows the [`Program`], and cannot meet an inconsistency halfway through: a program that
//! compiles here can only fail later on limits or on its instances.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use dsl::ast::{Application, Composition, Distribution, Ident, JoinKind, JoinTarget, Program};
use model::Name;

use crate::error::PlanError;

/// Index of a composition set inside its [`CompPlan`].
pub(crate) type SetId = usize;

/// One composition, resolved: sets are numbered, applications point at their sets by number.
#[derive(Debug)]
pub(crate) struct CompPlan {
    pub name: String,
    /// Every composition set by [`SetId`]: the inputs first, then the application outputs.
    pub set_names: Vec<Name>,
    /// The declared inputs, in declaration order.
    pub inputs: Vec<SetId>,
    /// The declared outputs, in declaration order (an output may be an input passed through).
    pub outputs: Vec<SetId>,
    /// Per set: the applications that read it (each once, in source order).
    pub consumers: Vec<Vec<usize>>,
    /// Per set: whether it is a composition output, so it must outlive its readers.
    pub keep: Vec<bool>,
    pub apps: Vec<AppPlan>,
}

/// What an application applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Callee {
    /// A declared function: its instances go to the caller.
    Function,
    /// A composition (index into the compiled plans): the planner expands it itself.
    Composition(usize),
}

/// One bound input of an application.
#[derive(Clone, Copy, Debug)]
pub(crate) struct InputPlan {
    pub set: SetId,
    pub distribution: Distribution,
    pub optional: bool,
}

/// One application, with its arguments put in the callee's declaration order.
#[derive(Debug)]
pub(crate) struct AppPlan {
    /// 1-based position in the composition body, as humans count.
    pub number: usize,
    /// The applied function's or composition's name.
    pub function: Name,
    pub callee: Callee,
    /// The callee's declared input names; instance input sets carry these names.
    pub input_names: Vec<Name>,
    /// Per declared input: the set bound to it, if any.
    pub inputs: Vec<Option<InputPlan>>,
    /// Per declared output: the composition set it defines, if any.
    pub outputs: Vec<Option<SetId>>,
    /// The `by` chain as positions of declared inputs; the first entry's kind is meaningless.
    pub join: Vec<(JoinKind, usize)>,
    /// The distinct sets this application reads.
    pub sets_read: Vec<SetId>,
}

/// A name in the program, resolved.
#[derive(Clone, Copy)]
enum Target {
    Function(usize),
    Composition(usize),
}

/// Compiles the composition `root` and every composition it applies, directly or not.
/// Returns the plans and the index of `root` among them.
pub(crate) fn compile(program: &Program, root: &str) -> Result<(Vec<CompPlan>, usize), PlanError> {
    let names = index_names(program);
    let root_index = match names.get(root).map(Vec::as_slice) {
        Some([Target::Composition(c)]) => *c,
        Some(targets) if targets.iter().any(|t| matches!(t, Target::Composition(_))) => {
            return Err(invalid(format!("composition '{root}'"), "the name is declared more than once"));
        }
        _ => return Err(PlanError::UnknownComposition(root.into())),
    };
    let mut compiler = Compiler { program, names, plan_of: BTreeMap::new(), queue: Vec::new() };
    compiler.plan_index(root_index);
    let mut plans: Vec<CompPlan> = Vec::new();
    // Applying a composition queues it; the queue grows until every reachable one is compiled.
    while let Some(&comp_index) = compiler.queue.get(plans.len()) {
        let comp = program.compositions.get(comp_index).ok_or_else(|| internal("composition index"))?;
        plans.push(compiler.composition(comp)?);
    }
    // The root was queued first.
    Ok((plans, 0))
}

fn index_names(program: &Program) -> BTreeMap<&str, Vec<Target>> {
    let mut names: BTreeMap<&str, Vec<Target>> = BTreeMap::new();
    for (i, f) in program.functions.iter().enumerate() {
        names.entry(f.name.name.as_str()).or_default().push(Target::Function(i));
    }
    for (i, c) in program.compositions.iter().enumerate() {
        names.entry(c.name.name.as_str()).or_default().push(Target::Composition(i));
    }
    names
}

struct Compiler<'p> {
    program: &'p Program,
    names: BTreeMap<&'p str, Vec<Target>>,
    /// Program composition index -> plan index.
    plan_of: BTreeMap<usize, usize>,
    /// Program composition indices in plan order.
    queue: Vec<usize>,
}

impl<'p> Compiler<'p> {
    /// The plan index of a program composition, queueing it on first sight (so recursion ends).
    fn plan_index(&mut self, comp_index: usize) -> usize {
        if let Some(&p) = self.plan_of.get(&comp_index) {
            return p;
        }
        let p = self.queue.len();
        self.queue.push(comp_index);
        self.plan_of.insert(comp_index, p);
        p
    }

    fn composition(&mut self, comp: &'p Composition) -> Result<CompPlan, PlanError> {
        let at = format!("composition '{}'{}", comp.name.name, line(&comp.name));
        let mut ids: BTreeMap<&str, SetId> = BTreeMap::new();
        let mut set_names: Vec<Name> = Vec::new();
        let mut producer: Vec<Option<usize>> = Vec::new();
        let mut inputs = Vec::with_capacity(comp.inputs.len());
        for input in &comp.inputs {
            if ids.contains_key(input.name.as_str()) {
                return Err(invalid(at, format!("input set '{}' is declared twice", input.name)));
            }
            ids.insert(&input.name, set_names.len());
            inputs.push(set_names.len());
            set_names.push(input.name.as_str().into());
            producer.push(None);
        }
        for (a, app) in comp.body.iter().enumerate() {
            for binding in &app.outputs {
                let name = binding.set.name.as_str();
                if let Some(&id) = ids.get(name) {
                    let reason = match producer.get(id).copied().flatten() {
                        Some(other) => format!("set '{name}' is also defined by app #{}", other + 1),
                        None => format!("set '{name}' is an input of the composition"),
                    };
                    return Err(invalid(app_at(comp, a, app), reason));
                }
                ids.insert(name, set_names.len());
                set_names.push(name.into());
                producer.push(Some(a));
            }
        }
        let mut outputs = Vec::with_capacity(comp.outputs.len());
        for output in &comp.outputs {
            let Some(&id) = ids.get(output.name.as_str()) else {
                return Err(invalid(at, format!("output set '{}' is never defined", output.name)));
            };
            if outputs.contains(&id) {
                return Err(invalid(at, format!("output set '{}' is listed twice", output.name)));
            }
            outputs.push(id);
        }
        let mut apps = Vec::with_capacity(comp.body.len());
        for (a, app) in comp.body.iter().enumerate() {
            apps.push(self.application(comp, a, app, &ids)?);
        }
        let mut consumers = vec![Vec::new(); set_names.len()];
        for (a, app) in apps.iter().enumerate() {
            for &s in &app.sets_read {
                consumers.get_mut(s).ok_or_else(|| internal("set id"))?.push(a);
            }
        }
        check_acyclic(&at, &apps, &consumers)?;
        let mut keep = vec![false; set_names.len()];
        for &o in &outputs {
            *keep.get_mut(o).ok_or_else(|| internal("set id"))? = true;
        }
        Ok(CompPlan { name: comp.name.name.clone(), set_names, inputs, outputs, consumers, keep, apps })
    }

    fn application(
        &mut self,
        comp: &Composition,
        a: usize,
        app: &Application,
        ids: &BTreeMap<&str, SetId>,
    ) -> Result<AppPlan, PlanError> {
        let at = || app_at(comp, a, app);
        let fname = app.function.name.as_str();
        let (callee, input_names, output_names) = match self.names.get(fname).map(Vec::as_slice) {
            Some([Target::Function(f)]) => {
                let decl = self.program.functions.get(*f).ok_or_else(|| internal("function index"))?;
                (Callee::Function, names_of(&decl.inputs), names_of(&decl.outputs))
            }
            Some([Target::Composition(c)]) => {
                let callee = self.program.compositions.get(*c).ok_or_else(|| internal("composition index"))?;
                (Callee::Composition(self.plan_index(*c)), names_of(&callee.inputs), names_of(&callee.outputs))
            }
            Some(_) => return Err(invalid(at(), format!("'{fname}' is declared more than once"))),
            None => return Err(invalid(at(), format!("'{fname}' is not declared"))),
        };
        let mut inputs: Vec<Option<InputPlan>> = vec![None; input_names.len()];
        for arg in &app.args {
            let param = arg.param.name.as_str();
            let Some(pos) = input_names.iter().position(|n| n == param) else {
                return Err(invalid(at(), format!("'{fname}' declares no input '{param}'")));
            };
            let Some(&set) = ids.get(arg.set.name.as_str()) else {
                return Err(invalid(at(), format!("reads set '{}', which is never defined", arg.set.name)));
            };
            let slot = inputs.get_mut(pos).ok_or_else(|| internal("input position"))?;
            if slot.is_some() {
                return Err(invalid(at(), format!("input '{param}' is bound twice")));
            }
            *slot = Some(InputPlan { set, distribution: arg.distribution, optional: arg.optional });
        }
        let mut outputs: Vec<Option<SetId>> = vec![None; output_names.len()];
        for binding in &app.outputs {
            let param = binding.param.name.as_str();
            let Some(pos) = output_names.iter().position(|n| n == param) else {
                return Err(invalid(at(), format!("'{fname}' declares no output '{param}'")));
            };
            let set = *ids.get(binding.set.name.as_str()).ok_or_else(|| internal("output set id"))?;
            let slot = outputs.get_mut(pos).ok_or_else(|| internal("output position"))?;
            if slot.is_some() {
                return Err(invalid(at(), format!("output '{param}' is bound twice")));
            }
            *slot = Some(set);
        }
        let mut join = Vec::new();
        if let Some(clause) = &app.join {
            let kinds = core::iter::once(JoinKind::Cross).chain(clause.rest.iter().map(|(k, _)| *k));
            for (kind, name) in kinds.zip(clause.names()) {
                let pos = join_position(app, &inputs, &input_names, &name.name).map_err(|r| invalid(at(), r))?;
                if join.iter().any(|&(_, p)| p == pos) {
                    return Err(invalid(at(), format!("joins '{}' twice", name.name)));
                }
                join.push((kind, pos));
            }
        }
        let mut sets_read: Vec<SetId> = inputs.iter().flatten().map(|i| i.set).collect();
        sets_read.sort_unstable();
        sets_read.dedup();
        Ok(AppPlan { number: a + 1, function: fname.into(), callee, input_names, inputs, outputs, join, sets_read })
    }
}

/// Resolves a name in a `by` clause to a declared input position, the way `dsl` defines it
/// ([`Application::join_target`]): an argument's input name first (as Dandelion's runtime reads
/// it), else the one composition set read (as Dandelion's README writes it). Only `keyed` and
/// `anyKeyed` arguments can be joined.
fn join_position(
    app: &Application,
    inputs: &[Option<InputPlan>],
    input_names: &[Name],
    name: &str,
) -> Result<usize, String> {
    let arg = match app.join_target(name) {
        JoinTarget::Param(i) | JoinTarget::Set(i) => app.args.get(i),
        JoinTarget::Ambiguous => return Err(format!("joins '{name}', which is read by more than one input")),
        JoinTarget::Unknown => None,
    };
    let Some(arg) = arg else { return Err(format!("joins '{name}', which is not an input of this application")) };
    let pos =
        input_names.iter().position(|n| *n == arg.param.name).ok_or_else(|| format!("joins unknown input '{name}'"))?;
    match inputs.get(pos).copied().flatten() {
        Some(InputPlan { distribution: Distribution::Keyed | Distribution::AnyKeyed, .. }) => Ok(pos),
        _ => Err(format!("joins '{name}', which is not distributed `keyed` or `anyKeyed`")),
    }
}

/// Rejects applications that (transitively) read their own outputs: they would never start.
fn check_acyclic(at: &str, apps: &[AppPlan], consumers: &[Vec<usize>]) -> Result<(), PlanError> {
    let produced: Vec<bool> = {
        let mut p = vec![false; consumers.len()];
        for app in apps {
            for &s in app.outputs.iter().flatten() {
                if let Some(slot) = p.get_mut(s) {
                    *slot = true;
                }
            }
        }
        p
    };
    let mut waiting: Vec<usize> =
        apps.iter().map(|a| a.sets_read.iter().filter(|&&s| produced.get(s) == Some(&true)).count()).collect();
    let mut ready: Vec<usize> = (0..apps.len()).filter(|&a| waiting.get(a) == Some(&0)).collect();
    let mut done = 0;
    while let Some(a) = ready.pop() {
        done += 1;
        let Some(app) = apps.get(a) else { continue };
        for &s in app.outputs.iter().flatten() {
            for &b in consumers.get(s).map(Vec::as_slice).unwrap_or_default() {
                if let Some(w) = waiting.get_mut(b) {
                    *w = w.saturating_sub(1);
                    if *w == 0 {
                        ready.push(b);
                    }
                }
            }
        }
    }
    if done < apps.len() {
        let stuck: Vec<String> = (0..apps.len())
            .filter(|&a| waiting.get(a).is_some_and(|&w| w > 0))
            .map(|a| format!("#{}", a + 1))
            .collect();
        return Err(invalid(at.into(), format!("applications {} depend on each other in a cycle", stuck.join(", "))));
    }
    Ok(())
}

fn names_of(idents: &[Ident]) -> Vec<Name> {
    idents.iter().map(|i| Name::from(i.name.as_str())).collect()
}

fn line(ident: &Ident) -> String {
    if ident.pos.line > 0 { format!(" (line {})", ident.pos.line) } else { String::new() }
}

fn app_at(comp: &Composition, a: usize, app: &Application) -> String {
    format!("composition '{}' app #{} '{}'{}", comp.name.name, a + 1, app.function.name, line(&app.function))
}

fn invalid(at: String, reason: impl Into<String>) -> PlanError {
    PlanError::InvalidProgram { at, reason: reason.into() }
}

fn internal(what: &str) -> PlanError {
    PlanError::Internal(format!("inconsistent {what} while compiling"))
}
