//! Progress for long stages, without extra dependencies: a banner per stage step
//! (`==> kernel [2/5] configure (0m41s)`), a closing line with the elapsed time, and a
//! heartbeat while a long program runs: every 30 s when stderr is not a terminal (CI logs),
//! `still building kernel: 812 files compiled, 3m12s`, counted from the program's log file;
//! on a terminal the same line is refreshed in place every 2 s.

use std::io::{IsTerminal, Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `3m12s`, `45s`, `1h02m03s`.
pub fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, s / 60 % 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, m, s) => format!("{h}h{m:02}m{s:02}s"),
    }
}

/// One stage with a known number of steps.
pub struct Stage {
    name: String,
    total: usize,
    step: usize,
    start: Instant,
}

impl Stage {
    pub fn new(name: &str, total: usize) -> Stage {
        eprintln!("==> {name}: {total} steps");
        Stage { name: name.into(), total, step: 0, start: Instant::now() }
    }

    /// Announce the next step.
    pub fn step(&mut self, what: &str) {
        self.step += 1;
        eprintln!("==> {} [{}/{}] {what} ({})", self.name, self.step, self.total, fmt_duration(self.start.elapsed()));
    }

    /// Close the stage with a summary.
    pub fn done(&self, summary: &str) {
        eprintln!("==> {} done in {}: {summary}", self.name, fmt_duration(self.start.elapsed()));
    }
}

/// Counts lines of a growing log file that match `is_unit` and reports them periodically.
/// Stops (and clears a terminal line) when dropped.
pub struct Heartbeat {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Heartbeat {
    pub fn start(label: &str, log: PathBuf, is_unit: fn(&str) -> bool) -> Heartbeat {
        let tty = std::io::stderr().is_terminal();
        let interval = if tty { Duration::from_secs(2) } else { Duration::from_secs(30) };
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let label = label.to_string();
        let handle = std::thread::spawn(move || {
            let start = Instant::now();
            let mut counter = LineCounter::new(is_unit);
            let mut next = start + interval;
            while !stop2.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                if Instant::now() < next {
                    continue;
                }
                next += interval;
                let n = counter.update(&log);
                let line = format!("still building {label}: {n} files compiled, {}", fmt_duration(start.elapsed()));
                if tty {
                    eprint!("\r    {line}\x1b[K");
                } else {
                    eprintln!("    {line}");
                }
            }
            if tty {
                eprint!("\r\x1b[K");
            }
        });
        Heartbeat { stop, handle: Some(handle) }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Incremental matching-line counter over a file that only grows.
struct LineCounter {
    is_unit: fn(&str) -> bool,
    offset: u64,
    partial: String,
    count: usize,
}

impl LineCounter {
    fn new(is_unit: fn(&str) -> bool) -> LineCounter {
        LineCounter { is_unit, offset: 0, partial: String::new(), count: 0 }
    }

    fn update(&mut self, path: &std::path::Path) -> usize {
        let Ok(mut f) = std::fs::File::open(path) else { return self.count };
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return self.count;
        }
        let mut buf = Vec::new();
        if let Ok(n) = f.read_to_end(&mut buf) {
            self.offset += n as u64;
            self.partial.push_str(&String::from_utf8_lossy(&buf));
            while let Some(i) = self.partial.find('\n') {
                let line: String = self.partial.drain(..=i).collect();
                if (self.is_unit)(line.trim_end()) {
                    self.count += 1;
                }
            }
        }
        self.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(fmt_duration(Duration::from_secs(45)), "45s");
        assert_eq!(fmt_duration(Duration::from_secs(192)), "3m12s");
        assert_eq!(fmt_duration(Duration::from_secs(3723)), "1h02m03s");
    }

    #[test]
    fn counts_matching_lines_incrementally_across_partial_writes() {
        let p = std::env::temp_dir().join(format!("xtask-progress-{}.log", std::process::id()));
        std::fs::write(&p, "  CC      a.o\n  LD      x\n  CC      b").unwrap();
        let mut c = LineCounter::new(|l| l.starts_with("  CC "));
        assert_eq!(c.update(&p), 1, "an unfinished line is not counted yet");
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b".o\n  CC      c.o\n").unwrap();
        assert_eq!(c.update(&p), 3);
        std::fs::remove_file(&p).unwrap();
    }
}
