-- Issue 14: the training bucket is write-protected for everyone but the backend.
--
-- With the "owner uploads" / "owner deletes" policies a person could, with their own access token,
-- delete a checked photo and put anything at the same path (an unchecked photo with GPS then went
-- to the trainer unchanged), or leave files outside any job folder that nothing ever cleans up.
-- Photos now enter only through the backend (service role, which bypasses RLS) or through a
-- signed upload URL the backend issued: the Storage server checks the URL's token and writes the
-- object as its own superuser, never as the person, so no user policy is involved. Photos leave
-- only through the backend (the sweep, delete, a rejected upload).
--
-- What a signed-in person keeps: SELECT on their own first folder ("training photos: owner
-- reads"), so they can see and download the photos they gave us. Reading cannot change what is
-- trained on, and these are their own pictures.
drop policy if exists "training photos: owner uploads" on storage.objects;
drop policy if exists "training photos: owner deletes" on storage.objects;

-- Restrictive policies are ANDed with every permissive one, so no policy added later (say a
-- dashboard "allow authenticated uploads" template on all buckets) can reopen writes here. They
-- bind every role that RLS applies to; the service role and the Storage server bypass RLS.
drop policy if exists "training photos: no user inserts" on storage.objects;
create policy "training photos: no user inserts"
  on storage.objects as restrictive for insert to public
  with check (bucket_id <> 'training-photos');

-- Covers moves too (a move is an UPDATE of bucket_id/name): neither out of nor into the bucket.
drop policy if exists "training photos: no user updates" on storage.objects;
create policy "training photos: no user updates"
  on storage.objects as restrictive for update to public
  using (bucket_id <> 'training-photos')
  with check (bucket_id <> 'training-photos');

drop policy if exists "training photos: no user deletes" on storage.objects;
create policy "training photos: no user deletes"
  on storage.objects as restrictive for delete to public
  using (bucket_id <> 'training-photos');
