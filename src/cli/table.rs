//! Prints search rows (JSON objects) as an aligned text table, JSON lines or
//! CSV (RFC 4180). Columns are the union of the rows' keys, `_timestamp`
//! first; the table shows `_timestamp` (µs) as RFC 3339 and cuts long cells.

use super::openobserve_search::Hit;
use serde_json::Value;
use std::io::Write;

/// How rows are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// One JSON object per line.
    Json,
    /// Comma-separated values with a header line.
    Csv,
}

/// Widest table cell, in characters.
const MAX_CELL: usize = 80;

/// Writes rows in one format, repeating the CSV header only when the columns change.
#[derive(Debug)]
pub struct RowWriter {
    format: Format,
    csv_columns: Option<Vec<String>>,
}

impl RowWriter {
    pub fn new(format: Format) -> Self {
        RowWriter {
            format,
            csv_columns: None,
        }
    }

    pub fn write(&mut self, rows: &[Hit], out: &mut dyn Write) -> std::io::Result<()> {
        match self.format {
            Format::Json => {
                for row in rows {
                    writeln!(out, "{}", Value::Object(row.clone()))?;
                }
                Ok(())
            }
            Format::Csv => {
                let cols = columns(rows);
                if self.csv_columns.as_ref() != Some(&cols) {
                    writeln!(out, "{}", csv_line(cols.iter().map(String::as_str)))?;
                }
                for row in rows {
                    let cells: Vec<String> = cols.iter().map(|c| raw_cell(row.get(c))).collect();
                    writeln!(out, "{}", csv_line(cells.iter().map(String::as_str)))?;
                }
                self.csv_columns = Some(cols);
                Ok(())
            }
            Format::Table => write_table(rows, out),
        }
    }
}

/// Keys of every row, `_timestamp` first, then in first-seen order.
pub fn columns(rows: &[Hit]) -> Vec<String> {
    let mut cols: Vec<String> = Vec::new();
    for row in rows {
        for key in row.keys() {
            if !cols.contains(key) {
                cols.push(key.clone());
            }
        }
    }
    if let Some(i) = cols.iter().position(|c| c == "_timestamp") {
        let ts = cols.remove(i);
        cols.insert(0, ts);
    }
    cols
}

/// A cell's text: strings as they are, null empty, everything else as JSON.
fn raw_cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn csv_line<'a>(cells: impl Iterator<Item = &'a str>) -> String {
    cells
        .map(|c| {
            if c.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", c.replace('"', "\"\""))
            } else {
                c.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn table_cell(column: &str, v: Option<&Value>) -> String {
    let text = match (column, v) {
        ("_timestamp", Some(Value::Number(n))) => match n.as_u64() {
            Some(us) => humantime::format_rfc3339_micros(
                std::time::UNIX_EPOCH + std::time::Duration::from_micros(us),
            )
            .to_string(),
            None => n.to_string(),
        },
        _ => raw_cell(v),
    };
    let flat = text.replace('\n', "\\n").replace('\t', " ");
    if flat.chars().count() > MAX_CELL {
        let mut cut: String = flat.chars().take(MAX_CELL - 1).collect();
        cut.push('…');
        cut
    } else {
        flat
    }
}

fn write_table(rows: &[Hit], out: &mut dyn Write) -> std::io::Result<()> {
    let cols = columns(rows);
    if cols.is_empty() {
        return Ok(());
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| cols.iter().map(|c| table_cell(c, r.get(c))).collect())
        .collect();
    write_columns(&cols, &cells, out)
}

/// Writes `cells` (one vector per row, in the order of `cols`) as aligned
/// columns under a header and a rule.
pub fn write_columns(
    cols: &[String],
    cells: &[Vec<String>],
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let widths: Vec<usize> = cols
        .iter()
        .enumerate()
        .map(|(i, c)| {
            cells
                .iter()
                .map(|r| r.get(i).map_or(0, |cell| cell.chars().count()))
                .chain(std::iter::once(c.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| -> String {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w.saturating_sub(c.chars().count()))))
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    writeln!(out, "{}", line(cols))?;
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    writeln!(out, "{}", line(&rule))?;
    for row in cells {
        writeln!(out, "{}", line(row))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<Hit> {
        let v = serde_json::json!([
            {"_timestamp": 1795651200000000i64, "body": "disk full, again", "n": 3},
            {"_timestamp": 1795651201000000i64, "body": "say \"hi\"", "host_name": "pi-2"}
        ]);
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_object().unwrap().clone())
            .collect()
    }

    fn render(format: Format) -> String {
        let mut out = Vec::new();
        RowWriter::new(format).write(&rows(), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn csv_quotes_commas_and_quotes_and_leaves_missing_cells_empty() {
        assert_eq!(
            render(Format::Csv),
            "_timestamp,body,n,host_name\n\
             1795651200000000,\"disk full, again\",3,\n\
             1795651201000000,\"say \"\"hi\"\"\",,pi-2\n"
        );
    }

    #[test]
    fn table_aligns_columns_and_shows_timestamps_as_rfc3339() {
        let text = render(Format::Table);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "_timestamp                   body              n  host_name"
        );
        assert!(lines[1].starts_with("---------------------------  ----------------"));
        assert_eq!(lines[2], "2026-11-26T00:00:00.000000Z  disk full, again  3");
        assert_eq!(
            lines[3],
            "2026-11-26T00:00:01.000000Z  say \"hi\"             pi-2"
        );
    }

    #[test]
    fn json_prints_one_object_per_line() {
        let text = render(Format::Json);
        let parsed: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[1]["host_name"], "pi-2");
    }
}
