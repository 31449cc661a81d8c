//! The spool's on-disk format: a segment is a file of checksummed messages, appended to only.
//!
//! ```text
//! segment  = MAGIC record*
//! record   = len: u32 LE | crc: u32 LE (CRC-32 of body) | body (len bytes)
//! body     = topic: str16 | key: flag u8, bytes32 | headers: u16 count, (str16, str32)* | payload: bytes32
//! strN     = N-bit LE length, UTF-8 bytes          bytesN = N-bit LE length, bytes
//! ```
//!
//! A crash can leave the last record of the segment being written torn (cut short or with a
//! checksum that does not match): [`scan`] stops there and reports it.

/// The first bytes of every segment (format version 1).
pub const MAGIC: &[u8; 8] = b"VGSPOOL1";

/// Bytes before a record's body.
pub const RECORD_HEAD: usize = 8;

/// The largest body [`scan`] accepts (a length beyond it is taken for a torn record).
pub const MAX_BODY: usize = 64 << 20;

/// One message for the uplink, borrowed: what the Kafka sink produces or the spool stores.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outgoing<'a> {
    pub topic: &'a str,
    pub key: Option<&'a [u8]>,
    pub headers: &'a [(&'a str, &'a str)],
    pub payload: &'a [u8],
}

/// A message read back from a segment.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub topic: String,
    pub key: Option<Vec<u8>>,
    pub headers: Vec<(String, String)>,
    pub payload: Vec<u8>,
}

/// Appends `m` as one record to `out`.
pub fn encode(m: &Outgoing<'_>, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; RECORD_HEAD]);
    put16(out, m.topic.as_bytes());
    match m.key {
        Some(k) => {
            out.push(1);
            put32(out, k);
        }
        None => {
            out.push(0);
            put32(out, &[]);
        }
    }
    out.extend_from_slice(&(m.headers.len().min(u16::MAX as usize) as u16).to_le_bytes());
    for (k, v) in m.headers.iter().take(u16::MAX as usize) {
        put16(out, k.as_bytes());
        put32(out, v.as_bytes());
    }
    put32(out, m.payload);
    let body = &out[start + RECORD_HEAD..];
    let (len, crc) = (body.len() as u32, crc32(body));
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

fn put16(out: &mut Vec<u8>, b: &[u8]) {
    let b = &b[..b.len().min(u16::MAX as usize)];
    out.extend_from_slice(&(b.len() as u16).to_le_bytes());
    out.extend_from_slice(b);
}

fn put32(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

/// Where [`scan`] stopped short of the end.
#[derive(Debug, Clone, PartialEq)]
pub struct Torn {
    /// Byte offset of the first record that is not whole.
    pub at: u64,
    pub why: &'static str,
}

/// The records of `bytes` (a segment's contents from `from`, a record boundary), as
/// `(end offset, body range)`, up to the end or the first record that is not whole.
pub fn scan(bytes: &[u8], from: u64) -> (Vec<(u64, std::ops::Range<usize>)>, Option<Torn>) {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let torn = |why| Torn {
            at: from + at as u64,
            why,
        };
        let Some(head) = bytes.get(at..at + RECORD_HEAD) else {
            return (out, Some(torn("cut short in its header")));
        };
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        if len > MAX_BODY {
            return (out, Some(torn("an impossible length")));
        }
        let body = at + RECORD_HEAD..at + RECORD_HEAD + len;
        let Some(b) = bytes.get(body.clone()) else {
            return (out, Some(torn("cut short")));
        };
        if crc32(b) != crc {
            return (out, Some(torn("a checksum that does not match")));
        }
        at = body.end;
        out.push((from + at as u64, body));
    }
    (out, None)
}

/// A record's body as a message; `None` when its checksum matched but its layout does not (a
/// record not written by this version).
pub fn decode(body: &[u8]) -> Option<Stored> {
    let mut r = Reader(body);
    let topic = String::from_utf8(r.take16()?.to_vec()).ok()?;
    let has_key = r.take(1)?[0] == 1;
    let key = r.take32()?;
    let key = has_key.then(|| key.to_vec());
    let n = u16::from_le_bytes(r.take(2)?.try_into().ok()?);
    let mut headers = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let k = String::from_utf8(r.take16()?.to_vec()).ok()?;
        let v = String::from_utf8(r.take32()?.to_vec()).ok()?;
        headers.push((k, v));
    }
    let payload = r.take32()?.to_vec();
    r.0.is_empty().then_some(Stored {
        topic,
        key,
        headers,
        payload,
    })
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (a, b) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = b;
        Some(a)
    }

    fn take16(&mut self) -> Option<&'a [u8]> {
        let n = u16::from_le_bytes(self.take(2)?.try_into().ok()?);
        self.take(n as usize)
    }

    fn take32(&mut self) -> Option<&'a [u8]> {
        let n = u32::from_le_bytes(self.take(4)?.try_into().ok()?);
        self.take(n as usize)
    }
}

/// CRC-32 (IEEE 802.3, the polynomial of zip and Ethernet), a byte at a time from a table.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in bytes {
        c = CRC_TABLE[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8);
    }
    !c
}

const CRC_TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

#[cfg(test)]
mod tests {
    use super::*;

    fn sample<'a>(headers: &'a [(&'a str, &'a str)]) -> Outgoing<'a> {
        Outgoing {
            topic: "alerts",
            key: Some(b"pump-1"),
            headers,
            payload: br#"{"sensor":"pump-1"}"#,
        }
    }

    #[test]
    fn crc32_is_the_ieee_one() {
        // The check value of CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn records_round_trip() {
        let h = [("vigil.reason", "bad JSON"), ("vigil.source.offset", "7")];
        let mut buf = Vec::new();
        encode(&sample(&h), &mut buf);
        let none = Outgoing {
            topic: "dead",
            key: None,
            headers: &[],
            payload: &[0xFF, 0, 1],
        };
        encode(&none, &mut buf);
        let (records, torn) = scan(&buf, 8);
        assert_eq!(torn, None);
        assert_eq!(records.len(), 2);
        assert_eq!(records[1].0, 8 + buf.len() as u64);
        let first = decode(&buf[records[0].1.clone()]).expect("decodes");
        assert_eq!(first.topic, "alerts");
        assert_eq!(first.key.as_deref(), Some(&b"pump-1"[..]));
        assert_eq!(first.headers[0], ("vigil.reason".into(), "bad JSON".into()));
        assert_eq!(first.payload, br#"{"sensor":"pump-1"}"#);
        let second = decode(&buf[records[1].1.clone()]).expect("decodes");
        assert_eq!(second.key, None);
        assert_eq!(second.payload, [0xFF, 0, 1]);
    }

    #[test]
    fn a_torn_or_altered_last_record_is_found_at_its_start() {
        let mut buf = Vec::new();
        encode(&sample(&[]), &mut buf);
        let whole = buf.len();
        encode(&sample(&[]), &mut buf);
        // Every cut inside the second record, and a flipped bit in it.
        for cut in whole..buf.len() {
            let (records, torn) = scan(&buf[..cut], 0);
            assert_eq!(records.len(), 1);
            assert_eq!(torn.map(|t| t.at), (cut > whole).then_some(whole as u64));
        }
        let mut bad = buf.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0x10;
        let (records, torn) = scan(&bad, 0);
        assert_eq!(records.len(), 1);
        assert_eq!(
            torn,
            Some(Torn {
                at: whole as u64,
                why: "a checksum that does not match"
            })
        );
    }

    #[test]
    fn a_body_of_another_layout_does_not_decode() {
        assert_eq!(decode(&[]), None);
        assert_eq!(decode(&[1, 0, b'a', 2]), None);
        let mut buf = Vec::new();
        encode(&sample(&[]), &mut buf);
        buf.push(0);
        assert_eq!(decode(&buf[RECORD_HEAD..]), None, "trailing bytes");
    }
}
