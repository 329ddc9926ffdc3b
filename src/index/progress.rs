//! Progress reporting for long index builds, decoupled from any terminal: the CLI turns events
//! into a progress bar, tests and the server pass [`Progress::none`].

/// One progress event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressEvent<'a> {
    /// A phase starts; `total` is the number of items when known.
    Start {
        /// Phase name (e.g. `indexing`).
        phase: &'a str,
        /// Items expected, when known.
        total: Option<u64>,
    },
    /// `n` more items are done.
    Advance(u64),
    /// The phase is over.
    Finish,
}

type Sink = Box<dyn Fn(ProgressEvent<'_>) + Send + Sync>;

/// Where progress events go.
pub struct Progress {
    sink: Option<Sink>,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("reporting", &self.sink.is_some())
            .finish()
    }
}

impl Progress {
    /// Reports nothing.
    pub fn none() -> Progress {
        Progress { sink: None }
    }

    /// Sends every event to `sink`.
    pub fn new(sink: impl Fn(ProgressEvent<'_>) + Send + Sync + 'static) -> Progress {
        Progress {
            sink: Some(Box::new(sink)),
        }
    }

    pub(crate) fn emit(&self, event: ProgressEvent<'_>) {
        if let Some(sink) = &self.sink {
            sink(event);
        }
    }
}
