//! Flow typing: what the checker knows about event fields and `let` locals
//! at each point of a step. Facts come from assignments (`.x = 1` makes `.x`
//! an integer), `let`, and conditions that were tested (`exists(.x)`,
//! `.x != null`, `.x == null` in its `else`, combined with `and`, `or` and
//! `not`). A write to a field or a `del` forgets every fact about that field,
//! what lies under it and what contains it; after an `if`, only what both
//! branches know survives. Facts never cross steps. This module only keeps
//! the facts; the checker decides what they are used for.

use super::ast::Segment;
use super::eval::{Place, Root};
use super::types::Ty;

/// What a fact is about.
#[derive(Debug, Clone, PartialEq)]
pub enum Subject {
    /// An event field, by the part of the event it lives in and its path there.
    Field(Area, Vec<Segment>),
    /// A `let` local, by slot.
    Local(usize),
}

/// The parts of an event that paths can reach; paths in different areas never alias.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    Message,
    Timestamp,
    Severity,
    Resource,
    /// Attributes (logs) or labels and metric fields: `.x` is `.attributes.x`.
    Fields,
}

impl Subject {
    pub fn field(place: &Place) -> Subject {
        let (area, mut path) = match &place.root {
            Root::Message => (Area::Message, Vec::new()),
            Root::Timestamp => (Area::Timestamp, Vec::new()),
            Root::Severity => (Area::Severity, Vec::new()),
            Root::Resource => (Area::Resource, Vec::new()),
            Root::Attributes => (Area::Fields, Vec::new()),
            Root::MetricField(name) => (Area::Fields, vec![Segment::Field((*name).into())]),
            Root::Attr(name) => (Area::Fields, vec![Segment::Field(name.clone())]),
        };
        path.extend(place.rest.iter().cloned());
        Subject::Field(area, path)
    }

    /// Whether a write to one may change the other: one path is a prefix of
    /// the other. Array indexes match any index (`[-1]` may be `[2]`).
    fn overlaps(&self, other: &Subject) -> bool {
        match (self, other) {
            (Subject::Field(a, p), Subject::Field(b, q)) => {
                a == b
                    && p.iter().zip(q).all(|(x, y)| match (x, y) {
                        (Segment::Field(x), Segment::Field(y)) => x == y,
                        _ => true,
                    })
            }
            (a, b) => a == b,
        }
    }
}

/// The facts known at one point: the narrowed type of each subject.
#[derive(Debug, Clone, Default)]
pub struct Facts(Vec<(Subject, Ty)>);

impl Facts {
    pub fn get(&self, s: &Subject) -> Option<Ty> {
        self.0.iter().rev().find(|(k, _)| k == s).map(|(_, t)| *t)
    }

    /// `s` was written (or deleted: `ty` is null): older facts about it and
    /// every overlapping field are void.
    pub fn write(&mut self, s: Subject, ty: Ty) {
        self.forget(&s);
        self.0.push((s, ty));
    }

    /// Forgets everything known about fields overlapping `s`.
    pub fn forget(&mut self, s: &Subject) {
        self.0.retain(|(k, _)| !k.overlaps(s));
    }

    /// A tested condition proved `s` has type `ty` (narrower than before).
    pub fn assume(&mut self, s: Subject, ty: Ty) {
        self.0.retain(|(k, _)| *k != s);
        self.0.push((s, ty));
    }

    /// What holds after two branches: facts both know, with either type.
    pub fn join(a: &Facts, b: &Facts) -> Facts {
        Facts(
            a.0.iter()
                .filter_map(|(k, t)| b.get(k).map(|u| (k.clone(), t.or(u))))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(path: &str) -> Subject {
        let segs: Vec<Segment> = path.split('.').map(|s| Segment::Field(s.into())).collect();
        Subject::field(&Place::resolve(&segs))
    }

    #[test]
    fn writing_a_field_forgets_what_was_known_under_and_above_it() {
        let mut f = Facts::default();
        f.assume(field("a.b"), Ty::INT);
        f.assume(field("a"), Ty::MAP);
        f.assume(field("c"), Ty::INT);
        f.write(field("a.b.x"), Ty::STRING);
        assert_eq!(f.get(&field("a.b")), None);
        assert_eq!(f.get(&field("a")), None);
        assert_eq!(f.get(&field("c")), Some(Ty::INT));
        assert_eq!(f.get(&field("a.b.x")), Some(Ty::STRING));
    }

    #[test]
    fn the_whole_attribute_map_overlaps_every_attribute() {
        let mut f = Facts::default();
        f.assume(field("status"), Ty::INT);
        f.write(field("attributes"), Ty::MAP);
        assert_eq!(f.get(&field("status")), None);
    }

    #[test]
    fn after_two_branches_only_common_facts_remain() {
        let mut a = Facts::default();
        a.assume(field("x"), Ty::INT);
        a.assume(field("y"), Ty::INT);
        let mut b = Facts::default();
        b.assume(field("x"), Ty::STRING);
        let j = Facts::join(&a, &b);
        assert_eq!(j.get(&field("x")), Some(Ty::INT.or(Ty::STRING)));
        assert_eq!(j.get(&field("y")), None);
    }
}
