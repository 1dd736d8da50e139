//! Confluent's wire format: magic byte `0x00`, 4-byte big-endian schema id, Avro datum.

use kafka_client::serde::SerdeContext;

use crate::error::{AvroSerdeError, Result};

/// The first byte of every Confluent-framed key or value.
pub const MAGIC_BYTE: u8 = 0;

/// Bytes before the Avro datum: the magic byte and the schema id.
pub const HEADER_LEN: usize = 5;

/// Starts a payload for schema `id`: a buffer holding the header, with room for the datum.
pub fn header(id: u32, datum_capacity: usize) -> Vec<u8> {
    let mut buf = Vec::with_capacity(HEADER_LEN + datum_capacity);
    buf.push(MAGIC_BYTE);
    buf.extend_from_slice(&id.to_be_bytes());
    buf
}

/// Splits a payload into its schema id and Avro datum.
///
/// ```
/// use kafka_client::serde::{MessageField, SerdeContext};
/// use kafka_client::Headers;
/// let headers = Headers::new();
/// let ctx = SerdeContext::new("plant01", MessageField::Value, &headers);
/// let (id, datum) = serde_avro::wire::split(&[0, 0, 0, 0, 42, 2], &ctx).unwrap();
/// assert_eq!((id, datum), (42, &[2u8][..]));
/// ```
pub fn split<'a>(payload: &'a [u8], ctx: &SerdeContext<'_>) -> Result<(u32, &'a [u8])> {
    if payload.len() < HEADER_LEN {
        return Err(AvroSerdeError::PayloadTooShort {
            topic: ctx.topic.to_owned(),
            field: ctx.field,
            len: payload.len(),
        });
    }
    if payload[0] != MAGIC_BYTE {
        return Err(AvroSerdeError::InvalidMagicByte {
            topic: ctx.topic.to_owned(),
            field: ctx.field,
            found: payload[0],
        });
    }
    let id = u32::from_be_bytes([payload[1], payload[2], payload[3], payload[4]]);
    Ok((id, &payload[HEADER_LEN..]))
}
