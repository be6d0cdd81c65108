//! One connection to the queue, and every statement the queue runs: push,
//! claim, complete, fail, heartbeat, release, rescue, prune, and the admin
//! commands (status, dead, retry, cancel). Every statement that ends or
//! renews a claim is fenced `WHERE id = $1 AND token = $2 AND state = 'running'`.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, NoTls, Statement};
use serde::Serialize;
use serde_json::Value;

use crate::schema;
use crate::{Backoff, Error, Job};

/// The application_name of the queue's connections (see pg_stat_activity).
const APP_NAME: &str = "brigade-queue";

/// A job to push. Built with [`NewJob::new`] and its setters.
///
/// # Examples
///
/// ```
/// use brigade_postgres::NewJob;
/// let job = NewJob::new(serde_json::json!({"file": "a.png"}))
///     .queue("images")
///     .priority(-1)
///     .max_attempts(3)
///     .unique_key("a.png");
/// assert_eq!(job.queue_name(), "images");
/// ```
#[derive(Debug, Clone)]
pub struct NewJob {
    queue: String,
    payload: Value,
    priority: i16,
    run_at: Option<f64>,
    max_attempts: i32,
    unique_key: Option<String>,
}

impl NewJob {
    /// A job for the queue `default`, to run now, with priority 0 and 5 attempts.
    pub fn new(payload: Value) -> NewJob {
        NewJob {
            queue: "default".into(),
            payload,
            priority: 0,
            run_at: None,
            max_attempts: 5,
            unique_key: None,
        }
    }

    /// The named queue it goes to.
    pub fn queue(mut self, name: impl Into<String>) -> NewJob {
        self.queue = name.into();
        self
    }

    /// The queue's name.
    pub fn queue_name(&self) -> &str {
        &self.queue
    }

    /// Lower runs first (as `nice`); the default is 0.
    pub fn priority(mut self, p: i16) -> NewJob {
        self.priority = p;
        self
    }

    /// Not before this time.
    pub fn run_at(mut self, t: SystemTime) -> NewJob {
        let secs = match t.duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_secs_f64(),
            Err(e) => -e.duration().as_secs_f64(),
        };
        self.run_at = Some(secs);
        self
    }

    /// Attempts before the job is `dead` (at least 1).
    pub fn max_attempts(mut self, n: i32) -> NewJob {
        self.max_attempts = n.max(1);
        self
    }

    /// Refused while another job of the same queue with this key is available or running.
    pub fn unique_key(mut self, key: impl Into<String>) -> NewJob {
        self.unique_key = Some(key.into());
        self
    }
}

/// Counts by queue and state, the oldest ready job, recent throughput and the running jobs.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// `(queue, state, count)`, sorted.
    pub counts: Vec<(String, String, i64)>,
    /// Per queue: seconds the oldest ready (`available`, due) job has waited.
    pub oldest_ready_seconds: Vec<(String, f64)>,
    /// Jobs completed in the last minute.
    pub completed_last_minute: i64,
    /// The running jobs, oldest first (at most 100).
    pub running: Vec<Running>,
}

/// A running job, as `status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Running {
    /// The job's id.
    pub id: i64,
    /// Its queue.
    pub queue: String,
    /// The worker holding it (`host:pid`).
    pub worker: String,
    /// Its attempt number, from 1.
    pub attempt: i32,
    /// Seconds since this attempt started.
    pub running_seconds: f64,
    /// Seconds left on its lease (negative: expired, awaiting rescue).
    pub lease_left_seconds: f64,
}

/// A dead job: it failed `max_attempts` times.
#[derive(Debug, Clone, Serialize)]
pub struct DeadJob {
    /// The job's id.
    pub id: i64,
    /// Its queue.
    pub queue: String,
    /// Attempts made.
    pub attempts: i32,
    /// The last error.
    pub last_error: Option<String>,
    /// The job.
    pub payload: Value,
    /// One entry per failed attempt: attempt, worker, started_at, ended_at, error.
    pub history: Value,
}

/// How a fenced statement went for one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// Done as asked.
    Done,
    /// A failure that made the job `dead` (its last attempt, or permanent).
    Dead,
    /// Refused: the job's token or state changed (its lease passed to another
    /// worker, it was rescued, released or cancelled). The caller drops its result.
    Refused,
}

/// A connection to the queue in one schema. Every method is one or two statements.
pub struct Queue {
    client: Client,
    schema: String,
    channel: String,
    stmts: HashMap<&'static str, Statement>,
}

impl Queue {
    /// Connects to `url` (`postgres://user@host/db`) for the queue in `schema`
    /// (created by [`migrate`](Queue::migrate)).
    pub fn connect(url: &str, schema: &str) -> Result<Queue, Error> {
        schema::check_name(schema)?;
        let mut cfg: postgres::Config = url
            .parse()
            .map_err(|e| Error::new(format!("bad connection string '{url}': {e}")))?;
        cfg.application_name(APP_NAME);
        if cfg.get_connect_timeout().is_none() {
            cfg.connect_timeout(Duration::from_secs(10));
        }
        let client = cfg.connect(NoTls).map_err(Error::db("connect"))?;
        Ok(Queue {
            client,
            schema: schema.to_string(),
            channel: format!("brigade_{schema}"),
            stmts: HashMap::new(),
        })
    }

    /// Applies the embedded migrations this schema lacks, idempotently; returns
    /// the versions applied now.
    pub fn migrate(&mut self) -> Result<Vec<i32>, Error> {
        schema::migrate(&mut self.client, &self.schema)
    }

    /// Whether the connection is closed.
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// A prepared statement, prepared on first use.
    fn stmt(&mut self, key: &'static str, sql: &str) -> Result<Statement, Error> {
        if let Some(s) = self.stmts.get(key) {
            return Ok(s.clone());
        }
        let s = self
            .client
            .prepare(&sql.replace("{s}", &self.schema))
            .map_err(Error::db(&format!("prepare '{key}'")))?;
        self.stmts.insert(key, s.clone());
        Ok(s)
    }

    /// Pushes one job; `None` when its unique key is taken by a live job.
    pub fn push(&mut self, job: &NewJob) -> Result<Option<i64>, Error> {
        Ok(self.push_many(std::slice::from_ref(job))?.first().copied())
    }

    /// Pushes jobs in one statement, which also wakes the idle workers (NOTIFY);
    /// returns the ids of the jobs inserted (those whose unique key was taken
    /// are left out), in no particular order.
    pub fn push_many(&mut self, jobs: &[NewJob]) -> Result<Vec<i64>, Error> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let st = self.stmt(
            "push",
            "WITH ins AS (
                 INSERT INTO {s}.jobs (queue, payload, priority, run_at, max_attempts, unique_key)
                 SELECT q, p, pr, coalesce(to_timestamp(r), now()), m, u
                 FROM unnest($1::text[], $2::jsonb[], $3::int2[], $4::float8[], $5::int4[], $6::text[])
                      AS t(q, p, pr, r, m, u)
                 ON CONFLICT (queue, unique_key)
                     WHERE unique_key IS NOT NULL AND state IN ('available', 'running')
                     DO NOTHING
                 RETURNING id, queue)
             SELECT id, (SELECT count(pg_notify($7, q)) FROM (SELECT DISTINCT queue q FROM ins) d)
             FROM ins",
        )?;
        let queues: Vec<&str> = jobs.iter().map(|j| j.queue.as_str()).collect();
        let payloads: Vec<&Value> = jobs.iter().map(|j| &j.payload).collect();
        let prios: Vec<i16> = jobs.iter().map(|j| j.priority).collect();
        let run_at: Vec<Option<f64>> = jobs.iter().map(|j| j.run_at).collect();
        let max: Vec<i32> = jobs.iter().map(|j| j.max_attempts).collect();
        let keys: Vec<Option<&str>> = jobs.iter().map(|j| j.unique_key.as_deref()).collect();
        let ch = self.channel.clone();
        let rows = self
            .client
            .query(
                &st,
                &[&queues, &payloads, &prios, &run_at, &max, &keys, &ch],
            )
            .map_err(Error::db("push jobs"))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Wakes the workers listening for these queues.
    pub(crate) fn notify(&mut self, queues: &[&str]) -> Result<(), Error> {
        let st = self.stmt(
            "notify",
            "SELECT pg_notify($1, q) FROM unnest($2::text[]) q",
        )?;
        let ch = self.channel.clone();
        self.client
            .execute(&st, &[&ch, &queues])
            .map_err(Error::db("notify the workers"))?;
        Ok(())
    }

    /// Claims up to `n` due jobs of `queues` for `worker`, highest priority
    /// first, each under a lease of `lease`: their token and attempt go up by one.
    pub fn claim(
        &mut self,
        queues: &[String],
        n: i64,
        worker: &str,
        lease: Duration,
    ) -> Result<Vec<Job<Value>>, Error> {
        // `queue = ANY($1)` would defeat the claim index (a scan and a sort of
        // every available row per claim): one queue is `queue = $1`, several
        // are an index scan per queue, merged.
        let pick = if queues.len() == 1 {
            "SELECT id FROM {s}.jobs
             WHERE state = 'available' AND queue = ($1::text[])[1] AND run_at <= now()
             ORDER BY priority, run_at, id
             LIMIT $2
             FOR UPDATE SKIP LOCKED"
        } else {
            "SELECT x.id FROM unnest($1::text[]) AS qn(name), LATERAL (
                 SELECT id, priority, run_at FROM {s}.jobs
                 WHERE state = 'available' AND queue = qn.name AND run_at <= now()
                 ORDER BY priority, run_at, id
                 LIMIT $2
                 FOR UPDATE SKIP LOCKED) x
             ORDER BY x.priority, x.run_at, x.id
             LIMIT $2"
        };
        let key = if queues.len() == 1 { "claim1" } else { "claim" };
        let st = self.stmt(
            key,
            &format!(
                "WITH c AS ({pick})
                 UPDATE {{s}}.jobs j SET state = 'running', token = j.token + 1, attempt = j.attempt + 1,
                     lease_until = now() + make_interval(secs => $3), worker = $4, started_at = now()
                 FROM c WHERE j.id = c.id
                 RETURNING j.id, j.token, j.attempt, j.max_attempts, j.queue, j.payload"
            ),
        )?;
        let rows = self
            .client
            .query(&st, &[&queues, &n, &lease.as_secs_f64(), &worker])
            .map_err(Error::db("claim jobs"))?;
        let mut jobs: Vec<Job<Value>> = rows
            .iter()
            .map(|r| Job {
                id: r.get(0),
                token: r.get(1),
                attempt: r.get(2),
                max_attempts: r.get(3),
                queue: r.get(4),
                args: r.get(5),
            })
            .collect();
        jobs.sort_by_key(|j| j.id);
        Ok(jobs)
    }

    /// Marks these claims completed, in one statement; returns the ids refused
    /// (no longer held under that token).
    pub fn complete(&mut self, claims: &[(i64, i32)]) -> Result<Vec<i64>, Error> {
        let st = self.stmt(
            "complete",
            "UPDATE {s}.jobs j SET state = 'completed', finished_at = now(), lease_until = NULL
             FROM unnest($1::bigint[], $2::int[]) AS u(id, token)
             WHERE j.id = u.id AND j.token = u.token AND j.state = 'running'
             RETURNING j.id",
        )?;
        self.fenced(st, claims, &[], "complete jobs")
    }

    /// Runs a statement over `unnest($1 ids, $2 tokens)` plus `extra`
    /// parameters; returns the ids it did not touch.
    fn fenced(
        &mut self,
        st: Statement,
        claims: &[(i64, i32)],
        extra: &[&(dyn postgres::types::ToSql + Sync)],
        what: &str,
    ) -> Result<Vec<i64>, Error> {
        if claims.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = claims.iter().map(|c| c.0).collect();
        let tokens: Vec<i32> = claims.iter().map(|c| c.1).collect();
        let mut params: Vec<&(dyn postgres::types::ToSql + Sync)> = vec![&ids, &tokens];
        params.extend_from_slice(extra);
        let rows = self.client.query(&st, &params).map_err(Error::db(what))?;
        let mut done: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
        done.sort_unstable();
        Ok(ids
            .into_iter()
            .filter(|id| done.binary_search(id).is_err())
            .collect())
    }

    /// Records a failed attempt: back to `available` after a backoff
    /// (exponential, capped, with jitter), or `dead` once it has had
    /// `max_attempts` (or at once when `permanent`). Keeps the error in
    /// `last_error` and in the job's history.
    pub fn fail(
        &mut self,
        id: i64,
        token: i32,
        error: &str,
        backoff: Backoff,
        permanent: bool,
    ) -> Result<Settled, Error> {
        let st = self.stmt(
            "fail",
            "UPDATE {s}.jobs SET
                 state = CASE WHEN attempt >= max_attempts OR $6::bool THEN 'dead' ELSE 'available' END,
                 run_at = CASE WHEN attempt >= max_attempts OR $6::bool THEN run_at
                     ELSE now() + make_interval(secs =>
                         least($4::float8, $3::float8 * power(2, attempt - 1)) * (0.5 + random() * 0.5))
                     END,
                 finished_at = CASE WHEN attempt >= max_attempts OR $6::bool THEN now() END,
                 lease_until = NULL,
                 last_error = $5::text,
                 history = history || jsonb_build_object('attempt', attempt, 'worker', worker,
                     'started_at', started_at, 'ended_at', now(), 'error', $5::text)
             WHERE id = $1 AND token = $2 AND state = 'running'
             RETURNING state",
        )?;
        let rows = self
            .client
            .query(
                &st,
                &[
                    &id,
                    &token,
                    &backoff.base.as_secs_f64(),
                    &backoff.max.as_secs_f64(),
                    &error,
                    &permanent,
                ],
            )
            .map_err(Error::db("record a failed attempt"))?;
        Ok(match rows.first().map(|r| r.get::<_, String>(0)) {
            None => Settled::Refused,
            Some(s) if s == "dead" => Settled::Dead,
            Some(_) => Settled::Done,
        })
    }

    /// Renews the leases of these claims to `lease` from now; returns the ids
    /// refused (lost: rescued, cancelled, or taken by another worker).
    pub fn heartbeat(&mut self, claims: &[(i64, i32)], lease: Duration) -> Result<Vec<i64>, Error> {
        let st = self.stmt(
            "heartbeat",
            "UPDATE {s}.jobs j SET lease_until = now() + make_interval(secs => $3)
             FROM unnest($1::bigint[], $2::int[]) AS u(id, token)
             WHERE j.id = u.id AND j.token = u.token AND j.state = 'running'
             RETURNING j.id",
        )?;
        self.fenced(st, claims, &[&lease.as_secs_f64()], "renew leases")
    }

    /// Gives claims back to the queue, due now. A job that never `started`
    /// gets its attempt back; one that started keeps it counted and a line
    /// in its history. Returns the ids refused.
    pub fn release(&mut self, claims: &[(i64, i32)], started: bool) -> Result<Vec<i64>, Error> {
        let st = self.stmt(
            "release",
            "UPDATE {s}.jobs j SET state = 'available', lease_until = NULL, run_at = now(),
                 attempt = CASE WHEN $3 THEN j.attempt ELSE j.attempt - 1 END,
                 history = CASE WHEN $3 THEN j.history || jsonb_build_object('attempt', j.attempt,
                     'worker', j.worker, 'started_at', j.started_at, 'ended_at', now(),
                     'error', 'released: the worker shut down') ELSE j.history END
             FROM unnest($1::bigint[], $2::int[]) AS u(id, token)
             WHERE j.id = u.id AND j.token = u.token AND j.state = 'running'
             RETURNING j.id",
        )?;
        let refused = self.fenced(st, claims, &[&started], "release jobs")?;
        if refused.len() < claims.len() {
            self.notify_all()?;
        }
        Ok(refused)
    }

    fn notify_all(&mut self) -> Result<(), Error> {
        self.notify(&["*"])
    }

    /// Moves jobs whose lease expired back to `available` (or `dead` after
    /// their last attempt), fenced by their token; the attempt stays counted
    /// and the history says the lease expired. Returns how many.
    pub fn rescue(&mut self) -> Result<u64, Error> {
        let st = self.stmt(
            "rescue",
            "WITH x AS (
                 SELECT id, token FROM {s}.jobs
                 WHERE state = 'running' AND lease_until < now()
                 ORDER BY lease_until LIMIT 1000
                 FOR UPDATE SKIP LOCKED)
             UPDATE {s}.jobs j SET
                 state = CASE WHEN j.attempt >= j.max_attempts THEN 'dead' ELSE 'available' END,
                 finished_at = CASE WHEN j.attempt >= j.max_attempts THEN now() END,
                 run_at = now(), lease_until = NULL,
                 last_error = 'lease expired: worker ' || coalesce(j.worker, '?') || ' stopped renewing it',
                 history = j.history || jsonb_build_object('attempt', j.attempt, 'worker', j.worker,
                     'started_at', j.started_at, 'ended_at', now(), 'error', 'lease expired')
             FROM x
             WHERE j.id = x.id AND j.token = x.token AND j.state = 'running' AND j.lease_until < now()",
        )?;
        let n = self
            .client
            .execute(&st, &[])
            .map_err(Error::db("rescue expired leases"))?;
        if n > 0 {
            self.notify_all()?;
        }
        Ok(n)
    }

    /// Deletes completed and cancelled jobs finished more than `retention`
    /// ago, in batches of 10,000; dead jobs are kept. Returns how many.
    pub fn prune(&mut self, retention: Duration) -> Result<u64, Error> {
        let st = self.stmt(
            "prune",
            "DELETE FROM {s}.jobs WHERE id IN (
                 SELECT id FROM {s}.jobs
                 WHERE state IN ('completed', 'cancelled')
                   AND finished_at < now() - make_interval(secs => $1)
                 LIMIT 10000)",
        )?;
        let mut total = 0;
        loop {
            let n = self
                .client
                .execute(&st, &[&retention.as_secs_f64()])
                .map_err(Error::db("prune finished jobs"))?;
            total += n;
            if n < 10_000 {
                return Ok(total);
            }
        }
    }

    /// `(any running, any available, seconds until the next available job is
    /// due)` in `queues` (the counts are 0 or 1): what a draining worker
    /// checks before it stops.
    pub(crate) fn live(&mut self, queues: &[String]) -> Result<(i64, i64, Option<f64>), Error> {
        let st = self.stmt(
            "live",
            // Three subqueries, each over one small partial index; the counts stop at 1.
            "SELECT (SELECT count(*) FROM (SELECT 1 FROM {s}.jobs
                     WHERE state = 'running' AND queue = ANY($1) LIMIT 1) r),
                    (SELECT count(*) FROM (SELECT 1 FROM {s}.jobs
                     WHERE state = 'available' AND queue = ANY($1) LIMIT 1) a),
                    (SELECT extract(epoch FROM min(run_at) - now())::float8 FROM {s}.jobs
                     WHERE state = 'available' AND queue = ANY($1))",
        )?;
        let r = self
            .client
            .query_one(&st, &[&queues])
            .map_err(Error::db("count the live jobs"))?;
        Ok((r.get(0), r.get(1), r.get(2)))
    }

    /// Counts by queue and state, the oldest ready job per queue, the last
    /// minute's throughput, and the running jobs with their worker and lease.
    pub fn status(&mut self) -> Result<Status, Error> {
        let s = &self.schema;
        let q =
            |c: &mut Client, sql: String| c.query(&sql, &[]).map_err(Error::db("read the status"));
        let counts = q(
            &mut self.client,
            format!("SELECT queue, state, count(*) FROM {s}.jobs GROUP BY 1, 2 ORDER BY 1, 2"),
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
        let oldest = q(
            &mut self.client,
            format!(
                "SELECT queue, extract(epoch FROM now() - min(run_at))::float8 FROM {s}.jobs
                 WHERE state = 'available' AND run_at <= now() GROUP BY 1 ORDER BY 1"
            ),
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
        let done: i64 = q(
            &mut self.client,
            format!(
                "SELECT count(*) FROM {s}.jobs
                 WHERE state = 'completed' AND finished_at > now() - interval '1 minute'"
            ),
        )?[0]
            .get(0);
        let running = q(
            &mut self.client,
            format!(
                "SELECT id, queue, coalesce(worker, ''), attempt,
                        extract(epoch FROM now() - started_at)::float8,
                        extract(epoch FROM lease_until - now())::float8
                 FROM {s}.jobs WHERE state = 'running' ORDER BY started_at, id LIMIT 100"
            ),
        )?
        .iter()
        .map(|r| Running {
            id: r.get(0),
            queue: r.get(1),
            worker: r.get(2),
            attempt: r.get(3),
            running_seconds: r.get(4),
            lease_left_seconds: r.get(5),
        })
        .collect();
        Ok(Status {
            counts,
            oldest_ready_seconds: oldest,
            completed_last_minute: done,
            running,
        })
    }

    /// The dead jobs, oldest first, at most `limit`.
    pub fn dead(&mut self, limit: i64) -> Result<Vec<DeadJob>, Error> {
        let rows = self
            .client
            .query(
                &format!(
                    "SELECT id, queue, attempt, last_error, payload, history FROM {}.jobs
                     WHERE state = 'dead' ORDER BY id LIMIT $1",
                    self.schema
                ),
                &[&limit],
            )
            .map_err(Error::db("list the dead jobs"))?;
        Ok(rows
            .iter()
            .map(|r| DeadJob {
                id: r.get(0),
                queue: r.get(1),
                attempts: r.get(2),
                last_error: r.get(3),
                payload: r.get(4),
                history: r.get(5),
            })
            .collect())
    }

    /// Replays a dead or cancelled job: `available` now, attempts from zero,
    /// history kept. An error names the job if it is not dead or cancelled.
    pub fn retry(&mut self, id: i64) -> Result<(), Error> {
        let n = self.replay(Some(id))?;
        if n == 1 {
            return Ok(());
        }
        Err(match self.state_of(id)? {
            None => Error::new(format!("job {id} does not exist (or was pruned)")),
            Some(st) => Error::new(format!(
                "job {id} is {st}: only dead or cancelled jobs can be retried"
            )),
        })
    }

    /// Replays every dead job; returns how many.
    pub fn retry_all_dead(&mut self) -> Result<u64, Error> {
        self.replay(None)
    }

    fn replay(&mut self, id: Option<i64>) -> Result<u64, Error> {
        let sql = format!(
            "WITH r AS (UPDATE {}.jobs SET state = 'available', attempt = 0, run_at = now(),
                 finished_at = NULL, lease_until = NULL
             WHERE CASE WHEN $1::bigint IS NULL THEN state = 'dead'
                        ELSE id = $1 AND state IN ('dead', 'cancelled') END
             RETURNING queue)
             SELECT queue, count(*) FROM r GROUP BY 1",
            self.schema
        );
        let rows = self
            .client
            .query(&sql, &[&id])
            .map_err(Error::db("replay jobs"))?;
        let queues: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        let refs: Vec<&str> = queues.iter().map(String::as_str).collect();
        self.notify(&refs)?;
        Ok(rows.iter().map(|r| r.get::<_, i64>(1) as u64).sum())
    }

    /// Cancels an available or running job (a running job's worker finds its
    /// result refused). An error names the job if it is already finished.
    pub fn cancel(&mut self, id: i64) -> Result<(), Error> {
        let n = self
            .client
            .execute(
                &format!(
                    "UPDATE {}.jobs SET state = 'cancelled', finished_at = now(), lease_until = NULL
                     WHERE id = $1 AND state IN ('available', 'running')",
                    self.schema
                ),
                &[&id],
            )
            .map_err(Error::db("cancel the job"))?;
        if n == 1 {
            return Ok(());
        }
        Err(match self.state_of(id)? {
            None => Error::new(format!("job {id} does not exist (or was pruned)")),
            Some(st) => Error::new(format!("job {id} is already {st}")),
        })
    }

    /// A job's state, or `None` if there is no such job.
    fn state_of(&mut self, id: i64) -> Result<Option<String>, Error> {
        let sql = format!("SELECT state FROM {}.jobs WHERE id = $1", self.schema);
        Ok(self
            .client
            .query_opt(&sql, &[&id])
            .map_err(Error::db("look up the job"))?
            .map(|r| r.get(0)))
    }

    /// Reads a timestamp the way PostgreSQL reads `timestamptz`
    /// (`2027-01-01 09:00+00`, `tomorrow`); seconds since the Unix epoch.
    pub fn epoch_of(&mut self, text: &str) -> Result<f64, Error> {
        let r = self
            .client
            .query_one(
                "SELECT extract(epoch FROM $1::text::timestamptz)::float8",
                &[&text],
            )
            .map_err(Error::db("read the time"))?;
        Ok(r.get(0))
    }

    /// Starts listening for pushes to this schema's queues.
    pub(crate) fn listen(&mut self) -> Result<(), Error> {
        let ch = self.channel.clone();
        self.client
            .batch_execute(&format!("LISTEN {ch}"))
            .map_err(Error::db("listen for new jobs"))
    }

    /// Waits up to `d` for a notification; whether one came (or several).
    pub(crate) fn wait_notified(&mut self, d: Duration) -> Result<bool, Error> {
        let mut n = self.client.notifications();
        if n.iter()
            .next()
            .map_err(Error::db("read notifications"))?
            .is_some()
        {
            while n
                .iter()
                .next()
                .map_err(Error::db("read notifications"))?
                .is_some()
            {}
            return Ok(true);
        }
        let got = n
            .timeout_iter(d)
            .next()
            .map_err(Error::db("wait for notifications"))?
            .is_some();
        while n
            .iter()
            .next()
            .map_err(Error::db("read notifications"))?
            .is_some()
        {}
        Ok(got)
    }
}
