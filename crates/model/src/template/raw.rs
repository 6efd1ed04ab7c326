//! Raw YAML shapes. Loose where the builder's checks give a better message than a type
//! error, strict (`deny_unknown_fields`) everywhere so typos in keys are reported.

use crate::names::quoted;
use crate::template::When;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use std::collections::BTreeSet;
use std::fmt;

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a template mapping with keys name, inputs, env, jobs (and in a repo's .gitweave.yml include, rules)"
)]
pub(super) struct RawTemplate {
    pub(super) name: Option<String>,
    pub(super) inputs: Option<UniqueMap<Option<RawInput>>>,
    pub(super) env: Option<UniqueMap<Scalar>>,
    pub(super) jobs: Option<Vec<RawJob>>,
    pub(super) include: Option<Vec<RawInclude>>,
    pub(super) rules: Option<Vec<RawRule>>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an include mapping with keys template, inputs"
)]
pub(super) struct RawInclude {
    pub(super) template: Option<String>,
    pub(super) inputs: Option<UniqueMap<Scalar>>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a rule mapping with keys event, branch, tag, changes"
)]
pub(super) struct RawRule {
    pub(super) event: Option<Strings>,
    pub(super) branch: Option<Strings>,
    pub(super) tag: Option<Strings>,
    pub(super) changes: Option<Strings>,
}

/// A list of scalars, or one scalar as a list of one (`branch: main`).
pub(super) struct Strings(pub(super) Vec<String>);

impl<'de> Deserialize<'de> for Strings {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Strings;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Strings, E> {
                Ok(Strings(vec![v.to_owned()]))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Strings, A::Error> {
                let mut out = Vec::new();
                while let Some(Scalar(s)) = seq.next_element::<Scalar>()? {
                    out.push(s);
                }
                Ok(Strings(out))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an input mapping with keys default, required, description"
)]
pub(super) struct RawInput {
    pub(super) default: Option<String>,
    pub(super) required: Option<bool>,
    pub(super) description: Option<String>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a job mapping with keys name, image, script, env, timeout, needs, allow_failure, retry, when, resources, secrets, runs_on, services, artifacts, cache, rules"
)]
pub(super) struct RawJob {
    pub(super) name: Option<String>,
    pub(super) image: Option<String>,
    pub(super) script: Option<Vec<Scalar>>,
    pub(super) env: Option<UniqueMap<Scalar>>,
    // Text of the scalar as written, so `600` and `10m` go through the same parser.
    pub(super) timeout: Option<String>,
    pub(super) needs: Option<Vec<String>>,
    pub(super) allow_failure: Option<bool>,
    pub(super) retry: Option<RawRetry>,
    pub(super) when: Option<When>,
    pub(super) resources: Option<RawResources>,
    pub(super) secrets: Option<Vec<crate::template::secrets::RawSecretRef>>,
    pub(super) runs_on: Option<UniqueMap<Scalar>>,
    pub(super) services: Option<Vec<crate::template::services::RawService>>,
    pub(super) artifacts: Option<crate::template::artifacts::RawArtifacts>,
    pub(super) cache: Option<crate::template::artifacts::RawCache>,
    pub(super) rules: Option<Vec<RawRule>>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a resources mapping with keys memory, cpus"
)]
pub(super) struct RawResources {
    pub(super) memory: Option<Scalar>,
    pub(super) cpus: Option<Scalar>,
}

pub(super) enum RawRetry {
    Count(i128),
    Map(RawRetryMap),
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a retry mapping with keys max, when, exit_codes"
)]
pub(super) struct RawRetryMap {
    pub(super) max: i64,
    pub(super) when: Option<Vec<String>>,
    pub(super) exit_codes: Option<Vec<i64>>,
}

impl<'de> Deserialize<'de> for RawRetry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawRetry;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a retry count or a mapping with keys max, when, exit_codes")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawRetry, E> {
                Ok(RawRetry::Count(v.into()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawRetry, E> {
                Ok(RawRetry::Count(v.into()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawRetry, A::Error> {
                RawRetryMap::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawRetry::Map)
            }
        }
        d.deserialize_any(V)
    }
}

/// A scalar (string, number or boolean) kept as the text written in the YAML; null,
/// sequences and mappings are type errors.
pub(super) struct Scalar(pub(super) String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_none<E: de::Error>(self) -> Result<Scalar, E> {
                Err(E::invalid_type(de::Unexpected::Other("null"), &self))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
                self.visit_none()
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Scalar, D::Error> {
                // Asking for a string makes the YAML library hand over the scalar's text
                // as written, so `1.10` stays "1.10" rather than becoming the float 1.1.
                String::deserialize(d).map(Scalar)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_owned()))
            }
        }
        // Through `option` first: it is the only way to tell a YAML null from the string
        // "null", since asking for a string directly yields the text of either.
        d.deserialize_option(V)
    }
}

/// A mapping with string keys that rejects duplicate keys (a plain map would silently keep
/// the last one), in file order.
pub(super) struct UniqueMap<V>(pub(super) Vec<(String, V)>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for UniqueMap<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = UniqueMap<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<UniqueMap<T>, A::Error> {
                let mut entries: Vec<(String, T)> = Vec::new();
                let mut seen = BTreeSet::new();
                while let Some(key) = map.next_key::<String>()? {
                    if !seen.insert(key.clone()) {
                        return Err(de::Error::custom(format!("duplicate key {}", quoted(&key))));
                    }
                    let value = map.next_value()?;
                    entries.push((key, value));
                }
                Ok(UniqueMap(entries))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}
