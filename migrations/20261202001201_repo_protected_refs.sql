-- A repo's protected refs (SPEC §10): globs matched against a run's branch or tag name; a
-- protected secret is given only to runs of one. NULL: the default, [default_branch].
ALTER TABLE repos ADD COLUMN protected_refs text[];
