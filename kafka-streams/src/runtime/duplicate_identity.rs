//! Telling a duplicate identity from a zombie when a stream thread's transactional
//! producer is fenced under exactly-once.
//!
//! The `transactional.id` is `<application.id>-<process id>-<thread index>`, and the
//! process id is kept in the locked state directory (see `state_dir_lock.rs`), so a
//! live instance normally owns its ids. A fence then means the thread was a zombie
//! (stalled past its transaction timeout, or taken for dead): it gives up its tasks,
//! registers its id again and rejoins. But two live instances get the same process id
//! when one's state directory was copied from the other's; each re-registration would
//! then fence the other, forever. Kafka relies on its state-directory lock there; we
//! also look at the group: each main consumer's `client.id` is Kafka's
//! `<application.id>-<process id>-StreamThread-<thread index>-consumer`, so two members
//! with the fenced thread's `client.id` are two live instances with one identity. The
//! fenced (older) one then fails with [`StreamsError::DuplicateProcessId`] instead of
//! taking the id back.
//!
//! A newer instance registers its producers right after its consumers subscribe (see
//! `run_stream_thread`), so its member may lag the fence by a few round trips: the
//! fenced thread looks again for up to [`DUPLICATE_MEMBER_WAIT`]. Should the member
//! show up later still, the fenced thread takes its id back, fences the newer
//! instance, and that one finds the older in the group: one of them stops either way.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};

use super::task::TaskEnv;
use crate::error::{Result, StreamsError};

/// How long a fenced thread looks for a second member with its identity.
pub(crate) const DUPLICATE_MEMBER_WAIT: Duration = Duration::from_secs(5);

/// Time between two looks at the group.
const LOOK_INTERVAL: Duration = Duration::from_millis(100);

/// Timeout of one group description request.
const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The main consumer's `client.id` of stream thread `index` (from 0): Kafka's
/// `<client id>-StreamThread-<n>-consumer`, the client id being Kafka's default
/// `<application.id>-<process id>`, and `n` the index from 1, as in the thread's
/// `transactional.id`.
pub(crate) fn main_consumer_client_id(env: &TaskEnv, index: usize) -> String {
    client_id(&env.application_id, &env.process_id, index)
}

fn client_id(application_id: &str, process_id: &str, index: usize) -> String {
    format!(
        "{application_id}-{process_id}-StreamThread-{}-consumer",
        index + 1
    )
}

/// How many of the group's members have `client_id`.
fn members_with(client_ids: impl IntoIterator<Item = impl AsRef<str>>, client_id: &str) -> usize {
    client_ids
        .into_iter()
        .filter(|id| id.as_ref() == client_id)
        .count()
}

/// After stream thread `index`'s producer (`transactional_id`) was fenced: fails with
/// [`StreamsError::DuplicateProcessId`] when another live member of the group has the
/// thread's identity, looking for up to [`DUPLICATE_MEMBER_WAIT`]; `Ok` for a zombie.
/// A group that cannot be described counts as no duplicate (the thread rejoins, as
/// before this check).
pub(crate) fn fail_on_duplicate_identity<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    env: &TaskEnv,
    index: usize,
    transactional_id: &str,
) -> Result<()> {
    let client_id = main_consumer_client_id(env, index);
    let group = env.application_id.as_str();
    let deadline = Instant::now() + DUPLICATE_MEMBER_WAIT;
    loop {
        match consumer.fetch_group_list(Some(group), DESCRIBE_TIMEOUT) {
            Ok(list) => {
                let members = list
                    .groups()
                    .iter()
                    .filter(|g| g.name() == group)
                    .flat_map(|g| g.members().iter().map(|m| m.client_id()));
                // This thread's own member is one of them (unless the group dropped
                // it, and then the other one alone is still a duplicate only if it
                // is not this thread rejoining: two is the sure sign).
                if members_with(members, &client_id) >= 2 {
                    return Err(StreamsError::DuplicateProcessId {
                        thread: format!("{}-StreamThread-{}", env.application_id, index + 1),
                        process_id: env.process_id.clone(),
                        transactional_id: transactional_id.to_owned(),
                        client_id,
                    });
                }
            }
            Err(error) => {
                tracing::warn!(thread = index, group, %error, "describing the group to look for a duplicate identity failed");
            }
        }
        if Instant::now() + LOOK_INTERVAL >= deadline {
            return Ok(());
        }
        std::thread::sleep(LOOK_INTERVAL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_members_with_the_threads_client_id_are_a_duplicate() {
        let mine = "app-p1-StreamThread-1-consumer";
        assert_eq!(
            members_with([mine, "app-p2-StreamThread-1-consumer"], mine),
            1
        );
        assert_eq!(
            members_with([mine, "app-p1-StreamThread-2-consumer", mine], mine),
            2
        );
        assert_eq!(members_with(Vec::<String>::new(), mine), 0);
    }

    #[test]
    fn client_id_is_kafkas_with_the_process_id_and_the_thread_from_one() {
        assert_eq!(
            client_id("app", "p-1", 0),
            "app-p-1-StreamThread-1-consumer"
        );
    }
}
