//! One forward connection: handshake (when a shared key is set), then
//! read → cut into messages → decode and journal off the runtime → into
//! the pipeline → acknowledge the chunks, until the client closes, a
//! message is refused or the source stops. The buffer and the decoded
//! events are held against the source's [`ByteBudget`](crate::memory::ByteBudget);
//! waiting for memory stops reading, so TCP pushes back on the client.

use super::decode::{self, DecodeError, BYTES_PER_VALUE};
use super::frame::{Frame, Framer};
use super::handshake;
use super::record::RecordMapper;
use super::{Intake, Refusal, MESSAGE_TIMEOUT};
use crate::buffer::journal::NotSent;
use crate::event::{Event, EventBatch};
use crate::memory::{NoRoom, Reservation};
use crate::pipeline::acks::AckToken;
use bytes::{Bytes, BytesMut};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// Bytes read from the socket at a time.
pub const READ_CHUNK: usize = 64 << 10;

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
        Ok(frames)
    }

    /// Reads more bytes; `false` at the client's end of stream.
    async fn read_more(&mut self) -> Result<bool, Refusal> {
        let deadline = Instant::now() + MESSAGE_TIMEOUT;
        let want = self.buf.len() + READ_CHUNK;
        self.hold(want, deadline).await?;
        self.buf.reserve(READ_CHUNK);
        let partial = !self.buf.is_empty();
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
        let decoding: usize = frames
            .iter()
            .map(|(_, f)| f.len + f.values.saturating_mul(BYTES_PER_VALUE))
            .sum();
        self.hold(self.buf.len() + decoding, deadline).await?;
        let mut memory = std::mem::replace(&mut self.memory, self.intake.budget.reserve());
        let intake = Arc::clone(&self.intake);
        let mut mapper = self
            .mapper
            .take()
            .unwrap_or_else(|| RecordMapper::new(&intake.source, &intake.host_name));
        let runtime = tokio::runtime::Handle::current();
        let done = tokio::task::spawn_blocking(move || {
            let taken = decode_and_journal(
                &intake,
                &runtime,
                &mut memory,
                &mut mapper,
                &frames,
                deadline,
            );
            (taken, memory, mapper)
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
        let Taken {
            batch,
            token,
            chunks,
            messages,
            refusal,
        } = taken;
        let events = batch.len() as u64;
        if !batch.is_empty() {
            let sent = self
                .intake
                .out
                .send_journaled_within(batch, token, MESSAGE_TIMEOUT)
                .await;
            match sent {
                Ok(()) => {}
                Err(NotSent::Closed) => return Err(Refusal::Closed),
                Err(NotSent::Full) => return Err(Refusal::Full),
            }
        }
        self.intake.taken(messages, events);
        // The events now count against the pipeline's channels.
        self.memory.shrink_to(self.buf.len());
        let mut acks = Vec::new();
        for chunk in chunks {
            let ack = rmpv::Value::Map(vec![(rmpv::Value::from("ack"), rmpv::Value::from(chunk))]);
            // Writing into a Vec cannot fail.
            let _ = rmpv::encode::write_value(&mut acks, &ack);
        }
        if !acks.is_empty() {
            self.write(&acks).await?;
        }
        match refusal {
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

/// What decoding a run of messages gave.
struct Taken {
    batch: EventBatch,
    token: Option<AckToken>,
    /// Chunk ids to acknowledge once the batch is in the pipeline.
    chunks: Vec<String>,
    messages: u64,
    /// The message that stopped the run, after the good ones before it.
    refusal: Option<Refusal>,
}

fn decode_and_journal(
    intake: &Intake,
    runtime: &tokio::runtime::Handle,
    memory: &mut Reservation,
    mapper: &mut RecordMapper,
    frames: &[(Bytes, Frame)],
    deadline: Instant,
) -> Taken {
    let mut taken = Taken {
        batch: EventBatch::from_source(&intake.source, frames.len()),
        token: None,
        chunks: Vec::new(),
        messages: 0,
        refusal: None,
    };
    let budget_total = intake.budget.total();
    for (bytes, _) in frames {
        let held = memory.bytes();
        let mut hold = |inflated: usize| {
            let want = held.saturating_add(inflated);
            memory
                .grow_to_blocking(runtime, want, deadline)
                .map_err(|e| match e {
                    NoRoom::Never => DecodeError::TooLarge(format!(
                        "an inflated message needing {want} bytes exceeds the source's max_memory ({budget_total})"
                    )),
                    NoRoom::NotNow => DecodeError::TooLarge("no memory came free to inflate a message".into()),
                })
        };
        // A refused message's events stay out with it: its chunk is never acked.
        let mut events = Vec::new();
        let decoded = decode::message(
            bytes,
            intake.max_message_bytes,
            &mut hold,
            &mut |tag, time, record| {
                events.push(Event::Log(mapper.log(tag, time, record)));
            },
        );
        match decoded {
            Ok(decoded) => {
                for event in events {
                    taken.batch.push(event);
                }
                taken.messages += 1;
                taken.chunks.extend(decoded.chunk);
            }
            Err(DecodeError::Malformed(m)) => {
                taken.refusal = Some(Refusal::Malformed(m));
                break;
            }
            Err(DecodeError::TooLarge(m)) => {
                taken.refusal = Some(Refusal::TooLarge(m));
                break;
            }
        }
    }
    if !taken.batch.is_empty() {
        taken.token = intake.out.journal(&mut taken.batch);
    }
    taken
}
