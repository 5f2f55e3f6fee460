//! [`Registry`]: operator names → factories. Job files name operators (`source: file`,
//! `operator: count`); the registry turns a name and its [`Params`] into the vertex that runs it.
//!
//! [`Registry::new`] holds the built-in operators (see [`super::ops`] and the README). A Rust
//! program extends Weir by registering its own factories and then running job files that use
//! them — no fork needed:
//!
//! ```ignore
//! use weir::jobfile::{Registry, ParamError};
//! use weir::functions::MapFn;
//! let mut registry = Registry::new();
//! registry.register_operator("add-one", |p| {
//!     let field = p.field("field")?;          // a required parameter of the step
//!     Ok(MapFn(move |mut v: serde_json::Value| {
//!         let n = field.get(&v).and_then(|n| n.as_i64()).unwrap_or(0);
//!         field.set(&mut v, (n + 1).into());
//!         v
//!     }))
//! });
//! let job = weir::jobfile::load(path, &registry, &options)?;
//! ```
//!
//! Four kinds can be registered: sources ([`Source`]`<Value>`), operators
//! ([`Operator`]`<Value, Value>`), keyed functions ([`KeyedProcessFunction`]`<JsonKey, Value,
//! Value>`, which need a key-by input) and sinks ([`Sink`]`<Value>`). Registering a name again
//! replaces the earlier factory, built-ins included. `key-by` is reserved: it is not an
//! operator but marks the edge into the next step.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use super::metrics::JobMetrics;
use super::params::{ParamError, Params};
use super::spec::Role;
use super::value::JsonKey;
use crate::graph::VertexRole;
use crate::operator::{KeyedProcessFunction, Operator, Sink, Source};
use crate::state::keyed::KeyedBackend;
use crate::time::WatermarkStrategy;
use crate::vertex::{
    keyed_factory, operator_factory, sink_factory, source_factory_with_watermarks, KeySelector,
    VertexFactory,
};

/// Every source's event-time parameters: `time-field` (milliseconds since the epoch, a whole
/// number; a record without one does not move the watermark), `out-of-orderness` (the bound
/// of a bounded-out-of-orderness strategy; 0 by default) and `idleness`.
fn watermark_params(p: &mut Params) -> Result<Option<WatermarkStrategy<Value>>, ParamError> {
    let field = p.opt_field("time-field")?;
    let bound = p.opt_duration("out-of-orderness")?;
    let idleness = p.opt_duration("idleness")?;
    let Some(field) = field else {
        if bound.is_some() || idleness.is_some() {
            return Err(ParamError::Missing {
                param: "time-field".to_owned(),
            });
        }
        return Ok(None);
    };
    let mut strategy = WatermarkStrategy::for_bounded_out_of_orderness(bound.unwrap_or_default())
        .with_timestamp_assigner(move |r: &Value| {
            field.get(r).and_then(Value::as_i64).unwrap_or(i64::MIN)
        });
    if let Some(idle) = idleness {
        strategy = strategy.with_idleness(idle);
    }
    Ok(Some(strategy))
}

/// The reserved name of the key-by step.
pub const KEY_BY: &str = "key-by";

/// What the builder knows when it creates one vertex.
pub struct VertexContext<'a> {
    /// The key of the step's key-by input, if it has one.
    pub key: Option<&'a KeySelector<Value, JsonKey>>,
    pub backend: KeyedBackend,
    pub metrics: &'a JobMetrics,
}

/// How an operator relates to keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Keying {
    /// Any input edge.
    Any,
    /// A keyed process function: needs a key-by input, gets keyed state.
    Keyed,
}

type Maker =
    Arc<dyn Fn(&mut Params, &VertexContext<'_>) -> Result<VertexFactory, ParamError> + Send + Sync>;

/// One registered name.
#[derive(Clone)]
pub(crate) struct Entry {
    pub(crate) keying: Keying,
    pub(crate) vertex_role: VertexRole,
    pub(crate) make: Maker,
}

/// Operator names → factories. `Default` and [`Registry::new`] hold the built-ins.
#[derive(Clone)]
pub struct Registry {
    entries: BTreeMap<(Role, String), Entry>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("names", &self.entries.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Registry {
    /// The built-in operators.
    pub fn new() -> Self {
        let mut r = Self::empty();
        super::ops::register_builtins(&mut r);
        r
    }

    /// No operators at all (only the reserved `key-by`).
    pub fn empty() -> Self {
        Self {
            entries: BTreeMap::new(),
        }
    }

    fn insert(&mut self, role: Role, name: &str, entry: Entry) -> &mut Self {
        assert!(
            !(role == Role::Operator && name == KEY_BY),
            "`{KEY_BY}` is reserved for the key-by step"
        );
        self.entries.insert((role, name.to_owned()), entry);
        self
    }

    /// Registers a source: `factory` reads the step's parameters and returns the source,
    /// which is cloned once per subtask.
    ///
    /// # Panics
    /// Never; re-registering a name replaces the earlier factory.
    pub fn register_source<S, F>(&mut self, name: &str, factory: F) -> &mut Self
    where
        S: Source<Value> + Clone,
        F: Fn(&mut Params) -> Result<S, ParamError> + Send + Sync + 'static,
    {
        let make: Maker = Arc::new(move |params, cx| {
            let watermarks = watermark_params(params)?;
            let source = cx.metrics.count_source(factory(params)?);
            Ok(source_factory_with_watermarks::<Value, _>(
                source, watermarks,
            ))
        });
        self.insert(
            Role::Source,
            name,
            Entry {
                keying: Keying::Any,
                vertex_role: VertexRole::Source,
                make,
            },
        )
    }

    /// Registers an operator on records (map, filter, flat map or anything stateful with
    /// operator state). It accepts any input edge, key-by included.
    pub fn register_operator<O, F>(&mut self, name: &str, factory: F) -> &mut Self
    where
        O: Operator<Value, Value> + Clone,
        F: Fn(&mut Params) -> Result<O, ParamError> + Send + Sync + 'static,
    {
        let make: Maker =
            Arc::new(move |params, _| Ok(operator_factory::<Value, Value, _>(factory(params)?)));
        self.insert(
            Role::Operator,
            name,
            Entry {
                keying: Keying::Any,
                vertex_role: VertexRole::Operator,
                make,
            },
        )
    }

    /// Registers a keyed process function: its step needs a key-by input, and the key is the
    /// key-by field's value ([`JsonKey`]).
    pub fn register_keyed<P, F>(&mut self, name: &str, factory: F) -> &mut Self
    where
        P: KeyedProcessFunction<JsonKey, Value, Value> + Clone,
        F: Fn(&mut Params) -> Result<P, ParamError> + Send + Sync + 'static,
    {
        let make: Maker = Arc::new(move |params, cx| {
            let f = factory(params)?;
            let key = cx
                .key
                .cloned()
                .ok_or_else(|| ParamError::other("a keyed operator needs a key-by input"))?;
            Ok(keyed_factory::<JsonKey, Value, Value, _>(
                f,
                key,
                cx.backend.clone(),
            ))
        });
        self.insert(
            Role::Operator,
            name,
            Entry {
                keying: Keying::Keyed,
                vertex_role: VertexRole::KeyedOperator,
                make,
            },
        )
    }

    /// Registers a sink.
    pub fn register_sink<S, F>(&mut self, name: &str, factory: F) -> &mut Self
    where
        S: Sink<Value> + Clone,
        F: Fn(&mut Params) -> Result<S, ParamError> + Send + Sync + 'static,
    {
        let make: Maker = Arc::new(move |params, cx| {
            let sink = cx.metrics.count_sink(factory(params)?);
            Ok(sink_factory::<Value, _>(sink))
        });
        self.insert(
            Role::Sink,
            name,
            Entry {
                keying: Keying::Any,
                vertex_role: VertexRole::Sink,
                make,
            },
        )
    }

    /// Whether `name` is registered for `role` (`key-by` always is, as an operator).
    pub fn contains(&self, role: Role, name: &str) -> bool {
        (role == Role::Operator && name == KEY_BY)
            || self.entries.contains_key(&(role, name.to_owned()))
    }

    /// The names registered for `role`, sorted (`key-by` among the operators).
    pub fn names(&self, role: Role) -> Vec<String> {
        let mut names: Vec<String> = self
            .entries
            .keys()
            .filter(|(r, _)| *r == role)
            .map(|(_, n)| n.clone())
            .collect();
        if role == Role::Operator {
            names.push(KEY_BY.to_owned());
            names.sort();
        }
        names
    }

    pub(crate) fn get(&self, role: Role, name: &str) -> Option<&Entry> {
        self.entries.get(&(role, name.to_owned()))
    }
}
