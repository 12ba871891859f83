-- Batch training (issue 17): a started job waits in our own queue (`queued`) until one database
-- function admits it, under a cap on trainings in flight, a daily budget and a per-owner cap, in
-- a fair order. A slot is a row in `training`: nothing to leak when a function crashes.
--
-- Moves: pending -> queued -> training, queued -> failed (cancel, delete, too long in line), and
-- training -> queued while no training was created (Replicate refused the create: back in line,
-- in the same place). pending -> training is gone: admission is the only way in.

alter table public.ai_training_jobs
  drop constraint ai_training_jobs_status_valid,
  add constraint ai_training_jobs_status_valid
    check (status in ('pending', 'uploading', 'queued', 'training', 'completed', 'failed')),
  add column queued_at timestamptz,
  add column admitted_at timestamptz,
  -- What an admitted training is expected to cost until Replicate's bill (`cost_usd`) is known.
  add column reserved_cost_usd numeric(10, 4),
  add constraint ai_training_jobs_queued_has_time check (status <> 'queued' or queued_at is not null);

comment on column public.ai_training_jobs.queued_at is
  'When the job joined the queue (its place in line: older first within an owner).';
comment on column public.ai_training_jobs.admitted_at is
  'When admit_trainings let it train; the day of this counts its cost against the daily budget.';

comment on table public.ai_training_jobs is
  'FLUX LoRA training jobs. Status moves: uploading -> pending|failed, pending -> queued|failed, '
  'queued -> training|failed, training -> completed|failed (or back to queued before a training '
  'exists); completed and failed are final. Enforced by triggers.';

create or replace function public.ai_training_jobs_check_update() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.status is distinct from old.status then
    if not (old.status, new.status) in (
      ('uploading', 'pending'), ('uploading', 'failed'),
      ('pending', 'queued'), ('pending', 'failed'),
      ('queued', 'training'), ('queued', 'failed'),
      ('training', 'completed'), ('training', 'failed')
    ) and not (
      -- Back in line: only while Replicate has no training for it.
      old.status = 'training' and new.status = 'queued'
      and old.replicate_training_id is null and new.replicate_training_id is null
    ) then
      raise exception 'ai_training_jobs: status move % -> % is not allowed', old.status, new.status
        using errcode = 'check_violation';
    end if;
    if new.status in ('completed', 'failed') then
      new.completed_at := coalesce(new.completed_at, now());
    end if;
    if new.status = 'completed' then
      new.progress := 100;
    end if;
  end if;
  if new.progress < old.progress then
    raise exception 'ai_training_jobs: progress may not decrease (% -> %)', old.progress, new.progress
      using errcode = 'check_violation';
  end if;
  return new;
end
$$;

-- The phase of a queued job is `waiting`; otherwise as the visible-progress migration made it.
create or replace function public.ai_training_jobs_track_phase() returns trigger
language plpgsql
set search_path = ''
as $$
declare
  training_phases constant text[] := array['preparing_gpu', 'reading_photos', 'training', 'saving'];
begin
  if new.status in ('uploading', 'pending') then
    new.phase := 'uploading';
  elsif new.status = 'queued' then
    new.phase := 'waiting';
  elsif new.status = 'completed' then
    new.phase := 'done';
  elsif new.status = 'failed' then
    new.phase := case when new.phase = 'canceled' then 'canceled' else 'failed' end;
  elsif array_position(training_phases, new.phase) is null then
    new.phase := 'preparing_gpu';
  end if;
  if tg_op = 'UPDATE' then
    if new.status = 'training' and old.status = 'training'
       and array_position(training_phases, old.phase) > array_position(training_phases, new.phase) then
      new.phase := old.phase;
    end if;
    new.step := greatest(old.step, new.step);
    new.phase_times := new.phase_times || old.phase_times;
  end if;
  return new;
end
$$;

-- One version on its way per twin: a queued one counts.
drop index public.ai_training_jobs_one_in_flight_per_twin;
create unique index ai_training_jobs_one_in_flight_per_twin
  on public.ai_training_jobs (twin_id)
  where status in ('uploading', 'pending', 'queued', 'training');

-- The queue in line order, and the trainings in flight per owner.
create index ai_training_jobs_queued_idx
  on public.ai_training_jobs (queued_at, id) where status = 'queued';
create index ai_training_jobs_in_flight_idx
  on public.ai_training_jobs (user_id) where status = 'training';
-- Today's spend: the jobs admitted since midnight (UTC).
create index ai_training_jobs_admitted_at_idx
  on public.ai_training_jobs (admitted_at) where admitted_at is not null;

-- A 429 from Replicate on a create holds every admission back until then (one row, shared by
-- every Lambda). Only the backend reads or writes it.
create table public.training_admission_hold (
  id boolean primary key default true,
  held_until timestamptz not null,
  reason text,
  constraint training_admission_hold_one_row check (id)
);
alter table public.training_admission_hold enable row level security;
revoke all on table public.training_admission_hold from anon, authenticated;
grant all on table public.training_admission_hold to service_role;

-- The queue in admission order. Owners take turns: a job's turn is how many trainings its owner
-- has had today (UTC) plus its place among the owner's queued jobs (oldest first), so every
-- owner's first job goes before anyone's second, whenever each was queued. `eligible`: within
-- the per-owner cap now (the owner's trainings in flight plus its place).
create or replace function public.training_queue(p_per_user integer, p_now timestamptz)
returns table (id uuid, user_id uuid, queued_at timestamptz, place bigint, eligible boolean)
language sql
stable
security definer
set search_path = ''
as $$
  with today as (
    select j.user_id,
           count(*) as served,
           count(*) filter (where j.status = 'training') as busy
      from public.ai_training_jobs j
     where j.status = 'training'
        or (j.admitted_at >= date_trunc('day', p_now, 'UTC') and j.status <> 'queued')
     group by j.user_id
  ), turns as (
    select q.id, q.user_id, q.queued_at,
           row_number() over (partition by q.user_id order by q.queued_at, q.id) as nth,
           coalesce(t.served, 0) as served,
           coalesce(t.busy, 0) as busy
      from public.ai_training_jobs q
      left join today t on t.user_id = q.user_id
     where q.status = 'queued'
  )
  select t.id, t.user_id, t.queued_at,
         row_number() over (order by t.served + t.nth, t.queued_at, t.id) as place,
         t.busy + t.nth <= p_per_user as eligible
    from turns t
$$;

-- What today's admissions cost so far: Replicate's bill where known, the reservation otherwise.
create or replace function public.training_spend_today(p_now timestamptz)
returns numeric
language sql
stable
security definer
set search_path = ''
as $$
  select coalesce(sum(coalesce(j.cost_usd, j.reserved_cost_usd)), 0)
    from public.ai_training_jobs j
   where j.admitted_at >= date_trunc('day', p_now, 'UTC')
     and j.admitted_at < date_trunc('day', p_now, 'UTC') + interval '1 day'
$$;

-- Admit up to `p_limit` queued jobs, atomically across every caller: while fewer than `p_max` are
-- in flight, today's spend plus `p_estimate` per new one stays within `p_budget` (null: no
-- budget), and no owner gets more than `p_per_user` in flight. Each admitted job moves to
-- `training` with a fresh claim, so the start code runs it as its own claimed start, and a crash
-- before the training exists is the stalled start the sweep already resumes. `p_now` is the
-- queue's clock (the day of the budget and the turns); the claim's times are the database's.
create or replace function public.admit_trainings(
  p_max integer,
  p_per_user integer,
  p_budget numeric,
  p_estimate numeric,
  p_limit integer,
  p_now timestamptz default now()
)
returns table (job_id uuid, claim_token uuid)
language plpgsql
security definer
set search_path = ''
as $$
declare
  room integer;
begin
  -- Serialises admissions: SKIP LOCKED alone would let two callers both count the same free slot.
  perform pg_advisory_xact_lock(hashtext('public.admit_trainings'));
  if exists (select 1 from public.training_admission_hold h where h.held_until > p_now) then
    return;
  end if;
  select least(p_max - count(*), p_limit) into room
    from public.ai_training_jobs where status = 'training';
  if p_budget is not null then
    room := least(room, floor((p_budget - public.training_spend_today(p_now)) / p_estimate));
  end if;
  if room is null or room <= 0 then
    return;
  end if;
  return query
  with chosen as (
    select q.id from public.training_queue(p_per_user, p_now) q
     where q.eligible
     order by q.place
     limit room
  )
  update public.ai_training_jobs j
     set status = 'training',
         claim_token = gen_random_uuid(),
         claimed_at = now(),
         last_checked_at = now(),
         admitted_at = p_now,
         reserved_cost_usd = p_estimate
    from chosen
   where j.id = chosen.id and j.status = 'queued'
  returning j.id, j.claim_token;
end
$$;

-- Hold every admission back until `p_until` (a later hold wins; an earlier one changes nothing).
create or replace function public.hold_training_admissions(p_until timestamptz, p_reason text)
returns timestamptz
language sql
security definer
set search_path = ''
as $$
  insert into public.training_admission_hold as h (id, held_until, reason)
  values (true, p_until, p_reason)
  on conflict (id) do update
     set held_until = greatest(h.held_until, excluded.held_until),
         reason = case when excluded.held_until > h.held_until then excluded.reason else h.reason end
  returning held_until
$$;

-- A queued job's place, and what its estimate needs: the trainings in flight (and when they are
-- expected to end), the owner's own in flight, today's spend, the hold, and the median duration
-- of the last 20 completed trainings. Null for a job that is not queued.
create or replace function public.training_queue_place(
  p_job uuid,
  p_per_user integer,
  p_now timestamptz default now()
)
returns jsonb
language sql
stable
security definer
set search_path = ''
as $$
  with queue as (
    select * from public.training_queue(p_per_user, p_now)
  ), mine as (
    select q.* from queue q where q.id = p_job
  ), flying as (
    select j.user_id, j.estimated_completion
      from public.ai_training_jobs j
     where j.status = 'training'
  ), recent as (
    select extract(epoch from j.completed_at - coalesce(j.admitted_at, j.claimed_at)) as seconds
      from public.ai_training_jobs j
     where j.status = 'completed' and coalesce(j.admitted_at, j.claimed_at) is not null
     order by j.completed_at desc
     limit 20
  )
  select jsonb_build_object(
    'position', (select count(*) from queue q where q.eligible and q.place < m.place) + 1,
    'eligible', m.eligible,
    'queued_at', m.queued_at,
    'in_flight', (select count(*) from flying),
    'owner_in_flight', (select count(*) from flying f where f.user_id = m.user_id),
    'running_ends', coalesce(
      (select jsonb_agg(f.estimated_completion order by f.estimated_completion)
         from flying f where f.estimated_completion is not null),
      '[]'::jsonb),
    'spent_today', public.training_spend_today(p_now),
    'held_until', (select h.held_until from public.training_admission_hold h),
    'median_training_seconds',
      (select percentile_cont(0.5) within group (order by r.seconds) from recent r)
  )
  from mine m
$$;

-- For the sweep's metrics: how deep the queue is, how long its oldest job has waited, how many
-- trainings are in flight, and today's spend.
create or replace function public.training_queue_stats(p_now timestamptz default now())
returns jsonb
language sql
stable
security definer
set search_path = ''
as $$
  select jsonb_build_object(
    'depth', (select count(*) from public.ai_training_jobs where status = 'queued'),
    'oldest_queued_at', (select min(queued_at) from public.ai_training_jobs where status = 'queued'),
    'in_flight', (select count(*) from public.ai_training_jobs where status = 'training'),
    'spent_today', public.training_spend_today(p_now)
  )
$$;

-- Supabase's default privileges grant execute on new functions to anon and authenticated.
revoke all on function public.training_queue(integer, timestamptz) from public, anon, authenticated;
revoke all on function public.training_spend_today(timestamptz) from public, anon, authenticated;
revoke all on function public.admit_trainings(integer, integer, numeric, numeric, integer, timestamptz)
  from public, anon, authenticated;
revoke all on function public.hold_training_admissions(timestamptz, text)
  from public, anon, authenticated;
revoke all on function public.training_queue_place(uuid, integer, timestamptz)
  from public, anon, authenticated;
revoke all on function public.training_queue_stats(timestamptz) from public, anon, authenticated;
grant execute on function public.admit_trainings(integer, integer, numeric, numeric, integer, timestamptz)
  to service_role;
grant execute on function public.hold_training_admissions(timestamptz, text) to service_role;
grant execute on function public.training_queue_place(uuid, integer, timestamptz) to service_role;
grant execute on function public.training_queue_stats(timestamptz) to service_role;

-- The owner sees when their job joined the line and when it was let in.
grant select (queued_at, admitted_at) on table public.ai_training_jobs to authenticated;
