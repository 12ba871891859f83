-- Progress you can see (issue 18): the phase a person reads, the trainer's step, when each phase
-- began (the evidence the estimate learns from), a bounded loss/step history per job, and only
-- the public columns of a job for its owner (REST and Realtime alike).

alter table public.ai_training_jobs
  add column phase text not null default 'uploading',
  add column step integer,
  add column total_steps integer,
  -- {phase: when the job entered it}; written once per phase, read back for the estimate.
  add column phase_times jsonb not null default '{}',
  -- The expected seconds of each phase (and per training step) this job's estimate uses: the
  -- medians of recently completed jobs, taken once when its training is created.
  add column expected_phase_seconds jsonb,
  add constraint ai_training_jobs_phase_valid check (phase in (
    'uploading', 'waiting', 'preparing_gpu', 'reading_photos', 'training', 'saving',
    'done', 'failed', 'canceled'
  )),
  add constraint ai_training_jobs_step_range
    check (step is null or (step >= 0 and (total_steps is null or step <= total_steps))),
  add constraint ai_training_jobs_phase_times_is_object
    check (jsonb_typeof(phase_times) = 'object');

comment on column public.ai_training_jobs.phase is
  'What the job is doing, in the order a person sees it: uploading, waiting (in our queue), '
  'preparing_gpu, reading_photos, training, saving, then done, failed or canceled. Never goes back.';

update public.ai_training_jobs set phase = case
  when status = 'completed' then 'done'
  when status = 'failed' and (error_message = 'Canceled by user.' or last_replicate_status = 'canceled')
    then 'canceled'
  when status = 'failed' then 'failed'
  when status = 'training' and progress > 30 then 'training'
  when status = 'training' then 'preparing_gpu'
  else 'uploading'
end;

-- The phase follows the status here, so every writer (start, cancel, delete, expiry, the sweep)
-- agrees; within a training the code names the phase and this keeps it from going back.
-- `step` never goes down and a phase's entry time, once written, stays.
create or replace function public.ai_training_jobs_track_phase() returns trigger
language plpgsql
set search_path = ''
as $$
declare
  training_phases constant text[] := array['preparing_gpu', 'reading_photos', 'training', 'saving'];
begin
  if new.status in ('uploading', 'pending') then
    new.phase := 'uploading';
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

revoke all on function public.ai_training_jobs_track_phase() from public, anon, authenticated;

create trigger ai_training_jobs_track_phase
  before insert or update on public.ai_training_jobs
  for each row execute function public.ai_training_jobs_track_phase();

-- The estimate reads the phase times of the last few completed jobs on every training start.
create index ai_training_jobs_completed_recent_idx
  on public.ai_training_jobs (completed_at desc)
  where status = 'completed';

-- The history: at most 200 points per job, one per 1/200 of its steps (`bucket`), written by the
-- backend while the job trains, read by the owner (and pushed by Realtime). Deleted with the job.
create table public.training_progress_points (
  job_id uuid not null references public.ai_training_jobs (id) on delete cascade,
  bucket smallint not null,
  step integer not null,
  observed_at timestamptz not null,
  loss real,
  steps_per_second real,
  primary key (job_id, bucket),
  constraint training_progress_points_bucket_range check (bucket between 0 and 199),
  constraint training_progress_points_step_positive check (step >= 1)
);

comment on table public.training_progress_points is
  'The trainer''s loss and pace per job, one point per 1/200 of its steps (at most 200 points).';

-- Points arrive only while their job trains: a write that raced a cancel or a deletion is
-- dropped, so nothing of a deleted job comes back after its clean-up. FOR SHARE makes a
-- concurrent status change wait for this insert (and then see its point) or be seen by it.
create or replace function public.training_progress_points_only_while_training() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  perform 1 from public.ai_training_jobs
    where id = new.job_id and status = 'training'
    for share;
  if not found then
    return null;
  end if;
  return new;
end
$$;

revoke all on function public.training_progress_points_only_while_training()
  from public, anon, authenticated;

create trigger training_progress_points_only_while_training
  before insert on public.training_progress_points
  for each row execute function public.training_progress_points_only_while_training();

alter table public.training_progress_points enable row level security;

-- The jobs table's own policy applies inside: the owner's jobs, not being deleted.
create policy "users read their jobs' progress points"
  on public.training_progress_points for select to authenticated
  using (exists (select 1 from public.ai_training_jobs j where j.id = job_id));

revoke all on table public.training_progress_points from anon, authenticated;
grant select on table public.training_progress_points to authenticated;
grant all on table public.training_progress_points to service_role;

-- Only public columns reach the owner: REST (`select=*` is refused for them: name the columns)
-- and Realtime (which drops the columns the role cannot select). A new column is private until
-- it is granted here or in a later migration.
revoke select on table public.ai_training_jobs from authenticated;
grant select (
  id, user_id, twin_id, version, furrsona_name, status, phase, step, total_steps, progress, estimated_completion,
  replicate_model_version, error_message, photo_urls, customization_data, created_at,
  completed_at, updated_at
) on table public.ai_training_jobs to authenticated;

do $$
begin
  if exists (select 1 from pg_publication where pubname = 'supabase_realtime')
     and not exists (
       select 1 from pg_publication_tables
       where pubname = 'supabase_realtime' and schemaname = 'public'
         and tablename = 'training_progress_points'
     ) then
    alter publication supabase_realtime add table public.training_progress_points;
  end if;
end
$$;
