//! Static types of the language: a set of the kinds a value may have at run
//! time. Event fields are `ANY` until assigned; literals and function results
//! are precise. The checker rejects an argument whose possible kinds do not
//! meet what the parameter accepts.

use crate::event::Value;

/// A set of value kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ty(pub u16);

impl Ty {
    pub const NULL: Ty = Ty(1);
    pub const BOOL: Ty = Ty(2);
    pub const INT: Ty = Ty(4);
    pub const FLOAT: Ty = Ty(8);
    pub const STRING: Ty = Ty(16);
    pub const TIMESTAMP: Ty = Ty(32);
    pub const ARRAY: Ty = Ty(64);
    pub const MAP: Ty = Ty(128);
    pub const REGEX: Ty = Ty(256);
    pub const BYTES: Ty = Ty(512);
    pub const NUMBER: Ty = Ty(4 | 8);
    pub const TEXT: Ty = Ty(16 | 512);
    /// Any run-time value (regexes exist only as literals).
    pub const ANY: Ty = Ty(1 | 2 | 4 | 8 | 16 | 32 | 64 | 128 | 512);

    pub const fn or(self, other: Ty) -> Ty {
        Ty(self.0 | other.0)
    }

    pub fn meets(self, other: Ty) -> bool {
        self.0 & other.0 != 0
    }

    pub fn describe(self) -> String {
        if self == Ty::ANY {
            return "any".into();
        }
        let names = [
            (Ty::NULL, "null"),
            (Ty::BOOL, "boolean"),
            (Ty::INT, "integer"),
            (Ty::FLOAT, "float"),
            (Ty::STRING, "string"),
            (Ty::TIMESTAMP, "timestamp"),
            (Ty::ARRAY, "array"),
            (Ty::MAP, "map"),
            (Ty::REGEX, "regex"),
            (Ty::BYTES, "bytes"),
        ];
        let parts: Vec<&str> = names
            .iter()
            .filter(|(t, _)| self.meets(*t))
            .map(|(_, n)| *n)
            .collect();
        parts.join(" or ")
    }

    /// The type of a run-time value.
    pub fn of(v: &Value) -> Ty {
        match v {
            Value::Null => Ty::NULL,
            Value::Bool(_) => Ty::BOOL,
            Value::Int(_) => Ty::INT,
            Value::Float(_) => Ty::FLOAT,
            Value::String(_) => Ty::STRING,
            Value::Bytes(_) => Ty::BYTES,
            Value::Timestamp(_) => Ty::TIMESTAMP,
            Value::Array(_) => Ty::ARRAY,
            Value::Map(_) => Ty::MAP,
        }
    }
}
