#!/usr/bin/env bash
# stress: 8 concurrent workers (separate connections) drain 20 000 jobs, failing 5% of
# their attempts at random (retried forever with a 1 ms backoff base). A side table logs
# every lease with the time it was taken and the time its holder ended it. Afterwards:
# every job is finished exactly once, none is left behind, and no two leases of one job
# overlapped in time.
source "$(dirname "$0")/../lib.sh"
fresh_db jobq_stress

jobs=20000
workers=8
q "CREATE TABLE stress_log (lease uuid PRIMARY KEY, id text NOT NULL, worker text NOT NULL,
	t0 timestamptz NOT NULL, t1 timestamptz, outcome text)"
q "SELECT queue FROM jobq.create_queue('stress', max_retries => -1, retry_base => '1 ms',
	retry_cap => '10 ms')" >/dev/null
q "SELECT count(*) FROM jobq.enqueue_batch('stress',
	(SELECT jsonb_agg(jsonb_build_object('id', i::text)) FROM generate_series(1, $jobs) i))" >/dev/null
expect_eq "$(q "SELECT count(*) FROM jobq.jobs WHERE queue = 'stress'")" "$jobs" "enqueued"

worker() {
	psql -X -q -v ON_ERROR_STOP=1 <<SQL
DO \$\$
DECLARE
	ids text[];
	leases uuid[];
	i int;
	outcome text;
BEGIN
	LOOP
		INSERT INTO stress_log (lease, id, worker, t0)
		SELECT l.lease, l.id, '$1', clock_timestamp() FROM jobq.lease('stress', '$1', 20) l;
		COMMIT;
		SELECT array_agg(s.id), array_agg(s.lease) INTO ids, leases
		FROM stress_log s WHERE s.worker = '$1' AND s.t1 IS NULL;
		IF ids IS NULL THEN
			EXIT WHEN NOT EXISTS (SELECT 1 FROM jobq.jobs WHERE queue = 'stress');
			PERFORM pg_sleep(0.005);
			CONTINUE;
		END IF;
		FOR i IN 1 .. array_length(ids, 1) LOOP
			outcome := CASE WHEN random() < 0.05 THEN 'fail' ELSE 'complete' END;
			UPDATE stress_log SET t1 = clock_timestamp(), outcome = stress_log_outcome.o
			FROM (SELECT outcome AS o) stress_log_outcome WHERE lease = leases[i];
			IF outcome = 'fail' THEN
				PERFORM jobq.fail('stress', ids[i], 'random failure', true, leases[i]);
			ELSE
				PERFORM jobq.complete('stress', ids[i], jsonb_build_object('by', '$1'), leases[i]);
			END IF;
			COMMIT;
		END LOOP;
	END LOOP;
END
\$\$;
SQL
}

start=$(date +%s%3N)
pids=()
for w in $(seq 1 $workers); do
	worker "w$w" &
	pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || die "a worker failed"; done
ms=$(($(date +%s%3N) - start))
echo "drained $jobs jobs with $workers workers in $ms ms"

expect_eq "$(q "SELECT count(*) FROM jobq.jobs WHERE queue = 'stress'")" 0 "no job left live"
expect_eq "$(q "SELECT count(*) FROM jobq.history WHERE queue = 'stress' AND status = 'finished'")" \
	"$jobs" "every job finished"
expect_eq "$(q "SELECT count(*) FROM (SELECT id FROM jobq.history WHERE queue = 'stress'
	GROUP BY id HAVING count(*) <> 1) d")" 0 "each job finished exactly once"
expect_eq "$(q "SELECT count(*) FROM (SELECT id FROM stress_log WHERE outcome = 'complete'
	GROUP BY id HAVING count(*) <> 1) d")" 0 "each job completed by exactly one lease"
expect_eq "$(q "SELECT count(*) FROM stress_log WHERE t1 IS NULL")" 0 "every lease ended"
expect_eq "$(q "SELECT count(*) FROM stress_log a JOIN stress_log b
	ON a.id = b.id AND a.lease < b.lease AND a.t0 < b.t1 AND b.t0 < a.t1")" 0 \
	"no two leases of one job overlapped"
fails=$(q "SELECT count(*) FROM stress_log WHERE outcome = 'fail'")
[ "$fails" -gt 0 ] || die "no random failure happened, the retry path was not exercised"
expect_eq "$(q "SELECT count(*) FROM jobq.job_events WHERE queue = 'stress' AND level = 'error'")" \
	"$fails" "one error event per failure"
expect_eq "$(q "SELECT bool_and(h.attempt = (SELECT count(*) FROM stress_log s WHERE s.id = h.id))
	FROM jobq.history h WHERE h.queue = 'stress'")" t "attempt counts the leases taken"
echo "leases: $(q "SELECT count(*) FROM stress_log"), failures retried: $fails"
