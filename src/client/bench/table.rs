//! The requests in flight: which slot tracks each, its id, when it was
//! sent, and when it is due to count as lost.
//!
//! An id's low bits name its slot, the high bits are a sequence number, so
//! no two requests of a run share an id and a reply finds its slot at once.
//! A reply that carries no id finds its request by order instead: the
//! oldest in flight on the socket it came to.

use std::collections::VecDeque;

/// The low bits of an id name the slot that tracks the request.
const SLOT_BITS: u32 = 24;
const SLOT_MASK: u64 = (1 << SLOT_BITS) - 1;

/// The most requests that can be in flight at once: 16,777,216 (2^24).
///
/// A slot tracks one request in flight: its id, when it was sent, and so
/// when it counts as lost. The low 24 bits of a request's id name its
/// slot, so a reply finds its slot at once; the 40 bits above count, so no
/// two requests of a run share an id. That caps the window of a closed
/// loop and, in an open loop, what may be out at once (the rate times the
/// timeout, with a margin). A run's table holds only the slots it needs.
pub const MAX_SLOTS: usize = 1 << SLOT_BITS;

/// A slot with no request in flight.
const NONE: u64 = u64::MAX;

/// One request a slot tracks.
#[derive(Clone, Copy)]
struct Slot {
    /// The id in flight, or `NONE`.
    id: u64,
    /// When it was sent, in nanoseconds since the start of the run.
    sent_ns: u64,
    /// The id before, whether a reply to it came, and whether it was
    /// measured: tells a duplicate from a late reply, and which count
    /// either belongs to.
    prev: u64,
    prev_answered: bool,
    prev_measured: bool,
    /// Whether it was sent while measuring.
    measured: bool,
    socket: u32,
}

impl Slot {
    const EMPTY: Slot = Slot {
        id: NONE,
        sent_ns: 0,
        prev: NONE,
        prev_answered: false,
        prev_measured: false,
        measured: false,
        socket: 0,
    };
}

/// What a reply's id turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Answer {
    /// The reply to a request in flight, sent while measuring, after
    /// `rtt_ns`.
    Measured { rtt_ns: u64 },
    /// The reply to a request in flight, sent during the warm-up.
    Warmup,
    /// A second reply to a request already answered (or already late);
    /// `measured` if the request was sent while measuring.
    Duplicate { measured: bool },
    /// The first reply to a request already counted lost, or one too old
    /// to tell; `measured` if the request was sent while measuring.
    Late { measured: bool },
    /// No request of this run had that id.
    Unknown,
}

/// Every slot, free or in flight.
pub(super) struct Table {
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Requests in send order, for the timeout: (slot, id, sent_ns);
    /// entries whose slot has moved on are skipped when they reach the
    /// front.
    deadlines: VecDeque<(u32, u64, u64)>,
    seq: u64,
    /// The sequence number of the first request sent while measuring:
    /// every later one was measured too.
    first_measured: u64,
    /// Requests in flight per socket.
    in_flight: Vec<usize>,
    measured_in_flight: u64,
    /// When replies are matched by order: each socket's ids in flight, in
    /// the order they left. Answered from the front, expired from the
    /// front (expiry goes in send order too), so it holds exactly the
    /// requests in flight.
    by_socket: Option<Vec<VecDeque<u64>>>,
}

impl Table {
    /// A table of `slots` for `sockets`; `in_order` when replies carry no
    /// id and are matched with [`Table::answer_oldest`].
    pub(super) fn new(slots: usize, sockets: usize, in_order: bool) -> Table {
        let slots = slots.clamp(1, MAX_SLOTS);
        Table {
            slots: vec![Slot::EMPTY; slots],
            free: (0..slots as u32).rev().collect(),
            deadlines: VecDeque::with_capacity(slots.min(1 << 20)),
            seq: 0,
            first_measured: u64::MAX,
            in_flight: vec![0; sockets],
            measured_in_flight: 0,
            by_socket: in_order.then(|| vec![VecDeque::new(); sockets]),
        }
    }

    pub(super) fn in_flight(&self, socket: usize) -> usize {
        self.in_flight[socket]
    }

    /// Requests sent while measuring and not yet answered or lost.
    pub(super) fn measured_in_flight(&self) -> u64 {
        self.measured_in_flight
    }

    /// When the oldest request in flight was sent.
    pub(super) fn oldest_sent(&self) -> Option<u64> {
        self.deadlines.front().map(|&(_, _, sent_ns)| sent_ns)
    }

    /// Takes a free slot for a new request on `socket`; returns its id, or
    /// `None` when every slot is taken. The request is not in flight until
    /// [`Table::sent`] says it left.
    pub(super) fn take(&mut self, socket: usize, now: u64, measured: bool) -> Option<u64> {
        let slot = self.free.pop()?;
        self.seq += 1;
        if measured {
            self.first_measured = self.first_measured.min(self.seq);
        }
        let id = (self.seq << SLOT_BITS) | u64::from(slot);
        let s = &mut self.slots[slot as usize];
        s.id = id;
        s.sent_ns = now;
        s.measured = measured;
        s.socket = socket as u32;
        Some(id)
    }

    /// The request `id` left: it is in flight until answered or expired.
    pub(super) fn sent(&mut self, id: u64) {
        let slot = (id & SLOT_MASK) as u32;
        let s = &self.slots[slot as usize];
        self.in_flight[s.socket as usize] += 1;
        if s.measured {
            self.measured_in_flight += 1;
        }
        self.deadlines.push_back((slot, id, s.sent_ns));
        if let Some(queues) = &mut self.by_socket {
            queues[s.socket as usize].push_back(id);
        }
    }

    /// The request `id` never left: its slot is free again.
    pub(super) fn unsent(&mut self, id: u64) {
        let slot = (id & SLOT_MASK) as u32;
        self.slots[slot as usize].id = NONE;
        self.free.push(slot);
    }

    /// Frees every request sent at or before `cutoff`; returns how many of
    /// them were sent while measuring, and how many during the warm-up.
    pub(super) fn expire(&mut self, cutoff: u64) -> (u64, u64) {
        let (mut lost, mut warmup_lost) = (0, 0);
        while let Some(&(slot, id, sent_ns)) = self.deadlines.front() {
            if sent_ns > cutoff {
                break;
            }
            self.deadlines.pop_front();
            let s = &mut self.slots[slot as usize];
            if s.id != id {
                continue;
            }
            if s.measured {
                lost += 1;
                self.measured_in_flight -= 1;
            } else {
                warmup_lost += 1;
            }
            s.prev = id;
            s.prev_answered = false;
            s.prev_measured = s.measured;
            s.id = NONE;
            self.in_flight[s.socket as usize] -= 1;
            self.free.push(slot);
            if let Some(queues) = &mut self.by_socket {
                let front = queues[s.socket as usize].pop_front();
                debug_assert_eq!(front, Some(id), "expiry out of send order");
            }
        }
        (lost, warmup_lost)
    }

    /// Matches a reply carrying `id`, arrived at `now`; frees its slot if it
    /// was in flight.
    pub(super) fn answer(&mut self, id: u64, now: u64) -> Answer {
        let slot = (id & SLOT_MASK) as usize;
        let seq = id >> SLOT_BITS;
        let Some(s) = self.slots.get_mut(slot) else {
            return Answer::Unknown;
        };
        if s.id == id {
            let answer = if s.measured {
                self.measured_in_flight -= 1;
                Answer::Measured {
                    rtt_ns: now.saturating_sub(s.sent_ns).max(1),
                }
            } else {
                Answer::Warmup
            };
            s.prev = id;
            s.prev_answered = true;
            s.prev_measured = s.measured;
            s.id = NONE;
            self.in_flight[s.socket as usize] -= 1;
            self.free.push(slot as u32);
            return answer;
        }
        if seq == 0 || seq > self.seq {
            return Answer::Unknown;
        }
        if s.prev != id {
            // The slot has moved on twice since: whether a reply came
            // before cannot be told, only whether it was measured.
            return Answer::Late {
                measured: seq >= self.first_measured,
            };
        }
        let measured = s.prev_measured;
        if s.prev_answered {
            Answer::Duplicate { measured }
        } else {
            // A second copy of this late reply is a duplicate.
            s.prev_answered = true;
            Answer::Late { measured }
        }
    }

    /// Matches a reply with no id, arrived at `now` on `socket`, to the
    /// oldest request in flight there that it `fits`. With none that it
    /// fits it is `Late`: most likely the reply to one already counted
    /// lost, and measured once measuring has begun. Only for a table made
    /// `in_order`.
    pub(super) fn answer_first(
        &mut self,
        socket: usize,
        now: u64,
        fits: impl FnMut(u64) -> bool,
    ) -> Answer {
        let found = self.by_socket.as_mut().and_then(|queues| {
            let queue = queues.get_mut(socket)?;
            let at = queue.iter().copied().position(fits)?;
            queue.remove(at)
        });
        match found {
            Some(id) => self.answer(id, now),
            None => Answer::Late {
                measured: self.first_measured != u64::MAX,
            },
        }
    }
}

/// A request's place in the run, from 1: in the order the requests were
/// taken.
pub(super) fn sequence(id: u64) -> u64 {
    id >> SLOT_BITS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fates() {
        let mut t = Table::new(2, 1, false);
        let a = t.take(0, 10, true).unwrap();
        let b = t.take(0, 20, false).unwrap();
        assert_eq!(t.take(0, 30, true), None, "every slot taken");
        t.sent(a);
        t.sent(b);
        assert_eq!((t.in_flight(0), t.measured_in_flight()), (2, 1));
        assert_eq!(t.answer(a, 15), Answer::Measured { rtt_ns: 5 });
        assert_eq!(t.answer(a, 16), Answer::Duplicate { measured: true });
        assert_eq!(t.answer(b, 25), Answer::Warmup);
        assert_eq!(t.answer(a ^ (1 << 40), 26), Answer::Unknown);
        let c = t.take(0, 40, true).unwrap();
        t.sent(c);
        assert_eq!(t.oldest_sent(), Some(10), "stale entries wait their turn");
        assert_eq!(t.expire(39), (0, 0));
        assert_eq!(t.expire(40), (1, 0));
        assert_eq!(t.answer(c, 50), Answer::Late { measured: true });
        assert_eq!(
            t.answer(c, 51),
            Answer::Duplicate { measured: true },
            "a late reply is late once"
        );
        assert_eq!((t.in_flight(0), t.measured_in_flight()), (0, 0));
        let w = t.take(0, 55, false).unwrap();
        t.sent(w);
        assert_eq!(t.expire(55), (0, 1), "a warm-up request lost");
        assert_eq!(t.answer(w, 56), Answer::Late { measured: false });
        let d = t.take(0, 60, true).unwrap();
        t.unsent(d);
        assert_eq!(t.oldest_sent(), None);
        assert!(t.take(0, 70, true).is_some() && t.take(0, 70, true).is_some());
    }

    #[test]
    fn in_order() {
        let mut t = Table::new(4, 2, true);
        let ids: Vec<u64> = [(0, 10), (1, 11), (0, 12), (0, 13)]
            .into_iter()
            .map(|(socket, now)| {
                let id = t.take(socket, now, true).unwrap();
                t.sent(id);
                id
            })
            .collect();
        // Whichever request of socket 0 a reply answers, it is taken for
        // the oldest's: there is no id to tell.
        assert_eq!(
            t.answer_first(0, 20, |_| true),
            Answer::Measured { rtt_ns: 10 }
        );
        assert_eq!(
            t.answer_first(1, 21, |_| true),
            Answer::Measured { rtt_ns: 10 }
        );
        assert_eq!(t.in_flight(0), 2);
        // The oldest left on socket 0 expires; the next reply is the last's.
        assert_eq!(t.expire(12), (1, 0));
        assert_eq!(
            t.answer_first(0, 30, |_| true),
            Answer::Measured { rtt_ns: 17 }
        );
        assert_eq!(
            t.answer_first(0, 31, |_| true),
            Answer::Late { measured: true },
            "nothing in flight"
        );
        assert_eq!(t.answer(ids[2], 32), Answer::Late { measured: true });
        assert_eq!((t.in_flight(0), t.in_flight(1)), (0, 0));
        assert_eq!(t.measured_in_flight(), 0);
    }

    #[test]
    fn first_that_fits() {
        let mut t = Table::new(4, 1, true);
        let ids: Vec<u64> = (0..3)
            .map(|now| {
                let id = t.take(0, now, true).unwrap();
                t.sent(id);
                id
            })
            .collect();
        assert_eq!(sequence(ids[2]), 3);
        // A reply that only the second request's fits skips the first.
        let second = |id| id == ids[1];
        assert_eq!(
            t.answer_first(0, 10, second),
            Answer::Measured { rtt_ns: 9 }
        );
        assert_eq!(
            t.answer_first(0, 11, second),
            Answer::Late { measured: true },
            "none in flight that it fits"
        );
        assert_eq!(t.in_flight(0), 2);
        // Expiry still goes in send order, past the one answered.
        assert_eq!(t.expire(2), (2, 0));
        assert_eq!(t.in_flight(0), 0);
    }
}
