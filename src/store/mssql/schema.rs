//! Bringing `dbo.Logs` up to date: the schema file's batches as steps, each run in its
//! own transaction under the application lock `logrelay-schema`.
//!
//! The relay sets up a new or empty table itself (quick), and runs steps that leave
//! `dbo.Logs` alone (the `dbo.ClientSeq` table) whatever the table holds; steps that
//! would rewrite a populated table (adding `rv`, the persisted `time_us`, five indexes)
//! can take far longer than a connect timeout, so for those the relay stops with a
//! message and `logrelayd migrate` runs them, with no time limit, one transaction per
//! step, saying what it does.

use super::{Conn, SCHEMA, cell_value, sql_error};
use crate::store::StoreError;
use crate::store::columns::Value;
use std::time::{Duration, Instant};

/// How long `logrelayd migrate` waits for another process's schema lock.
pub const MIGRATE_LOCK_TIMEOUT: Duration = Duration::from_secs(600);

/// Structured-data filters use `OPENJSON`, which needs this compatibility level.
const OPENJSON_LEVEL: i64 = 130;

/// One batch of the schema file: `IF <condition>` and the statement it guards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub condition: String,
    pub sql: String,
}

impl Step {
    /// The statement's first line, for progress messages.
    pub fn summary(&self) -> &str {
        self.sql
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with("--") && !l.starts_with("IF "))
            .map_or("", |l| l.split(" --").next().unwrap_or(l).trim())
    }

    /// Whether the step changes `dbo.Logs` (and so may take long on a populated table).
    pub fn touches_logs(&self) -> bool {
        self.sql.contains("dbo.Logs")
    }
}

/// The schema file's batches (separated by lines holding only `GO`, with LF or CRLF
/// line ends, as sqlcmd reads them).
pub fn batches(script: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in script.lines() {
        if line.trim().eq_ignore_ascii_case("GO") {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push_str(line.trim_end_matches('\r'));
            cur.push('\n');
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|b| b.trim().to_string())
        .filter(|b| !b.is_empty())
        .collect()
}

/// Every batch of the schema as a step; each one is guarded by an `IF` line.
pub fn steps() -> Vec<Step> {
    batches(SCHEMA)
        .into_iter()
        .map(|sql| {
            let condition = sql
                .lines()
                .find_map(|l| l.trim().strip_prefix("IF "))
                .unwrap_or("1 = 1")
                .trim()
                .to_string();
            Step { condition, sql }
        })
        .collect()
}

/// One statement that tells the database's compatibility level, how many rows
/// `dbo.Logs` holds (NULL: no table) and, per step, whether it still has to run.
pub fn check_sql() -> String {
    let flags: Vec<String> = steps()
        .iter()
        .map(|s| format!("CASE WHEN {} THEN 1 ELSE 0 END", s.condition))
        .collect();
    format!(
        "SELECT (SELECT compatibility_level FROM sys.databases WHERE database_id = DB_ID()), \
         (SELECT SUM(p.rows) FROM sys.partitions p WHERE p.object_id = OBJECT_ID(N'dbo.Logs') AND p.index_id IN (0, 1)), {}",
        flags.join(", ")
    )
}

/// What [`check_sql`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    pub compatibility_level: Option<i64>,
    /// Rows in `dbo.Logs`; `None` when there is no table yet.
    pub rows: Option<i64>,
    /// Indexes into [`steps`] of the steps still to run.
    pub pending: Vec<usize>,
}

impl State {
    /// A warning when structured-data filters cannot run on this database.
    pub fn compatibility_warning(&self) -> Option<String> {
        let level = self.compatibility_level?;
        (level < OPENJSON_LEVEL).then(|| {
            format!(
                "the database's compatibility level is {level}: logq's structured-data filters \
                 (SDID.PARAM=VALUE) use OPENJSON, which needs {OPENJSON_LEVEL} (SQL Server 2016); \
                 ALTER DATABASE CURRENT SET COMPATIBILITY_LEVEL = {OPENJSON_LEVEL} enables them"
            )
        })
    }
}

pub async fn state(client: &mut Conn) -> Result<State, StoreError> {
    let run = async { client.simple_query(check_sql()).await?.into_row().await };
    let row = run.await.map_err(|e| sql_error("schema check", e))?;
    let Some(row) = row else {
        return Err(sql_error("schema check", "no result row"));
    };
    let cells: Vec<Option<i64>> = row
        .cells()
        .map(|(_, d)| match cell_value(d) {
            Value::Int(i) => Some(i),
            _ => None,
        })
        .collect();
    let pending = cells
        .iter()
        .skip(2)
        .enumerate()
        .filter(|(_, f)| **f == Some(1))
        .map(|(i, _)| i)
        .collect();
    Ok(State {
        compatibility_level: cells.first().copied().flatten(),
        rows: cells.get(1).copied().flatten(),
        pending,
    })
}

/// Takes the schema lock inside the open transaction and returns sp_getapplock's code.
pub fn lock_sql(timeout: Duration) -> String {
    format!(
        "DECLARE @r int; EXEC @r = sp_getapplock @Resource = N'logrelay-schema', \
         @LockMode = N'Exclusive', @LockOwner = N'Transaction', @LockTimeout = {}; SELECT @r",
        timeout.as_millis()
    )
}

/// sp_getapplock's return code in words; `None` when the lock was granted.
pub fn lock_failure(code: i64, timeout: Duration) -> Option<String> {
    let why = match code {
        0 | 1 => return None,
        -1 => format!("another process held it for longer than {timeout:?}"),
        -2 => "the request was cancelled".to_string(),
        -3 => "the request was chosen as a deadlock victim".to_string(),
        _ => format!("sp_getapplock returned {code} (a parameter or call error)"),
    };
    Some(format!(
        "could not take the schema lock 'logrelay-schema': {why}; nothing was changed"
    ))
}

/// Runs one step in its own transaction under the schema lock. The statement is
/// guarded by its `IF`, so a step another process has run meanwhile does nothing.
pub async fn run_step(
    client: &mut Conn,
    step: &Step,
    lock_timeout: Duration,
) -> Result<(), StoreError> {
    let result = async {
        exec(client, "BEGIN TRANSACTION").await?;
        let code = client
            .simple_query(lock_sql(lock_timeout))
            .await
            .map_err(|e| sql_error("schema lock", e))?
            .into_row()
            .await
            .map_err(|e| sql_error("schema lock", e))?
            .and_then(|r| r.try_get::<i32, _>(0).ok().flatten())
            .map_or(-999, i64::from);
        if let Some(why) = lock_failure(code, lock_timeout) {
            return Err(StoreError::Server(format!(
                "SQL Server schema migration: {why}"
            )));
        }
        exec(client, &step.sql).await?;
        exec(client, "COMMIT").await
    }
    .await;
    if result.is_err() {
        // Best effort: a failed step leaves nothing half done.
        let _ = exec(client, "IF @@TRANCOUNT > 0 ROLLBACK").await;
    }
    result
}

async fn exec(client: &mut Conn, sql: &str) -> Result<(), StoreError> {
    let run = async { client.simple_query(sql).await?.into_results().await };
    run.await
        .map(drop)
        .map_err(|e| sql_error("schema migration", e))
}

/// The relay's check on each new connection: nothing to do, or a new or empty table
/// set up at once. A populated table that needs steps is left to `logrelayd migrate`.
/// Returns a warning to log, if any.
pub async fn ensure(
    client: &mut Conn,
    lock_timeout: Duration,
) -> Result<Option<String>, StoreError> {
    let state = state(client).await?;
    if state.pending.is_empty() {
        return Ok(state.compatibility_warning());
    }
    let all = steps();
    if let Some(rows) = state.rows.filter(|r| *r > 0) {
        let (long, quick): (Vec<usize>, Vec<usize>) =
            state.pending.iter().partition(|i| all[**i].touches_logs());
        for i in &quick {
            run_step(client, &all[*i], lock_timeout).await?;
        }
        if long.is_empty() {
            return Ok(state.compatibility_warning());
        }
        let names: Vec<&str> = long.iter().map(|i| all[*i].summary()).collect();
        return Err(StoreError::Server(format!(
            "SQL Server: dbo.Logs holds {rows} rows and needs {} schema step(s) that can take \
             long on a table that size ({}): run `logrelayd migrate` with the same --db (no time \
             limit, one transaction per step, progress shown); the relay keeps retrying meanwhile",
            names.len(),
            names.join("; ")
        )));
    }
    for i in &state.pending {
        run_step(client, &all[*i], lock_timeout).await?;
    }
    Ok(state.compatibility_warning())
}

/// `logrelayd migrate`: every pending step, one transaction each, with progress.
pub async fn migrate_all(
    client: &mut Conn,
    progress: &mut dyn FnMut(&str),
) -> Result<(), StoreError> {
    let state = state(client).await?;
    let all = steps();
    match state.rows {
        None => progress("dbo.Logs does not exist yet: creating it"),
        Some(rows) => progress(&format!("dbo.Logs holds about {rows} rows")),
    }
    if let Some(w) = state.compatibility_warning() {
        progress(&format!("warning: {w}"));
    }
    if state.pending.is_empty() {
        progress(&format!(
            "schema up to date ({} steps, none pending)",
            all.len()
        ));
        return Ok(());
    }
    let n = state.pending.len();
    for (k, i) in state.pending.iter().enumerate() {
        let step = &all[*i];
        progress(&format!("step {}/{n}: {} …", k + 1, step.summary()));
        let started = Instant::now();
        run_step(client, step, MIGRATE_LOCK_TIMEOUT).await?;
        progress(&format!(
            "step {}/{n} done in {:.1} s",
            k + 1,
            started.elapsed().as_secs_f64()
        ));
    }
    progress("schema up to date");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_split_on_go_lines_with_lf_or_crlf() {
        let lf = "IF 1 = 1\n  SELECT 1;\nGO\nIF 2 = 2\n  SELECT 2;\ngo\n";
        let crlf = lf.replace('\n', "\r\n");
        for script in [lf, crlf.as_str()] {
            assert_eq!(
                batches(script),
                ["IF 1 = 1\n  SELECT 1;", "IF 2 = 2\n  SELECT 2;"]
            );
        }
        assert_eq!(batches("SELECT 'GOOD'\nGO"), ["SELECT 'GOOD'"]);
    }

    #[test]
    fn every_schema_step_is_guarded_and_checked() {
        let steps = steps();
        assert_eq!(steps.len(), 18);
        assert!(
            steps
                .iter()
                .all(|s| s.sql.contains(&format!("IF {}", s.condition)))
        );
        assert_eq!(steps[0].condition, "OBJECT_ID(N'dbo.Logs', N'U') IS NULL");
        assert_eq!(
            steps[10].summary(),
            "ALTER TABLE dbo.Logs ADD rv rowversion NOT NULL;"
        );
        let check = check_sql();
        assert_eq!(check.matches("CASE WHEN").count(), 18);
        // Only the last step leaves dbo.Logs alone: the relay runs it on any table.
        let quick: Vec<&str> = steps
            .iter()
            .filter(|s| !s.touches_logs())
            .map(Step::summary)
            .collect();
        assert_eq!(quick, ["CREATE TABLE dbo.ClientSeq ("]);
    }

    #[test]
    fn applock_codes() {
        let t = Duration::from_secs(5);
        assert_eq!(lock_failure(0, t), None);
        assert_eq!(lock_failure(1, t), None);
        for (code, words) in [
            (-1, "longer than 5s"),
            (-2, "cancelled"),
            (-3, "deadlock"),
            (-999, "-999"),
        ] {
            let e = lock_failure(code, t).unwrap();
            assert!(
                e.contains(words) && e.contains("nothing was changed"),
                "{e}"
            );
        }
        assert!(lock_sql(t).contains("@LockTimeout = 5000; SELECT @r"));
    }

    #[test]
    fn compatibility_level_below_130_is_reported() {
        let state = |level| State {
            compatibility_level: Some(level),
            rows: None,
            pending: vec![],
        };
        assert!(
            state(120)
                .compatibility_warning()
                .unwrap()
                .contains("OPENJSON")
        );
        assert_eq!(state(130).compatibility_warning(), None);
    }
}
