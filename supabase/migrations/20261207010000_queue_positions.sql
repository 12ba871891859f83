-- The training queue at launch-day scale (bench.admission: 10,000 queued jobs).
--
-- 1. Admission takes the common case from the index: the oldest queued jobs whose owners have no
--    training today and nothing older in line (a turn of 1, always eligible), stopping once it
--    has enough. Only when fewer remain does it rank the whole line (turns of 2 and more).
-- 2. A queued job's place is kept on its row (`queue_position`), refreshed by the sweep once a
--    minute in one statement, so a status read (or Realtime) needs no ranking of the whole line.
--    A job queued since the last refresh is ranked once, on its first read.

alter table public.ai_training_jobs add column queue_position integer;

comment on column public.ai_training_jobs.queue_position is
  'A queued job''s place in line (1 = next), refreshed by the sweep; null once it leaves the line.';

grant select (queue_position) on table public.ai_training_jobs to authenticated;

-- A job that leaves the line has no place in it.
create or replace function public.ai_training_jobs_leave_line() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.status <> 'queued' then
    new.queue_position := null;
  end if;
  return new;
end
$$;

revoke all on function public.ai_training_jobs_leave_line() from public, anon, authenticated;

create trigger ai_training_jobs_leave_line
  before update on public.ai_training_jobs
  for each row execute function public.ai_training_jobs_leave_line();

-- Places in line of every queued job: 1 + the eligible jobs ranked before it.
create or replace function public.training_queue_positions(p_per_user integer, p_now timestamptz)
returns table (id uuid, queue_position integer, eligible boolean)
language sql
stable
security definer
set search_path = ''
as $$
  select q.id,
         (1 + coalesce(count(*) filter (where q.eligible) over (
            order by q.place rows between unbounded preceding and 1 preceding), 0))::integer,
         q.eligible
    from public.training_queue(p_per_user, p_now) q
$$;

-- The sweep's refresh: write the places that changed; how many rows it wrote.
create or replace function public.refresh_queue_positions(p_per_user integer, p_now timestamptz)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  written integer;
begin
  update public.ai_training_jobs j
     set queue_position = p.queue_position
    from public.training_queue_positions(p_per_user, p_now) p
   where j.id = p.id and j.status = 'queued'
     and j.queue_position is distinct from p.queue_position;
  get diagnostics written = row_count;
  return written;
end
$$;

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
  taken integer;
  day timestamptz := date_trunc('day', p_now, 'UTC');
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
  -- Turn 1, from the index: no training of the owner's today or in flight, nothing of theirs
  -- older in line. These come first in the full order, oldest first.
  return query
  with chosen as (
    select q.id from public.ai_training_jobs q
     where q.status = 'queued'
       and not exists (
         select 1 from public.ai_training_jobs o
          where o.user_id = q.user_id and o.status = 'queued'
            and (o.queued_at, o.id) < (q.queued_at, q.id))
       and not exists (
         select 1 from public.ai_training_jobs s
          where s.user_id = q.user_id
            and (s.status = 'training' or (s.admitted_at >= day and s.status <> 'queued')))
     order by q.queued_at, q.id
     limit room
  )
  update public.ai_training_jobs j
     set status = 'training', claim_token = gen_random_uuid(), claimed_at = now(),
         last_checked_at = now(), admitted_at = p_now, reserved_cost_usd = p_estimate
    from chosen
   where j.id = chosen.id and j.status = 'queued'
  returning j.id, j.claim_token;
  get diagnostics taken = row_count;
  if taken >= room then
    return;
  end if;
  -- Fewer first turns than slots: the rest in the full order (it counts the ones just let in).
  return query
  with chosen as (
    select q.id from public.training_queue(p_per_user, p_now) q
     where q.eligible
     order by q.place
     limit room - taken
  )
  update public.ai_training_jobs j
     set status = 'training', claim_token = gen_random_uuid(), claimed_at = now(),
         last_checked_at = now(), admitted_at = p_now, reserved_cost_usd = p_estimate
    from chosen
   where j.id = chosen.id and j.status = 'queued'
  returning j.id, j.claim_token;
end
$$;

-- A queued job's place and what its estimate needs. The place is the row's (the sweep's last
-- refresh) or, for a job queued since, ranked now; eligibility is the owner's own, always now.
create or replace function public.training_queue_place(
  p_job uuid,
  p_per_user integer,
  p_now timestamptz default now()
)
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  job public.ai_training_jobs;
  place integer;
  ahead_of_mine integer;
  owner_busy integer;
begin
  select * into job from public.ai_training_jobs where id = p_job and status = 'queued';
  if not found then
    return null;
  end if;
  select count(*) into ahead_of_mine from public.ai_training_jobs o
   where o.user_id = job.user_id and o.status = 'queued'
     and (o.queued_at, o.id) < (job.queued_at, job.id);
  select count(*) into owner_busy from public.ai_training_jobs o
   where o.user_id = job.user_id and o.status = 'training';
  place := job.queue_position;
  if place is null then
    select p.queue_position into place
      from public.training_queue_positions(p_per_user, p_now) p where p.id = p_job;
  end if;
  return jsonb_build_object(
    'position', place,
    'eligible', owner_busy + ahead_of_mine + 1 <= p_per_user,
    'queued_at', job.queued_at,
    'in_flight', (select count(*) from public.ai_training_jobs where status = 'training'),
    'owner_in_flight', owner_busy,
    'running_ends', coalesce(
      (select jsonb_agg(f.estimated_completion order by f.estimated_completion)
         from public.ai_training_jobs f
        where f.status = 'training' and f.estimated_completion is not null),
      '[]'::jsonb),
    'spent_today', public.training_spend_today(p_now),
    'held_until', (select h.held_until from public.training_admission_hold h),
    'median_training_seconds', (
      select percentile_cont(0.5) within group (order by r.seconds)
        from (
          select extract(epoch from j.completed_at - coalesce(j.admitted_at, j.claimed_at)) as seconds
            from public.ai_training_jobs j
           where j.status = 'completed' and coalesce(j.admitted_at, j.claimed_at) is not null
           order by j.completed_at desc
           limit 20
        ) r)
  );
end
$$;

revoke all on function public.training_queue_positions(integer, timestamptz)
  from public, anon, authenticated;
revoke all on function public.refresh_queue_positions(integer, timestamptz)
  from public, anon, authenticated;
grant execute on function public.refresh_queue_positions(integer, timestamptz) to service_role;
