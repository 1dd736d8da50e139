//! Compatibility levels and the check a registry runs before accepting a new version.

use std::fmt;
use std::str::FromStr;

use apache_avro::schema_compatibility::{Compatibility, SchemaCompatibility};
use apache_avro::Schema;

/// A subject's compatibility level, with Confluent's names and meaning.
///
/// ```
/// use serde_avro::CompatibilityLevel;
/// let level: CompatibilityLevel = "FULL_TRANSITIVE".parse().unwrap();
/// assert_eq!(level, CompatibilityLevel::FullTransitive);
/// assert_eq!(CompatibilityLevel::default(), CompatibilityLevel::Backward);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CompatibilityLevel {
    /// No check.
    None,
    /// Consumers using the new schema can read data written with the latest one (default).
    #[default]
    Backward,
    /// As [`CompatibilityLevel::Backward`], against every earlier version.
    BackwardTransitive,
    /// Consumers using the latest schema can read data written with the new one.
    Forward,
    /// As [`CompatibilityLevel::Forward`], against every earlier version.
    ForwardTransitive,
    /// Backward and forward.
    Full,
    /// Backward and forward, against every earlier version.
    FullTransitive,
}

impl CompatibilityLevel {
    /// Confluent's name, e.g. `BACKWARD_TRANSITIVE`.
    pub fn as_str(self) -> &'static str {
        match self {
            CompatibilityLevel::None => "NONE",
            CompatibilityLevel::Backward => "BACKWARD",
            CompatibilityLevel::BackwardTransitive => "BACKWARD_TRANSITIVE",
            CompatibilityLevel::Forward => "FORWARD",
            CompatibilityLevel::ForwardTransitive => "FORWARD_TRANSITIVE",
            CompatibilityLevel::Full => "FULL",
            CompatibilityLevel::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    fn is_transitive(self) -> bool {
        matches!(
            self,
            CompatibilityLevel::BackwardTransitive
                | CompatibilityLevel::ForwardTransitive
                | CompatibilityLevel::FullTransitive
        )
    }

    fn checks_backward(self) -> bool {
        matches!(
            self,
            CompatibilityLevel::Backward
                | CompatibilityLevel::BackwardTransitive
                | CompatibilityLevel::Full
                | CompatibilityLevel::FullTransitive
        )
    }

    fn checks_forward(self) -> bool {
        matches!(
            self,
            CompatibilityLevel::Forward
                | CompatibilityLevel::ForwardTransitive
                | CompatibilityLevel::Full
                | CompatibilityLevel::FullTransitive
        )
    }
}

impl fmt::Display for CompatibilityLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A compatibility level name that is not one of Confluent's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown compatibility level {0:?} (expected NONE, BACKWARD, BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL or FULL_TRANSITIVE)")]
pub struct UnknownCompatibilityLevel(pub String);

impl FromStr for CompatibilityLevel {
    type Err = UnknownCompatibilityLevel;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim().to_ascii_uppercase().as_str() {
            "NONE" => CompatibilityLevel::None,
            "BACKWARD" => CompatibilityLevel::Backward,
            "BACKWARD_TRANSITIVE" => CompatibilityLevel::BackwardTransitive,
            "FORWARD" => CompatibilityLevel::Forward,
            "FORWARD_TRANSITIVE" => CompatibilityLevel::ForwardTransitive,
            "FULL" => CompatibilityLevel::Full,
            "FULL_TRANSITIVE" => CompatibilityLevel::FullTransitive,
            _ => return Err(UnknownCompatibilityLevel(s.to_owned())),
        })
    }
}

/// Whether data written with `writer` can always be read with `reader`.
///
/// apache-avro reports a partial match (an enum missing some writer symbols, a union missing
/// some writer branches) as `Ok(Partial)`; Confluent's checker rejects those, so only a full
/// match counts here.
pub fn can_read(writer: &Schema, reader: &Schema) -> Result<(), String> {
    match SchemaCompatibility::can_read(writer, reader) {
        Ok(Compatibility::Full) => Ok(()),
        Ok(Compatibility::Partial) => Err(
            "only a partial match: some enum symbols or union branches of the writer are missing in the reader"
                .to_owned(),
        ),
        Err(error) => Err(error.to_string()),
    }
}

/// Checks `new` against the subject's earlier versions (oldest first) under `level`, as the
/// registry does on registration. The error says which version and direction failed.
pub fn check_compatibility(
    level: CompatibilityLevel,
    new: &Schema,
    earlier_versions: &[(u32, &Schema)],
) -> Result<(), String> {
    let against: &[(u32, &Schema)] = if level.is_transitive() {
        earlier_versions
    } else {
        match earlier_versions.last() {
            Some(_) => &earlier_versions[earlier_versions.len() - 1..],
            None => &[],
        }
    };
    for (version, existing) in against {
        if level.checks_backward() {
            can_read(existing, new).map_err(|reason| {
                format!("{level}: the new schema cannot read data written with version {version}: {reason}")
            })?;
        }
        if level.checks_forward() {
            can_read(new, existing).map_err(|reason| {
                format!("{level}: version {version} cannot read data written with the new schema: {reason}")
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Schema {
        Schema::parse_str(json).expect("test schema parses")
    }

    #[test]
    fn level_names_round_trip() {
        for level in [
            CompatibilityLevel::None,
            CompatibilityLevel::Backward,
            CompatibilityLevel::BackwardTransitive,
            CompatibilityLevel::Forward,
            CompatibilityLevel::ForwardTransitive,
            CompatibilityLevel::Full,
            CompatibilityLevel::FullTransitive,
        ] {
            assert_eq!(level.as_str().parse::<CompatibilityLevel>(), Ok(level));
        }
        assert!("SIDEWAYS".parse::<CompatibilityLevel>().is_err());
    }

    #[test]
    fn partial_enum_match_is_incompatible() {
        let writer = parse(r#"{"type":"enum","name":"Unit","symbols":["CM","MM","KM"]}"#);
        let reader = parse(r#"{"type":"enum","name":"Unit","symbols":["CM","MM"]}"#);
        // apache-avro alone calls this partially compatible...
        assert_eq!(
            SchemaCompatibility::can_read(&writer, &reader),
            Ok(Compatibility::Partial)
        );
        // ...Confluent (and so this crate) rejects it.
        let err = can_read(&writer, &reader).unwrap_err();
        assert!(err.contains("partial"), "{err}");
        // With a reader default, every writer symbol has somewhere to go.
        let with_default =
            parse(r#"{"type":"enum","name":"Unit","symbols":["CM","MM"],"default":"CM"}"#);
        assert_eq!(can_read(&writer, &with_default), Ok(()));
    }

    #[test]
    fn partial_union_match_is_incompatible() {
        let writer = parse(r#"["null","long","string"]"#);
        let reader = parse(r#"["null","long"]"#);
        assert!(can_read(&writer, &reader).is_err());
        assert_eq!(can_read(&reader, &writer), Ok(()));
    }
}
