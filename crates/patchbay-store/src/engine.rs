//! What the role implementations need of a database engine, and the one
//! transaction type ([`SqlTx`]) they are written for.
//!
//! Every role (`role/*.rs`) implements its trait once, for `SqlTx<DB>` with
//! `DB: Engine`; `sqlite.rs` and `postgres.rs` make `sqlx::Sqlite` and
//! `sqlx::Postgres` engines. The SQL is shared because both engines accept `$n`
//! placeholders, `RETURNING`, `ON CONFLICT` and row values.
//!
//! Why the small traits below rather than sqlx's own bounds at each use: sqlx
//! states what a type can bind or decode as bounds on that *type*
//! (`i64: Encode<'_, DB>`), and Rust does not carry such bounds from a trait's
//! definition to its users, so every role impl would repeat a dozen
//! higher-ranked bounds. [`Bind`], [`Get`] and [`Exec`] restate them as bounds
//! on the *engine* (supertraits of [`Engine`], which Rust does carry); their
//! blanket impls prove them once from sqlx's, for both engines.
//!
//! **Per-engine differences** are the items of [`Engine`] (the statement that
//! aggregates a page of the audit chain into JSON, and the row-lock clauses
//! `FOR UPDATE [SKIP LOCKED]`, which SQLite lacks and does not need) plus, in the
//! engine modules, how transactions begin (`BEGIN IMMEDIATE` on SQLite, a
//! read-only repeatable-read snapshot on PostgreSQL) and how a statement
//! reports its affected rows ([`Affected`]).

use crate::{Result, StoreError, Tx, map_err};
use async_trait::async_trait;
use sqlx::query::Query;
use sqlx::query_builder::Separated;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, QueryBuilder, Type};
use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;

/// Rows per multi-row INSERT/DELETE statement: 6 parameters per row stays far
/// below SQLite's 32,766 and PostgreSQL's 65,535 bound-parameter limits.
pub(crate) const BATCH_ROWS: usize = 500;

/// A database engine the role implementations run on.
///
/// The supertraits list every Rust type a role binds or decodes; a role that
/// needs another one fails to compile naming `Bind<T>` or `Get<T>`: add it here
/// (both engines must then support it, which the compiler checks too). Booleans
/// are `BOOLEAN` on PostgreSQL and `INTEGER` 0/1 on SQLite; sqlx decodes both.
pub(crate) trait Engine:
    Exec
    + Bind<i64>
    + Bind<Option<i64>>
    + Bind<i32>
    + Bind<bool>
    + Bind<f64>
    + Bind<Option<f64>>
    + Bind<String>
    + Bind<Option<String>>
    + for<'a> Bind<&'a str>
    + for<'a> Bind<&'a String>
    + for<'a> Bind<&'a Option<String>>
    + Database<
        Row: Get<i64>
                 + Get<Option<i64>>
                 + Get<i32>
                 + Get<bool>
                 + Get<f64>
                 + Get<Option<f64>>
                 + Get<String>
                 + Get<Option<String>>,
    >
{
    /// One row, one column `page`: the audit entries with `seq > $1`, at most
    /// `$2`, as a JSON array of arrays (NULL or no row when there are none).
    /// The engines' JSON aggregates differ (`json_group_array`, `json_agg`).
    const AUDIT_PAGE: &'static str;
    /// Appended to a `SELECT` of one row in a write transaction to lock it
    /// until commit, skipping it if another transaction holds it
    /// (`FOR UPDATE SKIP LOCKED` on PostgreSQL; nothing on SQLite, whose
    /// write transactions already run one at a time from `BEGIN IMMEDIATE`).
    const LOCK_SKIP_LOCKED: &'static str;
    /// Appended to a `SELECT` of one row in a write transaction to lock it
    /// until commit, waiting for another holder (`FOR UPDATE`; nothing on
    /// SQLite).
    const LOCK: &'static str;
    /// A `FROM` item over the elements of a JSON array bound as the
    /// parameter written `{}`, each element as column `value` of alias `j`
    /// (`j.value ->> 0` its first item as text, on both engines): one bound
    /// string instead of a value per field for lists of thousands of rows
    /// (`json_each`, `jsonb_array_elements`).
    const JSON_ROWS: &'static str;
}

/// How many rows a statement changed (sqlx has no trait for it).
pub(crate) trait Affected {
    /// Rows inserted, updated or deleted.
    fn rows_affected(&self) -> u64;
}

/// The outcome of [`QueryExt::exec`].
pub(crate) struct Done(u64);

impl Done {
    /// Rows inserted, updated or deleted.
    pub(crate) fn rows_affected(&self) -> u64 {
        self.0
    }
}

/// A statement's future; driver errors are already [`StoreError`]s.
type Fut<'e, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'e>>;

/// Running a statement on a connection.
pub(crate) trait Exec: Database {
    /// Executes.
    fn exec<'e, 'q: 'e>(
        c: &'e mut Self::Connection,
        q: Query<'q, Self, Self::Arguments>,
    ) -> Fut<'e, Done>;
    /// All rows.
    fn all<'e, 'q: 'e>(
        c: &'e mut Self::Connection,
        q: Query<'q, Self, Self::Arguments>,
    ) -> Fut<'e, Vec<Self::Row>>;
    /// At most one row.
    fn opt<'e, 'q: 'e>(
        c: &'e mut Self::Connection,
        q: Query<'q, Self, Self::Arguments>,
    ) -> Fut<'e, Option<Self::Row>>;
    /// Exactly one row.
    fn one<'e, 'q: 'e>(
        c: &'e mut Self::Connection,
        q: Query<'q, Self, Self::Arguments>,
    ) -> Fut<'e, Self::Row>;
    /// Executes one or more statements without parameters (for `testing`).
    fn exec_raw(c: &mut Self::Connection, sql: String) -> Fut<'_, Done>;
}

impl<DB: Database> Exec for DB
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    DB::QueryResult: Affected,
{
    fn exec<'e, 'q: 'e>(
        c: &'e mut DB::Connection,
        q: Query<'q, DB, DB::Arguments>,
    ) -> Fut<'e, Done> {
        let f = c.execute(q);
        Box::pin(async move { f.await.map(|r| Done(r.rows_affected())).map_err(map_err) })
    }
    fn all<'e, 'q: 'e>(
        c: &'e mut DB::Connection,
        q: Query<'q, DB, DB::Arguments>,
    ) -> Fut<'e, Vec<DB::Row>> {
        let f = c.fetch_all(q);
        Box::pin(async move { f.await.map_err(map_err) })
    }
    fn opt<'e, 'q: 'e>(
        c: &'e mut DB::Connection,
        q: Query<'q, DB, DB::Arguments>,
    ) -> Fut<'e, Option<DB::Row>> {
        let f = c.fetch_optional(q);
        Box::pin(async move { f.await.map_err(map_err) })
    }
    fn one<'e, 'q: 'e>(
        c: &'e mut DB::Connection,
        q: Query<'q, DB, DB::Arguments>,
    ) -> Fut<'e, DB::Row> {
        let f = c.fetch_one(q);
        Box::pin(async move { f.await.map_err(map_err) })
    }
    fn exec_raw(c: &mut DB::Connection, sql: String) -> Fut<'_, Done> {
        let f = c.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(sql)));
        Box::pin(async move { f.await.map(|r| Done(r.rows_affected())).map_err(map_err) })
    }
}

/// Binding a `T` as a statement parameter.
pub(crate) trait Bind<T>: Database {
    /// [`Query::bind`].
    fn bind(q: Query<'_, Self, Self::Arguments>, v: T) -> Query<'_, Self, Self::Arguments>;
    /// [`QueryBuilder::push_bind`].
    fn push_bind(qb: &mut QueryBuilder<Self>, v: T);
    /// [`Separated::push_bind`] or, when `!separated`, `push_bind_unseparated`.
    fn sep_bind<S: Display>(s: &mut Separated<'_, Self, S>, v: T, separated: bool);
}

impl<DB: Database, T> Bind<T> for DB
where
    T: for<'t> Encode<'t, DB> + Type<DB>,
{
    fn bind(q: Query<'_, DB, DB::Arguments>, v: T) -> Query<'_, DB, DB::Arguments> {
        q.bind(v)
    }
    fn push_bind(qb: &mut QueryBuilder<DB>, v: T) {
        qb.push_bind(v);
    }
    fn sep_bind<S: Display>(s: &mut Separated<'_, DB, S>, v: T, separated: bool) {
        if separated {
            s.push_bind(v);
        } else {
            s.push_bind_unseparated(v);
        }
    }
}

/// Decoding a `T` from a named column of a row.
pub(crate) trait Get<T> {
    /// [`sqlx::Row::try_get`], the error mapped.
    fn col(&self, name: &str) -> Result<T>;
    /// The same by position (for `testing`'s ad-hoc queries).
    fn col_at(&self, index: usize) -> Result<T>;
}

impl<R: sqlx::Row, T> Get<T> for R
where
    T: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    for<'a> &'a str: ColumnIndex<R>,
    usize: ColumnIndex<R>,
{
    fn col(&self, name: &str) -> Result<T> {
        self.try_get(name).map_err(map_err)
    }
    fn col_at(&self, index: usize) -> Result<T> {
        self.try_get(index).map_err(map_err)
    }
}

/// `bind`, `execute`, `fetch_*` on a query, for any engine.
pub(crate) trait QueryExt<'q, DB: Engine>: Sized {
    /// Binds the next `$n`.
    fn arg<T>(self, v: T) -> Self
    where
        DB: Bind<T>;
    /// Executes on `c`.
    fn exec<'e>(self, c: &'e mut DB::Connection) -> Fut<'e, Done>
    where
        'q: 'e;
    /// All rows.
    fn all<'e>(self, c: &'e mut DB::Connection) -> Fut<'e, Vec<DB::Row>>
    where
        'q: 'e;
    /// At most one row.
    fn opt<'e>(self, c: &'e mut DB::Connection) -> Fut<'e, Option<DB::Row>>
    where
        'q: 'e;
    /// Exactly one row.
    fn one<'e>(self, c: &'e mut DB::Connection) -> Fut<'e, DB::Row>
    where
        'q: 'e;
}

impl<'q, DB: Engine> QueryExt<'q, DB> for Query<'q, DB, DB::Arguments> {
    fn arg<T>(self, v: T) -> Self
    where
        DB: Bind<T>,
    {
        <DB as Bind<T>>::bind(self, v)
    }
    fn exec<'e>(self, c: &'e mut DB::Connection) -> Fut<'e, Done>
    where
        'q: 'e,
    {
        DB::exec(c, self)
    }
    fn all<'e>(self, c: &'e mut DB::Connection) -> Fut<'e, Vec<DB::Row>>
    where
        'q: 'e,
    {
        DB::all(c, self)
    }
    fn opt<'e>(self, c: &'e mut DB::Connection) -> Fut<'e, Option<DB::Row>>
    where
        'q: 'e,
    {
        DB::opt(c, self)
    }
    fn one<'e>(self, c: &'e mut DB::Connection) -> Fut<'e, DB::Row>
    where
        'q: 'e,
    {
        DB::one(c, self)
    }
}

/// `push_bind` on a query builder, for any engine.
pub(crate) trait BuilderExt<DB: Engine> {
    /// Pushes a placeholder and binds `v` to it.
    fn push_arg<T>(&mut self, v: T) -> &mut Self
    where
        DB: Bind<T>;
}

impl<DB: Engine> BuilderExt<DB> for QueryBuilder<DB> {
    fn push_arg<T>(&mut self, v: T) -> &mut Self
    where
        DB: Bind<T>,
    {
        <DB as Bind<T>>::push_bind(self, v);
        self
    }
}

/// `push_bind` and `push_bind_unseparated` on a separated list, for any engine.
pub(crate) trait SeparatedExt<DB: Engine> {
    /// Pushes the separator (after the first item), a placeholder, and binds `v`.
    fn push_arg<T>(&mut self, v: T) -> &mut Self
    where
        DB: Bind<T>;
    /// Pushes a placeholder without a separator and binds `v`.
    fn push_arg_unseparated<T>(&mut self, v: T) -> &mut Self
    where
        DB: Bind<T>;
}

impl<DB: Engine, S: Display> SeparatedExt<DB> for Separated<'_, DB, S> {
    fn push_arg<T>(&mut self, v: T) -> &mut Self
    where
        DB: Bind<T>,
    {
        <DB as Bind<T>>::sep_bind(self, v, true);
        self
    }
    fn push_arg_unseparated<T>(&mut self, v: T) -> &mut Self
    where
        DB: Bind<T>,
    {
        <DB as Bind<T>>::sep_bind(self, v, false);
        self
    }
}

/// A transaction on engine `DB`: every role trait is implemented for it once.
pub(crate) struct SqlTx<DB: Engine> {
    pub(crate) tx: sqlx::Transaction<'static, DB>,
}

impl<DB: Engine> SqlTx<DB> {
    /// The transaction's connection, to run statements on.
    pub(crate) fn conn(&mut self) -> &mut DB::Connection {
        &mut self.tx
    }
}

/// Every row of `{head} IN (…ids…)`, [`BATCH_ROWS`] ids per statement: the
/// store's reads of rows by a list of row ids (findings, asset packages).
pub(crate) async fn all_with_ids_in<DB: Engine>(
    tx: &mut SqlTx<DB>,
    head: &str,
    ids: &[i64],
) -> Result<Vec<DB::Row>> {
    let mut out = Vec::new();
    for chunk in ids.chunks(BATCH_ROWS) {
        let mut qb = QueryBuilder::<DB>::new(format!("{head} IN ("));
        let mut sep = qb.separated(", ");
        for id in chunk {
            sep.push_arg(*id);
        }
        qb.push(")");
        out.extend(qb.build().all(tx.conn()).await?);
    }
    Ok(out)
}

#[async_trait]
impl<DB: Engine> Tx for SqlTx<DB> {
    async fn commit(self: Box<Self>) -> Result<()> {
        self.tx.commit().await.map_err(map_err)
    }
}

/// Serialises plain data (lists, payloads) to the JSON text stored in a column.
pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("serializing plain data cannot fail")
}

/// Parses a stored JSON list of strings.
pub(crate) fn json_list(s: String) -> Result<Vec<String>> {
    serde_json::from_str(&s).map_err(|e| StoreError::Other(format!("bad JSON list: {e}")))
}

/// Converts an optional stored time.
pub(crate) fn opt_ts(v: Option<i64>) -> Result<Option<jiff::Timestamp>> {
    v.map(crate::from_millis).transpose()
}
