//! One forward connection: handshake (when a shared key is set), then
//! read → cut into messages → decode off the runtime, one entry at a time,
//! into batches of about [`EVENT_BATCH_BYTES`] that are journaled and put
//! into the pipeline → acknowledge the chunks, until the client closes, a
//! message is refused or the source stops. The buffer and the decoding
//! are held against the source's [`ByteBudget`](crate::memory::ByteBudget);
//! waiting for memory stops reading, so TCP pushes back on the client.
//! Messages over [`SMALL_MESSAGE`] take turns (one is received and decoded
//! at a time), so partly received large messages never hold the budget
//! while waiting for it; a message must be whole within
//! [`MESSAGE_TIMEOUT`] of its first byte, so a trickling client cannot
//! keep the turn.

use super::decode::{self, DecodeError, Entries, Hold, Record};
use super::frame::{Frame, Framer};
use super::handshake;
use super::record::RecordMapper;
use super::{Intake, Refusal, MESSAGE_TIMEOUT};
use crate::buffer::journal::NotSent;
use crate::event::{Event, EventBatch};
use crate::memory::{NoRoom, Reservation};
use bytes::{Bytes, BytesMut};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// Bytes read from the socket at a time.
pub const READ_CHUNK: usize = 64 << 10;

/// A connection buffering more than this takes the source's large-message
/// turn ([`Intake::large`]) before it reads on.
pub const SMALL_MESSAGE: usize = 2 * READ_CHUNK;

/// The most a large message holds while it arrives and is decoded: its
/// buffer (which may double as it grows), its gzip payload inflated, and a
/// batch of events.
pub fn large_message_memory(max_message_bytes: usize) -> usize {
    let buffer = 2 * (max_message_bytes + READ_CHUNK);
    buffer + max_message_bytes + 2 * EVENT_BATCH_BYTES
}

/// Messages already buffered are taken together up to this many bytes, so
/// a client sending one small message per event still fills batches.
const BATCH_BYTES: usize = 1 << 20;

/// Largest PING accepted during the handshake.
const MAX_PING_BYTES: usize = 64 << 10;

/// Serves one accepted connection to its end.
pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    intake: Arc<Intake>,
    cancel: CancellationToken,
) {
    let mut connection = Connection {
        memory: intake.budget.reserve(),
        mapper: Some(RecordMapper::new(&intake.source, &intake.host_name)),
        stream,
        peer,
        intake: Arc::clone(&intake),
        cancel,
        buf: BytesMut::new(),
        framer: Framer::default(),
        failed: None,
        large: None,
        started: Instant::now(),
    };
    if let Err(refusal) = connection.run().await {
        intake.refused(peer, &refusal);
    }
}

struct Connection {
    stream: TcpStream,
    peer: SocketAddr,
    intake: Arc<Intake>,
    cancel: CancellationToken,
    buf: BytesMut,
    framer: Framer,
    memory: Reservation,
    /// Moved into the decoding thread and back.
    mapper: Option<RecordMapper>,
    /// A refusal met after good messages, raised once they are taken.
    failed: Option<Refusal>,
    /// The large-message turn, while this connection has one.
    large: Option<tokio::sync::OwnedSemaphorePermit>,
    /// When the first byte of the message being received arrived (or the
    /// message before it was cut off the buffer): it must be whole within
    /// [`MESSAGE_TIMEOUT`] of this, however slowly it trickles in.
    started: Instant,
}

impl Connection {
    async fn run(&mut self) -> Result<(), Refusal> {
        if let Some(shared) = self.intake.shared_key.clone() {
            self.handshake(&shared).await?;
        }
        loop {
            let frames = self.buffered_messages()?;
            if frames.is_empty() {
                if !self.read_more().await? {
                    return Ok(());
                }
                continue;
            }
            self.take(frames).await?;
            if self.buf.len() <= SMALL_MESSAGE {
                // Decoded and in the pipeline: the next large message's turn.
                self.large = None;
            }
            if let Some(refusal) = self.failed.take() {
                return Err(refusal);
            }
        }
    }

    async fn handshake(&mut self, shared: &handshake::SharedKey) -> Result<(), Refusal> {
        let nonce = handshake::nonce();
        self.write(&handshake::helo(&nonce)).await?;
        let ping = loop {
            match self.framer.next(&self.buf) {
                Ok(Some(frame)) => break self.buf.split_to(frame.len).freeze(),
                Ok(None) if self.framer.needs() > MAX_PING_BYTES => {
                    return Err(Refusal::Auth("the PING message is too large".into()))
                }
                Ok(None) => {}
                Err(e) => return Err(Refusal::Auth(format!("expected a PING message: {e}"))),
            }
            if !self.read_more().await? {
                return Err(Refusal::Auth("the client closed before its PING".into()));
            }
        };
        let (pong, result) = handshake::answer_ping(&ping, &nonce, shared);
        // A refused client still gets its PONG with the reason.
        let written = self.write(&pong).await;
        match result {
            Ok(client) => {
                tracing::debug!(source = %self.intake.source, peer = %self.peer, client, "forward client authenticated");
                written
            }
            Err(e) => Err(Refusal::Auth(e.to_string())),
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), Refusal> {
        // A client gone before its answer resends what it sent: nothing to count.
        self.stream
            .write_all(bytes)
            .await
            .map_err(|_| Refusal::Closed)
    }

    /// The whole messages at the front of the buffer (up to [`BATCH_BYTES`]).
    /// A refusal behind good messages waits in `failed` until they are taken.
    fn buffered_messages(&mut self) -> Result<Vec<(Bytes, Frame)>, Refusal> {
        let mut frames = Vec::new();
        let mut bytes = 0;
        while bytes < BATCH_BYTES {
            let refusal = match self.framer.next(&self.buf) {
                Ok(Some(frame)) => {
                    bytes += frame.len;
                    frames.push((self.buf.split_to(frame.len).freeze(), frame));
                    continue;
                }
                Ok(None) if self.framer.needs() > self.intake.max_message_bytes => {
                    Refusal::TooLarge(format!(
                        "a message of at least {} bytes exceeds max_message_bytes ({})",
                        self.framer.needs(),
                        self.intake.max_message_bytes
                    ))
                }
                Ok(None) => break,
                Err(e) => Refusal::Malformed(format!("not a msgpack forward message: {e}")),
            };
            if frames.is_empty() {
                return Err(refusal);
            }
            self.failed = Some(refusal);
            break;
        }
        if !frames.is_empty() {
            self.started = Instant::now();
        }
        Ok(frames)
    }

    /// Reads more bytes; `false` at the client's end of stream.
    async fn read_more(&mut self) -> Result<bool, Refusal> {
        let partial = !self.buf.is_empty();
        if !partial {
            // An idle connection holds neither a buffer nor memory.
            self.buf = BytesMut::new();
            self.memory.shrink_to(0);
            tokio::select! {
                _ = self.cancel.cancelled() => return Err(Refusal::Closed),
                ready = self.stream.readable() => {
                    if ready.is_err() {
                        return Ok(false);
                    }
                }
            }
            self.started = Instant::now();
        }
        let deadline = self.started + MESSAGE_TIMEOUT;
        if self.buf.len() + READ_CHUNK > SMALL_MESSAGE && self.large.is_none() {
            let turn = Arc::clone(&self.intake.large).acquire_owned();
            let turn = tokio::select! {
                _ = self.cancel.cancelled() => return Err(Refusal::Closed),
                turn = tokio::time::timeout_at(deadline.into(), turn) => turn,
            };
            match turn {
                Ok(Ok(permit)) => self.large = Some(permit),
                Ok(Err(_)) => return Err(Refusal::Closed),
                Err(_) => return Err(Refusal::Busy),
            }
        }
        self.hold(self.buf.len() + READ_CHUNK, deadline).await?;
        self.buf.reserve(READ_CHUNK);
        // `reserve` may take more than asked (it doubles): hold what it took.
        self.hold(self.buf.capacity(), deadline).await?;
        let read = async {
            if partial {
                tokio::time::timeout_at(deadline.into(), self.stream.read_buf(&mut self.buf))
                    .await
                    .map_err(|_| Refusal::Timeout)
            } else {
                Ok(self.stream.read_buf(&mut self.buf).await)
            }
        };
        let read = tokio::select! {
            _ = self.cancel.cancelled() => return Err(Refusal::Closed),
            read = read => read?,
        };
        match read {
            Ok(0) if partial => Err(Refusal::Malformed(
                "the connection closed in the middle of a message".into(),
            )),
            Ok(0) => Ok(false),
            Ok(_) => Ok(true),
            Err(e) => {
                tracing::debug!(source = %self.intake.source, peer = %self.peer, error = %e, "forward connection failed");
                Ok(false)
            }
        }
    }

    async fn hold(&mut self, bytes: usize, deadline: Instant) -> Result<(), Refusal> {
        let grown = tokio::select! {
            _ = self.cancel.cancelled() => return Err(Refusal::Closed),
            grown = self.memory.grow_to(bytes, deadline) => grown,
        };
        grown.map_err(|e| no_room(e, bytes, self.intake.budget.total()))
    }

    /// Decodes and journals `frames` off the runtime, puts their events
    /// into the pipeline and acknowledges their chunks.
    async fn take(&mut self, frames: Vec<(Bytes, Frame)>) -> Result<(), Refusal> {
        let deadline = Instant::now() + MESSAGE_TIMEOUT;
        // The leftover buffer and the messages' own bytes; what decoding
        // them takes is held as it goes.
        let raw: usize = frames.iter().map(|(_, f)| f.len).sum();
        self.hold(self.buf.len() + raw, deadline).await?;
        let memory = std::mem::replace(&mut self.memory, self.intake.budget.reserve());
        let intake = Arc::clone(&self.intake);
        let mapper = self
            .mapper
            .take()
            .unwrap_or_else(|| RecordMapper::new(&intake.source, &intake.host_name));
        let runtime = tokio::runtime::Handle::current();
        let done = tokio::task::spawn_blocking(move || {
            let mut run = Decoding {
                intake: &intake,
                runtime: &runtime,
                memory,
                fixed: 0,
                inflated: 0,
                mapper,
                batch: EventBatch::from_source(&intake.source, 0),
                deadline,
                stopped: None,
                flushes: 0,
            };
            run.fixed = run.memory.bytes();
            let taken = run.messages(&frames);
            (taken, run.memory, run.mapper)
        })
        .await;
        let (taken, memory, mapper) = match done {
            Ok(done) => done,
            Err(e) => {
                tracing::error!(source = %self.intake.source, error = %e, "decoding forward messages failed");
                return Err(Refusal::Closed);
            }
        };
        self.memory = memory;
        self.mapper = Some(mapper);
        self.memory.shrink_to(self.buf.len());
        let mut acks = Vec::new();
        for chunk in taken.chunks {
            let ack = rmpv::Value::Map(vec![(rmpv::Value::from("ack"), rmpv::Value::from(chunk))]);
            // Writing into a Vec cannot fail.
            let _ = rmpv::encode::write_value(&mut acks, &ack);
        }
        if !acks.is_empty() {
            self.write(&acks).await?;
        }
        match taken.refusal {
            Some(refusal) => Err(refusal),
            None => Ok(()),
        }
    }
}

fn no_room(e: NoRoom, bytes: usize, total: usize) -> Refusal {
    match e {
        NoRoom::Never => Refusal::TooLarge(format!(
            "a message needing {bytes} bytes to decode exceeds the source's max_memory ({total})"
        )),
        NoRoom::NotNow => Refusal::Busy,
    }
}

/// Events are put into the pipeline in batches of about this size (as
/// events count themselves), however large the message they come from.
const EVENT_BATCH_BYTES: usize = 1 << 20;

/// What taking a run of messages gave.
struct Taken {
    /// Chunk ids to acknowledge: their events are in the pipeline.
    chunks: Vec<String>,
    /// The message that stopped the run, after the good ones before it.
    refusal: Option<Refusal>,
}

/// Decoding a run of messages on a blocking thread: entries become events
/// one at a time, and every [`EVENT_BATCH_BYTES`] of events are journaled
/// and put into the pipeline (waiting through `runtime`), so memory holds
/// one batch however large a message is.
struct Decoding<'a> {
    intake: &'a Intake,
    runtime: &'a tokio::runtime::Handle,
    memory: Reservation,
    /// Held throughout: the leftover buffer and the messages' bytes.
    fixed: usize,
    /// The current message's inflated payload.
    inflated: usize,
    mapper: RecordMapper,
    batch: EventBatch,
    deadline: Instant,
    /// Why the entries stopped being taken ([`DecodeError::Stopped`]).
    stopped: Option<Refusal>,
    /// Batches put into the pipeline so far.
    flushes: usize,
}

impl Decoding<'_> {
    fn messages(&mut self, frames: &[(Bytes, Frame)]) -> Taken {
        let mut taken = Taken {
            chunks: Vec::new(),
            refusal: None,
        };
        let mut messages = 0;
        for (bytes, _) in frames {
            self.inflated = 0;
            let (events, event_bytes, flushes) = (self.batch.len(), self.batch.bytes, self.flushes);
            let decoded = decode::message(bytes, self.intake.max_message_bytes, self);
            match decoded {
                Ok(decoded) => {
                    messages += 1;
                    taken.chunks.extend(decoded.chunk);
                }
                Err(e) => {
                    if self.flushes == flushes {
                        // The refused message's events stay out with it
                        // (unless a batch of them already went: see flush).
                        self.batch.events.truncate(events);
                        self.batch.bytes = event_bytes;
                    }
                    taken.refusal = Some(match e {
                        DecodeError::Malformed(m) => Refusal::Malformed(m),
                        DecodeError::TooLarge(m) => Refusal::TooLarge(m),
                        DecodeError::Stopped => self.stopped.take().unwrap_or(Refusal::Closed),
                    });
                    break;
                }
            }
        }
        if let Err(refusal) = self.flush() {
            // Nothing is acknowledged that is not in the pipeline.
            taken.chunks.clear();
            taken.refusal = Some(refusal);
        }
        self.intake.messages_taken(messages);
        taken
    }

    /// Holds the fixed part, the inflated payload, the batch so far and `more`.
    fn hold_more(&mut self, more: usize) -> Result<(), Refusal> {
        let want = self.fixed + self.inflated + self.batch.bytes + more;
        let total = self.intake.budget.total();
        self.memory
            .grow_to_blocking(self.runtime, want, self.deadline)
            .map_err(|e| no_room(e, want, total))
    }

    /// Journals the batch so far and puts it into the pipeline.
    fn flush(&mut self) -> Result<(), Refusal> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let mut batch = std::mem::replace(
            &mut self.batch,
            EventBatch::from_source(&self.intake.source, 0),
        );
        let token = self.intake.out.journal(&mut batch);
        let events = batch.len() as u64;
        let sent = self.runtime.block_on(self.intake.out.send_journaled_within(
            batch,
            token,
            MESSAGE_TIMEOUT,
        ));
        self.flushes += 1;
        // The events now count against the pipeline's channels.
        self.memory.shrink_to(self.fixed + self.inflated);
        match sent {
            Ok(()) => {
                self.intake.events_taken(events);
                Ok(())
            }
            Err(NotSent::Closed) => Err(Refusal::Closed),
            Err(NotSent::Full) => Err(Refusal::Full),
        }
    }

    fn stop(&mut self, refusal: Refusal) -> DecodeError {
        self.stopped = Some(refusal);
        DecodeError::Stopped
    }
}

impl Entries for Decoding<'_> {
    fn hold(&mut self, hold: Hold) -> Result<(), DecodeError> {
        let more = match hold {
            Hold::Inflated(n) => {
                self.inflated = n;
                0
            }
            Hold::Value(n) => n,
        };
        self.hold_more(more).map_err(|r| self.stop(r))
    }

    fn entry(
        &mut self,
        tag: &str,
        time_unix_nano: u64,
        record: Record<'_>,
    ) -> Result<(), DecodeError> {
        let event = Event::Log(self.mapper.log(tag, time_unix_nano, record));
        self.batch.push(event);
        if self.batch.bytes >= EVENT_BATCH_BYTES {
            self.flush().map_err(|r| self.stop(r))?;
        }
        Ok(())
    }
}
