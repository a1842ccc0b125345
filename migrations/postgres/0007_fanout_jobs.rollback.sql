-- Undo 0007_fanout_jobs. A broadcast still fanning out keeps the receipts
-- written so far and gets no more.
DROP TABLE fanout_jobs;
