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
    // Sorted by name, names unique and not empty. Most records come sorted (`vigil produce`
    // writes them so): one pass checks that; others take an insertion sort (a few channels).
    let v = &mut out.values;
    let increasing = |v: &[(Range<usize>, Option<f64>)]| {
        v.windows(2)
            .all(|w| name_lt(&b[w[0].0.clone()], &b[w[1].0.clone()]))
    };
    if !increasing(v) {
        for i in 1..v.len() {
            let mut j = i;
            while j > 0 && name_lt(&b[v[j].0.clone()], &b[v[j - 1].0.clone()]) {
                v.swap(j - 1, j);
                j -= 1;
            }
        }
        if !increasing(v) {
            return false; // a duplicate
        }
    }
    !v[0].0.is_empty()
}

/// `a < b` for channel names, inline: they are short, and a call to `memcmp` cost more than the
/// comparison (measured in the decode bench).
#[inline]
pub fn name_lt(a: &[u8], b: &[u8]) -> bool {
    for (x, y) in a.iter().zip(b) {
        if x != y {
            return x < y;
        }
    }
    a.len() < b.len()
}

/// `a == b` for channel names, inline as [`name_lt`].
#[inline]
pub fn name_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && !name_lt(a, b)
}

/// `mantissa · 10^exp` to the nearest double when that takes one correctly rounded operation
/// (Clinger's fast path: the mantissa exact in a double, the power of ten too), else `None`.
#[inline]
fn exact(mantissa: u64, digits: u32, exp: i32) -> Option<f64> {
    const POW10: [f64; 23] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
        1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
    ];
    if digits > 19 || mantissa > 1 << 53 {
        return None;
    }
    let m = mantissa as f64;
    match exp {
        0..=22 => Some(m * POW10[exp as usize]),
        -22..=-1 => Some(m / POW10[(-exp) as usize]),
        _ if mantissa == 0 => Some(0.0),
        _ => None,
    }
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
        let rest = &self.b[start..];
        let n = rest
            .iter()
            .position(|&c| c == b'"' || c == b'\\' || !(0x20..0x80).contains(&c))?;
        if rest[n] != b'"' {
            return None;
        }
        self.at = start + n + 1;
        Some(start..start + n)
    }

    /// A JSON number, finite as an f64, parsed to the nearest double as the general parser does.
    /// Most readings take the exact fast path ([`exact`]); the rest go through `str::parse`.
    #[inline]
    fn number(&mut self) -> Option<f64> {
        let negative = self.eat(b'-');
        let start = self.at;
        // Significant digits (a fraction's leading zeros aside) as an integer while they fit; a
        // number with more takes `str::parse` (`exact` declines it), so only their count matters.
        let (mut mantissa, mut digits, mut scale) = (0u64, 0u32, 0i32);
        let mut take = |c: u8, fraction: bool| {
            if mantissa != 0 || c != b'0' {
                digits += 1;
                if digits > 19 {
                    return;
                }
                mantissa = mantissa * 10 + (c - b'0') as u64;
            }
            scale -= fraction as i32;
        };
        match self.next()? {
            b'0' => {}
            c @ b'1'..=b'9' => {
                take(c, false);
                while let Some(c @ b'0'..=b'9') = self.peek() {
                    take(c, false);
                    self.at += 1;
                }
            }
            _ => return None,
        }
        if self.eat(b'.') {
            if !self.peek()?.is_ascii_digit() {
                return None;
            }
            while let Some(c @ b'0'..=b'9') = self.peek() {
                take(c, true);
                self.at += 1;
            }
        }
        let mut exponent = 0i32;
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            let minus = self.peek() == Some(b'-');
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if !self.peek()?.is_ascii_digit() {
                return None;
            }
            while let Some(c @ b'0'..=b'9') = self.peek() {
                exponent = (exponent * 10 + (c - b'0') as i32).min(100_000);
                self.at += 1;
            }
            if minus {
                exponent = -exponent;
            }
        }
        let v = match exact(mantissa, digits, scale + exponent) {
            Some(v) => v,
            None => std::str::from_utf8(&self.b[start..self.at])
                .ok()?
                .parse::<f64>()
                .ok()?,
        };
        let v = if negative { -v } else { v };
        v.is_finite().then_some(v)
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

    /// The fast path and its fallback give `str::parse`'s double for every kind of number.
    #[test]
    fn numbers_are_read_to_the_nearest_double() {
        let mut rng = vigil_kernels::rng::Rng(9);
        let mut texts: Vec<String> = [
            "0",
            "0.0",
            "1",
            "0.1",
            "0.3",
            "9007199254740993",
            "9007199254740992",
            "1e22",
            "1e23",
            "1.5e-22",
            "1e-23",
            "123456789012345678901234",
            "0.000000000000000000001",
            "2.2250738585072011e-308",
            "4.9e-324",
            "1.7976931348623157e308",
            "0e999",
            "5E+3",
            "1234567890123456789",
            "12345678901234567890",
            "0.1234567890123456789",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for _ in 0..20_000 {
            let digits = 1 + (rng.next_u64() % 20) as usize;
            let mut t: String = (0..digits)
                .map(|_| char::from(b'0' + (rng.next_u64() % 10) as u8))
                .collect();
            let t0 = t.trim_start_matches('0');
            t = if t0.is_empty() { "0".into() } else { t0.into() };
            let dot = (rng.next_u64() % (t.len() as u64 + 1)) as usize;
            if dot > 0 && dot < t.len() {
                t.insert(dot, '.');
            } else if dot == 0 {
                t = format!("0.{}{t}", "0".repeat((rng.next_u64() % 4) as usize));
            }
            if rng.next_u64().is_multiple_of(3) {
                t.push_str(&format!("e{}", (rng.next_u64() % 60) as i64 - 30));
            }
            texts.push(t);
        }
        for t in texts {
            for signed in [t.clone(), format!("-{t}")] {
                let want: f64 = signed.parse().unwrap_or_else(|e| panic!("{signed}: {e}"));
                // At the payload's end, and followed by more (eight-byte reads see past it).
                for after in ["", ",\"flow\":1}}", "}"] {
                    let text = format!("{signed}{after}");
                    let mut r = Reader {
                        b: text.as_bytes(),
                        at: 0,
                    };
                    let got = r.number();
                    assert_eq!(r.at, signed.len(), "{text}");
                    match got {
                        Some(v) => assert_eq!(v.to_bits(), want.to_bits(), "{text}"),
                        None => assert!(!want.is_finite(), "{text}"),
                    }
                }
            }
        }
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
