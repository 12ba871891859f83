-- When a job last moved forward. The sweep gives up on a training that has not moved for
-- TRAINING_STALE_MINUTES, counted from here rather than from its creation, so a long training that
-- keeps stepping is never canceled and a stuck one is caught however young it is.
-- `updated_at` cannot serve: every status check writes `last_checked_at` and so touches it.

alter table public.ai_training_jobs
  add column progress_changed_at timestamptz not null default now();

comment on column public.ai_training_jobs.progress_changed_at is
  'Last change of status, progress or Replicate''s status (set by trigger); the no-progress clock.';

-- Maintained here, not by the code, so every writer (start, status call, webhook, sweep) counts.
create or replace function public.ai_training_jobs_mark_progress() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.status is distinct from old.status
     or new.progress is distinct from old.progress
     or new.last_replicate_status is distinct from old.last_replicate_status then
    new.progress_changed_at := now();
  else
    new.progress_changed_at := old.progress_changed_at;
  end if;
  return new;
end
$$;

revoke all on function public.ai_training_jobs_mark_progress() from public, anon, authenticated;

-- Before-triggers fire in name order: after check_update (which may set progress to 100).
create trigger ai_training_jobs_mark_progress
  before update on public.ai_training_jobs
  for each row execute function public.ai_training_jobs_mark_progress();
