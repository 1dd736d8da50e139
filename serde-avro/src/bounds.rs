//! A walk over an Avro datum that checks every length it declares against the bytes
//! that follow, before apache-avro decodes it.
//!
//! apache-avro allocates what a length in the data asks for before reading the bytes
//! (a string's buffer, an array's or map's capacity), up to its global limit of
//! 512 MiB: a datum of a few bytes could make a consumer allocate that much (found by
//! fuzzing, `fuzz/regressions/avro_resolve/`). A valid datum holds every byte that its
//! strings, bytes and fixed values declare, and its arrays and maps have no more items
//! than bytes, except items that take no bytes (nulls, empty records), which are
//! allowed [`ZERO_BYTE_ITEMS`] per datum. Records, arrays and maps nested deeper than
//! [`MAX_DEPTH`] (possible only with recursive schemas) are refused too, since decoding,
//! resolving and dropping recurse a few stack frames per level.

use std::collections::HashMap;

use apache_avro::schema::{
    DecimalSchema, InnerDecimalSchema, Name, NamespaceRef, RecordSchema, UuidSchema,
};
use apache_avro::Schema;

/// Array and map items beyond one per datum byte that a datum may hold.
pub(crate) const ZERO_BYTE_ITEMS: usize = 1024;

/// The deepest nesting of records, arrays and maps a datum may have. Real schemas nest
/// a few levels; only recursive ones go deeper. apache-avro's decoder takes a few
/// frames per level, about 25 KiB each in a debug build (so there 64 levels need a
/// few MiB of stack: more than the 2 MiB of a default thread) and far less optimized.
pub(crate) const MAX_DEPTH: usize = 64;

/// Checks that the lengths that `datum`, a datum of `schema` (whose named types are
/// `names`), declares fit in it; `Err` says what does not. Other defects (a truncated
/// integer, a negative length, a union branch out of range) end the walk with `Ok`:
/// decoding stops there too and reports them as apache-avro does.
pub(crate) fn check_datum(
    schema: &Schema,
    names: &HashMap<Name, &Schema>,
    datum: &[u8],
) -> Result<(), String> {
    let mut walk = Walk {
        names,
        rest: datum,
        items_left: datum.len().saturating_add(ZERO_BYTE_ITEMS),
    };
    match walk.value(schema, None, 0) {
        Ok(()) | Err(Stop::Decoder) => Ok(()),
        Err(Stop::Refuse(reason)) => Err(reason),
    }
}

/// Why the walk ended early.
enum Stop {
    /// A length that does not fit, or too deep a nesting.
    Refuse(String),
    /// A defect that decoding reports where it meets it, allocating nothing for it.
    Decoder,
}

struct Walk<'a, 'd> {
    names: &'a HashMap<Name, &'a Schema>,
    rest: &'d [u8],
    /// Array and map items the rest of the datum may still hold.
    items_left: usize,
}

impl Walk<'_, '_> {
    /// Skips `len` bytes that the schema sizes (a number, a fixed).
    fn skip(&mut self, len: usize) -> Result<(), Stop> {
        self.rest = self.rest.get(len..).ok_or(Stop::Decoder)?;
        Ok(())
    }

    /// Skips `len` bytes that the datum declares.
    fn skip_declared(&mut self, len: usize, what: &str) -> Result<(), Stop> {
        match self.rest.get(len..) {
            Some(rest) => {
                self.rest = rest;
                Ok(())
            }
            None => Err(Stop::Refuse(format!(
                "{what} of {len} bytes, but only {} bytes follow",
                self.rest.len()
            ))),
        }
    }

    /// A zig-zag varint, as apache-avro reads it (at most 10 bytes).
    fn long(&mut self) -> Result<i64, Stop> {
        let mut value: u64 = 0;
        for (index, byte) in self.rest.iter().take(10).enumerate() {
            value |= u64::from(byte & 0x7f) << (7 * index);
            if byte & 0x80 == 0 {
                self.rest = &self.rest[index + 1..];
                return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
            }
        }
        Err(Stop::Decoder)
    }

    fn bytes(&mut self, what: &str) -> Result<(), Stop> {
        let len = usize::try_from(self.long()?).map_err(|_| Stop::Decoder)?;
        self.skip_declared(len, what)
    }

    /// The blocks of an array or map: `items` is called for each item.
    fn blocks(
        &mut self,
        what: &str,
        mut item: impl FnMut(&mut Self) -> Result<(), Stop>,
    ) -> Result<(), Stop> {
        loop {
            let count = self.long()?;
            if count == 0 {
                return Ok(());
            }
            if count < 0 {
                // A negative count is followed by the block's size in bytes.
                self.long()?;
            }
            let count = usize::try_from(count.unsigned_abs()).unwrap_or(usize::MAX);
            if count > self.items_left {
                return Err(Stop::Refuse(format!(
                    "{what} block of {count} items, more than the {} the datum's {} remaining bytes can hold",
                    self.items_left,
                    self.rest.len()
                )));
            }
            self.items_left -= count;
            for _ in 0..count {
                item(self)?;
            }
        }
    }

    fn value(
        &mut self,
        schema: &Schema,
        namespace: NamespaceRef<'_>,
        depth: usize,
    ) -> Result<(), Stop> {
        if depth > MAX_DEPTH {
            return Err(Stop::Refuse(format!(
                "nested deeper than {MAX_DEPTH} levels"
            )));
        }
        match schema {
            Schema::Null => Ok(()),
            Schema::Boolean => self.skip(1),
            Schema::Int
            | Schema::Long
            | Schema::Enum(_)
            | Schema::Date
            | Schema::TimeMillis
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => self.long().map(drop),
            Schema::Float => self.skip(4),
            Schema::Double => self.skip(8),
            Schema::Bytes
            | Schema::BigDecimal
            | Schema::Decimal(DecimalSchema {
                inner: InnerDecimalSchema::Bytes,
                ..
            })
            | Schema::Uuid(UuidSchema::Bytes) => self.bytes("bytes"),
            Schema::String | Schema::Uuid(UuidSchema::String) => self.bytes("string"),
            Schema::Fixed(fixed)
            | Schema::Duration(fixed)
            | Schema::Decimal(DecimalSchema {
                inner: InnerDecimalSchema::Fixed(fixed),
                ..
            })
            | Schema::Uuid(UuidSchema::Fixed(fixed)) => self.skip(fixed.size),
            Schema::Array(array) => self.blocks("array", |walk| {
                walk.value(&array.items, namespace, depth + 1)
            }),
            Schema::Map(map) => self.blocks("map", |walk| {
                walk.bytes("map key")?;
                walk.value(&map.types, namespace, depth + 1)
            }),
            // A union holds no union and a reference names a record, enum or fixed: no
            // chain of them without a record in between, so they are not counted.
            Schema::Union(union) => {
                let index = self.long()?;
                let variant = usize::try_from(index)
                    .ok()
                    .and_then(|index| union.variants().get(index))
                    .ok_or(Stop::Decoder)?;
                self.value(variant, namespace, depth)
            }
            Schema::Record(RecordSchema { name, fields, .. }) => {
                let name = name.fully_qualified_name(namespace);
                for field in fields {
                    self.value(&field.schema, name.namespace(), depth + 1)?;
                }
                Ok(())
            }
            Schema::Ref { name } => {
                let name = name.fully_qualified_name(namespace);
                let schema = self.names.get(name.as_ref()).ok_or(Stop::Decoder)?;
                self.value(schema, name.namespace(), depth)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use apache_avro::schema::ResolvedSchema;
    use apache_avro::types::Value;
    use apache_avro::writer::datum::GenericDatumWriter;

    use super::*;

    fn check(schema: &str, datum: &[u8]) -> Result<(), String> {
        let schema = Schema::parse_str(schema).unwrap();
        let resolved = ResolvedSchema::try_from(&schema).unwrap();
        check_datum(&schema, resolved.get_names(), datum)
    }

    fn encoded(schema: &str, value: Value) -> Vec<u8> {
        let schema = Schema::parse_str(schema).unwrap();
        let mut out = Vec::new();
        GenericDatumWriter::builder(&schema)
            .build()
            .unwrap()
            .write_value_ref(&mut out, &value)
            .unwrap();
        out
    }

    const LIST: &str = r#"{"type":"record","name":"Node","namespace":"n","fields":[
        {"name":"tags","type":{"type":"map","values":{"type":"array","items":"string"}}},
        {"name":"next","type":["null","Node"]}]}"#;

    fn node(tags: Vec<(&str, Vec<&str>)>, next: Option<Value>) -> Value {
        Value::Record(vec![
            (
                "tags".into(),
                Value::Map(
                    tags.into_iter()
                        .map(|(k, v)| {
                            let items = v.into_iter().map(|s| Value::String(s.into())).collect();
                            (k.to_owned(), Value::Array(items))
                        })
                        .collect(),
                ),
            ),
            (
                "next".into(),
                match next {
                    Some(next) => Value::Union(1, Box::new(next)),
                    None => Value::Union(0, Box::new(Value::Null)),
                },
            ),
        ])
    }

    #[test]
    fn valid_datums_pass() {
        let list = node(
            vec![("a", vec!["x", "yy"]), ("b", vec![])],
            Some(node(vec![("c", vec!["zzz"])], None)),
        );
        assert_eq!(check(LIST, &encoded(LIST, list)), Ok(()));
        let nulls = r#"{"type":"array","items":"null"}"#;
        let many_nulls = Value::Array(vec![Value::Null; ZERO_BYTE_ITEMS]);
        assert_eq!(check(nulls, &encoded(nulls, many_nulls)), Ok(()));
    }

    #[test]
    fn lengths_beyond_the_datum_are_refused() {
        // A string of 2^62 bytes in a 10-byte datum.
        let huge = [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
        let err = check(r#""string""#, &huge).unwrap_err();
        assert!(err.contains("string of"), "{err}");
        // 2000 longs declared in 4 bytes.
        let err = check(r#"{"type":"array","items":"long"}"#, &[0xa0, 0x1f, 2, 0]).unwrap_err();
        assert!(err.contains("array block of 2000 items"), "{err}");
        // A million nulls in 4 bytes.
        let err = check(r#"{"type":"array","items":"null"}"#, &[0x80, 0x89, 0x7a, 0]).unwrap_err();
        assert!(err.contains("array block of 1000000 items"), "{err}");
        let err = check(r#"{"type":"map","values":"int"}"#, &[2, 0x80, 0x01, 0]).unwrap_err();
        assert!(err.contains("map key of 64 bytes"), "{err}");
    }

    #[test]
    fn other_defects_are_left_to_the_decoder() {
        // A truncated long, a negative string length, a union branch out of range.
        assert_eq!(check(r#""long""#, &[0x80]), Ok(()));
        assert_eq!(check(r#""string""#, &[0x01, 0xff]), Ok(()));
        assert_eq!(check(r#"["null","int"]"#, &[0x08]), Ok(()));
        // 1000 longs declared (within the item budget), two present.
        assert_eq!(
            check(r#"{"type":"array","items":"long"}"#, &[0xd0, 0x0f, 2, 0]),
            Ok(())
        );
    }

    /// A list `levels` records deep, encoded on a thread with room for the recursion.
    fn deep_list(levels: usize) -> Vec<u8> {
        std::thread::Builder::new()
            .stack_size(256 << 20)
            .spawn(move || {
                let mut list = node(vec![], None);
                for _ in 1..levels {
                    list = node(vec![], Some(list));
                }
                let datum = encoded(LIST, list.clone());
                // Dropped here: dropping recurses too.
                drop(list);
                datum
            })
            .unwrap()
            .join()
            .unwrap()
    }

    #[test]
    fn nesting_is_bounded() {
        // MAX_DEPTH records, each inside the one before.
        let deepest = deep_list(MAX_DEPTH);
        assert_eq!(check(LIST, &deepest), Ok(()));
        // apache-avro decodes the deepest datum allowed (given the stack it needs).
        std::thread::Builder::new()
            .stack_size(64 << 20)
            .spawn(move || {
                let schema = Schema::parse_str(LIST).unwrap();
                let value = apache_avro::reader::datum::GenericDatumReader::builder(&schema)
                    .build()
                    .unwrap()
                    .read_value(&mut &deepest[..])
                    .unwrap();
                assert!(matches!(value, Value::Record(_)));
            })
            .unwrap()
            .join()
            .unwrap();
        let err = check(LIST, &deep_list(MAX_DEPTH + 1)).unwrap_err();
        assert!(err.contains("nested deeper"), "{err}");
    }
}
