//! The stateless operators, each an ordinary [`Processor`] (Kafka's `KStreamFilter`,
//! `KStreamMap`, ...).

use std::io::Write;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::dsl::options::PrintTarget;
use crate::processor::{Data, Processor, ProcessorContext, ProcessorError, Record};

type Ctx<'a, K, V> = ProcessorContext<'a, K, V>;

pub(crate) struct Filter<F, K, V> {
    pub f: Arc<F>,
    pub keep_when: bool,
    pub _t: PhantomData<fn(K, V)>,
}

impl<F, K: Data, V: Data> Processor<K, V> for Filter<F, K, V>
where
    F: Fn(&K, &V) -> bool + Send + Sync,
{
    fn process(
        &mut self,
        ctx: &mut Ctx<'_, K, V>,
        record: Record<K, V>,
    ) -> Result<(), ProcessorError> {
        if (self.f)(&record.key, &record.value) == self.keep_when {
            ctx.forward(record);
        }
        Ok(())
    }
}

pub(crate) struct Map<F, K, V> {
    pub f: Arc<F>,
    pub _t: PhantomData<fn(K, V)>,
}

impl<F, K: Data, V: Data, K2: Data, V2: Data> Processor<K, V, K2, V2> for Map<F, K, V>
where
    F: Fn(K, V) -> (K2, V2) + Send + Sync,
{
    fn process(
        &mut self,
        ctx: &mut Ctx<'_, K2, V2>,
        record: Record<K, V>,
    ) -> Result<(), ProcessorError> {
        let Record {
            key,
            value,
            timestamp,
            headers,
        } = record;
        let (k2, v2) = (self.f)(key, value);
        ctx.forward(Record {
            key: k2,
            value: v2,
            timestamp,
            headers,
        });
        Ok(())
    }
}

pub(crate) struct MapValues<F, K, V> {
    pub f: Arc<F>,
    pub _t: PhantomData<fn(K, V)>,
}

impl<F, K: Data, V: Data, V2: Data> Processor<K, V, K, V2> for MapValues<F, K, V>
where
    F: Fn(&K, V) -> V2 + Send + Sync,
{
    fn process(
        &mut self,
        ctx: &mut Ctx<'_, K, V2>,
        record: Record<K, V>,
    ) -> Result<(), ProcessorError> {
        let Record {
            key,
            value,
            timestamp,
            headers,
        } = record;
        let v2 = (self.f)(&key, value);
        ctx.forward(Record {
            key,
            value: v2,
            timestamp,
            headers,
        });
        Ok(())
    }
}

pub(crate) struct FlatMap<F, K, V> {
    pub f: Arc<F>,
    pub _t: PhantomData<fn(K, V)>,
}

impl<F, I, K: Data, V: Data, K2: Data, V2: Data> Processor<K, V, K2, V2> for FlatMap<F, K, V>
where
    F: Fn(K, V) -> I + Send + Sync,
    I: IntoIterator<Item = (K2, V2)>,
{
    fn process(
        &mut self,
        ctx: &mut Ctx<'_, K2, V2>,
        record: Record<K, V>,
    ) -> Result<(), ProcessorError> {
        let Record {
            key,
            value,
            timestamp,
            headers,
        } = record;
        for (k2, v2) in (self.f)(key, value) {
            ctx.forward(Record {
                key: k2,
                value: v2,
                timestamp,
                headers: headers.clone(),
            });
        }
        Ok(())
    }
}

pub(crate) struct FlatMapValues<F, K, V> {
    pub f: Arc<F>,
    pub _t: PhantomData<fn(K, V)>,
}

impl<F, I, K: Data, V: Data, V2: Data> Processor<K, V, K, V2> for FlatMapValues<F, K, V>
where
    F: Fn(&K, V) -> I + Send + Sync,
    I: IntoIterator<Item = V2>,
{
    fn process(
        &mut self,
        ctx: &mut Ctx<'_, K, V2>,
        record: Record<K, V>,
    ) -> Result<(), ProcessorError> {
        let Record {
            key,
            value,
            timestamp,
            headers,
        } = record;
        for v2 in (self.f)(&key, value) {
            ctx.forward(Record {
                key: key.clone(),
                value: v2,
                timestamp,
                headers: headers.clone(),
            });
        }
        Ok(())
    }
}

pub(crate) struct SelectKey<F, K, V> {
    pub f: Arc<F>,
    pub _t: PhantomData<fn(K, V)>,
}

impl<F, K: Data, V: Data, K2: Data> Processor<K, V, K2, V> for SelectKey<F, K, V>
where
    F: Fn(&K, &V) -> K2 + Send + Sync,
{
    fn process(
        &mut self,
        ctx: &mut Ctx<'_, K2, V>,
        record: Record<K, V>,
    ) -> Result<(), ProcessorError> {
        let k2 = (self.f)(&record.key, &record.value);
        ctx.forward(record.with_key(k2));
        Ok(())
    }
}

pub(crate) struct Peek<F, K, V> {
    pub f: Arc<F>,
    pub forward: bool,
    pub _t: PhantomData<fn(K, V)>,
}

impl<F, K: Data, V: Data> Processor<K, V> for Peek<F, K, V>
where
    F: Fn(&K, &V) + Send + Sync,
{
    fn process(
        &mut self,
        ctx: &mut Ctx<'_, K, V>,
        record: Record<K, V>,
    ) -> Result<(), ProcessorError> {
        (self.f)(&record.key, &record.value);
        if self.forward {
            ctx.forward(record);
        }
        Ok(())
    }
}

pub(crate) struct Print<K, V> {
    pub target: PrintTarget,
    pub label: Option<String>,
    pub mapper: crate::dsl::options::KeyValueMapper<K, V>,
}

impl<K: Data, V: Data> Processor<K, V> for Print<K, V> {
    fn process(
        &mut self,
        ctx: &mut Ctx<'_, K, V>,
        record: Record<K, V>,
    ) -> Result<(), ProcessorError> {
        let label = self.label.as_deref().unwrap_or(ctx.node_name());
        let line = format!("[{label}]: {}\n", (self.mapper)(&record.key, &record.value));
        match &self.target {
            PrintTarget::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(line.as_bytes())?;
                out.flush()?;
            }
            PrintTarget::Writer(w) => {
                let mut w = w.lock().unwrap_or_else(|e| e.into_inner());
                w.write_all(line.as_bytes())?;
                w.flush()?;
            }
        }
        Ok(())
    }
}

pub(crate) struct PassThrough<K, V>(pub PhantomData<fn(K, V)>);

impl<K: Data, V: Data> Processor<K, V> for PassThrough<K, V> {
    fn process(
        &mut self,
        ctx: &mut Ctx<'_, K, V>,
        record: Record<K, V>,
    ) -> Result<(), ProcessorError> {
        ctx.forward(record);
        Ok(())
    }
}

pub(crate) type Predicate<K, V> = Arc<dyn Fn(&K, &V) -> bool + Send + Sync>;

/// Sends each record to the first branch whose predicate matches, else to the
/// default branch, else drops it (Kafka's `KStreamBranch`).
pub(crate) struct Branch<K, V> {
    pub predicates: Vec<(Predicate<K, V>, String)>,
    pub default: Option<String>,
}

impl<K: Data, V: Data> Processor<K, V> for Branch<K, V> {
    fn process(
        &mut self,
        ctx: &mut Ctx<'_, K, V>,
        record: Record<K, V>,
    ) -> Result<(), ProcessorError> {
        for (pred, child) in &self.predicates {
            if pred(&record.key, &record.value) {
                return ctx.forward_to(child, record);
            }
        }
        if let Some(child) = &self.default {
            return ctx.forward_to(child, record);
        }
        Ok(())
    }
}
