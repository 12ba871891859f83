-- On-call: the jobs that are stuck, each with why and since when (docs/operations.md, "Stuck
-- jobs"). A function rather than a view so the thresholds can follow the deployed settings; the
-- defaults are the template's (TRAINING_STALE_MINUTES 90, CLAIM_TIMEOUT_SECONDS 180,
-- UPLOAD_WINDOW_SECONDS 7200, the sweep every minute). It reads every user's jobs, so it is for
-- the backend and the SQL editor only: service_role, never anon or authenticated.
--
--   select * from public.stuck_training_jobs();
--   select * from public.stuck_training_jobs(training_stale_minutes => 30);

create or replace function public.stuck_training_jobs(
  training_stale_minutes integer default 90,
  claim_timeout_seconds integer default 180,
  upload_window_seconds integer default 7200,
  unchecked_minutes integer default 10,
  unstarted_minutes integer default 60
) returns table (
  id uuid,
  user_id uuid,
  status text,
  progress integer,
  reason text,
  since timestamptz,
  stuck_for interval,
  replicate_training_id text,
  last_replicate_status text,
  last_checked_at timestamptz,
  claimed_at timestamptz,
  created_at timestamptz
)
language sql
stable
security invoker
set search_path = ''
as $$
  select j.id, j.user_id, j.status, j.progress, s.reason, s.since, now() - s.since,
    j.replicate_training_id, j.last_replicate_status, j.last_checked_at, j.claimed_at,
    j.created_at
  from public.ai_training_jobs as j
  cross join lateral (
    -- The first reason that applies, most fundamental first.
    select c.reason, c.since
    from (values
      (1, j.deletion_requested_at is not null and j.deleted_at is null
          and j.deletion_requested_at < now() - make_interval(mins => unchecked_minutes),
        'deletion not finished: the sweep''s cleanup task retries it every run; see its errors',
        j.deletion_requested_at),
      (2, j.status = 'training' and j.replicate_training_id is null
          and j.claimed_at < now() - make_interval(secs => claim_timeout_seconds),
        'start died before the training was created: the next sweep or start call resumes it '
        '(adopting a training Replicate already has), or fails it after training_stale_minutes',
        j.claimed_at),
      (3, j.status = 'training' and j.replicate_training_id is not null
          and coalesce(j.last_checked_at, j.claimed_at, j.created_at)
            < now() - make_interval(mins => unchecked_minutes),
        'not checked recently: the sweep is not running or not reaching this job; see the '
        'sweep alarms',
        coalesce(j.last_checked_at, j.claimed_at, j.created_at)),
      (4, j.status = 'training'
          and j.progress_changed_at < now() - make_interval(mins => training_stale_minutes),
        'no progress for training_stale_minutes: the next sweep cancels it on Replicate and '
        'fails it',
        j.progress_changed_at),
      (5, j.status = 'uploading'
          and coalesce(j.upload_expires_at,
                       j.created_at + make_interval(secs => upload_window_seconds))
            < now() - interval '5 minutes',
        'upload window closed: the sweep''s uploads task fails it and removes its objects',
        coalesce(j.upload_expires_at, j.created_at + make_interval(secs => upload_window_seconds))),
      (6, j.status = 'pending' and j.updated_at < now() - make_interval(mins => unstarted_minutes),
        'photos uploaded but training never started: no start call came (the app or the person '
        'stopped); a start call runs it',
        j.updated_at)
    ) as c (rank, applies, reason, since)
    where c.applies
    order by c.rank
    limit 1
  ) as s
  order by s.since;
$$;

comment on function public.stuck_training_jobs(integer, integer, integer, integer, integer) is
  'Jobs that are stuck, with the reason and since when; service_role only (docs/operations.md).';

-- Supabase's default privileges grant execute on new functions to anon and authenticated.
revoke all on function public.stuck_training_jobs(integer, integer, integer, integer, integer)
  from public, anon, authenticated;
grant execute on function public.stuck_training_jobs(integer, integer, integer, integer, integer)
  to service_role;
