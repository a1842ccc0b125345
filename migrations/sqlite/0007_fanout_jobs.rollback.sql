-- Undo 0007_fanout_jobs. A broadcast still fanning out keeps the receipts
-- written so far and gets no more.
DROP INDEX workspace_members_audience_idx;
DROP TABLE fanout_jobs;
