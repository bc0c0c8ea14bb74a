//! Datagram buffers, recycled between the receiver and the workers so the
//! steady state allocates nothing per datagram.

use crossbeam_channel::{Receiver, Sender};

/// Free buffers, each with room for one datagram and one byte more (so a
/// datagram over the cap shows up as one that filled the buffer).
///
/// Buffers are made only when none is free, and a returned buffer is kept
/// only while the free list has room; so no more buffers ever exist than
/// the queue, the receiver's batch and the workers' batches can hold at
/// once, plus the free list.
#[derive(Debug, Clone)]
pub(crate) struct BufferPool {
    size: usize,
    free_tx: Sender<Vec<u8>>,
    free_rx: Receiver<Vec<u8>>,
}

impl BufferPool {
    pub(crate) fn new(size: usize, keep: usize) -> BufferPool {
        let (free_tx, free_rx) = crossbeam_channel::bounded(keep.max(1));
        BufferPool {
            size,
            free_tx,
            free_rx,
        }
    }

    /// A free buffer, empty, with capacity for one datagram.
    pub(crate) fn take(&self) -> Vec<u8> {
        // Capacity only: pages are touched when a datagram is written, so an
        // unused buffer costs address space, not resident memory.
        self.free_rx
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(self.size))
    }

    /// Hands a buffer back; it is freed if the free list is full.
    pub(crate) fn give(&self, mut buf: Vec<u8>) {
        buf.clear();
        let _ = self.free_tx.try_send(buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recycles() {
        let pool = BufferPool::new(100, 1);
        let mut a = pool.take();
        assert!(a.capacity() >= 100 && a.is_empty());
        a.extend_from_slice(b"xyz");
        let ptr = a.as_ptr();
        pool.give(a);
        let b = pool.take();
        assert_eq!(b.as_ptr(), ptr);
        assert!(b.is_empty());
    }

    #[test]
    fn bounded() {
        let pool = BufferPool::new(8, 2);
        let bufs: Vec<_> = (0..5).map(|_| pool.take()).collect();
        for b in bufs {
            pool.give(b);
        }
        assert_eq!(pool.free_rx.len(), 2);
    }
}
