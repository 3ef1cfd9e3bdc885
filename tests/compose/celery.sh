#!/usr/bin/env bash
# `make test-compose`, the Celery profile (called by run.sh once per Compose version):
#
#   tests/compose/celery.sh COMPOSE REFERENCE    e.g. tests/compose/celery.sh docker-compose /tmp/x/data/output
#
# COMPOSE is the Compose command, REFERENCE the output folder of `make pipeline` outside Compose
# (run.sh fills it for $CELERY_DAYS and $KILL_DAY). With source and warehouse up, it:
#  1. starts the profile (metadata database, Redis, airflow-init, api-server, scheduler,
#     dag-processor, airflow-worker-1 and -2), the scheduler creating no @daily runs;
#  2. `airflow backfill create` over $CELERY_DAYS with --max-active-runs 2; while it runs, a second
#     trigger of a running day (Airflow refuses the logical date) and the same step of that day
#     from the other worker (`make <step>`: refused by the day's PostgreSQL lock, or run after it);
#  3. checks every day's export byte for byte against REFERENCE, that both workers ran tasks, that
#     no step of a day ran twice at once, and prints the seconds per day and who ran what;
#  4. triggers $KILL_DAY, `docker kill`s the worker running its load, checks that nothing is
#     published, that the task fails (no retry for load), what `make status` says in the stack,
#     then clears the task: the other worker completes the day with the same bytes.
set -euo pipefail
cd "$(dirname "$0")/../.."
read -r -a c <<<"$1"
reference=$2
days=(${CELERY_DAYS:-2024-01-03 2024-01-04 2024-01-05 2024-01-06})
kill_day=${KILL_DAY:-2024-01-07}
py=.venv/bin/python
started=$SECONDS
say() { printf 'test-compose [celery %3ds]: %s\n' $((SECONDS - started)) "$*"; }
fail() { say "FAILED: $*" >&2; exit 1; }
compose() { "${c[@]}" --profile celery "$@"; }
airflow() { compose exec -T airflow-scheduler airflow "$@"; }
meta() {  # a query on the Airflow metadata database, CSV rows
  compose exec -T airflow-db psql -X -q -U airflow -d airflow -At -F, -c "$1"
}
run_state() {  # the state of the DAG run of a day (the earliest one of that day)
  meta "select state from dag_run where dag_id = 'northwind_elt' and logical_date::date = '$1' order by logical_date limit 1"
}
wait_run() {  # day states... : wait until the day's run is in one of the states
  local day=$1 state=""; shift
  for _ in $(seq 240); do
    state=$(run_state "$day")
    for s in "$@"; do [ "$state" = "$s" ] && return 0; done
    sleep 5
  done
  fail "the run of $day is ${state:-missing}, not $*"
}
ti_rows="select dr.logical_date::date, ti.task_id, coalesce(ti.hostname, ''), ti.start_date, ti.end_date, ti.state
         from task_instance ti join dag_run dr on dr.dag_id = ti.dag_id and dr.run_id = ti.run_id
         where ti.dag_id = 'northwind_elt'"

# -- 1. the profile --------------------------------------------------------------------------------
export AIRFLOW_USE_JOB_SCHEDULE=False   # no @daily run beside the backfill
export AIRFLOW_TASK_HEARTBEAT_TIMEOUT=30  # the killed worker's task fails sooner (workers beat every 5 s)
compose up -d 2>&1 | grep -vE '^(Creating|Starting|.* is up-to-date)' || true
for _ in $(seq 300); do
  [ "$(docker inspect -f '{{.State.Health.Status}}' "$(compose ps -q airflow-apiserver)" 2>/dev/null)" = healthy ] && break
  sleep 1
done
[ "$(docker inspect -f '{{.State.Health.Status}}' "$(compose ps -q airflow-apiserver)")" = healthy ] \
  || { compose logs --tail 40 airflow-init airflow-apiserver >&2; fail "the API server is not healthy"; }
for _ in $(seq 120); do
  [ "$(meta "select count(*) from dag where dag_id = 'northwind_elt' and not is_stale" 2>/dev/null)" = 1 ] && break
  sleep 2
done
[ "$(meta "select count(*) from dag where dag_id = 'northwind_elt'")" = 1 ] \
  || { compose logs --tail 40 airflow-dag-processor >&2; fail "the DAG processor has not parsed northwind_elt"; }
for w in airflow-worker-1 airflow-worker-2; do
  for _ in $(seq 60); do compose logs "$w" 2>/dev/null | grep -q "celery@$w ready" && break; sleep 2; done
  compose logs "$w" | grep -q "celery@$w ready" || { compose logs --tail 30 "$w" >&2; fail "$w is not ready"; }
done
say "Celery profile up: api-server, scheduler, dag-processor, airflow-worker-1 and -2 ready"

# -- 2. the backfill, and a second trigger of a running day ----------------------------------------
airflow dags unpause northwind_elt >/dev/null 2>&1 || fail "airflow dags unpause northwind_elt"
backfill_start=$SECONDS
airflow backfill create --dag-id northwind_elt --from-date "${days[0]}" --to-date "${days[-1]}" --max-active-runs 2 \
  >"$reference/../backfill.log" 2>&1 || { cat "$reference/../backfill.log" >&2; fail "airflow backfill create"; }
say "backfill created: ${days[0]} .. ${days[-1]}, --max-active-runs 2"

dup=${days[0]}
host=$($py tests/compose/check.py running-host "$dup" load)
other=$([ "$host" = airflow-worker-1 ] && echo airflow-worker-2 || echo airflow-worker-1)
if airflow dags trigger northwind_elt --logical-date "${dup}T00:00:00+00:00" >"$reference/../dup.log" 2>&1; then
  cat "$reference/../dup.log" >&2; fail "Airflow accepted a second run of $dup while its backfill run is running"
fi
say "second trigger of $dup refused by Airflow: $(grep -iE 'already exists' "$reference/../dup.log" | tail -n1 | cut -c1-160)"
set +e
compose exec -T "$other" make --no-print-directory load DATE="$dup" >"$reference/../dup-lock.log" 2>&1
code=$?
set -e
if [ $code -ne 0 ] && grep -qi 'busy\|held\|running' "$reference/../dup-lock.log"; then
  say "make load DATE=$dup on $other while the day runs on $host: refused by the lock ($(grep -iE 'busy|held' "$reference/../dup-lock.log" | head -n1))"
elif [ $code -eq 0 ]; then
  say "make load DATE=$dup on $other: ran once $host's load had ended (the lock was free by then)"
else
  cat "$reference/../dup-lock.log" >&2; fail "make load DATE=$dup on $other failed for another reason"
fi

for day in "${days[@]}"; do wait_run "$day" success failed; done
backfill_seconds=$((SECONDS - backfill_start))
meta "$ti_rows and dr.backfill_id is not null order by 4" >"$reference/../backfill.csv"
$py tests/compose/check.py celery-figures "$reference/../backfill.csv" "${days[@]}"
say "backfill of ${#days[@]} days: ${backfill_seconds} s from create to the last success"
for day in "${days[@]}"; do $py tests/compose/check.py same-bytes "data/compose/output/$day" "$reference/$day"; done
$py tests/compose/check.py never-interleaved "${days[@]}"

# -- 3. a worker killed during a load --------------------------------------------------------------
airflow dags trigger northwind_elt --logical-date "${kill_day}T00:00:00+00:00" >/dev/null 2>&1 || fail "airflow dags trigger (${kill_day})"
victim=$($py tests/compose/check.py running-host "$kill_day" load)
docker kill "$(compose ps -q "$victim")" >/dev/null
survivor=$([ "$victim" = airflow-worker-1 ] && echo airflow-worker-2 || echo airflow-worker-1)
say "docker kill $victim while it loads $kill_day"
$py tests/compose/check.py not-published "$kill_day" data/compose/output
wait_run "$kill_day" failed
say "the run of $kill_day failed: load is $(meta "select ti.state from task_instance ti join dag_run dr using (dag_id, run_id) where dr.logical_date::date = '$kill_day' and ti.task_id = 'load'") (no retry for load), once the scheduler missed its heartbeat"
set +e
compose exec -T "$survivor" make --no-print-directory status DATE="$kill_day" >"$reference/../status.log" 2>&1
code=$?
set -e
sed 's/^/    /' "$reference/../status.log"
[ $code -ne 0 ] || fail "make status DATE=$kill_day says the day is complete"
grep -E '^\s*load\b' "$reference/../status.log" | grep -qE 'interrupted|failed' \
  || fail "make status DATE=$kill_day does not show the load interrupted or failed"
$py tests/compose/check.py not-published "$kill_day" data/compose/output
# the failed load and its upstream_failed downstream (the only failed tasks of the test); with
# --task-regex, Airflow 3.1.8's `tasks clear` cleared nothing here, silently
airflow tasks clear northwind_elt --only-failed --yes >/dev/null 2>&1 || fail "airflow tasks clear"
wait_run "$kill_day" success failed
[ "$(run_state "$kill_day")" = success ] || fail "the cleared run of $kill_day did not succeed"
ran_on=$(meta "$ti_rows and dr.logical_date::date = '$kill_day' and ti.task_id = 'load'" | cut -d, -f3)
[ "$ran_on" = "$survivor" ] || fail "the cleared load of $kill_day ran on $ran_on, not on $survivor"
say "load of $kill_day cleared: completed on $ran_on"
$py tests/compose/check.py same-bytes "data/compose/output/$kill_day" "$reference/$kill_day"
compose exec -T "$survivor" make --no-print-directory status DATE="$kill_day" >/dev/null || fail "make status DATE=$kill_day: not complete after the clear"
say "Celery profile: ok"
