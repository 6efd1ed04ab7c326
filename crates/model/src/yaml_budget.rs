//! A serde `Deserializer` wrapper that counts the YAML nodes and scalar bytes it hands out and
//! fails once a budget is spent: the bound on alias expansion ("billion laughs").
//!
//! `yaml_serde` keeps a document as its event list (proportional to the source) and follows
//! an alias by jumping back into it each time it is deserialised, so what the aliases cost is
//! only paid when a visitor is called. Counting in every `visit_*`, before forwarding to the
//! real visitor, refuses a document as soon as its expanded form passes the budget, before
//! the oversized part is copied into any `String` or `Vec`. The wrapper forwards everything
//! else unchanged, so error messages keep their line, column and path.

use crate::limits::{Limit, LimitExceeded};
use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
};
use std::cell::Cell;
use std::fmt;

/// What a document may still spend, and the first cap it broke.
pub(crate) struct Budget {
    max_nodes: usize,
    max_bytes: usize,
    nodes: Cell<usize>,
    bytes: Cell<usize>,
    exceeded: Cell<Option<Limit>>,
}

impl Budget {
    /// At most `max_nodes` nodes and `max_bytes` bytes of scalar text.
    pub(crate) fn new(max_nodes: usize, max_bytes: usize) -> Self {
        Self {
            max_nodes,
            max_bytes,
            nodes: Cell::new(0),
            bytes: Cell::new(0),
            exceeded: Cell::new(None),
        }
    }

    /// The cap that stopped deserialisation, with its message, if one did.
    pub(crate) fn exceeded(&self) -> Option<LimitExceeded> {
        self.exceeded.get().map(|limit| match limit {
            Limit::YamlScalarBytes => LimitExceeded::new(
                limit,
                self.max_bytes,
                format!(
                    "the template holds more than {} bytes of text once its aliases are expanded",
                    self.max_bytes
                ),
            ),
            _ => LimitExceeded::new(
                limit,
                self.max_nodes,
                format!(
                    "the template holds more than {} YAML nodes once its aliases are expanded",
                    self.max_nodes
                ),
            ),
        })
    }

    fn spend<E: de::Error>(&self, scalar_bytes: usize) -> Result<(), E> {
        let nodes = self.nodes.get().saturating_add(1);
        let bytes = self.bytes.get().saturating_add(scalar_bytes);
        self.nodes.set(nodes);
        self.bytes.set(bytes);
        let over = if nodes > self.max_nodes {
            Some(Limit::YamlNodes)
        } else if bytes > self.max_bytes {
            Some(Limit::YamlScalarBytes)
        } else {
            None
        };
        match over {
            None => Ok(()),
            Some(limit) => {
                if self.exceeded.get().is_none() {
                    self.exceeded.set(Some(limit));
                }
                let e = self.exceeded().map(|e| e.to_string()).unwrap_or_default();
                Err(E::custom(e))
            }
        }
    }
}

/// A deserializer whose every node is paid for from `budget`.
pub(crate) struct Counted<'b, D> {
    de: D,
    budget: &'b Budget,
}

impl<'b, D> Counted<'b, D> {
    /// Wraps `de`.
    pub(crate) fn new(de: D, budget: &'b Budget) -> Self {
        Self { de, budget }
    }
}

struct Wrap<'b, T> {
    inner: T,
    budget: &'b Budget,
}

impl<'b, T> Wrap<'b, T> {
    fn new(inner: T, budget: &'b Budget) -> Self {
        Self { inner, budget }
    }
}

macro_rules! forward {
    ($($method:ident),* $(,)?) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
                self.de.$method(Wrap::new(visitor, self.budget))
            }
        )*
    };
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Counted<'_, D> {
    type Error = D::Error;

    forward!(
        deserialize_any,
        deserialize_bool,
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_i128,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_u128,
        deserialize_f32,
        deserialize_f64,
        deserialize_char,
        deserialize_str,
        deserialize_string,
        deserialize_bytes,
        deserialize_byte_buf,
        deserialize_option,
        deserialize_unit,
        deserialize_seq,
        deserialize_map,
        deserialize_identifier,
        deserialize_ignored_any,
    );

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.de
            .deserialize_unit_struct(name, Wrap::new(visitor, self.budget))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.de
            .deserialize_newtype_struct(name, Wrap::new(visitor, self.budget))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.de
            .deserialize_tuple(len, Wrap::new(visitor, self.budget))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.de
            .deserialize_tuple_struct(name, len, Wrap::new(visitor, self.budget))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.de
            .deserialize_struct(name, fields, Wrap::new(visitor, self.budget))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.de
            .deserialize_enum(name, variants, Wrap::new(visitor, self.budget))
    }

    fn is_human_readable(&self) -> bool {
        self.de.is_human_readable()
    }
}

macro_rules! scalar {
    ($($method:ident($v:ident: $ty:ty) => $len:expr),* $(,)?) => {
        $(
            fn $method<E: de::Error>(self, $v: $ty) -> Result<Self::Value, E> {
                self.budget.spend($len)?;
                self.inner.$method($v)
            }
        )*
    };
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Wrap<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(f)
    }

    scalar!(
        visit_bool(v: bool) => 0,
        visit_i8(v: i8) => 0,
        visit_i16(v: i16) => 0,
        visit_i32(v: i32) => 0,
        visit_i64(v: i64) => 0,
        visit_i128(v: i128) => 0,
        visit_u8(v: u8) => 0,
        visit_u16(v: u16) => 0,
        visit_u32(v: u32) => 0,
        visit_u64(v: u64) => 0,
        visit_u128(v: u128) => 0,
        visit_f32(v: f32) => 0,
        visit_f64(v: f64) => 0,
        visit_char(v: char) => v.len_utf8(),
        visit_str(v: &str) => v.len(),
        visit_borrowed_str(v: &'de str) => v.len(),
        visit_string(v: String) => v.len(),
        visit_bytes(v: &[u8]) => v.len(),
        visit_borrowed_bytes(v: &'de [u8]) => v.len(),
        visit_byte_buf(v: Vec<u8>) => v.len(),
    );

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.budget.spend(0)?;
        self.inner.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.budget.spend(0)?;
        self.inner.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        // The node itself is paid for when the inner value is visited.
        self.inner.visit_some(Counted::new(d, self.budget))
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.inner
            .visit_newtype_struct(Counted::new(d, self.budget))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        self.budget.spend(0)?;
        self.inner.visit_seq(Wrap::new(seq, self.budget))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.budget.spend(0)?;
        self.inner.visit_map(Wrap::new(map, self.budget))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        self.budget.spend(0)?;
        self.inner.visit_enum(Wrap::new(data, self.budget))
    }
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Wrap<'_, S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.inner.deserialize(Counted::new(d, self.budget))
    }
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Wrap<'_, A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Self::Error> {
        self.inner.next_element_seed(Wrap::new(seed, self.budget))
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Wrap<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        self.inner.next_key_seed(Wrap::new(seed, self.budget))
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<T::Value, Self::Error> {
        self.inner.next_value_seed(Wrap::new(seed, self.budget))
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'b, 'de, A: EnumAccess<'de>> EnumAccess<'de> for Wrap<'b, A> {
    type Error = A::Error;
    type Variant = Wrap<'b, A::Variant>;

    fn variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<(T::Value, Self::Variant), Self::Error> {
        let budget = self.budget;
        let (value, variant) = self.inner.variant_seed(Wrap::new(seed, budget))?;
        Ok((value, Wrap::new(variant, budget)))
    }
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Wrap<'_, A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), Self::Error> {
        self.inner.unit_variant()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, Self::Error> {
        self.inner
            .newtype_variant_seed(Wrap::new(seed, self.budget))
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.inner
            .tuple_variant(len, Wrap::new(visitor, self.budget))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.inner
            .struct_variant(fields, Wrap::new(visitor, self.budget))
    }
}

#[cfg(test)]
mod tests {
    use super::{Budget, Counted};
    use crate::limits::Limit;
    use serde::Deserialize;

    fn count(src: &str, nodes: usize, bytes: usize) -> Result<yaml_serde::Value, Option<Limit>> {
        let budget = Budget::new(nodes, bytes);
        let de = yaml_serde::Deserializer::from_str(src);
        yaml_serde::Value::deserialize(Counted::new(de, &budget))
            .map_err(|_| budget.exceeded().map(|e| e.limit))
    }

    #[test]
    fn counts_every_node_including_keys() {
        // mapping, key a, seq, x, y, key b, zz
        let src = "{a: [x, y], b: zz}";
        assert!(count(src, 7, 100).is_ok());
        assert_eq!(count(src, 6, 100).unwrap_err(), Some(Limit::YamlNodes));
        // scalar bytes: a x y b zz
        assert!(count(src, 100, 6).is_ok());
        assert_eq!(
            count(src, 100, 5).unwrap_err(),
            Some(Limit::YamlScalarBytes)
        );
    }

    #[test]
    fn aliases_are_paid_for_each_time() {
        let src = "{a: &x [1, 2, 3], b: *x, c: *x}";
        // 1 mapping + 3 keys + 3 × (seq + 3 scalars)
        assert!(count(src, 16, 100).is_ok());
        assert_eq!(count(src, 15, 100).unwrap_err(), Some(Limit::YamlNodes));
    }

    fn nodes(v: &yaml_serde::Value) -> usize {
        match v {
            yaml_serde::Value::Sequence(s) => 1 + s.iter().map(nodes).sum::<usize>(),
            yaml_serde::Value::Mapping(m) => {
                1 + m.iter().map(|(k, v)| nodes(k) + nodes(v)).sum::<usize>()
            }
            yaml_serde::Value::Tagged(t) => nodes(&t.value),
            _ => 1,
        }
    }

    proptest::proptest! {
        /// Whatever the aliases, a document either fits the budget (and holds no more nodes
        /// than it allows) or is refused for the budget, never anything else.
        #[test]
        fn expansion_never_passes_the_budget(
            width in 1usize..40,
            uses in 0usize..200,
            depth in 1usize..4,
            budget in 1usize..3000,
        ) {
            let mut src = format!("l0: &l0 [{}]\n", vec!["x"; width].join(", "));
            for d in 1..depth {
                src.push_str(&format!("l{d}: &l{d} [{}]\n", vec![format!("*l{}", d - 1); width].join(", ")));
            }
            src.push_str(&format!("top: [{}]\n", vec![format!("*l{}", depth - 1); uses].join(", ")));
            match count(&src, budget, usize::MAX) {
                Ok(v) => proptest::prop_assert!(nodes(&v) <= budget),
                Err(limit) => proptest::prop_assert_eq!(limit, Some(Limit::YamlNodes)),
            }
        }
    }

    #[test]
    fn a_billion_laughs_stops_at_the_budget() {
        let mut src = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for i in 1..10 {
            let p = i - 1;
            src.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        assert_eq!(
            count(&src, 100_000, 1 << 20).unwrap_err(),
            Some(Limit::YamlNodes)
        );
    }
}
