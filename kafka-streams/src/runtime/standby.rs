//! Standby replicas (Kafka's `StandbyTask`s, `num.standby.replicas`): copies of other
//! instances' task stores, kept up to date from their changelogs, so that an instance
//! taking a task over restores only the tail of its changelogs.
//!
//! **Placement.** Kafka's assignor places standbys from the members' subscription
//! data, which librdkafka's assignors cannot carry. Every instance instead computes
//! the placement from the claims of the `<application.id>-streams-metadata` topic
//! (`membership.rs`), by one deterministic rule ([`place_standbys`]):
//! - a task's active owner is the process whose latest claim names the task's
//!   partition of its source topics ([`active_owners`]);
//! - the live instances are ordered by process id, as a ring;
//! - the standbys of a task go to the `num.standby.replicas` live instances that follow
//!   its owner in that ring, never the owner itself, so at most (live instances − 1).
//!
//! Only tasks with logged stores get standbys. Instances read the same claims in the
//! same order, so they agree on the placement once they have read the same claims;
//! while a rebalance is under way an instance may keep a standby a little longer or
//! open it a little later, which costs reads, never correctness: a standby store only
//! ever holds what its changelog holds.
//!
//! **Standby tasks.** One thread per instance ([`run_standby_updater`]) follows the
//! claims, opens the stores of the standby tasks placed on its instance (in the same
//! task directories an active task uses) and reads their changelogs without end through
//! the same [`ChangelogReader`] that restores active tasks, in standby mode: same
//! batches, same [`RestorableStore::restore_batch`](crate::state::RestorableStore::restore_batch),
//! which moves each store's checkpoint with its data. Under exactly-once the restore
//! consumer reads `read_committed`, so a standby store holds committed writes only and
//! its checkpoint is valid. Standby tasks process no input and write no changelog.
//!
//! **Handover.** When a stream thread of the instance is assigned a task, it first
//! takes it from the standbys ([`StandbyTasks::activate`]): the standby's stores are
//! closed, and the active task opens them again, finds their checkpoints and restores
//! only the changelog records after them. While a task is active on the instance no
//! standby of it is opened. (A standby of an in-memory store keeps nothing across the
//! reopening, so such stores restore in full; persistent stores are the ones standbys
//! help.) Stores of source tables that reuse their input topic as changelog have no
//! standby copy (how far they may go is the active task's committed offset).
//!
//! **Queries.** Standby stores answer interactive queries that allow stale data
//! ([`StoreQueryParameters::enable_stale_stores`](super::StoreQueryParameters::enable_stale_stores)).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::membership::{MembershipTail, Owners};
use super::restore::{ChangelogReader, RestoringTasks};
use super::state_manager::ProcessorStateManager;
use super::streams::ClientShared;
use super::task::TaskEnv;
use crate::error::{Result, StreamsError};
use crate::processor::TaskId;
use crate::state::StateStore;
use crate::topology::Topology;

/// The standby processes of each task: for a task owned by process `owner`, the
/// `replicas` processes that follow `owner` in the ring of `live` processes ordered by
/// id, never `owner` itself (so at most `live.len() - 1` when the owner is live).
pub(crate) fn place_standbys(
    active: &BTreeMap<TaskId, String>,
    live: &BTreeSet<String>,
    replicas: usize,
) -> BTreeMap<TaskId, Vec<String>> {
    let ring: Vec<&String> = live.iter().collect();
    active
        .iter()
        .map(|(task, owner)| {
            // The first live process after the owner (the owner need not be live).
            let after = ring.partition_point(|p| p.as_str() <= owner.as_str());
            let standbys = (0..ring.len())
                .map(|i| ring[(after + i) % ring.len()])
                .filter(|p| *p != owner)
                .take(replicas)
                .cloned()
                .collect();
            (*task, standbys)
        })
        .collect()
}

/// Each task's active owner (a process id), from the claims: the owner of the task's
/// partition of the first of its source topics that has one.
pub(crate) fn active_owners(
    topology: &Topology,
    application_id: &str,
    owners: &Owners,
) -> BTreeMap<TaskId, String> {
    let mut active = BTreeMap::new();
    for sub in &topology.subtopologies {
        for topic in &sub.source_topics {
            let topic = topology.resolve_topic(application_id, topic);
            for ((t, partition), process) in owners.processes() {
                if *t == topic {
                    active
                        .entry(TaskId {
                            subtopology: sub.id,
                            partition: *partition,
                        })
                        .or_insert_with(|| process.to_owned());
                }
            }
        }
    }
    active
}

/// Whether the tasks of sub-topology `subtopology` have a store a standby can keep: one
/// with its own changelog topic.
fn has_standby_stores(topology: &Topology, application_id: &str, subtopology: usize) -> bool {
    topology.subtopologies.get(subtopology).is_some_and(|sub| {
        sub.stores.iter().any(|name| {
            topology
                .source_changelog_topic(application_id, name)
                .is_none()
                && topology
                    .stores
                    .get(name)
                    .is_some_and(|b| b.changelog_topic(application_id).is_some())
        })
    })
}

/// The standby processes of `task` by the placement rule, or none when its tasks keep
/// no standby-able store or nobody owns it.
pub(crate) fn standbys_of(
    topology: &Topology,
    env: &TaskEnv,
    owners: &Owners,
    task: TaskId,
) -> Vec<String> {
    if env.config.num_standby_replicas == 0
        || !has_standby_stores(topology, &env.application_id, task.subtopology)
    {
        return Vec::new();
    }
    let active = active_owners(topology, &env.application_id, owners);
    place_standbys(
        &active,
        &owners.live_processes(),
        env.config.num_standby_replicas,
    )
    .remove(&task)
    .unwrap_or_default()
}

/// Where the placement puts standbys for one process.
struct Placement {
    /// The tasks whose standby goes to the process.
    wanted: BTreeSet<TaskId>,
    /// Every task with an active owner.
    owned: BTreeSet<TaskId>,
}

/// The placement of standbys for process `process`.
fn standbys_on(topology: &Topology, env: &TaskEnv, owners: &Owners, process: &str) -> Placement {
    let active = active_owners(topology, &env.application_id, owners);
    let owned = active.keys().copied().collect();
    let wanted = place_standbys(
        &active,
        &owners.live_processes(),
        env.config.num_standby_replicas,
    )
    .into_iter()
    .filter(|(task, standbys)| {
        standbys.iter().any(|p| p == process)
            && has_standby_stores(topology, &env.application_id, task.subtopology)
    })
    .map(|(task, _)| task)
    .collect();
    Placement { wanted, owned }
}

impl RestoringTasks for BTreeMap<TaskId, ProcessorStateManager> {
    fn state_manager(&mut self, task: TaskId) -> Option<&mut ProcessorStateManager> {
        self.get_mut(&task)
    }

    fn any_running(&self) -> bool {
        false
    }
}

/// An instance's standby tasks, and the tasks its stream threads run (which have no
/// standby here).
pub(crate) struct StandbyTasks {
    tasks: BTreeMap<TaskId, ProcessorStateManager>,
    active: BTreeSet<TaskId>,
    reader: ChangelogReader,
}

impl StandbyTasks {
    /// No standby tasks yet; `reader` will keep them up to date.
    pub fn new(reader: ChangelogReader) -> Self {
        StandbyTasks {
            tasks: BTreeMap::new(),
            active: BTreeSet::new(),
            reader,
        }
    }

    /// A stream thread is about to open task `task` as active: its standby, if any,
    /// is closed (its stores keep their checkpoints for the active task), and none is
    /// opened until [`StandbyTasks::deactivate`].
    pub fn activate(&mut self, task: TaskId) {
        self.active.insert(task);
        self.close_task(task);
    }

    /// Task `task` is no longer active on the instance (its stores are closed).
    pub fn deactivate(&mut self, task: TaskId) {
        self.active.remove(&task);
    }

    /// The standby tasks, sorted.
    pub fn task_ids(&self) -> Vec<TaskId> {
        self.tasks.keys().copied().collect()
    }

    /// Store `name` of every standby task that has it.
    pub fn stores_mut<'a>(
        &'a mut self,
        name: &'a str,
    ) -> impl Iterator<Item = &'a mut dyn StateStore> + 'a {
        self.tasks
            .values_mut()
            .filter_map(move |m| m.store_dyn_mut(name))
    }

    fn close_task(&mut self, task: TaskId) {
        if let Some(mut manager) = self.tasks.remove(&task) {
            self.reader.remove_task(task);
            manager.close();
            tracing::info!(task = %task, "standby task closed");
        }
    }

    /// Closes every standby task.
    pub fn close_all(&mut self) {
        let tasks: Vec<TaskId> = self.tasks.keys().copied().collect();
        for task in tasks {
            self.close_task(task);
        }
    }

    /// Opens the standby tasks `placement` wants and closes those it puts elsewhere,
    /// except that tasks active on the instance have no standby. A standby whose task
    /// has no owner at the moment (its owner left, the rebalance has not handed it out
    /// yet) stays: its instance may be the one that gets the task.
    fn reconcile(
        &mut self,
        placement: &Placement,
        topology: &Topology,
        env: &TaskEnv,
    ) -> Result<()> {
        let Placement { wanted, owned } = placement;
        let stale: Vec<TaskId> = self
            .tasks
            .keys()
            .filter(|t| (owned.contains(t) && !wanted.contains(t)) || self.active.contains(t))
            .copied()
            .collect();
        for task in stale {
            self.close_task(task);
        }
        for &task in wanted {
            if self.tasks.contains_key(&task) || self.active.contains(&task) {
                continue;
            }
            let Some(sub) = topology.subtopologies.get(task.subtopology) else {
                continue;
            };
            let mut manager = ProcessorStateManager::for_subtopology(topology, sub, task, env)?;
            manager.init_stores(env.store_context(task))?;
            let sources: Vec<String> = sub
                .source_topics
                .iter()
                .map(|t| topology.resolve_topic(&env.application_id, t))
                .collect();
            if let Err(error) = self.reader.register_standby(task, &mut manager, &sources) {
                manager.close();
                return Err(error);
            }
            self.tasks.insert(task, manager);
            tracing::info!(task = %task, "standby task opened");
        }
        Ok(())
    }

    /// Reads and applies changelog records for about `budget`.
    fn update(&mut self, budget: Duration) -> Result<()> {
        if self.tasks.is_empty() {
            return Ok(());
        }
        self.reader.restore(&mut self.tasks, budget).map(|_| ())
    }
}

/// How long the updater waits for new claims each round (without the standbys'
/// lock; the rounds' pace when nothing changes).
const CLAIMS_WAIT: Duration = Duration::from_millis(20);

/// How long each round applies changelog records (with the standbys' lock, which
/// handovers and stale queries wait for).
const UPDATE_SLICE: Duration = Duration::from_millis(20);

/// How long the updater waits (for claims) after a failure before trying again.
const RETRY_WAIT: Duration = Duration::from_secs(1);

/// The standby updater thread of an instance with `num.standby.replicas` > 0: follows
/// the claims, keeps the standby tasks placed on the instance open and up to date,
/// until shutdown. Failures are logged and the standbys reopened (from their
/// checkpoints) a moment later: they never stop processing.
pub(crate) fn run_standby_updater(
    topology: Arc<Topology>,
    env: Arc<TaskEnv>,
    shared: Arc<ClientShared>,
) {
    let mut tail: Option<MembershipTail> = None;
    let mut wait = CLAIMS_WAIT;
    while !shared.shutdown.load(Ordering::SeqCst) {
        let round = follow_claims(&mut tail, &env, wait).and_then(|owners| {
            let placement = standbys_on(&topology, &env, owners, &env.process_id);
            let mut standbys = shared.standbys();
            standbys
                .reconcile(&placement, &topology, &env)
                .and_then(|()| standbys.update(UPDATE_SLICE))
                .inspect_err(|_| standbys.close_all())
        });
        wait = match round {
            Ok(()) => CLAIMS_WAIT,
            Err(error) => {
                tracing::warn!(%error, "standby update failed; reopening the standby tasks from their checkpoints shortly");
                RETRY_WAIT
            }
        };
    }
    shared.standbys().close_all();
}

/// Reads the claims that arrive within `wait` (opening the reader first if needed).
fn follow_claims<'a>(
    tail: &'a mut Option<MembershipTail>,
    env: &TaskEnv,
    wait: Duration,
) -> Result<&'a Owners> {
    if tail.is_none() {
        *tail = Some(MembershipTail::new(
            &env.config.client,
            &env.application_id,
        )?);
    }
    let Some(tail) = tail.as_mut() else {
        return Err(StreamsError::Internal(
            "the claims reader is missing".into(),
        ));
    };
    tail.poll(wait)?;
    Ok(tail.owners())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(partition: i32) -> TaskId {
        TaskId {
            subtopology: 0,
            partition,
        }
    }

    fn set(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    fn owned(owners: &[&str]) -> BTreeMap<TaskId, String> {
        owners
            .iter()
            .enumerate()
            .map(|(p, o)| (task(p as i32), o.to_string()))
            .collect()
    }

    #[test]
    fn standbys_go_to_the_live_instances_after_the_owner_in_process_id_order() {
        let live = set(&["a", "b", "c"]);
        let placed = place_standbys(&owned(&["a", "b", "c"]), &live, 1);
        assert_eq!(placed[&task(0)], ["b"]);
        assert_eq!(placed[&task(1)], ["c"]);
        assert_eq!(placed[&task(2)], ["a"], "the ring wraps around");
        let placed = place_standbys(&owned(&["b"]), &live, 2);
        assert_eq!(placed[&task(0)], ["c", "a"]);
        // An owner the live set no longer counts still never gets its own standby.
        let placed = place_standbys(&owned(&["bb"]), &live, 3);
        assert_eq!(placed[&task(0)], ["c", "a", "b"]);
    }

    #[test]
    fn standbys_never_land_on_the_owner_and_are_capped_by_the_other_instances() {
        let live = set(&["p1", "p2", "p3", "p4"]);
        for replicas in 0..6 {
            let placed = place_standbys(&owned(&["p1", "p2", "p3", "p4", "p2"]), &live, replicas);
            for (task, standbys) in &placed {
                let owner = &owned(&["p1", "p2", "p3", "p4", "p2"])[task];
                assert!(!standbys.contains(owner), "{task}: {standbys:?}");
                assert_eq!(standbys.len(), replicas.min(live.len() - 1));
                let distinct: BTreeSet<&String> = standbys.iter().collect();
                assert_eq!(distinct.len(), standbys.len());
            }
        }
        // One instance: nowhere to put a standby.
        let placed = place_standbys(&owned(&["solo"]), &set(&["solo"]), 1);
        assert!(placed[&task(0)].is_empty());
        assert!(place_standbys(&owned(&["x"]), &BTreeSet::new(), 1)[&task(0)].is_empty());
    }

    #[test]
    fn placement_is_the_same_whatever_order_the_inputs_were_built_in() {
        let owners = ["c", "a", "b", "a"];
        let forward: BTreeSet<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let backward: BTreeSet<String> = ["c", "b", "a"].iter().map(|s| s.to_string()).collect();
        let mut reversed = BTreeMap::new();
        for (task, owner) in owned(&owners).into_iter().rev() {
            reversed.insert(task, owner);
        }
        assert_eq!(
            place_standbys(&owned(&owners), &forward, 1),
            place_standbys(&reversed, &backward, 1)
        );
    }

    #[test]
    fn tasks_take_their_owner_from_the_claims_on_their_source_partitions() {
        let topology = {
            let builder = crate::dsl::StreamsBuilder::new();
            builder
                .stream::<String, String>("words")
                .group_by_key()
                .count_with(crate::dsl::Materialized::as_("counts"));
            builder.build().expect("topology")
        };
        let mut owners = Owners::default();
        let claim = |partitions: &[(&str, i32)]| {
            let list: Vec<(String, i32)> = partitions
                .iter()
                .map(|(t, p)| (t.to_string(), *p))
                .collect();
            super::super::membership::claim_record("app", "x", None, 0, Some(&list), 0)
                .expect("claim")
                .value
                .expect("value")
                .into_owned()
        };
        owners.apply("pa#0", Some(&claim(&[("words", 0), ("words", 2)])));
        owners.apply("pb#0", Some(&claim(&[("words", 1)])));
        let active = active_owners(&topology, "app", &owners);
        assert_eq!(active, owned(&["pa", "pb", "pa"]));
        assert!(has_standby_stores(&topology, "app", 0));
    }
}
