//! The in-memory `mock://<scope>` registry: Confluent's `MockSchemaRegistry` for tests.
//!
//! Every client in the process that uses the same scope sees the same subjects and ids.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use crate::compatibility::{check_compatibility, CompatibilityLevel};
use crate::error::{AvroSerdeError, Result};
use crate::schema::{
    invalid_schema, ParsedSchema, RegisteredSchema, SchemaDefinition, SchemaReference,
};

/// The process-wide scopes of the `mock://` registry.
fn scopes() -> &'static Mutex<HashMap<String, Arc<MockScope>>> {
    static SCOPES: OnceLock<Mutex<HashMap<String, Arc<MockScope>>>> = OnceLock::new();
    SCOPES.get_or_init(Default::default)
}

/// The in-memory registry of one `mock://` scope.
#[derive(Debug, Default)]
pub(crate) struct MockScope {
    state: Mutex<MockState>,
}

#[derive(Debug, Default)]
struct MockState {
    /// Schemas by id; ids are registry-wide, as in Confluent's registry.
    schemas: BTreeMap<u32, SchemaDefinition>,
    /// Id of each distinct (normalized) schema.
    ids: HashMap<SchemaDefinition, u32>,
    subjects: BTreeMap<String, Subject>,
    global_compatibility: CompatibilityLevel,
}

#[derive(Debug, Default)]
struct Subject {
    /// (version, id), oldest first.
    versions: Vec<(u32, u32)>,
    /// Versions are never reused after a (soft) delete.
    last_version: u32,
    compatibility: Option<CompatibilityLevel>,
}

/// Entry points for tests: scopes can be dropped to start from an empty registry.
#[derive(Debug, Clone, Copy)]
pub struct MockSchemaRegistry;

impl MockSchemaRegistry {
    /// Forgets every subject and schema of `scope` (Confluent's `MockSchemaRegistry.dropScope`).
    /// Clients already holding the scope keep their copy.
    pub fn drop_scope(scope: &str) {
        lock(scopes()).remove(scope);
    }

    pub(crate) fn scope(scope: &str) -> Arc<MockScope> {
        lock(scopes()).entry(scope.to_owned()).or_default().clone()
    }
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it: the registry's
/// maps stay consistent because every update is a single insert.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl MockScope {
    pub(crate) fn register(&self, subject: &str, definition: &SchemaDefinition) -> Result<u32> {
        let mut state = lock(&self.state);
        let normalized = definition.normalized();
        let parsed = state.parse(subject, &normalized)?;
        if let Some(existing) = state.version_with_schema(subject, &normalized) {
            return Ok(existing.1);
        }
        let level = state.compatibility_of(subject);
        let earlier = state
            .subjects
            .get(subject)
            .map(|s| s.versions.clone())
            .unwrap_or_default();
        if level != CompatibilityLevel::None && !earlier.is_empty() {
            let mut parsed_earlier = Vec::with_capacity(earlier.len());
            for (version, id) in &earlier {
                let definition = state
                    .schemas
                    .get(id)
                    .cloned()
                    .ok_or(AvroSerdeError::UnknownSchemaId { id: *id })?;
                parsed_earlier.push((*version, state.parse(subject, &definition)?));
            }
            let earlier_refs: Vec<(u32, &apache_avro::Schema)> = parsed_earlier
                .iter()
                .map(|(v, p)| (*v, p.schema()))
                .collect();
            check_compatibility(level, parsed.schema(), &earlier_refs).map_err(|reason| {
                AvroSerdeError::IncompatibleSchema {
                    subject: subject.to_owned(),
                    reason,
                }
            })?;
        }
        let id = match state.ids.get(&normalized) {
            Some(id) => *id,
            None => {
                let id = state.schemas.keys().next_back().map_or(1, |last| last + 1);
                state.schemas.insert(id, normalized.clone());
                state.ids.insert(normalized, id);
                id
            }
        };
        let entry = state.subjects.entry(subject.to_owned()).or_default();
        entry.last_version += 1;
        let version = entry.last_version;
        entry.versions.push((version, id));
        Ok(id)
    }

    pub(crate) fn lookup(
        &self,
        subject: &str,
        definition: &SchemaDefinition,
    ) -> Result<RegisteredSchema> {
        let state = lock(&self.state);
        let normalized = definition.normalized();
        state.live_subject(subject)?;
        let (version, id) = state
            .version_with_schema(subject, &normalized)
            .ok_or_else(|| AvroSerdeError::SchemaNotFound {
                subject: subject.to_owned(),
            })?;
        Ok(RegisteredSchema {
            subject: subject.to_owned(),
            version,
            id,
            definition: normalized,
        })
    }

    pub(crate) fn schema_by_id(&self, id: u32) -> Result<SchemaDefinition> {
        lock(&self.state)
            .schemas
            .get(&id)
            .cloned()
            .ok_or(AvroSerdeError::UnknownSchemaId { id })
    }

    /// `version` `None` is the latest.
    pub(crate) fn version(&self, subject: &str, version: Option<u32>) -> Result<RegisteredSchema> {
        let state = lock(&self.state);
        let subject_state = state.live_subject(subject)?;
        let found = match version {
            None => subject_state.versions.last(),
            Some(wanted) => subject_state.versions.iter().find(|(v, _)| *v == wanted),
        };
        let (version, id) = *found.ok_or_else(|| AvroSerdeError::VersionNotFound {
            subject: subject.to_owned(),
            version: version.map_or_else(|| "latest".to_owned(), |v| v.to_string()),
        })?;
        let definition = state
            .schemas
            .get(&id)
            .cloned()
            .ok_or(AvroSerdeError::UnknownSchemaId { id })?;
        Ok(RegisteredSchema {
            subject: subject.to_owned(),
            version,
            id,
            definition,
        })
    }

    pub(crate) fn subjects(&self) -> Vec<String> {
        lock(&self.state)
            .subjects
            .iter()
            .filter(|(_, s)| !s.versions.is_empty())
            .map(|(name, _)| name.clone())
            .collect()
    }

    pub(crate) fn versions(&self, subject: &str) -> Result<Vec<u32>> {
        let state = lock(&self.state);
        Ok(state
            .live_subject(subject)?
            .versions
            .iter()
            .map(|(v, _)| *v)
            .collect())
    }

    pub(crate) fn test_compatibility(
        &self,
        subject: &str,
        definition: &SchemaDefinition,
    ) -> Result<bool> {
        let state = lock(&self.state);
        let parsed = state.parse(subject, &definition.normalized())?;
        let subject_state = state.live_subject(subject)?;
        let Some((version, id)) = subject_state.versions.last().copied() else {
            return Ok(true);
        };
        let latest = state
            .schemas
            .get(&id)
            .cloned()
            .ok_or(AvroSerdeError::UnknownSchemaId { id })?;
        let latest = state.parse(subject, &latest)?;
        // Confluent tests against the given version only, whatever the transitivity.
        Ok(check_compatibility(
            state.compatibility_of(subject),
            parsed.schema(),
            &[(version, latest.schema())],
        )
        .is_ok())
    }

    pub(crate) fn compatibility(&self, subject: Option<&str>) -> Option<CompatibilityLevel> {
        let state = lock(&self.state);
        match subject {
            None => Some(state.global_compatibility),
            Some(subject) => state.subjects.get(subject).and_then(|s| s.compatibility),
        }
    }

    pub(crate) fn set_compatibility(&self, subject: Option<&str>, level: CompatibilityLevel) {
        let mut state = lock(&self.state);
        match subject {
            None => state.global_compatibility = level,
            Some(subject) => {
                state
                    .subjects
                    .entry(subject.to_owned())
                    .or_default()
                    .compatibility = Some(level);
            }
        }
    }

    pub(crate) fn delete_subject(&self, subject: &str) -> Result<Vec<u32>> {
        let mut state = lock(&self.state);
        state.live_subject(subject)?;
        let entry = state.subjects.entry(subject.to_owned()).or_default();
        let deleted = entry.versions.drain(..).map(|(v, _)| v).collect();
        Ok(deleted)
    }
}

impl MockState {
    fn compatibility_of(&self, subject: &str) -> CompatibilityLevel {
        self.subjects
            .get(subject)
            .and_then(|s| s.compatibility)
            .unwrap_or(self.global_compatibility)
    }

    fn live_subject(&self, subject: &str) -> Result<&Subject> {
        self.subjects
            .get(subject)
            .filter(|s| !s.versions.is_empty())
            .ok_or_else(|| AvroSerdeError::SubjectNotFound {
                subject: subject.to_owned(),
            })
    }

    fn version_with_schema(
        &self,
        subject: &str,
        normalized: &SchemaDefinition,
    ) -> Option<(u32, u32)> {
        let id = *self.ids.get(normalized)?;
        self.subjects
            .get(subject)?
            .versions
            .iter()
            .find(|(_, existing)| *existing == id)
            .copied()
    }

    /// Parses a schema, resolving its references from this registry (HTTP 422 on failure).
    fn parse(&self, subject: &str, definition: &SchemaDefinition) -> Result<ParsedSchema> {
        let mut referenced = Vec::new();
        let mut seen = Vec::new();
        self.collect_references(subject, &definition.references, &mut referenced, &mut seen)?;
        ParsedSchema::parse_with_references(&definition.schema, &referenced)
            .map_err(|e| invalid_schema(subject, e))
    }

    fn collect_references(
        &self,
        subject: &str,
        references: &[SchemaReference],
        out: &mut Vec<String>,
        seen: &mut Vec<(String, u32)>,
    ) -> Result<()> {
        for reference in references {
            let key = (reference.subject.clone(), reference.version);
            if seen.contains(&key) {
                continue;
            }
            seen.push(key);
            let id = self
                .subjects
                .get(&reference.subject)
                .and_then(|s| s.versions.iter().find(|(v, _)| *v == reference.version))
                .map(|(_, id)| *id)
                .ok_or_else(|| {
                    invalid_schema(
                        subject,
                        format!(
                            "reference {} to version {} of subject {} not found",
                            reference.name, reference.version, reference.subject
                        ),
                    )
                })?;
            let definition = self
                .schemas
                .get(&id)
                .ok_or(AvroSerdeError::UnknownSchemaId { id })?;
            self.collect_references(subject, &definition.references, out, seen)?;
            out.push(definition.schema.clone());
        }
        Ok(())
    }
}
