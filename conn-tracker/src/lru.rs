//! An intrusive doubly linked recency list over slab indices: O(1) touch,
//! insert, remove and "least recently used". It stores only links; the slab
//! (in `table.rs`) stores the connections under the same indices.

const NIL: u32 = u32::MAX;

#[derive(Clone, Copy, Debug)]
struct Links {
    prev: u32,
    next: u32,
    linked: bool,
}

const UNLINKED: Links = Links {
    prev: NIL,
    next: NIL,
    linked: false,
};

/// Front = most recently used, back = least recently used.
#[derive(Debug, Default)]
pub(crate) struct Lru {
    links: Vec<Links>,
    head: Option<u32>,
    tail: Option<u32>,
}

// === impl Lru ===

impl Lru {
    fn link_mut(&mut self, i: u32) -> &mut Links {
        let idx = i as usize;
        if idx >= self.links.len() {
            self.links.resize(idx + 1, UNLINKED);
        }
        &mut self.links[idx]
    }

    fn get(&self, i: u32) -> Links {
        self.links.get(i as usize).copied().unwrap_or(UNLINKED)
    }

    /// Links `i` at the front; a no-op on the list shape if it is already linked
    /// (it is moved to the front instead).
    pub(crate) fn push_front(&mut self, i: u32) {
        if self.get(i).linked {
            self.remove(i);
        }
        let old_head = self.head;
        *self.link_mut(i) = Links {
            prev: NIL,
            next: old_head.unwrap_or(NIL),
            linked: true,
        };
        match old_head {
            Some(h) => self.link_mut(h).prev = i,
            None => self.tail = Some(i),
        }
        self.head = Some(i);
    }

    /// Unlinks `i`; a no-op if it is not linked.
    pub(crate) fn remove(&mut self, i: u32) {
        let l = self.get(i);
        if !l.linked {
            return;
        }
        if l.prev == NIL {
            self.head = (l.next != NIL).then_some(l.next);
        } else {
            self.link_mut(l.prev).next = l.next;
        }
        if l.next == NIL {
            self.tail = (l.prev != NIL).then_some(l.prev);
        } else {
            self.link_mut(l.next).prev = l.prev;
        }
        *self.link_mut(i) = UNLINKED;
    }

    /// Marks `i` most recently used.
    pub(crate) fn touch(&mut self, i: u32) {
        if self.head != Some(i) {
            self.push_front(i);
        }
    }

    /// The least recently used index.
    pub(crate) fn back(&self) -> Option<u32> {
        self.tail
    }

    /// The index used just more recently than `i` (towards the front).
    pub(crate) fn newer(&self, i: u32) -> Option<u32> {
        let l = self.get(i);
        (l.linked && l.prev != NIL).then_some(l.prev)
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.links.capacity() * std::mem::size_of::<Links>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(l: &Lru) -> Vec<u32> {
        let mut v = Vec::new();
        let mut cur = l.back();
        while let Some(i) = cur {
            v.push(i);
            cur = l.newer(i);
            assert!(v.len() < 100, "cycle");
        }
        v
    }

    #[test]
    fn touch_moves_to_front_and_back_is_oldest() {
        let mut l = Lru::default();
        for i in 0..4 {
            l.push_front(i);
        }
        assert_eq!(order(&l), vec![0, 1, 2, 3]);
        l.touch(1);
        assert_eq!(order(&l), vec![0, 2, 3, 1]);
        l.touch(1);
        assert_eq!(order(&l), vec![0, 2, 3, 1]);
        l.remove(0);
        assert_eq!(order(&l), vec![2, 3, 1]);
        l.remove(1);
        assert_eq!(order(&l), vec![2, 3]);
        l.remove(1);
        l.remove(3);
        l.remove(2);
        assert_eq!(order(&l), Vec::<u32>::new());
        assert_eq!(l.back(), None);
        l.push_front(7);
        assert_eq!(order(&l), vec![7]);
    }
}
