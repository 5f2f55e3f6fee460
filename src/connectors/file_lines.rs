//! `FileLinesSource`: the lines of a text file, replayable by byte offset.
//!
//! A reader thread per subtask reads ahead into a small bounded queue, so the subtask's actor
//! never blocks on the file. Subtask `i` of `p` emits the lines whose index is `i` modulo `p`.
//! Its position (byte offset and line index of the next line) is operator state.

use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::time::Duration;

use crate::connectors::rate::RateLimit;
use crate::operator::{OperatorError, Source, SourcePoll, SubtaskInfo};
use crate::state::operator_state::{OperatorListState, OperatorStateStore};

/// Lines read ahead, at most this many per chunk.
const CHUNK_LINES: usize = 1024;
/// Chunks read ahead.
const CHUNKS_AHEAD: usize = 4;

/// One line and the position after it.
struct Line {
    text: String,
    next: Position,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Position {
    offset: u64,
    line: u64,
}

type Chunk = Result<Vec<Line>, String>;

/// The lines of `path`, without their line terminators.
pub struct FileLinesSource {
    path: PathBuf,
    rate: Option<f64>,
    limiter: Option<RateLimit>,
    position: Position,
    buffered: std::collections::VecDeque<Line>,
    reader: Option<Receiver<Chunk>>,
    state: Option<OperatorListState<Position>>,
}

impl Clone for FileLinesSource {
    fn clone(&self) -> Self {
        Self {
            path: self.path.clone(),
            rate: self.rate,
            limiter: None,
            position: Position::default(),
            buffered: Default::default(),
            reader: None,
            state: None,
        }
    }
}

impl FileLinesSource {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            rate: None,
            limiter: None,
            position: Position::default(),
            buffered: Default::default(),
            reader: None,
            state: None,
        }
    }

    /// At most `per_second` lines per second over all subtasks.
    pub fn with_rate(mut self, per_second: f64) -> Self {
        self.rate = Some(per_second);
        self
    }
}

fn read_ahead(
    path: PathBuf,
    from: Position,
    index: u64,
    parallelism: u64,
    tx: mpsc::SyncSender<Chunk>,
) {
    let run = || -> Result<(), String> {
        let file = std::fs::File::open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let mut reader = BufReader::with_capacity(64 * 1024, file);
        reader
            .seek(SeekFrom::Start(from.offset))
            .map_err(|e| format!("cannot seek in {}: {e}", path.display()))?;
        let mut pos = from;
        let mut chunk = Vec::with_capacity(CHUNK_LINES);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let n = reader
                .read_until(b'\n', &mut buf)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            if n == 0 {
                break;
            }
            let line_index = pos.line;
            pos = Position {
                offset: pos.offset + n as u64,
                line: pos.line + 1,
            };
            if line_index % parallelism != index {
                continue;
            }
            while matches!(buf.last(), Some(b'\n' | b'\r')) {
                buf.pop();
            }
            chunk.push(Line {
                text: String::from_utf8_lossy(&buf).into_owned(),
                next: pos,
            });
            if chunk.len() == CHUNK_LINES {
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK_LINES));
                if tx.send(Ok(full)).is_err() {
                    return Ok(());
                }
            }
        }
        if !chunk.is_empty() {
            let _ = tx.send(Ok(chunk));
        }
        Ok(())
    };
    if let Err(e) = run() {
        let _ = tx.send(Err(e));
    }
}

impl Source<String> for FileLinesSource {
    fn open(
        &mut self,
        info: &SubtaskInfo,
        state: &mut OperatorStateStore,
    ) -> Result<(), OperatorError> {
        let handle = state.list::<Position>("position")?;
        self.position = handle.get(state).first().copied().unwrap_or_default();
        self.state = Some(handle);
        self.limiter = self
            .rate
            .map(|r| RateLimit::new(r / f64::from(info.parallelism.max(1))));
        let (tx, rx) = mpsc::sync_channel(CHUNKS_AHEAD);
        let (path, from) = (self.path.clone(), self.position);
        let (index, parallelism) = (u64::from(info.index), u64::from(info.parallelism));
        std::thread::Builder::new()
            .name(format!("weir-file-{}-{}", info.uid, info.index))
            .spawn(move || read_ahead(path, from, index, parallelism, tx))
            .map_err(|e| OperatorError::with_source("cannot start the file reader thread", e))?;
        self.reader = Some(rx);
        Ok(())
    }

    fn poll(&mut self, out: &mut Vec<String>, max: usize) -> Result<SourcePoll, OperatorError> {
        if self.buffered.is_empty() {
            let Some(rx) = self.reader.as_ref() else {
                return Ok(SourcePoll::Exhausted);
            };
            match rx.try_recv() {
                Ok(Ok(lines)) => self.buffered.extend(lines),
                Ok(Err(e)) => return Err(OperatorError::msg(e)),
                Err(TryRecvError::Empty) => return Ok(SourcePoll::Idle(Duration::from_millis(1))),
                Err(TryRecvError::Disconnected) => {
                    self.reader = None;
                    return Ok(SourcePoll::Exhausted);
                }
            }
        }
        let mut n = max.min(self.buffered.len());
        if let Some(l) = self.limiter.as_mut() {
            n = l.allowed(n);
            if n == 0 {
                return Ok(SourcePoll::Idle(l.wait()));
            }
            l.record(n);
        }
        for line in self.buffered.drain(..n) {
            self.position = line.next;
            out.push(line.text);
        }
        Ok(SourcePoll::Ready)
    }

    fn snapshot(&mut self, state: &mut OperatorStateStore) -> Result<(), OperatorError> {
        let handle = self.state.as_ref().expect("opened");
        handle.update(state, vec![self.position]);
        Ok(())
    }
}
