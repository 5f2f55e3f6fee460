//! Closure adapters: `map`, `filter` and `flat_map` as [`Operator`]s, and a keyed `reduce`.

use crate::operator::{KeyedProcessFunction, Operator, OperatorError, SubtaskInfo};
use crate::state::keyed::{KeyedStateStore, StateKey, StateValue, ValueState};

/// One output per input.
#[derive(Clone)]
pub struct MapFn<F>(pub F);

impl<I, O, F> Operator<I, O> for MapFn<F>
where
    F: Fn(I) -> O + Clone + Send + 'static,
{
    fn process(&mut self, input: Vec<I>, out: &mut Vec<O>) -> Result<(), OperatorError> {
        out.extend(input.into_iter().map(&self.0));
        Ok(())
    }
}

/// Keeps the records for which the predicate holds.
#[derive(Clone)]
pub struct FilterFn<F>(pub F);

impl<T, F> Operator<T, T> for FilterFn<F>
where
    F: Fn(&T) -> bool + Clone + Send + 'static,
{
    fn process(&mut self, input: Vec<T>, out: &mut Vec<T>) -> Result<(), OperatorError> {
        out.extend(input.into_iter().filter(&self.0));
        Ok(())
    }
}

/// Zero or more outputs per input.
#[derive(Clone)]
pub struct FlatMapFn<F>(pub F);

impl<I, O, F> Operator<I, O> for FlatMapFn<F>
where
    F: Fn(I, &mut Vec<O>) + Clone + Send + 'static,
{
    fn process(&mut self, input: Vec<I>, out: &mut Vec<O>) -> Result<(), OperatorError> {
        for record in input {
            (self.0)(record, out);
        }
        Ok(())
    }
}

/// A keyed running reduce: keeps the reduced value per key in value state and emits it after
/// every record.
#[derive(Clone)]
pub struct ReduceFn<F, T> {
    reduce: F,
    state: Option<ValueState<T>>,
}

impl<F, T> ReduceFn<F, T> {
    pub fn new(reduce: F) -> Self {
        Self {
            reduce,
            state: None,
        }
    }
}

impl<K, T, F> KeyedProcessFunction<K, T, T> for ReduceFn<F, T>
where
    K: StateKey,
    T: StateValue,
    F: Fn(&T, &T) -> T + Clone + Send + 'static,
{
    fn open(
        &mut self,
        _info: &SubtaskInfo,
        state: &mut KeyedStateStore<K>,
    ) -> Result<(), OperatorError> {
        self.state = Some(state.value("reduce")?);
        Ok(())
    }

    fn process(
        &mut self,
        _key: &K,
        input: T,
        state: &mut KeyedStateStore<K>,
        out: &mut Vec<T>,
    ) -> Result<(), OperatorError> {
        let handle = self.state.as_ref().expect("opened");
        let next = match handle.get(state) {
            Some(acc) => (self.reduce)(acc, &input),
            None => input,
        };
        handle.update(state, next.clone());
        out.push(next);
        Ok(())
    }
}

/// A keyed running count: emits `(key, n)` for the n-th record of each key.
#[derive(Clone, Default)]
pub struct Count {
    state: Option<ValueState<u64>>,
}

impl<K: StateKey, I: Send + 'static> KeyedProcessFunction<K, I, (K, u64)> for Count {
    fn open(
        &mut self,
        _info: &SubtaskInfo,
        state: &mut KeyedStateStore<K>,
    ) -> Result<(), OperatorError> {
        self.state = Some(state.value("count")?);
        Ok(())
    }

    fn process(
        &mut self,
        key: &K,
        _input: I,
        state: &mut KeyedStateStore<K>,
        out: &mut Vec<(K, u64)>,
    ) -> Result<(), OperatorError> {
        let handle = self.state.as_ref().expect("opened");
        let n = handle.get(state).copied().unwrap_or(0) + 1;
        handle.update(state, n);
        out.push((key.clone(), n));
        Ok(())
    }
}
