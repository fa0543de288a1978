//! What an ATA's virtual line heard, read while the call goes on: a [`Recording`] wraps the
//! WAV file the line writes its earpiece to (`--audio-out`), and a test judges one phase of a
//! call by taking a [`Mark`] when the phase starts, letting it run ([`listen`]), and reading
//! the samples recorded [`since`](Recording::since) the mark. A whole finished recording,
//! checked for its format, is [`crate::read_recording`]; the tones in it are measured with
//! [`crate::tone`].

use std::path::{Path, PathBuf};
use std::time::Duration;

/// An ATA line's earpiece recording, which need not exist yet (the line creates it on its
/// first off-hook).
pub struct Recording {
    path: PathBuf,
}

/// A position in a recording, from which to read what was heard since.
pub struct Mark(usize);

impl Recording {
    pub fn new(path: PathBuf) -> Recording {
        Recording { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A position in the recording made after now: the virtual line completes the file on
    /// disk every second of off-hook time, so the length read now may be up to a second old;
    /// the next length it reaches is not.
    pub fn mark(&self) -> Mark {
        let stale = self.recorded().len();
        let mut fresh = stale;
        let grown = crate::wait_until(Duration::from_secs(5), || {
            fresh = self.recorded().len();
            fresh > stale
        });
        assert!(grown, "{} is not recording", self.path.display());
        Mark(fresh)
    }

    /// What was heard since `mark`.
    pub fn since(&self, mark: &Mark) -> Vec<i16> {
        self.recorded()
            .get(mark.0..)
            .map(<[i16]>::to_vec)
            .unwrap_or_default()
    }

    /// Every sample on disk so far; none while the file does not exist or is being rewritten.
    pub fn recorded(&self) -> Vec<i16> {
        match hound::WavReader::open(&self.path) {
            Ok(reader) => reader.into_samples::<i16>().map_while(Result::ok).collect(),
            Err(_) => Vec::new(),
        }
    }
}

/// Lets a phase last long enough to judge its audio (two flushes of the recordings).
pub fn listen() {
    std::thread::sleep(Duration::from_millis(2500));
}
