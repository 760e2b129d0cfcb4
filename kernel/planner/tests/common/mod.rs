//! Builds programs and sets by hand and drives executions, for the planner's tests.
//!
//! Programs are built here rather than parsed so the planner's tests do not depend on the
//! parser's; `app("f", &["p = optional each S"], &["T = out"])` reads like the source it stands for.
#![allow(dead_code)]

use dsl::ast::{
    Application, Argument, Composition, Distribution, FunctionDecl, Ident, JoinClause, JoinKind, OutputBinding, Pos,
    Program,
};
use model::{Bytes, Item, Set};
use planner::{Execution, Instance, PlanLimits, Status};

pub fn id(name: &str) -> Ident {
    Ident::new(name, Pos::default())
}

fn ids(names: &[&str]) -> Vec<Ident> {
    names.iter().map(|n| id(n)).collect()
}

/// A program under construction.
#[derive(Default)]
pub struct ProgramBuilder(Program);

impl ProgramBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn function(mut self, name: &str, inputs: &[&str], outputs: &[&str]) -> Self {
        self.0.functions.push(FunctionDecl { name: id(name), inputs: ids(inputs), outputs: ids(outputs) });
        self
    }

    pub fn composition(mut self, name: &str, inputs: &[&str], outputs: &[&str], body: Vec<Application>) -> Self {
        self.0.compositions.push(Composition { name: id(name), inputs: ids(inputs), outputs: ids(outputs), body });
        self
    }

    pub fn build(self) -> Program {
        self.0
    }
}

/// `app("f", &["p = [optional] KEYWORD S", …], &["T = out", …])`.
pub fn app(function: &str, args: &[&str], outputs: &[&str]) -> Application {
    let args = args
        .iter()
        .map(|a| {
            let (param, rest) = a.split_once('=').expect("argument needs '='");
            let words: Vec<&str> = rest.split_whitespace().collect();
            let (optional, words) = match words.as_slice() {
                ["optional", rest @ ..] => (true, rest),
                rest => (false, rest),
            };
            let [keyword, set] = words else { panic!("bad argument {a}") };
            let distribution = match *keyword {
                "all" => Distribution::All,
                "each" => Distribution::Each,
                "keyed" => Distribution::Keyed,
                "anyEach" => Distribution::AnyEach,
                "anyKeyed" => Distribution::AnyKeyed,
                other => panic!("bad keyword {other}"),
            };
            Argument { param: id(param.trim()), optional, distribution, set: id(set) }
        })
        .collect();
    let outputs = outputs
        .iter()
        .map(|o| {
            let (set, param) = o.split_once('=').expect("output needs '='");
            OutputBinding { set: id(set.trim()), param: id(param.trim()) }
        })
        .collect();
    Application { function: id(function), args, outputs, join: None }
}

/// Adds `by A kind B kind C …` to an application.
pub fn by(mut application: Application, clause: &str) -> Application {
    let words: Vec<&str> = clause.split_whitespace().collect();
    let first = id(words[0]);
    let rest = words[1..]
        .chunks(2)
        .map(|pair| {
            let kind = match pair[0] {
                "inner" => JoinKind::Inner,
                "left" => JoinKind::Left,
                "right" => JoinKind::Right,
                "outer" | "full" => JoinKind::Outer,
                "cross" => JoinKind::Cross,
                other => panic!("bad join kind {other}"),
            };
            (kind, id(pair[1]))
        })
        .collect();
    application.join = Some(JoinClause { first, rest });
    application
}

pub fn item(name: &str, key: Option<u64>) -> Item {
    Item { name: name.into(), key, data: Bytes::from(name.as_bytes()) }
}

/// A set of items without keys, named and filled with their own names.
pub fn set(name: &str, items: &[&str]) -> Set {
    Set { name: name.into(), items: items.iter().map(|n| item(n, None)).collect() }
}

/// A set of keyed items: `("a1", Some(1))`.
pub fn keyed(name: &str, items: &[(&str, Option<u64>)]) -> Set {
    Set { name: name.into(), items: items.iter().map(|(n, k)| item(n, *k)).collect() }
}

pub fn names(set: &Set) -> Vec<String> {
    set.items.iter().map(|i| i.name.to_string()).collect()
}

/// `"a1,a2|b2"`: an instance's input item names, sets separated by `|`.
pub fn shape(instance: &Instance) -> String {
    instance.inputs.iter().map(|s| names(s).join(",")).collect::<Vec<_>>().join("|")
}

/// The usual stand-in function: if it has as many outputs as inputs, it returns its inputs;
/// otherwise every output gets all input items.
pub fn echo(instance: &Instance) -> Result<Vec<Set>, String> {
    if instance.output_count == instance.inputs.len() {
        return Ok(instance.inputs.clone());
    }
    let all: Vec<Item> = instance.inputs.iter().flat_map(|s| s.items.iter().cloned()).collect();
    Ok((0..instance.output_count).map(|_| Set { name: "out".into(), items: all.clone() }).collect())
}

/// Completes every instance as soon as it is ready (in planning order) with `f`, until none is
/// left; returns the instances in the order they ran.
pub fn run(execution: &mut Execution, mut f: impl FnMut(&Instance) -> Result<Vec<Set>, String>) -> Vec<Instance> {
    let mut ran = Vec::new();
    loop {
        let batch: Vec<Instance> = std::iter::from_fn(|| execution.next_ready()).collect();
        if batch.is_empty() {
            return ran;
        }
        for instance in &batch {
            execution.complete(instance.id, f(instance)).expect("completion refused");
        }
        ran.extend(batch);
    }
}

/// Starts `composition`, runs it with [`echo`], and returns the instances and the outputs.
pub fn run_echo(program: &Program, composition: &str, inputs: Vec<Set>) -> (Vec<Instance>, Vec<Set>) {
    let mut execution = Execution::start(program, composition, inputs, PlanLimits::default()).expect("start");
    let ran = run(&mut execution, echo);
    assert!(matches!(execution.status(), Status::Done(_)), "not done: {:?}", execution.status());
    let outputs = execution.take_outputs().expect("outputs");
    (ran, outputs)
}

/// Steps an execution the way a caller that bounds its steps does (refuel, take what is ready,
/// advance) until no planning work is left; returns the instances handed out, and the most
/// planning units one step spent.
pub fn step_until_idle(execution: &mut Execution) -> (Vec<Instance>, u64) {
    let mut out = Vec::new();
    let mut most = 0;
    loop {
        execution.refuel();
        let before = execution.work_done();
        out.extend(std::iter::from_fn(|| execution.next_ready()));
        execution.advance();
        out.extend(std::iter::from_fn(|| execution.next_ready()));
        most = most.max(execution.work_done() - before);
        if !execution.has_work() {
            return (out, most);
        }
    }
}

/// Everything a caller can observe of one run: each instance as it is handed out (id, function,
/// origin, input shape), each completion, and the end (outputs, or the failure and what to
/// cancel). Instances complete first-in first-out; the `k`-th completion fails when
/// `outcomes[k]` is 0, returns no sets when it is 1, and echoes otherwise (and past the list).
/// Returns the log and the most planning units one step spent.
pub fn trace(program: &Program, inputs: Vec<Set>, limits: PlanLimits, outcomes: &[u8]) -> (Vec<String>, u64) {
    let mut log = Vec::new();
    let mut ex = match Execution::start(program, "c", inputs, limits) {
        Ok(ex) => ex,
        // A bounded run may only meet a limit after `start` returned: the same end.
        Err(e) => return (vec![format!("failed {e} cancel []")], 0),
    };
    let mut pool = std::collections::VecDeque::new();
    let mut most = 0;
    let mut take = |ex: &mut Execution, pool: &mut std::collections::VecDeque<Instance>, log: &mut Vec<String>| {
        let (batch, spent) = step_until_idle(ex);
        most = most.max(spent);
        for i in batch {
            log.push(format!("start {} {} [{}] {}", i.id, i.function, i.origin, shape(&i)));
            pool.push_back(i);
        }
    };
    take(&mut ex, &mut pool, &mut log);
    let mut k = 0;
    while let Some(instance) = pool.pop_front() {
        let result = match outcomes.get(k) {
            Some(0) => Err(format!("failure {k}")),
            Some(1) => Ok(Vec::new()),
            _ => echo(&instance),
        };
        k += 1;
        let completion = ex.complete(instance.id, result);
        log.push(format!("complete {} -> {completion:?}", instance.id));
        take(&mut ex, &mut pool, &mut log);
    }
    log.push(match ex.status() {
        Status::Done(outputs) => format!(
            "done {}",
            outputs.iter().map(|s| format!("{}={}", s.name, names(s).join(","))).collect::<Vec<_>>().join(" ")
        ),
        Status::Failed(failure) => format!("failed {failure} cancel {:?}", failure.cancel),
        Status::Running { ready, running } => format!("running ready={ready} running={running}"),
    });
    if log.len() > 1 {
        log.push(format!("planned {} live {}", ex.instances_planned(), ex.live_sets()));
    }
    (log, most)
}
