//! A small map keyed by name (room id), stored as a vector.
//!
//! A session is in at most a handful of rooms (5 by default). A `BTreeMap` allocates a node for
//! 11 entries even for one, which for a server holding a hundred thousand idle sessions is most
//! of a session's memory; a vector of pairs holds exactly what is there, in insertion order.

/// Entries by name, in insertion order.
#[derive(Debug, Clone)]
pub struct Named<V>(Vec<(String, V)>);

impl<V> Default for Named<V> {
    fn default() -> Self {
        Named(Vec::new())
    }
}

impl<V> Named<V> {
    /// The entry for `name`.
    pub fn get(&self, name: &str) -> Option<&V> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// The entry for `name`, to change.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut V> {
        self.0.iter_mut().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// Whether `name` has an entry.
    pub fn contains_key(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }

    /// Set `name`'s entry; returns the one it replaced.
    pub fn insert(&mut self, name: String, value: V) -> Option<V> {
        match self.get_mut(&name) {
            Some(v) => Some(std::mem::replace(v, value)),
            None => {
                self.0.push((name, value));
                None
            }
        }
    }

    /// Take `name`'s entry out.
    pub fn remove(&mut self, name: &str) -> Option<V> {
        let i = self.0.iter().position(|(k, _)| k == name)?;
        Some(self.0.remove(i).1)
    }

    /// Keep the entries `keep` says yes to.
    pub fn retain(&mut self, mut keep: impl FnMut(&String, &mut V) -> bool) {
        self.0.retain_mut(|(k, v)| keep(k, v));
    }

    /// The names.
    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.0.iter().map(|(k, _)| k)
    }

    /// The entries.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &V)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    /// The entries, to change.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&String, &mut V)> {
        self.0.iter_mut().map(|(k, v)| (&*k, v))
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<V> IntoIterator for Named<V> {
    type Item = (String, V);
    type IntoIter = std::vec::IntoIter<(String, V)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a, V> IntoIterator for &'a Named<V> {
    type Item = (&'a String, &'a V);
    type IntoIter = std::iter::Map<std::slice::Iter<'a, (String, V)>, fn(&'a (String, V)) -> (&'a String, &'a V)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_like_a_map() {
        let mut m = Named::default();
        assert_eq!(m.insert("r1".to_string(), 1), None);
        assert_eq!(m.insert("r2".to_string(), 2), None);
        assert_eq!(m.insert("r1".to_string(), 3), Some(1));
        assert_eq!(m.get("r1"), Some(&3));
        assert!(m.contains_key("r2") && !m.contains_key("r3"));
        assert_eq!(m.keys().cloned().collect::<Vec<_>>(), vec!["r1", "r2"]);
        *m.get_mut("r2").unwrap() += 10;
        m.retain(|_, v| *v > 5);
        assert_eq!(m.len(), 1);
        assert_eq!(m.remove("r2"), Some(12));
        assert!(m.is_empty());
    }
}
