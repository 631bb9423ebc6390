//! Groups events by resource for the OTLP encoders, in time linear in the
//! events: a resource is found by its address (events of one resource
//! share one `Arc`), else by its content (equal resources made apart, e.g.
//! read back from the spill, are merged), never by searching the groups.
//! Groups keep the order of their first event. Pure.

use crate::event::{Resource, Value};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Groups of `T` (the records of one resource), one per distinct resource.
pub struct ResourceGroups<'a, T> {
    groups: Vec<(&'a Arc<Resource>, T)>,
    /// The resource of the last event and its group: events come in runs.
    last: Option<(*const Resource, usize)>,
    by_address: HashMap<*const Resource, usize>,
    by_content: HashMap<u64, Vec<usize>>,
}

impl<T> Default for ResourceGroups<'_, T> {
    fn default() -> Self {
        ResourceGroups {
            groups: Vec::new(),
            last: None,
            by_address: HashMap::new(),
            by_content: HashMap::new(),
        }
    }
}

impl<'a, T: Default> ResourceGroups<'a, T> {
    /// The group of `resource`, made (empty) when it is new.
    pub fn group(&mut self, resource: &'a Arc<Resource>) -> &mut T {
        let address = Arc::as_ptr(resource);
        if let Some((last, i)) = self.last {
            if last == address {
                return &mut self.groups[i].1;
            }
        }
        let index = match self.by_address.get(&address) {
            Some(&i) => i,
            None => {
                let key = content_key(resource);
                let same = self.by_content.entry(key).or_default();
                let found = same
                    .iter()
                    .copied()
                    .find(|&i| **self.groups[i].0 == **resource);
                let i = found.unwrap_or_else(|| {
                    self.groups.push((resource, T::default()));
                    same.push(self.groups.len() - 1);
                    self.groups.len() - 1
                });
                self.by_address.insert(address, i);
                i
            }
        };
        self.last = Some((address, index));
        &mut self.groups[index].1
    }

    /// The groups, in order of their first event.
    pub fn into_groups(self) -> Vec<(&'a Arc<Resource>, T)> {
        self.groups
    }
}

/// A hash of a resource's attributes, consistent with its equality (equal
/// resources hash alike, bar floats that are equal with different bits,
/// which are then only not merged).
fn content_key(resource: &Resource) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    resource.attributes.len().hash(&mut h);
    for (k, v) in &resource.attributes {
        k.hash(&mut h);
        hash_value(v, &mut h);
    }
    h.finish()
}

fn hash_value(v: &Value, h: &mut impl Hasher) {
    std::mem::discriminant(v).hash(h);
    match v {
        Value::Null => {}
        Value::Bool(b) => b.hash(h),
        Value::Int(i) | Value::Timestamp(i) => i.hash(h),
        Value::Float(f) => f.to_bits().hash(h),
        Value::String(s) => s.hash(h),
        Value::Bytes(b) => b.hash(h),
        Value::Array(items) => {
            items.len().hash(h);
            items.iter().for_each(|item| hash_value(item, h));
        }
        Value::Map(map) => {
            map.len().hash(h);
            for (k, item) in map {
                k.hash(h);
                hash_value(item, h);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(name: &str) -> Arc<Resource> {
        Arc::new(Resource {
            attributes: vec![("service.name".into(), Value::from(name))],
        })
    }

    #[test]
    fn shared_and_equal_resources_group_together_in_order_of_first_use() {
        let (a, b, a_again) = (resource("a"), resource("b"), resource("a"));
        let mut groups: ResourceGroups<'_, Vec<u32>> = ResourceGroups::default();
        for (r, n) in [(&b, 1), (&a, 2), (&b, 3), (&a_again, 4), (&a, 5)] {
            groups.group(r).push(n);
        }
        let groups = groups.into_groups();
        assert_eq!(groups.len(), 2);
        assert!(Arc::ptr_eq(groups[0].0, &b));
        assert_eq!(groups[0].1, vec![1, 3]);
        assert_eq!(groups[1].1, vec![2, 4, 5], "an equal resource merges");
    }

    #[test]
    fn many_distinct_resources_take_linear_time() {
        let resources: Vec<Arc<Resource>> = (0..50_000).map(|i| resource(&i.to_string())).collect();
        let started = std::time::Instant::now();
        let mut groups: ResourceGroups<'_, u32> = ResourceGroups::default();
        for r in &resources {
            *groups.group(r) += 1;
        }
        assert_eq!(groups.into_groups().len(), 50_000);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }
}
