//! RFC 5256 §4 THREAD: ORDEREDSUBJECT and REFERENCES.

use std::collections::HashMap;

use postkeep_message::MessageSummary;
use postkeep_store::EntryRecord;

use crate::fold::fold;

/// RFC 5256 §4 threading algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadAlgorithm {
    OrderedSubject,
    References,
}

/// One node of a thread tree. `item` is an index into the searched items, or `None` for a
/// dummy standing in for a missing parent (RFC 5256 REFERENCES keeps one at the top level when
/// it joins several messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadNode {
    pub item: Option<usize>,
    pub children: Vec<ThreadNode>,
}

/// Trees are cut at this depth: deeper messages become children of their ancestor at this
/// depth, in thread order, so a hostile chain of replies cannot overflow the stack of whoever
/// walks (or drops) the tree. Real threads are far shallower.
pub const MAX_THREAD_DEPTH: usize = 500;

/// References kept per message, the nearest ones: a References field of thousands of ids is
/// hostile, and the algorithm already copes with truncated ones (RFC 5256 §4 step 1.C).
const MAX_REFERENCES: usize = 256;

/// What threading needs of one message.
pub(crate) struct ThreadMessage {
    item: usize,
    message_id: Option<String>,
    /// References, oldest first, or else the first In-Reply-To id (RFC 5256 §4 step 1.B).
    parents: Vec<String>,
    /// RFC 5256 §2.2 sent date, then sequence order to break ties.
    date: (i64, usize),
    /// Folded RFC 5256 §2.1 base subject.
    subject: String,
    /// RFC 5256 §2.1: extracting the base subject removed a reply or forward marker.
    reply: bool,
}

impl ThreadMessage {
    pub(crate) fn new(item: usize, entry: &EntryRecord, summary: MessageSummary) -> Self {
        let reply = summary
            .subject
            .as_deref()
            .is_some_and(|s| is_reply_or_forward(s, &summary.thread_subject));
        let mut parents = if summary.references.is_empty() {
            summary.in_reply_to.into_iter().take(1).collect()
        } else {
            summary.references
        };
        if parents.len() > MAX_REFERENCES {
            parents.drain(..parents.len() - MAX_REFERENCES);
        }
        Self {
            item,
            message_id: summary.message_id,
            parents,
            date: (
                summary.sent_date.unwrap_or(entry.record.internal_date),
                item,
            ),
            subject: fold(&summary.thread_subject),
            reply,
        }
    }
}

/// RFC 5256 §2.1 says a subject is a reply or forward when base-subject extraction removes a
/// subj-refwd ("Re:", "Fwd:"), a "(fwd)" trailer or a "[fwd: ...]" wrapper. Extraction
/// otherwise only removes whitespace and subj-blobs, so it removed a marker exactly when
/// removing just those does not reach the same base subject.
fn is_reply_or_forward(subject: &str, base: &str) -> bool {
    strip_blobs(subject) != base
}

/// The subject with whitespace collapsed and trimmed and leading subj-blobs removed (each only
/// if text remains after it), as base-subject extraction would without any marker.
fn strip_blobs(subject: &str) -> String {
    let collapsed = subject
        .split([' ', '\t', '\r', '\n'])
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let mut rest = collapsed.as_str();
    while let Some(after) = rest.strip_prefix('[').and_then(|inner| {
        let close = inner.find(['[', ']'])?;
        inner[close..].strip_prefix(']')
    }) {
        let after = after.trim_start_matches(' ');
        if after.is_empty() {
            break;
        }
        rest = after;
    }
    rest.to_string()
}

/// RFC 5256 §4 ORDEREDSUBJECT: messages grouped by base subject, each group under its earliest
/// message, the groups in the order of their first message's sent date.
pub(crate) fn ordered_subject(mut messages: Vec<ThreadMessage>) -> Vec<ThreadNode> {
    messages.sort_by(|a, b| a.subject.cmp(&b.subject).then(a.date.cmp(&b.date)));
    let mut threads: Vec<((i64, usize), ThreadNode)> = Vec::new();
    let mut previous: Option<&str> = None;
    for message in &messages {
        let leaf = ThreadNode {
            item: Some(message.item),
            children: Vec::new(),
        };
        match threads.last_mut() {
            Some((_, top)) if previous == Some(message.subject.as_str()) => top.children.push(leaf),
            _ => threads.push((message.date, leaf)),
        }
        previous = Some(&message.subject);
    }
    threads.sort_by_key(|(date, _)| *date);
    threads.into_iter().map(|(_, node)| node).collect()
}

/// RFC 5256 §4 REFERENCES.
pub(crate) fn references(messages: Vec<ThreadMessage>) -> Vec<ThreadNode> {
    let mut arena = Arena::new(messages);
    arena.link_references();
    arena.gather_roots();
    arena.prune();
    arena.sort_roots();
    arena.merge_subjects();
    arena.sort_all();
    arena.into_nodes()
}

#[derive(Default)]
struct Container {
    /// Position in `Arena::messages`; `None` for a dummy.
    message: Option<usize>,
    parent: Option<usize>,
    children: Vec<usize>,
}

/// Containers by index; index 0 is the root the algorithm gathers threads under.
struct Arena {
    messages: Vec<ThreadMessage>,
    nodes: Vec<Container>,
}

const ROOT: usize = 0;

impl Arena {
    fn new(mut messages: Vec<ThreadMessage>) -> Self {
        // Step 1.A gives a duplicated Message-ID to the lowest sequence number.
        messages.sort_by_key(|m| m.item);
        Self {
            messages,
            nodes: vec![Container::default()],
        }
    }

    fn add(&mut self, message: Option<usize>) -> usize {
        self.nodes.push(Container {
            message,
            ..Container::default()
        });
        self.nodes.len() - 1
    }

    fn is_dummy(&self, node: usize) -> bool {
        self.nodes[node].message.is_none()
    }

    /// True if making `child` a child of `parent` would close a loop.
    fn would_loop(&self, parent: usize, child: usize) -> bool {
        let mut at = Some(parent);
        while let Some(node) = at {
            if node == child {
                return true;
            }
            at = self.nodes[node].parent;
        }
        false
    }

    fn link(&mut self, parent: usize, child: usize) {
        self.nodes[child].parent = Some(parent);
        self.nodes[parent].children.push(child);
    }

    fn unlink(&mut self, child: usize) {
        if let Some(parent) = self.nodes[child].parent.take() {
            self.nodes[parent].children.retain(|&c| c != child);
        }
    }

    /// Step 1: parent/child links from Message-ID, References and In-Reply-To.
    fn link_references(&mut self) {
        let mut ids: HashMap<String, usize> = HashMap::new();
        for position in 0..self.messages.len() {
            // (A) A message without an id, or with one an earlier message has, gets a container
            // of its own.
            let node = match self.messages[position].message_id.clone() {
                Some(id) => match ids.get(&id) {
                    Some(&dummy) if self.is_dummy(dummy) => {
                        self.nodes[dummy].message = Some(position);
                        dummy
                    }
                    Some(_) => self.add(Some(position)),
                    None => {
                        let node = self.add(Some(position));
                        ids.insert(id, node);
                        node
                    }
                },
                None => self.add(Some(position)),
            };
            // (B) Chain the references, keeping links that exist and refusing loops.
            let parents = self.messages[position].parents.clone();
            let mut chain = Vec::with_capacity(parents.len());
            for id in parents {
                let node = match ids.get(&id) {
                    Some(&node) => node,
                    None => {
                        let dummy = self.add(None);
                        ids.insert(id, dummy);
                        dummy
                    }
                };
                chain.push(node);
            }
            for pair in chain.windows(2) {
                let (parent, child) = (pair[0], pair[1]);
                if self.nodes[child].parent.is_none() && !self.would_loop(parent, child) {
                    self.link(parent, child);
                }
            }
            // (C) The message's own last reference is its parent, replacing any link a
            // truncated References field elsewhere made; no reference, no parent.
            self.unlink(node);
            if let Some(&parent) = chain.last() {
                if !self.would_loop(parent, node) {
                    self.link(parent, node);
                }
            }
        }
    }

    /// Step 2: every container without a parent goes under the root.
    fn gather_roots(&mut self) {
        for node in 1..self.nodes.len() {
            if self.nodes[node].parent.is_none() {
                self.link(ROOT, node);
            }
        }
    }

    /// Containers under `top`, each after all of its descendants.
    fn post_order(&self, top: usize) -> Vec<usize> {
        let mut order = Vec::new();
        let mut stack = vec![(top, false)];
        while let Some((node, expanded)) = stack.pop() {
            if expanded {
                order.push(node);
            } else {
                stack.push((node, true));
                stack.extend(self.nodes[node].children.iter().map(|&c| (c, false)));
            }
        }
        order
    }

    /// Step 3: dummies without children go; a dummy's children take its place, except that
    /// several children stay under their dummy at the top level.
    fn prune(&mut self) {
        for node in self.post_order(ROOT) {
            let children = std::mem::take(&mut self.nodes[node].children);
            let mut kept = Vec::with_capacity(children.len());
            for child in children {
                let grandchildren = self.nodes[child].children.len();
                if !self.is_dummy(child) || (node == ROOT && grandchildren > 1) {
                    kept.push(child);
                } else {
                    let promoted = std::mem::take(&mut self.nodes[child].children);
                    for &p in &promoted {
                        self.nodes[p].parent = Some(node);
                    }
                    kept.extend(promoted);
                }
            }
            self.nodes[node].children = kept;
        }
    }

    /// The sent date a container sorts by: its message's, or a dummy's first child's.
    fn date(&self, mut node: usize) -> (i64, usize) {
        loop {
            if let Some(position) = self.nodes[node].message {
                return self.messages[position].date;
            }
            match self.nodes[node].children.first() {
                Some(&first) => node = first,
                None => return (i64::MIN, 0),
            }
        }
    }

    fn sort_children(&mut self, node: usize) {
        let mut children = std::mem::take(&mut self.nodes[node].children);
        children.sort_by_key(|&c| self.date(c));
        self.nodes[node].children = children;
    }

    /// Step 4: the top level by sent date, a dummy by its earliest child.
    fn sort_roots(&mut self) {
        for top in self.nodes[ROOT].children.clone() {
            if self.is_dummy(top) {
                self.sort_children(top);
            }
        }
        self.sort_children(ROOT);
    }

    /// The base subject of a top-level container: its message's, or a dummy's first child's.
    fn thread_subject(&self, node: usize) -> Option<String> {
        let message = match self.nodes[node].message {
            Some(position) => position,
            None => self.nodes[*self.nodes[node].children.first()?].message?,
        };
        let subject = &self.messages[message].subject;
        (!subject.is_empty()).then(|| subject.clone())
    }

    fn is_reply(&self, node: usize) -> bool {
        self.nodes[node]
            .message
            .is_some_and(|position| self.messages[position].reply)
    }

    /// Step 5: top-level threads with the same base subject are merged.
    fn merge_subjects(&mut self) {
        let mut slots: Vec<Option<usize>> = self.nodes[ROOT]
            .children
            .iter()
            .copied()
            .map(Some)
            .collect();
        let subjects: Vec<Option<String>> = self.nodes[ROOT]
            .children
            .iter()
            .map(|&top| self.thread_subject(top))
            .collect();
        // (B) One top-level slot per subject: a dummy if any, else preferably not a reply.
        let mut table: HashMap<&str, usize> = HashMap::new();
        for (slot, subject) in subjects.iter().enumerate() {
            let (Some(subject), Some(top)) = (subject.as_deref(), slots[slot]) else {
                continue;
            };
            match table.get(subject).and_then(|&held| slots[held]) {
                Some(held)
                    if self.is_dummy(held)
                        || !(self.is_dummy(top)
                            || (self.is_reply(held) && !self.is_reply(top))) => {}
                _ => {
                    table.insert(subject, slot);
                }
            }
        }
        // (C) Merge every other thread with that subject into the table's.
        for slot in 0..slots.len() {
            let (Some(current), Some(subject)) = (slots[slot], subjects[slot].as_deref()) else {
                continue;
            };
            let Some(&held_slot) = table.get(subject) else {
                continue;
            };
            let Some(held) = slots[held_slot] else {
                continue;
            };
            if held_slot == slot {
                continue;
            }
            slots[slot] = None;
            if self.is_dummy(held) && self.is_dummy(current) {
                for child in std::mem::take(&mut self.nodes[current].children) {
                    self.link(held, child);
                }
            } else if self.is_dummy(held) || (self.is_reply(current) && !self.is_reply(held)) {
                self.link(held, current);
            } else {
                let dummy = self.add(None);
                self.link(dummy, held);
                self.link(dummy, current);
                slots[held_slot] = Some(dummy);
            }
        }
        self.nodes[ROOT].children = slots.into_iter().flatten().collect();
        for top in self.nodes[ROOT].children.clone() {
            self.nodes[top].parent = Some(ROOT);
        }
    }

    /// Step 6: every set of siblings by sent date, deepest first.
    fn sort_all(&mut self) {
        for node in self.post_order(ROOT) {
            self.sort_children(node);
        }
    }

    fn into_nodes(self) -> Vec<ThreadNode> {
        self.nodes_of(&self.nodes[ROOT].children, 1)
    }

    fn nodes_of(&self, list: &[usize], depth: usize) -> Vec<ThreadNode> {
        list.iter()
            .map(|&node| ThreadNode {
                item: self.item(node),
                children: if depth < MAX_THREAD_DEPTH {
                    self.nodes_of(&self.nodes[node].children, depth + 1)
                } else {
                    self.flat_descendants(node)
                },
            })
            .collect()
    }

    fn item(&self, node: usize) -> Option<usize> {
        self.nodes[node].message.map(|p| self.messages[p].item)
    }

    /// Every message below `node`, in thread order, as leaves.
    fn flat_descendants(&self, node: usize) -> Vec<ThreadNode> {
        let mut out = Vec::new();
        let mut stack: Vec<usize> = self.nodes[node].children.iter().rev().copied().collect();
        while let Some(next) = stack.pop() {
            if let Some(item) = self.item(next) {
                out.push(ThreadNode {
                    item: Some(item),
                    children: Vec::new(),
                });
            }
            stack.extend(self.nodes[next].children.iter().rev());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message at sequence index `item` sent at `item`'s date unless given.
    fn msg(item: usize, id: Option<&str>, refs: &[&str], subject: &str) -> ThreadMessage {
        let base = postkeep_message::base_subject(subject);
        ThreadMessage {
            item,
            message_id: id.map(str::to_string),
            parents: refs.iter().map(|r| r.to_string()).collect(),
            date: (i64::try_from(item).unwrap() * 100, item),
            reply: is_reply_or_forward(subject, &base),
            subject: fold(&base),
        }
    }

    fn leaf(item: usize) -> ThreadNode {
        ThreadNode {
            item: Some(item),
            children: Vec::new(),
        }
    }

    fn node(item: Option<usize>, children: Vec<ThreadNode>) -> ThreadNode {
        ThreadNode { item, children }
    }

    #[test]
    fn reply_or_forward_is_what_extraction_removed_besides_blobs() {
        let reply = |s: &str| is_reply_or_forward(s, &postkeep_message::base_subject(s));
        assert!(reply("Re: hello"));
        assert!(reply("[list] Fwd: hello"));
        assert!(reply("hello (fwd)"));
        assert!(reply("[Fwd: hello]"));
        assert!(!reply("hello"));
        assert!(!reply("[list]  hello  "));
        assert!(!reply("[PATCH]"));
        assert!(!reply("Report: numbers"));
    }

    #[test]
    fn references_links_through_missing_parents_and_merges_subjects() {
        let messages = vec![
            msg(0, Some("a"), &[], "Hello"),
            msg(1, Some("b"), &["a"], "Re: Hello"),
            // The parent "x" is not in the mailbox: the dummy is pruned, 2 goes under 0.
            msg(2, Some("c"), &["a", "x"], "Re: Hello"),
            // Two replies to a missing "y": a dummy keeps them together at the top.
            msg(3, Some("d"), &["y"], "Other"),
            msg(4, Some("e"), &["y"], "Re: Other"),
            // No references, but a reply to "Hello": merged under message 0 (step 5).
            msg(5, None, &[], "RE: hello"),
            // Two unrelated non-replies with one subject: joined under a new dummy.
            msg(6, Some("f"), &[], "Lunch"),
            msg(7, Some("g"), &[], "[team] lunch"),
            // An empty subject is never merged.
            msg(8, None, &[], ""),
        ];
        let threads = references(messages);
        assert_eq!(
            threads,
            vec![
                node(Some(0), vec![leaf(1), leaf(2), leaf(5)]),
                node(None, vec![leaf(3), leaf(4)]),
                node(None, vec![leaf(6), leaf(7)]),
                leaf(8),
            ]
        );
    }

    #[test]
    fn references_sorts_siblings_and_threads_by_sent_date() {
        let mut late_root = msg(0, Some("a"), &[], "one");
        late_root.date = (5000, 0);
        let mut early_reply = msg(1, Some("b"), &["a"], "Re: one");
        early_reply.date = (3000, 1);
        let mut earlier_reply = msg(2, Some("c"), &["a"], "Re: one");
        earlier_reply.date = (1000, 2);
        let mut tied = msg(3, Some("d"), &[], "two");
        tied.date = (5000, 3);
        let threads = references(vec![tied, early_reply, late_root, earlier_reply]);
        // Same date: sequence order decides (RFC 5256 §2.2).
        assert_eq!(
            threads,
            vec![node(Some(0), vec![leaf(2), leaf(1)]), leaf(3)]
        );
    }

    #[test]
    fn references_keeps_a_duplicate_id_for_the_first_message_and_refuses_loops() {
        let threads = references(vec![
            msg(0, Some("p"), &["q"], "loop one"),
            msg(1, Some("q"), &["p"], "loop two"),
            msg(2, Some("dup"), &[], "first"),
            msg(3, Some("dup"), &[], "second"),
            msg(4, Some("r"), &["dup"], "Re: first"),
        ]);
        assert_eq!(
            threads,
            vec![
                // 0 claims q as its parent; 1 (q) would make p its parent: a loop, refused.
                node(Some(1), vec![leaf(0)]),
                node(Some(2), vec![leaf(4)]),
                leaf(3),
            ]
        );
    }

    #[test]
    fn references_a_truncated_references_field_is_corrected_by_the_message_itself() {
        // 1 says c's parent is b; c itself (2) says its parent is a: step 1.C wins.
        let threads = references(vec![
            msg(0, Some("a"), &[], "s"),
            msg(1, Some("d"), &["b", "c"], "Re: s"),
            msg(2, Some("c"), &["a"], "Re: s"),
        ]);
        assert_eq!(
            threads,
            vec![node(Some(0), vec![node(Some(2), vec![leaf(1)])])]
        );
    }

    #[test]
    fn ordered_subject_groups_by_base_subject_under_the_earliest_message() {
        let mut late = msg(0, None, &[], "Re: beta");
        late.date = (900, 0);
        let threads = ordered_subject(vec![
            late,
            msg(1, None, &[], "alpha"),
            msg(2, None, &[], "BETA"),
            msg(3, None, &[], "Re: Alpha"),
            msg(4, None, &[], "gamma"),
            msg(5, None, &[], "Fwd: alpha"),
        ]);
        assert_eq!(
            threads,
            vec![
                node(Some(1), vec![leaf(3), leaf(5)]),
                node(Some(2), vec![leaf(0)]),
                leaf(4),
            ]
        );
    }

    fn depth(nodes: &[ThreadNode]) -> usize {
        nodes
            .iter()
            .map(|n| 1 + depth(&n.children))
            .max()
            .unwrap_or(0)
    }

    fn count(nodes: &[ThreadNode]) -> usize {
        nodes.iter().map(|n| 1 + count(&n.children)).sum()
    }

    #[test]
    fn a_very_long_reply_chain_is_cut_at_the_depth_limit_without_losing_messages() {
        let ids: Vec<String> = (0..3000).map(|i| format!("m{i}")).collect();
        let messages = (0..3000_usize)
            .map(|i| {
                let refs: Vec<&str> = ids[i.saturating_sub(10)..i]
                    .iter()
                    .map(String::as_str)
                    .collect();
                msg(i, Some(&ids[i]), &refs, "Re: chain")
            })
            .collect();
        let threads = references(messages);
        assert_eq!(threads.len(), 1);
        assert_eq!(depth(&threads), MAX_THREAD_DEPTH + 1);
        assert_eq!(count(&threads), 3000);
    }
}
