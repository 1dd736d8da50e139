//! Who waits for each record's delivery report, as librdkafka's per-message opaque
//! pointer: nobody (`send_and_forget`), one `send`, or one record of a `send_batch`.
//!
//! A batch's records point into the batch's own table of outcome slots, so a batch
//! costs one allocation however many records it holds, and its delivery reports touch
//! no reference count: the batch keeps itself alive while any of its records is in
//! librdkafka.

use std::cell::UnsafeCell;
use std::ffi::c_void;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rdkafka::error::KafkaError;
use rdkafka::util::IntoOpaque;
use tokio::sync::{oneshot, Notify};

/// The outcome of one delivery: partition, offset and timestamp, or the error.
pub(crate) type DeliveryOutcome = Result<(i32, i64, rdkafka::Timestamp), KafkaError>;

/// Who waits for one record's delivery report.
pub(crate) enum Completion {
    /// Nobody: a record sent with `send_and_forget` (a null opaque, no allocation).
    Nobody,
    /// A single send awaiting its own report.
    One(Box<oneshot::Sender<DeliveryOutcome>>),
    /// One record of a batch.
    Batch(BatchTicket),
}

impl Completion {
    /// Hands `outcome` to whoever waits for it.
    pub(crate) fn complete(self, outcome: DeliveryOutcome) {
        match self {
            Completion::Nobody => {}
            // The receiver may have been dropped (a cancelled send); the record was
            // still delivered or failed, and nobody is waiting for which.
            Completion::One(tx) => {
                let _ = tx.send(outcome);
            }
            Completion::Batch(ticket) => ticket.complete(Some(outcome)),
        }
    }
}

/// Tags a batch slot's address in an opaque pointer; boxes and slots are aligned to at
/// least 8 bytes, so the lowest bit is otherwise always clear.
const BATCH_TAG: usize = 1;

impl IntoOpaque for Completion {
    fn into_ptr(self) -> *mut c_void {
        match self {
            Completion::Nobody => ptr::null_mut(),
            Completion::One(tx) => Box::into_raw(tx).cast(),
            Completion::Batch(ticket) => ticket.slot.as_ptr().map_addr(|a| a | BATCH_TAG).cast(),
        }
    }

    unsafe fn from_ptr(ptr: *mut c_void) -> Self {
        if ptr.is_null() {
            return Completion::Nobody;
        }
        if ptr.addr() & BATCH_TAG != 0 {
            let slot = ptr.map_addr(|a| a & !BATCH_TAG).cast::<BatchSlot>();
            // SAFETY: a tagged pointer came from `into_ptr` of a ticket, whose slot
            // is non-null and alive while the record is in librdkafka (see
            // `BatchDelivery`).
            return Completion::Batch(BatchTicket {
                slot: unsafe { NonNull::new_unchecked(slot) },
            });
        }
        // SAFETY: an untagged non-null pointer came from `Box::into_raw` in `into_ptr`
        // and is turned back into a box once (rdkafka's contract).
        Completion::One(unsafe { Box::from_raw(ptr.cast()) })
    }
}

/// The shared delivery state of one `send_batch`: one allocation, and no future,
/// wake-up, lock or reference count per record.
///
/// Lifetime: the batch holds one reference to itself, taken when it is created and
/// given up by whoever completes its last record or releases its guard last. So it
/// outlives every record librdkafka holds, even when the `send_batch` future is
/// dropped before the reports arrive.
pub(crate) struct BatchDelivery {
    slots: Box<[BatchSlot]>,
    /// Records not completed yet, plus one guard held while records are enqueued.
    remaining: AtomicUsize,
    done: Notify,
}

/// The outcome of one record of a batch, and the way back to its batch.
struct BatchSlot {
    batch: *const BatchDelivery,
    /// Written once, by whoever completes the record, before it counts the record
    /// as done in `remaining`; read by the sender only after `remaining` is zero.
    outcome: UnsafeCell<Option<DeliveryOutcome>>,
}

// SAFETY: the back pointer only reaches the batch, which is `Sync`; each slot's cell
// is written by one thread, once, and read after that write is published by the
// `AcqRel` decrement of `remaining` and its `Acquire` load in `finish`.
unsafe impl Send for BatchDelivery {}
// SAFETY: see `Send`.
unsafe impl Sync for BatchDelivery {}

/// Record `index` of a batch: the address of its slot.
pub(crate) struct BatchTicket {
    slot: NonNull<BatchSlot>,
}

// SAFETY: a ticket only completes its slot, which is safe from any thread (see
// `BatchDelivery`).
unsafe impl Send for BatchTicket {}
// SAFETY: see `Send`.
unsafe impl Sync for BatchTicket {}

impl BatchTicket {
    /// Records the outcome (`None` if the record never reached librdkafka) and
    /// counts the record as done.
    pub(crate) fn complete(self, outcome: Option<DeliveryOutcome>) {
        // SAFETY: the slot and its batch are alive (the batch's self-reference is
        // held until this record is counted as done, just below), and each ticket
        // completes its slot once, so nothing else touches the cell now.
        unsafe {
            let slot = self.slot.as_ref();
            *slot.outcome.get() = outcome;
            BatchDelivery::release(slot.batch);
        }
    }
}

impl BatchDelivery {
    /// Counts one record (or the guard) as done; the last one wakes the sender and
    /// gives up the batch's self-reference.
    ///
    /// # Safety
    /// `batch` must point to a live batch whose self-reference is still held, and
    /// each record and the guard are released once.
    unsafe fn release(batch: *const BatchDelivery) {
        // SAFETY: alive (caller).
        let this = unsafe { &*batch };
        if this.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            // notify_one keeps a permit if the sender is not waiting yet.
            this.done.notify_one();
            // SAFETY: the self-reference taken in `BatchSender::new`, given up once:
            // `remaining` reaches zero once. `this` is not used after this.
            unsafe { Arc::decrement_strong_count(batch) };
        }
    }
}

/// The sender's side of a batch. It goes through the records in order: each one's
/// ticket is either taken by librdkafka ([`BatchSender::sent`]) or the record is
/// counted as done unsent ([`BatchSender::unsent`]). Dropping it early (a cancelled
/// `send_batch`) counts the undecided records as unsent and releases the guard, so
/// the batch is still freed once librdkafka has reported the records it took.
pub(crate) struct BatchSender {
    batch: Arc<BatchDelivery>,
    /// Records whose fate is decided, a prefix of the batch.
    decided: usize,
    guard_held: bool,
}

impl BatchSender {
    /// A batch of `records`, keeping itself alive until every record is completed
    /// and its guard released.
    pub(crate) fn new(records: usize) -> Self {
        let batch = Arc::new_cyclic(|me| BatchDelivery {
            slots: (0..records)
                .map(|_| BatchSlot {
                    batch: me.as_ptr(),
                    outcome: UnsafeCell::new(None),
                })
                .collect(),
            remaining: AtomicUsize::new(records + 1),
            done: Notify::new(),
        });
        // The self-reference, given up in `BatchDelivery::release`.
        let _ = Arc::into_raw(batch.clone());
        BatchSender {
            batch,
            decided: 0,
            guard_held: true,
        }
    }

    /// The ticket of the first undecided record (`Nobody` past the end), for
    /// librdkafka. Call [`BatchSender::sent`] once librdkafka has taken it, else
    /// [`BatchSender::unsent`].
    pub(crate) fn ticket(&self) -> Completion {
        match self.batch.slots.get(self.decided) {
            Some(slot) => Completion::Batch(BatchTicket {
                slot: NonNull::from(slot),
            }),
            None => Completion::Nobody,
        }
    }

    /// librdkafka took the current record's ticket; its report completes it.
    pub(crate) fn sent(&mut self) {
        self.decided += 1;
    }

    /// The current record never reached librdkafka: counted as done, with no
    /// outcome.
    pub(crate) fn unsent(&mut self) {
        if let Some(slot) = self.batch.slots.get(self.decided) {
            BatchTicket {
                slot: NonNull::from(slot),
            }
            .complete(None);
            self.decided += 1;
        }
    }

    /// Counts any undecided record as unsent, releases the enqueueing guard and
    /// waits for every record's outcome; returns them in order (`None` for the
    /// records completed unsent).
    pub(crate) async fn finish(mut self) -> Vec<Option<DeliveryOutcome>> {
        while self.decided < self.batch.slots.len() {
            self.unsent();
        }
        self.release_guard();
        self.batch.done.notified().await;
        // Pairs with the `AcqRel` decrements: every slot's write happens before.
        let remaining = self.batch.remaining.load(Ordering::Acquire);
        debug_assert_eq!(remaining, 0);
        self.batch
            .slots
            .iter()
            // SAFETY: every record is completed (`remaining` is zero), so no other
            // thread touches the cells any more.
            .map(|slot| unsafe { (*slot.outcome.get()).take() })
            .collect()
    }

    fn release_guard(&mut self) {
        if std::mem::take(&mut self.guard_held) {
            // SAFETY: the batch is alive (`self.batch`), its self-reference is held
            // until the guard is released, and the guard is released once.
            unsafe { BatchDelivery::release(Arc::as_ptr(&self.batch)) };
        }
    }
}

impl Drop for BatchSender {
    fn drop(&mut self) {
        while self.decided < self.batch.slots.len() {
            self.unsent();
        }
        self.release_guard();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What librdkafka does with an opaque: takes the pointer, gives it back with the
    /// report.
    fn through_librdkafka(completion: Completion) -> Completion {
        let ptr = completion.into_ptr();
        // SAFETY: the pointer came from `into_ptr` just above and is used once.
        unsafe { Completion::from_ptr(ptr) }
    }

    /// An opaque pointer on its way to librdkafka's delivery thread.
    struct InFlight(usize, *mut c_void);
    // SAFETY: as with librdkafka, the pointer is only turned back into its
    // completion on the other thread, once.
    unsafe impl Send for InFlight {}

    fn delivered(offset: i64) -> DeliveryOutcome {
        Ok((0, offset, rdkafka::Timestamp::CreateTime(offset)))
    }

    #[tokio::test]
    async fn batch_outcomes_come_back_in_record_order_whatever_the_report_order() {
        let mut batch = BatchSender::new(4);
        let mut in_librdkafka = Vec::new();
        for index in 0..4 {
            if index == 2 {
                batch.unsent(); // refused before librdkafka took it
            } else {
                in_librdkafka.push(InFlight(index, batch.ticket().into_ptr()));
                batch.sent();
            }
        }
        // Reports arrive in reverse order, from another thread.
        let reporter = std::thread::spawn(move || {
            for InFlight(index, ptr) in in_librdkafka.into_iter().rev() {
                // SAFETY: each pointer came from `into_ptr` and is used once.
                let completion = unsafe { Completion::from_ptr(ptr) };
                assert!(matches!(completion, Completion::Batch(_)));
                completion.complete(delivered(index as i64 * 10));
            }
        });
        let outcomes = batch.finish().await;
        reporter.join().expect("reporter");
        let offsets: Vec<Option<i64>> = outcomes
            .into_iter()
            .map(|o| o.map(|r| r.expect("delivered").1))
            .collect();
        assert_eq!(offsets, [Some(0), Some(10), None, Some(30)]);
    }

    #[test]
    fn a_batch_dropped_before_its_reports_is_freed_by_the_last_report() {
        let mut batch = BatchSender::new(3);
        let freed = Arc::downgrade(&batch.batch);
        let taken = batch.ticket().into_ptr();
        batch.sent();
        // Cancelled here: the second record is undecided, the third never reached.
        drop(batch);
        assert!(
            freed.upgrade().is_some(),
            "librdkafka still holds a record of the batch"
        );
        // SAFETY: the pointer came from `into_ptr` and is used once.
        unsafe { Completion::from_ptr(taken) }.complete(delivered(7));
        assert!(freed.upgrade().is_none(), "the last report frees the batch");
    }

    #[test]
    fn single_sends_and_forgotten_records_round_trip_through_the_opaque() {
        assert!(Completion::Nobody.into_ptr().is_null());
        assert!(matches!(
            through_librdkafka(Completion::Nobody),
            Completion::Nobody
        ));
        let (tx, mut rx) = oneshot::channel();
        let back = through_librdkafka(Completion::One(Box::new(tx)));
        assert!(matches!(back, Completion::One(_)));
        back.complete(delivered(42));
        let outcome = rx.try_recv().expect("reported").expect("delivered");
        assert_eq!(outcome.1, 42);
    }
}
