-- Twins: what a person owns is a twin (a name, a customisation) with one or more versions; every
-- training job is one version of one twin, numbered 1, 2, 3 ... within it. One version is active
-- (the one pictures are made with). The database keeps the promises, not only the code:
-- - the active version is a completed, not-deleted job of the same twin and the same owner;
-- - at most one version per twin is on its way (uploading, pending or training);
-- - version numbers are never reused (a counter on the twin, taken by the insert itself);
-- - a job's twin, version and owner never change; the active version cannot be deleted;
-- - a completed training becomes its twin's active version in the same transaction.
-- Every existing job becomes version 1 of a twin of its own (its completed job active).

create table public.twins (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references auth.users (id) on delete cascade,
  name text not null,
  customization_data jsonb not null default '{}',
  active_job_id uuid,
  next_version integer not null default 1,  -- backend bookkeeping
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  deletion_requested_at timestamptz,        -- backend bookkeeping
  deleted_at timestamptz,                   -- backend bookkeeping

  constraint twins_name_length check (char_length(btrim(name)) between 1 and 100),
  constraint twins_customization_is_object check (jsonb_typeof(customization_data) = 'object'),
  constraint twins_next_version_positive check (next_version >= 1),
  constraint twins_deleted_after_request
    check (deleted_at is null or deletion_requested_at is not null),
  -- A twin being deleted has no active version (its versions are being deleted).
  constraint twins_deleting_has_no_active_version
    check (deletion_requested_at is null or active_job_id is null)
);

comment on table public.twins is
  'A person''s Flurrty Twin: its name, customisation and active version; its versions are the '
  'ai_training_jobs rows with its twin_id. Written only by the backend.';

alter table public.ai_training_jobs
  -- No cascade: a twin that still has versions cannot be removed (NO ACTION, checked at the end
  -- of the statement, so deleting a person still removes both).
  add column twin_id uuid references public.twins (id),
  add column version integer,
  add constraint ai_training_jobs_version_positive check (version >= 1),
  add constraint ai_training_jobs_id_twin unique (id, twin_id),
  add constraint ai_training_jobs_twin_version unique (twin_id, version);

-- The active pointer can only name a version of this very twin. NO ACTION (checked at the end of
-- the statement), so deleting a person cascades through twins and jobs together.
alter table public.twins
  add constraint twins_active_is_a_version_of_this_twin
    foreign key (active_job_id, id) references public.ai_training_jobs (id, twin_id);

-- Every existing job is version 1 of a twin of its own, with the job's id, name and
-- customisation; a job being deleted gives a twin being deleted (and a tombstone, a tombstone).
insert into public.twins (
  id, user_id, name, customization_data, next_version, created_at, updated_at,
  deletion_requested_at, deleted_at
)
select id, user_id, furrsona_name, customization_data, 2, created_at, updated_at,
       deletion_requested_at, deleted_at
from public.ai_training_jobs;

update public.ai_training_jobs set twin_id = id, version = 1;

update public.twins t
set active_job_id = j.id
from public.ai_training_jobs j
where j.twin_id = t.id and j.status = 'completed' and j.deletion_requested_at is null;

alter table public.ai_training_jobs
  alter column twin_id set not null,
  alter column version set not null;

-- At most one version on its way per twin: a second retrain (or a racing duplicate) is refused.
create unique index ai_training_jobs_one_in_flight_per_twin
  on public.ai_training_jobs (twin_id)
  where status in ('uploading', 'pending', 'training');

create index ai_training_jobs_twin_id_idx on public.ai_training_jobs (twin_id, version);
create index twins_user_id_created_at_idx on public.twins (user_id, created_at desc);
create index twins_active_job_id_idx on public.twins (active_job_id) where active_job_id is not null;
create index twins_deletion_pending_idx
  on public.twins (deletion_requested_at)
  where deletion_requested_at is not null and deleted_at is null;

-- A new job takes the next number of its twin, which must be the same owner's and not being
-- deleted. The counter only grows, so a number is never given twice, even after a deletion. A
-- job inserted without a twin starts one of its own (its name and customisation), as every job
-- before this migration did.
create or replace function public.ai_training_jobs_assign_version() returns trigger
language plpgsql
set search_path = ''
as $$
declare
  taken integer;
begin
  if new.twin_id is null then
    insert into public.twins (user_id, name, customization_data)
    values (new.user_id, new.furrsona_name, new.customization_data)
    returning id into new.twin_id;
  end if;
  update public.twins
     set next_version = next_version + 1, updated_at = now()
   where id = new.twin_id and user_id = new.user_id and deletion_requested_at is null
  returning next_version - 1 into taken;
  if taken is null then
    raise exception 'ai_training_jobs: twin % is not this owner''s, or is being deleted', new.twin_id
      using errcode = 'check_violation';
  end if;
  new.version := taken;
  return new;
end
$$;

-- A job's twin, number and owner are its identity: they never change.
create or replace function public.ai_training_jobs_keep_identity() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.twin_id is distinct from old.twin_id
     or new.version is distinct from old.version
     or new.user_id is distinct from old.user_id then
    raise exception 'ai_training_jobs: a job''s twin, version and owner never change'
      using errcode = 'check_violation';
  end if;
  -- The active version cannot be deleted (delete the twin, or activate another version first).
  if new.deletion_requested_at is not null and old.deletion_requested_at is null
     and exists (select 1 from public.twins where active_job_id = new.id) then
    raise exception 'ai_training_jobs: job % is its twin''s active version', new.id
      using errcode = 'check_violation';
  end if;
  return new;
end
$$;

-- A training that completes becomes its twin's active version, in the same transaction: no crash
-- can leave a completed version waiting to be activated.
create or replace function public.ai_training_jobs_activate_completed() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.status = 'completed' and old.status is distinct from 'completed' then
    update public.twins
       set active_job_id = new.id, updated_at = now()
     where id = new.twin_id and deletion_requested_at is null;
  end if;
  return null;
end
$$;

-- The active version must be a completed, not-deleted version of this twin and its owner. The
-- version's row is locked (for share) while we look, so a concurrent deletion of it waits for us
-- and then sees the pointer (and is refused), or goes first and makes us refuse.
create or replace function public.twins_check_active() returns trigger
language plpgsql
set search_path = ''
as $$
declare
  version_status text;
  version_deleting timestamptz;
  version_owner uuid;
begin
  if new.active_job_id is null
     or (tg_op = 'UPDATE' and new.active_job_id is not distinct from old.active_job_id) then
    return new;
  end if;
  select status, deletion_requested_at, user_id
    into version_status, version_deleting, version_owner
    from public.ai_training_jobs
   where id = new.active_job_id and twin_id = new.id
     for share;
  if not found or version_status <> 'completed' or version_deleting is not null
     or version_owner <> new.user_id then
    raise exception 'twins: job % is not a completed, live version of twin %', new.active_job_id, new.id
      using errcode = 'check_violation';
  end if;
  return new;
end
$$;

-- An owner never changes; a deletion cannot be withdrawn (the first request time stands).
create or replace function public.twins_keep_owner_and_deletion() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.user_id is distinct from old.user_id then
    raise exception 'twins: a twin''s owner never changes' using errcode = 'check_violation';
  end if;
  if (old.deletion_requested_at is not null and new.deletion_requested_at is null)
     or (old.deleted_at is not null and new.deleted_at is null) then
    raise exception 'twins: a deletion cannot be withdrawn' using errcode = 'check_violation';
  end if;
  if new.next_version < old.next_version then
    raise exception 'twins: version numbers are never reused' using errcode = 'check_violation';
  end if;
  new.deletion_requested_at := coalesce(old.deletion_requested_at, new.deletion_requested_at);
  new.deleted_at := coalesce(old.deleted_at, new.deleted_at);
  new.updated_at := now();
  return new;
end
$$;

revoke all on function public.ai_training_jobs_assign_version() from public, anon, authenticated;
revoke all on function public.ai_training_jobs_keep_identity() from public, anon, authenticated;
revoke all on function public.ai_training_jobs_activate_completed() from public, anon, authenticated;
revoke all on function public.twins_check_active() from public, anon, authenticated;
revoke all on function public.twins_keep_owner_and_deletion() from public, anon, authenticated;

create trigger ai_training_jobs_assign_version
  before insert on public.ai_training_jobs
  for each row execute function public.ai_training_jobs_assign_version();

create trigger ai_training_jobs_keep_identity
  before update on public.ai_training_jobs
  for each row execute function public.ai_training_jobs_keep_identity();

create trigger ai_training_jobs_activate_completed
  after update of status on public.ai_training_jobs
  for each row execute function public.ai_training_jobs_activate_completed();

create trigger twins_check_active
  before insert or update of active_job_id on public.twins
  for each row execute function public.twins_check_active();

create trigger twins_keep_owner_and_deletion
  before update on public.twins
  for each row execute function public.twins_keep_owner_and_deletion();

-- RLS: the owner reads their own twins (not those being deleted), and only the public columns;
-- nobody but the backend (service_role) writes.
alter table public.twins enable row level security;

create policy "users read own twins"
  on public.twins for select to authenticated
  using ((select auth.uid()) = user_id and deletion_requested_at is null);

revoke all on table public.twins from anon, authenticated;
grant select (id, user_id, name, customization_data, active_job_id, created_at, updated_at)
  on table public.twins to authenticated;
grant all on table public.twins to service_role;

-- Realtime: the frontend can watch its twins (a new active version, a rename).
do $$
begin
  if exists (select 1 from pg_publication where pubname = 'supabase_realtime')
     and not exists (
       select 1 from pg_publication_tables
       where pubname = 'supabase_realtime' and schemaname = 'public' and tablename = 'twins'
     ) then
    alter publication supabase_realtime add table public.twins;
  end if;
end
$$;
