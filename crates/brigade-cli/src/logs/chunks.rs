//! Reading a stream in fixed-size chunks of whole lines, so that memory does
//! not grow with the file: a partial line at a chunk's end is carried over to
//! the front of the next chunk.

use std::io::{self, Read};

use memchr::memrchr;

/// The usual chunk: large enough that the per-chunk cost vanishes, small
/// enough to stay in a core's cache.
pub const CHUNK: usize = 256 << 10;
/// A line longer than this is an error: the buffer grows to hold one line,
/// and no further (the memory promise).
pub const MAX_LINE: usize = 4 << 20;
/// How much of a file's start is looked at for a NUL byte (binary).
const SNIFF: usize = 8192;

/// What a stream held, besides what the chunks' callback saw.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub lines: u64,
    pub bytes: u64,
}

/// Why a stream was not read to its end.
#[derive(Debug)]
pub enum Stop {
    /// A NUL byte near the start: a binary file.
    Binary,
    /// A line longer than `MAX_LINE`, at this line number (1-based).
    LongLine(u64),
    /// The callback asked to stop (the job was cancelled or timed out).
    Stopped,
    Io(io::Error),
}

/// Newlines in `b`: a plain count the compiler vectorises, whatever the
/// density (`memchr_iter` slows to a byte at a time on a file of newlines).
pub fn newlines(b: &[u8]) -> u64 {
    b.iter().filter(|&&c| c == b'\n').count() as u64
}

/// Reads `r` to its end and calls `each` with every chunk of whole lines (the
/// last one perhaps without its newline), until `each` returns false. `buf` is the reader's buffer, kept
/// between calls: it holds `CHUNK` bytes, or up to `MAX_LINE` while a longer
/// line passes.
pub fn for_each_chunk(
    r: &mut dyn Read,
    buf: &mut Vec<u8>,
    mut each: impl FnMut(&[u8]) -> bool,
) -> Result<Totals, Stop> {
    if buf.len() != CHUNK {
        buf.resize(CHUNK, 0);
        buf.shrink_to(CHUNK);
    }
    let mut totals = Totals::default();
    let mut len = 0; // valid bytes in buf, starting with the carried partial line
    let mut first = true;
    loop {
        // Fill the buffer, or up to the end of the stream.
        let mut eof = false;
        while len < buf.len() {
            match r.read(&mut buf[len..]) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Stop::Io(e)),
            }
        }
        if first {
            first = false;
            if memchr::memchr(0, &buf[..len.min(SNIFF)]).is_some() {
                return Err(Stop::Binary);
            }
        }
        if eof {
            if len > 0 {
                let last = &buf[..len];
                totals.lines += newlines(last) + u64::from(last[len - 1] != b'\n');
                totals.bytes += len as u64;
                if !each(last) {
                    return Err(Stop::Stopped);
                }
            }
            return Ok(totals);
        }
        match memrchr(b'\n', &buf[..len]) {
            Some(i) => {
                let whole = &buf[..=i];
                totals.lines += newlines(whole);
                totals.bytes += whole.len() as u64;
                if !each(whole) {
                    return Err(Stop::Stopped);
                }
                buf.copy_within(i + 1..len, 0);
                len -= i + 1;
                if buf.len() > CHUNK && len < CHUNK {
                    // The long line has passed: give its memory back.
                    buf.truncate(CHUNK);
                    buf.shrink_to(CHUNK);
                }
            }
            None if buf.len() < MAX_LINE => {
                let grown = (buf.len() * 2).min(MAX_LINE);
                buf.resize(grown, 0);
            }
            None => return Err(Stop::LongLine(totals.lines + 1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that returns at most `step` bytes a call, to move the chunk edges.
    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(self.1).min(out.len());
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn chunks(data: &[u8], step: usize) -> (Vec<Vec<u8>>, Result<Totals, Stop>) {
        let mut seen = Vec::new();
        let r = for_each_chunk(&mut Trickle(data, step), &mut Vec::new(), |c| {
            seen.push(c.to_vec());
            true
        });
        (seen, r)
    }

    #[test]
    fn chunks_hold_whole_lines_and_rejoin_to_the_input() {
        let mut data = Vec::new();
        for i in 0..100_000u32 {
            data.extend_from_slice(
                format!("line {i} {}\n", "x".repeat(i as usize % 97)).as_bytes(),
            );
        }
        data.extend_from_slice(b"no newline at the end");
        for step in [1 << 20, 4093, CHUNK] {
            let (seen, r) = chunks(&data, step);
            let t = r.unwrap();
            assert!(seen.len() > 10);
            assert_eq!(seen.concat(), data);
            for c in &seen[..seen.len() - 1] {
                assert_eq!(c.last(), Some(&b'\n'));
                assert!(c.len() <= CHUNK);
            }
            assert_eq!(t.lines, 100_001);
            assert_eq!(t.bytes, data.len() as u64);
        }
    }

    #[test]
    fn a_long_line_grows_the_buffer_up_to_the_limit() {
        let mut data = vec![b'a'; 3 * CHUNK];
        data.extend_from_slice(b"\nshort\n");
        let (seen, r) = chunks(&data, 1 << 20);
        assert_eq!(r.unwrap().lines, 2);
        assert_eq!(seen.concat(), data);
        let mut data = b"one\ntwo\n".to_vec();
        data.extend(std::iter::repeat_n(b'a', MAX_LINE + 1));
        assert!(matches!(chunks(&data, 1 << 20).1, Err(Stop::LongLine(3))));
    }

    #[test]
    fn a_nul_near_the_start_is_binary_and_empty_is_nothing() {
        assert!(matches!(chunks(b"ERROR\0x\n", 3).1, Err(Stop::Binary)));
        let (seen, r) = chunks(b"", 3);
        assert!(seen.is_empty());
        assert_eq!(r.unwrap(), Totals::default());
        let stop = for_each_chunk(&mut &b"a\nb\n"[..], &mut Vec::new(), |_| false);
        assert!(matches!(stop, Err(Stop::Stopped)));
    }
}
