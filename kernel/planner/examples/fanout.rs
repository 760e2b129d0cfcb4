//! Plans a 1,000-item `each` fan-out end to end, completing every instance with its input as its
//! output, and prints how many instances ran. Pure planner work, so an instruction counter run
//! over it (`valgrind --tool=callgrind`, `perf stat -e instructions`) measures the planner alone.
//!
//! ```text
//! cargo run --release -p pappus-planner --example fanout [ITEMS]
//! ```
//!
//! The composition, as source:
//! ```text
//! function work (item) => (result);
//! composition fanout (inputs) => (results) {
//!     work (item = each inputs) => (results = result);
//! }
//! ```

use dsl::ast::{Application, Argument, Composition, Distribution, FunctionDecl, Ident, OutputBinding, Pos, Program};
use model::{Bytes, Item, Set};
use planner::{Execution, PlanLimits, Status};

fn ident(name: &str) -> Ident {
    Ident::new(name, Pos::default())
}

fn program() -> Program {
    Program {
        functions: vec![FunctionDecl {
            name: ident("work"),
            inputs: vec![ident("item")],
            outputs: vec![ident("result")],
        }],
        compositions: vec![Composition {
            name: ident("fanout"),
            inputs: vec![ident("inputs")],
            outputs: vec![ident("results")],
            body: vec![Application {
                function: ident("work"),
                args: vec![Argument {
                    param: ident("item"),
                    optional: false,
                    distribution: Distribution::Each,
                    set: ident("inputs"),
                }],
                outputs: vec![OutputBinding { set: ident("results"), param: ident("result") }],
                join: None,
            }],
        }],
    }
}

fn main() {
    let items: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    // One buffer, sliced into items: the fan-out shares it, copying no payload.
    let payload = Bytes::from(vec![7u8; items * 64]);
    let input = Set {
        name: "inputs".into(),
        items: (0..items)
            .map(|i| Item {
                name: format!("item-{i}").into(),
                key: None,
                data: payload.slice(i * 64..(i + 1) * 64).expect("in bounds"),
            })
            .collect(),
    };

    let mut execution = match Execution::start(&program(), "fanout", vec![input], PlanLimits::default()) {
        Ok(execution) => execution,
        Err(e) => {
            eprintln!("fanout: {e}");
            std::process::exit(1);
        }
    };
    let mut completed = 0usize;
    while let Some(instance) = execution.next_ready() {
        let output = instance.inputs;
        if let Err(e) = execution.complete(instance.id, Ok(output)) {
            eprintln!("fanout: {e}");
            std::process::exit(1);
        }
        completed += 1;
    }
    match execution.status() {
        Status::Done(outputs) => {
            let results = outputs.first().map_or(0, |s| s.items.len());
            println!("instances: {completed}");
            println!("planned: {}", execution.instances_planned());
            println!("result items: {results}");
        }
        other => {
            eprintln!("fanout: did not finish: {other:?}");
            std::process::exit(1);
        }
    }
}
