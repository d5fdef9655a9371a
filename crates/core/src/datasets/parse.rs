//! Reading a data set: CSV (delimiter sniffed, text and label columns picked by name)
//! or JSON Lines, each row checked with its line number, then validated as a whole and
//! summarised (classes, lengths) for the upload's statistics.

use std::collections::BTreeMap;
use std::io::{BufRead, Read};

use super::DatasetFormat;
use crate::{CoreError, Result};

#[derive(Debug)]
pub(super) struct Row {
    pub(super) line: u64,
    pub(super) text: String,
    pub(super) label: String,
}

#[derive(Debug)]
pub(super) struct Parsed {
    pub(super) rows: Vec<Row>,
    pub(super) columns: Vec<String>,
    pub(super) text_column: String,
    pub(super) label_column: String,
}

fn invalid(msg: String) -> CoreError {
    CoreError::InvalidInput(msg)
}

/// Opens the data afresh (the CSV parser reads it more than once): an upload's temp
/// file, or a stored dataset through the decrypting artifact store.
pub(super) type Opener<'a> = &'a (dyn Fn() -> Result<Box<dyn Read + Send>> + Sync);

pub(super) fn parse(
    open: Opener<'_>,
    format: DatasetFormat,
    text_column: Option<&str>,
    label_column: Option<&str>,
    limit: Option<usize>,
) -> Result<Parsed> {
    match format {
        DatasetFormat::Csv => parse_csv(open, text_column, label_column, limit),
        DatasetFormat::Jsonl => parse_jsonl(open, text_column, label_column, limit),
    }
}

/// Column names taken as the text, and as the label, when the uploader names none
/// (compared case-insensitively, first match wins).
const TEXT_COLUMNS: &[&str] = &[
    "text", "content", "sentence", "review", "document", "body", "message",
];
const LABEL_COLUMNS: &[&str] = &["label", "category", "class", "sentiment", "target", "topic"];

fn pick_columns(
    columns: &[String],
    text_column: Option<&str>,
    label_column: Option<&str>,
) -> Result<(String, String)> {
    let listing = || columns.join(", ");
    let named = |given: &str| columns.iter().find(|c| *c == given).cloned();
    let guess = |candidates: &[&str], not: Option<&str>| -> Option<String> {
        candidates.iter().find_map(|cand| {
            columns
                .iter()
                .find(|c| c.eq_ignore_ascii_case(cand) && Some(c.as_str()) != not)
                .cloned()
        })
    };
    // With exactly two columns, naming (or finding) one of them settles the other.
    let other = |one: &str| -> Option<String> {
        (columns.len() == 2)
            .then(|| columns.iter().find(|c| *c != one).cloned())
            .flatten()
    };
    let text = match text_column {
        Some(t) => named(t).ok_or_else(|| {
            invalid(format!(
                "text column {t:?} not found; the data has: {}",
                listing()
            ))
        })?,
        None => guess(TEXT_COLUMNS, label_column)
            .or_else(|| label_column.and_then(other))
            .ok_or_else(|| {
                invalid(format!(
                    "no text column ({}); the data has: {}; name it with text_column",
                    TEXT_COLUMNS.join(", "),
                    listing()
                ))
            })?,
    };
    let label = match label_column {
        Some(l) => named(l).ok_or_else(|| {
            invalid(format!(
                "label column {l:?} not found; the data has: {}",
                listing()
            ))
        })?,
        None => guess(LABEL_COLUMNS, Some(&text))
            .or_else(|| other(&text))
            .ok_or_else(|| {
                invalid(format!(
                    "no label column ({}); the data has: {}; name it with label_column",
                    LABEL_COLUMNS.join(", "),
                    listing()
                ))
            })?,
    };
    if label == text {
        return Err(invalid("text and label columns must differ".into()));
    }
    Ok((text, label))
}

/// The field delimiter of a CSV upload: comma, tab or semicolon, whichever the header
/// line has most of (comma when none).
fn sniff_delimiter(open: Opener<'_>) -> u8 {
    let mut first = Vec::new();
    if let Ok(f) = open() {
        let _ = std::io::BufReader::new(f).read_until(b'\n', &mut first);
    }
    let count = |d: u8| first.iter().filter(|&&b| b == d).count();
    [b',', b'\t', b';']
        .into_iter()
        .max_by_key(|&d| (count(d), d == b','))
        .filter(|&d| count(d) > 0)
        .unwrap_or(b',')
}

fn check_row(line: u64, text: &str, label: &str) -> Result<()> {
    if text.trim().is_empty() {
        return Err(invalid(format!("line {line}: the text is empty")));
    }
    if label.trim().is_empty() {
        return Err(invalid(format!("line {line}: the label is empty")));
    }
    Ok(())
}

fn parse_csv(
    open: Opener<'_>,
    text_column: Option<&str>,
    label_column: Option<&str>,
    limit: Option<usize>,
) -> Result<Parsed> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .delimiter(sniff_delimiter(open))
        .from_reader(open()?);
    let columns = header_columns(&mut reader)?;
    let (text, label) = pick_columns(&columns, text_column, label_column)?;
    let ti = columns.iter().position(|c| *c == text).unwrap_or(0);
    let li = columns.iter().position(|c| *c == label).unwrap_or(0);
    let mut rows = Vec::new();
    let mut lines = LineCounter::new(open()?);
    for record in reader.byte_records() {
        if limit.is_some_and(|l| rows.len() >= l) {
            break;
        }
        let record = record.map_err(|e| match e.kind() {
            csv::ErrorKind::UnequalLengths {
                pos,
                expected_len,
                len,
            } => invalid(format!(
                "line {}: {len} fields where the header has {expected_len}",
                pos.as_ref().map(|p| lines.line_at(p.byte())).unwrap_or(0)
            )),
            _ => integrity_failure(&e).unwrap_or_else(|| invalid(format!("malformed CSV: {e}"))),
        })?;
        let line = record
            .position()
            .map(|p| lines.line_at(p.byte()))
            .unwrap_or(0);
        let field = |i: usize, name: &str| -> Result<String> {
            let raw = record.get(i).unwrap_or_default();
            std::str::from_utf8(raw)
                .map(str::to_string)
                .map_err(|_| invalid(format!("line {line}: column {name:?} is not valid UTF-8")))
        };
        let row = Row {
            line,
            text: field(ti, &text)?,
            label: field(li, &label)?.trim().to_string(),
        };
        check_row(line, &row.text, &row.label)?;
        rows.push(row);
    }
    Ok(Parsed {
        rows,
        columns,
        text_column: text,
        label_column: label,
    })
}

/// The CSV header's column names (a UTF-8 byte-order mark dropped, names trimmed), each
/// once.
fn header_columns<R: std::io::Read>(reader: &mut csv::Reader<R>) -> Result<Vec<String>> {
    let headers = reader
        .byte_headers()
        .map_err(|e| {
            integrity_failure(&e)
                .unwrap_or_else(|| invalid(format!("line 1: cannot read the CSV header: {e}")))
        })?
        .clone();
    let columns: Vec<String> = headers
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let h = if i == 0 {
                h.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(h)
            } else {
                h
            };
            std::str::from_utf8(h)
                .map(|s| s.trim().to_string())
                .map_err(|_| invalid("line 1: the CSV header is not valid UTF-8".into()))
        })
        .collect::<Result<_>>()?;
    if let Some(dup) = columns
        .iter()
        .enumerate()
        .find(|(i, c)| columns[..*i].contains(c))
        .map(|(_, c)| c)
    {
        return Err(invalid(format!(
            "line 1: the column name {dup:?} appears twice in the header"
        )));
    }
    Ok(columns)
}

/// A CSV read that failed because the stored object did not authenticate (not the
/// uploader's fault: a 500 that says so, not a 400).
fn integrity_failure(e: &csv::Error) -> Option<CoreError> {
    match e.kind() {
        csv::ErrorKind::Io(io) => aiaas_store::crypto_failure(io)
            .map(|c| CoreError::Integrity(format!("stored data failed its integrity check: {c}"))),
        _ => None,
    }
}

/// Line numbers of byte offsets, counted by '\n' alone (the csv crate's own count is off by
/// one on CRLF files). Offsets must be asked for in increasing order.
struct LineCounter {
    reader: std::io::BufReader<Box<dyn Read + Send>>,
    offset: u64,
    newlines: u64,
}

impl LineCounter {
    fn new(source: Box<dyn Read + Send>) -> LineCounter {
        LineCounter {
            reader: std::io::BufReader::new(source),
            offset: 0,
            newlines: 0,
        }
    }

    /// The 1-based line on which byte `offset` lies.
    fn line_at(&mut self, offset: u64) -> u64 {
        while self.offset < offset {
            let Ok(buf) = self.reader.fill_buf() else {
                break;
            };
            if buf.is_empty() {
                break;
            }
            let take = buf.len().min((offset - self.offset) as usize);
            self.newlines += buf[..take].iter().filter(|&&b| b == b'\n').count() as u64;
            self.reader.consume(take);
            self.offset += take as u64;
        }
        // With CRLF the csv crate places a record's start on the '\n' (or "\r\n") that
        // ends the previous line: the record really begins after it.
        loop {
            let next = match self.reader.fill_buf() {
                Ok([b, ..]) if *b == b'\r' || *b == b'\n' => *b,
                _ => break,
            };
            if next == b'\n' {
                self.newlines += 1;
            }
            self.reader.consume(1);
            self.offset += 1;
        }
        self.newlines + 1
    }
}

fn parse_jsonl(
    open: Opener<'_>,
    text_column: Option<&str>,
    label_column: Option<&str>,
    limit: Option<usize>,
) -> Result<Parsed> {
    let mut reader = std::io::BufReader::new(open()?);
    let mut rows = Vec::new();
    let mut columns: Option<Vec<String>> = None;
    let mut picked: Option<(String, String)> = None;
    let mut buf = Vec::new();
    let mut line = 0u64;
    loop {
        if limit.is_some_and(|l| rows.len() >= l) {
            break;
        }
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        line += 1;
        let s = std::str::from_utf8(&buf)
            .map_err(|_| invalid(format!("line {line}: not valid UTF-8")))?;
        let s = s.trim_start_matches('\u{feff}').trim();
        if s.is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(s)
            .map_err(|e| invalid(format!("line {line}: not a JSON object: {e}")))?;
        let obj = value
            .as_object()
            .ok_or_else(|| invalid(format!("line {line}: not a JSON object")))?;
        if columns.is_none() {
            let cols: Vec<String> = obj.keys().cloned().collect();
            picked = Some(pick_columns(&cols, text_column, label_column)?);
            columns = Some(cols);
        }
        let (tc, lc) = picked
            .as_ref()
            .ok_or_else(|| CoreError::Internal("columns".into()))?;
        let text = match obj.get(tc) {
            Some(serde_json::Value::String(t)) => t.clone(),
            Some(_) => {
                return Err(invalid(format!(
                    "line {line}: field {tc:?} must be a string"
                )))
            }
            None => return Err(invalid(format!("line {line}: no field {tc:?}"))),
        };
        let label = match obj.get(lc) {
            Some(serde_json::Value::String(l)) => l.trim().to_string(),
            Some(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => v.to_string(),
            Some(_) => {
                return Err(invalid(format!(
                    "line {line}: field {lc:?} must be a string or number"
                )))
            }
            None => return Err(invalid(format!("line {line}: no field {lc:?}"))),
        };
        check_row(line, &text, &label)?;
        rows.push(Row { line, text, label });
    }
    let columns = columns.unwrap_or_default();
    let (text_column, label_column) = picked.unwrap_or_default();
    Ok(Parsed {
        rows,
        columns,
        text_column,
        label_column,
    })
}

pub(super) fn validate(rows: &[Row]) -> Result<()> {
    if rows.len() < 2 {
        return Err(invalid(format!(
            "the data set has {} row(s); at least two are needed",
            rows.len()
        )));
    }
    let mut first_line: BTreeMap<&str, (u64, usize)> = BTreeMap::new();
    for r in rows {
        first_line.entry(&r.label).or_insert((r.line, 0)).1 += 1;
    }
    if first_line.len() < 2 {
        return Err(invalid(
            "all rows have the same label; a classifier needs at least two classes".into(),
        ));
    }
    if let Some((label, (line, _))) = first_line.iter().find(|(_, (_, n))| *n == 1) {
        return Err(invalid(format!(
            "label {label:?} (line {line}) has a single example; every class needs at least two"
        )));
    }
    Ok(())
}

pub(super) fn statistics(parsed: &Parsed) -> serde_json::Value {
    let rows = &parsed.rows;
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for r in rows {
        *counts.entry(&r.label).or_default() += 1;
    }
    let n = rows.len() as f64;
    let balance: Vec<serde_json::Value> = counts
        .iter()
        .map(|(l, c)| serde_json::json!({"label": l, "count": c, "fraction": *c as f64 / n}))
        .collect();
    let mut tokens: Vec<usize> = rows
        .iter()
        .map(|r| aiaas_train::text::tokenize(&r.text).len())
        .collect();
    let mut chars: Vec<usize> = rows.iter().map(|r| r.text.chars().count()).collect();
    serde_json::json!({
        "rows": rows.len(),
        "classes": counts.len(),
        "class_balance": balance,
        "columns": parsed.columns,
        "text_tokens": summary(&mut tokens),
        "text_chars": summary(&mut chars),
    })
}

fn summary(v: &mut [usize]) -> serde_json::Value {
    v.sort_unstable();
    let pct = |p: f64| -> usize {
        if v.is_empty() {
            return 0;
        }
        let i = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
        v[i.min(v.len() - 1)]
    };
    let mean = if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<usize>() as f64 / v.len() as f64
    };
    serde_json::json!({
        "min": v.first().copied().unwrap_or(0),
        "p50": pct(50.0),
        "p90": pct(90.0),
        "p99": pct(99.0),
        "max": v.last().copied().unwrap_or(0),
        "mean": mean,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// The parser over a plain file (the tests' uploads).
    fn parse(
        path: &Path,
        format: DatasetFormat,
        text_column: Option<&str>,
        label_column: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Parsed> {
        let open = || -> Result<Box<dyn Read + Send>> { Ok(Box::new(std::fs::File::open(path)?)) };
        super::parse(&open, format, text_column, label_column, limit)
    }

    fn write(content: &[u8]) -> tempfile::NamedTempFile {
        use std::io::Write;
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(content).unwrap();
        f
    }

    fn csv_err(content: &[u8]) -> String {
        let f = write(content);
        match parse(f.path(), DatasetFormat::Csv, None, None, None).and_then(|p| validate(&p.rows))
        {
            Err(e) => e.to_string(),
            Ok(()) => panic!(
                "expected an error for {:?}",
                String::from_utf8_lossy(content)
            ),
        }
    }

    #[test]
    fn csv_errors_name_the_line() {
        assert!(csv_err(b"text,label\na,x\nb,x,extra\n").contains("line 3"));
        assert!(csv_err(b"text,label\na,x\n\"\",y\nc,y\n").contains("line 3: the text is empty"));
        assert!(csv_err(b"text,label\na,x\nb,\xff\xfe\n").contains("line 3"));
        assert!(csv_err(b"words,label\na,x\n").contains("no text column"));
        assert!(csv_err(b"text,text,label\na,b,x\n").contains("appears twice"));
        let e = csv_err(b"text,label\na,x\nb,x\nc,y\n");
        assert!(
            e.contains("\"y\"") && e.contains("line 4") && e.contains("single example"),
            "{e}"
        );
        assert!(csv_err(b"text,label\na,x\nb,x\n").contains("two classes"));
    }

    #[test]
    fn csv_picks_category_column_and_reports_stats() {
        let f = write(
            b"\xEF\xBB\xBFtext,category\nhello world,a\nanother one here,a\nbye,b\nsee you,b\n",
        );
        let p = parse(f.path(), DatasetFormat::Csv, None, None, None).unwrap();
        validate(&p.rows).unwrap();
        assert_eq!(p.label_column, "category");
        let s = statistics(&p);
        assert_eq!(s["rows"], 4);
        assert_eq!(s["classes"], 2);
        assert_eq!(s["text_tokens"]["max"], 3);
        assert_eq!(s["class_balance"][0]["fraction"], 0.5);
    }

    #[test]
    fn line_numbers_are_right_for_crlf_files() {
        let e = csv_err(b"text,label\r\ngood,pos\r\n,neg\r\nfoo,neg\r\n");
        assert!(e.contains("line 3: the text is empty"), "{e}");
        let e = csv_err(b"text,label\r\n\"multi\r\nline\",pos\r\nok,pos\r\nbad,neg,x\r\n");
        assert!(e.contains("line 5"), "{e}");
    }

    #[test]
    fn columns_and_delimiters_are_recognised() {
        let f =
            write(b"Review\tSentiment\ngreat film\tpos\nawful\tneg\nloved it\tpos\nboring\tneg\n");
        let p = parse(f.path(), DatasetFormat::Csv, None, None, None).unwrap();
        assert_eq!(
            (p.text_column.as_str(), p.label_column.as_str()),
            ("Review", "Sentiment")
        );
        assert_eq!(p.rows[0].text, "great film");
        let f = write(b"tweet;airline;mood\nso late;ua;neg\non time;ua;pos\n");
        let p = parse(
            f.path(),
            DatasetFormat::Csv,
            Some("tweet"),
            Some("mood"),
            None,
        )
        .unwrap();
        assert_eq!(p.rows[1].label, "pos");
        // Two columns: naming one settles the other.
        let f = write(b"q,a\nhow are you,greeting\nbye now,farewell\n");
        let p = parse(f.path(), DatasetFormat::Csv, Some("q"), None, None).unwrap();
        assert_eq!(p.label_column, "a");
        let f = write(b"id,q,a\n1,x,y\n");
        let e = parse(f.path(), DatasetFormat::Csv, Some("q"), None, None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no label column") && e.contains("id, q, a"),
            "{e}"
        );
    }

    #[test]
    fn jsonl_rows_and_errors() {
        let f = write(b"{\"text\":\"a b\",\"label\":1}\n\n{\"text\":\"c\",\"label\":1}\n{\"text\":\"d\",\"label\":2}\n{\"text\":\"e\",\"label\":2}\n");
        let p = parse(f.path(), DatasetFormat::Jsonl, None, None, None).unwrap();
        assert_eq!(p.rows.len(), 4);
        assert_eq!(p.rows[1].line, 3);
        assert_eq!(p.rows[0].label, "1");
        let f = write(b"{\"text\":\"a\",\"label\":\"x\"}\n{\"text\":\"b\"}\n");
        let e = parse(f.path(), DatasetFormat::Jsonl, None, None, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2") && e.contains("label"), "{e}");
        let f = write(b"{\"text\":\"a\",\"label\":\"x\"}\nnot json\n");
        assert!(parse(f.path(), DatasetFormat::Jsonl, None, None, None)
            .unwrap_err()
            .to_string()
            .contains("line 2"));
    }
}
