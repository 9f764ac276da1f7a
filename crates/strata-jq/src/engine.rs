//! Bounded evaluation of jq filters: a worker thread per [`Engine`] owns the compiled
//! filters and their global variables (jaq's values are not `Send`), and runs one
//! evaluation at a time while the caller watches it.
//!
//! The caller waits for each evaluation and gives up on it when it runs past
//! [`Limits::time`], when the process has grown by more than [`Limits::memory`] since
//! it began (a filter that builds an endless array or string, or recurses deeper and
//! deeper: the worker's stack is large, so deep recursion shows as memory before it
//! can overflow), when it gives more than [`Limits::outputs`] results or
//! [`Limits::output_bytes`] of them, or when the caller's stop flag is raised (a
//! signal). A thread cannot be killed: the evaluation given up on is abandoned on its
//! worker, the engine refuses every later run, and the error tells the caller to stop
//! (the CLI exits, which ends the thread).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jaq_core::{unwrap_valr, Ctx, Vars};
use jaq_json::Val;
use serde_json::Value;

use crate::{compile, to_val, Data, Filter};

/// Bounds on one evaluation (one record, one object).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock time one evaluation may take.
    pub time: Duration,
    /// How much the process may grow (resident memory) while one evaluation runs.
    pub memory: u64,
    /// Results one evaluation may give.
    pub outputs: usize,
    /// Bytes of JSON text all the results of one evaluation may take together.
    pub output_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            time: Duration::from_secs(10),
            memory: 1 << 30,
            outputs: 10_000,
            output_bytes: 16 << 20,
        }
    }
}

/// The worker's stack: large, so that deep recursion grows memory (which the caller
/// sees and stops) long before it can overflow the stack (which would abort).
const WORKER_STACK: usize = 4 << 30;
const SMALL_STACK: usize = 256 << 20;
/// How often a waiting caller looks at the clock, the memory and its stop flag.
const POLL: Duration = Duration::from_millis(20);

enum Job {
    Compile {
        code: String,
        vars: Vec<String>,
    },
    Globals(Vec<Value>),
    /// Every input (as JSON text) through one filter, one after the other.
    Run {
        filter: usize,
        inputs: Vec<String>,
        vars: Option<Vec<Value>>,
    },
}

type Reply = Result<Outcome, String>;

enum Outcome {
    Compiled(usize),
    Done,
    /// Per input: its outputs, or why it failed.
    Outputs(Vec<Result<Vec<Value>, String>>),
}

struct Worker {
    jobs: Sender<Job>,
    replies: Receiver<Reply>,
    progress: Arc<Progress>,
}

/// Where the worker is: which input of the job, and since when (the limits are per
/// input, however many a job holds).
struct Progress {
    epoch: Instant,
    /// Nanoseconds after `epoch` at which the current input began.
    started: AtomicU64,
    index: AtomicUsize,
}

impl Progress {
    fn begin(&self, index: usize) {
        self.index.store(index, Ordering::SeqCst);
        let now = self.epoch.elapsed().as_nanos() as u64;
        self.started.store(now, Ordering::SeqCst);
    }

    fn running_for(&self) -> Duration {
        let started = Duration::from_nanos(self.started.load(Ordering::SeqCst));
        self.epoch.elapsed().saturating_sub(started)
    }
}

/// A batch run stopped at one input by a limit (or a signal): the engine is lost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stopped {
    /// The input it stopped at.
    pub index: usize,
    pub message: String,
}

/// How many inputs one job carries at most (each has its own limits; the job's
/// outputs are held until it ends).
pub const BATCH: usize = 256;

/// A worker thread holding compiled filters and one set of global variables.
pub struct Engine {
    worker: Mutex<Option<Worker>>,
    limits: Limits,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("limits", &self.limits)
            .finish()
    }
}

/// One compiled jq filter on an engine.
#[derive(Clone)]
pub struct Jq {
    engine: Arc<Engine>,
    filter: usize,
    code: String,
}

impl std::fmt::Debug for Jq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Jq({:?})", self.code)
    }
}

/// The expression for a message: whole if short, else its start.
fn shown(code: &str) -> String {
    if code.chars().count() <= 80 {
        format!("{code:?}")
    } else {
        format!("{:?}…", code.chars().take(64).collect::<String>())
    }
}

fn size(bytes: u64) -> String {
    if bytes >= 1 << 30 && bytes.is_multiple_of(1 << 30) {
        format!("{} GiB", bytes >> 30)
    } else {
        format!("{} MiB", bytes >> 20)
    }
}

/// The process's resident memory in bytes (Linux; `None` elsewhere).
fn resident() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

impl Engine {
    /// Starts a worker with these limits.
    pub fn new(limits: Limits) -> Result<Arc<Engine>, String> {
        let start = |stack: usize| -> std::io::Result<Worker> {
            let (jobs, job_rx) = mpsc::channel();
            let (reply_tx, replies) = mpsc::channel();
            let progress = Arc::new(Progress {
                epoch: Instant::now(),
                started: AtomicU64::new(0),
                index: AtomicUsize::new(0),
            });
            let theirs = progress.clone();
            std::thread::Builder::new()
                .name("strata-jq".into())
                .stack_size(stack)
                .spawn(move || serve(job_rx, reply_tx, limits, &theirs))?;
            Ok(Worker {
                jobs,
                replies,
                progress,
            })
        };
        // A system that refuses a 4 GiB stack reservation gets a smaller one.
        let worker = start(WORKER_STACK)
            .or_else(|_| start(SMALL_STACK))
            .map_err(|e| format!("cannot start a thread for jq: {e}"))?;
        Ok(Arc::new(Engine {
            worker: Mutex::new(Some(worker)),
            limits,
        }))
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Compiles `code` on this engine; `vars` name its global variables (`$name`).
    pub fn compile(self: &Arc<Self>, code: &str, vars: &[String]) -> Result<Jq, String> {
        let job = Job::Compile {
            code: code.to_owned(),
            vars: vars.to_vec(),
        };
        match self.submit(job, code, None)? {
            Outcome::Compiled(filter) => Ok(Jq {
                engine: self.clone(),
                filter,
                code: code.to_owned(),
            }),
            _ => Err("the jq worker answered out of turn".into()),
        }
    }

    /// Sets the global variables' values (in the order the filters were compiled
    /// with) for every later run: converted once, however many records follow.
    pub fn set_globals(&self, values: Vec<Value>) -> Result<(), String> {
        self.submit(Job::Globals(values), "", None).map(|_| ())
    }

    /// Hands one job to the worker and waits for it within the limits.
    fn submit(&self, job: Job, code: &str, stop: Option<&AtomicBool>) -> Result<Outcome, String> {
        self.submit_job(job, code, stop).map_err(|s| s.message)
    }

    /// Hands one job to the worker and waits for it, each input within the limits.
    fn submit_job(
        &self,
        job: Job,
        code: &str,
        stop: Option<&AtomicBool>,
    ) -> Result<Outcome, Stopped> {
        let mut guard = self.worker.lock().unwrap_or_else(|e| e.into_inner());
        let stopped = |index: usize, message: String| Stopped { index, message };
        let Some(worker) = guard.as_ref() else {
            return Err(stopped(0, format!(
                "jq expression {}: not run, an earlier evaluation on the same worker went past its limits; \
                 stop and fix that expression first",
                shown(code)
            )));
        };
        worker.progress.begin(0);
        if worker.jobs.send(job).is_err() {
            *guard = None;
            return Err(stopped(0, "the jq worker thread is gone".into()));
        }
        let mut base: Option<u64> = None;
        let limits = self.limits;
        let give_up = |why: String| {
            format!(
                "jq expression {} {why}; it was stopped and nothing it gave is used",
                shown(code)
            )
        };
        loop {
            match worker.replies.recv_timeout(POLL) {
                Ok(reply) => return reply.map_err(|e| stopped(0, e)),
                Err(RecvTimeoutError::Disconnected) => {
                    *guard = None;
                    return Err(stopped(
                        0,
                        format!(
                            "jq expression {}: the jq worker thread ended (it panicked)",
                            shown(code)
                        ),
                    ));
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            let why = if stop.is_some_and(|s| s.load(Ordering::SeqCst)) {
                Some("was interrupted (a signal asked to stop)".to_owned())
            } else if worker.progress.running_for() > limits.time {
                Some(format!(
                    "ran longer than {} s, the limit for one evaluation (does it loop, e.g. a recursive def with no base case?)",
                    limits.time.as_secs_f64()
                ))
            } else {
                let now = resident();
                match (base, now) {
                    (None, Some(now)) => {
                        base = Some(now);
                        None
                    }
                    (Some(b), Some(now)) if now.saturating_sub(b) > limits.memory => Some(format!(
                        "used more than {} of memory, the limit for one evaluation (an endless repeat, a huge string, or recursion too deep?)",
                        size(limits.memory)
                    )),
                    _ => None,
                }
            };
            if let Some(why) = why {
                // The worker is still busy with it: abandon the worker.
                let index = worker.progress.index.load(Ordering::SeqCst);
                *guard = None;
                return Err(stopped(index, give_up(why)));
            }
        }
    }
}

impl Jq {
    /// Compiles `code` on an engine of its own with the default [`Limits`].
    pub fn compile(code: &str, vars: &[String]) -> Result<Jq, String> {
        Engine::new(Limits::default())?.compile(code, vars)
    }

    pub fn code(&self) -> &str {
        &self.code
    }

    /// Runs the filter on `input` with the engine's global variables; every output.
    pub fn run(&self, input: &Value, stop: Option<&AtomicBool>) -> Result<Vec<Value>, String> {
        self.one(input, None, stop)
    }

    /// Runs the filter on `input` with these values of its global variables.
    pub fn run_with(
        &self,
        input: &Value,
        vars: Vec<Value>,
        stop: Option<&AtomicBool>,
    ) -> Result<Vec<Value>, String> {
        self.one(input, Some(vars), stop)
    }

    fn one(
        &self,
        input: &Value,
        vars: Option<Vec<Value>>,
        stop: Option<&AtomicBool>,
    ) -> Result<Vec<Value>, String> {
        let job = Job::Run {
            filter: self.filter,
            inputs: vec![input.to_string()],
            vars,
        };
        match self.engine.submit(job, &self.code, stop)? {
            Outcome::Outputs(mut out) if out.len() == 1 => out.pop().expect("one result"),
            _ => Err("the jq worker answered out of turn".into()),
        }
    }

    /// Runs the filter on each input with the engine's global variables, in jobs of up
    /// to [`BATCH`] inputs (one hand-over to the worker per job, not per input): per
    /// input its outputs or its error. Each input has the limits of one evaluation; one
    /// that goes past them stops the run, and the engine, at that input ([`Stopped`]).
    pub fn run_many(
        &self,
        inputs: &[&Value],
        stop: Option<&AtomicBool>,
    ) -> Result<Vec<Result<Vec<Value>, String>>, Stopped> {
        let mut results = Vec::with_capacity(inputs.len());
        for (n, chunk) in inputs.chunks(BATCH).enumerate() {
            let job = Job::Run {
                filter: self.filter,
                inputs: chunk.iter().map(|v| v.to_string()).collect(),
                vars: None,
            };
            match self.engine.submit_job(job, &self.code, stop) {
                Ok(Outcome::Outputs(out)) if out.len() == chunk.len() => results.extend(out),
                Ok(_) => {
                    return Err(Stopped {
                        index: n * BATCH,
                        message: "the jq worker answered out of turn".into(),
                    })
                }
                Err(stopped) => {
                    return Err(Stopped {
                        index: n * BATCH + stopped.index,
                        ..stopped
                    })
                }
            }
        }
        Ok(results)
    }
}

/// The worker: compiles, keeps globals, runs; one job at a time.
fn serve(jobs: Receiver<Job>, replies: Sender<Reply>, limits: Limits, progress: &Progress) {
    let mut filters: Vec<(Filter, String)> = Vec::new();
    let mut globals: Vec<Val> = Vec::new();
    for job in jobs {
        let reply = match job {
            Job::Compile { code, vars } => compile(&code, &vars).map(|f| {
                filters.push((f, code));
                Outcome::Compiled(filters.len() - 1)
            }),
            Job::Globals(values) => values
                .iter()
                .map(to_val)
                .collect::<Result<Vec<_>, _>>()
                .map(|v| {
                    globals = v;
                    Outcome::Done
                }),
            Job::Run {
                filter,
                inputs,
                vars,
            } => match filters.get(filter) {
                None => Err("no such jq filter".into()),
                Some((f, code)) => {
                    let vars = match vars {
                        Some(values) => values.iter().map(to_val).collect::<Result<Vec<_>, _>>(),
                        None => Ok(globals.clone()),
                    };
                    vars.map(|vars| {
                        let results = inputs
                            .iter()
                            .enumerate()
                            .map(|(i, input)| {
                                progress.begin(i);
                                run(f, code, input, vars.clone(), &limits)
                            })
                            .collect();
                        Outcome::Outputs(results)
                    })
                }
            },
        };
        if replies.send(reply).is_err() {
            return;
        }
    }
}

fn run(
    f: &Filter,
    code: &str,
    input: &str,
    vars: Vec<Val>,
    limits: &Limits,
) -> Result<Vec<Value>, String> {
    let ctx = Ctx::<Data>::new(&f.lut, Vars::new(vars));
    let mut out = Vec::new();
    let mut bytes = 0usize;
    let input = jaq_json::read::parse_single(input.as_bytes()).map_err(|e| format!("{e}"))?;
    for result in f.id.run((ctx, input)).map(unwrap_valr) {
        let val = result.map_err(|e| format!("jq expression {} failed: {e}", shown(code)))?;
        if out.len() == limits.outputs {
            return Err(format!(
                "jq expression {} gave more than {} results, the limit for one evaluation",
                shown(code),
                limits.outputs
            ));
        }
        let text = val.to_string();
        bytes += text.len();
        if bytes > limits.output_bytes {
            return Err(format!(
                "jq expression {} gave more than {} of output, the limit for one evaluation",
                shown(code),
                size(limits.output_bytes as u64)
            ));
        }
        let value = serde_json::from_str(&text).map_err(|e| {
            format!(
                "jq expression {} produced a value that is not JSON: {e}",
                shown(code)
            )
        })?;
        out.push(value);
    }
    Ok(out)
}
