//! URI pattern matcher shared by the broker (PUBLISH → every matching
//! subscription) and the dealer (CALL → the single best registration).
//!
//! Entries are keyed by `(policy, pattern)`; each policy has its own index,
//! chosen so that a lookup costs O(length of the URI) no matter how many
//! patterns are stored:
//!
//! * **exact**: a hash map from the URI to the value.
//! * **prefix**: a radix tree (path-compressed trie) over *bytes*. WAMP prefix
//!   matching is a plain string prefix (`com.myapp.topic.emergency` matches
//!   `com.myapp.topic.emergency-low`), so a component trie would need a second
//!   structure for the partial last component anyway. Walking the URI down a
//!   byte radix tree visits every stored prefix of it exactly once, compares
//!   whole edge labels with `memcmp`, and keeps the node count at most twice
//!   the number of prefix patterns.
//! * **wildcard**: a trie over components. An empty pattern component is a
//!   separate `wild` child, so a lookup follows at most the literal child and
//!   the wildcard child at every level. Each node also carries a bit set of the
//!   component counts of the patterns below it, which cuts branches that can
//!   only end in patterns of the wrong length.
//!
//! Trie nodes live in arenas (`Vec` + free list) indexed by `u32`: smaller
//! than boxes, cache-friendlier, and removal prunes emptied nodes so churn
//! does not leak memory.

use crate::protocol::uri::MatchPolicy;
use ahash::AHashMap;
use smallvec::SmallVec;

/// Index of the (permanent) root in both arenas.
const ROOT: u32 = 0;
/// `WNode::wild` value meaning "no wildcard child" (the root is never a child).
const NO_CHILD: u32 = 0;

/// Bit for "a pattern with `n` components is stored below"; 63 stands for
/// "63 or more", which keeps the filter conservative for very long URIs.
#[inline]
fn len_bit(n: usize) -> u64 {
    1u64 << n.min(63)
}

/// Stack of URI components; 16 covers realistic URIs without allocating.
type Comps<'a> = SmallVec<[&'a str; 16]>;

// ---------------------------------------------------------------- prefix ---

struct PNode<V> {
    /// Edge label from the parent (empty only for the root).
    label: Box<[u8]>,
    /// Children sorted by the first byte of their label (unique per node).
    children: Vec<(u8, u32)>,
    entry: Option<(Box<str>, V)>,
}

impl<V> PNode<V> {
    fn empty() -> Self {
        PNode {
            label: Box::default(),
            children: Vec::new(),
            entry: None,
        }
    }
}

/// Radix tree invariant: every non-root node without an entry has at least
/// two children (otherwise it is merged into its child or removed).
/// Trie nodes in one vector, addressed by `u32`, with a free list so that slots emptied by removals
/// are reused (memory does not grow under subscribe/unsubscribe churn). Slot 0 is the root.
struct Arena<T> {
    nodes: Vec<T>,
    free: Vec<u32>,
}

impl<T> Arena<T> {
    fn new(root: T) -> Self {
        Arena {
            nodes: vec![root],
            free: Vec::new(),
        }
    }

    fn alloc(&mut self, node: T) -> u32 {
        if let Some(i) = self.free.pop() {
            self.nodes[i as usize] = node;
            i
        } else {
            self.nodes.push(node);
            (self.nodes.len() - 1) as u32
        }
    }

    /// Frees slot `i`, leaving `empty` in it (drops the old node's value now, not at reuse).
    fn release(&mut self, i: u32, empty: T) {
        self.nodes[i as usize] = empty;
        self.free.push(i);
    }

    /// Nodes in use, not counting the root.
    fn live(&self) -> usize {
        self.nodes.len() - self.free.len() - 1
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.nodes.len()
    }

    fn iter(&self) -> std::slice::Iter<'_, T> {
        self.nodes.iter()
    }
}

impl<T> std::ops::Index<usize> for Arena<T> {
    type Output = T;
    fn index(&self, i: usize) -> &T {
        &self.nodes[i]
    }
}

impl<T> std::ops::IndexMut<usize> for Arena<T> {
    fn index_mut(&mut self, i: usize) -> &mut T {
        &mut self.nodes[i]
    }
}

struct PrefixTrie<V> {
    nodes: Arena<PNode<V>>,
}

impl<V> PrefixTrie<V> {
    fn new() -> Self {
        PrefixTrie {
            nodes: Arena::new(PNode::empty()),
        }
    }

    fn alloc(&mut self, node: PNode<V>) -> u32 {
        self.nodes.alloc(node)
    }

    fn release(&mut self, i: u32) {
        self.nodes.release(i, PNode::empty());
    }

    fn live_nodes(&self) -> usize {
        self.nodes.live()
    }

    #[inline]
    fn child_pos(&self, n: u32, b: u8) -> Result<usize, usize> {
        self.nodes[n as usize]
            .children
            .binary_search_by_key(&b, |c| c.0)
    }

    /// Node whose full key is exactly `key`.
    fn find(&self, key: &[u8]) -> Option<u32> {
        let mut n = ROOT;
        let mut pos = 0;
        while pos < key.len() {
            let i = self.child_pos(n, key[pos]).ok()?;
            let c = self.nodes[n as usize].children[i].1;
            let label = &self.nodes[c as usize].label;
            if !key[pos..].starts_with(label) {
                return None;
            }
            pos += label.len();
            n = c;
        }
        Some(n)
    }

    fn insert(&mut self, pattern: &str, v: V) -> Option<V> {
        let key = pattern.as_bytes();
        let mut n = ROOT;
        let mut pos = 0;
        loop {
            if pos == key.len() {
                let node = &mut self.nodes[n as usize];
                return match &mut node.entry {
                    Some((_, old)) => Some(std::mem::replace(old, v)),
                    None => {
                        node.entry = Some((pattern.into(), v));
                        None
                    }
                };
            }
            match self.child_pos(n, key[pos]) {
                Err(i) => {
                    let leaf = self.alloc(PNode {
                        label: key[pos..].into(),
                        children: Vec::new(),
                        entry: Some((pattern.into(), v)),
                    });
                    self.nodes[n as usize].children.insert(i, (key[pos], leaf));
                    return None;
                }
                Ok(i) => {
                    let c = self.nodes[n as usize].children[i].1;
                    let label = &self.nodes[c as usize].label;
                    let common = label
                        .iter()
                        .zip(&key[pos..])
                        .take_while(|(a, b)| a == b)
                        .count();
                    if common < label.len() {
                        // Split the edge: n -> mid(label[..common]) -> c(label[common..]).
                        let head: Box<[u8]> = label[..common].into();
                        let tail: Box<[u8]> = label[common..].into();
                        let tail0 = tail[0];
                        self.nodes[c as usize].label = tail;
                        let mid = self.alloc(PNode {
                            label: head,
                            children: vec![(tail0, c)],
                            entry: None,
                        });
                        self.nodes[n as usize].children[i].1 = mid;
                        n = mid;
                    } else {
                        n = c;
                    }
                    pos += common;
                }
            }
        }
    }

    fn remove(&mut self, pattern: &str) -> Option<V> {
        let key = pattern.as_bytes();
        // (parent, index of the child in parent.children) for each step.
        let mut path: SmallVec<[(u32, usize); 16]> = SmallVec::new();
        let mut n = ROOT;
        let mut pos = 0;
        while pos < key.len() {
            let i = self.child_pos(n, key[pos]).ok()?;
            let c = self.nodes[n as usize].children[i].1;
            let label = &self.nodes[c as usize].label;
            if !key[pos..].starts_with(label) {
                return None;
            }
            path.push((n, i));
            pos += label.len();
            n = c;
        }
        let (_, v) = self.nodes[n as usize].entry.take()?;
        if n != ROOT {
            match self.nodes[n as usize].children.len() {
                0 => {
                    let (p, i) = path.pop().expect("non-root node has a parent");
                    self.nodes[p as usize].children.remove(i);
                    self.release(n);
                    let pn = &self.nodes[p as usize];
                    if p != ROOT && pn.entry.is_none() && pn.children.len() == 1 {
                        let (gp, gi) = *path.last().expect("non-root node has a parent");
                        self.merge(gp, gi, p);
                    }
                }
                1 => {
                    let (p, i) = *path.last().expect("non-root node has a parent");
                    self.merge(p, i, n);
                }
                _ => {}
            }
        }
        Some(v)
    }

    /// Folds entry-less `n` (with exactly one child) into that child.
    fn merge(&mut self, parent: u32, idx: usize, n: u32) {
        let c = self.nodes[n as usize].children[0].1;
        let head = &self.nodes[n as usize].label;
        let tail = &self.nodes[c as usize].label;
        let mut label = Vec::with_capacity(head.len() + tail.len());
        label.extend_from_slice(head);
        label.extend_from_slice(tail);
        self.nodes[c as usize].label = label.into_boxed_slice();
        // The first byte of the edge is unchanged, so the sort order holds.
        self.nodes[parent as usize].children[idx].1 = c;
        self.release(n);
    }

    /// Calls `f` for every stored prefix of `uri`, shortest first.
    #[inline]
    fn for_each_prefix<'a>(&'a self, uri: &[u8], mut f: impl FnMut(&'a (Box<str>, V))) {
        let mut n = ROOT;
        let mut pos = 0;
        loop {
            let node = &self.nodes[n as usize];
            if let Some(e) = &node.entry {
                f(e);
            }
            if pos == uri.len() {
                return;
            }
            let Ok(i) = node.children.binary_search_by_key(&uri[pos], |c| c.0) else {
                return;
            };
            let c = node.children[i].1;
            let label = &self.nodes[c as usize].label;
            if !uri[pos..].starts_with(label) {
                return;
            }
            pos += label.len();
            n = c;
        }
    }
}

// -------------------------------------------------------------- wildcard ---

struct WNode<V> {
    lits: AHashMap<Box<str>, u32>,
    /// Child for an empty (wildcard) component, or `NO_CHILD`.
    wild: u32,
    /// `len_bit`s of the component counts of all entries in this subtree.
    /// Exact after inserts; after removals it may keep stale bits (a
    /// superset), which only costs a little pruning power.
    lens: u64,
    entry: Option<(Box<str>, V)>,
}

impl<V> WNode<V> {
    fn empty() -> Self {
        WNode {
            lits: AHashMap::new(),
            wild: NO_CHILD,
            lens: 0,
            entry: None,
        }
    }

    fn is_prunable(&self) -> bool {
        self.entry.is_none() && self.wild == NO_CHILD && self.lits.is_empty()
    }
}

struct WildTrie<V> {
    nodes: Arena<WNode<V>>,
}

impl<V> WildTrie<V> {
    fn new() -> Self {
        WildTrie {
            nodes: Arena::new(WNode::empty()),
        }
    }

    fn alloc(&mut self) -> u32 {
        self.nodes.alloc(WNode::empty())
    }

    fn release(&mut self, i: u32) {
        self.nodes.release(i, WNode::empty());
    }

    fn live_nodes(&self) -> usize {
        self.nodes.live()
    }

    #[inline]
    fn child(&self, n: u32, comp: &str) -> Option<u32> {
        let node = &self.nodes[n as usize];
        if comp.is_empty() {
            (node.wild != NO_CHILD).then_some(node.wild)
        } else {
            node.lits.get(comp).copied()
        }
    }

    fn find(&self, pattern: &str) -> Option<u32> {
        let mut n = ROOT;
        for comp in pattern.split('.') {
            n = self.child(n, comp)?;
        }
        Some(n)
    }

    fn insert(&mut self, pattern: &str, v: V) -> Option<V> {
        let bit = len_bit(pattern.bytes().filter(|&b| b == b'.').count() + 1);
        let mut n = ROOT;
        self.nodes[ROOT as usize].lens |= bit;
        for comp in pattern.split('.') {
            n = match self.child(n, comp) {
                Some(c) => c,
                None => {
                    let c = self.alloc();
                    let node = &mut self.nodes[n as usize];
                    if comp.is_empty() {
                        node.wild = c;
                    } else {
                        node.lits.insert(comp.into(), c);
                    }
                    c
                }
            };
            self.nodes[n as usize].lens |= bit;
        }
        let node = &mut self.nodes[n as usize];
        match &mut node.entry {
            Some((_, old)) => Some(std::mem::replace(old, v)),
            None => {
                node.entry = Some((pattern.into(), v));
                None
            }
        }
    }

    fn remove(&mut self, pattern: &str) -> Option<V> {
        let comps: Comps = pattern.split('.').collect();
        // path[k] = node reached after k components; path[0] = root.
        let mut path: SmallVec<[u32; 17]> = SmallVec::new();
        path.push(ROOT);
        let mut n = ROOT;
        for comp in &comps {
            n = self.child(n, comp)?;
            path.push(n);
        }
        let (_, v) = self.nodes[n as usize].entry.take()?;
        // Prune the emptied tail of the path.
        let mut k = path.len() - 1;
        while k > 0 && self.nodes[path[k] as usize].is_prunable() {
            let parent = &mut self.nodes[path[k - 1] as usize];
            if comps[k - 1].is_empty() {
                parent.wild = NO_CHILD;
            } else {
                parent.lits.remove(comps[k - 1]);
            }
            self.release(path[k]);
            k -= 1;
        }
        // Tighten the length filters above, while that is cheap; stopping
        // early leaves a (still correct) superset.
        loop {
            let node = &self.nodes[path[k] as usize];
            if node.lits.len() > 16 {
                break;
            }
            let mut lens = if node.entry.is_some() { len_bit(k) } else { 0 };
            if node.wild != NO_CHILD {
                lens |= self.nodes[node.wild as usize].lens;
            }
            for &c in node.lits.values() {
                lens |= self.nodes[c as usize].lens;
            }
            self.nodes[path[k] as usize].lens = lens;
            if k == 0 {
                break;
            }
            k -= 1;
        }
        Some(v)
    }

    /// Calls `f` for every wildcard pattern matching `uri`.
    #[inline]
    fn for_each_match<'a>(&'a self, uri: &str, mut f: impl FnMut(&'a (Box<str>, V))) {
        if self.nodes[ROOT as usize].lens == 0 {
            return;
        }
        let comps: Comps = uri.split('.').collect();
        let n = comps.len();
        let bit = len_bit(n);
        if self.nodes[ROOT as usize].lens & bit == 0 {
            return;
        }
        // Each pop pushes at most two, so depth n needs about n + 1 slots.
        let mut stack: SmallVec<[(u32, usize); 32]> = SmallVec::new();
        stack.push((ROOT, 0));
        while let Some((id, d)) = stack.pop() {
            let node = &self.nodes[id as usize];
            if d == n {
                if let Some(e) = &node.entry {
                    f(e);
                }
                continue;
            }
            if node.wild != NO_CHILD && self.nodes[node.wild as usize].lens & bit != 0 {
                stack.push((node.wild, d + 1));
            }
            if let Some(&c) = node.lits.get(comps[d]) {
                if self.nodes[c as usize].lens & bit != 0 {
                    stack.push((c, d + 1));
                }
            }
        }
    }

    /// The dealer's pick among matching wildcard patterns.
    ///
    /// The spec ranks candidates by the lengths of their literal runs before
    /// each wildcard, compared left to right. All candidates agree with the
    /// URI on their literal components, so two candidates first differ at a
    /// position where one has a literal and the other a wildcard, and there
    /// the literal one has the longer run. That is exactly the first match of
    /// a depth-first search that tries the literal child before the wildcard
    /// child, so no candidate set is collected.
    fn best_match(&self, uri: &str) -> Option<&(Box<str>, V)> {
        if self.nodes[ROOT as usize].lens == 0 {
            return None;
        }
        let comps: Comps = uri.split('.').collect();
        let n = comps.len();
        let bit = len_bit(n);
        let mut stack: SmallVec<[(u32, usize); 32]> = SmallVec::new();
        stack.push((ROOT, 0));
        while let Some((id, d)) = stack.pop() {
            let node = &self.nodes[id as usize];
            if d == n {
                if let Some(e) = &node.entry {
                    return Some(e);
                }
                continue;
            }
            // Pushed first, popped last: literal subtrees are searched first.
            if node.wild != NO_CHILD && self.nodes[node.wild as usize].lens & bit != 0 {
                stack.push((node.wild, d + 1));
            }
            if let Some(&c) = node.lits.get(comps[d]) {
                if self.nodes[c as usize].lens & bit != 0 {
                    stack.push((c, d + 1));
                }
            }
        }
        None
    }
}

// ------------------------------------------------------------------ API ---

/// Values of type `V` keyed by `(policy, pattern)`, with broker-style
/// ([`for_each_match`](Self::for_each_match)) and dealer-style
/// ([`best_match`](Self::best_match)) lookups.
///
/// Patterns are expected to be validated by the caller
/// (`protocol::uri::is_valid_pattern`); the trie itself accepts any string.
pub struct UriTrie<V> {
    exact: AHashMap<Box<str>, V>,
    prefix: PrefixTrie<V>,
    wild: WildTrie<V>,
    len: usize,
}

impl<V> Default for UriTrie<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V> UriTrie<V> {
    pub fn new() -> Self {
        UriTrie {
            exact: AHashMap::new(),
            prefix: PrefixTrie::new(),
            wild: WildTrie::new(),
            len: 0,
        }
    }

    /// Inserts or replaces; returns the replaced value.
    pub fn insert(&mut self, policy: MatchPolicy, pattern: &str, v: V) -> Option<V> {
        let old = match policy {
            MatchPolicy::Exact => match self.exact.get_mut(pattern) {
                Some(old) => Some(std::mem::replace(old, v)),
                None => {
                    self.exact.insert(pattern.into(), v);
                    None
                }
            },
            MatchPolicy::Prefix => self.prefix.insert(pattern, v),
            MatchPolicy::Wildcard => self.wild.insert(pattern, v),
        };
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    pub fn get(&self, policy: MatchPolicy, pattern: &str) -> Option<&V> {
        match policy {
            MatchPolicy::Exact => self.exact.get(pattern),
            MatchPolicy::Prefix => self
                .prefix
                .find(pattern.as_bytes())
                .and_then(|n| self.prefix.nodes[n as usize].entry.as_ref())
                .map(|e| &e.1),
            MatchPolicy::Wildcard => self
                .wild
                .find(pattern)
                .and_then(|n| self.wild.nodes[n as usize].entry.as_ref())
                .map(|e| &e.1),
        }
    }

    pub fn get_mut(&mut self, policy: MatchPolicy, pattern: &str) -> Option<&mut V> {
        match policy {
            MatchPolicy::Exact => self.exact.get_mut(pattern),
            MatchPolicy::Prefix => {
                let n = self.prefix.find(pattern.as_bytes())?;
                self.prefix.nodes[n as usize]
                    .entry
                    .as_mut()
                    .map(|e| &mut e.1)
            }
            MatchPolicy::Wildcard => {
                let n = self.wild.find(pattern)?;
                self.wild.nodes[n as usize].entry.as_mut().map(|e| &mut e.1)
            }
        }
    }

    /// Removes an entry, pruning trie nodes that no longer lead anywhere.
    pub fn remove(&mut self, policy: MatchPolicy, pattern: &str) -> Option<V> {
        let old = match policy {
            MatchPolicy::Exact => self.exact.remove(pattern),
            MatchPolicy::Prefix => self.prefix.remove(pattern),
            MatchPolicy::Wildcard => self.wild.remove(pattern),
        };
        if old.is_some() {
            self.len -= 1;
        }
        old
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Broker semantics: calls `f` once for every entry whose pattern matches
    /// `uri` — the exact one, every stored prefix of it, every matching
    /// wildcard pattern — in that order (order within a policy unspecified).
    #[inline]
    pub fn for_each_match<F: FnMut(MatchPolicy, &str, &V)>(&self, uri: &str, mut f: F) {
        if !self.exact.is_empty() {
            if let Some((k, v)) = self.exact.get_key_value(uri) {
                f(MatchPolicy::Exact, k, v);
            }
        }
        self.prefix
            .for_each_prefix(uri.as_bytes(), |(p, v)| f(MatchPolicy::Prefix, p, v));
        self.wild
            .for_each_match(uri, |(p, v)| f(MatchPolicy::Wildcard, p, v));
    }

    /// Dealer semantics (pattern-based registration): an exact registration
    /// wins; else the longest matching prefix (by bytes, which refines the
    /// spec's "more URI components matched"); else the wildcard pattern with
    /// the longest literal run before its first wildcard, then before its
    /// second, and so on. Returns the winning policy and pattern too.
    #[inline]
    pub fn best_match(&self, uri: &str) -> Option<(MatchPolicy, &str, &V)> {
        if let Some((k, v)) = self.exact.get_key_value(uri) {
            return Some((MatchPolicy::Exact, k, v));
        }
        let mut best = None;
        self.prefix
            .for_each_prefix(uri.as_bytes(), |e| best = Some(e));
        if let Some((p, v)) = best {
            return Some((MatchPolicy::Prefix, p, v));
        }
        self.wild
            .best_match(uri)
            .map(|(p, v)| (MatchPolicy::Wildcard, &**p, v))
    }

    /// All entries, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (MatchPolicy, &str, &V)> {
        let exact = self
            .exact
            .iter()
            .map(|(k, v)| (MatchPolicy::Exact, &**k, v));
        let prefix = self.prefix.nodes.iter().filter_map(|n| {
            n.entry
                .as_ref()
                .map(|(p, v)| (MatchPolicy::Prefix, &**p, v))
        });
        let wild = self.wild.nodes.iter().filter_map(|n| {
            n.entry
                .as_ref()
                .map(|(p, v)| (MatchPolicy::Wildcard, &**p, v))
        });
        exact.chain(prefix).chain(wild)
    }

    /// Live trie nodes (prefix + wildcard, roots excluded); lets tests check
    /// that removal prunes everything it should.
    #[doc(hidden)]
    pub fn node_count(&self) -> usize {
        self.prefix.live_nodes() + self.wild.live_nodes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use MatchPolicy::{Exact, Prefix, Wildcard};

    fn matches(t: &UriTrie<u32>, uri: &str) -> Vec<(MatchPolicy, String, u32)> {
        let mut v = Vec::new();
        t.for_each_match(uri, |p, pat, &x| v.push((p, pat.to_string(), x)));
        v.sort_by(|a, b| (a.0.as_str(), &a.1).cmp(&(b.0.as_str(), &b.1)));
        v
    }

    fn ids(t: &UriTrie<u32>, uri: &str) -> Vec<u32> {
        let mut v: Vec<u32> = matches(t, uri).into_iter().map(|m| m.2).collect();
        v.sort();
        v
    }

    fn best(t: &UriTrie<u32>, uri: &str) -> Option<u32> {
        t.best_match(uri).map(|(_, _, &v)| v)
    }

    #[test]
    fn spec_prefix_subscription() {
        let mut t = UriTrie::new();
        t.insert(Prefix, "com.myapp.topic.emergency", 1);
        for uri in [
            "com.myapp.topic.emergency.11",
            "com.myapp.topic.emergency-low",
            "com.myapp.topic.emergency.category.severe",
            "com.myapp.topic.emergency",
        ] {
            assert_eq!(ids(&t, uri), [1], "{uri}");
            assert_eq!(best(&t, uri), Some(1), "{uri}");
        }
        for uri in [
            "com.myapp.topic.emerge",
            "com.myapp",
            "org.myapp.topic.emergency",
        ] {
            assert!(ids(&t, uri).is_empty(), "{uri}");
            assert_eq!(best(&t, uri), None);
        }
    }

    #[test]
    fn spec_prefix_registration() {
        let mut t = UriTrie::new();
        t.insert(Prefix, "com.myapp.myobject1", 1);
        for uri in [
            "com.myapp.myobject1.myprocedure1",
            "com.myapp.myobject1-mysubobject1",
            "com.myapp.myobject1.mysubobject1.myprocedure1",
            "com.myapp.myobject1",
        ] {
            assert_eq!(best(&t, uri), Some(1), "{uri}");
        }
        for uri in ["com.myapp.myobject2", "com.myapp.myobject"] {
            assert_eq!(best(&t, uri), None, "{uri}");
        }
    }

    #[test]
    fn prefix_trailing_dot_and_empty() {
        let mut t = UriTrie::new();
        t.insert(Prefix, "com.myapp.", 1);
        t.insert(Prefix, "", 2);
        t.insert(Prefix, "com.my", 3);
        assert_eq!(ids(&t, "com.myapp.x"), [1, 2, 3]);
        assert_eq!(ids(&t, "com.myapp"), [2, 3]);
        assert_eq!(ids(&t, "com.myapp2.x"), [2, 3]);
        assert_eq!(ids(&t, "org"), [2]);
        assert_eq!(best(&t, "com.myapp.x"), Some(1));
        assert_eq!(best(&t, "com.myapp"), Some(3));
        assert_eq!(best(&t, "org"), Some(2));
    }

    #[test]
    fn spec_wildcard_subscription() {
        let mut t = UriTrie::new();
        t.insert(Wildcard, "com.myapp..userevent", 1);
        for uri in [
            "com.myapp.foo.userevent",
            "com.myapp.bar.userevent",
            "com.myapp.a12.userevent",
        ] {
            assert_eq!(ids(&t, uri), [1], "{uri}");
        }
        for uri in [
            "com.myapp.foo.userevent.bar",
            "com.myapp.foo.user",
            "com.myapp2.foo.userevent",
        ] {
            assert!(ids(&t, uri).is_empty(), "{uri}");
        }
    }

    #[test]
    fn spec_wildcard_registration() {
        let mut t = UriTrie::new();
        t.insert(Wildcard, "com.myapp..myprocedure1", 1);
        for uri in [
            "com.myapp.myobject1.myprocedure1",
            "com.myapp.myobject2.myprocedure1",
        ] {
            assert_eq!(best(&t, uri), Some(1), "{uri}");
        }
        for uri in [
            "com.myapp.myobject1.myprocedure1.mysubprocedure1",
            "com.myapp.myobject1.myprocedure2",
            "com.myapp2.myobject1.myprocedure1",
        ] {
            assert_eq!(best(&t, uri), None, "{uri}");
        }
    }

    #[test]
    fn wildcard_empty_components_and_counts() {
        let mut t = UriTrie::new();
        t.insert(Wildcard, ".b.c", 1);
        t.insert(Wildcard, "a..c", 2);
        t.insert(Wildcard, "a.b.", 3);
        t.insert(Wildcard, "..", 4);
        t.insert(Wildcard, "", 5);
        t.insert(Wildcard, "a.b.c", 6);
        assert_eq!(ids(&t, "a.b.c"), [1, 2, 3, 4, 6]);
        assert_eq!(ids(&t, "x.b.c"), [1, 4]);
        assert_eq!(ids(&t, "a.x.c"), [2, 4]);
        assert_eq!(ids(&t, "a.b.x"), [3, 4]);
        assert_eq!(ids(&t, "x.y.z"), [4]);
        assert_eq!(ids(&t, "anything"), [5]);
        // Component counts must be equal.
        assert!(ids(&t, "a.b").is_empty());
        assert!(ids(&t, "a.b.c.d").is_empty());
        assert_eq!(best(&t, "a.b.c"), Some(6));
        assert_eq!(best(&t, "a.b.x"), Some(3));
        assert_eq!(best(&t, "a.x.c"), Some(2));
        assert_eq!(best(&t, "x.b.c"), Some(1));
        assert_eq!(best(&t, "x.y.z"), Some(4));
        assert_eq!(best(&t, "a.b"), None);
    }

    #[test]
    fn spec_dealer_precedence() {
        let mut t = UriTrie::new();
        t.insert(Exact, "a1.b2.c3.d4.e55", 1);
        t.insert(Prefix, "a1.b2.c3", 2);
        t.insert(Prefix, "a1.b2.c3.d4", 3);
        t.insert(Wildcard, "a1.b2..d4.e5", 4);
        t.insert(Wildcard, "a1.b2.c33..e5", 5);
        t.insert(Wildcard, "a1.b2..d4.e5..g7", 6);
        t.insert(Wildcard, "a1.b2..d4..f6.g7", 7);
        assert_eq!(best(&t, "a1.b2.c3.d4.e55"), Some(1));
        assert_eq!(best(&t, "a1.b2.c3.d98.e74"), Some(2));
        assert_eq!(best(&t, "a1.b2.c3.d4.e325"), Some(3));
        assert_eq!(best(&t, "a1.b2.c55.d4.e5"), Some(4));
        assert_eq!(best(&t, "a1.b2.c88.d4.e5.f6.g7"), Some(6));
        assert_eq!(best(&t, "a2.b2.c2.d2.e2"), None);
        // The spec's example says `a1.b2.c33.d4.e5` has "no prefix match",
        // which contradicts its own definition of prefix matching as a
        // string prefix (`...myobject1` matches `...myobject1-mysubobject1`):
        // `a1.b2.c3` is a string prefix of it. The definition wins here.
        assert_eq!(best(&t, "a1.b2.c33.d4.e5"), Some(2));
        t.remove(Prefix, "a1.b2.c3");
        assert_eq!(best(&t, "a1.b2.c33.d4.e5"), Some(5));
        // The other example from the rule text.
        let mut t = UriTrie::new();
        t.insert(Wildcard, "a1...d4", 1);
        t.insert(Wildcard, "a1.b2..d4", 2);
        assert_eq!(best(&t, "a1.b2.c3.d4"), Some(2));
        // Broker sees all of them.
        let mut t2 = UriTrie::new();
        t2.insert(Exact, "a1.b2.c3.d4.e5", 1);
        t2.insert(Prefix, "a1.b2.c3", 2);
        t2.insert(Prefix, "a1.b2.c3.d4", 3);
        t2.insert(Wildcard, "a1.b2..d4.e5", 4);
        t2.insert(Wildcard, "a1...d4.", 5);
        assert_eq!(ids(&t2, "a1.b2.c3.d4.e5"), [1, 2, 3, 4, 5]);
        let (p, pat, _) = t2.best_match("a1.b2.c3.d4.e5").unwrap();
        assert_eq!((p, pat), (Exact, "a1.b2.c3.d4.e5"));
        let m = matches(&t2, "a1.b2.c3.d4.e5");
        assert!(m.contains(&(Wildcard, "a1...d4.".to_string(), 5)));
    }

    #[test]
    fn policies_are_separate_namespaces() {
        let mut t = UriTrie::new();
        assert_eq!(t.insert(Exact, "a.b", 1), None);
        assert_eq!(t.insert(Prefix, "a.b", 2), None);
        assert_eq!(t.insert(Wildcard, "a.b", 3), None);
        assert_eq!(t.len(), 3);
        assert_eq!(ids(&t, "a.b"), [1, 2, 3]);
        assert_eq!(t.get(Exact, "a.b"), Some(&1));
        assert_eq!(t.get(Prefix, "a.b"), Some(&2));
        assert_eq!(t.get(Wildcard, "a.b"), Some(&3));
        assert_eq!(t.remove(Exact, "a.b"), Some(1));
        assert_eq!(best(&t, "a.b"), Some(2));
        assert_eq!(t.remove(Prefix, "a.b"), Some(2));
        assert_eq!(best(&t, "a.b"), Some(3));
        assert_eq!(t.remove(Wildcard, "a.b"), Some(3));
        assert!(t.is_empty());
        assert_eq!(t.node_count(), 0);
    }

    #[test]
    fn insert_replace_get_remove() {
        let mut t = UriTrie::new();
        for p in [Exact, Prefix, Wildcard] {
            assert_eq!(t.insert(p, "x.y", 1), None);
            assert_eq!(t.insert(p, "x.y", 2), Some(1));
            *t.get_mut(p, "x.y").unwrap() += 10;
            assert_eq!(t.get(p, "x.y"), Some(&12));
            assert_eq!(t.get(p, "x"), None);
            assert_eq!(t.get(p, "x.y.z"), None);
            assert_eq!(t.get_mut(p, "x.yy"), None);
            assert_eq!(t.remove(p, "x"), None);
            assert_eq!(t.remove(p, "x.y.z"), None);
        }
        assert_eq!(t.len(), 3);
        // Prefix: intermediate (split) nodes without entries are not entries.
        t.insert(Prefix, "x.yab", 5);
        t.insert(Prefix, "x.yac", 6);
        assert_eq!(t.get(Prefix, "x.ya"), None);
        assert_eq!(t.remove(Prefix, "x.ya"), None);
        // Wildcard: intermediate nodes are not entries either.
        t.insert(Wildcard, "x.y..w", 7);
        assert_eq!(t.get(Wildcard, "x.y."), None);
        let mut all: Vec<_> = t
            .iter()
            .map(|(p, s, &v)| (p.as_str(), s.to_string(), v))
            .collect();
        all.sort();
        assert_eq!(
            all,
            [
                ("exact", "x.y".to_string(), 12),
                ("prefix", "x.y".to_string(), 12),
                ("prefix", "x.yab".to_string(), 5),
                ("prefix", "x.yac".to_string(), 6),
                ("wildcard", "x.y".to_string(), 12),
                ("wildcard", "x.y..w".to_string(), 7),
            ]
        );
        for (p, s) in [
            (Exact, "x.y"),
            (Prefix, "x.y"),
            (Prefix, "x.yab"),
            (Prefix, "x.yac"),
            (Wildcard, "x.y"),
            (Wildcard, "x.y..w"),
        ] {
            assert!(t.remove(p, s).is_some());
            assert!(t.remove(p, s).is_none());
        }
        assert!(t.is_empty());
        assert_eq!(t.node_count(), 0);
        assert_eq!(t.iter().count(), 0);
    }

    // ------------------------------------------------ randomized checks ---

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    const COMPS: [&str; 6] = ["a", "b", "ab", "c", "abc", "b2"];

    fn rand_uri(r: &mut Rng) -> String {
        let n = 1 + r.below(5);
        (0..n)
            .map(|_| COMPS[r.below(COMPS.len())])
            .collect::<Vec<_>>()
            .join(".")
    }

    fn rand_pattern(r: &mut Rng) -> (MatchPolicy, String) {
        match r.below(3) {
            0 => (Exact, rand_uri(r)),
            1 => {
                // A string prefix of a URI, possibly cut mid-component or
                // right after a dot.
                let u = rand_uri(r);
                let cut = r.below(u.len() + 1);
                (Prefix, u[..cut].to_string())
            }
            _ => {
                let n = 1 + r.below(5);
                let s = (0..n)
                    .map(|_| {
                        if r.below(3) == 0 {
                            ""
                        } else {
                            COMPS[r.below(COMPS.len())]
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(".");
                (Wildcard, s)
            }
        }
    }

    fn naive_matches(p: MatchPolicy, pat: &str, uri: &str) -> bool {
        match p {
            Exact => pat == uri,
            Prefix => uri.starts_with(pat),
            Wildcard => {
                let a: Vec<&str> = pat.split('.').collect();
                let b: Vec<&str> = uri.split('.').collect();
                a.len() == b.len() && a.iter().zip(&b).all(|(x, y)| x.is_empty() || x == y)
            }
        }
    }

    /// The spec's ranking, literally: lengths of the literal runs delimited
    /// by wildcards, compared left to right.
    fn portions(pat: &str) -> Vec<usize> {
        let mut v = vec![0];
        for c in pat.split('.') {
            if c.is_empty() {
                v.push(0);
            } else {
                *v.last_mut().unwrap() += 1;
            }
        }
        v
    }

    fn naive_best<'a>(
        entries: &'a [(MatchPolicy, String, u32)],
        uri: &str,
    ) -> Option<&'a (MatchPolicy, String, u32)> {
        let m: Vec<_> = entries
            .iter()
            .filter(|e| naive_matches(e.0, &e.1, uri))
            .collect();
        if let Some(e) = m.iter().find(|e| e.0 == Exact) {
            return Some(e);
        }
        if let Some(e) = m.iter().filter(|e| e.0 == Prefix).max_by_key(|e| e.1.len()) {
            return Some(e);
        }
        m.into_iter()
            .filter(|e| e.0 == Wildcard)
            .max_by(|a, b| portions(&a.1).cmp(&portions(&b.1)))
    }

    #[test]
    fn randomized_against_naive() {
        let mut r = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..4 {
            let mut t = UriTrie::new();
            let mut entries: Vec<(MatchPolicy, String, u32)> = Vec::new();
            // Churn: mostly inserts, some removals and replacements.
            for i in 0..3000u32 {
                if !entries.is_empty() && r.below(4) == 0 {
                    let k = r.below(entries.len());
                    let (p, s, v) = entries.swap_remove(k);
                    assert_eq!(t.remove(p, &s), Some(v));
                    continue;
                }
                let (p, s) = rand_pattern(&mut r);
                let old = entries.iter().position(|e| e.0 == p && e.1 == s);
                let got = t.insert(p, &s, i);
                match old {
                    Some(k) => {
                        assert_eq!(got, Some(entries[k].2));
                        entries[k].2 = i;
                    }
                    None => {
                        assert_eq!(got, None);
                        entries.push((p, s, i));
                    }
                }
            }
            assert_eq!(t.len(), entries.len());
            for e in &entries {
                assert_eq!(t.get(e.0, &e.1), Some(&e.2));
            }
            for _ in 0..2000 {
                let uri = rand_uri(&mut r);
                let mut want: Vec<_> = entries
                    .iter()
                    .filter(|e| naive_matches(e.0, &e.1, &uri))
                    .map(|e| (e.0, e.1.clone(), e.2))
                    .collect();
                want.sort_by(|a, b| (a.0.as_str(), &a.1).cmp(&(b.0.as_str(), &b.1)));
                assert_eq!(matches(&t, &uri), want, "round {round} uri {uri}");
                let want_best = naive_best(&entries, &uri).map(|e| (e.0, e.1.as_str(), &e.2));
                assert_eq!(t.best_match(&uri), want_best, "round {round} uri {uri}");
            }
            for (p, s, v) in entries.drain(..) {
                assert_eq!(t.remove(p, &s), Some(v));
            }
            assert!(t.is_empty());
            assert_eq!(t.node_count(), 0);
        }
    }

    #[test]
    fn ten_thousand_inserts_then_removes_prune_to_zero() {
        let mut r = Rng(12345);
        let mut t = UriTrie::new();
        let mut keys = Vec::new();
        for i in 0..10_000u32 {
            let (p, s) = rand_pattern(&mut r);
            // Longer, more varied components than the matching test.
            let s = format!("{s}{}", if p == Wildcard { "" } else { "x" })
                + &format!(".{}", r.below(500));
            if t.insert(p, &s, i).is_none() {
                keys.push((p, s));
            }
        }
        assert!(t.node_count() > 0);
        // Remove in a shuffled order.
        for i in (1..keys.len()).rev() {
            keys.swap(i, r.below(i + 1));
        }
        for (p, s) in &keys {
            assert!(t.remove(*p, s).is_some());
        }
        assert!(t.is_empty());
        assert_eq!(t.node_count(), 0);
        // Arena slots are reused after churn rather than growing.
        let cap = (t.prefix.nodes.len(), t.wild.nodes.len());
        for (i, (p, s)) in keys.iter().enumerate() {
            t.insert(*p, s, i as u32);
        }
        assert_eq!((t.prefix.nodes.len(), t.wild.nodes.len()), cap);
    }

    #[test]
    fn long_uris_spill_without_breaking() {
        let mut t = UriTrie::new();
        let long: Vec<String> = (0..80).map(|i| format!("c{i}")).collect();
        let uri = long.join(".");
        let mut pat = long.clone();
        pat[3] = String::new();
        pat[70] = String::new();
        t.insert(Wildcard, &pat.join("."), 1);
        t.insert(Wildcard, &long[..70].join("."), 2);
        t.insert(Prefix, &long[..50].join("."), 3);
        assert_eq!(ids(&t, &uri), [1, 3]);
        assert_eq!(best(&t, &uri), Some(3));
        t.remove(Prefix, &long[..50].join("."));
        assert_eq!(best(&t, &uri), Some(1));
    }
}
