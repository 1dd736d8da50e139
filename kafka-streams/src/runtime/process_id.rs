//! The instance's process id (Kafka's `StateDirectory.initializeProcessId`): a UUID
//! kept in `<state.dir>/<application.id>/kafka-streams-process-metadata`, so that a
//! restarted instance has the same one. Under exactly-once it is part of each stream
//! thread's `transactional.id`: the restarted instance's producers fence the crashed
//! ones and abort their open transactions at once, instead of leaving
//! `read_committed` readers waiting for the transaction timeout. The instance holds
//! the directory's lock (see `state_dir_lock.rs`), so the id belongs to one live
//! instance; one whose directory was copied from another's has that one's id, which
//! `duplicate_identity.rs` detects.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Result, StreamsError};

/// The file's name, as in Kafka.
const PROCESS_FILE_NAME: &str = "kafka-streams-process-metadata";

#[derive(serde::Serialize, serde::Deserialize)]
struct ProcessFile {
    #[serde(rename = "processId")]
    process_id: Option<String>,
}

/// The process id stored under `state_dir`/`application_id`, created (and stored)
/// when there is none or the file does not parse.
pub(crate) fn load_or_create(state_dir: &Path, application_id: &str) -> Result<String> {
    let dir = state_dir.join(application_id);
    let path = dir.join(PROCESS_FILE_NAME);
    let io = |operation: &str, e: std::io::Error| {
        StreamsError::Config(format!(
            "{operation} the process id file {}: {e}",
            path.display()
        ))
    };
    match std::fs::read(&path) {
        Ok(bytes) => match serde_json::from_slice::<ProcessFile>(&bytes) {
            Ok(ProcessFile {
                process_id: Some(id),
            }) if !id.trim().is_empty() => return Ok(id),
            _ => {
                tracing::warn!(path = %path.display(), "unreadable process id file; creating a new process id")
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("reading", e)),
    }
    let id = random_uuid();
    std::fs::create_dir_all(&dir).map_err(|e| io("creating the directory of", e))?;
    let file = ProcessFile {
        process_id: Some(id.clone()),
    };
    let json = serde_json::to_vec(&file)
        .map_err(|e| StreamsError::Internal(format!("encoding the process id: {e}")))?;
    // Written aside and renamed: a crash leaves the old file or the new one.
    let tmp = dir.join(format!("{PROCESS_FILE_NAME}.tmp"));
    std::fs::write(&tmp, json).map_err(|e| io("writing", e))?;
    std::fs::rename(&tmp, &path).map_err(|e| io("replacing", e))?;
    tracing::info!(process_id = %id, "no process id found on disk; created one");
    Ok(id)
}

/// A random (version 4) UUID, from the standard library's randomly seeded hasher.
pub(crate) fn random_uuid() -> String {
    let word = |salt: u64| {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(salt);
        hasher.write_u128(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        hasher.write_u32(std::process::id());
        hasher.finish()
    };
    let bits = (u128::from(word(1)) << 64) | u128::from(word(2));
    // Version 4, variant 1.
    let bits = (bits & !(0xf << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_id_survives_a_restart_and_differs_between_state_dirs() {
        let one = tempfile::tempdir().expect("tempdir");
        let two = tempfile::tempdir().expect("tempdir");
        let first = load_or_create(one.path(), "app").expect("create");
        assert_eq!(first.len(), 36, "{first}");
        assert_eq!(&first[14..15], "4", "version 4: {first}");
        assert_eq!(load_or_create(one.path(), "app").expect("read"), first);
        assert_ne!(load_or_create(two.path(), "app").expect("create"), first);
        // Kafka's file format.
        let text =
            std::fs::read_to_string(one.path().join("app").join(PROCESS_FILE_NAME)).expect("file");
        assert_eq!(text, format!("{{\"processId\":\"{first}\"}}"));
    }

    #[test]
    fn unreadable_file_gets_a_new_id() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("app")).expect("mkdir");
        std::fs::write(dir.path().join("app").join(PROCESS_FILE_NAME), "{oops").expect("write");
        let id = load_or_create(dir.path(), "app").expect("create");
        assert_eq!(load_or_create(dir.path(), "app").expect("read"), id);
    }
}
