-- Previews (issue 19): the pictures made with a completed version, one row each. A version's
-- completion set is made once (ids derived from the job's id, and `previews_requested_at` on the
-- job set by compare-and-set); each picture's prediction is created under a claim. The owner
-- reads the public columns of their own pictures; only the backend writes. The costs count in
-- the day's training spend.

alter table public.ai_training_jobs add column previews_requested_at timestamptz;
-- The sweep's look for completed versions whose set was never made (its maker died first).
create index ai_training_jobs_previews_due on public.ai_training_jobs (completed_at)
  where status = 'completed' and previews_requested_at is null and deletion_requested_at is null;

create table public.twin_previews (
  id uuid primary key,
  job_id uuid not null references public.ai_training_jobs (id) on delete cascade,
  user_id uuid not null,
  set_id uuid not null,
  kind text not null check (kind in ('completion', 'on_demand')),
  slot integer not null check (slot >= 0 and slot < 16),
  style text check (style is null or length(style) <= 100),
  status text not null default 'pending' check (status in ('pending', 'ready', 'failed')),
  prompt text not null check (length(prompt) <= 2000),
  seed bigint not null check (seed >= 0),
  lora_scale real not null check (lora_scale between -1 and 3),
  model_version text not null,
  prediction_id text,
  prediction_created_at timestamptz,
  claim_token uuid,
  claimed_at timestamptz,
  storage_path text,
  content_type text check (content_type is null or content_type in ('image/webp', 'image/png', 'image/jpeg')),
  failure_code text check (failure_code is null or failure_code in (
    'unsafe', 'timed_out', 'prediction_failed', 'output_lost', 'deleted'
  )),
  error_message text,
  predict_time_seconds real check (predict_time_seconds is null or predict_time_seconds >= 0),
  cost_usd numeric check (cost_usd is null or cost_usd >= 0),
  reserved_cost_usd numeric check (reserved_cost_usd is null or reserved_cost_usd >= 0),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  finished_at timestamptz,
  deleted_at timestamptz,
  unique (set_id, slot),
  -- A ready picture is in the bucket (until its version is deleted); a failed one says why.
  constraint twin_previews_ready_stored
    check (status <> 'ready' or storage_path is not null or deleted_at is not null),
  constraint twin_previews_failed_reason
    check ((status = 'failed') = (failure_code is not null))
);

comment on table public.twin_previews is
  'Pictures made with a completed version on Replicate and copied into the private bucket at '
  '{user_id}/previews/{job_id}/{id}.<ext>; one completion set per version, more on demand.';

create index twin_previews_job on public.twin_previews (job_id);
create index twin_previews_pending on public.twin_previews (updated_at) where status = 'pending' and deleted_at is null;
create index twin_previews_owner_day on public.twin_previews (user_id, created_at) where kind = 'on_demand';

-- pending -> ready | failed; a final picture keeps its status; ids, owner and version never move.
create or replace function public.twin_previews_guard() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.id <> old.id or new.job_id <> old.job_id or new.user_id <> old.user_id
     or new.set_id <> old.set_id or new.slot <> old.slot or new.kind <> old.kind
     or new.model_version <> old.model_version or new.seed <> old.seed then
    raise exception 'a preview''s identity never changes' using errcode = '23514';
  end if;
  if old.status <> 'pending' and new.status <> old.status then
    raise exception 'preview status % is final', old.status using errcode = '23514';
  end if;
  if old.prediction_id is not null and new.prediction_id is distinct from old.prediction_id then
    raise exception 'a preview''s prediction never changes' using errcode = '23514';
  end if;
  new.updated_at := now();
  return new;
end;
$$;

create trigger twin_previews_guard
  before update on public.twin_previews
  for each row execute function public.twin_previews_guard();

-- RLS: the owner reads their own pictures of jobs they can see (not being deleted), public
-- columns only; nobody but the backend writes.
alter table public.twin_previews enable row level security;

create policy "users read own previews"
  on public.twin_previews for select to authenticated
  using (
    (select auth.uid()) = user_id
    and deleted_at is null
    and exists (select 1 from public.ai_training_jobs j where j.id = job_id)
  );

revoke all on table public.twin_previews from anon, authenticated;
grant select (
  id, job_id, user_id, set_id, kind, slot, style, status, prompt, storage_path, content_type,
  failure_code, error_message, created_at, finished_at
) on table public.twin_previews to authenticated;
grant all on table public.twin_previews to service_role;

-- An owner's on-demand set, within the day's limit: one owner at a time (advisory lock), a set
-- inserted already answers as accepted and is not counted again.
create or replace function public.request_previews(
  p_user uuid, p_rows jsonb, p_per_day integer, p_now timestamptz
) returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_set uuid := (p_rows -> 0 ->> 'set_id')::uuid;
  v_used integer;
begin
  perform pg_advisory_xact_lock(hashtextextended('request_previews:' || p_user::text, 0));
  select count(*) into v_used
    from public.twin_previews
   where user_id = p_user and kind = 'on_demand'
     and created_at >= date_trunc('day', p_now, 'UTC')
     and created_at < date_trunc('day', p_now, 'UTC') + interval '1 day';
  if exists (select 1 from public.twin_previews where set_id = v_set) then
    return jsonb_build_object('accepted', true, 'used', v_used);
  end if;
  if v_used + jsonb_array_length(p_rows) > p_per_day then
    return jsonb_build_object('accepted', false, 'used', v_used);
  end if;
  insert into public.twin_previews (
    id, job_id, user_id, set_id, kind, slot, style, prompt, seed, lora_scale, model_version,
    reserved_cost_usd, created_at
  )
  select (r ->> 'id')::uuid, (r ->> 'job_id')::uuid, p_user, (r ->> 'set_id')::uuid, 'on_demand',
         (r ->> 'slot')::integer, r ->> 'style', r ->> 'prompt', (r ->> 'seed')::bigint,
         (r ->> 'lora_scale')::real, r ->> 'model_version', (r ->> 'reserved_cost_usd')::numeric,
         p_now
    from jsonb_array_elements(p_rows) r
   where (r ->> 'user_id')::uuid = p_user;
  return jsonb_build_object('accepted', true, 'used', v_used + jsonb_array_length(p_rows));
end;
$$;
revoke all on function public.request_previews(uuid, jsonb, integer, timestamptz)
  from public, anon, authenticated;
grant execute on function public.request_previews(uuid, jsonb, integer, timestamptz) to service_role;

-- The day's spend: trainings admitted today (their bill, else their reservation) and previews
-- made today (their bill, else their estimate until it is known).
create or replace function public.training_spend_today(p_now timestamptz)
returns numeric
language sql
stable
security definer
set search_path = ''
as $$
  select
    coalesce((
      select sum(coalesce(j.cost_usd, j.reserved_cost_usd))
        from public.ai_training_jobs j
       where j.admitted_at >= date_trunc('day', p_now, 'UTC')
         and j.admitted_at < date_trunc('day', p_now, 'UTC') + interval '1 day'
    ), 0)
    + coalesce((
      select sum(coalesce(p.cost_usd, p.reserved_cost_usd))
        from public.twin_previews p
       where p.created_at >= date_trunc('day', p_now, 'UTC')
         and p.created_at < date_trunc('day', p_now, 'UTC') + interval '1 day'
    ), 0)
$$;
revoke all on function public.training_spend_today(timestamptz) from public, anon, authenticated;

-- The orphan query (nothing-strands migration) knows the previews: an object under
-- {user}/previews/{job}/ is kept while a preview row not deleted names it as its picture.
create index twin_previews_storage_path on public.twin_previews (storage_path)
  where storage_path is not null and deleted_at is null;

create or replace function public.orphan_photo_objects(p_older_than timestamptz, p_limit integer)
returns table (name text)
language sql
stable
security definer
set search_path = ''
as $$
  select o.name
    from storage.objects o
   where o.bucket_id = 'training-photos'
     and o.created_at < p_older_than
     and not exists (
           select 1
             from public.ai_training_jobs j
            where j.id::text = split_part(o.name, '/', 2)
              and j.user_id::text = split_part(o.name, '/', 1)
              and j.photos_deleted_at is null)
     and not exists (
           select 1
             from public.twin_previews p
            where p.storage_path = o.name
              and p.deleted_at is null)
   order by o.created_at
   limit p_limit
$$;
revoke all on function public.orphan_photo_objects(timestamptz, integer)
  from public, anon, authenticated;
grant execute on function public.orphan_photo_objects(timestamptz, integer) to service_role;
