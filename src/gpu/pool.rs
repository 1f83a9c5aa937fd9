//! A buffer pool keyed by byte size, so that a training step of fixed shapes allocates nothing
//! after its first run. Sizes that no recording has used for [`KEEP_SUBMISSIONS`] submissions
//! are dropped (inference at changing batch sizes does not grow memory without bound), and
//! `Context::trim` drops every free buffer.
//!
//! A buffer released while commands that use it are still being recorded is parked until the
//! next submission: queue writes happen before the recorded commands run, so handing the buffer
//! out earlier could overwrite data that a recorded dispatch has yet to read.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// Usage of every tensor buffer.
pub(crate) const TENSOR_USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

/// Submissions a size of buffer stays in the pool without being used.
pub const KEEP_SUBMISSIONS: u64 = 8;

/// Free and parked buffers, by size.
#[derive(Default)]
pub struct BufferPool {
    /// Submissions so far, and for each size the submission that last took or returned one.
    submissions: u64,
    last_used: HashMap<u64, u64>,
    /// Free buffers, kept in a canonical order (the order the pool created them in) whatever
    /// the order they came back in: a repeated step then takes the very buffers it took
    /// before, so its bind groups are found in the recorder's cache instead of being built
    /// again. (Not wgpu's ids: those of dropped buffers are recycled, and a new buffer could
    /// sort before an old one.)
    free: HashMap<u64, BTreeMap<u64, wgpu::Buffer>>,
    /// The creation number of every buffer the pool made and still has, and how many numbers
    /// went with dropped buffers (numbers are never given twice).
    number: HashMap<wgpu::Buffer, u64>,
    forgotten: u64,
    parked: Vec<wgpu::Buffer>,
    /// Whether an encoder is open: only then must released buffers wait for the submission.
    pub(crate) recording: bool,
    /// Buffers created so far (for the benchmarks' allocation count).
    pub created: u64,
}

impl BufferPool {
    /// Takes a free buffer of exactly `size` bytes, or creates one.
    pub fn take(&mut self, device: &wgpu::Device, size: u64) -> wgpu::Buffer {
        self.last_used.insert(size, self.submissions);
        if let Some((_, buffer)) = self.free.get_mut(&size).and_then(BTreeMap::pop_first) {
            return buffer;
        }
        self.created += 1;
        let buffer = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("hetconv tensor"),
            size,
            usage: TENSOR_USAGE,
            mapped_at_creation: false,
        });
        self.number_of(&buffer);
        buffer
    }

    /// Moves the parked buffers to the free lists (called right after a submission, or a flush
    /// with nothing to submit) and, when something was `submitted`, drops the free buffers of
    /// sizes unused for [`KEEP_SUBMISSIONS`] submissions; returns the buffers dropped (cached
    /// bind groups that bind them must go too).
    pub fn release_parked(&mut self, submitted: bool) -> Vec<wgpu::Buffer> {
        self.recording = false;
        if !submitted {
            for buffer in std::mem::take(&mut self.parked) {
                self.give_back(buffer);
            }
            return Vec::new();
        }
        self.submissions += 1;
        for buffer in std::mem::take(&mut self.parked) {
            self.give_back(buffer);
        }
        let now = self.submissions;
        let stale: Vec<u64> = self
            .last_used
            .iter()
            .filter(|&(_, &used)| now - used > KEEP_SUBMISSIONS)
            .map(|(&size, _)| size)
            .collect();
        let mut dropped = Vec::new();
        for size in stale {
            self.last_used.remove(&size);
            dropped.extend(
                self.free
                    .remove(&size)
                    .into_iter()
                    .flat_map(BTreeMap::into_values),
            );
        }
        self.forget(&dropped);
        dropped
    }

    /// The buffer's creation number (a new one for a buffer it has not seen).
    fn number_of(&mut self, buffer: &wgpu::Buffer) -> u64 {
        let next = self.number.len() as u64 + self.forgotten;
        *self.number.entry(buffer.clone()).or_insert(next)
    }

    /// Forgets the creation numbers of buffers it no longer holds.
    fn forget(&mut self, dropped: &[wgpu::Buffer]) {
        for buffer in dropped {
            if self.number.remove(buffer).is_some() {
                self.forgotten += 1;
            }
        }
    }

    /// Drops every free buffer (the parked ones stay until the submission); returns them.
    pub fn drop_free(&mut self) -> Vec<wgpu::Buffer> {
        self.last_used.clear();
        let dropped: Vec<wgpu::Buffer> = self
            .free
            .drain()
            .flat_map(|(_, set)| set.into_values())
            .collect();
        self.forget(&dropped);
        dropped
    }

    /// Bytes of the free and parked buffers the pool holds.
    pub fn held_bytes(&self) -> u64 {
        let free: u64 = self
            .free
            .values()
            .flat_map(BTreeMap::values)
            .map(wgpu::Buffer::size)
            .sum();
        free + self.parked.iter().map(wgpu::Buffer::size).sum::<u64>()
    }

    /// Returns a buffer that no tensor uses any more.
    fn give_back(&mut self, buffer: wgpu::Buffer) {
        self.last_used.insert(buffer.size(), self.submissions);
        if self.recording {
            self.parked.push(buffer);
        } else {
            let number = self.number_of(&buffer);
            self.free
                .entry(buffer.size())
                .or_default()
                .insert(number, buffer);
        }
    }
}

/// A pooled buffer: goes back to its pool when the last tensor using it is dropped.
#[derive(Debug)]
pub struct PooledBuffer {
    buffer: Option<wgpu::Buffer>,
    pool: std::sync::Weak<Mutex<BufferPool>>,
}

impl PooledBuffer {
    pub(crate) fn new(buffer: wgpu::Buffer, pool: &Arc<Mutex<BufferPool>>) -> Self {
        Self {
            buffer: Some(buffer),
            pool: Arc::downgrade(pool),
        }
    }

    /// The wgpu buffer.
    pub fn buffer(&self) -> &wgpu::Buffer {
        self.buffer
            .as_ref()
            .expect("a pooled buffer holds its buffer until it is dropped")
    }
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        if let (Some(buffer), Some(pool)) = (self.buffer.take(), self.pool.upgrade()) {
            super::lock(&pool).give_back(buffer);
        }
    }
}
