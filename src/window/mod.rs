//! Windows over event time and processing time: tumbling, sliding and session windows with
//! allowed lateness, fired by timers ([`WindowOperator`]). Built with
//! [`crate::stream::KeyedStream::window`]; the job-file `window` operator uses the same
//! operator.
//!
//! - [`assigner`]: [`TimeWindow`], [`WindowAssigner`] and session merging, pure.
//! - [`operator`]: [`WindowOperator`], a keyed process function; [`WindowFunction`] says what
//!   a window keeps and emits. [`ReduceWindow`], [`AggregateWindow`] and [`ProcessWindow`]
//!   adapt closures (Flink's reduce, aggregate and process window functions).

pub mod assigner;
pub mod operator;

#[cfg(test)]
mod tests;

pub use assigner::{TimeWindow, WindowAssigner, WindowSpecError};
pub use operator::{WindowFunction, WindowOperator, WindowTime, WINDOW_STATE};

use std::sync::Arc;

use crate::operator::OperatorError;
use crate::state::keyed::StateValue;

/// An incremental aggregation (Flink's `AggregateFunction`): the window keeps only the
/// accumulator.
pub trait AggregateFunction<I>: Clone + Send + 'static {
    type Acc: StateValue;
    type Out;
    fn create_accumulator(&self) -> Self::Acc;
    fn add(&self, input: I, acc: &mut Self::Acc);
    fn get_result(&self, acc: &Self::Acc) -> Self::Out;
    /// Two accumulators of merged session windows as one.
    fn merge(&self, a: Self::Acc, b: Self::Acc) -> Self::Acc;
}

/// Counts a window's records (`u64`), whatever they are.
#[derive(Clone, Copy, Debug, Default)]
pub struct CountAggregate;

impl<I> AggregateFunction<I> for CountAggregate {
    type Acc = u64;
    type Out = u64;
    fn create_accumulator(&self) -> u64 {
        0
    }
    fn add(&self, _input: I, acc: &mut u64) {
        *acc += 1;
    }
    fn get_result(&self, acc: &u64) -> u64 {
        *acc
    }
    fn merge(&self, a: u64, b: u64) -> u64 {
        a + b
    }
}

type Emit<K, T, O> = Arc<dyn Fn(&K, &TimeWindow, T) -> O + Send + Sync>;
type EmitRef<K, I, O> = Arc<dyn Fn(&K, &TimeWindow, &I) -> O + Send + Sync>;
type ReduceFn<I> = Arc<dyn Fn(&I, &I) -> I + Send + Sync>;
type ProcessFn<K, I, O> = Arc<dyn Fn(&K, &TimeWindow, &[I], &mut Vec<O>) + Send + Sync>;

/// A window that keeps the reduce of its records and emits `emit(key, window, reduced)`.
pub struct ReduceWindow<K, I, O> {
    reduce: ReduceFn<I>,
    emit_value: EmitRef<K, I, O>,
}

impl<K, I, O> Clone for ReduceWindow<K, I, O> {
    fn clone(&self) -> Self {
        Self {
            reduce: self.reduce.clone(),
            emit_value: self.emit_value.clone(),
        }
    }
}

impl<K: 'static, I: 'static, O: 'static> ReduceWindow<K, I, O> {
    pub fn new(
        reduce: impl Fn(&I, &I) -> I + Send + Sync + 'static,
        emit: impl Fn(&K, &TimeWindow, &I) -> O + Send + Sync + 'static,
    ) -> Self {
        Self {
            reduce: Arc::new(reduce),
            emit_value: Arc::new(emit),
        }
    }
}

impl<K: Send + 'static, I: StateValue, O: Send + 'static> WindowFunction<K, I, O>
    for ReduceWindow<K, I, O>
{
    type Acc = I;

    fn add(&self, acc: Option<I>, input: I) -> Result<I, OperatorError> {
        Ok(match acc {
            Some(acc) => (self.reduce)(&acc, &input),
            None => input,
        })
    }

    fn merge(&self, a: I, b: I) -> I {
        (self.reduce)(&a, &b)
    }

    fn emit(
        &self,
        key: &K,
        w: &TimeWindow,
        acc: &I,
        out: &mut Vec<O>,
    ) -> Result<(), OperatorError> {
        out.push((self.emit_value)(key, w, acc));
        Ok(())
    }
}

/// A window that keeps an [`AggregateFunction`]'s accumulator and emits
/// `emit(key, window, result)`.
pub struct AggregateWindow<K, A: AggregateFunction<I>, I, O> {
    agg: A,
    emit: Emit<K, A::Out, O>,
    _input: std::marker::PhantomData<fn(I)>,
}

impl<K, A: AggregateFunction<I>, I, O> Clone for AggregateWindow<K, A, I, O> {
    fn clone(&self) -> Self {
        Self {
            agg: self.agg.clone(),
            emit: self.emit.clone(),
            _input: std::marker::PhantomData,
        }
    }
}

impl<K, A: AggregateFunction<I>, I, O> AggregateWindow<K, A, I, O> {
    pub fn new(
        agg: A,
        emit: impl Fn(&K, &TimeWindow, A::Out) -> O + Send + Sync + 'static,
    ) -> Self {
        Self {
            agg,
            emit: Arc::new(emit),
            _input: std::marker::PhantomData,
        }
    }
}

impl<K, A, I, O> WindowFunction<K, I, O> for AggregateWindow<K, A, I, O>
where
    K: Send + 'static,
    A: AggregateFunction<I>,
    I: Send + 'static,
    O: Send + 'static,
{
    type Acc = A::Acc;

    fn add(&self, acc: Option<A::Acc>, input: I) -> Result<A::Acc, OperatorError> {
        let mut acc = acc.unwrap_or_else(|| self.agg.create_accumulator());
        self.agg.add(input, &mut acc);
        Ok(acc)
    }

    fn merge(&self, a: A::Acc, b: A::Acc) -> A::Acc {
        self.agg.merge(a, b)
    }

    fn emit(
        &self,
        key: &K,
        w: &TimeWindow,
        acc: &A::Acc,
        out: &mut Vec<O>,
    ) -> Result<(), OperatorError> {
        out.push((self.emit)(key, w, self.agg.get_result(acc)));
        Ok(())
    }
}

/// A window that keeps its records and hands them all to `process(key, window, records, out)`
/// when it fires (Flink's `ProcessWindowFunction`; state grows with the window's records).
pub struct ProcessWindow<K, I, O> {
    process: ProcessFn<K, I, O>,
}

impl<K, I, O> Clone for ProcessWindow<K, I, O> {
    fn clone(&self) -> Self {
        Self {
            process: self.process.clone(),
        }
    }
}

impl<K, I, O> ProcessWindow<K, I, O> {
    pub fn new(
        process: impl Fn(&K, &TimeWindow, &[I], &mut Vec<O>) + Send + Sync + 'static,
    ) -> Self {
        Self {
            process: Arc::new(process),
        }
    }
}

impl<K: Send + 'static, I: StateValue, O: Send + 'static> WindowFunction<K, I, O>
    for ProcessWindow<K, I, O>
{
    type Acc = Vec<I>;

    fn add(&self, acc: Option<Vec<I>>, input: I) -> Result<Vec<I>, OperatorError> {
        let mut acc = acc.unwrap_or_default();
        acc.push(input);
        Ok(acc)
    }

    fn merge(&self, mut a: Vec<I>, b: Vec<I>) -> Vec<I> {
        a.extend(b);
        a
    }

    fn emit(
        &self,
        key: &K,
        w: &TimeWindow,
        acc: &Vec<I>,
        out: &mut Vec<O>,
    ) -> Result<(), OperatorError> {
        (self.process)(key, w, acc, out);
        Ok(())
    }
}
