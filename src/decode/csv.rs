//! CSV rows: a header that names the columns, then one record per line.

use crate::config::InputConfig;
use crate::record::{Interner, Schema, Schemas, SensorId};
use crate::time::{parse_timestamp, EpochUnit};
use std::ops::Range;
use std::sync::Arc;

/// Column names tried, in order, when the config names no timestamp column.
const TIMESTAMP_NAMES: [&str; 5] = ["timestamp", "datetime", "time", "ts", "date"];
/// Column names tried when the config names no sensor column.
const SENSOR_NAMES: [&str; 2] = ["sensor", "sensor_id"];

/// How one CSV file's rows map to records, worked out from its header.
#[derive(Debug)]
pub struct CsvLayout {
    pub delimiter: u8,
    pub names: Vec<String>,
    pub ts_col: usize,
    pub sensor_col: Option<usize>,
    /// Channel columns, in schema order.
    pub channel_cols: Vec<usize>,
    pub schema: Arc<Schema>,
    /// The sensor every row belongs to, when there is no sensor column.
    pub fixed_sensor: Option<SensorId>,
    pub epoch_unit: EpochUnit,
}

/// Splits a line at `delimiter` into byte ranges of its fields, trimming spaces and one pair of
/// surrounding double quotes. (Quoted fields holding the delimiter are not supported: such a row has
/// too many columns.)
pub fn split_fields(line: &str, delimiter: u8, out: &mut Vec<Range<usize>>) {
    out.clear();
    let bytes = line.as_bytes();
    let mut start = 0;
    loop {
        let end = bytes[start..]
            .iter()
            .position(|&b| b == delimiter)
            .map_or(bytes.len(), |p| start + p);
        let (mut a, mut b) = (start, end);
        let blank = |c: u8| c == b' ' || (c == b'\t' && delimiter != b'\t');
        while a < b && blank(bytes[a]) {
            a += 1;
        }
        while b > a && blank(bytes[b - 1]) {
            b -= 1;
        }
        if b - a >= 2 && bytes[a] == b'"' && bytes[b - 1] == b'"' {
            a += 1;
            b -= 1;
        }
        out.push(a..b);
        if end == bytes.len() {
            break;
        }
        start = end + 1;
    }
}

fn detect_delimiter(header: &str) -> u8 {
    let count = |d: u8| header.bytes().filter(|&b| b == d).count();
    [b',', b';', b'\t']
        .into_iter()
        .max_by_key(|&d| count(d))
        .unwrap_or(b',')
}

impl CsvLayout {
    /// Works out the layout from the header line. `file_sensor` names the sensor when the file has
    /// no sensor column. The error is a sentence about the header.
    pub fn from_header(
        header: &str,
        input: &InputConfig,
        file_sensor: &str,
        sensors: &mut Interner,
        schemas: &mut Schemas,
    ) -> Result<CsvLayout, String> {
        let header = header.strip_prefix('\u{feff}').unwrap_or(header);
        let delimiter = input.delimiter.unwrap_or_else(|| detect_delimiter(header));
        let mut fields = Vec::new();
        split_fields(header, delimiter, &mut fields);
        let names: Vec<String> = fields
            .iter()
            .map(|r| header[r.clone()].to_string())
            .collect();
        let find = |name: &str| names.iter().position(|n| n.eq_ignore_ascii_case(name));
        for (i, n) in names.iter().enumerate() {
            if n.is_empty() {
                return Err(format!("column {} of the header has no name", i + 1));
            }
            if n.contains('"') {
                return Err(format!("column {n} of the header has an unbalanced quote"));
            }
            if names[..i].iter().any(|m| m.eq_ignore_ascii_case(n)) {
                return Err(format!("column {n:?} appears twice in the header"));
            }
        }
        let ts_col = match &input.timestamp_column {
            Some(name) => {
                find(name).ok_or_else(|| format!("no timestamp column {name:?} in the header"))?
            }
            None => TIMESTAMP_NAMES
                .iter()
                .find_map(|n| find(n))
                .ok_or_else(|| {
                    format!(
                        "no timestamp column (looked for {}; name one with input.timestamp_column)",
                        TIMESTAMP_NAMES.join(", ")
                    )
                })?,
        };
        let sensor_col = match &input.sensor_column {
            Some(name) => {
                Some(find(name).ok_or_else(|| format!("no sensor column {name:?} in the header"))?)
            }
            None => SENSOR_NAMES.iter().find_map(|n| find(n)),
        };
        if sensor_col == Some(ts_col) {
            return Err(format!(
                "column {:?} cannot be both the timestamp and the sensor column",
                names[ts_col]
            ));
        }
        let channel_cols: Vec<usize> = (0..names.len())
            .filter(|&i| i != ts_col && Some(i) != sensor_col)
            .filter(|&i| {
                !input
                    .ignore_columns
                    .iter()
                    .any(|ig| ig.eq_ignore_ascii_case(&names[i]))
            })
            .collect();
        if channel_cols.is_empty() {
            return Err(
                "no channel columns left after the timestamp, sensor and ignored columns".into(),
            );
        }
        let schema = schemas.get(
            &channel_cols
                .iter()
                .map(|&i| names[i].as_str())
                .collect::<Vec<_>>(),
        );
        let fixed_sensor = sensor_col.is_none().then(|| sensors.intern(file_sensor));
        Ok(CsvLayout {
            delimiter,
            names,
            ts_col,
            sensor_col,
            channel_cols,
            schema,
            fixed_sensor,
            epoch_unit: input.epoch_unit,
        })
    }

    /// Decodes one data line into `values` (cleared first); returns its sensor and timestamp, or why
    /// the line is malformed.
    pub fn decode(
        &self,
        line: &str,
        fields: &mut Vec<Range<usize>>,
        sensors: &mut Interner,
        values: &mut Vec<f32>,
    ) -> Result<(SensorId, i64), String> {
        split_fields(line, self.delimiter, fields);
        let field = |col: usize| &line[fields[col].clone()];
        if fields.len() != self.names.len() {
            return Err(format!(
                "expected {} columns, found {}",
                self.names.len(),
                fields.len()
            ));
        }
        let ts = parse_timestamp(field(self.ts_col), self.epoch_unit).ok_or_else(|| {
            format!(
                "bad timestamp {:?} in column {:?}",
                field(self.ts_col),
                self.names[self.ts_col]
            )
        })?;
        let sensor = match (self.fixed_sensor, self.sensor_col) {
            (Some(s), _) => s,
            (None, Some(col)) if field(col).contains('"') => {
                return Err(format!("sensor id {} has an unbalanced quote", field(col)));
            }
            (None, Some(col)) if !field(col).is_empty() => sensors.intern(field(col)),
            _ => return Err("empty sensor id".into()),
        };
        values.clear();
        for &col in &self.channel_cols {
            values.push(parse_reading(field(col)).ok_or_else(|| {
                format!(
                    "bad number {:?} in column {:?}",
                    field(col),
                    self.names[col]
                )
            })?);
        }
        Ok((sensor, ts))
    }
}

/// A reading: a number, or a missing reading (empty, `NaN`, `null`, `NA`, `N/A`) as NaN.
pub fn parse_reading(text: &str) -> Option<f32> {
    if text.is_empty()
        || ["nan", "null", "na", "n/a"]
            .iter()
            .any(|m| text.eq_ignore_ascii_case(m))
    {
        return Some(f32::NAN);
    }
    // Out-of-range numbers (`1e400`) and infinities are not readings: the record is refused.
    text.parse::<f32>().ok().filter(|v| v.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::NameTable;

    fn input() -> InputConfig {
        InputConfig {
            ignore_columns: vec!["anomaly".into()],
            timestamp_column: None,
            sensor_column: None,
            epoch_unit: EpochUnit::Auto,
            delimiter: None,
        }
    }

    #[test]
    fn header_detection() {
        let mut sensors = Interner::new(Arc::new(NameTable::default()));
        let mut schemas = Schemas::default();
        let l = CsvLayout::from_header(
            "datetime;A;B;anomaly",
            &input(),
            "f",
            &mut sensors,
            &mut schemas,
        )
        .expect("layout");
        assert_eq!((l.delimiter, l.ts_col, l.sensor_col), (b';', 0, None));
        assert_eq!(l.channel_cols, vec![1, 2]);
        assert!(l.fixed_sensor.is_some());
        let l = CsvLayout::from_header(
            "\u{feff}sensor,\"timestamp\",p",
            &input(),
            "f",
            &mut sensors,
            &mut schemas,
        )
        .expect("layout");
        assert_eq!((l.ts_col, l.sensor_col), (1, Some(0)));
        let same = InputConfig {
            sensor_column: Some("timestamp".into()),
            ..input()
        };
        let err = CsvLayout::from_header("timestamp,p", &same, "f", &mut sensors, &mut schemas)
            .expect_err("the timestamp column as the sensor column");
        assert!(
            err.contains("both the timestamp and the sensor column"),
            "{err}"
        );
        for bad in [
            "a,b,c",
            "timestamp,anomaly",
            "timestamp,x,X",
            "timestamp,,x",
            "timestamp,\"p",
        ] {
            assert!(
                CsvLayout::from_header(bad, &input(), "f", &mut sensors, &mut schemas).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn rows_decode_or_say_why_not() {
        let mut sensors = Interner::new(Arc::new(NameTable::default()));
        let mut schemas = Schemas::default();
        let l = CsvLayout::from_header(
            "timestamp,sensor,p,q",
            &input(),
            "f",
            &mut sensors,
            &mut schemas,
        )
        .expect("layout");
        let (mut fields, mut values) = (Vec::new(), Vec::new());
        let (s, ts) = l
            .decode("1000, pump-1 ,1.5,", &mut fields, &mut sensors, &mut values)
            .expect("row");
        assert_eq!(&*sensors.table().get(s), "pump-1");
        assert_eq!(ts, 1_000_000);
        assert_eq!(values[0], 1.5);
        assert!(values[1].is_nan());
        for (bad, why) in [
            ("1000,pump-1,1.5", "expected 4 columns, found 3"),
            ("1000,pump-1,1.5,2,3", "expected 4 columns, found 5"),
            ("noon,pump-1,1.5,2", "bad timestamp \"noon\""),
            ("1000,pump-1,1.5x,2", "bad number \"1.5x\" in column \"p\""),
            ("1000,,1.5,2", "empty sensor id"),
            (
                "1000,\"pump-1,1.5,2",
                "sensor id \"pump-1 has an unbalanced quote",
            ),
            (
                "1000,pump-1,1e400,2",
                "bad number \"1e400\" in column \"p\"",
            ),
            (
                "1000,pump-1,1.5,-inf",
                "bad number \"-inf\" in column \"q\"",
            ),
        ] {
            let err = l
                .decode(bad, &mut fields, &mut sensors, &mut values)
                .expect_err(bad);
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
