//! JSON request bodies are objects. serde would also build a struct from
//! an array of its fields in order (`[[null, null]]` as a list of
//! records), which no client means and the OpenAPI description does not
//! allow; [`Object`] refuses it with a clear error.

use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};

/// A `T` read only from a JSON object.
#[derive(Debug, Clone)]
pub(super) struct Object<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_map(V(PhantomData)).map(Object)
    }
}

/// Parses `text` as a JSON object holding a `T`.
pub(super) fn from_object<'a, T: Deserialize<'a>>(text: &'a [u8]) -> serde_json::Result<T> {
    serde_json::from_slice::<Object<T>>(text).map(|o| o.0)
}

/// For `#[serde(deserialize_with = "objects")]` on a list of structs.
pub(super) fn objects<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Vec::<Object<T>>::deserialize(d).map(|v| v.into_iter().map(|o| o.0).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Pair {
        a: Option<i32>,
        b: Option<i32>,
    }

    #[test]
    fn only_objects_make_structs() {
        let ok: Object<Pair> = serde_json::from_str(r#"{"a":1}"#).unwrap();
        assert_eq!(
            ok.0,
            Pair {
                a: Some(1),
                b: None
            }
        );
        let e = serde_json::from_str::<Object<Pair>>("[1, 2]").unwrap_err();
        assert!(e.to_string().contains("expected a JSON object"), "{e}");
        assert!(
            serde_json::from_str::<Object<Pair>>(r#"{"c":1}"#).is_err(),
            "fields still checked"
        );
    }
}
