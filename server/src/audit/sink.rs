//! Where a device's lines go: a file (appended to), stdout, or nowhere.
//!
//! Each device has one writer thread that owns the file and the head of
//! the hash chain, so lines are chained in the order they are written.
//! Requests hand it their entry through a bounded queue and wait for the
//! write with a timeout: a stuck disk fails requests, it never hangs them
//! for longer than the timeout nor lets the queue grow without bound. The
//! thread writes everything queued while it was busy in one `write`.
//!
//! A write that fails part-way on a regular file (a full disk) is cut off
//! again, so the file holds whole lines only and its chain still verifies
//! once the disk has room. This assumes, as the chain does, that the
//! device's thread is the file's only writer.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::time::Duration;

use secretd_client::audit::ChainHead;
use tokio::sync::oneshot;

/// Entries that may wait for a device before requests fail at once.
const QUEUE: usize = 4096;
/// Entries written with one `write` call at most.
const BATCH: usize = 512;
/// How far back from the end of a file we look for its last line.
const MAX_TAIL: u64 = 16 * 1024 * 1024;

/// Where lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    File { path: PathBuf, mode: Option<u32> },
    Stdout,
    Discard,
}

impl Target {
    /// Opens the target once, as a check that lines can be written there.
    pub fn check(&self) -> io::Result<()> {
        match self {
            Target::File { path, mode } => open_log(path, *mode).map(drop),
            Target::Stdout | Target::Discard => Ok(()),
        }
    }
}

enum Message {
    Line {
        body: Vec<u8>,
        done: oneshot::Sender<Result<(), String>>,
    },
    Reopen,
}

/// The request side of a device's writer thread. Dropping it ends the
/// thread once the queue is written.
pub struct Sink {
    queue: Option<SyncSender<Message>>,
}

impl Sink {
    pub fn start(name: &str, target: Target) -> io::Result<Sink> {
        if target == Target::Discard {
            return Ok(Sink { queue: None });
        }
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        std::thread::Builder::new()
            .name(format!("audit {name}"))
            .spawn(move || Writer::new(target).run(rx))?;
        Ok(Sink { queue: Some(tx) })
    }

    /// Writes one entry (a JSON object) as the next line of the chain.
    pub async fn write(&self, body: Vec<u8>, timeout: Duration) -> Result<(), String> {
        let Some(queue) = &self.queue else {
            return Ok(());
        };
        let (done, answer) = oneshot::channel();
        match queue.try_send(Message::Line { body, done }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                return Err("the device is not keeping up: its queue is full".to_owned());
            }
            Err(TrySendError::Disconnected(_)) => return Err("the device is closed".to_owned()),
        }
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err("the device's writer stopped".to_owned()),
            Err(_) => Err(format!(
                "the write did not finish within {}s",
                timeout.as_secs()
            )),
        }
    }

    /// Closes and reopens the file (log rotation), before the next line.
    pub fn reopen(&self) {
        if let Some(queue) = &self.queue {
            // A full queue means the writer is stuck; it reopens on its
            // next failure anyway.
            let _ = queue.try_send(Message::Reopen);
        }
    }
}

/// The writer thread's state.
struct Writer {
    target: Target,
    out: Option<Out>,
    head: ChainHead,
}

impl Writer {
    fn new(target: Target) -> Self {
        Writer {
            target,
            out: None,
            head: ChainHead::default(),
        }
    }

    fn run(mut self, rx: Receiver<Message>) {
        let mut waiting = Vec::with_capacity(BATCH);
        let mut bodies = Vec::with_capacity(BATCH);
        while let Ok(first) = rx.recv() {
            let mut next = Some(first);
            while let Some(message) = next.take() {
                match message {
                    Message::Line { body, done } => {
                        bodies.push(body);
                        waiting.push(done);
                    }
                    Message::Reopen => {
                        // Lines queued before the reopen go to the old file.
                        self.flush(&mut bodies, &mut waiting);
                        self.out = None;
                        if let Err(err) = self.ensure_open() {
                            tracing::error!(error = %err, "could not reopen an audit file");
                        }
                    }
                }
                if bodies.len() < BATCH {
                    next = rx.try_recv().ok();
                }
            }
            self.flush(&mut bodies, &mut waiting);
        }
    }

    /// Writes the pending lines and answers their requests.
    fn flush(
        &mut self,
        bodies: &mut Vec<Vec<u8>>,
        waiting: &mut Vec<oneshot::Sender<Result<(), String>>>,
    ) {
        if bodies.is_empty() {
            return;
        }
        let result = self.write_lines(bodies).map_err(|e| e.to_string());
        bodies.clear();
        for done in waiting.drain(..) {
            let _ = done.send(result.clone());
        }
    }

    fn write_lines(&mut self, bodies: &[Vec<u8>]) -> io::Result<()> {
        self.ensure_open()?;
        let before = self.head.clone();
        let mut buffer = Vec::with_capacity(bodies.iter().map(|b| b.len() + 120).sum());
        for body in bodies {
            buffer.extend_from_slice(&self.head.link(body));
            buffer.push(b'\n');
        }
        let written = match self.out.as_mut() {
            Some(Out::Log(file)) => cut_on_failure(file, |file| file.write_all(&buffer)),
            Some(Out::Stream(out)) => out.write_all(&buffer).and_then(|()| out.flush()),
            None => Err(io::Error::other("no file open")),
        };
        if written.is_err() {
            // What reached the file is unknown: reopen next time and carry
            // the chain on from whatever its last line is.
            self.head = before;
            self.out = None;
        }
        written
    }

    fn ensure_open(&mut self) -> io::Result<()> {
        if self.out.is_some() {
            return Ok(());
        }
        match &self.target {
            Target::Stdout => self.out = Some(Out::Stream(Box::new(io::stdout()))),
            Target::Discard => self.out = Some(Out::Stream(Box::new(io::sink()))),
            Target::File { path, mode } => {
                let (mut file, tail) = open_log(path, *mode)?;
                if let Some(head) = tail.head {
                    self.head = head;
                }
                if tail.torn {
                    // End the torn line so the next one starts clean; the
                    // fragment stays, as evidence, and fails verification.
                    file.write_all(b"\n")?;
                }
                self.out = Some(if file.metadata()?.is_file() {
                    Out::Log(file)
                } else {
                    Out::Stream(Box::new(file))
                });
            }
        }
        Ok(())
    }
}

/// Where the writer thread writes.
enum Out {
    /// A regular file: a failed write is cut off again.
    Log(File),
    /// Stdout, a pipe, a device: written to as it is.
    Stream(Box<dyn Write + Send>),
}

/// Runs `write` on a regular file; if it fails, truncates the file back
/// to its length before, so that no torn line stays behind.
fn cut_on_failure(
    file: &mut File,
    write: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<()> {
    let len = file.metadata()?.len();
    let written = write(file);
    if written.is_err()
        && let Err(err) = file.set_len(len)
    {
        // The next open ends the torn line instead (see `Tail`).
        tracing::warn!(error = %err, "could not cut a failed write off the audit file");
    }
    written
}

/// Opens an audit log for appending, creating it with `mode`, and reads
/// where its chain stands. Whoever may enable a device must not be able to
/// use it on other files: a symbolic link is refused, an existing regular
/// file must be a secretd audit log (or empty), and only such a file has
/// its mode set. Anything else that opens for writing (a pipe, a device
/// such as /dev/full) is written to as it is, never changed.
fn open_log(path: &std::path::Path, mode: Option<u32>) -> io::Result<(File, Tail)> {
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the path is a symbolic link; give the file's real path",
        ));
    }
    let mut options = OpenOptions::new();
    options.read(true).append(true).create(true);
    if let Some(mode) = mode {
        options.mode(mode);
    }
    let mut file = options.open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Ok((file, Tail::default()));
    }
    let tail = Tail::read(&mut file)?;
    if tail.foreign {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the file holds something other than a secretd audit log; \
             refusing to append to it (use a new file)",
        ));
    }
    if let Some(mode) = mode
        && meta.permissions().mode() & 0o7777 != mode
    {
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    Ok((file, tail))
}

/// What the end of an existing file says about its chain.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tail {
    /// Where the chain in the file stands; `None` for an empty file (or
    /// one with no chained lines), where an earlier chain carries on.
    head: Option<ChainHead>,
    /// The file ends in the middle of a line.
    torn: bool,
    /// The file's last complete line is not a line of an audit chain: it
    /// is not an audit log of ours.
    foreign: bool,
}

impl Tail {
    fn read(file: &mut File) -> io::Result<Tail> {
        let len = file.seek(SeekFrom::End(0))?;
        if len == 0 {
            return Ok(Tail::default());
        }
        let start = len.saturating_sub(MAX_TAIL);
        file.seek(SeekFrom::Start(start))?;
        let mut bytes = Vec::new();
        file.take(MAX_TAIL).read_to_end(&mut bytes)?;
        let torn = !bytes.ends_with(b"\n");
        // The last complete line that is a link of a chain; a torn last
        // line is skipped.
        let mut lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
        lines.pop(); // after the last newline: empty, or the torn fragment
        let last = lines.iter().rev().find(|l| !l.is_empty());
        let head = last.and_then(|l| ChainHead::after(l).ok());
        Ok(Tail {
            foreign: last.is_some() && head.is_none(),
            head,
            torn,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secretd_client::audit::Verifier;

    fn verify(path: &std::path::Path) -> Result<u64, String> {
        let text = std::fs::read(path).unwrap();
        let mut verifier = Verifier::new();
        for (i, line) in text.split(|&b| b == b'\n').enumerate() {
            if line.is_empty() {
                continue;
            }
            verifier
                .feed(line)
                .map_err(|p| format!("line {}: {p}", i + 1))?;
        }
        Ok(verifier.report().lines)
    }

    const TIMEOUT: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn lines_are_chained_across_restarts_and_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let target = Target::File {
            path: path.clone(),
            mode: Some(0o600),
        };
        let sink = Sink::start("t", target.clone()).unwrap();
        for n in 0..10 {
            sink.write(format!("{{\"n\":{n}}}").into_bytes(), TIMEOUT)
                .await
                .unwrap();
        }
        drop(sink);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        // A restarted server carries the chain on in the same file.
        let sink = Sink::start("t", target.clone()).unwrap();
        sink.write(b"{\"n\":10}".to_vec(), TIMEOUT).await.unwrap();
        assert_eq!(verify(&path), Ok(11));

        // Rotation: the file is renamed, the sink reopens a new one and
        // the new file's first line links to the old file's last.
        let rotated = dir.path().join("audit.log.1");
        std::fs::rename(&path, &rotated).unwrap();
        sink.reopen();
        sink.write(b"{\"n\":11}".to_vec(), TIMEOUT).await.unwrap();
        let first: serde_json::Value = serde_json::from_slice(
            std::fs::read(&path)
                .unwrap()
                .split(|&b| b == b'\n')
                .next()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(first["seq"], 12);
        let old = std::fs::read(&rotated).unwrap();
        let last_old = old.split(|&b| b == b'\n').rev().nth(1).unwrap();
        assert_eq!(
            first["prev_hash"],
            secretd_client::audit::line_hash(last_old)
        );
    }

    #[tokio::test]
    async fn a_torn_line_is_ended_and_the_chain_resumes_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let target = Target::File {
            path: path.clone(),
            mode: None,
        };
        let sink = Sink::start("t", target.clone()).unwrap();
        sink.write(b"{\"n\":1}".to_vec(), TIMEOUT).await.unwrap();
        drop(sink);
        // A crash mid-write leaves half a line.
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{\"seq\":2,\"prev_ha").unwrap();
        let sink = Sink::start("t", target).unwrap();
        sink.write(b"{\"n\":2}".to_vec(), TIMEOUT).await.unwrap();
        let text = String::from_utf8(std::fs::read(&path).unwrap()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[1], "{\"seq\":2,\"prev_ha");
        // The fragment is evidence: verification stops there...
        assert!(verify(&path).unwrap_err().starts_with("line 2:"));
        // ...and the line after it links to the last complete line.
        let third: serde_json::Value = serde_json::from_str(lines[2]).unwrap();
        assert_eq!(third["seq"], 2);
        assert_eq!(
            third["prev_hash"],
            secretd_client::audit::line_hash(lines[0].as_bytes())
        );
    }

    #[tokio::test]
    async fn a_failing_write_is_reported_and_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let sink = Sink::start(
            "t",
            Target::File {
                path: path.clone(),
                mode: None,
            },
        )
        .unwrap();
        sink.write(b"{\"n\":1}".to_vec(), TIMEOUT).await.unwrap();
        // Rotated away, and a directory where the file should be.
        std::fs::rename(&path, dir.path().join("old")).unwrap();
        std::fs::create_dir(&path).unwrap();
        sink.reopen();
        let err = sink
            .write(b"{\"n\":2}".to_vec(), TIMEOUT)
            .await
            .unwrap_err();
        assert!(err.contains("directory"), "{err}");
        std::fs::remove_dir(&path).unwrap();
        sink.write(b"{\"n\":3}".to_vec(), TIMEOUT).await.unwrap();
        let line: serde_json::Value =
            serde_json::from_slice(std::fs::read(&path).unwrap().trim_ascii_end()).unwrap();
        assert_eq!(
            (line["seq"].clone(), line["n"].clone()),
            (2.into(), 3.into())
        );
    }

    #[test]
    fn a_write_cut_short_leaves_the_file_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        std::fs::write(&path, b"{\"n\":1}\n").unwrap();
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        let err = cut_on_failure(&mut file, |file| {
            file.write_all(b"{\"n\":")?;
            Err(io::Error::from_raw_os_error(28))
        })
        .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(28));
        assert_eq!(std::fs::read(&path).unwrap(), b"{\"n\":1}\n");
        cut_on_failure(&mut file, |file| file.write_all(b"{\"n\":2}\n")).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{\"n\":1}\n{\"n\":2}\n");
    }

    #[tokio::test]
    async fn a_full_disk_fails_the_write() {
        let sink = Sink::start(
            "t",
            Target::File {
                path: "/dev/full".into(),
                mode: None,
            },
        )
        .unwrap();
        let err = sink.write(b"{}".to_vec(), TIMEOUT).await.unwrap_err();
        assert!(err.contains("No space left"), "{err}");
    }

    #[test]
    fn the_tail_of_a_file_finds_the_last_link() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut head = ChainHead::default();
        let mut text = Vec::new();
        for n in 0..3 {
            text.extend(head.link(format!("{{\"n\":{n}}}").as_bytes()));
            text.push(b'\n');
        }
        std::fs::write(&path, &text).unwrap();
        let tail = Tail::read(&mut File::open(&path).unwrap()).unwrap();
        assert_eq!(
            tail,
            Tail {
                head: Some(head),
                torn: false,
                foreign: false
            }
        );
        std::fs::write(&path, b"").unwrap();
        assert_eq!(
            Tail::read(&mut File::open(&path).unwrap()).unwrap(),
            Tail::default()
        );
        std::fs::write(&path, b"not json\n").unwrap();
        assert!(Tail::read(&mut File::open(&path).unwrap()).unwrap().foreign);
        std::fs::write(&path, b"{\"seq\":1,\"prev_").unwrap();
        assert_eq!(
            Tail::read(&mut File::open(&path).unwrap()).unwrap(),
            Tail {
                head: None,
                torn: true,
                foreign: false
            },
            "a first line torn by a crash is still our log"
        );
    }
}

#[cfg(test)]
mod guard_tests {
    use super::*;

    #[test]
    fn other_files_are_neither_changed_nor_appended_to() {
        let dir = tempfile::tempdir().unwrap();
        // A file that is not an audit log: refused, and left as it was.
        let key = dir.path().join("seal.key");
        std::fs::write(&key, b"secret key material\n").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let err = open_log(&key, Some(0o644)).unwrap_err();
        assert!(
            err.to_string().contains("other than a secretd audit log"),
            "{err}"
        );
        assert_eq!(std::fs::read(&key).unwrap(), b"secret key material\n");
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "its mode is untouched");
        // A symbolic link, even to a log, is refused.
        let log = dir.path().join("audit.log");
        open_log(&log, Some(0o600)).unwrap();
        let link = dir.path().join("link.log");
        std::os::unix::fs::symlink(&log, &link).unwrap();
        let err = open_log(&link, None).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        // A device is written to but never chmodded.
        let before = std::fs::metadata("/dev/null").unwrap().permissions().mode();
        open_log(std::path::Path::new("/dev/null"), Some(0o600)).unwrap();
        assert_eq!(
            std::fs::metadata("/dev/null").unwrap().permissions().mode(),
            before
        );
    }
}
