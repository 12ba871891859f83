-- Why a failed job failed, as a code a frontend can branch on (`errorCode` in the API; the
-- values are shared.domain.job.FailureCode). error_message stays the sentence for the person.
alter table public.ai_training_jobs add column failure_code text;

-- Jobs failed before this migration: the code their (fixed) sentence stands for.
update public.ai_training_jobs
set failure_code = case
  when deletion_requested_at is not null then 'deleted_by_user'
  when error_message = 'Canceled by user.' then 'canceled_by_user'
  when error_message like 'Your photos did not all arrive%' then 'upload_expired'
  when error_message = 'The photos were refused.' then 'photos_refused'
  when error_message like 'Some of the photos of this job are gone%' then 'photos_missing'
  when error_message like 'We could not start your training%' then 'not_started'
  when error_message like 'Replicate has no record of this training%' then 'training_lost'
  when error_message like 'The training made no progress%' then 'stalled'
  else 'training_failed'
end
where status = 'failed';

alter table public.ai_training_jobs
  add constraint ai_training_jobs_failure_code_only_when_failed
    check (failure_code is null or status = 'failed');

-- The owner reads it like the other public columns (the column grants of the visible-progress
-- migration: a new column is private until granted).
grant select (failure_code) on table public.ai_training_jobs to authenticated;
