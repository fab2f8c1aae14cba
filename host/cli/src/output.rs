//! Human tables and JSON output for the client subcommands.

use std::io::Write;

use anyhow::Result;
use clap::ValueEnum;
use serde::Serialize;

/// How a client subcommand prints its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Output {
    /// Aligned columns for people.
    #[default]
    Table,
    /// One JSON document on stdout, for scripts.
    Json,
}

/// A plain left-aligned text table. Rendering is O(cells); no wrapping.
#[derive(Debug, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<I, S>(header: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            header: header.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row<I, S>(&mut self, cells: I)
    where
        I: IntoIterator<Item = S>,
        S: ToString,
    {
        self.rows
            .push(cells.into_iter().map(|c| c.to_string()).collect());
    }

    pub fn render(&self) -> String {
        let columns = self
            .rows
            .iter()
            .map(Vec::len)
            .chain(std::iter::once(self.header.len()))
            .max()
            .unwrap_or(0);
        let mut widths = vec![0usize; columns];
        for line in std::iter::once(&self.header).chain(&self.rows) {
            for (i, cell) in line.iter().enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for line in std::iter::once(&self.header).chain(&self.rows) {
            let mut text = String::new();
            for (i, cell) in line.iter().enumerate() {
                if i > 0 {
                    text.push_str("  ");
                }
                text.push_str(cell);
                if i + 1 < line.len() {
                    let pad = widths[i] - cell.chars().count();
                    text.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        out
    }
}

/// An error whose explanation is already printed: the process exits with this status and
/// prints nothing more (`cluster health` of a degraded broker).
#[derive(Debug)]
pub struct Quiet(pub u8);

impl std::fmt::Display for Quiet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit status {}", self.0)
    }
}

impl std::error::Error for Quiet {}

/// Prints `value` as pretty JSON, or `table()` in table mode.
pub fn emit<T: Serialize>(output: Output, value: &T, table: impl FnOnce() -> String) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    match output {
        Output::Json => {
            serde_json::to_writer_pretty(&mut stdout, value)?;
            stdout.write_all(b"\n")?;
        }
        Output::Table => stdout.write_all(table().as_bytes())?,
    }
    stdout.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let mut table = Table::new(["NAME", "PARTITIONS"]);
        table.row(["orders", "3"]);
        table.row(["a", "12"]);
        assert_eq!(
            table.render(),
            "NAME    PARTITIONS\norders  3\na       12\n"
        );
    }
}
