//! What the `Logger` wrote but the relay has not yet acknowledged, kept as the chunks
//! that were written (one buffer per write, not one per message) so that after a
//! reconnect they are written again, in order. The relay drops the rows it already
//! stored, so a chunk that was partly acknowledged is simply resent whole.

use std::collections::VecDeque;

struct Chunk {
    /// Sequence numbers of the chunk's first and last lines.
    first_seq: u64,
    last_seq: u64,
    /// The application's messages in it (drop reports are not counted).
    messages: u64,
    lines: Vec<u8>,
}

#[derive(Default)]
pub struct Unacked {
    chunks: VecDeque<Chunk>,
    /// Highest sequence number acknowledged.
    acked: u64,
    /// Lines held (for the bound; a chunk counts whole until it is freed).
    held: u64,
}

impl Unacked {
    /// A chunk of lines numbered `first_seq..=last_seq` was written.
    pub fn push(&mut self, first_seq: u64, last_seq: u64, messages: u64, lines: Vec<u8>) {
        self.held += last_seq + 1 - first_seq;
        self.chunks.push_back(Chunk {
            first_seq,
            last_seq,
            messages,
            lines,
        });
    }

    /// Everything up to `seq` is stored: frees the chunks it covers whole. Returns the
    /// application's messages in them.
    pub fn ack(&mut self, seq: u64) -> u64 {
        if seq <= self.acked {
            return 0;
        }
        let mut freed = 0;
        while let Some(c) = self.chunks.front().filter(|c| c.last_seq <= seq) {
            freed += c.messages;
            self.held -= c.last_seq + 1 - c.first_seq;
            self.chunks.pop_front();
        }
        self.acked = seq;
        freed
    }

    /// Lines written and not yet acknowledged.
    pub fn held(&self) -> u64 {
        self.held
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// The chunks to write again after a reconnect, oldest first.
    pub fn chunks(&self) -> impl Iterator<Item = &[u8]> {
        self.chunks.iter().map(|c| c.lines.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_free_whole_chunks_only() {
        let mut u = Unacked::default();
        u.push(1, 3, 3, b"a\nb\nc\n".to_vec());
        u.push(4, 5, 1, b"d\nreport\n".to_vec());
        assert_eq!(u.held(), 5);
        assert_eq!(u.ack(2), 0, "a chunk partly acknowledged is kept");
        assert_eq!(u.chunks().count(), 2);
        assert_eq!(u.ack(3), 3);
        assert_eq!((u.held(), u.chunks().count()), (2, 1));
        assert_eq!(u.ack(1), 0, "an older ack changes nothing");
        assert_eq!(u.ack(9), 1);
        assert!(u.is_empty());
        assert_eq!((u.held(), u.acked()), (0, 9));
    }
}
