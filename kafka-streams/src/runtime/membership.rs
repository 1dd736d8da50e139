//! Who in the consumer group owns which partitions, and at which `application.server`.
//!
//! Kafka Streams shares each member's `application.server` in the subscription's user
//! data; librdkafka's built-in assignors cannot carry user data, so each stream
//! thread's consumer puts it in its `client.id` instead (`<thread>-consumer@host:port`),
//! which the group coordinator reports with every member (DescribeGroups). The
//! member's assignment comes in the consumer protocol's `Assignment` layout.

use std::time::Duration;

use kafka_client::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

use super::config::HostInfo;
use super::StreamsConfig;
use crate::error::{Result, StreamsError};

/// Separates the thread's name from the endpoint in a stream thread's `client.id`.
const ENDPOINT_SEPARATOR: char = '@';

/// The `client.id` of stream thread `thread`'s consumer.
pub(crate) fn consumer_client_id(thread: &str, config: &StreamsConfig) -> String {
    match &config.application_server {
        Some(host) => format!("{thread}-consumer{ENDPOINT_SEPARATOR}{host}"),
        None => format!("{thread}-consumer"),
    }
}

/// The endpoint in a member's `client.id`, if it has one.
pub(crate) fn endpoint_of(client_id: &str) -> Option<HostInfo> {
    let (_, endpoint) = client_id.rsplit_once(ENDPOINT_SEPARATOR)?;
    HostInfo::parse(endpoint).ok()
}

/// A group member as the coordinator describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Member {
    pub client_id: String,
    pub host: Option<HostInfo>,
    pub assignment: Vec<(String, i32)>,
}

/// Describes the members of group `group`.
pub(crate) fn describe_members(client: &ClientConfig, group: &str) -> Result<Vec<Member>> {
    let consumer: BaseConsumer = client
        .to_rdkafka()
        .create()
        .map_err(|e| StreamsError::kafka("creating a client to describe the group", group, e))?;
    let list = consumer
        .fetch_group_list(Some(group), Duration::from_secs(10))
        .map_err(|e| StreamsError::kafka("describing the consumer group", group, e))?;
    let mut members = Vec::new();
    for g in list.groups().iter().filter(|g| g.name() == group) {
        for m in g.members() {
            let assignment = match m.assignment() {
                Some(bytes) if !bytes.is_empty() => parse_assignment(bytes).map_err(|why| {
                    StreamsError::Internal(format!(
                        "member {} of group {group} has an unreadable assignment: {why}",
                        m.client_id()
                    ))
                })?,
                _ => Vec::new(),
            };
            members.push(Member {
                client_id: m.client_id().to_owned(),
                host: endpoint_of(m.client_id()),
                assignment,
            });
        }
    }
    Ok(members)
}

/// Reads the consumer protocol's `Assignment`: version (i16), then an array of
/// (topic: string, partitions: array of i32); user data after it is ignored.
pub(crate) fn parse_assignment(bytes: &[u8]) -> std::result::Result<Vec<(String, i32)>, String> {
    let mut r = Reader { bytes, pos: 0 };
    let _version = r.i16()?;
    let topics = r.i32()?;
    let mut out = Vec::new();
    for _ in 0..topics.max(0) {
        let len = r.i16()?;
        let topic = String::from_utf8(r.take(len.max(0) as usize)?.to_vec())
            .map_err(|e| format!("topic name is not UTF-8: {e}"))?;
        let partitions = r.i32()?;
        for _ in 0..partitions.max(0) {
            out.push((topic.clone(), r.i32()?));
        }
    }
    Ok(out)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| format!("truncated at byte {}", self.pos))?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn i16(&mut self) -> std::result::Result<i16, String> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self) -> std::result::Result<i32, String> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assignment(topics: &[(&str, &[i32])]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&1i16.to_be_bytes());
        out.extend_from_slice(&(topics.len() as i32).to_be_bytes());
        for (topic, partitions) in topics {
            out.extend_from_slice(&(topic.len() as i16).to_be_bytes());
            out.extend_from_slice(topic.as_bytes());
            out.extend_from_slice(&(partitions.len() as i32).to_be_bytes());
            for p in *partitions {
                out.extend_from_slice(&p.to_be_bytes());
            }
        }
        out.extend_from_slice(&(-1i32).to_be_bytes()); // null user data
        out
    }

    #[test]
    fn parses_consumer_protocol_assignment() {
        let bytes = assignment(&[("words", &[0, 2]), ("app-x-repartition", &[1])]);
        assert_eq!(
            parse_assignment(&bytes).unwrap(),
            vec![
                ("words".to_string(), 0),
                ("words".to_string(), 2),
                ("app-x-repartition".to_string(), 1)
            ]
        );
    }

    #[test]
    fn truncated_assignment_is_an_error() {
        let bytes = assignment(&[("words", &[0, 2])]);
        let err = parse_assignment(&bytes[..bytes.len() - 9]).unwrap_err();
        assert!(err.contains("truncated"), "{err}");
    }

    #[test]
    fn endpoint_round_trips_through_client_id() {
        let config = StreamsConfig::new("app", ClientConfig::new("localhost:9092"))
            .application_server("10.0.0.7:7070")
            .unwrap();
        let id = consumer_client_id("app-StreamThread-1", &config);
        assert_eq!(id, "app-StreamThread-1-consumer@10.0.0.7:7070");
        assert_eq!(
            endpoint_of(&id),
            Some(HostInfo {
                host: "10.0.0.7".into(),
                port: 7070
            })
        );
        assert_eq!(endpoint_of("app-StreamThread-1-consumer"), None);
    }
}
