//! The running state of one composition: the execution started one, and one more per instance of
//! an application that applies a composition.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use model::{Item, Set};

use crate::distribute::{Combinations, Cut};

/// Index of a frame in [`Frames`]; reused after the frame finishes.
pub(crate) type FrameId = usize;

/// A composition set over the life of a frame.
#[derive(Debug)]
pub(crate) enum SetSlot {
    /// Its producing application has not finished.
    Pending,
    Live(Set),
    /// Dropped: its last reader has been instantiated and it is no composition output (or it
    /// never had a reader).
    Freed,
}

/// An application over the life of a frame.
#[derive(Debug)]
pub(crate) enum AppRun {
    /// Some input set does not exist yet.
    Waiting,
    /// Instances planned (or being cut, while `cutting` is set); `results[k]` holds instance
    /// `k`'s outputs once it completes, so they concatenate in instance order whatever order they
    /// complete in. `results` grows as instances are cut.
    Running {
        results: Vec<Option<Vec<Set>>>,
        left: usize,
        cutting: Option<Box<Cutting>>,
    },
    /// Every instance completed: their outputs are being moved, in instance order, into the
    /// sets the application defines (`next` is the first result not moved yet).
    Collecting {
        results: Vec<Option<Vec<Set>>>,
        next: usize,
        /// Per declared output: the items collected so far.
        items: Vec<Vec<Item>>,
    },
    Done,
}

/// An application whose instances are cut a few at a time: what the next one needs.
#[derive(Debug)]
pub(crate) struct Cutting {
    /// Origin prefix of its instances, e.g. `top: app #2 'grep'`.
    pub label: String,
    /// Per declared input: how it is cut.
    pub cuts: Vec<Cut>,
    pub combinations: Combinations,
    /// The next instance to cut (0-based, in instance order).
    pub next: usize,
}

/// Instance `index` of application `app` in frame `frame`: where a completion's outputs go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SlotRef {
    pub frame: FrameId,
    pub app: usize,
    pub index: usize,
}

#[derive(Debug)]
pub(crate) struct Frame {
    /// Index of the composition's plan.
    pub plan: usize,
    /// 0 for the started composition, +1 per nesting.
    pub depth: usize,
    /// Origin prefix of everything planned in this frame, e.g. `outer: app #1 'inner' instance 3 > inner`.
    pub path: String,
    /// Per set id.
    pub sets: Vec<SetSlot>,
    /// Per set id: readers not yet instantiated.
    pub readers_left: Vec<usize>,
    /// Per application: input sets that do not exist yet.
    pub missing: Vec<usize>,
    pub apps: Vec<AppRun>,
    /// Applications not done; the frame finishes at 0.
    pub apps_left: usize,
    /// Where the outputs go; `None` for the started composition.
    pub parent: Option<SlotRef>,
}

impl Frame {
    pub(crate) fn live_sets(&self) -> impl Iterator<Item = &Set> {
        self.sets.iter().filter_map(|s| match s {
            SetSlot::Live(set) => Some(set),
            _ => None,
        })
    }
}

/// A slab of frames: ids stay valid while their frame lives, and freed ids are reused, so a long
/// fan-out of nested compositions does not grow the table without bound.
#[derive(Debug, Default)]
pub(crate) struct Frames {
    slots: Vec<Option<Frame>>,
    free: Vec<FrameId>,
}

impl Frames {
    pub(crate) fn insert(&mut self, frame: Frame) -> FrameId {
        match self.free.pop() {
            Some(id) => {
                if let Some(slot) = self.slots.get_mut(id) {
                    *slot = Some(frame);
                    return id;
                }
                self.push(frame)
            }
            None => self.push(frame),
        }
    }

    fn push(&mut self, frame: Frame) -> FrameId {
        self.slots.push(Some(frame));
        self.slots.len() - 1
    }

    pub(crate) fn get(&self, id: FrameId) -> Option<&Frame> {
        self.slots.get(id).and_then(Option::as_ref)
    }

    pub(crate) fn get_mut(&mut self, id: FrameId) -> Option<&mut Frame> {
        self.slots.get_mut(id).and_then(Option::as_mut)
    }

    pub(crate) fn remove(&mut self, id: FrameId) -> Option<Frame> {
        let frame = self.slots.get_mut(id).and_then(Option::take)?;
        self.free.push(id);
        Some(frame)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Frame> {
        self.slots.iter().flatten()
    }
}
