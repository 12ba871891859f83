-- Privacy and control (issue 9): cancel, delete, retention.
-- Each column records when one kind of data was removed; `deletion_requested_at` is the owner's
-- request to delete the job, written before anything is removed, and `deleted_at` is when the
-- last piece was gone and the row was anonymised (the row stays as a tombstone: ids and times,
-- no name, no customisation, no photo paths).

alter table public.ai_training_jobs
  add column deletion_requested_at timestamptz,
  add column deleted_at timestamptz,
  add column photos_deleted_at timestamptz,
  add column replicate_file_deleted_at timestamptz,
  add column model_version_deleted_at timestamptz,
  -- A job being deleted is final, so the status trigger keeps it from ever training again.
  add constraint ai_training_jobs_deleted_is_final
    check (deletion_requested_at is null or status in ('completed', 'failed')),
  add constraint ai_training_jobs_deleted_after_request
    check (deleted_at is null or deletion_requested_at is not null);

comment on column public.ai_training_jobs.deletion_requested_at is
  'The owner asked to delete this job: hidden from every route and from RLS reads from then on.';
comment on column public.ai_training_jobs.deleted_at is
  'Every piece of the job was removed and the row anonymised.';
comment on column public.ai_training_jobs.photos_deleted_at is
  'The job''s photos were removed from Storage (retention or deletion).';
comment on column public.ai_training_jobs.replicate_file_deleted_at is
  'The training zip was removed from Replicate''s Files API and no training can use it any more.';
comment on column public.ai_training_jobs.model_version_deleted_at is
  'The trained model version was deleted on Replicate.';

-- A deletion cannot be withdrawn; when two callers race, the first request and finish times stand.
create or replace function public.ai_training_jobs_keep_deletion() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if (old.deletion_requested_at is not null and new.deletion_requested_at is null)
     or (old.deleted_at is not null and new.deleted_at is null) then
    raise exception 'ai_training_jobs: a deletion cannot be withdrawn'
      using errcode = 'check_violation';
  end if;
  new.deletion_requested_at := coalesce(old.deletion_requested_at, new.deletion_requested_at);
  new.deleted_at := coalesce(old.deleted_at, new.deleted_at);
  return new;
end
$$;

revoke all on function public.ai_training_jobs_keep_deletion() from public, anon, authenticated;

create trigger ai_training_jobs_keep_deletion
  before update on public.ai_training_jobs
  for each row execute function public.ai_training_jobs_keep_deletion();

-- The owner no longer sees a job they deleted (the frontend reads rows directly and by realtime).
drop policy "users read own training jobs" on public.ai_training_jobs;
create policy "users read own training jobs"
  on public.ai_training_jobs for select to authenticated
  using ((select auth.uid()) = user_id and deletion_requested_at is null);

-- The sweep's cleanup query: each branch has a small partial index that empties as work is done.
create index ai_training_jobs_deletion_pending_idx
  on public.ai_training_jobs (deletion_requested_at)
  where deletion_requested_at is not null and deleted_at is null;
create index ai_training_jobs_zip_kept_idx
  on public.ai_training_jobs (completed_at)
  where replicate_file_id is not null and replicate_file_deleted_at is null
    and status in ('completed', 'failed');
create index ai_training_jobs_photos_kept_idx
  on public.ai_training_jobs (completed_at)
  where photos_deleted_at is null and status in ('completed', 'failed');
