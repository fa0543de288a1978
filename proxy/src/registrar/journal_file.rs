//! One journal file on disk (format: [`super::journal`]): created at its full size with its
//! blocks written, so that an append changes no file metadata and its flush writes a page or
//! two, not the file system's journal; read back on start; appended to; reset for reuse.
//! With [`JournalSync::EachAppend`], appends and resets go straight to the device
//! ([`super::direct_append`]) where the file system allows it, and otherwise through the page
//! cache with an `fdatasync`; with [`JournalSync::Periodic`] they stop in the page cache, and
//! the inline writer ([`super::inline_writer`]) syncs them a moment later.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::direct_append::DirectAppender;
use super::journal::{self, END_MARK_LEN, HEADER_LEN};

/// When an append reaches the disk itself, not only the operating system's page cache (which
/// a crash or `kill -9` of the proxy does not lose either way): the `journal-sync` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JournalSync {
    /// Before the append returns: a REGISTER's 200 waits for the disk, and a power cut loses
    /// nothing acknowledged.
    EachAppend,
    /// Within [`super::inline_writer::SYNC_EVERY`], by a sync of the whole file: a power cut
    /// may lose the last moment's changes.
    #[default]
    Periodic,
}

impl std::str::FromStr for JournalSync {
    type Err = String;

    /// The setting's two values, `periodic` and `each`, in any case.
    fn from_str(raw: &str) -> Result<JournalSync, String> {
        match raw.to_ascii_lowercase().as_str() {
            "periodic" => Ok(JournalSync::Periodic),
            "each" => Ok(JournalSync::EachAppend),
            other => Err(format!("`{other}` is not periodic or each")),
        }
    }
}

/// An open journal file and where its next record goes.
#[derive(Debug)]
pub struct JournalFile {
    file: File,
    path: PathBuf,
    generation: u64,
    /// Where the next record goes (an offset in the file).
    end: usize,
    capacity: usize,
    /// Where appends and resets go when the file system takes direct writes (and each
    /// append is to reach the disk).
    direct: Option<DirectAppender>,
    sync: JournalSync,
}

/// A journal file's bytes as read back for its fold: its records are slices of them, not a
/// copy each (a fold reads about 12 000).
pub struct ReadBack {
    bytes: Vec<u8>,
    generation: u64,
}

impl ReadBack {
    /// The payloads of the records of the generation asked for, in order; none when the
    /// file has started over since.
    pub fn records(&self) -> Vec<&[u8]> {
        if journal::read_header(&self.bytes) != Some(self.generation) {
            return Vec::new();
        }
        journal::read_records(&self.bytes[HEADER_LEN..], self.generation).0
    }
}

/// What a journal file held when it was opened.
pub struct Replayed {
    pub file: JournalFile,
    /// The payloads of its records, in order.
    pub records: Vec<Vec<u8>>,
}

impl JournalFile {
    /// Opens `path`, creating it `capacity` bytes long (zeros, written and synced) when it is
    /// missing or shorter, and reads the records of the generation its header names. A file
    /// without a valid header (new, or left by a crash before its first header was synced)
    /// has none.
    pub fn open(path: &Path, capacity: usize) -> io::Result<Replayed> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        if bytes.len() < capacity {
            // Written, not only allocated (fallocate leaves "unwritten" extents, whose first
            // write is a metadata change the file system journals at each fdatasync).
            file.write_all_at(&vec![0u8; capacity - bytes.len()], bytes.len() as u64)?;
            file.sync_all()?;
            if let Some(dir) = path.parent() {
                File::open(dir)?.sync_all()?;
            }
        }
        let capacity = capacity.max(bytes.len());
        // What the file now holds: what was read, then the zeros just written.
        bytes.resize(capacity, 0);
        let (generation, records, end) = match journal::read_header(&bytes) {
            Some(generation) => {
                let (records, end) = journal::read_records(&bytes[HEADER_LEN..], generation);
                let records = records.into_iter().map(<[u8]>::to_vec).collect();
                (generation, records, HEADER_LEN + end)
            }
            None => (0, Vec::new(), HEADER_LEN),
        };
        let direct = DirectAppender::open(path, capacity, &bytes, end);
        Ok(Replayed {
            file: JournalFile {
                file,
                path: path.to_owned(),
                generation,
                end,
                capacity,
                direct,
                sync: JournalSync::EachAppend,
            },
            records,
        })
    }

    /// The file at `path` read afresh, for the records of `generation` (a fold thread reads
    /// the full file while the writer appends to the other one).
    pub fn read_back(path: &Path, generation: u64) -> io::Result<ReadBack> {
        Ok(ReadBack {
            bytes: std::fs::read(path)?,
            generation,
        })
    }

    /// The generation of the records appended now.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Where it is on disk, for error messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether `bytes` more fit (with the zero length written after them).
    pub fn fits(&self, bytes: usize) -> bool {
        self.end + bytes + END_MARK_LEN <= self.capacity
    }

    /// Sets when appends reach the disk (a file opens with [`JournalSync::EachAppend`]).
    pub fn set_sync(&mut self, sync: JournalSync) {
        self.sync = sync;
        if sync == JournalSync::Periodic && self.direct.take().is_some() {
            // The direct writes at open left none of the file in the page cache, and an
            // append into a page that is not there first reads its block from the disk, on
            // the worker that answers the REGISTER (2 % of the proxy's CPU at 1000/s, and a
            // wait for the disk). So the kernel reads it all back now, in the background.
            // SAFETY: `posix_fadvise` only reads the descriptor, which `self.file` owns.
            unsafe {
                libc::posix_fadvise(self.file.as_raw_fd(), 0, 0, libc::POSIX_FADV_WILLNEED);
            }
        }
    }

    /// A second handle on the file, to sync it while appends go on through this one.
    pub fn handle(&self) -> io::Result<File> {
        self.file.try_clone()
    }

    /// Whether appends go straight to the device (see [`super::direct_append`]).
    pub fn writes_directly(&self) -> bool {
        self.direct.is_some()
    }

    /// Whether nothing has been appended since the last reset.
    pub fn is_empty(&self) -> bool {
        self.end == HEADER_LEN
    }

    /// Writes `records` (already encoded in this file's generation, see
    /// [`journal::push_record`]) at the end, followed by a zero length, and returns once they
    /// are on disk, or with [`JournalSync::Periodic`] in the page cache. On an error nothing
    /// counts as appended: the next append writes over them.
    pub fn append(&mut self, records: &mut Vec<u8>) -> io::Result<()> {
        if !self.fits(records.len()) {
            return Err(io::Error::other("journal full"));
        }
        let appended = records.len();
        if let Some(direct) = &mut self.direct {
            direct.append(self.end, records, END_MARK_LEN)?;
        } else {
            records.extend_from_slice(&[0; END_MARK_LEN]);
            let written = self.file.write_all_at(records, self.end as u64);
            records.truncate(appended);
            written?;
            self.sync_each_append()?;
        }
        self.end += appended;
        Ok(())
    }

    /// Starts the file over as `generation` (higher than any before): its records are no
    /// longer replayed. Called once they are all in redb.
    pub fn reset(&mut self, generation: u64) -> io::Result<()> {
        let mut head = journal::header(generation).to_vec();
        head.extend_from_slice(&[0; END_MARK_LEN]);
        if let Some(direct) = &mut self.direct {
            direct.rewrite_start(&head)?;
        } else {
            self.file.write_all_at(&head, 0)?;
            self.sync_each_append()?;
        }
        self.generation = generation;
        self.end = HEADER_LEN;
        Ok(())
    }

    fn sync_each_append(&self) -> io::Result<()> {
        match self.sync {
            JournalSync::EachAppend => self.file.sync_data(),
            JournalSync::Periodic => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn append(file: &mut JournalFile, payload: &[u8]) {
        let mut records = Vec::new();
        journal::push_record(&mut records, file.generation(), payload);
        file.append(&mut records).unwrap();
    }

    #[test]
    fn appended_records_are_replayed_on_reopening_and_reset_forgets_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let mut file = JournalFile::open(&path, 4096).unwrap().file;
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 4096);
        file.reset(5).unwrap();
        append(&mut file, b"first");
        append(&mut file, b"second");
        drop(file);
        let replayed = JournalFile::open(&path, 4096).unwrap();
        assert_eq!(
            replayed.records,
            vec![b"first".to_vec(), b"second".to_vec()]
        );
        assert_eq!(replayed.file.generation(), 5);
        let mut file = replayed.file;
        append(&mut file, b"third");
        file.reset(6).unwrap();
        assert!(file.is_empty());
        drop(file);
        let replayed = JournalFile::open(&path, 4096).unwrap();
        assert!(replayed.records.is_empty());
        assert_eq!(replayed.file.generation(), 6);
    }

    #[test]
    fn appends_go_straight_to_the_device_where_the_file_system_allows_it() {
        use std::os::unix::fs::OpenOptionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let file = JournalFile::open(&path, 4096).unwrap().file;
        let allowed = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(&path)
            .is_ok();
        assert_eq!(file.writes_directly(), allowed);
        // Not whole blocks: through the page cache.
        let odd = JournalFile::open(&dir.path().join("odd"), 5000)
            .unwrap()
            .file;
        assert!(!odd.writes_directly());
    }

    #[test]
    fn a_file_set_to_periodic_sync_is_read_back_into_the_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let mut file = JournalFile::open(&path, 64 * 4096).unwrap().file;
        if !file.writes_directly() {
            eprintln!("skipped: no O_DIRECT on this file system, so nothing left the page cache");
            return;
        }
        let resident = || {
            let out = std::process::Command::new("fincore")
                .args(["--bytes", "--noheadings", "--output", "RES"])
                .arg(&path)
                .output()
                .expect("fincore (util-linux)");
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse::<usize>()
                .unwrap()
        };
        assert!(
            resident() < 64 * 4096,
            "the direct writes left the file cached"
        );
        file.set_sync(JournalSync::Periodic);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while resident() < 64 * 4096 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(resident(), 64 * 4096);
    }

    #[test]
    fn records_across_block_boundaries_and_a_burst_over_several_blocks_are_all_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let mut file = JournalFile::open(&path, 8 * 4096).unwrap().file;
        file.reset(3).unwrap();
        let mut expected = Vec::new();
        // Lone appends of odd sizes, many ending in another block than they start in.
        for n in 0..60u8 {
            let payload = vec![n; 1 + usize::from(n) * 7 % 300];
            append(&mut file, &payload);
            expected.push(payload);
        }
        // One append of many records, 12 KiB in all.
        let mut records = Vec::new();
        for n in 0..40u8 {
            let payload = vec![n ^ 0x5a; 300];
            journal::push_record(&mut records, 3, &payload);
            expected.push(payload);
        }
        file.append(&mut records).unwrap();
        append(&mut file, b"after the burst");
        expected.push(b"after the burst".to_vec());
        drop(file);
        let replayed = JournalFile::open(&path, 8 * 4096).unwrap();
        assert_eq!(replayed.records.len(), expected.len());
        assert_eq!(replayed.records, expected);
        // Reopened, it appends after what it replayed.
        let mut file = replayed.file;
        append(&mut file, b"reopened");
        drop(file);
        let replayed = JournalFile::open(&path, 8 * 4096).unwrap();
        assert_eq!(replayed.records.last().unwrap(), b"reopened");
        assert_eq!(replayed.records.len(), expected.len() + 1);
    }

    #[test]
    fn a_full_journal_refuses_the_append_and_keeps_what_it_has() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let mut file = JournalFile::open(&path, 64).unwrap().file;
        file.reset(1).unwrap();
        append(&mut file, &[7; 20]);
        let mut records = Vec::new();
        journal::push_record(&mut records, 1, &[8; 20]);
        assert!(!file.fits(records.len()));
        assert!(file.append(&mut records).is_err());
        drop(file);
        assert_eq!(
            JournalFile::open(&path, 64).unwrap().records,
            vec![vec![7; 20]]
        );
    }
}
