-- Training jobs: one row per "train my furrsona" request, written only by the backend
-- (service_role), read by the owner (frontend, RLS + realtime). Also the private photo bucket.
-- Applies unchanged on hosted Supabase: it references only auth.users, auth.uid(), storage.*
-- and the supabase_realtime publication, which every project has.

create table public.ai_training_jobs (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references auth.users (id) on delete cascade,
  furrsona_name text not null,
  status text not null default 'pending',
  progress integer not null default 0,
  estimated_completion timestamptz,
  replicate_training_id text unique,
  replicate_model_version text,
  error_message text,
  photo_urls text[] not null default '{}',
  customization_data jsonb not null default '{}',
  created_at timestamptz not null default now(),
  completed_at timestamptz,
  updated_at timestamptz not null default now(),
  -- Backend bookkeeping (not read by the frontend).
  claim_token uuid,
  claimed_at timestamptz,
  replicate_file_id text,
  replicate_file_url text,
  last_checked_at timestamptz,
  last_replicate_status text,
  upload_expires_at timestamptz,
  predict_time_seconds double precision,
  cost_usd numeric(10, 4),
  notified_at timestamptz,
  last_webhook_id text,

  constraint ai_training_jobs_furrsona_name_length
    check (char_length(btrim(furrsona_name)) between 1 and 100),
  -- text + check rather than an enum: easier to change later (no ALTER TYPE ... ADD VALUE).
  constraint ai_training_jobs_status_valid
    check (status in ('pending', 'uploading', 'training', 'completed', 'failed')),
  constraint ai_training_jobs_progress_range
    check (progress between 0 and 100),
  constraint ai_training_jobs_customization_is_object
    check (jsonb_typeof(customization_data) = 'object'),
  constraint ai_training_jobs_completed_has_result
    check (status <> 'completed' or (progress = 100 and replicate_model_version is not null))
);

comment on table public.ai_training_jobs is
  'FLUX LoRA training jobs. Status moves: uploading -> pending|failed, pending -> training|failed, '
  'training -> completed|failed; completed and failed are final. Enforced by triggers.';

-- A job is born waiting for photos (uploading) or ready to train (pending), never further on.
create or replace function public.ai_training_jobs_check_insert() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.status not in ('pending', 'uploading') then
    raise exception 'ai_training_jobs: a new job must start as pending or uploading, not %',
      new.status
      using errcode = 'check_violation';
  end if;
  return new;
end
$$;

-- The state machine lives here so no client (or bug) can skip or reverse a step.
-- Same status is not a move, so bookkeeping columns stay writable on every row.
create or replace function public.ai_training_jobs_check_update() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.status is distinct from old.status then
    if not (old.status, new.status) in (
      ('uploading', 'pending'), ('uploading', 'failed'),
      ('pending', 'training'), ('pending', 'failed'),
      ('training', 'completed'), ('training', 'failed')
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

create or replace function public.ai_training_jobs_set_updated_at() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.updated_at := now();
  return new;
end
$$;

-- Trigger functions are not an API: keep them out of PostgREST's RPC surface.
revoke all on function public.ai_training_jobs_check_insert() from public, anon, authenticated;
revoke all on function public.ai_training_jobs_check_update() from public, anon, authenticated;
revoke all on function public.ai_training_jobs_set_updated_at() from public, anon, authenticated;

create trigger ai_training_jobs_check_insert
  before insert on public.ai_training_jobs
  for each row execute function public.ai_training_jobs_check_insert();

-- Before-triggers fire in name order: check_update runs before set_updated_at.
create trigger ai_training_jobs_check_update
  before update on public.ai_training_jobs
  for each row execute function public.ai_training_jobs_check_update();

create trigger ai_training_jobs_set_updated_at
  before update on public.ai_training_jobs
  for each row execute function public.ai_training_jobs_set_updated_at();

-- The user's job list, newest first.
create index ai_training_jobs_user_id_created_at_idx
  on public.ai_training_jobs (user_id, created_at desc);
-- The poller: active jobs, least recently checked first.
create index ai_training_jobs_active_last_checked_idx
  on public.ai_training_jobs (last_checked_at nulls first)
  where status in ('uploading', 'training');

-- Users read their own jobs and write nothing; the backend uses service_role (bypasses RLS).
alter table public.ai_training_jobs enable row level security;

create policy "users read own training jobs"
  on public.ai_training_jobs for select to authenticated
  using ((select auth.uid()) = user_id);  -- (select ...) so it runs once per statement

-- Supabase's default privileges grant everything to anon and authenticated; take writes back so
-- they fail with a clear permission error rather than silently matching no policy.
revoke all on table public.ai_training_jobs from anon;
revoke insert, update, delete, truncate on table public.ai_training_jobs from authenticated;
grant select on table public.ai_training_jobs to authenticated;
grant all on table public.ai_training_jobs to service_role;

-- Realtime: the frontend watches its job row instead of polling.
do $$
begin
  if exists (select 1 from pg_publication where pubname = 'supabase_realtime')
     and not exists (
       select 1 from pg_publication_tables
       where pubname = 'supabase_realtime' and schemaname = 'public' and tablename = 'ai_training_jobs'
     ) then
    alter publication supabase_realtime add table public.ai_training_jobs;
  end if;
end
$$;

-- Private bucket for the training photos, at {user_id}/{job_id}/<file>.
insert into storage.buckets (id, name, public, file_size_limit, allowed_mime_types)
values (
  'training-photos', 'training-photos', false, 15728640,
  array['image/jpeg', 'image/png', 'image/webp', 'image/heic', 'image/heif']
)
on conflict (id) do update set
  public = excluded.public,
  file_size_limit = excluded.file_size_limit,
  allowed_mime_types = excluded.allowed_mime_types;

-- A signed-in user may list, upload and delete only inside their own top-level folder.
drop policy if exists "training photos: owner reads" on storage.objects;
create policy "training photos: owner reads"
  on storage.objects for select to authenticated
  using (
    bucket_id = 'training-photos'
    and (storage.foldername(name))[1] = (select auth.uid())::text
  );

drop policy if exists "training photos: owner uploads" on storage.objects;
create policy "training photos: owner uploads"
  on storage.objects for insert to authenticated
  with check (
    bucket_id = 'training-photos'
    and (storage.foldername(name))[1] = (select auth.uid())::text
  );

drop policy if exists "training photos: owner deletes" on storage.objects;
create policy "training photos: owner deletes"
  on storage.objects for delete to authenticated
  using (
    bucket_id = 'training-photos'
    and (storage.foldername(name))[1] = (select auth.uid())::text
  );
