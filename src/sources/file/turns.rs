//! Descriptors handed out in turns: which closed files get one, and whose
//! descriptor is taken for it. At most the pressure's ceiling are held (the
//! budget, lower while the process is out of descriptors). A file waiting
//! for one takes that of the longest-idle open file, else of one that had a
//! turn since it was opened; rotated files draining through their
//! descriptor and archives still being decompressed keep theirs. Out of
//! descriptors, opening pauses ([`DescriptorPressure`]), the files beyond
//! the lowered ceiling are closed, and reading goes on in turns within it.
//! This module decides no positions and reads no content.
//!
//! [`DescriptorPressure`]: super::descriptors::DescriptorPressure

use super::descriptors::OpenFailure;
use super::tailed::Reopened;
use super::FileSource;
use std::time::Instant;

impl FileSource {
    /// Gives descriptors to the due files that are closed and changed since
    /// (rotated files first, then the longest waiting). `false` when the
    /// source must stop (the pipeline is gone).
    pub(super) fn open_due(&mut self, handle: &tokio::runtime::Handle) -> bool {
        self.shed_beyond_ceiling();
        let now = Instant::now();
        let mut waiting = Vec::new();
        for (i, f) in self.files.iter_mut().enumerate() {
            if !f.due || f.is_open() || f.finished || f.gone {
                continue;
            }
            if f.retry_at.is_some_and(|t| now < t) {
                continue;
            }
            if f.waiting_since.is_none() && !f.changed_since_closed() {
                f.due = false;
                f.waiting_since = None;
                continue;
            }
            f.waiting_since.get_or_insert(now);
            waiting.push(i);
        }
        if waiting.is_empty() || !self.pressure.may_open(now) {
            return true;
        }
        waiting.sort_by_key(|&i| {
            let f = &self.files[i];
            (f.rotated_at.is_none(), f.waiting_since)
        });
        let mut held = self.files.iter().filter(|f| f.is_open()).count();
        let mut evictable = self.evictable().into_iter();
        for i in waiting {
            if held >= self.pressure.ceiling() {
                let Some(j) = evictable.next() else {
                    break;
                };
                self.files[j].close();
                held -= 1;
            }
            match self.files[i].reopen() {
                Ok(Reopened::Same) => {
                    held += 1;
                    self.pressure.relieved();
                }
                Ok(Reopened::Replaced) => {
                    held += 1;
                    self.pressure.relieved();
                    if let Some(batch) = self.files[i].replaced(&self.ctx, &self.counters) {
                        if !self.send(handle, batch) {
                            return false;
                        }
                    }
                }
                Ok(Reopened::Gone) => {
                    let f = &mut self.files[i];
                    f.gone = true;
                    f.due = false;
                    if f.rotated_at.is_none() {
                        f.rotated_at = Some(now);
                        self.counters.rotations.inc();
                    }
                }
                Err(e) => {
                    let path = self.files[i].path.clone();
                    self.open_failed(i, &path, &e);
                    if OpenFailure::of(&e) == OpenFailure::Descriptors {
                        break;
                    }
                }
            }
        }
        true
    }

    /// Closes files beyond the ceiling (lowered when descriptors ran out),
    /// those whose descriptor may be taken first.
    fn shed_beyond_ceiling(&mut self) {
        let held = self.files.iter().filter(|f| f.is_open()).count();
        let excess = held.saturating_sub(self.pressure.ceiling());
        if excess == 0 {
            return;
        }
        for j in self.evictable().into_iter().take(excess) {
            self.files[j].close();
        }
    }

    /// Open files whose descriptor may be taken, best first: idle ones
    /// (longest without new data first), then those that had a turn.
    fn evictable(&self) -> Vec<usize> {
        let mut candidates: Vec<(bool, Instant, usize)> = self
            .files
            .iter()
            .enumerate()
            .filter(|(_, f)| {
                f.is_open()
                    && f.rotated_at.is_none()
                    && (f.finished || !f.is_compressed())
                    && (!f.due || f.turns_since_open > 0)
            })
            .map(|(i, f)| (f.due, f.last_growth, i))
            .collect();
        candidates.sort_unstable();
        candidates.into_iter().map(|(_, _, i)| i).collect()
    }
}
