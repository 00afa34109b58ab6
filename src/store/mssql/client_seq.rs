//! Acknowledged delivery on SQL Server (docs/PROTOCOL.md): the highest `seq` stored per
//! client, in `dbo.ClientSeq`. A load that holds rows of acknowledging clients reads
//! their marks with update locks inside its transaction, drops the rows at or below
//! them, bulk-loads the rest and writes the marks back before the commit: a resent row
//! is stored once, also when several relays share the table (the second waits on the
//! first's locks, then sees its marks).

use super::{Conn, cell_value};
use crate::store::columns::Value;
use crate::store::sql::Param;
use tiberius::ToSql;

/// Clients per statement: the MERGE binds two parameters each, SQL Server takes 2,100.
const PER_STATEMENT: usize = 500;
const _: () = assert!(2 * PER_STATEMENT < 2_100);

/// `@P1, @P2, …, @Pn`.
fn placeholders(n: usize) -> String {
    (1..=n)
        .map(|i| format!("@P{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads the marks of `n` clients, locking their keys (and the gaps where a client has
/// none yet) until the transaction ends.
pub fn read_sql(n: usize) -> String {
    format!(
        "SELECT client, last_seq FROM dbo.ClientSeq WITH (UPDLOCK, HOLDLOCK) WHERE client IN ({})",
        placeholders(n)
    )
}

/// Writes `n` marks (`@P1` client, `@P2` its mark, and so on).
pub fn write_sql(n: usize) -> String {
    let values: Vec<String> = (0..n)
        .map(|i| format!("(@P{}, @P{})", 2 * i + 1, 2 * i + 2))
        .collect();
    format!(
        "MERGE dbo.ClientSeq WITH (HOLDLOCK) AS t USING (VALUES {}) AS s (client, last_seq) \
         ON t.client = s.client \
         WHEN MATCHED THEN UPDATE SET last_seq = s.last_seq \
         WHEN NOT MATCHED THEN INSERT (client, last_seq) VALUES (s.client, s.last_seq);",
        values.join(", ")
    )
}

/// One client's mark: what the table held, and the highest `seq` admitted since.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mark<'a> {
    client: &'a str,
    stored: Option<u64>,
    last: Option<u64>,
}

/// The marks of the clients of one load. A load holds few clients, so a list is enough.
#[derive(Debug, Default)]
pub struct Marks<'a> {
    marks: Vec<Mark<'a>>,
}

impl<'a> Marks<'a> {
    /// The clients of `seqs` (the rows' senders and sequence numbers), none known yet.
    pub fn of(seqs: impl Iterator<Item = Option<(&'a str, u64)>>) -> Marks<'a> {
        let mut marks: Vec<Mark<'a>> = Vec::new();
        for (client, _) in seqs.flatten() {
            if !marks.iter().any(|m| m.client == client) {
                marks.push(Mark {
                    client,
                    stored: None,
                    last: None,
                });
            }
        }
        Marks { marks }
    }

    /// Sets what the table holds for `client`.
    pub fn stored(&mut self, client: &str, seq: u64) {
        if let Some(m) = self.marks.iter_mut().find(|m| m.client == client) {
            m.stored = Some(seq);
        }
    }

    /// Whether a row is to be stored: a row without a sequence number always is, a
    /// client's row when its `seq` is above everything stored or admitted before it
    /// (a sender numbers its rows in order, so this drops exactly the resent ones).
    pub fn admit(&mut self, seq: Option<(&str, u64)>) -> bool {
        let Some((client, seq)) = seq else {
            return true;
        };
        let Some(m) = self.marks.iter_mut().find(|m| m.client == client) else {
            return true;
        };
        if m.last.or(m.stored).is_some_and(|last| seq <= last) {
            return false;
        }
        m.last = Some(seq);
        true
    }

    /// The marks that moved, to write back.
    fn moved(&self) -> impl Iterator<Item = (&'a str, u64)> + '_ {
        self.marks
            .iter()
            .filter_map(|m| m.last.map(|last| (m.client, last)))
    }

    /// Reads the marks of every client, inside the open transaction.
    pub async fn read(&mut self, client: &mut Conn) -> tiberius::Result<()> {
        let names: Vec<&'a str> = self.marks.iter().map(|m| m.client).collect();
        for part in names.chunks(PER_STATEMENT) {
            let params: Vec<&dyn ToSql> = part.iter().map(|c| c as &dyn ToSql).collect();
            let rows = client
                .query(read_sql(part.len()), &params)
                .await?
                .into_first_result()
                .await?;
            for row in &rows {
                let mut cells = row.cells().map(|(_, d)| cell_value(d));
                if let (Some(Value::Text(c)), Some(Value::Int(seq))) = (cells.next(), cells.next())
                {
                    self.stored(c, u64::try_from(seq).unwrap_or(0));
                }
            }
        }
        Ok(())
    }

    /// Writes the marks that moved, inside the open transaction.
    pub async fn write(&self, client: &mut Conn) -> tiberius::Result<()> {
        let moved: Vec<(&str, u64)> = self.moved().collect();
        for part in moved.chunks(PER_STATEMENT) {
            let params: Vec<Param> = part
                .iter()
                .flat_map(|(c, seq)| {
                    [
                        Param::Text((*c).to_string()),
                        Param::Int(i64::try_from(*seq).unwrap_or(i64::MAX)),
                    ]
                })
                .collect();
            let refs: Vec<&dyn ToSql> = params.iter().map(|p| p as &dyn ToSql).collect();
            client.execute(write_sql(part.len()), &refs).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resent_rows_are_dropped_against_the_stored_and_the_admitted_mark() {
        let rows = [
            Some(("a", 4)),
            Some(("a", 5)),
            None,
            Some(("b", 1)),
            Some(("a", 6)),
            // `a` resends after a reconnect: 5 and 6 are in this load already.
            Some(("a", 5)),
            Some(("a", 6)),
            Some(("a", 7)),
            Some(("c", 9)),
        ];
        let mut marks = Marks::of(rows.iter().copied());
        marks.stored("a", 4);
        marks.stored("c", 10);
        marks.stored("z", 1); // not in this load: ignored
        let kept: Vec<_> = rows.iter().filter(|r| marks.admit(**r)).collect();
        assert_eq!(
            kept,
            [
                &Some(("a", 5)),
                &None,
                &Some(("b", 1)),
                &Some(("a", 6)),
                &Some(("a", 7))
            ]
        );
        let moved: Vec<_> = marks.moved().collect();
        assert_eq!(
            moved,
            [("a", 7), ("b", 1)],
            "c kept its mark: nothing moved"
        );
    }

    #[test]
    fn statements_bind_every_client() {
        assert_eq!(
            read_sql(2),
            "SELECT client, last_seq FROM dbo.ClientSeq WITH (UPDLOCK, HOLDLOCK) WHERE client IN (@P1, @P2)"
        );
        let merge = write_sql(2);
        assert!(
            merge.contains("USING (VALUES (@P1, @P2), (@P3, @P4)) AS s (client, last_seq)"),
            "{merge}"
        );
    }
}
