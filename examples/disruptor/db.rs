//! The bot's database: guild settings written on GUILD_CREATE and read by commands, and a
//! log of the commands it handled. SQLite in memory by default, PostgreSQL with
//! `DATABASE_URL=postgres://…`; the same SQL runs on both.

use botscope::sqlx::InstrumentedPool;
use sqlx::{Postgres, Sqlite};

/// The pool, instrumented, whichever backend it is.
pub(crate) enum Db {
    Sqlite(InstrumentedPool<Sqlite>),
    Postgres(InstrumentedPool<Postgres>),
}

/// Runs `$body` with `$pool` bound to the instrumented pool of either backend.
macro_rules! with_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            Db::Sqlite($pool) => $body,
            Db::Postgres($pool) => $body,
        }
    };
}

const SCHEMA: [&str; 2] = [
    "CREATE TABLE IF NOT EXISTS guild_settings (
        guild_id BIGINT PRIMARY KEY,
        name TEXT NOT NULL,
        prefix TEXT NOT NULL DEFAULT '!',
        joined_at BIGINT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS command_log (
        message_id BIGINT PRIMARY KEY,
        guild_id BIGINT NOT NULL,
        command TEXT NOT NULL
    )",
];

impl Db {
    /// Connects to `url` (or an in-memory SQLite database) and creates the schema.
    pub(crate) async fn connect(url: Option<&str>) -> Result<Self, sqlx::Error> {
        let db = match url {
            Some(url) if url.starts_with("postgres") => {
                let pool = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(5)
                    .connect(url)
                    .await?;
                Self::Postgres(InstrumentedPool::new(pool, "disruptor"))
            }
            url => {
                // A shared in-memory database lives as long as one connection does: keep one.
                let url = url.unwrap_or("sqlite:file:disruptor?mode=memory&cache=shared");
                let pool = sqlx::sqlite::SqlitePoolOptions::new()
                    .max_connections(4)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .connect(url)
                    .await?;
                Self::Sqlite(InstrumentedPool::new(pool, "disruptor"))
            }
        };
        for statement in SCHEMA {
            with_pool!(&db, pool => sqlx::query(statement).execute(pool).await.map(drop))?;
        }
        Ok(db)
    }

    /// Records a guild the bot is in (GUILD_CREATE).
    pub(crate) async fn upsert_guild(
        &self,
        guild_id: u64,
        name: &str,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        let sql = "INSERT INTO guild_settings (guild_id, name, joined_at) VALUES ($1, $2, $3)
                   ON CONFLICT (guild_id) DO UPDATE SET name = excluded.name";
        with_pool!(self, pool => sqlx::query(sql).bind(guild_id as i64).bind(name).bind(now).execute(pool).await.map(drop))?;
        Ok(())
    }

    /// The prefix and name of a guild, for the `!settings` command.
    pub(crate) async fn settings(
        &self,
        guild_id: u64,
    ) -> Result<Option<(String, String)>, sqlx::Error> {
        let sql = "SELECT prefix, name FROM guild_settings WHERE guild_id = $1";
        with_pool!(self, pool => sqlx::query_as(sql).bind(guild_id as i64).fetch_optional(pool).await)
    }

    /// A guild picked at random, for the voice job.
    pub(crate) async fn random_guild(&self) -> Result<Option<u64>, sqlx::Error> {
        let sql = "SELECT guild_id FROM guild_settings ORDER BY RANDOM() LIMIT 1";
        let id: Option<i64> =
            with_pool!(self, pool => sqlx::query_scalar(sql).fetch_optional(pool).await)?;
        Ok(id.map(|id| id as u64))
    }

    /// Logs a handled command. A message seen twice (a replay after a resume) is a
    /// unique violation, which the caller reports and moves past.
    pub(crate) async fn log_command(
        &self,
        message_id: u64,
        guild_id: u64,
        command: &str,
    ) -> Result<(), sqlx::Error> {
        let sql = "INSERT INTO command_log (message_id, guild_id, command) VALUES ($1, $2, $3)";
        with_pool!(self, pool => sqlx::query(sql).bind(message_id as i64).bind(guild_id as i64).bind(command).execute(pool).await.map(drop))?;
        Ok(())
    }

    /// Forgets a guild the bot left, in one transaction.
    pub(crate) async fn forget_guild(&self, guild_id: u64) -> Result<(), sqlx::Error> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM command_log WHERE guild_id = $1").bind(guild_id as i64).execute(&mut tx).await?;
            sqlx::query("DELETE FROM guild_settings WHERE guild_id = $1").bind(guild_id as i64).execute(&mut tx).await?;
            tx.commit().await
        })
    }
}
