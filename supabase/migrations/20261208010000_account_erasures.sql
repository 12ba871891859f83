-- When a person's account goes (the auth.users row is deleted), the cascade takes their job and
-- twin rows at once, and with them everything that could find their photos, zips, trainings and
-- trained versions. So before the row goes, a trigger writes down what must be removed, in a
-- table the cascade cannot reach (no foreign key to auth.users); the sweep's `accounts` task
-- (shared/services/erasure.py) then cancels, deletes and removes until nothing is left, and
-- leaves the row anonymous: no user id, no paths, no ids, only counts and times.
create table public.account_erasures (
  id uuid primary key default gen_random_uuid(),
  user_id uuid,  -- deliberately no foreign key: it outlives the account; null once finished
  storage_prefix text,  -- '{user_id}/' in the training-photos bucket
  -- One entry per job: job_id, training_id, file_id, file_url, model_version, claimed_at,
  -- last_checked_at (what a start cut short may still create), status.
  jobs jsonb not null default '[]'::jsonb,
  twin_ids uuid[] not null default '{}',
  uploads_open_until timestamptz,  -- the last signed upload URL's expiry, if any
  requested_at timestamptz not null default now(),
  attempts integer not null default 0,
  last_attempt_at timestamptz,
  finished_at timestamptz,
  summary jsonb,  -- what was removed (counts), written when finished
  constraint account_erasures_anonymous_when_finished check (
    finished_at is null
    or (user_id is null and storage_prefix is null and jobs = '[]'::jsonb and twin_ids = '{}')
  )
);

comment on table public.account_erasures is
  'What a deleted account left to remove (written before the auth.users row goes); anonymous once finished.';

create index account_erasures_pending_idx
  on public.account_erasures (requested_at) where finished_at is null;

-- The backend only: no policy for anon or authenticated (RLS on, nothing granted).
alter table public.account_erasures enable row level security;
revoke all on table public.account_erasures from anon, authenticated;

create or replace function public.record_account_erasure()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  insert into public.account_erasures (user_id, storage_prefix, jobs, twin_ids, uploads_open_until)
  select
    old.id,
    old.id::text || '/',
    coalesce(
      (select jsonb_agg(jsonb_build_object(
                'job_id', j.id,
                'training_id', j.replicate_training_id,
                'file_id', case when j.replicate_file_deleted_at is null then j.replicate_file_id end,
                'file_url', case when j.replicate_file_deleted_at is null then j.replicate_file_url end,
                'model_version',
                  case when j.model_version_deleted_at is null then j.replicate_model_version end,
                'claimed_at', j.claimed_at,
                'last_checked_at', j.last_checked_at,
                'status', j.status) order by j.created_at)
         from public.ai_training_jobs j
        where j.user_id = old.id),
      '[]'::jsonb),
    coalesce((select array_agg(t.id) from public.twins t where t.user_id = old.id), '{}'),
    (select max(j.upload_expires_at) from public.ai_training_jobs j where j.user_id = old.id);
  return old;
end;
$$;

revoke all on function public.record_account_erasure() from public, anon, authenticated;

create trigger ai_training_record_account_erasure
  before delete on auth.users
  for each row execute function public.record_account_erasure();
