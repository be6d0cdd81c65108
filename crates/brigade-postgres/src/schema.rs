//! The schema: embedded, versioned migrations, applied in order, once each,
//! under an advisory lock so that many workers starting together apply them once.

use postgres::Client;

use crate::Error;

/// One migration: its version, a name, and its SQL (`{s}` is the schema).
struct Migration {
    version: i32,
    name: &'static str,
    sql: &'static str,
}

/// Every migration, oldest first. Never edit one that has shipped: add a new one.
const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "jobs table, claim/lease/unique/prune indexes",
    sql: r#"
CREATE TABLE {s}.jobs (
    id           bigserial PRIMARY KEY,
    queue        text        NOT NULL DEFAULT 'default',
    state        text        NOT NULL DEFAULT 'available'
                 CHECK (state IN ('available', 'running', 'completed', 'dead', 'cancelled')),
    payload      jsonb       NOT NULL,
    priority     smallint    NOT NULL DEFAULT 0,
    run_at       timestamptz NOT NULL DEFAULT now(),
    attempt      integer     NOT NULL DEFAULT 0,
    max_attempts integer     NOT NULL DEFAULT 5 CHECK (max_attempts >= 1),
    token        integer     NOT NULL DEFAULT 0,
    lease_until  timestamptz,
    worker       text,
    unique_key   text,
    last_error   text,
    history      jsonb       NOT NULL DEFAULT '[]',
    created_at   timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    finished_at  timestamptz
) WITH (
    fillfactor = 80,
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.05,
    autovacuum_vacuum_cost_delay = 1
);
CREATE INDEX jobs_claim ON {s}.jobs (queue, priority, run_at, id) WHERE state = 'available';
CREATE INDEX jobs_lease ON {s}.jobs (lease_until) WHERE state = 'running';
CREATE INDEX jobs_finished ON {s}.jobs (finished_at) WHERE state IN ('completed', 'cancelled');
CREATE INDEX jobs_dead ON {s}.jobs (id) WHERE state = 'dead';
CREATE UNIQUE INDEX jobs_unique ON {s}.jobs (queue, unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('available', 'running');
"#,
}];

/// The newest schema version this build knows.
pub const LATEST: i32 = 1;

/// Applies the migrations `schema` lacks; returns the versions applied now
/// (empty when it was up to date).
pub fn migrate(client: &mut Client, schema: &str) -> Result<Vec<i32>, Error> {
    let mut tx = client.transaction().map_err(Error::db("begin"))?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('brigade-postgres:' || $1))",
        &[&schema],
    )
    .map_err(Error::db("take the migration lock"))?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {schema};
         CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (
             version integer PRIMARY KEY,
             name text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now())"
    ))
    .map_err(Error::db("create the schema"))?;
    let have: i32 = tx
        .query_one(
            &format!("SELECT coalesce(max(version), 0) FROM {schema}.schema_migrations"),
            &[],
        )
        .map_err(Error::db("read the schema version"))?
        .get(0);
    if have > LATEST {
        return Err(Error::new(format!(
            "schema {schema} is at version {have}, newer than this brigade knows ({LATEST}): upgrade brigade"
        )));
    }
    let mut applied = Vec::new();
    for m in MIGRATIONS.iter().filter(|m| m.version > have) {
        tx.batch_execute(&m.sql.replace("{s}", schema))
            .map_err(Error::db(&format!(
                "apply migration {} ({})",
                m.version, m.name
            )))?;
        tx.execute(
            &format!("INSERT INTO {schema}.schema_migrations (version, name) VALUES ($1, $2)"),
            &[&m.version, &m.name],
        )
        .map_err(Error::db("record the migration"))?;
        applied.push(m.version);
    }
    tx.commit().map_err(Error::db("commit the migrations"))?;
    Ok(applied)
}

/// Checks that a schema name is a plain SQL identifier (it is put into statements as is).
pub fn check_name(schema: &str) -> Result<(), Error> {
    let ok = !schema.is_empty()
        && schema.len() <= 63
        && schema.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && schema
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Error::new(format!(
            "'{schema}' is not a usable schema name (lowercase letters, digits and _, at most 63)"
        )))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn versions_are_in_order_and_latest_is_the_last() {
        let v: Vec<i32> = super::MIGRATIONS.iter().map(|m| m.version).collect();
        assert!(v.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(v.last(), Some(&super::LATEST));
    }

    #[test]
    fn schema_names() {
        assert!(super::check_name("brigade").is_ok());
        assert!(super::check_name("t_1").is_ok());
        assert!(super::check_name("x; drop").is_err());
        assert!(super::check_name("").is_err());
        assert!(super::check_name("1abc").is_err());
    }
}
