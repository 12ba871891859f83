-- Nothing strands (issue 14.6).

-- (e) Replicate refused deleting the job's zip or trained version for good (403/409): the
-- clean-up stops asking (it would fail forever) and the ReplicateDeletionsRefused metric raises
-- its alarm; an operator removes it by hand (docs/operations.md).
alter table public.ai_training_jobs add column replicate_deletion_refused_at timestamptz;

-- (b) Objects in the photo bucket that no row knows about: no job row for their folder
-- `{user}/{job}/`, or the job's photos were removed already (a late PUT to a signed URL that
-- was still valid), or outside any job folder; older than `p_older_than` (a multipart upload
-- stores its photos a moment before its row, and a start never runs longer than that grace).
-- An erasure in progress removes its person's folder itself.
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
   order by o.created_at
   limit p_limit
$$;

revoke all on function public.orphan_photo_objects(timestamptz, integer)
  from public, anon, authenticated;
grant execute on function public.orphan_photo_objects(timestamptz, integer) to service_role;
