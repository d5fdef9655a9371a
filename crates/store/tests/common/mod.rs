//! The databases the store's integration tests run on: every test body runs twice, on a
//! real SQLite file and on a real PostgreSQL (a fresh database per test in the cluster
//! named by `AIAAS_TEST_POSTGRES_URL`, which `scripts/test.sh` starts with
//! `scripts/pg.sh`). Without that variable the PostgreSQL half is skipped with a notice,
//! unless `AIAAS_REQUIRE_POSTGRES=1` (set by the test script), which makes it a failure.

/// An empty database for one test (no schema yet): where it lives, and how to drop it.
pub struct Blank {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg_admin: Option<(String, String)>,
}

impl Blank {
    pub fn sqlite() -> Blank {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("meta.db").display());
        Blank {
            url,
            _dir: Some(dir),
            pg_admin: None,
        }
    }

    pub async fn postgres() -> Option<Blank> {
        let admin = match std::env::var("AIAAS_TEST_POSTGRES_URL") {
            Ok(u) if !u.is_empty() => u,
            _ => {
                assert!(
                    std::env::var("AIAAS_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                    "AIAAS_TEST_POSTGRES_URL is not set (scripts/test.sh starts PostgreSQL with scripts/pg.sh)"
                );
                eprintln!("skipped: AIAAS_TEST_POSTGRES_URL is not set");
                return None;
            }
        };
        let name = format!("store_{}", aiaas_types::new_id().replace('-', ""));
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
            .await
            .expect("the test PostgreSQL answers");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
        let base = admin.rsplit_once('/').unwrap().0;
        Some(Blank {
            url: format!("{base}/{name}"),
            _dir: None,
            pg_admin: Some((admin, name)),
        })
    }

    pub async fn drop_database(self) {
        if let Some((admin, name)) = self.pg_admin {
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
                .await
                .unwrap();
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut conn)
                .await;
        }
    }
}

/// Each named test body, as `sqlite::NAME` and `postgres::NAME`. The test file defines
/// `async fn fixture(&Blank) -> F` (what each body receives, by reference) and
/// `async fn finish(F)` (run before the database is dropped).
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let blank = super::common::Blank::sqlite();
                    let fx = super::fixture(&blank).await;
                    super::$name(&fx).await;
                    super::finish(fx).await;
                    blank.drop_database().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(blank) = super::common::Blank::postgres().await else { return };
                    let fx = super::fixture(&blank).await;
                    super::$name(&fx).await;
                    super::finish(fx).await;
                    blank.drop_database().await;
                }
            )*
        }
    };
}
