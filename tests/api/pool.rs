//! The connection pool with the patched sqlx-core (vendor/README.md): a connection goes back
//! to the pool without a ping when its last exchange completed, and is still flushed when it
//! has something unsent. These hold what the ping was there for.

use std::time::Duration;

use gitweave_storage::PoolConfig;
use sqlx::{Acquire, PgPool};

use crate::helpers::fresh_database;

async fn pool(max_connections: u32) -> PgPool {
    gitweave_storage::pool(&PoolConfig {
        url: fresh_database().await,
        max_connections,
        acquire_timeout: Duration::from_secs(10),
    })
    .expect("pool")
}

/// A transaction dropped without a commit is rolled back at once, not when its connection is
/// next used: its locks are free while the connection sits idle in the pool.
#[tokio::test]
async fn a_transaction_dropped_uncommitted_releases_its_locks_while_its_connection_idles() {
    let pool = pool(2).await;
    let key = uuid::Uuid::new_v4().as_u64_pair().0 as i64;
    let mut held = pool.acquire().await.expect("acquire");
    {
        let mut tx = held.begin().await.expect("begin");
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(key)
            .execute(&mut *tx)
            .await
            .expect("lock");
        // Dropped here: sqlx queues its ROLLBACK without sending it.
    }
    drop(held);
    // The other connection of the pool: the dropped one is never used again by this test.
    let mut other = pool.acquire().await.expect("acquire the other");
    let mut free = false;
    for _ in 0..100 {
        free = sqlx::query_scalar::<_, bool>(
            // An autocommit statement: a lock it gets is gone when it ends.
            "SELECT pg_try_advisory_xact_lock($1)",
        )
        .bind(key)
        .fetch_one(&mut *other)
        .await
        .expect("try lock");
        if free {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        free,
        "the dropped transaction still holds its lock after 5 s"
    );
}

/// A query whose future is dropped mid-flight (a request cut off) leaves its connection in the
/// pool; the next user of that connection gets its own answer, not the abandoned one's.
#[tokio::test]
async fn a_query_cut_off_midway_leaves_its_connection_answering_the_next_query() {
    let pool = pool(1).await;
    let cut = tokio::time::timeout(
        Duration::from_millis(100),
        sqlx::query_scalar::<_, i32>("SELECT 7 FROM pg_sleep(0.5)").fetch_one(&pool),
    )
    .await;
    assert!(cut.is_err(), "the slow query was meant to be cut off");
    for n in 1..=3 {
        let answer: i32 = sqlx::query_scalar("SELECT $1::int4")
            .bind(n)
            .fetch_one(&pool)
            .await
            .expect("query after the cut");
        assert_eq!(answer, n);
    }
    // Inside a transaction too: the pool's one connection is clean enough to begin and commit.
    let mut tx = pool.begin().await.expect("begin");
    let answer: i32 = sqlx::query_scalar("SELECT 42")
        .fetch_one(&mut *tx)
        .await
        .expect("query in a transaction");
    tx.commit().await.expect("commit");
    assert_eq!(answer, 42);
}
