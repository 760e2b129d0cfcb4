//! The engine-neutral contract: error codes and statuses, budgets, and the dynamic view.

use engine::{
    BadOutput, Completion, DynEngine, Engine, EngineError, ImageError, Invocation, Limits, TimeBudget, Trap, TrapKind,
};
use model::{Bytes, Item, Set};

#[test]
fn every_error_has_a_stable_code_and_fitting_status() {
    let cases: Vec<(EngineError, &str, u16)> = vec![
        (ImageError::TooLarge { size: 2, limit: 1 }.into(), "image_too_large", 413),
        (ImageError::Malformed { reason: "x".into() }.into(), "invalid_image", 400),
        (
            ImageError::ForbiddenImport { module: "env".into(), name: "f".into(), reason: "r".into() }.into(),
            "forbidden_import",
            400,
        ),
        (ImageError::BadEntry { reason: "x".into() }.into(), "invalid_image", 400),
        (ImageError::Unsupported { reason: "x".into() }.into(), "invalid_image", 400),
        (ImageError::WrongEngine { expected: "a", found: "b" }.into(), "invalid_image", 400),
        (Trap::new(TrapKind::Unreachable, "m").into(), "function_trap", 500),
        (EngineError::Aborted { message: "m".into() }, "function_aborted", 500),
        (EngineError::Timeout { budget: TimeBudget::from_millis(1), wall_clock: false }, "timeout", 504),
        (EngineError::Timeout { budget: TimeBudget::from_millis(1), wall_clock: true }, "timeout", 504),
        (EngineError::OutOfMemory { limit_bytes: 1, detail: "d".into() }, "out_of_memory", 500),
        (BadOutput::TooManyItems { limit: 1 }.into(), "bad_output", 500),
        (EngineError::internal("m"), "engine_internal", 500),
    ];
    for (error, code, status) in cases {
        assert_eq!(error.code(), code, "{error:?}");
        assert_eq!(error.http_status(), status, "{error:?}");
        assert!(!error.to_string().is_empty());
    }
}

#[test]
fn messages_name_the_cause() {
    let e: EngineError =
        ImageError::ForbiddenImport { module: "wasi".into(), name: "fd_write".into(), reason: "no".into() }.into();
    assert!(e.to_string().contains("`wasi`.`fd_write`"), "{e}");
    let e: EngineError = Trap::new(TrapKind::StackOverflow, "call stack exhausted").into();
    assert!(e.to_string().contains("stack_overflow"), "{e}");
    let e: EngineError = BadOutput::UndeclaredSet { index: 3, declared: 1 }.into();
    assert!(e.to_string().contains("index 3"), "{e}");
}

#[test]
fn time_budget_saturates() {
    assert_eq!(TimeBudget::from_millis(10).instructions, 10 * engine::limits::INSTRUCTIONS_PER_MS);
    assert_eq!(TimeBudget::with_rate(u64::MAX, 2).instructions, u64::MAX);
}

/// A toy engine: the image is the output set's single item's data.
struct Echo(&'static str);

impl Engine for Echo {
    type Image = Bytes;
    fn name(&self) -> &'static str {
        self.0
    }
    fn prepare(&self, image: &[u8]) -> Result<Bytes, EngineError> {
        Ok(Bytes::from(image))
    }
    fn run(&self, image: &Bytes, invocation: Invocation<'_>) -> Result<Completion, EngineError> {
        let mut set = Set::new(invocation.outputs[0].clone());
        set.items.push(Item { name: "out".into(), key: None, data: image.clone() });
        Ok(Completion { outputs: vec![set], instructions: None })
    }
}

fn invocation(outputs: &[String]) -> Invocation<'_> {
    Invocation {
        inputs: Vec::new(),
        outputs,
        limits: Limits::new(1 << 20, TimeBudget::from_millis(10)),
        deadline: None,
    }
}

#[test]
fn dyn_engine_runs_its_own_images_and_refuses_others() {
    let engines: Vec<Box<dyn DynEngine>> = vec![Box::new(Echo("a")), Box::new(Echo("b"))];
    let outputs = vec!["o".to_string()];
    let image = engines[0].prepare_image(b"hi").unwrap();
    assert_eq!(image.engine(), "a");
    assert_eq!(image.image_size(), 2);
    let done = engines[0].run_image(&image, invocation(&outputs)).unwrap();
    assert_eq!(&*done.outputs[0].items[0].data, b"hi");
    let err = engines[1].run_image(&image, invocation(&outputs)).unwrap_err();
    assert_eq!(err, EngineError::Image(ImageError::WrongEngine { expected: "b", found: "a" }));
}
