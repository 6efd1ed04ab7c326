-- The id of the claim request that took the current attempt, chosen by the runner. A runner
-- whose claim got no answer (pipeline-svc died between the commit and the reply, or the
-- connection broke) sends the same request again with the same id and gets the same attempt,
-- instead of the attempt waiting out its lease as lost (docs/DECISIONS.md, runner protocol).
ALTER TABLE jobs ADD COLUMN claim_id uuid;
