-- What each stored photo was when the backend wrote it: the SHA-256 (hex) of every NN.jpg, in
-- photo_urls' order, recorded by the upload (multipart) or the complete (signed upload). Start
-- checks every photo it zips against it, so nothing but the photos we checked ever reaches the
-- trainer. Private to the backend (no grant to authenticated).
alter table public.ai_training_jobs add column photo_checksums text[];

alter table public.ai_training_jobs
  add constraint ai_training_jobs_photo_checksums_hex
    check (photo_checksums is null
           or array_to_string(photo_checksums, '') ~ '^[0-9a-f]*$');
