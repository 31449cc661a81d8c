//! The one shape most records come in, `{"sensor":"…","ts":…,"values":{"…":number|null,…}}`
//! (what `vigil produce` writes), read without allocating: byte ranges into the payload and the
//! numbers. Anything else (other fields, escapes, non-ASCII names, a number out of range, a
//! duplicate, a record that is not complete JSON) is not this shape, and the caller hands the
//! record to the general parser ([`super::json::decode`]), which accepts or refuses it with its
//! reason. So this reader never refuses a record; it either reads exactly what the general parser
//! would, or declines.

use std::ops::Range;

/// A record's timestamp: a number, or the range of a string.
#[derive(Clone, Debug, PartialEq)]
pub enum Ts {
    Number(f64),
    Text(Range<usize>),
}

/// What [`read`] found, reused from record to record.
#[derive(Debug, Default)]
pub struct Shape {
    pub sensor: Range<usize>,
    pub ts: Option<Ts>,
    /// Channel name ranges and readings (`None`: null), sorted by name, names unique and not
    /// empty, every reading finite as an f32.
    pub values: Vec<(Range<usize>, Option<f64>)>,
}

/// Reads `b` into `out`; false when `b` is not this shape (then `out` holds nothing useful).
pub fn read(b: &[u8], out: &mut Shape) -> bool {
    out.values.clear();
    out.ts = None;
    let mut r = Reader { b, at: 0 };
    let (mut sensor, mut values) = (false, false);
    r.ws();
    if !r.eat(b'{') {
        return false;
    }
    loop {
        let Some(key) = r.member() else {
            return false;
        };
        match &b[key] {
            b"sensor" if !sensor => {
                let Some(s) = r.string() else {
                    return false;
                };
                out.sensor = s;
                sensor = true;
            }
            b"ts" if out.ts.is_none() => {
                out.ts = Some(if r.peek() == Some(b'"') {
                    match r.string() {
                        Some(s) => Ts::Text(s),
                        None => return false,
                    }
                } else {
                    match r.number() {
                        Some(n) => Ts::Number(n),
                        None => return false,
                    }
                });
            }
            b"values" if !values => {
                if !r.values(&mut out.values) {
                    return false;
                }
                values = true;
            }
            _ => return false,
        }
        match r.after_member() {
            Some(true) => continue,
            Some(false) => break,
            None => return false,
        }
    }
    r.ws();
    if r.at != b.len() || !sensor || !values || out.ts.is_none() || out.values.is_empty() {
        return false;
    }
    if out.sensor.is_empty() {
        return false; // refused, with its reason, by the general parser
    }
    // Sorted by name (a few channels: insertion sort), names unique and not empty.
    let v = &mut out.values;
    for i in 1..v.len() {
        let mut j = i;
        while j > 0 && b[v[j - 1].0.clone()] > b[v[j].0.clone()] {
            v.swap(j - 1, j);
            j -= 1;
        }
    }
    v.iter().all(|(k, _)| !k.is_empty())
        && v.windows(2).all(|w| b[w[0].0.clone()] != b[w[1].0.clone()])
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.at).copied()
    }

    #[inline]
    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.at += 1;
        Some(c)
    }

    #[inline]
    fn eat(&mut self, c: u8) -> bool {
        let yes = self.peek() == Some(c);
        self.at += yes as usize;
        yes
    }

    #[inline]
    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// A string of printable ASCII without escapes; its contents' range.
    #[inline]
    fn string(&mut self) -> Option<Range<usize>> {
        if !self.eat(b'"') {
            return None;
        }
        let start = self.at;
        loop {
            match self.next()? {
                b'"' => return Some(start..self.at - 1),
                b'\\' | 0..=0x1f | 0x80.. => return None,
                _ => {}
            }
        }
    }

    /// A JSON number, finite as an f64, parsed to the nearest double as the general parser does.
    #[inline]
    fn number(&mut self) -> Option<f64> {
        let start = self.at;
        self.eat(b'-');
        match self.next()? {
            b'0' => {}
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.eat(b'.') {
            if !self.peek()?.is_ascii_digit() {
                return None;
            }
            self.digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if !self.peek()?.is_ascii_digit() {
                return None;
            }
            self.digits();
        }
        let text = std::str::from_utf8(&self.b[start..self.at]).ok()?;
        text.parse::<f64>().ok().filter(|v| v.is_finite())
    }

    #[inline]
    fn digits(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.at += 1;
        }
    }

    /// An object member's name and the colon after it (with the whitespace around them).
    #[inline]
    fn member(&mut self) -> Option<Range<usize>> {
        self.ws();
        let key = self.string()?;
        self.ws();
        if !self.eat(b':') {
            return None;
        }
        self.ws();
        Some(key)
    }

    /// After a member's value: `Some(true)` at a comma (another member follows), `Some(false)`
    /// at the object's end.
    #[inline]
    fn after_member(&mut self) -> Option<bool> {
        self.ws();
        match self.next()? {
            b',' => Some(true),
            b'}' => Some(false),
            _ => None,
        }
    }

    /// `{"name": number|null, ...}` (readings finite as f32) appended to `out`.
    fn values(&mut self, out: &mut Vec<(Range<usize>, Option<f64>)>) -> bool {
        if !self.eat(b'{') {
            return false;
        }
        loop {
            let Some(key) = self.member() else {
                return false;
            };
            let v = if self.b[self.at..].starts_with(b"null") {
                self.at += 4;
                None
            } else {
                match self.number() {
                    Some(v) if (v as f32).is_finite() => Some(v),
                    _ => return false,
                }
            };
            out.push((key, v));
            match self.after_member() {
                Some(true) => continue,
                Some(false) => return true,
                None => return false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::json::{decode, JsonTs};
    use crate::time::EpochUnit;

    /// A reading compared bit for bit: sensor, timestamp, channels and readings.
    type Reading = (String, String, Vec<(String, Option<u64>)>);

    /// The general parser's reading of `b`, in this reader's terms.
    fn general(b: &[u8]) -> Option<Reading> {
        let (r, _) = decode(b, EpochUnit::Auto, &[]).ok()?;
        let ts = match r.ts {
            JsonTs::Number(n) => format!("n{}", n.to_bits()),
            JsonTs::Text(t) => format!("t{t}"),
        };
        let values = r
            .values
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(f64::to_bits)))
            .collect();
        Some((r.sensor.to_string(), ts, values))
    }

    /// This reader's reading of `b`, with the timestamp checked as the decoder does (it hands a
    /// record whose timestamp it cannot convert to the general parser too).
    fn fast(b: &[u8]) -> Option<Reading> {
        let mut s = Shape::default();
        if !read(b, &mut s) {
            return None;
        }
        let text = |r: &Range<usize>| String::from_utf8(b[r.clone()].to_vec()).expect("ascii");
        let ts = match s.ts.as_ref()? {
            Ts::Number(n) => {
                EpochUnit::Auto.to_millis(*n)?;
                format!("n{}", n.to_bits())
            }
            Ts::Text(r) => {
                crate::time::parse_timestamp(&text(r), EpochUnit::Auto)?;
                format!("t{}", text(r))
            }
        };
        let values = s
            .values
            .iter()
            .map(|(k, v)| (text(k), v.map(f64::to_bits)))
            .collect();
        Some((text(&s.sensor), ts, values))
    }

    #[test]
    fn reads_what_the_general_parser_reads_or_declines() {
        let cases: &[&str] = &[
            r#"{"sensor":"pump-1","ts":1767571200000,"values":{"pressure":5.1,"flow":null,"temperature":60.25,"vibration":0.125}}"#,
            r#" { "sensor" : "p" , "ts" : "2026-01-05T00:00:01Z" , "values" : { "b" : -1e-3 , "a" : 0 } } "#,
            r#"{"values":{"q":2.5E+2},"ts":1.5,"sensor":"s"}"#,
            r#"{"sensor":"p","ts":1,"values":{"x":0.0012961084521015587,"y":2.2250738585072011e-308}}"#,
            r#"{"sensor":"p","ts":-0,"values":{"x":-0,"y":-0.0,"z":-0e0,"w":18446744073709551617}}"#,
            // Declined: each is refused or read differently by the general parser.
            r#"{"sensor":"p","ts":1,"values":{"x":1e39}}"#,
            r#"{"sensor":"p","ts":1,"values":{"x":1,"x":2}}"#,
            r#"{"sensor":"p","ts":1,"values":{"":1}}"#,
            r#"{"sensor":"p","ts":1,"values":{}}"#,
            r#"{"sensor":"p","ts":1,"values":{"x":01}}"#,
            r#"{"sensor":"p","ts":1,"values":{"x":1.}}"#,
            r#"{"sensor":"p","ts":1,"values":{"x":-}}"#,
            r#"{"sensor":"p","ts":1,"values":{"x":nul}}"#,
            r#"{"sensor":"p","ts":1,"values":{"x":1}} x"#,
            r#"{"sensor":"p","ts":1,"values":{"x":1},}"#,
            r#"{"sensor":"p","sensor":"q","ts":1,"values":{"x":1}}"#,
            r#"{"sensor":"p\"q","ts":1,"values":{"x":1}}"#,
            r#"{"sensor":"pümp","ts":1,"values":{"x":1}}"#,
            r#"{"sensor":"p","ts":1,"values":{"x":1},"unit":"bar"}"#,
            r#"{"sensor":"p","ts":1e400,"values":{"x":1}}"#,
            r#"{"sensor":"p","values":{"x":1}}"#,
            r#"{"sensor":"p","ts":1,"values":{"x":1}"#,
            r#"{"sensor":"","ts":1,"values":{"x":1}}"#,
            "",
            "{",
        ];
        let mut read_fast = 0;
        for case in cases {
            let (g, f) = (general(case.as_bytes()), fast(case.as_bytes()));
            if f.is_some() {
                read_fast += 1;
                assert_eq!(f, g, "{case}");
            }
        }
        assert_eq!(read_fast, 5, "the first five cases");
    }

    #[test]
    fn every_prefix_and_byte_change_is_read_as_the_general_parser_reads_it_or_declined() {
        let base = br#"{"sensor":"pump-12","ts":1767571200123,"values":{"vibration":0.0125,"flow":null,"pressure":-5.5e-1}}"#;
        let mut checked = 0;
        for end in 0..=base.len() {
            let b = &base[..end];
            if let Some(f) = fast(b) {
                assert_eq!(Some(f), general(b), "{}", String::from_utf8_lossy(b));
                checked += 1;
            }
        }
        for i in 0..base.len() {
            for c in [
                b' ', b'0', b'9', b'-', b'"', b'}', b',', b'e', b'.', b'n', 0xc3,
            ] {
                let mut b = base.to_vec();
                b[i] = c;
                if let Some(f) = fast(&b) {
                    assert_eq!(Some(f), general(&b), "{}", String::from_utf8_lossy(&b));
                    checked += 1;
                }
            }
        }
        assert!(checked > 100, "only {checked} variants were read");
    }
}
