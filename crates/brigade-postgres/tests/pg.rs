//! The queue against the real PostgreSQL on 127.0.0.1:5432 (database `test`).
//! Each test works in its own schema, so they run in parallel.
//!
//! With BRIGADE_REQUIRE_SERVICES set (CI), a missing server fails the test;
//! without it, the test is skipped with a printed reason.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use brigade_postgres::{Backoff, Job, NewJob, Queue, Settled, Worker};
use serde_json::json;

const URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A fresh schema for one test, or `None` (skip) when the server is down.
fn fresh(test: &str) -> Option<(Queue, postgres::Client, String)> {
    let schema = format!("bq_{test}");
    let mut admin = match postgres::Client::connect(URL, postgres::NoTls) {
        Ok(c) => c,
        Err(e) => {
            if std::env::var_os("BRIGADE_REQUIRE_SERVICES").is_some() {
                panic!("PostgreSQL is required (BRIGADE_REQUIRE_SERVICES) but {URL} is down: {e}");
            }
            eprintln!("skipped: PostgreSQL is not reachable at {URL}: {e}");
            return None;
        }
    };
    admin
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .unwrap();
    let mut q = Queue::connect(URL, &schema).unwrap();
    assert_eq!(q.migrate().unwrap(), vec![1]);
    Some((q, admin, schema))
}

/// Pushes one job that must be accepted; its id.
fn push1(q: &mut Queue, job: NewJob) -> i64 {
    q.push(&job).unwrap().expect("the job was accepted")
}

/// Drains the queue with one worker claiming one job at a time; the ids in
/// the order they started.
fn one_by_one(w: Worker) -> (brigade_postgres::Report, Vec<i64>) {
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let o = order.clone();
    let report = w
        .workers(1)
        .batch(1)
        .drain(true)
        .run(move |job: &Job<String>, _ctx| {
            o.lock().unwrap().push(job.id);
            Ok::<_, String>(())
        })
        .unwrap();
    let ids = order.lock().unwrap().clone();
    (report, ids)
}

fn state(admin: &mut postgres::Client, schema: &str, id: i64) -> String {
    admin
        .query_one(
            &format!("SELECT state FROM {schema}.jobs WHERE id = $1"),
            &[&id],
        )
        .unwrap()
        .get(0)
}

#[test]
fn migrations_are_idempotent_and_safe_to_race() {
    let Some((mut q, mut admin, schema)) = fresh("migrate") else {
        return;
    };
    assert_eq!(q.migrate().unwrap(), Vec::<i32>::new());
    let s2 = format!("{schema}_race");
    admin
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {s2} CASCADE"))
        .unwrap();
    let applied: Vec<Vec<i32>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|_| s.spawn(|| Queue::connect(URL, &s2).unwrap().migrate().unwrap()))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(applied.iter().filter(|a| a == &&vec![1]).count(), 1);
    assert_eq!(applied.iter().filter(|a| a.is_empty()).count(), 3);
    let n: i64 = admin
        .query_one(&format!("SELECT count(*) FROM {s2}.schema_migrations"), &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    admin
        .batch_execute(&format!("DROP SCHEMA {s2} CASCADE"))
        .unwrap();
    assert!(Queue::connect(URL, "bad name").is_err());
}

#[test]
fn a_stale_claim_can_neither_complete_fail_nor_renew() {
    let Some((mut q, mut admin, schema)) = fresh("fence") else {
        return;
    };
    let id = push1(&mut q, NewJob::new(json!("x")));
    let qs = vec!["default".to_string()];
    let a = q.claim(&qs, 10, "A", Duration::from_secs(60)).unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!((a[0].id, a[0].attempt), (id, 1));
    // A's lease expires (set in the past: no sleeping), the rescuer takes it back.
    admin
        .execute(
            &format!("UPDATE {schema}.jobs SET lease_until = now() - interval '1 s'"),
            &[],
        )
        .unwrap();
    assert_eq!(q.rescue().unwrap(), 1);
    let b = q.claim(&qs, 10, "B", Duration::from_secs(60)).unwrap();
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].token(), a[0].token() + 1);
    assert_eq!(b[0].attempt, 2, "the rescued attempt is counted");
    let stale = [(id, a[0].token())];
    assert_eq!(
        q.heartbeat(&stale, Duration::from_secs(60)).unwrap(),
        vec![id]
    );
    assert_eq!(q.complete(&stale).unwrap(), vec![id]);
    assert_eq!(
        q.fail(id, a[0].token(), "late", Backoff::default(), false)
            .unwrap(),
        Settled::Refused
    );
    assert_eq!(q.release(&stale, true).unwrap(), vec![id]);
    assert_eq!(state(&mut admin, &schema, id), "running");
    assert!(q.complete(&[(id, b[0].token())]).unwrap().is_empty());
    assert_eq!(state(&mut admin, &schema, id), "completed");
    // Completed: not even the rescuer can move it now.
    admin
        .execute(
            &format!("UPDATE {schema}.jobs SET lease_until = now() - interval '1 s'"),
            &[],
        )
        .unwrap();
    assert_eq!(q.rescue().unwrap(), 0);
    let h: serde_json::Value = admin
        .query_one(&format!("SELECT history FROM {schema}.jobs"), &[])
        .unwrap()
        .get(0);
    assert_eq!(h.as_array().unwrap().len(), 1);
    assert_eq!(h[0]["error"], "lease expired");
    assert_eq!(h[0]["worker"], "A");
}

#[test]
fn poison_job_goes_dead_with_backoff_and_replays() {
    let Some((mut q, mut admin, schema)) = fresh("poison") else {
        return;
    };
    let id = push1(&mut q, NewJob::new(json!({"n": 1})).max_attempts(4));
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let base = Duration::from_millis(200);
    let report = Worker::new(URL)
        .schema(&schema)
        .drain(true)
        .poll(Duration::from_millis(50))
        .backoff(Backoff {
            base,
            max: Duration::from_secs(5),
        })
        .run(move |job: &Job<serde_json::Value>, _ctx| {
            c.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(format!("boom on attempt {}", job.attempt))
        })
        .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    assert_eq!((report.failed, report.dead, report.completed), (3, 1, 0));
    assert_eq!(state(&mut admin, &schema, id), "dead");
    let dead = q.dead(10).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].last_error.as_deref(), Some("boom on attempt 4"));
    let h = dead[0].history.as_array().unwrap().clone();
    assert_eq!(h.len(), 4);
    // Backoff on the database's own clock: attempt k+1 starts at least
    // base * 2^(k-1) * 0.5 (the jitter's floor) after attempt k ended.
    let gaps: Vec<f64> = admin
        .query(
            &format!(
                "SELECT extract(epoch FROM (h2->>'started_at')::timestamptz - (h1->>'ended_at')::timestamptz)::float8
                 FROM {schema}.jobs, jsonb_array_elements(history) WITH ORDINALITY a(h1, i)
                 JOIN jsonb_array_elements(history) WITH ORDINALITY b(h2, k) ON k = i + 1
                 ORDER BY i"
            ),
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(gaps.len(), 3);
    for (k, g) in gaps.iter().enumerate() {
        let floor = base.as_secs_f64() * 2f64.powi(k as i32) * 0.5;
        assert!(*g >= floor, "gap {k} was {g}s, backoff floor {floor}s");
    }
    q.retry(id).unwrap();
    assert_eq!(state(&mut admin, &schema, id), "available");
    assert!(q
        .retry(id)
        .unwrap_err()
        .to_string()
        .contains("is available"));
    assert!(q
        .retry(999_999)
        .unwrap_err()
        .to_string()
        .contains("does not exist"));
    let report = Worker::new(URL)
        .schema(&schema)
        .drain(true)
        .run(|_: &Job<serde_json::Value>, _ctx| Ok::<_, String>(()))
        .unwrap();
    assert_eq!(report.completed, 1);
    let (st, hist): (String, serde_json::Value) = {
        let r = admin
            .query_one(&format!("SELECT state, history FROM {schema}.jobs"), &[])
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(st, "completed");
    assert_eq!(
        hist.as_array().unwrap().len(),
        4,
        "history kept through the replay"
    );
}

#[test]
fn panics_and_timeouts_are_failed_attempts() {
    let Some((mut q, mut admin, schema)) = fresh("panic") else {
        return;
    };
    let p = push1(&mut q, NewJob::new(json!("panic")).max_attempts(1));
    let t = push1(&mut q, NewJob::new(json!("slow")).max_attempts(1));
    let bad = push1(
        &mut q,
        NewJob::new(json!({"not": "a string"})).max_attempts(5),
    );
    let report = Worker::new(URL)
        .schema(&schema)
        .drain(true)
        .timeout(Duration::from_millis(100))
        .run(|job: &Job<String>, ctx| {
            if job.args == "panic" {
                panic!("kaboom");
            }
            while !ctx.is_expired() {
                ctx.sleep(Duration::from_millis(5));
            }
            Ok::<_, String>(())
        })
        .unwrap();
    assert_eq!(report.dead, 3);
    for (id, msg) in [(p, "kaboom"), (t, "timed out"), (bad, "cannot read")] {
        assert_eq!(state(&mut admin, &schema, id), "dead");
        let e: String = admin
            .query_one(
                &format!("SELECT last_error FROM {schema}.jobs WHERE id = $1"),
                &[&id],
            )
            .unwrap()
            .get(0);
        assert!(e.contains(msg), "{e}");
    }
}

#[test]
fn unique_key_refuses_a_duplicate_while_the_first_is_live() {
    let Some((mut q, _admin, schema)) = fresh("unique") else {
        return;
    };
    let job = NewJob::new(json!(1)).unique_key("k");
    let first = q.push(&job).unwrap();
    assert!(first.is_some());
    assert_eq!(q.push(&job).unwrap(), None);
    assert!(
        q.push(&job.clone().queue("other")).unwrap().is_some(),
        "keys are per queue"
    );
    // In one batch too.
    assert!(q.push_many(&[job.clone(), job.clone()]).unwrap().is_empty());
    let qs = vec!["default".to_string()];
    let c = q.claim(&qs, 1, "w", Duration::from_secs(60)).unwrap();
    assert_eq!(q.push(&job).unwrap(), None, "running is live");
    assert!(q.complete(&[(c[0].id, c[0].token())]).unwrap().is_empty());
    assert!(
        q.push(&job).unwrap().is_some(),
        "a finished job frees its key"
    );
    let _ = schema;
}

#[test]
fn scheduled_jobs_never_start_before_run_at_and_priorities_order_the_rest() {
    let Some((mut q, mut admin, schema)) = fresh("sched") else {
        return;
    };
    let later = SystemTime::now() + Duration::from_millis(1500);
    let s = push1(&mut q, NewJob::new(json!("later")).run_at(later));
    let low = push1(&mut q, NewJob::new(json!("low")).priority(5));
    let high = push1(&mut q, NewJob::new(json!("high")).priority(-5));
    let (_, order) = one_by_one(Worker::new(URL).schema(&schema));
    assert_eq!(order, vec![high, low, s]);
    let early: bool = admin
        .query_one(
            &format!("SELECT started_at < run_at FROM {schema}.jobs WHERE id = $1"),
            &[&s],
        )
        .unwrap()
        .get(0);
    assert!(!early, "started before its run_at");
    assert_eq!(state(&mut admin, &schema, s), "completed");
}

#[test]
fn a_long_job_with_heartbeats_is_never_rescued() {
    let Some((mut q, mut admin, schema)) = fresh("long") else {
        return;
    };
    let id = push1(&mut q, NewJob::new(json!(0)));
    let lease = Duration::from_millis(600);
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let long = {
        let schema = schema.clone();
        std::thread::spawn(move || {
            Worker::new(URL)
                .schema(&schema)
                .lease(lease)
                .drain(true)
                .run(move |_: &Job<i64>, _ctx| {
                    r.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(lease * 3);
                    Ok::<_, String>(())
                })
                .unwrap()
        })
    };
    while state(&mut admin, &schema, id) != "running" {
        std::thread::sleep(Duration::from_millis(10));
    }
    // A second worker on the same queue runs the rescuer all along.
    let rescuer = {
        let schema = schema.clone();
        std::thread::spawn(move || {
            Worker::new(URL)
                .schema(&schema)
                .lease(lease)
                .drain(true)
                .run(|_: &Job<i64>, _ctx| Ok::<_, String>(()))
                .unwrap()
        })
    };
    let report = long.join().unwrap();
    let other = rescuer.join().unwrap();
    assert_eq!(runs.load(Ordering::SeqCst) + other.completed as usize, 1);
    assert_eq!(report.completed, 1);
    assert_eq!(report.rescued + other.rescued, 0);
    let (attempt, hist): (i32, serde_json::Value) = {
        let r = admin
            .query_one(
                &format!("SELECT attempt, history FROM {schema}.jobs WHERE id = $1"),
                &[&id],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!((attempt, hist), (1, json!([])));
}

#[test]
fn shutdown_at_its_deadline_releases_the_running_jobs() {
    let Some((mut q, mut admin, schema)) = fresh("shutdown") else {
        return;
    };
    let id = push1(&mut q, NewJob::new(json!(0)));
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let started_tx = std::sync::Mutex::new(started_tx);
    let (results, control) = Worker::new(URL)
        .schema(&schema)
        .start(move |_: &Job<i64>, _ctx| {
            let _ = started_tx.lock().unwrap().send(());
            std::thread::sleep(Duration::from_secs(2)); // ignores cancellation
            Ok::<_, String>(())
        })
        .unwrap();
    started_rx.recv().unwrap();
    let c2 = control.clone();
    let drainer = std::thread::spawn(move || {
        for o in results {
            c2.settle(&o);
        }
    });
    assert_eq!(control.shutdown(Duration::from_millis(100)), 1);
    assert_eq!(state(&mut admin, &schema, id), "available");
    drainer.join().unwrap();
    let report = control.finish();
    assert_eq!(
        (report.released, report.refused, report.completed),
        (1, 1, 0)
    );
    let (attempt, hist): (i32, serde_json::Value) = {
        let r = admin
            .query_one(&format!("SELECT attempt, history FROM {schema}.jobs"), &[])
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(attempt, 1);
    assert!(hist[0]["error"].as_str().unwrap().contains("released"));
}

#[test]
fn pruner_keeps_dead_and_recent_jobs() {
    let Some((mut q, mut admin, schema)) = fresh("prune") else {
        return;
    };
    let ids = q.push_many(&vec![NewJob::new(json!(1)); 5]).unwrap();
    assert_eq!(ids.len(), 5);
    let qs = vec!["default".to_string()];
    let c = q.claim(&qs, 5, "w", Duration::from_secs(60)).unwrap();
    let claims: Vec<_> = c.iter().map(|j| (j.id, j.token())).collect();
    assert!(q.complete(&claims[..3]).unwrap().is_empty());
    assert_eq!(
        q.fail(c[3].id, c[3].token(), "x", Backoff::default(), true)
            .unwrap(),
        Settled::Dead
    );
    q.cancel(c[4].id).unwrap();
    assert!(q
        .cancel(c[4].id)
        .unwrap_err()
        .to_string()
        .contains("already cancelled"));
    assert_eq!(
        q.complete(&claims[4..]).unwrap().len(),
        1,
        "cancelled: refused"
    );
    assert_eq!(q.prune(Duration::from_secs(3600)).unwrap(), 0);
    admin
        .execute(
            &format!(
                "UPDATE {schema}.jobs SET finished_at = now() - interval '2 hours' WHERE id <> $1"
            ),
            &[&c[0].id],
        )
        .unwrap();
    assert_eq!(q.prune(Duration::from_secs(3600)).unwrap(), 3);
    let left: Vec<String> = admin
        .query(&format!("SELECT state FROM {schema}.jobs ORDER BY id"), &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(left, ["completed", "dead"]);
    let st = q.status().unwrap();
    assert!(st.counts.contains(&("default".into(), "dead".into(), 1)));
}

#[test]
fn a_worker_takes_only_its_named_queues() {
    let Some((mut q, mut admin, schema)) = fresh("queues") else {
        return;
    };
    let a = push1(&mut q, NewJob::new(json!("a")).queue("a").priority(2));
    let b = push1(&mut q, NewJob::new(json!("b")).queue("b").priority(1));
    let c = push1(&mut q, NewJob::new(json!("c")).queue("c"));
    let (report, order) = one_by_one(Worker::new(URL).schema(&schema).queues(["a", "b"]));
    assert_eq!(report.completed, 2);
    assert_eq!(order, vec![b, a], "priority across queues");
    assert_eq!(state(&mut admin, &schema, c), "available");
}
