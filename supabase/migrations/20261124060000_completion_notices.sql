-- Completion notices (issue 6): the sweep looks for finished trainings whose notice is still to
-- be sent (a send that failed and was given back). Few rows match, so a partial index keeps that
-- query off the whole table.
create index if not exists ai_training_jobs_notice_pending_idx
  on public.ai_training_jobs (completed_at)
  where notified_at is null
    and replicate_training_id is not null
    and status in ('completed', 'failed');
