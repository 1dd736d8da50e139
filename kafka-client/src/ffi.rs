//! The crate's only calls into librdkafka's C API, for what the `rdkafka` crate does
//! not wrap: batch reads from a queue of chosen partitions (into borrowed or owned
//! messages), producing through cached topic handles, and IncrementalAlterConfigs.
//!
//! This and `delivery` (the delivery reports' opaque pointers) are the modules
//! allowed `unsafe` (the crate denies `unsafe_code` elsewhere). Everything this one
//! exports is safe to call: each type owns what keeps its pointers valid (a queue
//! owns a reference to its consumer, a message borrows its queue, topic handles live
//! beside their producer and go first), and each `unsafe` block says why it is sound.

use std::any::Any;
use std::ffi::{c_char, c_void, CStr, CString};
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::ptr::{self, NonNull};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use rdkafka::bindings as rd;
use rdkafka::client::{Client, ClientContext};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, Partitioner, Producer, ProducerContext};
use rdkafka::util::IntoOpaque;

use crate::record::{Header, Headers, TimestampType};
use crate::topic_producer::OutgoingRecord;

fn c_int_millis(timeout: Duration) -> i32 {
    i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX)
}

// ---------------------------------------------------------------------------------
// Consumer queues and their messages
// ---------------------------------------------------------------------------------

/// A librdkafka queue created on one consumer. It holds the consumer, so the queue
/// (and every message read from it, which borrows it) never outlives the client.
pub(crate) struct ConsumerQueue<C: ConsumerContext + 'static> {
    consumer: Arc<BaseConsumer<C>>,
    queue: NonNull<rd::rd_kafka_queue_t>,
    /// Called by librdkafka when the queue becomes non-empty; boxed twice so that
    /// librdkafka holds a thin pointer. Disabled before it is freed (see `Drop`).
    nonempty: Option<Box<NonEmptyCallback>>,
}

type NonEmptyCallback = Box<dyn Fn() + Send + Sync>;

/// Messages copied per `rd_kafka_consume_batch_queue` call into owned messages: the
/// pointers go through an array on the stack, so a read allocates nothing.
const OWNED_CHUNK: usize = 64;

// SAFETY: librdkafka queues may be used from any thread, the handle is owned and
// destroyed once, and the consumer it holds is itself Send and Sync. Not Sync: nothing
// here needs sharing, and the users keep per-thread state next to it.
unsafe impl<C: ConsumerContext + 'static> Send for ConsumerQueue<C> where Arc<BaseConsumer<C>>: Send {}

impl<C: ConsumerContext + 'static> ConsumerQueue<C> {
    /// A new, empty queue on `consumer`.
    pub(crate) fn new(consumer: Arc<BaseConsumer<C>>) -> KafkaResult<Self> {
        // SAFETY: the client pointer is valid while `consumer` is alive.
        let queue = unsafe { rd::rd_kafka_queue_new(consumer.client().native_ptr()) };
        let queue = NonNull::new(queue).ok_or_else(|| {
            KafkaError::ClientCreation("librdkafka could not create a fetch queue".to_owned())
        })?;
        Ok(ConsumerQueue {
            consumer,
            queue,
            nonempty: None,
        })
    }

    /// Calls `callback` (on a librdkafka thread) whenever the queue goes from empty
    /// to non-empty, replacing any earlier callback. Keep it short: it runs while
    /// librdkafka enqueues.
    pub(crate) fn set_nonempty_callback(&mut self, callback: impl Fn() + Send + Sync + 'static) {
        let callback: Box<NonEmptyCallback> = Box::new(Box::new(callback));
        let opaque = ptr::from_ref::<NonEmptyCallback>(&callback)
            .cast_mut()
            .cast();
        // SAFETY: the queue is alive; `opaque` points to the boxed callback, which
        // `self` keeps until it is replaced or the queue is dropped, and librdkafka
        // stops calling the old one when this call returns.
        unsafe {
            rd::rd_kafka_queue_cb_event_enable(
                self.queue.as_ptr(),
                Some(nonempty_trampoline),
                opaque,
            )
        };
        self.nonempty = Some(callback);
    }

    /// Hands `sink` up to `max` queued messages without waiting, as messages that own
    /// their librdkafka message and keep the consumer alive, so they may outlive
    /// `self`. Returns how many it handed.
    pub(crate) fn consume_owned(&self, max: usize, mut sink: impl FnMut(OwnedMessage)) -> usize
    where
        BaseConsumer<C>: Send + Sync,
    {
        // Not initialised: a single-record read would otherwise clear the whole array.
        let mut pointers = [MaybeUninit::<*mut rd::rd_kafka_message_t>::uninit(); OWNED_CHUNK];
        let mut total = 0;
        while total < max {
            let want = (max - total).min(OWNED_CHUNK);
            // SAFETY: the queue is alive (owned by `self`) and `pointers` has room for
            // `want` message pointers; a zero timeout never blocks.
            let n = unsafe {
                rd::rd_kafka_consume_batch_queue(
                    self.queue.as_ptr(),
                    0,
                    pointers.as_mut_ptr().cast(),
                    want,
                )
            };
            let n = usize::try_from(n).unwrap_or(0).min(want);
            for slot in &pointers[..n] {
                // SAFETY: librdkafka wrote the first `n` slots.
                let pointer = unsafe { slot.assume_init() };
                if let Some(ptr) = NonNull::new(pointer) {
                    let client: Arc<dyn Any + Send + Sync> = self.consumer.clone();
                    sink(OwnedMessage {
                        message: Message {
                            ptr,
                            queue: PhantomData,
                        },
                        headers: OnceLock::new(),
                        _client: client,
                    });
                }
            }
            total += n;
            if n < want {
                break;
            }
        }
        total
    }

    /// The consumer the queue belongs to.
    pub(crate) fn consumer(&self) -> &Arc<BaseConsumer<C>> {
        &self.consumer
    }

    /// One `rd_kafka_consume_batch_queue` call: waits up to `timeout` for each message
    /// until `max` are read, appends them to `out`, and returns how many it appended.
    pub(crate) fn consume_batch<'q>(
        &'q self,
        out: &mut Vec<Message<'q>>,
        max: usize,
        timeout: Duration,
    ) -> usize {
        if max == 0 {
            return 0;
        }
        out.reserve(max);
        let start = out.len();
        // SAFETY: the queue is alive (owned by `self`); the spare capacity of `out` holds
        // `max` slots, and `Message` is a transparent non-null message pointer, so
        // librdkafka can write a message pointer into each of the first `n` slots.
        let n = unsafe {
            rd::rd_kafka_consume_batch_queue(
                self.queue.as_ptr(),
                c_int_millis(timeout),
                out.as_mut_ptr()
                    .add(start)
                    .cast::<*mut rd::rd_kafka_message_t>(),
                max,
            )
        };
        let n = usize::try_from(n).unwrap_or(0).min(max);
        // SAFETY: librdkafka initialised the first `n` slots past `start` with non-null
        // messages, now owned by `out` (each destroyed once, when dropped).
        unsafe { out.set_len(start + n) };
        n
    }

    /// The partition's low and high watermarks from librdkafka's last fetch response
    /// (`rd_kafka_get_watermark_offsets`, no broker round trip). `None` before the
    /// first fetch response for the partition, or for a topic name with a NUL byte.
    pub(crate) fn cached_watermarks(&self, topic: &str, partition: i32) -> Option<(i64, i64)> {
        let name = CString::new(topic).ok()?;
        let (mut low, mut high) = (-1_i64, -1_i64);
        // SAFETY: `rk` is alive while `self` holds the consumer; the name and the out
        // pointers are valid for the duration of the call.
        let err = unsafe {
            rd::rd_kafka_get_watermark_offsets(
                self.rk(),
                name.as_ptr(),
                partition,
                &mut low,
                &mut high,
            )
        };
        (err == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0)
            .then_some((low, high))
    }

    /// Forwards the partition's fetched messages to this queue, messages waiting in
    /// the partition's own queue included. `false` when librdkafka has no queue for
    /// it (a topic name with a NUL byte).
    pub(crate) fn route_partition(&self, topic: &str, partition: i32) -> bool {
        self.forward(topic, partition, self.queue.as_ptr())
    }

    /// How many operations (records and events) wait on the consumer group's queue,
    /// which `BaseConsumer::poll` reads (the main queue for a consumer without a group).
    pub(crate) fn consumer_queue_len(&self) -> usize {
        let rk = self.rk();
        // SAFETY: `rk` is alive while `self` holds the consumer; the queue handle is
        // checked for null and destroyed once after use.
        unsafe {
            let mut queue = rd::rd_kafka_queue_get_consumer(rk);
            if queue.is_null() {
                queue = rd::rd_kafka_queue_get_main(rk);
            }
            if queue.is_null() {
                return 0;
            }
            let len = rd::rd_kafka_queue_length(queue);
            rd::rd_kafka_queue_destroy(queue);
            len
        }
    }

    /// Forwards the partition back to the consumer group's queue (or, for a consumer
    /// without a group, the main queue), where `BaseConsumer::poll` reads it.
    pub(crate) fn unroute_partition(&self, topic: &str, partition: i32) {
        let rk = self.rk();
        // SAFETY: `rk` is alive while `self` holds the consumer; the destination
        // handle is checked for null and destroyed once after use (the forwarding
        // keeps its own reference).
        unsafe {
            let mut dest = rd::rd_kafka_queue_get_consumer(rk);
            if dest.is_null() {
                dest = rd::rd_kafka_queue_get_main(rk);
            }
            self.forward(topic, partition, dest);
            if !dest.is_null() {
                rd::rd_kafka_queue_destroy(dest);
            }
        }
    }

    fn rk(&self) -> *mut rd::rd_kafka_t {
        self.consumer.client().native_ptr()
    }

    /// Forwards the partition's queue to `dest` (null: to no queue). `dest` must be
    /// null or a live queue of this consumer.
    fn forward(&self, topic: &str, partition: i32, dest: *mut rd::rd_kafka_queue_t) -> bool {
        let Ok(name) = CString::new(topic) else {
            return false;
        };
        // SAFETY: `rk` is alive while `self` holds the consumer, `dest` is null or a
        // live queue (both callers above); the partition queue handle is checked for
        // null and destroyed once (the routing stays).
        unsafe {
            let partition_queue =
                rd::rd_kafka_queue_get_partition(self.rk(), name.as_ptr(), partition);
            if partition_queue.is_null() {
                return false;
            }
            rd::rd_kafka_queue_forward(partition_queue, dest);
            rd::rd_kafka_queue_destroy(partition_queue);
        }
        true
    }
}

impl<C: ConsumerContext + 'static> Drop for ConsumerQueue<C> {
    fn drop(&mut self) {
        // SAFETY: created in `new`, destroyed once here, before the consumer it holds;
        // the non-empty callback is disabled first, so librdkafka never calls it
        // after its box is freed (when the fields are dropped).
        unsafe {
            if self.nonempty.is_some() {
                rd::rd_kafka_queue_cb_event_enable(self.queue.as_ptr(), None, ptr::null_mut());
            }
            rd::rd_kafka_queue_destroy(self.queue.as_ptr())
        };
    }
}

/// librdkafka's queue callback: calls the boxed callback behind `opaque`.
unsafe extern "C" fn nonempty_trampoline(_rk: *mut rd::rd_kafka_t, opaque: *mut c_void) {
    // SAFETY: `opaque` is the `NonEmptyCallback` registered in `set_nonempty_callback`,
    // alive while it is registered.
    let callback = unsafe { &*opaque.cast::<NonEmptyCallback>() };
    callback();
}

/// A fetched message that owns librdkafka's message (destroyed when dropped, never
/// copied) and holds the consumer it came from, so it may outlive any queue or
/// borrow. Its headers are parsed on first access only.
pub(crate) struct OwnedMessage {
    // Declared first: the message goes before the client it belongs to.
    message: Message<'static>,
    headers: OnceLock<Headers>,
    _client: Arc<dyn Any + Send + Sync>,
}

// SAFETY: librdkafka messages may be read and destroyed from any thread. Every `&self`
// method only reads the message, except the lazy header parse (librdkafka caches the
// parsed list in the message), which runs once, inside `OnceLock::get_or_init`, so it
// never races another access to that cache. The client is `Send + Sync`.
unsafe impl Send for OwnedMessage {}
// SAFETY: see `Send`.
unsafe impl Sync for OwnedMessage {}

impl OwnedMessage {
    /// The error code the message carries instead of a record.
    pub(crate) fn error_code(&self) -> RDKafkaErrorCode {
        self.message.error_code()
    }

    /// The topic name (see [`Message::topic`]).
    pub(crate) fn topic(&self) -> &str {
        self.message.topic()
    }

    /// The partition.
    pub(crate) fn partition(&self) -> i32 {
        self.message.partition()
    }

    /// The offset.
    pub(crate) fn offset(&self) -> i64 {
        self.message.offset()
    }

    /// The timestamp in milliseconds and its kind, `None` when there is none.
    pub(crate) fn timestamp(&self) -> (Option<i64>, Option<TimestampType>) {
        self.message.timestamp_with_type()
    }

    /// Key bytes, `None` for a null key.
    pub(crate) fn key(&self) -> Option<&[u8]> {
        self.message.key()
    }

    /// Value bytes, `None` for a null value.
    pub(crate) fn payload(&self) -> Option<&[u8]> {
        self.message.payload()
    }

    /// The headers, parsed and copied on the first call only.
    pub(crate) fn headers(&self) -> &Headers {
        self.headers.get_or_init(|| self.message.headers())
    }

    /// The topic handle, only to tell whether two messages share a topic.
    pub(crate) fn topic_handle(&self) -> *const rd::rd_kafka_topic_t {
        self.message.topic_handle()
    }

    /// Stores the offset after this message as its partition's offset to commit
    /// (`rd_kafka_offset_store_message`: through the message's own partition handle,
    /// no lookup by name). Requires `enable.auto.offset.store=false`; fails with
    /// `__STATE` when the partition is no longer assigned.
    pub(crate) fn store_offset(&self) -> KafkaResult<()> {
        // SAFETY: the message is alive and was consumed from a queue (so librdkafka
        // knows its partition); the returned error, if any, is ours to destroy.
        let error = unsafe { rd::rd_kafka_offset_store_message(self.message.ptr.as_ptr()) };
        if error.is_null() {
            return Ok(());
        }
        let error = Owned(error, rd::rd_kafka_error_destroy);
        // SAFETY: `error` is a valid error object until dropped.
        let code = unsafe { rd::rd_kafka_error_code(error.0) };
        Err(KafkaError::StoreOffset(RDKafkaErrorCode::from(code)))
    }
}

/// One fetched message, owned (destroyed when dropped) and held in librdkafka's
/// buffers. It borrows the queue it was read from, so it cannot outlive the consumer.
#[repr(transparent)]
pub(crate) struct Message<'q> {
    ptr: NonNull<rd::rd_kafka_message_t>,
    queue: PhantomData<&'q ()>,
}

impl<'q> Message<'q> {
    fn raw(&self) -> &rd::rd_kafka_message_t {
        // SAFETY: the pointer came from `rd_kafka_consume_batch_queue`, is non-null, and
        // stays valid until `self` is dropped.
        unsafe { self.ptr.as_ref() }
    }

    /// The error code the message carries instead of a record (for example an
    /// offset out of range); `NoError` for a record.
    pub(crate) fn error_code(&self) -> RDKafkaErrorCode {
        RDKafkaErrorCode::from(self.raw().err)
    }

    /// The topic handle, only to tell whether two messages share a topic.
    pub(crate) fn topic_handle(&self) -> *const rd::rd_kafka_topic_t {
        self.raw().rkt
    }

    /// The topic name ("" for none, which only error messages lack, or for a name that
    /// is not UTF-8, which Kafka does not allow).
    pub(crate) fn topic(&self) -> &str {
        let rkt = self.raw().rkt;
        if rkt.is_null() {
            return "";
        }
        // SAFETY: the topic handle lives as long as the messages that hold it, `self`
        // included; its name is a NUL terminated string owned by librdkafka.
        let name = unsafe { CStr::from_ptr(rd::rd_kafka_topic_name(rkt)) };
        name.to_str().unwrap_or("")
    }

    /// The partition.
    pub(crate) fn partition(&self) -> i32 {
        self.raw().partition
    }

    /// The offset.
    pub(crate) fn offset(&self) -> i64 {
        self.raw().offset
    }

    /// Milliseconds since the epoch, `None` when the record has no timestamp.
    pub(crate) fn timestamp(&self) -> Option<i64> {
        self.timestamp_with_type().0
    }

    /// The timestamp and its kind, both `None` when the record has no timestamp.
    pub(crate) fn timestamp_with_type(&self) -> (Option<i64>, Option<TimestampType>) {
        use rd::rd_kafka_timestamp_type_t as Kind;
        let mut kind = Kind::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
        // SAFETY: the message is alive; `kind` is a valid out pointer.
        let millis = unsafe { rd::rd_kafka_message_timestamp(self.ptr.as_ptr(), &mut kind) };
        match kind {
            Kind::RD_KAFKA_TIMESTAMP_CREATE_TIME => (Some(millis), Some(TimestampType::CreateTime)),
            Kind::RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME => {
                (Some(millis), Some(TimestampType::LogAppendTime))
            }
            Kind::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE => (None, None),
        }
    }

    /// Key bytes, `None` for a null key.
    pub(crate) fn key(&self) -> Option<&[u8]> {
        let raw = self.raw();
        // SAFETY: librdkafka keeps `key_len` bytes at `key` while the message lives.
        unsafe { bytes(raw.key, raw.key_len) }
    }

    /// Value bytes, `None` for a null value.
    pub(crate) fn payload(&self) -> Option<&[u8]> {
        let raw = self.raw();
        // SAFETY: librdkafka keeps `len` bytes at `payload` while the message lives.
        unsafe { bytes(raw.payload, raw.len) }
    }

    /// The headers, copied (librdkafka parses them on first access).
    pub(crate) fn headers(&self) -> Headers {
        let mut headers = Headers::new();
        let mut parsed: *mut rd::rd_kafka_headers_t = ptr::null_mut();
        // SAFETY: the message is alive; the header list it returns is owned by it and
        // read before this function returns; names are NUL terminated and values
        // hold `size` bytes.
        unsafe {
            if rd::rd_kafka_message_headers(self.ptr.as_ptr(), &mut parsed)
                != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
                || parsed.is_null()
            {
                return headers;
            }
            for index in 0..rd::rd_kafka_header_cnt(parsed) {
                let mut name: *const c_char = ptr::null();
                let mut value: *const c_void = ptr::null();
                let mut size = 0_usize;
                if rd::rd_kafka_header_get_all(parsed, index, &mut name, &mut value, &mut size)
                    != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
                    || name.is_null()
                {
                    break;
                }
                headers.push(Header {
                    key: CStr::from_ptr(name).to_string_lossy().into_owned(),
                    value: bytes(value.cast_mut(), size).map(<[u8]>::to_vec),
                });
            }
        }
        headers
    }
}

impl Drop for Message<'_> {
    fn drop(&mut self) {
        // SAFETY: the message is owned by `self` and destroyed exactly once, here.
        unsafe { rd::rd_kafka_message_destroy(self.ptr.as_ptr()) };
    }
}

/// The `len` bytes at `data`, `None` when `data` is null.
///
/// # Safety
/// A non-null `data` must point to `len` readable bytes that live for `'b`.
unsafe fn bytes<'b>(data: *mut c_void, len: usize) -> Option<&'b [u8]> {
    if data.is_null() {
        return None;
    }
    // SAFETY: guaranteed by the caller.
    Some(unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) })
}

// ---------------------------------------------------------------------------------
// Producing through topic handles
// ---------------------------------------------------------------------------------

/// librdkafka's `RD_KAFKA_PARTITION_UA`: the partitioner chooses.
const PARTITION_UNASSIGNED: i32 = -1;

/// librdkafka's handle to one topic of a producer, with one application reference,
/// given back when dropped. Only [`ProducerTopics`] and [`SharedProducerTopics`] hold
/// them, beside their client.
struct TopicHandle(NonNull<rd::rd_kafka_topic_t>);

// SAFETY: librdkafka's topic handles may be used and destroyed from any thread, and
// producing through one handle from several threads at once is allowed.
unsafe impl Send for TopicHandle {}
// SAFETY: see `Send`.
unsafe impl Sync for TopicHandle {}

impl TopicHandle {
    /// A new handle for `topic` on the client `rk`.
    ///
    /// # Safety
    /// `rk` must be a live client, and the handle must be dropped before it.
    unsafe fn new(rk: *mut rd::rd_kafka_t, topic: &str) -> Result<Self, KafkaError> {
        let name = CString::new(topic)?;
        // SAFETY: the client is alive (caller) and the name is a valid C string; a
        // null configuration means the client's default topic configuration (its
        // partitioner included), as when producing by name.
        let raw = unsafe { rd::rd_kafka_topic_new(rk, name.as_ptr(), ptr::null_mut()) };
        match NonNull::new(raw) {
            Some(raw) => Ok(TopicHandle(raw)),
            // SAFETY: reads this thread's last librdkafka error.
            None => Err(KafkaError::MessageProduction(
                unsafe { rd::rd_kafka_last_error() }.into(),
            )),
        }
    }
}

impl Drop for TopicHandle {
    fn drop(&mut self) {
        // SAFETY: the handle came from rd_kafka_topic_new and is destroyed once, before
        // the client (see `ProducerTopics` and `SharedProducerTopics`).
        unsafe { rd::rd_kafka_topic_destroy(self.0.as_ptr()) }
    }
}

/// Topic handles by topic name. Looked up once per record, so hashed with FxHash:
/// SipHash of a topic name cost a tenth of a typed send. Names come from the
/// application, not from the network.
type TopicHandles = rustc_hash::FxHashMap<String, TopicHandle>;

/// A producer with librdkafka's handle for each topic it has produced to. Owned
/// together so that every handle belongs to this client and goes before it.
pub(crate) struct ProducerTopics<C: ProducerContext + 'static> {
    // Declared before `producer`, so the handles are dropped before the client.
    topics: TopicHandles,
    producer: BaseProducer<C>,
}

impl<C: ProducerContext + 'static> ProducerTopics<C> {
    /// Wraps `producer`, with no topic handle yet.
    pub(crate) fn new(producer: BaseProducer<C>) -> Self {
        ProducerTopics {
            topics: TopicHandles::default(),
            producer,
        }
    }

    /// The producer.
    pub(crate) fn producer(&self) -> &BaseProducer<C> {
        &self.producer
    }

    /// How many topic handles are held.
    #[cfg(test)]
    pub(crate) fn handle_count(&self) -> usize {
        self.topics.len()
    }

    /// The handle of `topic`, created on its first use.
    fn handle(&mut self, topic: &str) -> Result<NonNull<rd::rd_kafka_topic_t>, KafkaError> {
        if let Some(handle) = self.topics.get(topic) {
            return Ok(handle.0);
        }
        // SAFETY: the client is alive, and the handle is kept in `topics`, dropped
        // before it.
        let handle = unsafe { TopicHandle::new(self.producer.client().native_ptr(), topic)? };
        let raw = handle.0;
        self.topics.insert(topic.to_owned(), handle);
        Ok(raw)
    }

    /// Enqueues `record` (librdkafka copies it) through its topic's handle, with
    /// `opaque` for its delivery report; on failure the opaque comes back.
    #[allow(clippy::result_large_err)] // the opaque must come back, as in `BaseProducer::send`
    pub(crate) fn produce(
        &mut self,
        record: &OutgoingRecord<'_>,
        opaque: C::DeliveryOpaque,
    ) -> Result<(), (KafkaError, C::DeliveryOpaque)> {
        let topic = match self.handle(record.topic) {
            Ok(topic) => topic,
            Err(e) => return Err((e, opaque)),
        };
        // SAFETY: the handle belongs to this client, and both are alive.
        unsafe { produce_through(self.producer.client().native_ptr(), topic, record, opaque) }
    }
}

/// A producer shared between threads (`&self` methods), with librdkafka's handle for
/// each topic it has produced to, looked up under a read lock. Owned together so that
/// every handle belongs to this client and goes before it.
pub(crate) struct SharedProducerTopics<P> {
    // Declared before `producer`, so the handles are dropped before the client.
    topics: RwLock<TopicHandles>,
    producer: P,
}

impl<P> SharedProducerTopics<P> {
    /// Wraps `producer`, with no topic handle yet.
    pub(crate) fn new(producer: P) -> Self {
        SharedProducerTopics {
            topics: RwLock::new(TopicHandles::default()),
            producer,
        }
    }

    /// The producer.
    pub(crate) fn producer(&self) -> &P {
        &self.producer
    }

    /// Enqueues `record` (librdkafka copies it) through its topic's handle (created
    /// on the topic's first use), with `opaque` for its delivery report; on failure
    /// the opaque comes back.
    #[allow(clippy::result_large_err)] // the opaque must come back, as in `BaseProducer::send`
    pub(crate) fn produce<C, Part>(
        &self,
        record: &OutgoingRecord<'_>,
        opaque: C::DeliveryOpaque,
    ) -> Result<(), (KafkaError, C::DeliveryOpaque)>
    where
        P: Producer<C, Part>,
        C: ProducerContext<Part>,
        Part: Partitioner,
    {
        let rk = self.producer.client().native_ptr();
        let known = read_lock(&self.topics).get(record.topic).map(|h| h.0);
        let topic = match known {
            Some(topic) => topic,
            None => {
                let mut topics = match self.topics.write() {
                    Ok(guard) => guard,
                    Err(poisoned) => poisoned.into_inner(),
                };
                match topics.get(record.topic) {
                    Some(handle) => handle.0,
                    None => {
                        // SAFETY: the client is alive, and the handle is kept in
                        // `topics`, dropped before it.
                        match unsafe { TopicHandle::new(rk, record.topic) } {
                            Ok(handle) => {
                                let raw = handle.0;
                                topics.insert(record.topic.to_owned(), handle);
                                raw
                            }
                            Err(e) => return Err((e, opaque)),
                        }
                    }
                }
            }
        };
        // SAFETY: the handle belongs to this client and stays in `topics` (handles
        // are never removed) while `self` lives.
        unsafe { produce_through(rk, topic, record, opaque) }
    }
}

fn read_lock<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    match lock.read() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Enqueues `record` through `topic` with `opaque` for its delivery report; on failure
/// the opaque comes back.
///
/// # Safety
/// `rk` must be a live producer and `topic` a live handle of it.
#[allow(clippy::result_large_err)] // the opaque must come back, as in `BaseProducer::send`
unsafe fn produce_through<O: IntoOpaque>(
    rk: *mut rd::rd_kafka_t,
    topic: NonNull<rd::rd_kafka_topic_t>,
    record: &OutgoingRecord<'_>,
    opaque: O,
) -> Result<(), (KafkaError, O)> {
    let (key, key_len) = bytes_arg(record.key);
    let (value, value_len) = bytes_arg(record.value);
    let headers = native_headers(record.headers);
    let opaque = opaque.into_ptr();
    // SAFETY: the client and the topic handle (of this client) are alive (caller); key,
    // value and headers stay valid for the call and librdkafka copies them
    // (MSG_F_COPY); the argument list is terminated by VTYPE_END. librdkafka owns
    // `headers` once the call succeeds.
    let err = unsafe {
        rd::rd_kafka_producev(
            rk,
            rd::rd_kafka_vtype_t::RD_KAFKA_VTYPE_RKT,
            topic.as_ptr(),
            rd::rd_kafka_vtype_t::RD_KAFKA_VTYPE_PARTITION,
            record.partition.unwrap_or(PARTITION_UNASSIGNED),
            rd::rd_kafka_vtype_t::RD_KAFKA_VTYPE_MSGFLAGS,
            rd::RD_KAFKA_MSG_F_COPY,
            rd::rd_kafka_vtype_t::RD_KAFKA_VTYPE_VALUE,
            value,
            value_len,
            rd::rd_kafka_vtype_t::RD_KAFKA_VTYPE_KEY,
            key,
            key_len,
            rd::rd_kafka_vtype_t::RD_KAFKA_VTYPE_OPAQUE,
            opaque,
            rd::rd_kafka_vtype_t::RD_KAFKA_VTYPE_TIMESTAMP,
            record.timestamp.unwrap_or(0),
            rd::rd_kafka_vtype_t::RD_KAFKA_VTYPE_HEADERS,
            headers,
            rd::rd_kafka_vtype_t::RD_KAFKA_VTYPE_END,
        )
    };
    if err == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        return Ok(());
    }
    if !headers.is_null() {
        // SAFETY: not handed over, since the call failed; destroyed once.
        unsafe { rd::rd_kafka_headers_destroy(headers) }
    }
    // SAFETY: the pointer came from `into_ptr` above and librdkafka did not keep it.
    let opaque = unsafe { O::from_ptr(opaque) };
    Err((
        KafkaError::MessageProduction(RDKafkaErrorCode::from(err)),
        opaque,
    ))
}

/// Pointer and length of an optional byte string (null for `None`).
fn bytes_arg(bytes: Option<&[u8]>) -> (*mut c_void, usize) {
    match bytes {
        Some(b) => (b.as_ptr() as *mut c_void, b.len()),
        None => (ptr::null_mut(), 0),
    }
}

/// librdkafka's copy of `headers`, or null when there are none (librdkafka then
/// allocates nothing). The caller owns the list until librdkafka takes it.
fn native_headers(headers: &Headers) -> *mut rd::rd_kafka_headers_t {
    if headers.is_empty() {
        return ptr::null_mut();
    }
    // SAFETY: a fresh header list, filled with copies of names and values that are
    // valid for each call (a null value with length -1 is a null header value).
    unsafe {
        let native = rd::rd_kafka_headers_new(headers.len());
        for h in headers {
            let (value, value_len) = match &h.value {
                Some(v) => (v.as_ptr() as *const c_void, v.len() as isize),
                None => (ptr::null(), -1),
            };
            rd::rd_kafka_header_add(
                native,
                h.key.as_ptr().cast(),
                h.key.len() as isize,
                value,
                value_len,
            );
        }
        native
    }
}

// ---------------------------------------------------------------------------------
// IncrementalAlterConfigs
// ---------------------------------------------------------------------------------

/// Why an IncrementalAlterConfigs request failed.
#[derive(Debug)]
pub(crate) enum AlterConfigsError {
    /// librdkafka or the broker answered with this code.
    Code(RDKafkaErrorCode),
    /// librdkafka refused `changes[index]` before sending, with this message.
    InvalidChange { index: usize, message: String },
}

/// Owns a librdkafka object and destroys it on drop.
struct Owned<T>(*mut T, unsafe extern "C" fn(*mut T));

impl<T> Drop for Owned<T> {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: the pointer came from the matching librdkafka constructor and is
            // destroyed exactly once.
            unsafe { (self.1)(self.0) }
        }
    }
}

/// Blocking: sends an IncrementalAlterConfigs request for topic `topic` with
/// `changes` (`Some` sets a config, `None` deletes the override) and waits for its
/// result, up to `request_timeout` plus a margin.
pub(crate) fn incremental_alter_topic_config<C: ClientContext>(
    client: &Client<C>,
    topic: &CStr,
    changes: &[(CString, Option<CString>)],
    request_timeout: Duration,
) -> Result<(), AlterConfigsError> {
    use AlterConfigsError::Code;
    let rk = client.native_ptr();
    // SAFETY: every pointer below is created by librdkafka, checked for null, used
    // while `rk` (borrowed through `client`) is alive, and freed once by its `Owned`
    // guard; C strings outlive the calls that read them.
    unsafe {
        let resource = rd::rd_kafka_ConfigResource_new(
            rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_TOPIC,
            topic.as_ptr(),
        );
        if resource.is_null() {
            return Err(Code(RDKafkaErrorCode::InvalidArgument));
        }
        let resource = Owned(resource, rd::rd_kafka_ConfigResource_destroy);
        for (index, (key, value)) in changes.iter().enumerate() {
            let op = if value.is_some() {
                rd::rd_kafka_AlterConfigOpType_t::RD_KAFKA_ALTER_CONFIG_OP_TYPE_SET
            } else {
                rd::rd_kafka_AlterConfigOpType_t::RD_KAFKA_ALTER_CONFIG_OP_TYPE_DELETE
            };
            let error = rd::rd_kafka_ConfigResource_add_incremental_config(
                resource.0,
                key.as_ptr(),
                op,
                value.as_ref().map_or(ptr::null(), |v| v.as_ptr()),
            );
            if !error.is_null() {
                let error = Owned(error, rd::rd_kafka_error_destroy);
                let message = CStr::from_ptr(rd::rd_kafka_error_string(error.0))
                    .to_string_lossy()
                    .into_owned();
                return Err(AlterConfigsError::InvalidChange { index, message });
            }
        }
        let options = rd::rd_kafka_AdminOptions_new(
            rk,
            rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_INCREMENTALALTERCONFIGS,
        );
        if options.is_null() {
            return Err(Code(RDKafkaErrorCode::Fail));
        }
        let options = Owned(options, rd::rd_kafka_AdminOptions_destroy);
        let mut errstr = [0 as c_char; 256];
        let timeout_ms = c_int_millis(request_timeout);
        rd::rd_kafka_AdminOptions_set_request_timeout(
            options.0,
            timeout_ms,
            errstr.as_mut_ptr(),
            errstr.len(),
        );
        let queue = rd::rd_kafka_queue_new(rk);
        if queue.is_null() {
            return Err(Code(RDKafkaErrorCode::Fail));
        }
        let queue = Owned(queue, rd::rd_kafka_queue_destroy);
        let mut resources = [resource.0];
        rd::rd_kafka_IncrementalAlterConfigs(rk, resources.as_mut_ptr(), 1, options.0, queue.0);
        // The request itself times out after `request_timeout`; allow a margin.
        let event = rd::rd_kafka_queue_poll(queue.0, timeout_ms.saturating_add(5_000));
        if event.is_null() {
            return Err(Code(RDKafkaErrorCode::OperationTimedOut));
        }
        let event = Owned(event, rd::rd_kafka_event_destroy);
        let err = rd::rd_kafka_event_error(event.0);
        if err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            return Err(Code(RDKafkaErrorCode::from(err)));
        }
        let result = rd::rd_kafka_event_IncrementalAlterConfigs_result(event.0);
        if result.is_null() {
            return Err(Code(RDKafkaErrorCode::Fail));
        }
        let mut count = 0usize;
        let results = rd::rd_kafka_IncrementalAlterConfigs_result_resources(result, &mut count);
        for i in 0..count {
            let res = *results.add(i);
            let err = rd::rd_kafka_ConfigResource_error(res);
            if err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                return Err(Code(RDKafkaErrorCode::from(err)));
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------
// Committed offsets' metadata
// ---------------------------------------------------------------------------------

/// The metadata bytes of `topic`/`partition` in `list` (empty when it has none;
/// `None` when the list does not hold the partition), whatever they are: `rdkafka`'s
/// `TopicPartitionListElem::metadata` panics on bytes that are not UTF-8, and offset
/// metadata comes from whichever client committed it.
pub fn partition_metadata_bytes(
    list: &rdkafka::TopicPartitionList,
    topic: &str,
    partition: i32,
) -> Option<Vec<u8>> {
    let topic = CString::new(topic).ok()?;
    // SAFETY: `list.ptr()` is a valid list for as long as `list` is borrowed, and
    // `find` only reads it; it returns null or a pointer to one of its elements.
    let elem = unsafe {
        rd::rd_kafka_topic_partition_list_find(list.ptr(), topic.as_ptr(), partition).as_ref()
    }?;
    if elem.metadata.is_null() || elem.metadata_size == 0 {
        return Some(Vec::new());
    }
    // SAFETY: librdkafka keeps `metadata_size` bytes at `metadata` for the element's
    // life, which `list`'s borrow covers; they are copied out before it ends.
    let bytes =
        unsafe { std::slice::from_raw_parts(elem.metadata as *const u8, elem.metadata_size) };
    Some(bytes.to_vec())
}
