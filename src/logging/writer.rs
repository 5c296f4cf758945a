//! Log files written by a background thread, so that logging on the request path costs one
//! formatted line handed to a bounded channel. The thread batches lines into one write,
//! rotates files as Python's handlers do, and reports a failing write (a full disk) once.
//!
//! - `RotatingFileHandler`: before a line that would make the file reach `maxBytes`, the file
//!   becomes `.1`, `.1` becomes `.2`, ..., keeping exactly `backupCount` backups;
//! - `TimedRotatingFileHandler`: at the computed time the file is renamed with a date suffix
//!   and the oldest backups beyond `backupCount` are removed;
//! - `WatchedFileHandler`: before writing, the path is checked and the file reopened when
//!   logrotate has moved or removed it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::{Datelike, Local, TimeZone, Timelike, Utc};

use super::config::{FileConf, Rotation, When};

/// Lines queued per file before new lines are dropped (and the drop reported).
const QUEUE: usize = 16 * 1024;
/// A batch larger than this is written before more lines are taken.
const BATCH: usize = 64 * 1024;
/// How long `flush` waits for the writer.
const FLUSH_WAIT: Duration = Duration::from_secs(5);
/// After a batch is written, lines gather this long before the next one is taken. While the
/// writer sleeps, senders queue without waking it: under load that is one wake-up and one
/// `write` per interval instead of a context switch per line (which halved the throughput of a
/// server on one core). A line after an idle period is still written at once.
const GATHER: Duration = Duration::from_millis(10);

/// Lines handed from the loggers to the writer thread: appended to one shared buffer (no
/// allocation per line once it has grown), which the writer swaps for its own empty one.
#[derive(Debug, Default)]
struct State {
    /// The queued lines, back to back.
    buf: Vec<u8>,
    /// The end offset of each queued line in `buf` (rotation looks at lines).
    ends: Vec<usize>,
    /// The writer waits on `wake` (a sender must notify it).
    waiting: bool,
    /// The sink was dropped: write what is queued and stop.
    closed: bool,
    /// Flush requests made and completed.
    flush_req: u64,
    flushed: u64,
}

#[derive(Debug, Default)]
struct Queue {
    state: Mutex<State>,
    /// Lines or a flush request for the writer.
    wake: Condvar,
    /// A flush completed.
    done: Condvar,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The sending side of one log file.
#[derive(Debug)]
pub(super) struct FileSink {
    queue: Arc<Queue>,
    path: PathBuf,
    dropped: AtomicU64,
}

impl FileSink {
    /// Open the file (unless `delay`) and start its writer thread.
    pub(super) fn open(conf: &FileConf) -> io::Result<FileSink> {
        let file = if conf.delay {
            None
        } else {
            Some(open(&conf.path, conf.append)?)
        };
        let queue = Arc::new(Queue::default());
        let mut w = Writer::new(conf, file);
        let q = Arc::clone(&queue);
        std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || w.run(&q))?;
        Ok(FileSink {
            queue,
            path: conf.path.clone(),
            dropped: AtomicU64::new(0),
        })
    }

    /// Queue one line (with its terminator). Never blocks on the writer: a full queue drops
    /// the line.
    pub(super) fn write(&self, line: &[u8]) {
        self.write_parts(&[line]);
    }

    /// Queue one line made of `parts` (the last one ending with the terminator), copied once.
    pub(super) fn write_parts(&self, parts: &[&[u8]]) {
        let mut st = self.queue.lock();
        if st.ends.len() >= QUEUE {
            drop(st);
            if self.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
                eprintln!(
                    "mapproxy-serve: logging: the writer of {} is behind; dropping log lines \
                     (reported once)",
                    self.path.display()
                );
            }
            return;
        }
        for part in parts {
            st.buf.extend_from_slice(part);
        }
        let end = st.buf.len();
        st.ends.push(end);
        if st.waiting {
            st.waiting = false;
            drop(st);
            self.queue.wake.notify_one();
        }
    }

    /// Wait (a few seconds at most) until everything queued so far is written.
    pub(super) fn flush(&self) {
        let deadline = Instant::now() + FLUSH_WAIT;
        let mut st = self.queue.lock();
        st.flush_req += 1;
        let mine = st.flush_req;
        st.waiting = false;
        self.queue.wake.notify_one();
        while st.flushed < mine && !st.closed {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            st = self
                .queue
                .done
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

impl Drop for FileSink {
    fn drop(&mut self) {
        self.queue.lock().closed = true;
        self.queue.wake.notify_one();
    }
}

/// Open a log file. A FIFO that nobody reads would block the open forever (at start, on a
/// reload): it is opened without blocking first, which fails at once in that case; a FIFO,
/// pipe or terminal that has a reader is then opened again normally (writes to it should
/// wait, not fail). For a regular file the flag means nothing and the first handle is kept.
fn open(path: &Path, append: bool) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut o = OpenOptions::new();
    if append {
        o.append(true).create(true);
    } else {
        o.write(true).create(true).truncate(true);
    }
    let probe = o
        .clone()
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ENXIO) => io::Error::new(
                e.kind(),
                "a FIFO that nobody reads (opening it would wait for a reader)",
            ),
            _ => e,
        })?;
    if probe.metadata()?.is_file() {
        return Ok(probe);
    }
    o.open(path)
}

struct Writer {
    path: PathBuf,
    append: bool,
    rotation: Rotation,
    file: Option<File>,
    /// The size of the open file (for size rotation).
    size: u64,
    /// (device, inode) of the open file (for watched files).
    id: Option<(u64, u64)>,
    /// The next rollover time (seconds since the epoch) for timed rotation.
    rollover_at: i64,
    pending: Vec<u8>,
    reported: bool,
}

impl Writer {
    fn new(conf: &FileConf, file: Option<File>) -> Writer {
        let meta = file.as_ref().and_then(|f| f.metadata().ok());
        let mut w = Writer {
            path: conf.path.clone(),
            append: conf.append,
            rotation: conf.rotation.clone(),
            size: meta.as_ref().map_or(0, |m| m.len()),
            id: meta.as_ref().map(file_id),
            file,
            rollover_at: 0,
            pending: Vec::new(),
            reported: false,
        };
        if let Rotation::Time { .. } = w.rotation {
            // Python: from the file's mtime if it exists, else now.
            let t = fs::metadata(&w.path)
                .and_then(|m| m.modified())
                .map(epoch)
                .unwrap_or_else(|_| epoch(SystemTime::now()));
            w.rollover_at = w.compute_rollover(t);
        }
        w
    }

    fn run(&mut self, queue: &Queue) {
        let mut buf = Vec::new();
        let mut ends = Vec::new();
        loop {
            let (flush_to, closed) = {
                let mut st = queue.lock();
                while st.ends.is_empty() && st.flush_req == st.flushed && !st.closed {
                    st.waiting = true;
                    st = queue
                        .wake
                        .wait_timeout(st, Duration::from_secs(1))
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                st.waiting = false;
                std::mem::swap(&mut st.buf, &mut buf);
                std::mem::swap(&mut st.ends, &mut ends);
                (st.flush_req, st.closed)
            };
            if matches!(self.rotation, Rotation::None | Rotation::Watched) {
                // Nothing looks at single lines: write the batch as it came, without copying
                // it line by line.
                self.write_pending();
                std::mem::swap(&mut self.pending, &mut buf);
                self.write_pending();
                std::mem::swap(&mut self.pending, &mut buf);
            } else {
                let mut start = 0;
                for &end in &ends {
                    if let Some(line) = buf.get(start..end) {
                        self.handle(line);
                    }
                    start = end;
                    if self.pending.len() >= BATCH {
                        self.write_pending();
                    }
                }
                buf.clear();
            }
            ends.clear();
            self.write_pending();
            {
                let mut st = queue.lock();
                if st.flushed < flush_to {
                    st.flushed = flush_to;
                    queue.done.notify_all();
                }
            }
            if closed {
                break;
            }
            std::thread::sleep(GATHER);
        }
    }

    fn handle(&mut self, line: &[u8]) {
        if self.should_roll(line.len() as u64) {
            self.write_pending();
            self.roll();
        }
        self.pending.extend_from_slice(line);
    }

    fn should_roll(&mut self, len: u64) -> bool {
        match self.rotation {
            Rotation::Size { max_bytes, .. } => {
                let current = self.size + self.pending.len() as u64;
                // Python's rule: roll when this line would make the file reach maxBytes
                // (a line longer than maxBytes still goes to a file of its own; an empty file
                // is not rolled).
                current > 0 && current + len >= max_bytes
            }
            Rotation::Time { .. } => epoch(SystemTime::now()) >= self.rollover_at,
            _ => false,
        }
    }

    fn report(&mut self, what: &str, e: &io::Error) {
        if !self.reported {
            self.reported = true;
            eprintln!(
                "mapproxy-serve: logging: {what} {}: {e} (further errors for this file are not reported)",
                self.path.display()
            );
        }
    }

    fn write_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        if let Rotation::Watched = self.rotation {
            self.reopen_if_moved();
        }
        if self.file.is_none() {
            match open(&self.path, self.append) {
                Ok(f) => {
                    let meta = f.metadata().ok();
                    self.size = meta.as_ref().map_or(0, |m| m.len());
                    self.id = meta.as_ref().map(file_id);
                    self.file = Some(f);
                }
                Err(e) => {
                    self.report("cannot open", &e);
                    self.pending.clear();
                    return;
                }
            }
        }
        if let Some(f) = self.file.as_mut() {
            match f.write_all(&self.pending) {
                Ok(()) => self.size += self.pending.len() as u64,
                Err(e) => {
                    // Part of the batch may be written: take the real size again.
                    self.size = f.metadata().map_or(self.size, |m| m.len());
                    self.report("cannot write", &e);
                }
            }
        }
        self.pending.clear();
    }

    fn reopen_if_moved(&mut self) {
        let now = fs::metadata(&self.path).ok().map(|m| file_id(&m));
        if now.is_none() || now != self.id {
            // Python's WatchedFileHandler: close and open the path again.
            self.file = None;
        }
    }

    fn roll(&mut self) {
        self.file = None;
        let result = match self.rotation {
            Rotation::Size { backups, .. } => self.roll_numbered(backups),
            Rotation::Time { .. } => self.roll_timed(),
            _ => Ok(()),
        };
        if let Err(e) = result {
            self.report("cannot rotate", &e);
        }
        match open(&self.path, true) {
            Ok(f) => {
                let meta = f.metadata().ok();
                self.size = meta.as_ref().map_or(0, |m| m.len());
                self.id = meta.as_ref().map(file_id);
                self.file = Some(f);
            }
            Err(e) => self.report("cannot open", &e),
        }
    }

    fn numbered(&self, i: u32) -> PathBuf {
        let mut s = self.path.clone().into_os_string();
        s.push(format!(".{i}"));
        PathBuf::from(s)
    }

    fn roll_numbered(&mut self, backups: u32) -> io::Result<()> {
        for i in (1..backups).rev() {
            let src = self.numbered(i);
            if src.exists() {
                let dst = self.numbered(i + 1);
                if dst.exists() {
                    fs::remove_file(&dst)?;
                }
                fs::rename(&src, &dst)?;
            }
        }
        let dst = self.numbered(1);
        if dst.exists() {
            fs::remove_file(&dst)?;
        }
        if self.path.exists() {
            fs::rename(&self.path, &dst)?;
        }
        Ok(())
    }

    fn time_params(&self) -> (When, i64, u32, bool) {
        match self.rotation {
            Rotation::Time {
                when,
                interval,
                backups,
                utc,
            } => {
                let unit = match when {
                    When::Seconds => 1,
                    When::Minutes => 60,
                    When::Hours => 3600,
                    When::Days | When::Midnight => 86400,
                    When::Weekday(_) => 7 * 86400,
                };
                (when, unit * i64::from(interval), backups, utc)
            }
            _ => (When::Hours, 3600, 0, false),
        }
    }

    /// Python's `TimedRotatingFileHandler.computeRollover` (without `atTime`).
    fn compute_rollover(&self, t: i64) -> i64 {
        let (when, interval, _, utc) = self.time_params();
        match when {
            When::Midnight | When::Weekday(_) => {
                let (h, m, s, wd) = if utc {
                    let d = Utc.timestamp_opt(t, 0).single().unwrap_or_default();
                    (
                        d.hour(),
                        d.minute(),
                        d.second(),
                        d.weekday().num_days_from_monday(),
                    )
                } else {
                    let d = Local
                        .timestamp_opt(t, 0)
                        .single()
                        .map(|d| d.fixed_offset())
                        .unwrap_or_default();
                    (
                        d.hour(),
                        d.minute(),
                        d.second(),
                        d.weekday().num_days_from_monday(),
                    )
                };
                let r = 86400 - i64::from((h * 60 + m) * 60 + s);
                let mut result = t + r;
                if let When::Weekday(dow) = when {
                    // Python: roll at the midnight that ends day `dow`.
                    let current = wd;
                    if current != dow {
                        let wait = if current < dow {
                            dow - current
                        } else {
                            6 - current + dow + 1
                        };
                        result += i64::from(wait) * 86400;
                    }
                }
                result
            }
            _ => t + interval,
        }
    }

    fn suffix_format(&self) -> &'static str {
        match self.time_params().0 {
            When::Seconds => "%Y-%m-%d_%H-%M-%S",
            When::Minutes => "%Y-%m-%d_%H-%M",
            When::Hours => "%Y-%m-%d_%H",
            _ => "%Y-%m-%d",
        }
    }

    fn roll_timed(&mut self) -> io::Result<()> {
        let (_, interval, backups, utc) = self.time_params();
        let now = epoch(SystemTime::now());
        let t = self.rollover_at - interval;
        let suffix = if utc {
            Utc.timestamp_opt(t, 0)
                .single()
                .unwrap_or_default()
                .format(self.suffix_format())
                .to_string()
        } else {
            Local
                .timestamp_opt(t, 0)
                .single()
                .map(|d| d.format(self.suffix_format()).to_string())
                .unwrap_or_default()
        };
        let mut dst = self.path.clone().into_os_string();
        dst.push(".");
        dst.push(&suffix);
        let dst = PathBuf::from(dst);
        let mut next = self.compute_rollover(now);
        while next <= now {
            next += interval;
        }
        self.rollover_at = next;
        if dst.exists() {
            fs::remove_file(&dst)?;
        }
        if self.path.exists() {
            fs::rename(&self.path, &dst)?;
        }
        if backups > 0 {
            for old in self.files_to_delete(backups)? {
                fs::remove_file(old)?;
            }
        }
        Ok(())
    }

    /// Backups beyond `backups`, oldest first (names sort by date).
    fn files_to_delete(&self, backups: u32) -> io::Result<Vec<PathBuf>> {
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let base = self
            .path
            .file_name()
            .map(|b| b.to_string_lossy().into_owned())
            .unwrap_or_default();
        let template = self
            .suffix_format()
            .replace("%Y", "0000")
            .replace(['%'], "")
            .replace(['m', 'd', 'H', 'M', 'S'], "00");
        let mut found = Vec::new();
        for entry in fs::read_dir(dir)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if let Some(rest) = name.strip_prefix(&base).and_then(|r| r.strip_prefix('.')) {
                if shape_matches(rest, &template) {
                    found.push(name);
                }
            }
        }
        found.sort();
        let keep = backups as usize;
        if found.len() <= keep {
            return Ok(Vec::new());
        }
        let n = found.len() - keep;
        Ok(found.into_iter().take(n).map(|f| dir.join(f)).collect())
    }
}

/// `s` has the shape of `template` ('0' = a digit, other characters literal), optionally
/// followed by `.ext` (a compressed backup).
fn shape_matches(s: &str, template: &str) -> bool {
    let (head, tail) = s.split_at(s.len().min(template.len()));
    if head.len() != template.len() {
        return false;
    }
    let ok = head.bytes().zip(template.bytes()).all(|(c, t)| {
        if t == b'0' {
            c.is_ascii_digit()
        } else {
            c == t
        }
    });
    ok && (tail.is_empty()
        || (tail.starts_with('.')
            && tail.len() > 1
            && tail[1..]
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'_')))
}

fn epoch(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(unix)]
fn file_id(m: &fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (m.dev(), m.ino())
}

#[cfg(not(unix))]
fn file_id(m: &fs::Metadata) -> (u64, u64) {
    (m.len(), 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_name_shapes() {
        assert!(shape_matches("2026-11-21", "0000-00-00"));
        assert!(shape_matches("2026-11-21.gz", "0000-00-00"));
        assert!(!shape_matches("2026-11-2x", "0000-00-00"));
        assert!(shape_matches("2026-11-21_07-05-09", "0000-00-00_00-00-00"));
        assert!(!shape_matches("1", "0000-00-00"));
    }

    #[test]
    fn size_rotation_keeps_backup_count_and_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        let conf = FileConf {
            path: path.clone(),
            append: true,
            delay: false,
            rotation: Rotation::Size {
                max_bytes: 100,
                backups: 2,
            },
        };
        let sink = FileSink::open(&conf).unwrap();
        for i in 0..30 {
            sink.write(format!("line {i:02} of the log file\n").as_bytes()); // 24 bytes
        }
        sink.flush();
        // 4 lines = 96 bytes; a 5th would reach 120 >= 100 → roll. 30 lines: 7 full files + 2.
        let read = |p: &Path| fs::read_to_string(p).unwrap();
        assert_eq!(read(&path).lines().count(), 2);
        assert!(read(&path).starts_with("line 28"));
        let b1 = path.with_file_name("app.log.1");
        let b2 = path.with_file_name("app.log.2");
        assert!(read(&b1).starts_with("line 24"));
        assert!(read(&b2).starts_with("line 20"));
        assert!(!path.with_file_name("app.log.3").exists());
        for p in [&path, &b1, &b2] {
            assert!(fs::metadata(p).unwrap().len() < 100);
        }
    }
}
