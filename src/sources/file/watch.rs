//! Wake-ups for the file source: inotify events (through `notify`) on the
//! directories its globs and followed symlinks live in, plus a stop signal.
//!
//! Events are hints, never the truth: the source still re-stats its files
//! and re-globs now and then, because inotify misses events on some
//! filesystems (overlayfs, NFS) and watch limits run out. Whether every
//! directory asked for is watched on a file system where inotify sees every
//! change ([`ChangeWatcher::sees_every_change`]) decides how often. This
//! module never reads files.

use notify::event::{EventKind, ModifyKind};
use notify::{RecursiveMode, Watcher};
use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

/// Something happened that may need the source's attention.
#[derive(Debug)]
pub enum Wake {
    /// A file's content changed.
    Modified(PathBuf),
    /// Files appeared, vanished or were renamed: re-glob.
    Layout,
    /// Events were lost (queue overflow): re-glob and re-check every file.
    Overflow,
    Stop,
}

/// What [`ChangeWatcher::wait`] collected.
#[derive(Debug, Default)]
pub struct Changes {
    pub modified: HashSet<PathBuf>,
    pub layout: bool,
    pub overflow: bool,
    pub stop: bool,
}

/// Receives wake-ups; watches directories when inotify is available.
pub struct ChangeWatcher {
    watcher: Option<notify::RecommendedWatcher>,
    /// Watched directories and which directory was watched: one removed
    /// and made again is another (the inode number may be reused: its
    /// birth time tells them apart), which no watch covers.
    watched: HashMap<PathBuf, DirIdentity>,
    /// Directories asked for whose changes inotify may miss: missing (not
    /// watchable yet), refused (watch limit), or on a file system where
    /// inotify sees only local writes.
    blind: HashSet<PathBuf>,
    rx: Receiver<Wake>,
    tx: Sender<Wake>,
}

fn classify(event: &notify::Event) -> Option<fn(PathBuf) -> Wake> {
    match event.kind {
        EventKind::Modify(ModifyKind::Data(_)) | EventKind::Modify(ModifyKind::Any) => {
            Some(Wake::Modified)
        }
        EventKind::Create(_) | EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(_)) => {
            Some(|_| Wake::Layout)
        }
        EventKind::Access(_) | EventKind::Modify(_) => None,
        EventKind::Any | EventKind::Other => Some(|_| Wake::Overflow),
    }
}

impl ChangeWatcher {
    /// A watcher; without inotify (or with `use_inotify` false) it still
    /// delivers [`Wake::Stop`] and times out, so polling carries on.
    pub fn new(use_inotify: bool) -> Self {
        let (tx, rx) = channel();
        let watcher = if use_inotify {
            let events = tx.clone();
            let handler = move |res: notify::Result<notify::Event>| match res {
                Ok(event) => {
                    if let Some(wake) = classify(&event) {
                        if event.need_rescan() {
                            let _ = events.send(Wake::Overflow);
                        }
                        for path in event.paths {
                            let _ = events.send(wake(path));
                        }
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "inotify error; polling covers it");
                    let _ = events.send(Wake::Overflow);
                }
            };
            match notify::recommended_watcher(handler) {
                Ok(w) => Some(w),
                Err(e) => {
                    tracing::warn!(error = %e, "inotify unavailable; falling back to polling");
                    None
                }
            }
        } else {
            None
        };
        ChangeWatcher {
            watcher,
            watched: HashMap::new(),
            blind: HashSet::new(),
            rx,
            tx,
        }
    }

    /// A handle that wakes [`wait`](Self::wait) (used to stop the source).
    pub fn waker(&self) -> Sender<Wake> {
        self.tx.clone()
    }

    /// Watches `dir` (once); `recursive` for globs with wildcard directories.
    pub fn watch(&mut self, dir: &Path, recursive: bool) {
        let Some(watcher) = &mut self.watcher else {
            return;
        };
        let Some(identity) = dir_identity(dir) else {
            self.blind.insert(dir.to_path_buf());
            return;
        };
        match self.watched.get(dir) {
            Some(watched) if *watched == identity => return,
            // Gone and made again: the old watch died with the old inode.
            Some(_) => {
                let _ = watcher.unwatch(dir);
                self.watched.remove(dir);
            }
            None => {}
        }
        let mode = if recursive {
            RecursiveMode::Recursive
        } else {
            RecursiveMode::NonRecursive
        };
        match watcher.watch(dir, mode) {
            Ok(()) => {
                self.watched.insert(dir.to_path_buf(), identity);
                if crate::fs_kind::inotify_sees_every_change(dir) {
                    self.blind.remove(dir);
                } else {
                    self.blind.insert(dir.to_path_buf());
                }
            }
            Err(e) => {
                self.blind.insert(dir.to_path_buf());
                tracing::warn!(dir = %dir.display(), error = %e, "cannot watch directory; polling it");
            }
        }
    }

    /// Forgets the watches of directories that vanished or were made
    /// again since they were watched: until watched anew they count as
    /// blind, so polling covers them.
    pub fn recheck(&mut self) {
        let Some(watcher) = &mut self.watcher else {
            return;
        };
        let stale: Vec<PathBuf> = self
            .watched
            .iter()
            .filter(|(dir, identity)| dir_identity(dir) != Some(**identity))
            .map(|(dir, _)| dir.clone())
            .collect();
        for dir in stale {
            let _ = watcher.unwatch(&dir);
            self.watched.remove(&dir);
            self.blind.insert(dir);
        }
    }

    pub fn is_active(&self) -> bool {
        self.watcher.is_some() && !self.watched.is_empty()
    }

    /// Whether inotify reports every change in every directory asked for,
    /// so that polling is only a safety net.
    pub fn sees_every_change(&self) -> bool {
        self.is_active() && self.blind.is_empty()
    }

    /// Waits up to `timeout` for a first wake-up, then collects every
    /// wake-up already queued.
    pub fn wait(&self, timeout: Duration) -> Changes {
        let mut changes = Changes::default();
        match self.rx.recv_timeout(timeout) {
            Ok(wake) => changes.add(wake),
            Err(RecvTimeoutError::Timeout) => return changes,
            Err(RecvTimeoutError::Disconnected) => {
                changes.stop = true;
                return changes;
            }
        }
        while let Ok(wake) = self.rx.try_recv() {
            changes.add(wake);
        }
        changes
    }
}

impl Changes {
    fn add(&mut self, wake: Wake) {
        match wake {
            Wake::Modified(path) => {
                self.modified.insert(path);
            }
            Wake::Layout => self.layout = true,
            Wake::Overflow => {
                self.layout = true;
                self.overflow = true;
            }
            Wake::Stop => self.stop = true,
        }
    }
}

/// Device, inode and birth time (where the file system keeps one).
type DirIdentity = (u64, u64, Option<std::time::SystemTime>);

/// The identity of a directory, `None` when it is not one (or missing).
fn dir_identity(dir: &Path) -> Option<DirIdentity> {
    std::fs::metadata(dir)
        .ok()
        .filter(|m| m.is_dir())
        .map(|m| (m.dev(), m.ino(), m.created().ok()))
}

/// The directory to watch for `pattern` and whether to watch below it: the
/// longest leading part without wildcards.
pub fn watch_root(pattern: &str) -> (PathBuf, bool) {
    let path = Path::new(pattern);
    let mut root = PathBuf::new();
    let components: Vec<_> = path.components().collect();
    for (i, c) in components.iter().enumerate() {
        let text = c.as_os_str().to_string_lossy();
        if text.contains(['*', '?', '[']) {
            let recursive = i + 1 < components.len();
            return (root, recursive);
        }
        root.push(c);
    }
    (
        root.parent().map(Path::to_path_buf).unwrap_or_default(),
        false,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_root_is_the_wildcard_free_prefix() {
        assert_eq!(watch_root("/var/log/*.log"), ("/var/log".into(), false));
        assert_eq!(
            watch_root("/var/lib/docker/containers/*/*-json.log"),
            ("/var/lib/docker/containers".into(), true)
        );
        assert_eq!(watch_root("/var/log/syslog"), ("/var/log".into(), false));
    }

    #[test]
    fn appends_and_creations_wake_the_waiter() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.log");
        std::fs::write(&file, b"x\n").unwrap();
        let mut w = ChangeWatcher::new(true);
        w.watch(dir.path(), false);
        assert!(w.is_active());
        std::fs::write(dir.path().join("b.log"), b"new\n").unwrap();
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .unwrap();
        f.write_all(b"more\n").unwrap();
        let mut seen = Changes::default();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !(seen.layout && seen.modified.contains(&file))
            && std::time::Instant::now() < deadline
        {
            let c = w.wait(Duration::from_millis(200));
            seen.layout |= c.layout;
            seen.modified.extend(c.modified);
        }
        assert!(seen.layout, "creation seen");
        assert!(seen.modified.contains(&file), "append seen: {seen:?}");
    }

    #[test]
    fn only_watched_directories_on_local_file_systems_make_polling_a_safety_net() {
        let dir = tempfile::tempdir().unwrap();
        let local = crate::fs_kind::inotify_sees_every_change(dir.path());
        let mut w = ChangeWatcher::new(true);
        w.watch(dir.path(), false);
        assert_eq!(w.sees_every_change(), local);
        let missing = dir.path().join("later");
        w.watch(&missing, false);
        assert!(
            !w.sees_every_change(),
            "a directory not there yet is not watched"
        );
        std::fs::create_dir(&missing).unwrap();
        w.watch(&missing, false);
        assert_eq!(w.sees_every_change(), local, "watched once it exists");
        std::fs::remove_dir(&missing).unwrap();
        std::fs::create_dir(&missing).unwrap();
        // Told apart by birth time when the inode number is reused.
        if std::fs::metadata(&missing).unwrap().created().is_ok() {
            w.recheck();
            assert!(
                !w.sees_every_change(),
                "a directory made again is not watched"
            );
            w.watch(&missing, false);
            assert_eq!(w.sees_every_change(), local, "until it is watched anew");
        }
        w.watch(Path::new("/proc/self"), false);
        assert!(!w.sees_every_change(), "procfs changes reach no watch");
        assert!(!ChangeWatcher::new(false).sees_every_change());
    }

    #[test]
    fn without_inotify_wait_times_out_and_stop_still_wakes() {
        let w = ChangeWatcher::new(false);
        assert!(!w.is_active());
        let c = w.wait(Duration::from_millis(10));
        assert!(!c.stop && !c.layout);
        w.waker().send(Wake::Stop).unwrap();
        assert!(w.wait(Duration::from_secs(5)).stop);
    }
}
