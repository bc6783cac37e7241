//! A bot's database layer as bots on sqlx 0.8 write it: functions generic over sqlx's
//! `Acquire`, or taking the pool, with `query!` macros compiled from offline data. Wrapping
//! the pool in `botscope::sqlx::sqlx08::InstrumentedPool` changes no line of it but the type
//! alias.

use sqlx::{Acquire, Sqlite};

/// The bot's pool: the only line botscope asked it to change.
pub type Db = botscope::sqlx::sqlx08::InstrumentedPool<Sqlite>;

/// Creates the schema.
///
/// # Errors
///
/// The database's.
pub async fn migrate(db: &Db) -> Result<(), sqlx::Error> {
    sqlx::query("CREATE TABLE xp (user_id INTEGER PRIMARY KEY, xp INTEGER NOT NULL)")
        .execute(db)
        .await?;
    Ok(())
}

/// Adds `xp` to `user`, on whatever it is given to acquire a connection from (the pool, a
/// connection or a transaction).
///
/// # Errors
///
/// The database's.
pub async fn add_xp<'a, A>(db: A, user: i64, xp: i64) -> Result<(), sqlx::Error>
where
    A: Acquire<'a, Database = Sqlite>,
{
    let mut conn = db.acquire().await?;
    sqlx::query!(
        "INSERT INTO xp (user_id, xp) VALUES (?, ?) ON CONFLICT (user_id) DO UPDATE SET xp = xp + excluded.xp",
        user,
        xp
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Adds `xp` to two users at once, in its own transaction on what it is given.
///
/// # Errors
///
/// The database's.
pub async fn share_xp<'a, A>(db: A, users: [i64; 2], xp: i64) -> Result<(), sqlx::Error>
where
    A: Acquire<'a, Database = Sqlite>,
{
    let mut tx = db.begin().await?;
    for user in users {
        add_xp(&mut *tx, user, xp).await?;
    }
    tx.commit().await
}

/// The xp of `user`.
///
/// # Errors
///
/// The database's; `RowNotFound` for a user with none.
pub async fn xp(db: &Db, user: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(r#"SELECT xp AS "xp!" FROM xp WHERE user_id = ?"#, user)
        .fetch_one(db)
        .await
}
