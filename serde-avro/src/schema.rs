//! Schemas as the registry stores them, and their parsed, self-contained form.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use apache_avro::schema::{ArraySchema, MapSchema, Name, ResolvedSchema, UnionSchema};
use apache_avro::Schema;
use serde::{Deserialize, Serialize};

use crate::error::{AvroSerdeError, Result};

/// A named type that a schema uses and that is registered under another subject
/// (Confluent's `references` entry).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SchemaReference {
    /// The referenced type's full name, as used in the referencing schema.
    pub name: String,
    /// The subject the referenced schema is registered under.
    pub subject: String,
    /// The version of that subject.
    pub version: u32,
}

impl SchemaReference {
    /// A reference to `version` of `subject`, known as `name` in the referencing schema.
    pub fn new(name: impl Into<String>, subject: impl Into<String>, version: u32) -> Self {
        SchemaReference {
            name: name.into(),
            subject: subject.into(),
            version,
        }
    }
}

/// An Avro schema's JSON text and the references it needs, as sent to and returned by the
/// registry.
///
/// ```
/// use serde_avro::SchemaDefinition;
/// let schema = SchemaDefinition::new(r#"{"type":"record","name":"Reading","fields":[]}"#);
/// assert!(schema.references.is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SchemaDefinition {
    /// The schema as JSON text.
    pub schema: String,
    /// Named types defined under other subjects.
    pub references: Vec<SchemaReference>,
}

impl SchemaDefinition {
    /// A schema without references.
    pub fn new(schema: impl Into<String>) -> Self {
        SchemaDefinition {
            schema: schema.into(),
            references: Vec::new(),
        }
    }

    /// The same schema with `references`.
    pub fn with_references(mut self, references: Vec<SchemaReference>) -> Self {
        self.references = references;
        self
    }

    /// The full JSON form of a parsed schema (with docs, defaults and aliases, unlike Avro's
    /// Parsing Canonical Form, because the registry needs them to check compatibility).
    pub fn from_schema(schema: &Schema) -> Self {
        // Serializing a parsed `Schema` to JSON cannot fail: it is a tree of strings and maps.
        let json = serde_json::to_string(schema).unwrap_or_else(|_| schema.canonical_form());
        SchemaDefinition::new(json)
    }

    /// A key that is equal for schemas that differ only in JSON whitespace or key order,
    /// the way the registry deduplicates schemas.
    pub(crate) fn normalized(&self) -> SchemaDefinition {
        let schema = serde_json::from_str::<serde_json::Value>(&self.schema)
            .map(|json| json.to_string())
            .unwrap_or_else(|_| self.schema.clone());
        SchemaDefinition {
            schema,
            references: self.references.clone(),
        }
    }
}

/// A schema under a subject: its id, version and definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredSchema {
    /// The subject.
    pub subject: String,
    /// The version within the subject.
    pub version: u32,
    /// The registry-wide schema id.
    pub id: u32,
    /// The schema itself.
    pub definition: SchemaDefinition,
}

#[ouroboros::self_referencing]
struct OwnedResolved {
    schema: Schema,
    #[borrows(schema)]
    #[covariant]
    resolved: ResolvedSchema<'this>,
}

/// A parsed schema with every reference inlined, ready to encode and decode.
pub struct ParsedSchema {
    inner: OwnedResolved,
    canonical_form: String,
}

impl std::fmt::Debug for ParsedSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParsedSchema")
            .field("canonical_form", &self.canonical_form)
            .finish()
    }
}

impl ParsedSchema {
    /// Wraps a self-contained schema (no references to types defined elsewhere).
    pub fn new(schema: Schema) -> Result<Self, apache_avro::Error> {
        let canonical_form = schema.canonical_form();
        let inner = OwnedResolvedTryBuilder {
            schema,
            resolved_builder: |schema: &Schema| ResolvedSchema::try_from(schema),
        }
        .try_build()?;
        Ok(ParsedSchema {
            inner,
            canonical_form,
        })
    }

    /// Parses `schema` JSON, resolving the named types it references from `referenced`
    /// (JSON of named schemas, in any order), and inlines them.
    pub fn parse_with_references(
        schema: &str,
        referenced: &[String],
    ) -> Result<Self, apache_avro::Error> {
        if referenced.is_empty() {
            return ParsedSchema::new(Schema::parse_str(schema)?);
        }
        let (root, schemata) = Schema::parse_str_with_list(schema, referenced)?;
        let definitions: HashMap<Name, &Schema> = schemata
            .iter()
            .filter_map(|s| s.name().map(|name| (name.clone(), s)))
            .collect();
        let mut defined = HashSet::new();
        let inlined = inline_references(&root, &definitions, &mut defined)?;
        ParsedSchema::new(inlined)
    }

    /// The parsed schema.
    pub fn schema(&self) -> &Schema {
        self.inner.borrow_schema()
    }

    /// The names the schema defines, as apache-avro's encoder wants them.
    pub(crate) fn resolved(&self) -> &ResolvedSchema<'_> {
        self.inner.borrow_resolved()
    }

    /// Avro's Parsing Canonical Form: equal for schemas with the same binary encoding.
    pub fn canonical_form(&self) -> &str {
        &self.canonical_form
    }

    /// The full name of a named (record, enum, fixed) schema.
    pub fn full_name(&self) -> Option<String> {
        self.schema().name().map(|name| name.fullname(None))
    }

    /// What to call this schema in messages: its full name or its type.
    pub(crate) fn describe(&self) -> String {
        self.full_name()
            .unwrap_or_else(|| self.canonical_form.clone())
    }
}

/// Replaces the first use of each referenced named type with its definition, so the schema
/// is self-contained (apache-avro's encoder and compatibility checker need that).
fn inline_references(
    schema: &Schema,
    definitions: &HashMap<Name, &Schema>,
    defined: &mut HashSet<Name>,
) -> Result<Schema, apache_avro::Error> {
    Ok(match schema {
        Schema::Ref { name } => {
            if defined.contains(name) {
                schema.clone()
            } else if let Some(definition) = definitions.get(name) {
                inline_references(definition, definitions, defined)?
            } else {
                schema.clone()
            }
        }
        Schema::Record(record) => {
            if !defined.insert(record.name.clone()) {
                return Ok(Schema::Ref {
                    name: record.name.clone(),
                });
            }
            let mut record = record.clone();
            for field in &mut record.fields {
                field.schema = inline_references(&field.schema, definitions, defined)?;
            }
            Schema::Record(record)
        }
        Schema::Enum(e) => {
            if !defined.insert(e.name.clone()) {
                return Ok(Schema::Ref {
                    name: e.name.clone(),
                });
            }
            schema.clone()
        }
        Schema::Fixed(f) => {
            if !defined.insert(f.name.clone()) {
                return Ok(Schema::Ref {
                    name: f.name.clone(),
                });
            }
            schema.clone()
        }
        Schema::Array(array) => Schema::Array(ArraySchema {
            items: Box::new(inline_references(&array.items, definitions, defined)?),
            attributes: array.attributes.clone(),
        }),
        Schema::Map(map) => Schema::Map(MapSchema {
            types: Box::new(inline_references(&map.types, definitions, defined)?),
            attributes: map.attributes.clone(),
        }),
        Schema::Union(union) => {
            let variants = union
                .variants()
                .iter()
                .map(|variant| inline_references(variant, definitions, defined))
                .collect::<Result<Vec<_>, _>>()?;
            Schema::Union(UnionSchema::new(variants)?)
        }
        other => other.clone(),
    })
}

/// Turns apache-avro's parse error into the crate's error for `subject`.
pub(crate) fn invalid_schema(subject: &str, error: impl std::fmt::Display) -> AvroSerdeError {
    AvroSerdeError::InvalidSchema {
        subject: subject.to_owned(),
        reason: error.to_string(),
    }
}

/// A parsed schema shared between caches and serdes.
pub type SharedSchema = Arc<ParsedSchema>;
